"""Every TF-written golden reads back to its expected values, and re-writing it reproduces it.

The goldens and their manifests are made by ``spec/golden/generate.py`` with
TensorFlow 2.21; this module needs no TensorFlow.
"""

from __future__ import annotations

import pathlib

import pytest

import dtckpt
from tests.conftest import Golden, assert_same_array, golden_names, load_golden


def test_goldens_exist() -> None:
    assert len(golden_names()) >= 8


def _files_under(directory: pathlib.Path) -> list[str]:
    return sorted(
        str(p.relative_to(directory))
        for p in directory.rglob("*")
        if p.is_file() and p.name != "manifest.json"
    )


def test_files_listed(golden: Golden) -> None:
    assert _files_under(golden.directory) == golden.manifest["files"]


def test_reads_expected_values(golden: Golden) -> None:
    expected = golden.expected()
    reader = dtckpt.load_checkpoint(golden.prefix)
    shapes = reader.get_variable_to_shape_map()
    assert sorted(shapes) == sorted(expected)
    dtypes = reader.get_variable_to_dtype_map()
    for key, value in expected.items():
        assert shapes[key] == list(value.shape), key
        assert dtypes[key] == value.dtype, key
        assert_same_array(reader.get_tensor(key), value, key)


def test_mmap_reads_expected_values(golden: Golden) -> None:
    reader = dtckpt.load_checkpoint(golden.prefix, mmap=True)
    for key, value in golden.expected().items():
        assert_same_array(reader.get_tensor(key), value, key)


def test_list_variables(golden: Golden) -> None:
    expected = sorted((k, list(v.shape)) for k, v in golden.expected().items())
    assert dtckpt.list_variables(golden.prefix) == expected


def test_expected_slices(golden: Golden) -> None:
    slices = golden.manifest.get("expected_slices") or []
    for item in slices:
        value = golden.value(item["value"])
        (got,) = dtckpt.restore_v2(
            golden.prefix, [item["key"]], [item["shape_and_slice"]], [value.dtype]
        )
        assert_same_array(got, value, f"{item['key']} {item['shape_and_slice']}")


def _replay(golden: Golden, record: dict, out: pathlib.Path) -> None:
    """Re-run the SaveV2 (and merge) calls that produced one saved checkpoint."""
    for call in record["writes"]:
        dtckpt.save_v2(
            str(out / call["prefix"]),
            call["tensor_names"],
            call["shape_and_slices"],
            [golden.value(v) for v in call["values"]],
            dtypes=[golden.manifest["values"][v]["dtype"] for v in call["values"]],
        )
    merge = record.get("merge")
    if merge:
        destination = out / merge["destination_prefix"]
        destination.parent.mkdir(parents=True, exist_ok=True)
        dtckpt.merge_v2_checkpoints(
            [str(out / p) for p in merge["checkpoint_prefixes"]],
            str(destination),
            delete_old_dirs=True,
        )


def _bundle_files(prefix: str, files: list[str]) -> list[str]:
    return [f for f in files if f.startswith(prefix + ".")]


def _saved_checkpoints(golden: Golden) -> list[tuple[str, dict, list[str]]]:
    """``(prefix, record, files)`` of every checkpoint a golden keeps, main one included."""
    manifest = golden.manifest
    found = [(manifest["prefix"], manifest, _bundle_files(manifest["prefix"], manifest["files"]))]
    for save in manifest.get("saves") or []:
        if "writes" not in save or save.get("kept") is False:
            continue
        prefix = save["returned"]
        if prefix != manifest["prefix"]:
            found.append((prefix, save, _bundle_files(prefix, save["files"])))
    return found


REPRODUCIBLE = [n for n in golden_names() if load_golden(n).manifest["byte_identical"]]


def test_every_golden_is_reproducible() -> None:
    assert REPRODUCIBLE == golden_names()


@pytest.mark.parametrize("name", REPRODUCIBLE)
def test_rewrite_is_byte_identical(name: str, tmp_path: pathlib.Path) -> None:
    golden = load_golden(name)
    for index, (prefix, record, files) in enumerate(_saved_checkpoints(golden)):
        out = tmp_path / str(index)
        _replay(golden, record, out)
        assert files and _bundle_files(prefix, _files_under(out)) == files, prefix
        for name_ in files:
            ours = (out / name_).read_bytes()
            theirs = (golden.directory / name_).read_bytes()
            assert ours == theirs, f"{golden.name}/{name_} differs"

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


def test_files_listed(golden: Golden) -> None:
    present = sorted(p.name for p in golden.directory.iterdir() if p.name != "manifest.json")
    assert present == golden.manifest["files"]


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


def _replay(golden: Golden, out: pathlib.Path) -> None:
    manifest = golden.manifest
    for call in manifest["writes"]:
        dtckpt.save_v2(
            str(out / call["prefix"]),
            call["tensor_names"],
            call["shape_and_slices"],
            [golden.value(v) for v in call["values"]],
            dtypes=[manifest["values"][v]["dtype"] for v in call["values"]],
        )
    merge = manifest.get("merge")
    if merge:
        dtckpt.merge_v2_checkpoints(
            [str(out / p) for p in merge["checkpoint_prefixes"]],
            str(out / merge["destination_prefix"]),
            delete_old_dirs=True,
        )


REPRODUCIBLE = [n for n in golden_names() if load_golden(n).manifest["byte_identical"]]


def test_every_golden_is_reproducible() -> None:
    assert REPRODUCIBLE == golden_names()


@pytest.mark.parametrize("name", REPRODUCIBLE)
def test_rewrite_is_byte_identical(name: str, tmp_path: pathlib.Path) -> None:
    golden = load_golden(name)
    _replay(golden, tmp_path)
    produced = sorted(p.name for p in tmp_path.iterdir() if p.is_file())
    assert produced == golden.manifest["files"]
    for name in golden.manifest["files"]:
        ours = (tmp_path / name).read_bytes()
        theirs = (golden.directory / name).read_bytes()
        assert ours == theirs, f"{golden.name}/{name} differs"

"""DTensor goldens (manifests with a ``dtensor`` key) rebuilt and restored with dtckpt (TF-free).

Each such golden records the mesh, the DVariables (attribute, name, layout, value,
dtype) and how TensorFlow wrote them (``tf.train.Checkpoint(model=m).write`` or
``DTensorCheckpoint(mesh, model=m).save``). Here the same module is rebuilt from
``dtckpt.dtensor.DVariable``s and written the same way: the index must hold the same
keys and entries (offsets aside: TF orders tensors inside a device's data file
differently from run to run), the same header, and data files of the same names
and sizes. Then each golden is restored into meshes and layouts other than the
one that wrote it.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any

import numpy as np
import pytest

import dtckpt
from dtckpt import dtensor as dd
from tests.conftest import Golden, assert_same_array, golden_names, load_golden

DTENSOR_GOLDENS = [n for n in golden_names() if "dtensor" in load_golden(n).manifest]
U = dd.UNSHARDED


def test_dtensor_goldens_cover_both_writers() -> None:
    writers = {load_golden(n).manifest["dtensor"]["writer"] for n in DTENSOR_GOLDENS}
    assert writers == {"checkpoint_write", "dtensor_checkpoint_save"}


def _module(golden: Golden, mesh: dd.Mesh, layouts: dict[str, list[str]], zero: bool) -> Any:
    module = dtckpt.Module()
    for var in golden.manifest["dtensor"]["variables"]:
        value = golden.value(var["value"])
        assert str(value.dtype) == var["dtype"], var
        if zero:
            value = np.zeros_like(value)
        layout = dd.Layout(layouts[var["attr"]], mesh)
        setattr(
            module,
            var["attr"],
            dd.DVariable(dd.copy_to_mesh(value, layout), name=var.get("name", var["attr"])),
        )
    return module


def _recorded(golden: Golden) -> tuple[dd.Mesh, dict[str, list[str]]]:
    spec = golden.manifest["dtensor"]
    mesh = dd.create_mesh([(name, size) for name, size in spec["mesh"]])
    return mesh, {v["attr"]: list(v["layout"]) for v in spec["variables"]}


def _write(golden: Golden, mesh: dd.Mesh, module: Any, prefix: str) -> str:
    writer = golden.manifest["dtensor"]["writer"]
    if writer == "checkpoint_write":
        return dtckpt.Checkpoint(model=module).write(prefix)
    assert writer == "dtensor_checkpoint_save", writer
    return dd.DTensorCheckpoint(mesh, model=module).save(prefix)


@pytest.mark.parametrize("name", DTENSOR_GOLDENS)
def test_rewrite_matches_tf_index_and_files(name: str, tmp_path: pathlib.Path) -> None:
    golden = load_golden(name)
    mesh, layouts = _recorded(golden)
    path = _write(golden, mesh, _module(golden, mesh, layouts, zero=False), str(tmp_path / "ckpt"))
    assert os.path.relpath(path, tmp_path) == golden.manifest["prefix"]
    ours, theirs = dtckpt.BundleReader(path), dtckpt.BundleReader(golden.prefix)
    assert ours.header == theirs.header
    assert ours.raw_keys() == theirs.raw_keys()
    for key in theirs.raw_keys():
        assert ours.entry(key)._replace(offset=0) == theirs.entry(key)._replace(offset=0), key
    graph = "_CHECKPOINTABLE_OBJECT_GRAPH"
    assert_same_array(dtckpt.load_checkpoint(path).get_tensor(graph), golden.expected()[graph])

    def data_sizes(directory: pathlib.Path, files: list[str]) -> dict[str, int]:
        return {f: os.path.getsize(directory / f) for f in files if ".data-" in f}

    ours_files = sorted(os.listdir(tmp_path))
    bundle = [f for f in golden.manifest["files"] if f.startswith(golden.manifest["prefix"] + ".")]
    assert [f for f in ours_files if f.startswith(golden.manifest["prefix"] + ".")] == bundle
    assert data_sizes(tmp_path, ours_files) == data_sizes(golden.directory, bundle)
    if "state_file" in golden.manifest:
        assert (tmp_path / "checkpoint").read_text() == golden.manifest["state_file"]


def _other_layouts(rank: int, mesh_dims: list[tuple[str, int]], kind: str) -> list[str]:
    """A layout of ``rank`` on the mesh, chosen per target ``kind``."""
    names = [n for n, _ in mesh_dims]
    if kind == "replicated" or rank == 0:
        return [U] * rank
    if kind == "last":  # shard the last dimension over the first mesh dimension
        return [U] * (rank - 1) + [names[0]]
    if kind == "reversed":  # mesh dimensions in reverse order over the leading dims
        specs = [U] * rank
        for i, n in enumerate(reversed(names[:rank])):
            specs[i] = n
        return specs
    if kind == "trailing":  # mesh dimensions in order over the trailing dims
        used = names[-rank:] if rank < len(names) else names
        specs = [U] * rank
        for i, n in enumerate(used):
            specs[rank - len(used) + i] = n
        return specs
    raise ValueError(kind)


TARGETS = [
    ("1d8_last", [("x", 8)], "last"),
    ("4x2_reversed", [("a", 4), ("b", 2)], "reversed"),
    ("2x2x2_trailing", [("p", 2), ("q", 2), ("r", 2)], "trailing"),
    ("2x2x2_reversed", [("u", 2), ("v", 2), ("w", 2)], "reversed"),
    ("solo", [("solo", 1)], "last"),
    ("2x4_replicated", [("x", 2), ("y", 4)], "replicated"),
    ("1x8_trailing", [("one", 1), ("eight", 8)], "trailing"),
]


def _fit(shape: list[int], specs: list[str], sizes: dict[str, int]) -> list[str]:
    """``specs`` with every mesh dimension that does not divide its tensor dimension moved
    to the last unsharded tensor dimension it divides (dropped if there is none)."""
    out = [s if s == U or d % sizes[s] == 0 else U for d, s in zip(shape, specs, strict=True)]
    for d, s in zip(shape, specs, strict=True):
        if s != U and d % sizes[s]:
            free = [i for i, (n, t) in enumerate(zip(shape, out, strict=True))
                    if t == U and n % sizes[s] == 0]
            if free:
                out[free[-1]] = s
    return out


def _restore(golden: Golden, mesh: dd.Mesh, module: Any) -> None:
    if golden.manifest["dtensor"]["writer"] == "dtensor_checkpoint_save":
        ckpt = dd.DTensorCheckpoint(mesh, model=module)
        ckpt.restore(golden.prefix).assert_consumed()
        expected = golden.expected()["save_counter/.ATTRIBUTES/VARIABLE_VALUE"]
        assert int(ckpt.save_counter.numpy()) == int(expected)
    else:
        dtckpt.Checkpoint(model=module).read(golden.prefix).assert_consumed()


@pytest.mark.parametrize("target", [t[0] for t in TARGETS])
@pytest.mark.parametrize("name", DTENSOR_GOLDENS)
def test_restores_into_other_meshes(name: str, target: str) -> None:
    golden = load_golden(name)
    _, mesh_dims, kind = next(t for t in TARGETS if t[0] == target)
    mesh = dd.create_mesh(mesh_dims)
    sizes = {n: mesh.dim_size(n) for n in mesh.dim_names}
    layouts = {}
    for var in golden.manifest["dtensor"]["variables"]:
        shape = golden.manifest["values"][var["value"]]["shape"]
        layouts[var["attr"]] = _fit(shape, _other_layouts(len(shape), mesh_dims, kind), sizes)
    module = _module(golden, mesh, layouts, zero=True)
    _restore(golden, mesh, module)
    for var in golden.manifest["dtensor"]["variables"]:
        got = getattr(module, var["attr"])
        assert got.layout == dd.Layout(layouts[var["attr"]], mesh)
        assert_same_array(got.numpy(), golden.value(var["value"]), var["attr"])
        key = f"model/{var['attr']}/.ATTRIBUTES/VARIABLE_VALUE"
        assert golden.manifest["expected"][key] == var["value"], key


@pytest.mark.parametrize("name", DTENSOR_GOLDENS)
def test_restores_into_its_own_layouts(name: str) -> None:
    golden = load_golden(name)
    mesh, layouts = _recorded(golden)
    module = _module(golden, mesh, layouts, zero=True)
    _restore(golden, mesh, module)
    for var in golden.manifest["dtensor"]["variables"]:
        assert_same_array(getattr(module, var["attr"]).numpy(), golden.value(var["value"]))


@pytest.mark.parametrize("name", DTENSOR_GOLDENS)
def test_golden_restores_into_plain_variables(name: str) -> None:
    golden = load_golden(name)
    module = dtckpt.Module()
    for var in golden.manifest["dtensor"]["variables"]:
        setattr(module, var["attr"], dtckpt.Variable(np.zeros_like(golden.value(var["value"]))))
    status = dtckpt.Checkpoint(model=module).read(golden.prefix)
    status.assert_existing_objects_matched()
    for var in golden.manifest["dtensor"]["variables"]:
        assert_same_array(getattr(module, var["attr"]).numpy(), golden.value(var["value"]))

"""DTensors, DVariables and DTensor checkpoints on simulated meshes (TF-free)."""

from __future__ import annotations

import os
import pathlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dtckpt
from dtckpt import dtensor as dd
from dtckpt.errors import InvalidArgumentError
from dtckpt.mesh import device_box
from tests.conftest import load_golden

MESHES = [[("x", 8)], [("x", 2), ("y", 4)], [("a", 4), ("b", 2)], [("p", 2), ("q", 2), ("r", 2)],
          [("one", 1)]]


@st.composite
def layouts(draw: st.DrawFn, rank: int) -> dd.Layout:
    mesh = dd.create_mesh(draw(st.sampled_from(MESHES)))
    names = [dd.UNSHARDED, *mesh.dim_names]
    specs = draw(
        st.lists(st.sampled_from(names), min_size=rank, max_size=rank).filter(
            lambda s: len([x for x in s if x != dd.UNSHARDED])
            == len({x for x in s if x != dd.UNSHARDED})
        )
    )
    return dd.Layout(specs, mesh)


def test_pack_unpack_and_replicas_are_independent() -> None:
    mesh = dd.create_mesh([("x", 2), ("y", 4)])
    layout = dd.Layout(["x", dd.UNSHARDED], mesh)
    value = np.arange(12, dtype=np.float32).reshape(4, 3)
    t = dd.copy_to_mesh(value, layout)
    assert t.shape == (4, 3) and dd.fetch_layout(t) == layout
    parts = dd.unpack(t)
    assert [p.shape for p in parts] == [(2, 3)] * 8
    t.components[0][0, 0] = 99  # replicas of block 0 live on devices 0..3
    assert t.components[1][0, 0] == 0
    again = dd.pack(parts, layout)
    assert np.array_equal(again.numpy(), value)
    with pytest.raises(InvalidArgumentError, match="expected 8 inputs to DTensorPack"):
        dd.pack(parts[:3], layout)
    with pytest.raises(InvalidArgumentError, match="cannot be split evenly"):
        dd.copy_to_mesh(np.zeros((3, 3)), layout)
    z = dd.call_with_layout(np.ones, dd.Layout(["y"], mesh), (8,), dtype=np.int64)
    assert z.numpy().tolist() == [1] * 8 and z.components[0].shape == (2,)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_relayout_matches_numpy(data: st.DataObject) -> None:
    rank = data.draw(st.integers(0, 3))
    source = data.draw(layouts(rank))
    target = data.draw(layouts(rank))
    shape = tuple(
        source.num_shards(i) * target.num_shards(i) * data.draw(st.integers(1, 2))
        for i in range(rank)
    )
    dtype = data.draw(st.sampled_from(["float32", "int64", "bfloat16", "bool", "string"]))
    count = int(np.prod(shape))
    if dtype == "string":
        value = np.array([str(i).encode() for i in range(count)], dtype=object).reshape(shape)
    else:
        value = np.arange(count).astype(dtckpt.dtypes.info(dtype).numpy).reshape(shape)
    moved = dd.relayout(dd.copy_to_mesh(value, source), target)
    assert moved.layout == target
    assert np.array_equal(moved.numpy(), value)
    for device, component in enumerate(moved.components):
        box = device_box(target, shape, device)
        assert np.array_equal(component, value[tuple(slice(s, s + n) for s, n in box)])


def _golden_module(mesh: dd.Mesh, layouts_: dict[str, list[str]], zero: bool) -> dtckpt.Module:
    golden = load_golden("dtensor")
    expected = golden.expected()
    module = dtckpt.Module()
    for name, specs in layouts_.items():
        value = expected[f"model/{name}/.ATTRIBUTES/VARIABLE_VALUE"]
        value = np.zeros_like(value) if zero else value
        setattr(module, name, dd.DVariable(dd.copy_to_mesh(value, dd.Layout(specs, mesh))))
    return module


GOLDEN_LAYOUTS = {"r": [dd.UNSHARDED], "w": ["x", "y"], "k": [dd.UNSHARDED, "y"]}


def test_golden_entries_and_files_are_tfs(tmp_path: pathlib.Path) -> None:
    golden = load_golden("dtensor")
    mesh = dd.create_mesh([("x", 2), ("y", 4)])
    path = dtckpt.Checkpoint(model=_golden_module(mesh, GOLDEN_LAYOUTS, zero=False)).write(
        str(tmp_path / "ckpt")
    )
    ours, theirs = dtckpt.BundleReader(path), dtckpt.BundleReader(golden.prefix)
    assert ours.header == theirs.header
    assert ours.raw_keys() == theirs.raw_keys()
    for key in theirs.raw_keys():
        if key == b"_CHECKPOINTABLE_OBJECT_GRAPH":
            continue  # holds variable names, which differ only in being unnamed here
        assert ours.entry(key)._replace(offset=0) == theirs.entry(key)._replace(offset=0), key
    sizes = {f: os.path.getsize(tmp_path / f) for f in os.listdir(tmp_path) if ".data-" in f}
    assert sizes == {
        f: os.path.getsize(golden.directory / f) for f in golden.manifest["files"] if ".data-" in f
    }


@pytest.mark.parametrize(
    "mesh_dims, layouts_",
    [
        ([("x", 8)], {"r": [dd.UNSHARDED], "w": [dd.UNSHARDED, "x"], "k": [dd.UNSHARDED, "x"]}),
        ([("a", 4), ("b", 2)], {"r": [dd.UNSHARDED], "w": ["b", "a"], "k": [dd.UNSHARDED, "a"]}),
        ([("p", 2), ("q", 2), ("r", 2)], {"r": [dd.UNSHARDED], "w": ["q", "r"], "k": [dd.UNSHARDED, "p"]}),
        ([("x", 2), ("y", 4)], {"r": [dd.UNSHARDED], "w": ["y", "x"], "k": [dd.UNSHARDED, dd.UNSHARDED]}),
        ([("solo", 1)], {"r": ["solo"], "w": [dd.UNSHARDED, "solo"], "k": ["solo", dd.UNSHARDED]}),
    ],
)
def test_golden_restores_into_other_meshes(mesh_dims, layouts_) -> None:  # type: ignore[no-untyped-def]
    golden = load_golden("dtensor")
    module = _golden_module(dd.create_mesh(mesh_dims), layouts_, zero=True)
    dtckpt.Checkpoint(model=module).read(golden.prefix).assert_consumed()
    for name in layouts_:
        expected = golden.expected()[f"model/{name}/.ATTRIBUTES/VARIABLE_VALUE"]
        assert np.array_equal(getattr(module, name).numpy(), expected), name


def test_dtensor_checkpoint_round_trip_and_reshard(tmp_path: pathlib.Path) -> None:
    mesh = dd.create_mesh([("x", 2), ("y", 4)])
    module = _golden_module(mesh, GOLDEN_LAYOUTS, zero=False)
    ckpt = dd.DTensorCheckpoint(mesh, model=module)
    path = ckpt.save(str(tmp_path / "ckpt"))
    reader = dtckpt.BundleReader(path)
    # Non-DTensor values are saved by device 0: no separate regular shard.
    assert reader.entry("save_counter/.ATTRIBUTES/VARIABLE_VALUE").shard_id == 0
    assert reader.header.num_shards == 8
    other = dd.create_mesh([("a", 4), ("b", 2)])
    fresh = _golden_module(
        other, {"r": [dd.UNSHARDED], "w": ["b", "a"], "k": [dd.UNSHARDED, "a"]}, zero=True
    )
    restored = dd.DTensorCheckpoint(other, model=fresh)
    restored.restore(path).assert_consumed()
    assert int(restored.save_counter.numpy()) == 1
    assert np.array_equal(fresh.w.numpy(), module.w.numpy())


def test_dvariable_errors_name_the_key(tmp_path: pathlib.Path) -> None:
    mesh = dd.create_mesh([("x", 2), ("y", 4)])
    path = dtckpt.Checkpoint(model=_golden_module(mesh, GOLDEN_LAYOUTS, zero=False)).write(
        str(tmp_path / "c")
    )
    wrong = _golden_module(mesh, GOLDEN_LAYOUTS, zero=True)
    wrong.w = dd.DVariable(dd.copy_to_mesh(np.zeros((8, 8), np.float32), dd.Layout(["x", "y"], mesh)))
    # TensorFlow's RestoreV2 wording, with the key.
    with pytest.raises(
        InvalidArgumentError,
        match=r"model/w/.*spec \[8,8\] does not match the shape stored in checkpoint: \[4,8\]",
    ):
        dtckpt.Checkpoint(model=wrong).read(path)
    assert not wrong.k.numpy().any()  # nothing half-assigned
    with pytest.raises(InvalidArgumentError):
        dd.DVariable(np.zeros(3))

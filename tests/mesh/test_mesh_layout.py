"""Mesh, Layout and shard geometry (pure arithmetic)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dtckpt.errors import InvalidArgumentError
from dtckpt.mesh import (
    UNSHARDED,
    Layout,
    Mesh,
    create_mesh,
    device_box,
    slice_spec,
    unique_shards,
)

CPU = "/job:localhost/replica:0/task:0/device:CPU:"
MESH_2X4 = "|x=2,y=4|0,1,2,3,4,5,6,7|0,1,2,3,4,5,6,7|" + ",".join(CPU + str(i) for i in range(8))


def test_mesh_string_is_tfs() -> None:
    mesh = create_mesh([("x", 2), ("y", 4)], device_type="CPU")
    assert mesh.to_string() == MESH_2X4
    assert Mesh.from_string(MESH_2X4) == mesh
    assert mesh.shape() == [2, 4] and mesh.size == 8 and mesh.dim_size("y") == 4
    assert mesh.device_location(6) == [1, 2] and mesh.strides == [4, 1]
    assert create_mesh({"b": 8}, mesh_name="m").to_string().startswith("m|b=8|")


def test_layout_string_is_tfs() -> None:
    mesh = Mesh.from_string(MESH_2X4)
    layout = Layout(["x", UNSHARDED], mesh)
    assert layout.to_string() == "sharding_specs:x,unsharded, mesh:" + MESH_2X4
    assert Layout.from_string(layout.to_string()) == layout
    assert Layout([], mesh).to_string() == "sharding_specs: mesh:" + MESH_2X4
    assert Layout.replicated(mesh, 2).sharding_specs == [UNSHARDED, UNSHARDED]
    assert Layout.batch_sharded(mesh, "y", 3).sharding_specs == ["y", UNSHARDED, UNSHARDED]
    assert Layout.inner_sharded(mesh, "x", 3).sharding_specs == [UNSHARDED, UNSHARDED, "x"]
    assert layout.num_shards(0) == 2 and layout.num_shards(1) == 1


def test_layout_errors() -> None:
    mesh = create_mesh([("x", 2), ("y", 4)])
    with pytest.raises(InvalidArgumentError, match="repeated"):
        Layout(["x", "x"], mesh)
    with pytest.raises(InvalidArgumentError, match="valid mesh dimension"):
        Layout(["z"], mesh)
    layout = Layout(["x", "y"], mesh)
    with pytest.raises(InvalidArgumentError, match="rank 3"):
        layout.local_shape_from_global_shape((4, 8, 2))
    with pytest.raises(InvalidArgumentError, match="cannot be split evenly"):
        layout.local_shape_from_global_shape((4, 6))


@pytest.mark.parametrize(
    "text",
    ["", "a|b", "|x=2|0,1|0|", "|x=2,y|0,1|0,1|a,b", "|x=3|0,1|0,1|a,b", "|x=2|0,2|0,1|a,b",
     "|x=2|0,1|0,1,2|a,b"],
)
def test_bad_mesh_strings(text: str) -> None:
    with pytest.raises(InvalidArgumentError):
        Mesh.from_string(text)


@pytest.mark.parametrize("text", ["", "x, mesh:", "sharding_specs:x mesh:" + MESH_2X4,
                                  "sharding_specs:q, mesh:" + MESH_2X4])
def test_bad_layout_strings(text: str) -> None:
    with pytest.raises(InvalidArgumentError):
        Layout.from_string(text)


def test_geometry_2x4() -> None:
    mesh = create_mesh([("x", 2), ("y", 4)])
    xy = Layout(["x", "y"], mesh)
    assert device_box(xy, (4, 8), 6) == ((2, 2), (4, 2))
    assert slice_spec(xy, (4, 8), 6) == "4 8 2,2:4,2"
    uy = Layout([UNSHARDED, "y"], mesh)
    # Devices 4..7 repeat devices 0..3 (replicated along x): only 0..3 save.
    assert [d for _, d in unique_shards(uy, (3, 8))] == [0, 1, 2, 3]
    assert slice_spec(uy, (3, 8), 5) == "3 8 -:2,2"
    assert slice_spec(Layout.replicated(mesh, 2), (3, 8), 5) == ""
    assert unique_shards(Layout.replicated(mesh, 1), (5,)) == [(((0, 5),), 0)]


meshes = st.lists(st.integers(1, 3), min_size=1, max_size=3).map(
    lambda sizes: create_mesh([(f"d{i}", s) for i, s in enumerate(sizes)])
)


@given(meshes, st.data())
def test_unique_shards_tile_the_tensor(mesh: Mesh, data: st.DataObject) -> None:
    rank = data.draw(st.integers(0, 3))
    specs = data.draw(
        st.lists(st.sampled_from([UNSHARDED, *mesh.dim_names]), min_size=rank, max_size=rank)
        .filter(lambda s: len([x for x in s if x != UNSHARDED]) == len(set(x for x in s if x != UNSHARDED)))
    )
    layout = Layout(specs, mesh)
    shape = tuple(layout.num_shards(i) * data.draw(st.integers(1, 3)) for i in range(rank))
    count = np.zeros(shape, dtype=np.int64)
    for box, device in unique_shards(layout, shape):
        assert device_box(layout, shape, device) == box
        count[tuple(slice(s, s + n) for s, n in box)] += 1
    assert (count == 1).all()
    assert Layout.from_string(layout.to_string()) == layout

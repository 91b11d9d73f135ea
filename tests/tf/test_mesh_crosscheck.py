"""Mesh and layout strings, and each device's block, against TF's DTensor on 8 virtual CPUs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("tensorflow")
import tensorflow as tf  # noqa: E402
from tensorflow.experimental import dtensor  # noqa: E402

from dtckpt.mesh import UNSHARDED, Layout, Mesh, create_mesh, device_box  # noqa: E402


def _eight_cpus() -> None:
    cpus = tf.config.list_logical_devices("CPU")
    if len(cpus) < 8:
        pytest.fail(
            "TensorFlow has fewer than 8 logical CPUs: tests/tf/conftest.py must configure "
            "them before TensorFlow starts"
        )


shapes = st.lists(st.integers(1, 4), min_size=1, max_size=3).filter(
    lambda s: int(np.prod(s)) <= 8
)


@st.composite
def layouts(draw: st.DrawFn) -> tuple[list[tuple[str, int]], list[str]]:
    sizes = draw(shapes)
    dims = [(name, size) for name, size in zip(["x", "y", "z"], sizes)]
    rank = draw(st.integers(0, 3))
    names = [n for n, _ in dims]
    specs = draw(
        st.lists(st.sampled_from([UNSHARDED, *names]), min_size=rank, max_size=rank).filter(
            lambda s: len([x for x in s if x != UNSHARDED]) == len({x for x in s if x != UNSHARDED})
        )
    )
    return dims, specs


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layouts(), st.sampled_from(["", "mesh_a"]))
def test_strings_match_tf(case: tuple[list[tuple[str, int]], list[str]], name: str) -> None:
    _eight_cpus()
    dims, specs = case
    count = int(np.prod([s for _, s in dims]))
    devices = [f"CPU:{i}" for i in range(count)]
    theirs = dtensor.Layout(specs, dtensor.create_mesh(dims, mesh_name=name, devices=devices))
    ours = Layout(specs, create_mesh(dims, mesh_name=name, devices=devices))
    assert ours.mesh.to_string() == theirs.mesh.to_string()
    assert ours.to_string() == theirs.to_string()
    assert Layout.from_string(theirs.to_string()) == ours
    assert Mesh.from_string(theirs.mesh.to_string()).shape() == theirs.mesh.shape()
    assert [tuple(t) for t in theirs.offset_to_shard()] == ours.offset_to_shard()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layouts(), st.data())
def test_device_blocks_match_tf_unpack(case: tuple[list[tuple[str, int]], list[str]], data: st.DataObject) -> None:
    _eight_cpus()
    dims, specs = case
    count = int(np.prod([s for _, s in dims]))
    devices = [f"CPU:{i}" for i in range(count)]
    mesh_tf = dtensor.create_mesh(dims, devices=devices)
    ours = Layout(specs, create_mesh(dims, devices=devices))
    shape = tuple(ours.num_shards(i) * data.draw(st.integers(1, 3)) for i in range(len(specs)))
    value = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    replicated = dtensor.Layout.replicated(mesh_tf, len(shape))
    packed = dtensor.relayout(dtensor.copy_to_mesh(tf.constant(value), replicated),
                              dtensor.Layout(specs, mesh_tf))
    for device, component in enumerate(dtensor.unpack(packed)):
        box = device_box(ours, shape, device)
        expected = value[tuple(slice(s, s + n) for s, n in box)]
        assert np.array_equal(component.numpy(), expected), (device, box)

"""The ``tf.experimental.dtensor`` surface on simulated meshes: DVariables as whole variables,
the API functions, arithmetic, the client facts, mesh utilities and ``numpy_util`` (TF-free)."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dtckpt
from dtckpt import dtensor as dd
from dtckpt.dtensor import config, numpy_util
from dtckpt.errors import InvalidArgumentError, UnimplementedError

MESH = dd.create_mesh([("x", 2), ("y", 4)])
XU = dd.Layout(["x", dd.UNSHARDED], MESH)
UY = dd.Layout([dd.UNSHARDED, "y"], MESH)
REP = dd.Layout.replicated(MESH, 2)
VALUE = np.arange(32, dtype=np.float32).reshape(4, 8)


@pytest.fixture
def cpus() -> Iterator[None]:
    """Restores the client's simulated device counts after a test that changes them."""
    saved = dict(config._client().device_counts)
    yield
    config._client().device_counts.clear()
    config._client().device_counts.update(saved)


# -- D-VA-2: a DVariable is a whole variable ------------------------------------------


def test_dvariable_reads_its_whole_value() -> None:
    v = dd.DVariable(dd.copy_to_mesh(VALUE, XU))
    assert np.array_equal(np.asarray(v), VALUE) and np.array_equal(v.numpy(), VALUE)
    assert np.asarray(v, dtype=np.float64).dtype == np.float64
    for read in (v.read_value(), v.value()):
        assert isinstance(read, dd.DTensor) and dd.fetch_layout(read) == XU
        assert np.array_equal(dd.unpack(read)[5], VALUE[2:])
        assert np.array_equal(dd.relayout(read, UY).numpy(), VALUE)
    assert dd.fetch_layout(v) == XU and dd.is_dtensor(v) and v.layout == XU
    # The value read is a view the variable never writes into; it cannot write back either.
    read = v.read_value()
    with pytest.raises(ValueError):
        read.components[0][0, 0] = 99
    v.assign_add(np.ones((4, 8), np.float32))
    assert np.array_equal(read.numpy(), VALUE) and np.array_equal(v.numpy(), VALUE + 1)


def test_assignments_keep_the_layout() -> None:
    v = dd.DVariable(dd.copy_to_mesh(VALUE, XU), name="w")
    assert v.assign_add(dd.copy_to_mesh(VALUE, UY)) is v
    assert dd.fetch_layout(v) == XU and np.array_equal(v.numpy(), 2 * VALUE)
    v.assign_sub(VALUE)
    assert dd.fetch_layout(v) == XU and np.array_equal(v.numpy(), VALUE)
    v.assign(dd.copy_to_mesh(np.zeros((4, 8), np.float32), REP))
    assert dd.fetch_layout(v) == XU and not v.numpy().any()
    v.assign(VALUE.astype(np.float64))  # cast within its kind, as Variable
    assert v.dtype == np.float32 and np.array_equal(v.numpy(), VALUE)
    source = dd.copy_to_mesh(VALUE, XU)
    v.assign(source)
    source.components[0][0, 0] = 99  # the variable copied what it was given
    assert v.numpy()[0, 0] == 0
    with pytest.raises(InvalidArgumentError, match=r"variable ' w:0': Shape mismatch.The variable"):
        v.assign(np.zeros((2, 8), np.float32))
    with pytest.raises(InvalidArgumentError, match="does not match the variable's dtype"):
        v.assign_add(np.ones((4, 8), np.complex64))
    for component in v.read_value().components:
        assert component.shape == (2, 8)


def test_scalar_dvariable_as_tf() -> None:
    scalar = dd.Layout.replicated(MESH, 0)
    w = dd.DVariable(dd.relayout(np.float32(1.0), scalar))
    w.assign_add(dd.relayout(np.float32(1.0), scalar))
    dd.check_layout(w, scalar)
    assert w.numpy() == 2.0 and float(w.read_value()) == 2.0
    w.assign_add(1.0)
    assert w.numpy() == 3.0 and w.dtype == np.float32


def test_dvariable_construction_as_tf() -> None:
    with pytest.raises(InvalidArgumentError, match="Neither layout nor DTensor initial value"):
        dd.DVariable(1.0)
    with pytest.raises(
        InvalidArgumentError, match=r"Conflicting layout are provided .*Layout\.from"
    ):
        dd.DVariable(dd.copy_to_mesh(VALUE, XU), layout=UY)
    with pytest.raises(
        InvalidArgumentError, match="requested dtype float32 for Tensor with dtype float64"
    ):
        dd.DVariable(dd.copy_to_mesh(VALUE.astype(np.float64), XU), dtype="float32")
    placed = dd.DVariable(VALUE, layout=UY)
    assert dd.fetch_layout(placed) == UY and np.array_equal(placed.numpy(), VALUE)
    assert dd.DVariable(1.0, layout=dd.Layout.replicated(MESH, 0)).dtype == np.float32
    assert dd.DVariable(lambda: dd.copy_to_mesh(VALUE, XU), name="n:0").name == "n:0"
    assert dd.DVariable(dd.copy_to_mesh(VALUE, XU), layout=XU).layout == XU


def test_variable_of_a_dtensor_is_a_dvariable() -> None:
    v = dtckpt.Variable(dd.copy_to_mesh(VALUE, XU))
    assert isinstance(v, dd.DVariable) and dd.fetch_layout(v) == XU
    w = dtckpt.Variable(initial_value=dd.copy_to_mesh(VALUE, UY), name="w")
    assert isinstance(w, dd.DVariable) and w.name == "w:0"
    assert type(dtckpt.Variable(VALUE)) is dtckpt.Variable


def test_dvariables_in_expressions() -> None:
    v = dd.DVariable(dd.copy_to_mesh(VALUE, XU))
    for result in (v + v, v * 2, 1 - v, v / 2, -v, v - v.read_value()):
        assert isinstance(result, dd.DTensor) and result.layout == XU
    assert np.array_equal((1 - v).numpy(), 1 - VALUE)


def test_restore_errors_are_tfs(tmp_path: pathlib.Path) -> None:
    path = dtckpt.Checkpoint(v=dd.DVariable(dd.copy_to_mesh(VALUE, XU))).write(str(tmp_path / "c"))
    wider = dd.DVariable(dd.copy_to_mesh(np.zeros((8, 8), np.float32), XU))
    with pytest.raises(
        InvalidArgumentError,
        match=r"tensor_name = v/\.ATTRIBUTES/VARIABLE_VALUE; shape in shape_and_slice spec \[8,8\] "
        r"does not match the shape stored in checkpoint: \[4,8\]",
    ) as info:
        dtckpt.Checkpoint(v=wider).read(path)
    assert info.value.key == "v/.ATTRIBUTES/VARIABLE_VALUE"
    doubles = dd.DVariable(dd.copy_to_mesh(np.zeros((4, 8)), XU))
    with pytest.raises(
        InvalidArgumentError, match="expected dtype double does not equal original dtype float"
    ):
        dtckpt.Checkpoint(v=doubles).read(path)
    assert not doubles.numpy().any() and not wider.numpy().any()


# -- D-TE-3, D-TE-4: arithmetic and default dtypes -----------------------------------------


def test_arithmetic_keeps_equal_layouts() -> None:
    a = dd.copy_to_mesh(VALUE, XU)
    total = a + a
    assert total.layout == XU and np.array_equal(total.numpy(), 2 * VALUE)
    assert (a + 1.0).dtype == np.float32 and (a + 1.0).layout == XU
    assert np.array_equal((a**2).numpy(), VALUE**2) and np.array_equal(abs(-a).numpy(), VALUE)
    assert np.array_equal((a // 3 % 2).numpy(), VALUE // 3 % 2)
    assert np.array_equal((a + VALUE).numpy(), 2 * VALUE)  # an array of the shape is cut first
    # Different layouts meet on the left's sharding, completed by the right's.
    mixed = a + dd.copy_to_mesh(VALUE, UY)
    assert mixed.layout.sharding_specs == ["x", "y"] and np.array_equal(mixed.numpy(), 2 * VALUE)
    assert (dd.copy_to_mesh(VALUE, REP) + a).layout == XU
    one = dd.copy_to_mesh(np.float32(1), dd.Layout.replicated(MESH, 0))
    assert (one + a).layout == XU and np.array_equal((one + a).numpy(), VALUE + 1)


def test_arithmetic_errors() -> None:
    a = dd.copy_to_mesh(VALUE, XU)
    other = dd.create_mesh([("x", 2)])
    with pytest.raises(InvalidArgumentError, match="one mesh"):
        a + dd.copy_to_mesh(VALUE, dd.Layout(["x", dd.UNSHARDED], other))
    with pytest.raises(InvalidArgumentError, match="broadcasts only"):
        a + dd.copy_to_mesh(VALUE[:2], XU)
    with pytest.raises(InvalidArgumentError, match="broadcasts only scalars"):
        a + np.ones(8)


def test_python_values_take_tf_dtypes() -> None:
    scalar = dd.Layout.replicated(MESH, 0)
    assert dd.copy_to_mesh(1.0, scalar).dtype == np.float32
    assert dd.copy_to_mesh(1, scalar).dtype == np.int32
    assert dd.copy_to_mesh(2**40, scalar).dtype == np.int64
    assert dd.relayout([1.0, 2.0], dd.Layout(["x"], MESH)).dtype == np.float32
    assert dd.copy_to_mesh(np.float64(1.0), scalar).dtype == np.float64
    assert dd.pack([1.0] * 8, scalar).dtype == np.float32


# -- D-TE-1, D-TE-2, D-AP-1: the functions ----------------------------------------------------


def test_api_functions_and_their_errors() -> None:
    a = dd.copy_to_mesh(VALUE, XU)
    dd.check_layout(a, XU)
    with pytest.raises(
        InvalidArgumentError, match=r"^Layout of tensor: Layout\.from_string\(sharding_specs:x,"
    ):
        dd.check_layout(a, UY)
    assert not dd.is_dtensor(VALUE) and not dd.is_dtensor(3)
    with pytest.raises(
        InvalidArgumentError, match="FetchLayout expects a tensor placed on the layout"
    ):
        dd.fetch_layout(VALUE)
    with pytest.raises(
        InvalidArgumentError, match="DTensorUnpack expects a tensor placed on the DTensor"
    ):
        dd.unpack(VALUE)
    with pytest.raises(InvalidArgumentError, match="expected 8 inputs to DTensorPack, but got 3"):
        dd.pack([np.zeros(2)] * 3, XU)
    with pytest.raises(UnimplementedError, match="must currently all have the same shape"):
        dd.pack([np.zeros((2, 8))] * 7 + [np.zeros((1, 8))], XU)
    with pytest.raises(InvalidArgumentError, match="Packed layout should have the same rank"):
        dd.pack([np.zeros(2)] * 8, XU)
    assert dd.relayout_like(VALUE, a).layout == XU
    assert dd.call_with_layout(np.zeros, None, (2,)).shape == (2,)
    made = dd.call_with_layout(np.ones, UY, (4, 8), dtype=np.int8)
    assert made.layout == UY and made.dtype == np.int8 and made.components[3].shape == (4, 2)
    with pytest.raises(UnimplementedError):
        dd.copy_to_mesh(1.0, dd.Layout.from_device("CPU:0"))


def test_relayout_match_keeps_the_source_sharding() -> None:
    xy = dd.Layout(["x", "y"], MESH)
    moved = dd.relayout(dd.copy_to_mesh(VALUE, xy), dd.Layout([dd.MATCH, dd.UNSHARDED], MESH))
    assert moved.layout == XU and np.array_equal(moved.numpy(), VALUE)
    parted = dd.relayout(moved, dd.Layout([dd.UNSHARDED, dd.MATCH], MESH).to_parted())
    assert parted.layout == REP.to_parted()
    with pytest.raises(InvalidArgumentError, match="'match'"):
        dd.copy_to_mesh(VALUE, dd.Layout([dd.MATCH, "y"], MESH))


def test_copy_to_mesh_between_meshes() -> None:
    other = dd.create_mesh([("a", 4), ("b", 2)])
    moved = dd.copy_to_mesh(dd.copy_to_mesh(VALUE, XU), dd.Layout(["b", "a"], other))
    assert moved.layout.mesh == other and np.array_equal(moved.numpy(), VALUE)
    assert moved.components[3].shape == (2, 2)


# -- D-AP-2: default mesh, device name ------------------------------------------------------


def test_default_mesh_scopes() -> None:
    other = MESH.host_mesh()
    assert dd.get_default_mesh() is None
    with dd.default_mesh(MESH):
        assert dd.get_default_mesh() == MESH
        with dd.run_on(other):
            assert dd.get_default_mesh() is other
        assert dd.get_default_mesh() == MESH
    assert dd.get_default_mesh() is None

    @dd.default_mesh(MESH)
    def inside() -> Any:
        return dd.get_default_mesh()

    assert inside() == MESH and dd.get_default_mesh() is None
    with pytest.raises(
        InvalidArgumentError, match="Expect `mesh` to be `Mesh`, got <class 'NoneType'>"
    ):
        with dd.default_mesh(None):  # type: ignore[arg-type]
            pass
    seen = dd.call_with_layout(
        lambda: dd.copy_to_mesh(dd.get_default_mesh() is MESH, dd.Layout([], MESH)),
        XU.delete([0, 1]),
    )
    assert bool(seen)
    assert dd.device_name() == "/job:localhost/replica:0/task:0/device:CUSTOM:0"


# -- D-CF-1, D-MU-1: the client and its meshes -----------------------------------------------


def test_client_facts(cpus: None) -> None:
    assert (dd.client_id(), dd.num_clients(), dd.job_name(), dd.jobs()) == (0, 1, "localhost", [])
    assert dd.full_job_name() == "localhost/replica:0/task:0"
    with pytest.raises(InvalidArgumentError, match="Unexpected task ID 1 in local runs"):
        dd.full_job_name(1)
    assert (
        dd.num_local_devices("CPU"),
        dd.num_local_devices("TPU"),
        dd.num_local_devices("XPU"),
    ) == (1, 0, 0)
    dd.set_num_local_devices("cpu", 4)
    assert dd.num_global_devices("CPU") == 4
    assert [d.to_string() for d in dd.local_devices("CPU")][
        -1
    ] == "/job:localhost/replica:0/task:0/device:CPU:3"
    assert dd.local_devices("GPU") == [] and dd.preferred_device_type() == "CPU"
    with pytest.raises(InvalidArgumentError, match="Device type XPU is not CPU, GPU, or TPU."):
        dd.local_devices("XPU")
    with pytest.raises(InvalidArgumentError):
        dd.set_num_local_devices("CPU", -1)
    dd.set_num_local_devices("TPU", 2)
    assert dd.preferred_device_type() == "TPU"


def test_mesh_utilities(cpus: None) -> None:
    assert dd.create_mesh().shape() == [1]
    dd.set_num_local_devices("CPU", 4)
    assert dd.create_mesh().dim_names == ["x"] and dd.create_mesh().size == 4
    assert dd.create_mesh([("b", -1)]).shape() == [4]
    mesh = dd.create_distributed_mesh({"x": 2, "y": 2}, mesh_name="d")
    assert mesh.local_device_ids() == [0, 1, 2, 3] and mesh.name == "d"
    small = dd.create_distributed_mesh([("x", 2)], local_devices=["CPU:0", "CPU:1"])
    assert small.local_devices()[1] == "/job:localhost/replica:0/task:0/device:CPU:1"
    with pytest.raises(
        InvalidArgumentError, match=r"\(4 per client \* 1 clients = 4\) must be equal"
    ):
        dd.create_distributed_mesh([("x", 8)])
    with pytest.raises(InvalidArgumentError, match="XLA SPMD is not currently not supported"):
        dd.create_distributed_mesh([("x", 4)], use_xla_spmd=True)
    with pytest.raises(InvalidArgumentError, match="Do not specify devices for TPU meshes"):
        dd.create_distributed_mesh([("x", 1)], local_devices=["TPU:0"], device_type="TPU")
    with pytest.raises(InvalidArgumentError, match="no GPU devices"):
        dd.create_distributed_mesh([("x", 1)], device_type="GPU")
    assert dd.barrier(mesh) is None and dd.barrier(mesh, "named", timeout_in_ms=1) is None
    with pytest.raises(InvalidArgumentError):
        dd.barrier("mesh")  # type: ignore[arg-type]


# -- D-NU-1: numpy_util -------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from([XU, UY, REP, dd.Layout(["y", "x"], MESH)]),
    st.sampled_from(["float32", "int64"]),
)
def test_numpy_util_round_trips(layout: dd.Layout, dtype: str) -> None:
    value = VALUE.astype(dtype)
    blocks = numpy_util.unpack(value, layout)
    assert len(blocks) == 8 and np.array_equal(numpy_util.unpacked_to_numpy(blocks, layout), value)
    packed = numpy_util.pack_numpy(value, layout)
    assert packed.layout == layout and np.array_equal(numpy_util.to_numpy(packed), value)
    assert np.array_equal(numpy_util.to_numpy(dd.DVariable(packed)), value)


def test_numpy_util_lower_rank_blocks() -> None:
    # As TensorFlow's np.block assembly: rank-1 blocks under a rank-2 layout whose
    # leading dimension is unsharded stand for blocks of shape (1, n).
    assert numpy_util.unpacked_to_numpy([np.arange(4)] * 8, REP).tolist() == [0, 1, 2, 3]
    halves = [np.arange(4) + 4 * (d % 4 // 2) for d in range(8)]
    two = dd.Layout([dd.UNSHARDED, dd.UNSHARDED], dd.create_mesh([("x", 2), ("y", 4)]))
    assert numpy_util.unpacked_to_numpy(halves[:1] * 8, two).shape == (4,)
    with pytest.raises(InvalidArgumentError, match="shards its leading dimensions"):
        numpy_util.unpacked_to_numpy([np.arange(4)] * 8, XU)
    with pytest.raises(InvalidArgumentError, match="Wrong number of component Tensors."):
        numpy_util.unpacked_to_numpy([np.arange(4)] * 3, REP)
    with pytest.raises(InvalidArgumentError, match="component 4 has shape"):
        numpy_util.unpacked_to_numpy([np.zeros((2, 8))] * 4 + [np.zeros((3, 8))] * 4, XU)


def test_dtensor_components_are_checked() -> None:
    parts = [np.zeros((2, 8), np.float32) for _ in range(8)]
    assert dd.DTensor(parts, XU, (4, 8)).shape == (4, 8)
    for bad in (
        parts[:7] + [np.zeros((3, 8), np.float32)],
        parts[:7] + [np.zeros((2, 8), np.float64)],
        parts[:7] + [[0.0] * 8],
    ):
        with pytest.raises(InvalidArgumentError, match="component 7 of a DTensor"):
            dd.DTensor(bad, XU, (4, 8))  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="needs 8 components"):
        dd.DTensor(parts[:3], XU, (4, 8))

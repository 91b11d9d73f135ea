"""dtckpt's ``tf.experimental.dtensor`` surface against TensorFlow's, on 8 virtual CPUs.

Mesh and layout protos byte for byte, strings, ``repr``/``str``, error types and messages,
locations and host meshes, the client facts, default dtypes, and what DVariables and DTensor
arithmetic give, each compared with live TensorFlow.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("tensorflow")
import tensorflow as tf  # noqa: E402
from tensorflow.dtensor.python import api as tf_api  # noqa: E402
from tensorflow.dtensor.python import layout as tf_layout  # noqa: E402
from tensorflow.python.eager import context as tf_context  # noqa: E402
from tensorflow.experimental import dtensor as tfd  # noqa: E402

import dtckpt  # noqa: E402
from dtckpt import dtensor as dd  # noqa: E402
from dtckpt.dtensor import config  # noqa: E402

HOST = "/job:localhost/replica:0/task:0/device:"
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _devices(kind: str, count: int) -> list[str]:
    return [f"{HOST}{kind}:{i}" for i in range(count)]


@pytest.fixture(autouse=True)
def fresh_dtensor_device() -> Iterator[None]:
    """A new TensorFlow DTensor device per test, as TensorFlow's own DTensor tests reset it:
    an op that fails on purpose poisons the device's executor for what follows."""
    yield
    try:
        tf_context.async_wait()  # raises what a failed op left pending
    except Exception:  # noqa: BLE001, S110 - a failure the test provoked on purpose
        pass
    try:
        tf.experimental.async_clear_error()
    except ValueError:  # the test never started TensorFlow's eager context
        return
    tf_api._reset()


@pytest.fixture
def eight_cpus() -> Iterator[None]:
    """dtckpt's client gets TensorFlow's 8 logical CPUs (tests/tf/conftest.py) for the test."""
    if len(tf.config.list_logical_devices("CPU")) < 8:
        pytest.fail("TensorFlow has fewer than 8 logical CPUs: see tests/tf/conftest.py")
    saved = dict(config._client().device_counts)
    dd.set_num_local_devices("CPU", 8)
    yield
    config._client().device_counts.clear()
    config._client().device_counts.update(saved)


@st.composite
def meshes(draw: st.DrawFn) -> dict[str, Any]:
    sizes = draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    count = int(np.prod(sizes))
    kind = draw(st.sampled_from(["CPU", "GPU", "TPU"]))
    local = draw(st.integers(0, count)) if draw(st.booleans()) else count
    return {
        "dim_names": [f"d{i}" for i in range(len(sizes))],
        "ids": np.arange(count).reshape(sizes),
        "local_ids": list(range(local)),
        "local": _devices(kind, local),
        "name": draw(st.sampled_from(["", "mesh_a"])),
        "global": _devices(kind, count) if local < count else None,
        "xla": kind == "TPU" and draw(st.booleans()),
    }


def _pair(case: dict[str, Any]) -> tuple[Any, dd.Mesh]:
    args = (case["dim_names"], case["ids"], case["local_ids"], case["local"])
    kwargs = dict(mesh_name=case["name"], global_devices=case["global"], use_xla_spmd=case["xla"])
    return tf_layout.Mesh(*args, **kwargs), dd.Mesh(*args, **kwargs)


@SETTINGS
@given(meshes(), st.data())
def test_protos_strings_and_reprs_are_tfs(case: dict[str, Any], data: st.DataObject) -> None:
    theirs, ours = _pair(case)
    assert ours.to_string() == theirs.to_string()
    assert repr(ours) == repr(theirs) and str(ours) == str(theirs)
    tf_bytes = theirs.as_proto().SerializeToString()
    assert ours.as_proto().SerializeToString() == tf_bytes
    assert dd.Mesh.from_proto(tf_bytes) == ours
    assert (
        tf_layout.Mesh.from_proto(
            type(theirs.as_proto()).FromString(ours.as_proto().SerializeToString())
        )
        == theirs
    )
    rank = data.draw(st.integers(0, 3))
    specs = data.draw(
        st.lists(
            st.sampled_from([dd.UNSHARDED, *ours.dim_names]), min_size=rank, max_size=rank
        ).filter(
            lambda s: (
                len([x for x in s if x != dd.UNSHARDED]) == len({x for x in s if x != dd.UNSHARDED})
            )
        )
    )
    tf_l, our_l = tf_layout.Layout(specs, theirs), dd.Layout(specs, ours)
    if data.draw(st.booleans()):
        tf_l, our_l = tf_l.to_parted(), our_l.to_parted()
    assert our_l.to_string() == tf_l.to_string() and repr(our_l) == repr(tf_l)
    assert our_l.as_proto().SerializeToString() == tf_l.as_proto().SerializeToString()
    assert dd.Layout.from_proto(tf_l.as_proto().SerializeToString()) == our_l
    assert int(our_l.type) == int(tf_l.as_proto().type)
    assert our_l.is_batch_parallel() == tf_l.is_batch_parallel()
    assert our_l.is_fully_replicated() == tf_l.is_fully_replicated()
    assert our_l.offset_to_shard() == [tuple(t) for t in tf_l.offset_to_shard()]


@SETTINGS
@given(meshes())
def test_locations_and_host_meshes_are_tfs(case: dict[str, Any]) -> None:
    theirs, ours = _pair(case)
    assert ours.unravel_index() == theirs.unravel_index()
    assert ours.strides == theirs.strides and ours.is_remote() == theirs.is_remote()
    for idx in range(2 * ours.size):
        assert ours.coords(idx).tolist() == theirs.coords(idx).numpy().tolist()
    for offset in range(ours.size):
        assert ours.device_location(offset) == theirs.device_location(offset)
    assert ours.local_device_locations() == theirs.local_device_locations()
    if case["local"]:  # TensorFlow's host mesh of a mesh with no local device has no device
        tf_host, our_host = _message(theirs.host_mesh), _message(ours.host_mesh)
        if isinstance(tf_host, tuple) and isinstance(our_host, tuple):
            assert our_host[1] == tf_host[1].splitlines()[0]  # both refuse: uneven local devices
        else:
            assert isinstance(tf_host, tf_layout.Mesh) and isinstance(our_host, dd.Mesh)
            assert our_host.to_string() == tf_host.to_string()
    assert ours.device_type() == theirs.device_type()
    for dim in ours.dim_names:
        assert tuple(ours[dim]) == tuple(theirs[dim]) and (dim in ours) == (dim in theirs)
    assert ("nope" in ours) == ("nope" in theirs)


def test_single_device_meshes_and_layouts_are_tfs() -> None:
    for device in (HOST + "CPU:0", "job:localhost/replica:0/task:0/TPU:0"):
        theirs, ours = tf_layout.Mesh.from_device(device), dd.Mesh.from_device(device)
        assert ours.to_string() == theirs.to_string() and repr(ours) == repr(theirs)
        assert ours.as_proto().SerializeToString() == theirs.as_proto().SerializeToString()
        assert (ours.size, ours.shape()) == (theirs.size, theirs.shape())
        if device.startswith("/"):  # TensorFlow reads "job" as the type of the other spelling
            assert ours.device_type() == theirs.device_type()
        tf_l, our_l = tf_layout.Layout.from_device(device), dd.Layout.from_device(device)
        assert our_l.to_string() == tf_l.to_string() and repr(our_l) == repr(tf_l)
        assert our_l.as_proto().SerializeToString() == tf_l.as_proto().SerializeToString()


def _message(build: Callable[[], Any]) -> Any:
    """``(error type, message)`` of what ``build`` raises, or what it returns."""
    try:
        return build()
    except Exception as exc:  # noqa: BLE001 - the point is to see what each raises
        # A failed TensorFlow op poisons its eager executor until the error is cleared.
        tf.experimental.async_clear_error()
        return type(exc), str(exc)


def _raised(build: Callable[[], Any]) -> tuple[type[BaseException], str]:
    out = _message(build)
    assert isinstance(out, tuple) and isinstance(out[0], type), f"no error raised: {out!r}"
    return out


ids2 = np.arange(2)
CONSTRUCTOR_ERRORS = [
    ("empty", lambda M: M(["x"], np.array([], dtype=int), [], [])),
    ("decreasing", lambda M: M(["x"], np.array([1, 0]), [1, 0], _devices("CPU", 2))),
    ("rank", lambda M: M(["x"], np.arange(4).reshape(2, 2), [0, 1, 2, 3], _devices("CPU", 4))),
    ("no devices", lambda M: M(["x"], ids2, [], [])),
    ("duplicate", lambda M: M(["x"], ids2, [0, 1], _devices("GPU", 1) * 2)),
    ("count", lambda M: M(["x"], ids2, [0], _devices("CPU", 2))),
    ("no type", lambda M: M(["x"], ids2, [0, 1], ["/job:a/task:0", "/job:a/task:1"])),
    ("xla cpu", lambda M: M(["x"], ids2, [0, 1], _devices("CPU", 2), use_xla_spmd=True)),
    ("xla gpu", lambda M: M(["x"], ids2, [0, 1], _devices("GPU", 2), use_xla_spmd=True)),
]


@pytest.mark.parametrize("name, build", CONSTRUCTOR_ERRORS, ids=[c[0] for c in CONSTRUCTOR_ERRORS])
def test_mesh_errors_are_tfs(name: str, build: Callable[[Any], Any]) -> None:
    tf_type, tf_text = _raised(lambda: build(tf_layout.Mesh))
    our_type, our_text = _raised(lambda: build(dd.Mesh))
    assert issubclass(our_type, tf_type) and our_text == tf_text


def test_other_errors_are_tfs() -> None:
    mesh_tf, mesh = tfd.create_mesh([("x", 2), ("y", 4)]), dd.create_mesh([("x", 2), ("y", 4)])
    mixed = [HOST + "CPU:0", HOST + "TPU:1"]
    cases: list[tuple[Callable[[], Any], Callable[[], Any]]] = [
        (
            lambda: tf_layout.Mesh(["x"], ids2, [0, 1], mixed),
            lambda: dd.Mesh(["x"], ids2, [0, 1], mixed),
        ),
        (lambda: tfd.Layout(["x"], "m"), lambda: dd.Layout(["x"], "m")),  # type: ignore[arg-type]
        (lambda: tfd.Layout(["x", "x"], mesh_tf), lambda: dd.Layout(["x", "x"], mesh)),
        (lambda: tfd.Layout(["z"], mesh_tf), lambda: dd.Layout(["z"], mesh)),
        (lambda: mesh_tf["z"], lambda: mesh["z"]),
        (lambda: mesh_tf.device_location(8), lambda: mesh.device_location(8)),
        (lambda: tfd.full_job_name(1), lambda: dd.full_job_name(1)),
        (lambda: tfd.local_devices("XPU"), lambda: dd.local_devices("XPU")),
        (lambda: tfd.default_mesh(None).__enter__(), lambda: dd.default_mesh(None).__enter__()),  # type: ignore[arg-type]
        (
            lambda: tfd.create_mesh([("b", 4)], devices=["CPU:0", "CPU:1"]),
            lambda: dd.create_mesh([("b", 4)], devices=["CPU:0", "CPU:1"]),
        ),
        (lambda: tfd.DVariable(1.0), lambda: dd.DVariable(1.0)),
    ]
    for theirs, ours in cases:
        tf_type, tf_text = _raised(theirs)
        our_type, our_text = _raised(ours)
        assert issubclass(our_type, ValueError) and issubclass(
            tf_type, (ValueError, tf.errors.InvalidArgumentError)
        )
        if "multiple device_types" in tf_text:  # TensorFlow prints a set, in no fixed order
            assert our_text.split(" : ")[0] == tf_text.split(" : ")[0]
        else:
            assert our_text == tf_text, (our_text, tf_text)


def test_layout_errors_of_dvariables_are_tfs() -> None:
    mesh_tf, mesh = tfd.create_mesh([("x", 2), ("y", 4)]), dd.create_mesh([("x", 2), ("y", 4)])
    value = np.arange(8, dtype=np.float32).reshape(4, 2)
    sharded = ["x", dd.UNSHARDED]
    a_tf = tfd.copy_to_mesh(value, tfd.Layout(sharded, mesh_tf))
    a = dd.copy_to_mesh(value, dd.Layout(sharded, mesh))
    rep_tf, rep = tfd.Layout.replicated(mesh_tf, 2), dd.Layout.replicated(mesh, 2)
    pairs = [
        (lambda: tfd.DVariable(a_tf, layout=rep_tf), lambda: dd.DVariable(a, layout=rep)),
        (lambda: tfd.check_layout(a_tf, rep_tf), lambda: dd.check_layout(a, rep)),
        (
            lambda: tfd.DVariable(tf.constant(value), layout=rep_tf).assign(
                np.zeros((2, 2), np.float32)
            ),
            lambda: dd.DVariable(value, layout=rep).assign(np.zeros((2, 2), np.float32)),
        ),
    ]
    for theirs, ours in pairs:
        tf_type, tf_text = _raised(theirs)
        our_type, our_text = _raised(ours)
        assert issubclass(our_type, ValueError) and our_text == tf_text, (our_text, tf_text)


def test_restore_mismatch_messages_are_tfs() -> None:
    # A DVariable restore that TensorFlow refuses fails inside its RestoreV2 op (and
    # poisons the DTensor device for the rest of the process); the op's message is
    # compared here by calling RestoreV2 as TensorFlow's DTensor restore does.
    value = np.arange(8, dtype=np.float32).reshape(4, 2)
    mesh_tf, mesh = tfd.create_mesh([("x", 2), ("y", 4)]), dd.create_mesh([("x", 2), ("y", 4)])
    key = "v/.ATTRIBUTES/VARIABLE_VALUE"
    with tempfile.TemporaryDirectory() as tmp:
        layout_tf = tfd.Layout(["x", dd.UNSHARDED], mesh_tf)
        saved = tfd.DVariable(tfd.copy_to_mesh(value, layout_tf))
        path = tf.train.Checkpoint(v=saved).write(os.path.join(tmp, "c"))
        for wrong, spec in ((np.zeros((8, 2), np.float32), "8 2 0,4:-"), (np.zeros((4, 2)), "")):
            tf_type, tf_text = _raised(
                lambda: tf.raw_ops.RestoreV2(
                    prefix=path, tensor_names=[key], shape_and_slices=[spec], dtypes=[wrong.dtype]
                )
            )
            ours = dd.DVariable(dd.copy_to_mesh(wrong, dd.Layout(["x", dd.UNSHARDED], mesh)))
            our_type, our_text = _raised(lambda: dtckpt.Checkpoint(v=ours).read(path))
            core = tf_text[tf_text.index("tensor_name = ") :].split(" [Op:")[0]
            assert issubclass(our_type, ValueError) and our_text.endswith(core), (our_text, core)


def test_client_facts_and_default_meshes_are_tfs(eight_cpus: None) -> None:
    assert (dd.client_id(), dd.num_clients(), dd.job_name(), dd.jobs(), dd.full_job_name()) == (
        tfd.client_id(),
        tfd.num_clients(),
        tfd.job_name(),
        tfd.jobs(),
        tfd.full_job_name(),
    )
    for kind in ("CPU", "GPU", "TPU"):
        assert dd.num_local_devices(kind) == tfd.num_local_devices(kind)
        assert dd.num_global_devices(kind) == tfd.num_global_devices(kind)
        assert [d.to_string() for d in dd.local_devices(kind)] == [
            d.to_string() for d in tfd.local_devices(kind)
        ]
    # TensorFlow numbers its DTensor devices (CUSTOM:0 for the first one a process makes).
    assert dd.device_name() == tfd.device_name().rsplit(":", 1)[0] + ":0"
    assert dd.preferred_device_type() == tfd.preferred_device_type()
    for dims in (None, [("b", -1)], {"b": -1}, [("x", 2), ("y", 4)], {"x": 8, "y": 1}):
        assert dd.create_mesh(dims).to_string() == tfd.create_mesh(dims).to_string()
    devices = ["CPU:0", "/device:CPU:1", "/job:localhost/replica:0/task:0/device:CPU:2", "cpu:3"]
    assert (
        dd.create_mesh([("x", 4)], devices=devices).to_string()
        == tfd.create_mesh([("x", 4)], devices=devices).to_string()
    )
    mesh = dd.create_mesh([("x", 8)])
    with dd.default_mesh(mesh):
        assert dd.get_default_mesh() == mesh
    assert dd.get_default_mesh() is None


def test_default_dtypes_are_tfs() -> None:
    mesh_tf, mesh = tfd.create_mesh([("x", 8)]), dd.create_mesh([("x", 8)])
    for value, rank in ((1.0, 0), (1, 0), ([1.0, 2.0] * 4, 1), ([1, 2] * 4, 1), (2**40, 0)):
        theirs = tfd.copy_to_mesh(value, tfd.Layout.replicated(mesh_tf, rank))
        ours = dd.copy_to_mesh(value, dd.Layout.replicated(mesh, rank))
        assert ours.dtype == theirs.dtype.as_numpy_dtype, value
    theirs = tfd.pack([1.0] * 8, tfd.Layout.replicated(mesh_tf, 0))
    assert dd.pack([1.0] * 8, dd.Layout.replicated(mesh, 0)).dtype == theirs.dtype.as_numpy_dtype


@pytest.mark.parametrize(
    "left, right",
    [
        (["x", "unsharded"], ["x", "unsharded"]),
        (["x", "unsharded"], ["unsharded", "unsharded"]),
        (["unsharded", "unsharded"], ["x", "unsharded"]),
        (["unsharded", "y"], ["unsharded", "y"]),
    ],
)
def test_arithmetic_layouts_and_values_are_tfs(left: list[str], right: list[str]) -> None:
    mesh_tf, mesh = tfd.create_mesh([("x", 2), ("y", 4)]), dd.create_mesh([("x", 2), ("y", 4)])
    a_np = np.arange(32, dtype=np.float32).reshape(4, 8)
    b_np = a_np[::-1].copy()
    a_tf = tfd.copy_to_mesh(a_np, tfd.Layout(left, mesh_tf))
    b_tf = tfd.copy_to_mesh(b_np, tfd.Layout(right, mesh_tf))
    a, b = (
        dd.copy_to_mesh(a_np, dd.Layout(left, mesh)),
        dd.copy_to_mesh(b_np, dd.Layout(right, mesh)),
    )
    for theirs, ours in ((a_tf + b_tf, a + b), (a_tf * 2.0, a * 2.0), (a_tf - 1.0, a - 1.0)):
        assert dd.fetch_layout(ours).to_string() == tfd.fetch_layout(theirs).to_string()
        parts_tf = [t.numpy() for t in tfd.unpack(theirs)]
        assert all(np.array_equal(p, q) for p, q in zip(dd.unpack(ours), parts_tf, strict=True))
        assert ours.dtype == theirs.dtype.as_numpy_dtype


def test_dvariables_behave_as_tfs() -> None:
    mesh_tf, mesh = tfd.create_mesh([("x", 2), ("y", 4)]), dd.create_mesh([("x", 2), ("y", 4)])
    value = np.arange(32, dtype=np.float32).reshape(4, 8)
    specs = ["x", dd.UNSHARDED]
    v_tf = tfd.DVariable(tfd.copy_to_mesh(value, tfd.Layout(specs, mesh_tf)))
    v = dd.DVariable(dd.copy_to_mesh(value, dd.Layout(specs, mesh)))
    delta_tf = tfd.copy_to_mesh(np.ones((4, 8), np.float32), tfd.Layout.replicated(mesh_tf, 2))
    delta = dd.copy_to_mesh(np.ones((4, 8), np.float32), dd.Layout.replicated(mesh, 2))
    v_tf.assign_add(delta_tf)
    v.assign_add(delta)
    v_tf.assign_sub(tfd.relayout(delta_tf, tfd.Layout(specs, mesh_tf)) * 3.0)
    v.assign_sub(dd.relayout(delta, dd.Layout(specs, mesh)) * 3.0)
    for theirs, ours in ((v_tf, v), (v_tf.read_value(), v.read_value()), (v_tf.value(), v.value())):
        assert dd.fetch_layout(ours).to_string() == tfd.fetch_layout(theirs).to_string()
        parts_tf = [t.numpy() for t in tfd.unpack(tfd.relayout(theirs, tfd.fetch_layout(theirs)))]
        assert all(np.array_equal(p, q) for p, q in zip(dd.unpack(ours), parts_tf, strict=True))
    moved_tf = tfd.relayout(v_tf, tfd.Layout.replicated(mesh_tf, 2))
    assert np.array_equal(np.asarray(v), moved_tf.numpy())
    assert np.array_equal(dd.relayout(v, dd.Layout.replicated(mesh, 2)).numpy(), moved_tf.numpy())
    assert dd.is_dtensor(v) == tfd.is_dtensor(v_tf)

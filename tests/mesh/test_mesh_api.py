"""Device names, the Mesh and Layout surface of ``tf.experimental.dtensor``, and their protos."""

from __future__ import annotations

import copy
import itertools
import pickle

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dtckpt.errors import DataLossError, InvalidArgumentError
from dtckpt.mesh import (
    MATCH,
    UNSHARDED,
    DeviceSpec,
    Layout,
    LayoutProto,
    LayoutType,
    Mesh,
    MeshProto,
    block_device,
    create_mesh,
    device_box,
    overlapping_blocks,
    unique_shards,
)
from dtckpt.mesh.proto import decode_mesh_proto

HOST = "/job:localhost/replica:0/task:0/device:"


def devices(kind: str, count: int) -> list[str]:
    return [f"{HOST}{kind}:{i}" for i in range(count)]


def grid(shape: tuple[int, ...], kind: str = "CPU", **kwargs: object) -> Mesh:
    ids = np.arange(int(np.prod(shape))).reshape(shape)
    names = ["a", "b", "c", "d"][: len(shape)]
    return Mesh(names, ids, ids.reshape(-1).tolist(), devices(kind, ids.size), **kwargs)  # type: ignore[arg-type]


# -- M-DV-1: device names ------------------------------------------------------------


@pytest.mark.parametrize(
    "text, parts, canonical",
    [
        ("CPU:0", (None, None, None, "CPU", 0), "/device:CPU:0"),
        ("/cpu:3", (None, None, None, "CPU", 3), "/device:CPU:3"),
        ("gpu:2", (None, None, None, "GPU", 2), "/device:GPU:2"),
        ("/job:w/task:1/device:TPU:3", ("w", None, 1, "TPU", 3), "/job:w/task:1/device:TPU:3"),
        (
            "job:localhost/replica:0/task:0/TPU:0",
            ("localhost", 0, 0, "TPU", 0),
            "/job:localhost/replica:0/task:0/device:TPU:0",
        ),
        ("/device:custom:1", (None, None, None, "custom", 1), "/device:custom:1"),
        ("/device:CPU:*", (None, None, None, "CPU", None), "/device:CPU:*"),
        ("/job:a", ("a", None, None, None, None), "/job:a"),
        ("", (None, None, None, None, None), ""),
    ],
)
def test_device_names_parse_as_tf(text: str, parts: tuple[object, ...], canonical: str) -> None:
    spec = DeviceSpec.from_string(text)
    assert (spec.job, spec.replica, spec.task, spec.device_type, spec.device_index) == parts
    assert spec.to_string() == canonical


@pytest.mark.parametrize(
    "text, message",
    [
        ("tpu_system:0", "Unknown attribute 'tpu_system'"),
        ("/device:CPU", "Unknown attribute 'device'"),
        ("/cpu:0/gpu:1", "Multiple device types"),
        ("/replica:x", "invalid number"),
        ("cpu:\u0663", "invalid number"),
        ("/task:" + "9" * 40, "invalid number"),
        ("/job:" + "j" * 5000, "too long"),
    ],
)
def test_bad_device_names(text: str, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        DeviceSpec.from_string(text)


def test_merged_device_specs() -> None:
    local = DeviceSpec(job="localhost", replica=0, task=0)
    assert local.make_merged_spec(DeviceSpec.from_string("GPU:1")).to_string() == HOST + "GPU:1"
    assert local.make_merged_spec(DeviceSpec.from_string("/job:w/cpu:0")).job == "w"


# -- M-ME-1 .. M-ME-3: meshes ------------------------------------------------------------


def test_mesh_surface() -> None:
    mesh = grid((2, 4, 2))
    assert "a" in mesh and "z" not in mesh
    with pytest.raises(TypeError):
        3 in mesh  # noqa: B015 - membership is of dimension names, as in TensorFlow
    assert mesh["b"] == ("b", 4) and mesh["b"].size == 4
    with pytest.raises(InvalidArgumentError, match="Dimension z does not exist in mesh"):
        mesh["z"]
    assert mesh.strides == [8, 2, 1] and mesh.size == 16 and mesh.shape() == [2, 4, 2]
    assert mesh.device_location(13) == [1, 2, 1]
    with pytest.raises(InvalidArgumentError, match="Offset size:16 and Mesh size:16"):
        mesh.device_location(16)
    # coords wraps past the last device, as TensorFlow's (device // strides) % shape.
    for idx, loc in enumerate(itertools.product(range(2), range(4), range(2))):
        assert mesh.coords(idx).tolist() == list(loc)
        assert mesh.coords(idx + 16).tolist() == list(loc)
    locations = mesh.unravel_index()
    assert locations[13] == {"a": 1, "b": 2, "c": 1} and len(locations) == 16
    assert mesh.local_device_locations()[13] == locations[13]
    assert mesh.global_device_ids().dtype == np.int64 and not mesh.is_remote()
    assert mesh.device_type() == "CPU" and mesh.min_global_device_id() == 0


def test_mesh_with_offset_ids_and_remote_devices() -> None:
    mesh = Mesh(["x"], np.array([3, 4, 5, 6]), [5, 6], devices("CPU", 2))
    assert mesh.min_global_device_id() == 3
    assert mesh.device_location(1) == [1]  # offsets count from the first id
    assert mesh.local_device_locations() == [{"x": 2}, {"x": 3}]
    remote = Mesh(["x"], np.arange(2), [], [], global_devices=devices("CPU", 2))
    assert remote.is_remote() and remote.device_type() == "CPU"
    assert remote.to_string().endswith("|||" + ",".join(devices("CPU", 2)))


def test_mesh_repr_str_pickle_and_hash() -> None:
    mesh = grid((2, 2), mesh_name="m")
    assert repr(mesh) == str(mesh) == f"Mesh.from_string({mesh.to_string()})"
    again = pickle.loads(pickle.dumps(mesh))
    assert again == mesh and hash(again) == hash(mesh) and again is not mesh
    assert copy.deepcopy(mesh) == mesh and mesh != "m"


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: Mesh(["x"], np.array([], dtype=int), [], []), "must be non-empty"),
        (lambda: Mesh(["x"], np.array([1, 0]), [1, 0], devices("CPU", 2)), "sequentially increase"),
        (lambda: Mesh(["x"], np.arange(4).reshape(2, 2), [0], devices("CPU", 1)), "Number of mesh"),
        (lambda: Mesh(["x"], np.arange(2), [], []), "Empty list of devices"),
        (
            lambda: Mesh(["x"], np.arange(2), [0, 1], devices("GPU", 1) * 2),
            r"Duplicate devices found in mesh specification \['/job",
        ),
        (lambda: Mesh(["x"], np.arange(2), [0], devices("CPU", 2)), "does not have same size"),
        (lambda: Mesh(["x"], np.arange(2), [0, 1, 2], devices("CPU", 3)), "more local than"),
        (
            lambda: Mesh(["x"], np.arange(2), [0, 1], ["/job:a", "/job:b"]),
            "device_type is required",
        ),
        (
            lambda: Mesh(["x"], np.arange(2), [0, 1], [HOST + "CPU:0", HOST + "TPU:1"]),
            r"multiple device_types : \{'CPU', 'TPU'\}",
        ),
        (
            lambda: grid((2,), "CPU", use_xla_spmd=True),
            "XLA SPMD is not currently not supported for CPU",
        ),
        (lambda: grid((2,), "GPU", use_xla_spmd=True), "not supported for GPU mesh"),
        (lambda: Mesh(["x", "x"], np.arange(4).reshape(2, 2), [0], devices("CPU", 1)), "unique"),
        (lambda: Mesh(["unsharded"], np.arange(1), [0], devices("CPU", 1)), "dimension name"),
        (lambda: Mesh(["x"], np.arange(2), [0, 5], devices("CPU", 2)), "not in the mesh"),
        (lambda: Mesh(["x"], np.arange(1), [0], ["/job:a|b/cpu:0"]), "invalid device name"),
    ],
)
def test_mesh_checks(build, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidArgumentError, match=message):
        build()


def test_host_cpu_may_repeat_and_parsers_skip_python_only_checks() -> None:
    # TensorFlow lets every device of a mesh be the one host CPU.
    shared = Mesh(["x"], np.arange(2), [0, 1], devices("CPU", 1) * 2)
    assert shared.size == 2
    text = f"|x=2|0,1|0,1|{','.join(devices('CPU', 2))}|use_xla_spmd"
    assert Mesh.from_string(text).use_xla_spmd()  # TF's C++ parser allows it on CPUs
    assert Mesh.from_proto(Mesh.from_string(text).as_proto()).use_xla_spmd()
    with pytest.raises(InvalidArgumentError, match="multiple device_types"):
        Mesh.from_string(f"|x=2|0,1|0,1|{HOST}CPU:0,{HOST}TPU:1")


def test_host_mesh() -> None:
    tpu = grid((4, 2), "TPU", mesh_name="named", use_xla_spmd=True)
    host = tpu.host_mesh()
    assert host == grid((4, 2), "CPU") and not host.use_xla_spmd() and host.name == ""
    partial = Mesh(["x"], np.arange(2), [0], devices("GPU", 1), global_devices=devices("GPU", 2))
    assert partial.host_mesh().to_string() == f"|x=2|0,1|0|{HOST}CPU:0"  # local devices only
    remote = Mesh(["x"], np.arange(2), [], [], global_devices=devices("GPU", 2))
    with pytest.raises(InvalidArgumentError, match="no local devices"):
        remote.host_mesh()
    assert grid((2,)).host_mesh() == grid((2,))


def test_single_device_meshes() -> None:
    mesh = Mesh.from_device("job:localhost/replica:0/task:0/TPU:0")
    assert mesh.is_single_device() and mesh.single_device == "job:localhost/replica:0/task:0/TPU:0"
    assert (mesh.size, mesh.shape(), mesh.dim_names, mesh.strides) == (0, [], [], [1])
    assert mesh.device_type() == "TPU" and mesh.unravel_index() == {0: {}}
    assert Mesh.from_string(mesh.to_string()) == mesh
    assert Mesh.from_proto(mesh.as_proto()) == mesh
    assert mesh.as_proto() == MeshProto(single_device=mesh.single_device)
    for bad in ("garbage", "empty_mesh"):
        with pytest.raises(InvalidArgumentError):
            Mesh.from_string(bad)
    with pytest.raises(InvalidArgumentError, match="no host mesh"):
        mesh.host_mesh()


# -- M-ME-4: create_mesh ---------------------------------------------------------------


def test_create_mesh_defaults() -> None:
    assert create_mesh().to_string() == f"|x=1|0|0|{HOST}CPU:0"
    assert create_mesh(available=4).dim_names == ["x"] and create_mesh(available=4).size == 4
    assert create_mesh([("b", -1)], available=3).shape() == [3]
    assert create_mesh({"b": -1}, devices=["GPU:0", "GPU:1"]).device_type() == "GPU"
    # Explicit sizes simulate the devices they need.
    assert create_mesh([("x", 16), ("y", 16)]).size == 256
    named = create_mesh([("b", 2)], devices=["/job:w/cpu:0", "CPU:1"], job="localhost")
    assert named.local_devices() == ["/job:w/replica:0/task:0/device:CPU:0", HOST + "CPU:1"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(mesh_dims=[("b", 4)], devices=["CPU:0", "CPU:1"]), r"length of devices \(2\)"),
        (dict(mesh_dims=[("b", 2)], devices=["CPU:0", "CPU:1"], device_type="GPU"), "Conflicting"),
        (dict(mesh_dims=[("b", 0)]), "positive"),
        (dict(mesh_dims=[("b", 2)], use_xla_spmd=True), "XLA SPMD"),
        (dict(mesh_dims=[("b", 2)], devices=[]), "at least one device"),
    ],
)
def test_create_mesh_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        create_mesh(**kwargs)  # type: ignore[arg-type]


# -- M-LA-1, M-LA-2: layouts -------------------------------------------------------------


def test_layout_surface() -> None:
    mesh = grid((2, 2))
    layout = Layout.batch_sharded(mesh, "a", rank=2)
    assert repr(layout) == str(layout) == f"Layout.from_string({layout.to_string()})"
    assert layout.type == LayoutType.STATIC and layout.shape == [2, 2]
    assert pickle.loads(pickle.dumps(layout)) == layout
    assert Layout.batch_sharded(mesh, "b", 3, axis=1).sharding_specs == [UNSHARDED, "b", UNSHARDED]
    with pytest.raises(InvalidArgumentError, match="axis 5"):
        Layout.batch_sharded(mesh, "a", 2, axis=5)
    with pytest.raises(InvalidArgumentError, match="outside a layout of rank 2"):
        layout.num_shards(2)
    three = Layout(["a", "b", UNSHARDED], mesh)
    assert three.delete([0, 2]).sharding_specs == ["b"] and three.delete(1).rank == 2
    assert three.offset_tuple_to_global_index((1, 1, 0)) == 3
    assert three.offset_to_shard() == [(0, 0, 0), (0, 1, 0), (1, 0, 0), (1, 1, 0)]
    assert three.global_shape_from_local_shape((1, 3, 5)) == (2, 6, 5)
    assert three.local_shape_from_global_shape((2, 6, 5)) == (1, 3, 5)


@pytest.mark.parametrize(
    "specs, batch_parallel",
    [
        (["a", UNSHARDED], True),
        ([UNSHARDED, "a"], False),
        (["a", "b"], False),
        ([UNSHARDED, UNSHARDED], False),
        (["a"], True),
        ([], False),
        ([MATCH, UNSHARDED], True),
        ([UNSHARDED, MATCH], False),
    ],
)
def test_is_batch_parallel_as_tf(specs: list[str], batch_parallel: bool) -> None:
    assert Layout(specs, grid((2, 2))).is_batch_parallel() is batch_parallel


@pytest.mark.parametrize(
    "specs, mesh, message",
    [
        (["a"], "string_mesh", "mesh is not a valid Mesh object."),
        (["a", "a"], None, r"Mesh dimension a was repeated in sharding specification \['a', 'a'\]"),
        (["WRONG", UNSHARDED], None, "WRONG: A dimension sharding must either be a valid mesh"),
    ],
)
def test_layout_errors_as_tf(specs: list[str], mesh: object, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        Layout(specs, grid((2, 2)) if mesh is None else mesh)  # type: ignore[arg-type]


def test_parted_and_single_device_layouts() -> None:
    mesh = grid((2, 2))
    static = Layout(["a", UNSHARDED], mesh)
    parted = static.to_parted()
    assert parted.type == LayoutType.PARTED and parted != static
    assert parted.to_string() == "parted:a,unsharded, mesh:" + mesh.to_string()
    assert Layout.from_string(parted.to_string()) == parted and parted.to_parted() == parted
    single = Layout.from_device(HOST + "CPU:0")
    assert (
        single.is_single_device() and single.rank == 0 and single.type == LayoutType.SINGLE_DEVICE
    )
    assert single.to_string() == f"maximal:true, mesh:{HOST}CPU:0"
    assert Layout.from_string(single.to_string()) == single == Layout.from_proto(single.as_proto())
    with pytest.raises(InvalidArgumentError):
        Layout.replicated(single.mesh, 0)
    with pytest.raises(InvalidArgumentError):
        Layout.from_string("maximal:false, mesh:" + HOST + "CPU:0")


# -- M-PB-1: protos --------------------------------------------------------------------


SMALL = Mesh(["x"], [0, 1], [0, 1], ["CPU:0", "CPU:1"])
SMALL_BYTES = bytes.fromhex("0a050a0178100212020001220200012a05") + b"CPU:0" + b"\x2a\x05CPU:1"


def test_proto_bytes() -> None:
    assert SMALL.to_string() == "|x=2|0,1|0,1|CPU:0,CPU:1"
    assert SMALL.as_proto().SerializeToString() == SMALL_BYTES
    layout = Layout(["x", UNSHARDED], SMALL)
    expected = (
        bytes.fromhex("0a03120178")
        + b"\x0a\x0b\x12\x09unsharded"
        + b"\x12\x1d"
        + SMALL_BYTES
        + b"\x18\x01"
    )
    assert layout.as_proto().SerializeToString() == expected
    assert Layout.from_proto(expected) == layout and Mesh.from_proto(SMALL_BYTES) == SMALL
    # Unpacked id lists and unknown fields are read too.
    unpacked = bytes.fromhex("0a050a01781002") + b"\x10\x00\x10\x01\x20\x00\x20\x01\x78\x05"
    unpacked += b"\x2a\x05CPU:0\x2a\x05CPU:1"
    assert decode_mesh_proto(unpacked) == SMALL.as_proto()


@pytest.mark.parametrize(
    "data, error",
    [
        (b"\x0a\x05\x0a", DataLossError),
        (b"\x1a\x02\xff\xfe", DataLossError),
        (b"\x15\x00\x00\x00\x00", DataLossError),
        (b"", InvalidArgumentError),
        (bytes.fromhex("0a050a0178100312020001"), InvalidArgumentError),
    ],
)
def test_bad_mesh_protos(data: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        Mesh.from_proto(data)


def test_bad_layout_protos() -> None:
    with pytest.raises(InvalidArgumentError, match="unknown type 0"):
        Layout.from_proto(LayoutProto(mesh_config=SMALL.as_proto()))
    with pytest.raises(InvalidArgumentError, match="unknown type 9"):
        Layout.from_proto(LayoutProto(mesh_config=SMALL.as_proto(), type=9))


meshes = st.lists(st.integers(1, 3), min_size=1, max_size=3).flatmap(
    lambda sizes: st.tuples(
        st.just(sizes), st.sampled_from(["", "m"]), st.sampled_from(["CPU", "TPU"]), st.booleans()
    )
)


@given(meshes, st.data())
def test_strings_and_protos_round_trip(
    case: tuple[list[int], str, str, bool], data: st.DataObject
) -> None:
    sizes, name, kind, xla = case
    mesh = create_mesh(
        [(f"d{i}", s) for i, s in enumerate(sizes)],
        mesh_name=name,
        device_type=kind,
        use_xla_spmd=xla and kind == "TPU",
    )
    rank = data.draw(st.integers(0, 3))
    specs = data.draw(
        st.lists(
            st.sampled_from([UNSHARDED, *mesh.dim_names]), min_size=rank, max_size=rank
        ).filter(
            lambda s: len([x for x in s if x != UNSHARDED]) == len({x for x in s if x != UNSHARDED})
        )
    )
    layout = Layout(specs, mesh)
    if data.draw(st.booleans()):
        layout = layout.to_parted()
    assert Mesh.from_proto(mesh.as_proto().SerializeToString()) == mesh
    assert Layout.from_proto(layout.as_proto().SerializeToString()) == layout
    assert Layout.from_string(layout.to_string()) == layout


# -- M-GE-2: geometry by arithmetic ---------------------------------------------------------


def _brute_unique(layout: Layout, shape: tuple[int, ...]) -> list[tuple[object, int]]:
    seen: dict[object, int] = {}
    for device in range(layout.mesh.size):
        seen.setdefault(device_box(layout, shape, device), device)
    return list(seen.items())


@given(st.lists(st.integers(1, 3), min_size=1, max_size=3), st.data())
def test_geometry_matches_a_scan_of_the_devices(sizes: list[int], data: st.DataObject) -> None:
    mesh = create_mesh([(f"d{i}", s) for i, s in enumerate(sizes)])
    rank = data.draw(st.integers(0, 3))
    specs = data.draw(
        st.lists(
            st.sampled_from([UNSHARDED, *mesh.dim_names]), min_size=rank, max_size=rank
        ).filter(
            lambda s: len([x for x in s if x != UNSHARDED]) == len({x for x in s if x != UNSHARDED})
        )
    )
    layout = Layout(specs, mesh)
    shape = tuple(layout.num_shards(i) * data.draw(st.integers(0, 2)) for i in range(rank))
    assert unique_shards(layout, shape) == _brute_unique(layout, shape)
    for box, device in unique_shards(layout, shape):
        assert block_device(layout, [s // n if n else 0 for s, n in box]) == device
    if all(shape):
        query = tuple(
            (start, data.draw(st.integers(1, size - start)))
            for size in shape
            for start in [data.draw(st.integers(0, size - 1))]
        )
        expected = [
            (box, device)
            for box, device in _brute_unique(layout, shape)
            if all(s < qs + qn and qs < s + n for (s, n), (qs, qn) in zip(box, query, strict=True))
        ]
        assert sorted(overlapping_blocks(layout, shape, query)) == sorted(expected)  # type: ignore[type-var]


def test_replicated_layouts_have_one_block_whatever_the_mesh() -> None:
    mesh = create_mesh([("x", 32), ("y", 32)])
    assert unique_shards(Layout.replicated(mesh, 2), (4, 4)) == [(((0, 4), (0, 4)), 0)]
    assert len(unique_shards(Layout(["y", UNSHARDED], mesh), (64, 4))) == 32

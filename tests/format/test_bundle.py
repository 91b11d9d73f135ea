"""BundleWriter/BundleReader round trips, slices, merges and big-endian bundles."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dtckpt
import dtckpt.dtypes as dt
from dtckpt.errors import AlreadyExistsError, FailedPreconditionError, InvalidArgumentError
from dtckpt.format.bundle_reader import BundleReader
from dtckpt.format.bundle_writer import BundleWriter
from dtckpt.format.messages import BIG
from dtckpt.format.slices import format_shape_and_slice
from tests.conftest import assert_same_array
from tests.format.strategies import arrays

names = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=1,
    max_size=20,
)


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(names, arrays(), min_size=1, max_size=6), st.booleans())
def test_round_trip_every_dtype(tensors: dict[str, np.ndarray], use_mmap: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        prefix = os.path.join(tmp, "sub", "ckpt")
        dtckpt.save_v2(prefix, list(tensors), [""] * len(tensors), list(tensors.values()))
        assert sorted(os.listdir(os.path.dirname(prefix))) == [
            "ckpt.data-00000-of-00001",
            "ckpt.index",
        ]
        with dtckpt.load_checkpoint(prefix, mmap=use_mmap) as reader:
            assert set(reader.get_variable_to_shape_map()) == set(tensors)
            for name, value in tensors.items():
                assert_same_array(reader.get_tensor(name), value, name)
                assert reader.get_variable_to_dtype_map()[name] == value.dtype


@st.composite
def partitioned(draw: st.DrawFn) -> tuple[np.ndarray, list[tuple[tuple[int, int], ...]]]:
    """A tensor and a grid partition of it into boxes."""
    dtype = draw(st.sampled_from(["float32", "int64", "bfloat16", "bool", "complex64", "string"]))
    shape = tuple(draw(st.lists(st.integers(1, 7), min_size=1, max_size=3)))
    value = draw(arrays(dtype, shape))
    cuts = []
    for size in shape:
        points = sorted(draw(st.sets(st.integers(1, size - 1), max_size=2))) if size > 1 else []
        bounds = [0, *points, size]
        cuts.append([(a, b - a) for a, b in zip(bounds, bounds[1:])])
    boxes = [()]  # type: list[tuple[tuple[int, int], ...]]
    for extents in cuts:
        boxes = [box + (e,) for box in boxes for e in extents]
    return value, boxes


def _box_index(box: tuple[tuple[int, int], ...]) -> tuple[slice, ...]:
    return tuple(slice(s, s + n) for s, n in box)


@pytest.fixture(params=["numpy-for-small-work", "kernels-for-all-work"])
def work_threshold(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with the default policy, and again with every job on the chosen kernels."""
    if request.param == "kernels-for-all-work":
        monkeypatch.setattr(dtckpt.kernels, "SMALL_WORK_BYTES", 0)
    return str(request.param)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(partitioned(), st.data())
def test_slices_assemble_and_reslice(work_threshold, case, data) -> None:  # type: ignore[no-untyped-def]
    value, boxes = case
    shape = value.shape
    order = data.draw(st.permutations(range(len(boxes))))
    with tempfile.TemporaryDirectory() as tmp:
        prefix = os.path.join(tmp, "ckpt")
        specs = [format_shape_and_slice(shape, boxes[i]) if len(boxes) > 1 else "" for i in order]
        dtckpt.save_v2(
            prefix, ["t"] * len(order), specs, [value[_box_index(boxes[i])] for i in order]
        )
        reader = dtckpt.load_checkpoint(prefix)
        assert reader.get_variable_to_shape_map() == {"t": list(shape)}
        assert_same_array(reader.get_tensor("t"), value)
        request = tuple(
            (lo, hi - lo)
            for lo, hi in (
                sorted(data.draw(st.lists(st.integers(0, n), min_size=2, max_size=2)))
                for n in shape
            )
        )
        request = tuple(
            (s, max(n, 1)) if s < dim else (s - 1, 1) for (s, n), dim in zip(request, shape)
        )
        spec = format_shape_and_slice(shape, request)
        (got,) = dtckpt.restore_v2(
            prefix, ["t"], [spec], [value.dtype if value.dtype != object else "string"]
        )
        assert_same_array(got, value[_box_index(request)], spec)


def test_slice_order_in_data_file_follows_calls(tmp_path) -> None:  # type: ignore[no-untyped-def]
    value = np.arange(20, dtype=np.float32).reshape(5, 4)
    prefix = str(tmp_path / "c")
    dtckpt.save_v2(prefix, ["b", "a"], ["", ""], [value, value[:2]])
    reader = BundleReader(prefix)
    assert reader.entry("b").offset == 0
    assert reader.entry("a").offset == value.nbytes


def test_full_spec_becomes_plain_entry(tmp_path) -> None:  # type: ignore[no-untyped-def]
    value = np.ones((4, 6), np.float32)
    for spec in ["4 6 0,4:0,6", "4 6 -:-", ""]:
        prefix = str(tmp_path / spec.replace(" ", "_").replace(":", "c").replace(",", "_"))
        dtckpt.save_v2(prefix, ["x"], [spec], [value])
        reader = BundleReader(prefix)
        assert reader.raw_keys() == [b"x"] and not reader.entry("x").slices


def test_writer_errors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    prefix = str(tmp_path / "w")
    writer = BundleWriter(prefix)
    writer.add("a", np.zeros(2))
    with pytest.raises(AlreadyExistsError):
        writer.add("a", np.zeros(2))
    with pytest.raises(InvalidArgumentError):
        writer.add("", np.zeros(2))
    with pytest.raises(InvalidArgumentError, match="slice spec needs"):
        writer.add_slice("s", (4,), ((0, 2),), np.zeros(3))
    writer.add_slice("s", (4,), ((0, 2),), np.zeros(2))
    with pytest.raises(InvalidArgumentError, match="disagree"):
        writer.add_slice("s", (4,), ((2, 2),), np.zeros(2, np.int32))
    with pytest.raises(AlreadyExistsError):
        writer.add_slice("a", (4,), ((2, 2),), np.zeros(2))
    writer.finish()
    with pytest.raises(FailedPreconditionError):
        writer.add("b", np.zeros(2))


def test_failed_save_leaves_nothing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    prefix = str(tmp_path / "bad")
    with pytest.raises(InvalidArgumentError):
        dtckpt.save_v2(prefix, ["a", "b"], ["", "2 x"], [np.zeros(2), np.zeros(2)])
    assert os.listdir(tmp_path) == []


def test_save_v2_argument_checks(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidArgumentError, match="tensor_names has 2"):
        dtckpt.save_v2(str(tmp_path / "x"), ["a", "b"], [""], [1, 2])
    with pytest.raises(InvalidArgumentError):
        dtckpt.save_v2(str(tmp_path / "x"), ["a"], [""], [np.zeros(2, dtype="V3")])


def test_python_values_and_strings(tmp_path) -> None:  # type: ignore[no-untyped-def]
    prefix = str(tmp_path / "p")
    dtckpt.save_v2(
        prefix,
        ["i", "f", "s", "u", "q"],
        [""] * 5,
        [7, 1.5, "héllo", np.array(["a", "bc"]), np.array([1, -2], np.int8)],
        dtypes=[None, "float32", None, None, "qint8"],
    )
    reader = dtckpt.load_checkpoint(prefix)
    assert reader.get_tensor("i").dtype == np.int64
    assert reader.get_tensor("f").dtype == np.float32
    assert reader.get_tensor("s") == "héllo".encode()
    assert list(reader.get_tensor("u")) == [b"a", b"bc"]
    assert reader.bundle.dtype_info("q").name == "qint8"


def test_restore_v2_semantics(tmp_path) -> None:  # type: ignore[no-untyped-def]
    prefix = str(tmp_path / "r")
    value = np.arange(24, dtype=np.float64).reshape(4, 6)
    dtckpt.save_v2(prefix, ["v"], [""], [value])
    (whole, part) = dtckpt.restore_v2(
        prefix, ["v", "v"], ["", "4 6 1,2:-"], [np.float64, "float64"]
    )
    assert np.array_equal(whole, value) and np.array_equal(part, value[1:3])
    with pytest.raises(
        InvalidArgumentError, match="expected dtype float32 does not equal original dtype float64"
    ):
        dtckpt.restore_v2(prefix, ["v"], [""], ["float32"])
    with pytest.raises(InvalidArgumentError, match="does not match the shape stored"):
        dtckpt.restore_v2(prefix, ["v"], ["4 5 -:-"], ["float64"])
    with pytest.raises(dtckpt.errors.TensorNotFoundError, match="Key nope not found"):
        dtckpt.restore_v2(prefix, ["nope"], [""], ["float64"])
    with pytest.raises(KeyError):
        dtckpt.load_checkpoint(prefix).get_tensor("nope")


def test_missing_slices_are_reported(tmp_path) -> None:  # type: ignore[no-untyped-def]
    prefix = str(tmp_path / "m")
    dtckpt.save_v2(prefix, ["t"], ["4 2 0,2:-"], [np.zeros((2, 2), np.float32)])
    reader = dtckpt.load_checkpoint(prefix)
    with pytest.raises(InvalidArgumentError, match="do not cover"):
        reader.get_tensor("t")
    (top,) = dtckpt.restore_v2(prefix, ["t"], ["4 2 0,1:-"], ["float32"])
    assert top.shape == (1, 2)


def test_merge(tmp_path) -> None:  # type: ignore[no-untyped-def]
    full = np.arange(12, dtype=np.int32).reshape(6, 2)
    parts = []
    for i in range(3):
        part = str(tmp_path / f"tmp{i}" / "part")
        dtckpt.save_v2(
            part, ["w", f"only{i}"], [f"6 2 {2 * i},2:-", ""], [full[2 * i : 2 * i + 2], i]
        )
        parts.append(part)
    dtckpt.merge_v2_checkpoints(parts, str(tmp_path / "merged"))
    assert sorted(os.listdir(tmp_path)) == [
        "merged.data-00000-of-00003",
        "merged.data-00001-of-00003",
        "merged.data-00002-of-00003",
        "merged.index",
    ]
    reader = dtckpt.load_checkpoint(str(tmp_path / "merged"))
    assert np.array_equal(reader.get_tensor("w"), full)
    assert [int(reader.get_tensor(f"only{i}")) for i in range(3)] == [0, 1, 2]
    assert reader.bundle.header.num_shards == 3
    assert [reader.bundle.entry(f"only{i}").shard_id for i in range(3)] == [0, 1, 2]


def test_merge_errors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    dtckpt.save_v2(a, ["x"], [""], [1])
    dtckpt.save_v2(b, ["x"], [""], [2])
    with pytest.raises(InvalidArgumentError, match="does not exist"):
        dtckpt.merge_v2_checkpoints([a, str(tmp_path / "missing")], str(tmp_path / "m"))
    with pytest.raises(AlreadyExistsError, match="duplicate"):
        dtckpt.merge_v2_checkpoints([a, b], str(tmp_path / "m"))
    with pytest.raises(dtckpt.errors.NotFoundError):
        dtckpt.merge_v2_checkpoints(
            [str(tmp_path / "no")], str(tmp_path / "m"), allow_missing_files=True
        )


@settings(max_examples=30, deadline=None)
@given(st.dictionaries(names, arrays(), min_size=1, max_size=5))
def test_big_endian_bundle_reads_native(tensors: dict[str, np.ndarray]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        little, big = os.path.join(tmp, "le"), os.path.join(tmp, "be")
        for prefix, order in ((little, 0), (big, BIG)):
            with BundleWriter(prefix, endianness=order) as writer:
                for name, value in tensors.items():
                    writer.add(name, value)

        def swap(v: np.ndarray) -> bytes:
            width = dt.from_numpy(v.dtype).swap_width if v.dtype != object else 0
            return v.reshape(-1).view(f"u{width}").byteswap().tobytes() if width else v.tobytes()

        changed = any(v.dtype != object and swap(v) != v.tobytes() for v in tensors.values())
        le_data = open(little + ".data-00000-of-00001", "rb").read()
        be_data = open(big + ".data-00000-of-00001", "rb").read()
        assert (le_data != be_data) == changed or any(v.dtype == object for v in tensors.values())
        for use_mmap in (False, True):
            reader = dtckpt.load_checkpoint(big, mmap=use_mmap)
            assert reader.bundle.header.endianness == BIG
            for name, value in tensors.items():
                assert_same_array(reader.get_tensor(name), value, name)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_strided_views_are_written_in_c_order(work_threshold, data) -> None:  # type: ignore[no-untyped-def]
    from dtckpt.format import streams

    dtype = data.draw(st.sampled_from(["float32", "int8", "complex128", "bfloat16", "bool"]))
    base = data.draw(
        arrays(dtype, tuple(data.draw(st.lists(st.integers(1, 6), min_size=1, max_size=3))))
    )
    index = tuple(
        slice(a, b + 1, data.draw(st.sampled_from([1, 1, 2, -1])))
        for a, b in (
            sorted(data.draw(st.lists(st.integers(0, n - 1), min_size=2, max_size=2)))
            for n in base.shape
        )
    )
    view = base[index]
    if data.draw(st.booleans()) and view.ndim > 1:
        view = view.T
    chunk = data.draw(st.sampled_from([1, 7, 64, 8 << 20]))
    old_chunk, streams.WRITE_CHUNK = streams.WRITE_CHUNK, chunk
    try:
        with tempfile.TemporaryDirectory() as tmp:
            prefix = os.path.join(tmp, "v")
            dtckpt.save_v2(prefix, ["v"], [""], [view])
            assert_same_array(
                dtckpt.load_checkpoint(prefix).get_tensor("v"), np.ascontiguousarray(view)
            )
    finally:
        streams.WRITE_CHUNK = old_chunk


def test_box_in_container_recognises_basic_slices() -> None:
    from dtckpt.format.streams import box_in_container

    a = np.arange(4 * 6 * 5, dtype=np.float32).reshape(4, 6, 5)
    found = box_in_container(a[1:3, 2:5, 1:4])
    assert found is not None and found[1:] == ((3, 6, 5), (1, 2, 1))
    # Every other row of 5 is a box of a container with rows of 10.
    stepped = box_in_container(a[:, ::2])
    assert stepped is not None and stepped[1:] == ((4, 3, 10), (0, 0, 0))
    assert box_in_container(a[:, :, ::2]) is None
    assert box_in_container(a.T) is None
    assert box_in_container(a[::-1]) is None


def test_keys_that_are_not_utf8_round_trip_through_their_listed_names(tmp_path) -> None:  # type: ignore[no-untyped-def]
    prefix = str(tmp_path / "k")
    with BundleWriter(prefix) as writer:
        writer.add(b"bad\xff/key", np.arange(3))
    reader = dtckpt.load_checkpoint(prefix)
    (listed,) = reader.get_variable_to_shape_map()
    assert reader.has_tensor(listed)
    assert reader.get_tensor(listed).tolist() == [0, 1, 2]
    assert reader.bundle.read(listed).tolist() == [0, 1, 2]  # the bundle layer agrees
    assert listed in reader.bundle


@pytest.mark.parametrize(
    "name", ["dt_2x4_save/ckpt-1", "partitioned_tf1/ckpt", "dtypes/ckpt", "og_v1_slots/ckpt"]
)
def test_visible_entries_walk_the_rows_as_entry_reads_them(name: str) -> None:
    from tests.conftest import GOLDEN

    with BundleReader(str(GOLDEN / name)) as reader:
        walked = reader.index.visible_entries()
        assert [k for k, _ in walked] == reader.keys()
        assert walked == [(k, reader.entry(k)) for k in reader.keys()]

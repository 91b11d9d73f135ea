"""The checkpoint side: BundleWriter.add_chunks, verified streaming reads, damaged sources."""

from __future__ import annotations

import os
import pathlib
import shutil
from collections.abc import Iterator
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dtckpt
from dtckpt.dtypes import info
from dtckpt.errors import (
    AlreadyExistsError,
    DataLossError,
    InvalidArgumentError,
    NotFoundError,
    OutOfRangeError,
    UnimplementedError,
)
from dtckpt.format.bundle_writer import BundleWriter
from dtckpt.format.messages import BIG, LITTLE
from dtckpt.interop import convert, read_checkpoint, write_checkpoint
from dtckpt.interop.tensors import TensorSource, TensorStream
from tests.conftest import assert_same_array, load_golden
from tests.format.strategies import NUMERIC, arrays

from .conftest import assert_same_checkpoints


def _pieces(value: np.ndarray, cuts: list[int]) -> list[np.ndarray]:
    flat = value.reshape(-1)
    bounds = sorted({0, flat.size, *(c % (flat.size + 1) for c in cuts)})
    return [flat[a:b] for a, b in pairwise(bounds)]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.sampled_from(NUMERIC).flatmap(arrays),
    st.lists(st.integers(0, 200), max_size=6),
    st.sampled_from([LITTLE, BIG]),
)
def test_add_chunks_writes_what_add_writes(
    tmp_path: pathlib.Path, value: np.ndarray, cuts: list[int], endianness: int
) -> None:
    """Byte-identical bundles, however the tensor is cut into pieces."""
    files = {}
    for how in ("whole", "chunks"):
        prefix = str(tmp_path / how / "ckpt")
        with BundleWriter(prefix, endianness=endianness) as writer:
            writer.add("before", np.arange(3, dtype=np.int16))
            if how == "whole":
                writer.add("t", value)
            else:
                entry = writer.add_chunks("t", value.dtype, value.shape, _pieces(value, cuts))
                assert entry.size == value.nbytes
            writer.add("after", np.float64(2.5))
        files[how] = [(tmp_path / how / n).read_bytes() for n in sorted(os.listdir(tmp_path / how))]
    assert files["whole"] == files["chunks"]


def test_add_chunks_accepts_any_piece_shapes_and_converts_like_add(tmp_path: pathlib.Path) -> None:
    prefix = str(tmp_path / "ckpt")
    with BundleWriter(prefix) as writer:
        writer.add_chunks("m", "float32", (2, 3), [np.array([[0, 1]]), np.arange(2, 6.0)])
        writer.add_chunks("e", "int64", (0, 4), [])
        writer.add_chunks("s", "bfloat16", (), iter([np.float32(1.5)]))
    with dtckpt.load_checkpoint(prefix) as reader:
        assert_same_array(reader.get_tensor("m"), np.arange(6, dtype=np.float32).reshape(2, 3))
        assert reader.get_tensor("e").shape == (0, 4)
        assert float(reader.get_tensor("s")) == 1.5


def test_add_chunks_refusals_leave_the_writer_consistent(tmp_path: pathlib.Path) -> None:
    prefix = str(tmp_path / "ckpt")
    with BundleWriter(prefix) as writer:
        writer.add("a", np.ones(2, np.float32))
        with pytest.raises(AlreadyExistsError):
            writer.add_chunks("a", "float32", (2,), [])
        with pytest.raises(InvalidArgumentError):
            writer.add_chunks("", "float32", (2,), [])
        with pytest.raises(InvalidArgumentError, match="add"):
            writer.add_chunks("s", "string", (1,), [])
        with pytest.raises(InvalidArgumentError, match="negative"):
            writer.add_chunks("n", "float32", (-1,), [])
        with pytest.raises(InvalidArgumentError, match="more than"):
            writer.add_chunks("big", "float32", (2,), [np.zeros(3, np.float32)])
        with pytest.raises(InvalidArgumentError, match="needs 16"):
            writer.add_chunks("short", "float32", (4,), [np.zeros(3, np.float32)])

        def failing() -> Iterator[np.ndarray]:
            yield np.zeros(1, np.float32)
            raise DataLossError("source went bad")

        with pytest.raises(DataLossError):
            writer.add_chunks("broken", "float32", (2,), failing())
        writer.add("b", np.arange(3, dtype=np.int32))
    with dtckpt.load_checkpoint(prefix) as reader:
        assert sorted(reader.get_variable_to_shape_map()) == ["a", "b"]
        assert_same_array(reader.get_tensor("b"), np.arange(3, dtype=np.int32))


def test_directory_with_a_state_file_is_a_source(tmp_path: pathlib.Path) -> None:
    golden = load_golden("og_saves")
    report = convert(str(golden.directory), str(tmp_path / "x.npz"))
    assert report.source_format == "checkpoint" and report.tensors == len(golden.expected())
    convert(str(tmp_path / "x.npz"), str(tmp_path / "back"))
    assert_same_checkpoints(golden.prefix, str(tmp_path / "back"))


def test_checkpoint_to_checkpoint_merges_shards_and_partitions(tmp_path: pathlib.Path) -> None:
    golden = load_golden("multi_shard")
    report = convert(golden.prefix, str(tmp_path / "one"))
    assert (report.source_format, report.target_format) == ("checkpoint", "checkpoint")
    assert sorted(os.listdir(tmp_path)) == ["one.data-00000-of-00001", "one.index"]
    assert_same_checkpoints(golden.prefix, str(tmp_path / "one"))
    with pytest.raises(InvalidArgumentError, match="same checkpoint"):
        convert(str(tmp_path / "one"), str(tmp_path / "one"))
    with pytest.raises(InvalidArgumentError, match="not at a directory"):
        convert(golden.prefix, str(tmp_path) + "/")


def _copy_golden(name: str, tmp_path: pathlib.Path) -> str:
    golden = load_golden(name)
    shutil.copytree(golden.directory, tmp_path / "src")
    return str(tmp_path / "src" / golden.manifest["prefix"])


@pytest.mark.parametrize("target", ["x.npz", "x.safetensors", "back/ckpt"])
def test_flipped_data_byte_raises_and_writes_nothing(tmp_path: pathlib.Path, target: str) -> None:
    prefix = _copy_golden("partitioned_tf1", tmp_path)
    data = pathlib.Path(prefix + ".data-00000-of-00001")
    with dtckpt.load_checkpoint(prefix) as reader:
        entry = reader.bundle.entry("plain_var")
    raw = bytearray(data.read_bytes())
    raw[entry.offset + 1] ^= 0x40
    data.write_bytes(bytes(raw))
    with pytest.raises(DataLossError, match="Checksum") as error:
        convert(prefix, str(tmp_path / target))
    assert error.value.key == b"plain_var" and error.value.path == str(data)
    assert _files_outside_source(tmp_path) == []  # (a writer may leave its empty directory)


def _files_outside_source(tmp_path: pathlib.Path) -> list[str]:
    return [str(p) for p in tmp_path.rglob("*") if p.is_file() and "src" not in p.parts]


def test_flipped_slice_byte_is_caught_by_whole_slice_reads(tmp_path: pathlib.Path) -> None:
    prefix = _copy_golden("partitioned_tf1", tmp_path)
    data = pathlib.Path(prefix + ".data-00000-of-00001")
    raw = bytearray(data.read_bytes())
    raw[0] ^= 0x01  # the first slice of part_var comes first in the data file
    data.write_bytes(bytes(raw))
    with pytest.raises(DataLossError, match="Checksum"):
        convert(prefix, str(tmp_path / "x.npz"))


def test_truncated_and_missing_shards_name_the_key(tmp_path: pathlib.Path) -> None:
    prefix = _copy_golden("multi_shard", tmp_path)
    shard = pathlib.Path(prefix + ".data-00001-of-00003")
    shard.write_bytes(shard.read_bytes()[:-3])
    with pytest.raises(OutOfRangeError) as error:
        convert(prefix, str(tmp_path / "x.npz"))
    assert error.value.key and error.value.path
    shard.unlink()
    with pytest.raises(NotFoundError) as missing:
        convert(prefix, str(tmp_path / "x.npz"))
    assert missing.value.key
    assert _files_outside_source(tmp_path) == []


def test_stream_checks_span_before_reading(tmp_path: pathlib.Path) -> None:
    prefix = str(tmp_path / "ckpt")
    dtckpt.save_v2(prefix, ["a", "b"], ["", ""], [np.ones(4, np.float32), np.ones(2)])
    data = pathlib.Path(prefix + ".data-00000-of-00001")
    data.write_bytes(data.read_bytes()[:20])
    with read_checkpoint(prefix) as source:
        assert source["a"].read().tolist() == [1.0] * 4
        with pytest.raises(OutOfRangeError, match="truncated") as error:
            next(source["b"].chunks())
        assert error.value.key == b"b"


def test_unwritable_keys_and_dtypes(tmp_path: pathlib.Path) -> None:
    def stream(key: str, dtype: str) -> TensorStream:
        return TensorStream(key, info(dtype), (), 1, lambda: iter([np.zeros(1, np.uint8)]))

    for case, (key, dtype, error) in enumerate(
        [
            ("", "uint8", InvalidArgumentError),
            ("\x00w", "uint8", InvalidArgumentError),
            ("v", "variant", UnimplementedError),
        ]
    ):
        source = TensorSource("npz", "f.npz", [stream("ok", "uint8"), stream(key, dtype)])
        prefix = str(tmp_path / str(case) / "ckpt")
        with pytest.raises(error) as raised:
            write_checkpoint(source, prefix)
        assert raised.value.key == key
        assert not (tmp_path / str(case)).exists()  # refused before the writer was made
        report = write_checkpoint(source, prefix, skip_unsupported=True)
        assert report.skipped == (key,) and report.tensors == 1


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def start(self, total: int, label: str = "", unit: str = "B") -> None:
        self.calls.append(("start", total))

    def advance(self, amount: int) -> None:
        self.calls.append(("advance", amount))

    def finish(self) -> None:
        self.calls.append(("finish", 0))


@pytest.mark.parametrize("target", ["x.npz", "x.safetensors", "back/ckpt"])
def test_progress_counts_every_byte(tmp_path: pathlib.Path, small_chunks: int, target: str) -> None:
    prefix = str(tmp_path / "ckpt")
    dtckpt.save_v2(prefix, ["a", "b"], ["", ""], [np.ones((5, 3), np.float32), np.arange(7)])
    progress = Recorder()
    report = convert(prefix, str(tmp_path / target), progress=progress)
    assert progress.calls[0] == ("start", report.bytes) and progress.calls[-1][0] == "finish"
    advanced = [n for what, n in progress.calls if what == "advance"]
    assert sum(advanced) == report.bytes == 5 * 3 * 4 + 7 * 8 and len(advanced) > 2


def test_every_slice_of_a_grid_partition_is_checksummed(tmp_path: pathlib.Path) -> None:
    prefix = _copy_golden("dtensor", tmp_path)  # w [4, 8] on a 2x4 mesh: a 2x4 grid of slices
    with dtckpt.load_checkpoint(prefix) as reader:
        bundle = reader.bundle
        slices = bundle.entry("model/w/.ATTRIBUTES/VARIABLE_VALUE").slices
        assert len(slices) == 8 and all(length != -1 for _, length in slices[0])
        victim = [k for k in bundle.raw_keys() if k.startswith(b"\x00")][-1]
        entry = bundle.entry(victim)
        data = pathlib.Path(bundle.shard_path(entry.shard_id))
    raw = bytearray(data.read_bytes())
    raw[entry.offset + entry.size - 1] ^= 0x01
    data.write_bytes(bytes(raw))
    with pytest.raises(DataLossError, match="Checksum") as error:
        convert(prefix, str(tmp_path / "x.safetensors"), skip_unsupported=True)
    assert error.value.key == victim and error.value.path == str(data)


def test_incomplete_partitions_are_reported_by_the_reader(tmp_path: pathlib.Path) -> None:
    prefix = str(tmp_path / "ckpt")
    dtckpt.save_v2(
        prefix,
        ["w", "w"],
        ["4 2 0,1:-", "4 2 2,2:-"],
        [np.ones((1, 2), np.float32), np.ones((2, 2), np.float32)],
    )
    with pytest.raises(InvalidArgumentError, match="sufficient slices") as error:
        convert(prefix, str(tmp_path / "x.npz"))
    assert error.value.key == b"w"
    assert not (tmp_path / "x.npz").exists()

"""Read plans (rule F-RD-8): the ranges read_ranges lists are exactly the bytes a read takes."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

import dtckpt
from dtckpt.format import bundle_reader
from dtckpt.format.bundle_reader import BundleReader
from dtckpt.format.slices import parse_slice


def _slices(prefix: str) -> np.ndarray:
    full = np.arange(8 * 6, dtype=np.float32).reshape(8, 6)
    specs = ["8 6 0,4:0,3", "8 6 0,4:3,3", "8 6 4,4:0,3", "8 6 4,4:3,3"]
    blocks = [full[:4, :3], full[:4, 3:], full[4:, :3], full[4:, 3:]]
    dtckpt.save_v2(prefix, ["w"] * 4 + ["s"], specs + [""], blocks + [np.float64(2.0)])
    return full


class _Recorder:
    """Every (offset, length) a shard of the reader is asked for."""

    def __init__(self, reader: BundleReader, monkeypatch: pytest.MonkeyPatch) -> None:
        self.reads: list[tuple[int, int]] = []
        original = reader._shard

        def shard(shard_id: int, key: bytes) -> object:
            inner = original(shard_id, key)
            recorder = self

            class Wrapped:
                size = inner.size
                path = inner.path

                def read_into(self, out: np.ndarray, offset: int) -> None:
                    recorder.reads.append((offset, out.nbytes))
                    inner.read_into(out, offset)

                def read_into_with_crc32c(self, out: np.ndarray, offset: int) -> int:
                    recorder.reads.append((offset, out.nbytes))
                    return inner.read_into_with_crc32c(out, offset)

                def map(self) -> None:
                    return None

            return Wrapped()

        monkeypatch.setattr(reader, "_shard", shard)


@pytest.mark.parametrize(
    "spec",
    [None, "-:-", "0,4:0,3", "1,2:-", "2,4:1,4", "7,1:5,1", "0,8:2,2"],
)
def test_planned_ranges_are_the_bytes_read(
    spec: str | None, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = str(tmp_path / "ckpt")
    full = _slices(prefix)
    with BundleReader(prefix) as reader:
        tensor_slice = None if spec is None else parse_slice(spec)
        planned = reader.read_ranges("w", tensor_slice)
        recorder = _Recorder(reader, monkeypatch)
        got = reader.read("w") if tensor_slice is None else reader.read_slice("w", tensor_slice)
        assert sorted(recorder.reads) == sorted((r.offset, r.length) for r in planned)
        box = (slice(None), slice(None)) if spec is None else reader_box(spec)
        assert np.array_equal(got, full[box])


def reader_box(spec: str) -> tuple[slice, ...]:
    out = []
    for part in spec.split(":"):
        if part == "-":
            out.append(slice(None))
        else:
            start, length = (int(x) for x in part.split(","))
            out.append(slice(start, start + length))
    return tuple(out)


def test_a_whole_entry_is_one_range(tmp_path: pathlib.Path) -> None:
    prefix = str(tmp_path / "ckpt")
    _slices(prefix)
    with BundleReader(prefix) as reader:
        entry = reader.entry("s")
        assert reader.read_ranges("s") == [
            bundle_reader.ByteRange(entry.shard_id, entry.offset, entry.size, b"s")
        ]


def test_check_stored_holds_the_data_files_it_checked(tmp_path: pathlib.Path) -> None:
    prefix = str(tmp_path / "b")
    full = _slices(prefix)
    with BundleReader(prefix) as reader:
        reader.check_stored("w")
        reader.check_stored("s")
        # Unlinked after the check (another writer pruning it): still read through the
        # descriptors the check holds (rule F-RD-9).
        (tmp_path / "b.data-00000-of-00001").unlink()
        assert np.array_equal(reader.read("w"), full)
        assert reader.read("s") == 2.0
        reader.close_files()
        with pytest.raises(dtckpt.errors.NotFoundError, match="data file is missing"):
            reader.check_stored("w")


def test_check_stored_refuses_a_short_data_file(tmp_path: pathlib.Path) -> None:
    prefix = str(tmp_path / "b")
    _slices(prefix)
    data = tmp_path / "b.data-00000-of-00001"
    with BundleReader(prefix) as reader:
        last = max(reader.read_ranges("w") + reader.read_ranges("s"), key=lambda r: r.offset)
    data.write_bytes(data.read_bytes()[: last.offset + last.length - 1])
    with BundleReader(prefix) as reader:
        with pytest.raises(dtckpt.errors.OutOfRangeError, match="truncated") as info:
            reader.check_stored(last.key if last.key == b"s" else "w")
        assert info.value.offset == last.offset

"""Damaged archives: every kind of damage is a typed error naming the archive, the member
and the byte offset, raised before anything of a damaged size is allocated (A-AR-*, A-TC-*,
A-FR-*), and no damage ever yields different bytes silently."""

from __future__ import annotations

import pathlib
import re
import struct

import numpy as np
import pytest

import dtckpt
from dtckpt.archive import ArchiveReader, layout, pack, unpack
from dtckpt.archive.frames import compressor
from dtckpt.archive.layout import FileRecord
from dtckpt.errors import CheckpointError, DataLossError, NotFoundError, UnimplementedError
from dtckpt.format.crc import crc32c
from tests.archive.helpers import assemble, files_under, frame_rows, save_model


@pytest.fixture
def small(tmp_path: pathlib.Path) -> tuple[pathlib.Path, bytes]:
    """A small archive (float32 and string tensors) and its bytes."""
    dtckpt.save_v2(
        str(tmp_path / "src" / "ckpt"),
        ["w", "s"],
        ["", ""],
        [np.linspace(-1, 1, 24, dtype=np.float32), np.array([b"ab", b"c"], dtype=object)],
    )
    pack(str(tmp_path / "src" / "ckpt"), str(tmp_path / "a.dtar"))
    return tmp_path / "a.dtar", (tmp_path / "a.dtar").read_bytes()


def _unpack_all(archive: pathlib.Path, out: pathlib.Path) -> dict[str, bytes]:
    unpack(str(archive), str(out))
    return files_under(out)


def test_every_flipped_byte_is_caught_or_harmless(
    small: tuple[pathlib.Path, bytes], tmp_path: pathlib.Path
) -> None:
    archive, data = small
    original = files_under(tmp_path / "src")
    caught = 0
    for position in range(len(data)):
        damaged = bytearray(data)
        damaged[position] ^= 0x5A
        archive.write_bytes(bytes(damaged))
        out = tmp_path / f"out{position}"
        try:
            got = _unpack_all(archive, out)
        except CheckpointError as exc:
            assert isinstance(exc, (DataLossError, UnimplementedError)), exc
            assert exc.path == str(archive)
            assert exc.offset is not None and 0 <= exc.offset < len(data)
            caught += 1
        else:
            assert got == original, f"flip at {position} changed the unpacked files"
    assert caught > 0.9 * len(data)


def test_flipped_frame_names_member_and_offset(small: tuple[pathlib.Path, bytes]) -> None:
    archive, data = small
    with ArchiveReader(str(archive)) as reader:
        row = reader.frames[0]
        name = reader.names()[int(row["file"])]
        at = int(row["archive_offset"]) + int(row["compressed_length"]) - 1
    damaged = bytearray(data)
    damaged[at] ^= 0x01
    archive.write_bytes(bytes(damaged))
    with pytest.raises(DataLossError) as info:
        unpack(str(archive), str(archive.parent / "out"))
    assert info.value.path == str(archive)
    assert info.value.offset == int(row["archive_offset"])
    assert f"member {name!r}" in str(info.value)
    with pytest.raises(DataLossError, match="member 'ckpt.data-00000-of-00001'") as read:
        dtckpt.load_checkpoint(str(archive)).get_tensor("w")
    assert read.value.path == str(archive) and read.value.offset == info.value.offset
    assert not (archive.parent / "out" / name).exists()


@pytest.mark.parametrize("keep", [0, 7, 16, 40, -1, -31, -33])
def test_truncated(small: tuple[pathlib.Path, bytes], keep: int) -> None:
    archive, data = small
    archive.write_bytes(data[:keep])
    with pytest.raises(DataLossError) as info:
        ArchiveReader(str(archive))
    assert info.value.path == str(archive)
    assert re.search("too short|too few|does not end with the archive magic", info.value.message)


def test_not_an_archive(tmp_path: pathlib.Path) -> None:
    prefix = save_model(tmp_path)
    with pytest.raises(DataLossError, match="not a dtckpt archive"):
        ArchiveReader(prefix + ".data-00000-of-00001")
    with pytest.raises(NotFoundError, match="no archive"):
        ArchiveReader(str(tmp_path / "missing.dtar"))
    with pytest.raises(NotFoundError, match="found a directory"):
        ArchiveReader(str(tmp_path))


def test_toc_checksum(small: tuple[pathlib.Path, bytes]) -> None:
    archive, data = small
    toc_offset = struct.unpack_from("<Q", data, len(data) - 32)[0]
    damaged = bytearray(data)
    damaged[toc_offset + 3] ^= 0x10
    archive.write_bytes(bytes(damaged))
    with pytest.raises(DataLossError, match="table of contents checksum") as info:
        ArchiveReader(str(archive))
    assert info.value.offset == toc_offset


def _frame(data: bytes) -> bytes:
    return bytes(compressor(3).compress(data))


@pytest.mark.parametrize(
    ("rows", "size", "message", "offset"),
    [
        ([(0, 0, 64 << 20 | 1, 16, 13, 0, 0, 0)], 64 << 20 | 1, "raw length", 28),
        ([(0, 0, 4, 16, 2**31, 0, 0, 0)], 4, "compressed length", 28),
        ([(0, 0, 4, 16, 12, 0, 0, 0)], 4, "frames end at archive offset 28", 28),
        ([(3, 0, 4, 16, 13, 0, 0, 0)], 4, "beyond the file table", 28),
    ],
)
def test_bogus_lengths_in_a_checksummed_table(
    tmp_path: pathlib.Path, rows: list, size: int, message: str, offset: int
) -> None:
    """A table whose checksum matches but whose numbers lie: refused before allocation,
    offsets pointing at the frame record inside the archive."""
    frame = _frame(b"abcd")
    assert len(frame) == 13
    toc = layout.encode_toc([FileRecord("x", size, crc32c(b"abcd"))], frame_rows(rows))
    archive = tmp_path / "bogus.dtar"
    archive.write_bytes(assemble([frame], toc))
    with pytest.raises(DataLossError, match=message) as info:
        ArchiveReader(str(archive))
    toc_offset = 16 + len(frame)
    assert info.value.offset == toc_offset + offset - 16 and info.value.path == str(archive)


def test_bogus_counts(tmp_path: pathlib.Path) -> None:
    toc = struct.pack("<IQ", 1, 2**60)
    archive = tmp_path / "counts.dtar"
    archive.write_bytes(assemble([], toc))
    with pytest.raises(DataLossError, match="more than its 12 bytes"):
        ArchiveReader(str(archive))


@pytest.mark.parametrize(
    ("payload", "raw_length", "filter_id", "width", "message"),
    [
        (b"abcdefgh", 9, 0, 0, "content size 8, the table of contents says 9"),
        (b"abcdefgh", 8, 1, 4, "frame checksum does not match"),
        (None, 8, 0, 0, "not a zstd frame"),
    ],
)
def test_frame_damage_in_a_valid_table(
    tmp_path: pathlib.Path,
    payload: bytes | None,
    raw_length: int,
    filter_id: int,
    width: int,
    message: str,
) -> None:
    """Frames that disagree with their records: wrong content size (checked before zstd
    allocates), a checksum of unfiltered bytes that the filter changes, not zstd at all."""
    frame = _frame(payload) if payload is not None else b"NOTZSTD!!"
    crc = crc32c(b"abcdefgh")  # the bytes as stored: right only while no filter changes them
    rows = [(0, 0, raw_length, 16, len(frame), crc, filter_id, width)]
    toc = layout.encode_toc([FileRecord("x", raw_length, crc)], frame_rows(rows))
    archive = tmp_path / "frame.dtar"
    archive.write_bytes(assemble([frame], toc))
    with ArchiveReader(str(archive)) as reader:
        with pytest.raises(DataLossError, match=message) as info:
            reader.read_member("x")
    assert info.value.offset == 16 and "member 'x' bytes [0, " in str(info.value)


def test_file_checksum_is_checked(tmp_path: pathlib.Path) -> None:
    """Rule A-PK-4: frames that are each sound but whose file checksum disagrees."""
    frame = _frame(b"abcd")
    rows = [(0, 0, 4, 16, len(frame), crc32c(b"abcd"), 0, 0)]
    toc = layout.encode_toc([FileRecord("x", 4, 12345)], frame_rows(rows))
    archive = tmp_path / "file.dtar"
    archive.write_bytes(assemble([frame], toc))
    with pytest.raises(DataLossError, match="file checksum does not match"):
        unpack(str(archive), str(tmp_path / "out"))
    assert not (tmp_path / "out" / "x").exists()
    with ArchiveReader(str(archive)) as reader, pytest.raises(DataLossError, match="'x'"):
        reader.verify()

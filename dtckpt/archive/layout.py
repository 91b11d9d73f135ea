"""The bytes of an archive: header, table of contents and footer (rules A-AR-*, A-TC-*).

The whole file, as rule A-AR-1 lays it out::

    offset 0            header     16 B   magic 89 'DTAR' 0d 0a 1a | u32 version | u32 flags
    16                  frames            one zstd frame per chunk of a member file, back to
                                          back, in table order (A-FR-*)
    toc_offset          TOC               u32 file_count | u64 frame_count
                                          frame_count x 34 B frame records
                                          file_count  x (14 B + name) file records
    size - 32           footer     32 B   u64 toc_offset | u64 toc_length | u32 toc_crc32c |
                                          u32 reserved (0) | magic

    frame record  "<IQIQIIBB"  file, offset, raw_length, archive_offset,
                               compressed_length, crc32c, filter, element_size
    file record   "<QIH" name  size, crc32c, name_length, name (UTF-8)

Every integer is little-endian. This module turns those records into bytes and back and
checks everything that can be checked from the bytes alone; it does no I/O. Decoders raise
:class:`~dtckpt.errors.DataLossError` with ``offset`` relative to the buffer they were given,
and the reader shifts it to an archive offset with ``located``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import DataLossError, UnimplementedError

__all__ = [
    "MAGIC",
    "VERSION",
    "HEADER",
    "HEADER_SIZE",
    "FOOTER",
    "FOOTER_SIZE",
    "TOC_HEAD",
    "FRAME_RECORD",
    "FRAME_DTYPE",
    "FILE_RECORD",
    "FILTER_NONE",
    "FILTER_SHUFFLE",
    "MAX_FRAME_RAW",
    "MAX_NAME_BYTES",
    "MAX_TOC_BYTES",
    "MAX_MEMBER_SIZE",
    "MAX_RATIO",
    "Footer",
    "FileRecord",
    "Toc",
    "encode_header",
    "decode_header",
    "encode_footer",
    "decode_footer",
    "encode_toc",
    "decode_toc",
    "check_member_name",
    "max_compressed_length",
]

# Rule A-AR-2: the header.
#: The first (and last) eight bytes of every archive. As in PNG, the high byte, CR LF and ^Z
#: make a text-mode transfer or a truncated copy visible at once.
MAGIC = b"\x89DTAR\r\n\x1a"
#: The only layout version this module reads and writes.
VERSION = 1
HEADER = struct.Struct("<8sII")  # magic, version, flags
HEADER_SIZE = HEADER.size  # 16

# Rule A-AR-3: the footer.
FOOTER = struct.Struct("<QQII8s")  # toc_offset, toc_length, toc_crc32c, reserved, magic
FOOTER_SIZE = FOOTER.size  # 32

# Rule A-TC-1: the table of contents.
TOC_HEAD = struct.Struct("<IQ")  # file_count, frame_count
FRAME_RECORD = struct.Struct("<IQIQIIBB")
FILE_RECORD = struct.Struct("<QIH")  # size, crc32c, name_length; the name follows
#: The frame records as one NumPy structured array: the table is decoded without a Python
#: object per frame, and checked with vectorised comparisons.
FRAME_DTYPE = np.dtype(
    [
        ("file", "<u4"),
        ("offset", "<u8"),
        ("raw_length", "<u4"),
        ("archive_offset", "<u8"),
        ("compressed_length", "<u4"),
        ("crc32c", "<u4"),
        ("filter", "u1"),
        ("element_size", "u1"),
    ]
)
assert FRAME_DTYPE.itemsize == FRAME_RECORD.size == 34

# Rule A-FR-3: filters.
FILTER_NONE = 0
FILTER_SHUFFLE = 1

# Rule A-TC-2: limits, checked before anything is allocated.
#: The largest raw frame a reader accepts: one frame is decoded whole, in memory.
MAX_FRAME_RAW = 64 << 20
#: The longest member name, in UTF-8 bytes (PATH_MAX on Linux is 4096).
MAX_NAME_BYTES = 4096
#: The largest member a table may list: sizes are kept in int64 columns, and no file is
#: larger (a frame offset is bounded the same way).
MAX_MEMBER_SIZE = 2**62
#: The largest table of contents a reader loads (about 7.9 million frames).
MAX_TOC_BYTES = 256 << 20
#: zstd's densest encoding is an RLE block: 4 bytes (a 3-byte block header and the byte)
#: for at most 128 KiB, so no frame decodes to more than this many times its own length.
#: With it, the member sizes a table claims are bounded by the archive's real size.
MAX_RATIO = 32768


def max_compressed_length(raw_length: int) -> int:
    """An upper bound of zstd's output for ``raw_length`` input (above ``ZSTD_compressBound``)."""
    return raw_length + (raw_length >> 7) + 1024


# --- header and footer ----------------------------------------------------------------------


def encode_header() -> bytes:
    return HEADER.pack(MAGIC, VERSION, 0)


def decode_header(data: bytes) -> None:
    """Check the 16-byte header (rule A-AR-2); the magic first, so that any other file,
    however short, is called what it is."""
    if not MAGIC.startswith(data[:8]) or (len(data) >= 8 and data[:8] != MAGIC):
        raise DataLossError(f"not a dtckpt archive (magic {data[:8].hex(' ')})", offset=0)
    if len(data) < HEADER_SIZE:
        raise DataLossError(
            f"{len(data)} bytes are too short for an archive header ({HEADER_SIZE})", offset=0
        )
    _, version, flags = HEADER.unpack_from(data)
    if version != VERSION:
        raise UnimplementedError(
            f"archive layout version {version}; this reader reads version {VERSION}", offset=8
        )
    if flags != 0:
        raise UnimplementedError(f"unknown archive flags {flags:#x}", offset=12)


@dataclass(frozen=True)
class Footer:
    """Where the table of contents lies, and its CRC-32C (rule A-AR-3)."""

    toc_offset: int
    toc_length: int
    toc_crc32c: int


def encode_footer(footer: Footer) -> bytes:
    return FOOTER.pack(footer.toc_offset, footer.toc_length, footer.toc_crc32c, 0, MAGIC)


def decode_footer(data: bytes, archive_size: int) -> Footer:
    """Decode the last :data:`FOOTER_SIZE` bytes of an archive of ``archive_size`` bytes.

    The table must lie between the header and the footer and end where the footer starts,
    and be at most :data:`MAX_TOC_BYTES` long. Offsets in errors are relative to the footer.
    """
    if len(data) != FOOTER_SIZE:
        raise DataLossError(f"footer has {len(data)} bytes, expected {FOOTER_SIZE}", offset=0)
    toc_offset, toc_length, toc_crc, reserved, magic = FOOTER.unpack(data)
    if magic != MAGIC:
        raise DataLossError(
            f"archive does not end with the archive magic (found {magic.hex(' ')}; truncated?)",
            offset=24,
        )
    if reserved != 0:
        raise UnimplementedError(f"unknown footer flags {reserved:#x}", offset=20)
    expected_end = archive_size - FOOTER_SIZE
    if toc_offset < HEADER_SIZE or toc_offset + toc_length != expected_end:
        raise DataLossError(
            f"table of contents at [{toc_offset}, {toc_offset + toc_length}) does not end where "
            f"the footer starts ({expected_end}) after the header",
            offset=0,
        )
    if toc_length > MAX_TOC_BYTES:
        raise DataLossError(
            f"table of contents of {toc_length} bytes exceeds the limit of {MAX_TOC_BYTES}",
            offset=8,
        )
    return Footer(toc_offset, toc_length, toc_crc)


# --- table of contents ----------------------------------------------------------------------


@dataclass(frozen=True)
class FileRecord:
    """One member file: its name relative to the packed root, size and CRC-32C."""

    name: str
    size: int
    crc32c: int


@dataclass(frozen=True)
class Toc:
    """The decoded table: files in order, and the frames as a :data:`FRAME_DTYPE` array.

    ``first_frame[i]`` is the index of file ``i``'s first frame; its frames are
    ``frames[first_frame[i] : first_frame[i + 1]]`` (``first_frame`` has one more element).
    """

    files: tuple[FileRecord, ...]
    frames: np.ndarray
    first_frame: tuple[int, ...]


def encode_toc(files: list[FileRecord], frames: np.ndarray) -> bytes:
    """The table's bytes for ``files`` and ``frames`` (a :data:`FRAME_DTYPE` array).

    Nothing is checked: the writer builds valid tables, and tests build damaged ones.
    """
    parts = [TOC_HEAD.pack(len(files), len(frames)), np.ascontiguousarray(frames, FRAME_DTYPE)]
    for record in files:
        name = record.name.encode("utf-8", errors="surrogateescape")
        parts.append(FILE_RECORD.pack(record.size, record.crc32c, len(name)) + name)
    return b"".join(bytes(p) for p in parts)


def check_member_name(name: str, *, offset: int | None = None) -> str:
    """Rule A-TC-3: a member name is a relative POSIX path that stays inside its directory.

    Refused: the empty name, absolute names, empty, ``.`` and ``..`` components, backslashes
    and NUL bytes. Raises :class:`DataLossError` (with ``offset`` where the name was read).
    """
    problem = None
    if not name:
        problem = "is empty"
    elif name.startswith("/"):
        problem = "is absolute"
    elif "\\" in name or "\x00" in name:
        problem = "holds a backslash or NUL byte"
    elif any(part in ("", ".", "..") for part in name.split("/")):
        problem = "has an empty, '.' or '..' component"
    if problem is not None:
        raise DataLossError(f"member name {name!r} {problem}", offset=offset)
    return name


def decode_toc(data: bytes, frames_end: int) -> Toc:
    """Decode and check the table (rules A-TC-1 to A-TC-4).

    ``frames_end`` is where the frames end in the archive (the table's own offset): the
    frames must fill ``[HEADER_SIZE, frames_end)`` exactly, in order.
    """
    if len(data) < TOC_HEAD.size:
        raise DataLossError(
            f"table of contents of {len(data)} bytes is shorter than its {TOC_HEAD.size}-byte head",
            offset=0,
        )
    file_count, frame_count = TOC_HEAD.unpack_from(data)
    room = len(data) - TOC_HEAD.size
    # Rule A-TC-2: both counts must fit the bytes present before they size anything.
    if (
        frame_count > room // FRAME_RECORD.size
        or file_count > (room - frame_count * FRAME_RECORD.size) // FILE_RECORD.size
    ):
        raise DataLossError(
            f"table of contents claims {file_count} files and {frame_count} frames, more than "
            f"its {len(data)} bytes can hold",
            offset=0,
        )
    frames_at = TOC_HEAD.size
    frames = np.frombuffer(data, FRAME_DTYPE, count=frame_count, offset=frames_at)
    files_at = frames_at + frame_count * FRAME_RECORD.size
    files = _decode_files(data, files_at, file_count)
    first = _check_frames(frames, files, frames_at, frames_end)
    return Toc(files, frames, first)


def _decode_files(data: bytes, pos: int, count: int) -> tuple[FileRecord, ...]:
    files: list[FileRecord] = []
    seen: set[str] = set()
    for _ in range(count):
        if pos + FILE_RECORD.size > len(data):
            raise DataLossError("file record runs past the table of contents", offset=pos)
        size, crc, name_length = FILE_RECORD.unpack_from(data, pos)
        if size > MAX_MEMBER_SIZE:  # before it reaches an int64 column (rule A-TC-2)
            raise DataLossError(
                f"member size {size} exceeds the limit of {MAX_MEMBER_SIZE} bytes", offset=pos
            )
        name_at = pos + FILE_RECORD.size
        if name_length > MAX_NAME_BYTES or name_at + name_length > len(data):
            raise DataLossError(
                f"member name of {name_length} bytes runs past the table or the limit "
                f"of {MAX_NAME_BYTES}",
                offset=pos,
            )
        try:
            name = data[name_at : name_at + name_length].decode("utf-8")
        except UnicodeDecodeError:
            raise DataLossError("member name is not UTF-8", offset=name_at) from None
        check_member_name(name, offset=name_at)
        if name in seen:
            raise DataLossError(f"member {name!r} appears twice", offset=name_at)
        seen.add(name)
        files.append(FileRecord(name, size, crc))
        pos = name_at + name_length
    if pos != len(data):
        raise DataLossError(f"{len(data) - pos} stray bytes after the last file record", offset=pos)
    _check_no_file_is_a_directory(files)
    return tuple(files)


def _check_no_file_is_a_directory(files: list[FileRecord]) -> None:
    """No member may lie under another member (a file cannot also be a directory).

    Sorted as ``name + "/"``, the names under a member ``F`` follow ``F/`` directly, so
    comparing neighbours finds any such pair: O(n log n) comparisons of names, whatever
    their number of components (rule H-WK-1).
    """
    ordered = sorted(record.name + "/" for record in files)
    for outer, inner in zip(ordered, ordered[1:], strict=False):
        if inner.startswith(outer):
            raise DataLossError(f"member {inner[:-1]!r} lies under member {outer[:-1]!r}, a file")


def _check_frames(
    frames: np.ndarray, files: tuple[FileRecord, ...], frames_at: int, frames_end: int
) -> tuple[int, ...]:
    """Rule A-TC-4: frames are ordered by file and offset, tile every file exactly, and fill
    the archive between header and table without gaps. Returns each file's first frame."""
    n = len(frames)
    file_col = frames["file"].astype(np.int64)
    offset = frames["offset"].astype(np.int64)
    raw = frames["raw_length"].astype(np.int64)
    packed = frames["compressed_length"].astype(np.int64)
    start = frames["archive_offset"].astype(np.int64)
    sizes = np.array([f.size for f in files], dtype=np.int64)
    checks: list[tuple[np.ndarray, str]] = [
        (file_col >= len(files), "names a file beyond the file table"),
        ((raw < 1) | (raw > MAX_FRAME_RAW), f"raw length is not in [1, {MAX_FRAME_RAW}]"),
        ((packed < 1) | (packed > raw + (raw >> 7) + 1024), "compressed length is out of bounds"),
        (raw > packed * MAX_RATIO, f"raw length exceeds {MAX_RATIO} times the compressed length"),
        (frames["archive_offset"] > np.uint64(2**62), "archive offset is out of bounds"),
        (frames["offset"] > np.uint64(2**62), "file offset is out of bounds"),
        (_bad_filter(frames), "filter or element size is invalid"),
    ]
    if n:
        expected_start = np.concatenate(([HEADER_SIZE], (start + packed)[:-1]))
        checks.append((start != expected_start, "does not start where the previous frame ends"))
        same_file = np.concatenate(([False], file_col[1:] == file_col[:-1]))
        expected_offset = np.where(same_file, np.concatenate(([0], (offset + raw)[:-1])), 0)
        checks.append((offset != expected_offset, "does not continue its file where it left off"))
        checks.append(
            (np.concatenate(([False], file_col[1:] < file_col[:-1])), "is out of file order")
        )
    for bad, message in checks:
        hit = np.flatnonzero(bad)
        if hit.size:
            row = int(hit[0])
            raise DataLossError(
                f"frame {row} {message}: {_show_frame(frames[row])}",
                offset=frames_at + row * FRAME_RECORD.size,
            )
    end = int(start[-1] + packed[-1]) if n else HEADER_SIZE
    if end != frames_end:
        raise DataLossError(
            f"frames end at archive offset {end} but the table of contents starts at {frames_end}",
            offset=frames_at + max(n - 1, 0) * FRAME_RECORD.size,
        )
    counts = np.bincount(file_col, minlength=len(files)) if n else np.zeros(len(files), np.int64)
    first = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
    covered = np.zeros(len(files), dtype=np.int64)
    if n:
        np.add.at(covered, file_col, raw)
    wrong = np.flatnonzero(covered != sizes)
    if wrong.size:
        i = int(wrong[0])
        raise DataLossError(
            f"member {files[i].name!r} has {files[i].size} bytes but its frames hold "
            f"{int(covered[i])}",
            offset=frames_at + int(first[i]) * FRAME_RECORD.size,
        )
    return tuple(int(v) for v in first)


def _bad_filter(frames: np.ndarray) -> np.ndarray:
    kind = frames["filter"]
    size = frames["element_size"]
    none_ok = (kind == FILTER_NONE) & (size == 0)
    shuffle_ok = (kind == FILTER_SHUFFLE) & (size >= 2)
    result: np.ndarray = ~(none_ok | shuffle_ok)
    return result


def _show_frame(row: Any) -> str:
    return ", ".join(f"{name} {int(row[name])}" for name in FRAME_DTYPE.names or ())

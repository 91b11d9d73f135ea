"""The archive's header, footer and table of contents as bytes: literal layouts, round trips,
and every check of a damaged table (rules A-AR-2, A-AR-3, A-TC-1 to A-TC-4)."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dtckpt.archive import layout
from dtckpt.archive.layout import FileRecord, Footer
from dtckpt.errors import DataLossError, UnimplementedError
from tests.archive.helpers import frame_rows

MAGIC_HEX = "89 44 54 41 52 0d 0a 1a"


def test_header_bytes() -> None:
    assert layout.encode_header().hex(" ") == MAGIC_HEX + " 01 00 00 00 00 00 00 00"
    layout.decode_header(layout.encode_header())


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        (b"PK\x03\x04" + bytes(12), DataLossError, "not a dtckpt archive"),
        (layout.MAGIC + struct.pack("<II", 2, 0), UnimplementedError, "version 2"),
        (layout.MAGIC + struct.pack("<II", 1, 4), UnimplementedError, "flags 0x4"),
        (layout.MAGIC, DataLossError, "too short"),
    ],
)
def test_bad_headers(data: bytes, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        layout.decode_header(data)


def test_footer_bytes_and_bounds() -> None:
    footer = Footer(toc_offset=124, toc_length=142, toc_crc32c=0x48737D0A)
    data = layout.encode_footer(footer)
    assert data.hex(" ") == (
        "7c 00 00 00 00 00 00 00 8e 00 00 00 00 00 00 00 0a 7d 73 48 00 00 00 00 " + MAGIC_HEX
    )
    assert layout.decode_footer(data, 298) == footer
    with pytest.raises(DataLossError, match="does not end where the footer starts") as info:
        layout.decode_footer(data, 299)
    assert info.value.offset == 0
    with pytest.raises(DataLossError, match="truncated"):
        layout.decode_footer(data[:-1] + b"\x00", 298)
    big = Footer(16, layout.MAX_TOC_BYTES + 1, 0)
    with pytest.raises(DataLossError, match="exceeds the limit"):
        layout.decode_footer(layout.encode_footer(big), 16 + layout.MAX_TOC_BYTES + 1 + 32)
    flagged = data[:20] + b"\x01\x00\x00\x00" + data[24:]
    with pytest.raises(UnimplementedError, match="footer flags"):
        layout.decode_footer(flagged, 298)


def _table() -> tuple[list[FileRecord], np.ndarray]:
    files = [FileRecord("a.data-00000-of-00001", 12, 7), FileRecord("sub/a.index", 5, 9)]
    frames = frame_rows(
        [(0, 0, 8, 16, 10, 1, 1, 4), (0, 8, 4, 26, 6, 2, 0, 0), (1, 0, 5, 32, 9, 3, 0, 0)]
    )
    return files, frames


def test_toc_bytes() -> None:
    """One literal table: head, frame records, file records, in that order (rule A-TC-1)."""
    files = [FileRecord("x", 3, 0xA1B2C3D4)]
    frames = frame_rows([(0, 0, 3, 16, 12, 0xA1B2C3D4, 0, 0)])
    data = layout.encode_toc(files, frames)
    assert data.hex(" ") == " ".join(
        [
            "01 00 00 00",
            "01 00 00 00 00 00 00 00",
            "00 00 00 00",
            "00 00 00 00 00 00 00 00",
            "03 00 00 00",
            "10 00 00 00 00 00 00 00",
            "0c 00 00 00",
            "d4 c3 b2 a1",
            "00 00",
            "03 00 00 00 00 00 00 00",
            "d4 c3 b2 a1",
            "01 00",
            "78",
        ]
    )
    toc = layout.decode_toc(data, 28)
    assert toc.files == tuple(files) and toc.first_frame == (0, 1)
    assert toc.frames.tolist() == frames.tolist()


def test_toc_round_trip_and_first_frames() -> None:
    files, frames = _table()
    toc = layout.decode_toc(layout.encode_toc(files, frames), 41)
    assert toc.files == tuple(files)
    assert toc.first_frame == (0, 2, 3)


@st.composite
def tables(draw: st.DrawFn) -> tuple[list[FileRecord], np.ndarray, int]:
    """Valid tables: files of random sizes cut into random frames laid end to end."""
    count = draw(st.integers(0, 6))
    names = draw(
        st.lists(
            st.text("abcxyz-_.é0", min_size=1, max_size=8).filter(lambda t: t not in (".", "..")),
            min_size=count,
            max_size=count,
            unique=True,
        )
    )
    files, rows, position = [], [], layout.HEADER_SIZE
    for i, name in enumerate(sorted(names)):
        cuts = draw(st.lists(st.integers(1, 50), max_size=4))
        offset = 0
        for length in cuts:
            packed = draw(st.integers(1, length + 20))
            shuffled = draw(st.booleans())
            width = draw(st.integers(2, 9)) if shuffled else 0
            rows.append(
                (
                    i,
                    offset,
                    length,
                    position,
                    packed,
                    draw(st.integers(0, 2**32 - 1)),
                    int(shuffled),
                    width,
                )
            )
            offset += length
            position += packed
        files.append(FileRecord("d/" + name, offset, draw(st.integers(0, 2**32 - 1))))
    return files, frame_rows(rows), position


@settings(max_examples=100, deadline=None)
@given(table=tables())
def test_any_valid_table_round_trips(table: tuple[list[FileRecord], np.ndarray, int]) -> None:
    files, frames, end = table
    toc = layout.decode_toc(layout.encode_toc(files, frames), end)
    assert toc.files == tuple(files)
    assert toc.frames.tolist() == frames.tolist()
    for i in range(len(files)):
        rows = toc.frames[toc.first_frame[i] : toc.first_frame[i + 1]]
        assert int(rows["raw_length"].sum()) == files[i].size
        assert set(rows["file"].tolist()) <= {i}


FRAME0 = layout.TOC_HEAD.size  # where frame record 0 starts inside the table


def _set(row: int, field: str, value: int):  # type: ignore[no-untyped-def]
    """A change to ``_table()`` that sets one field of one frame record."""
    return lambda files, frames: frames[field].__setitem__(row, value)


@pytest.mark.parametrize(
    ("change", "message", "offset"),
    [
        (_set(0, "file", 5), "beyond the file table", FRAME0),
        (_set(1, "raw_length", 0), "raw length", FRAME0 + 34),
        (
            _set(1, "raw_length", layout.MAX_FRAME_RAW + 1),
            "raw length",
            FRAME0 + 34,
        ),
        (_set(2, "compressed_length", 5000), "compressed length", None),
        (_set(0, "raw_length", 10 * 32768 + 1), "32768 times", FRAME0),
        (_set(1, "archive_offset", 27), "previous frame ends", None),
        (_set(0, "archive_offset", 15), "previous frame ends", FRAME0),
        (_set(1, "offset", 9), "where it left off", FRAME0 + 34),
        (_set(0, "filter", 2), "filter", FRAME0),
        (_set(0, "element_size", 1), "filter", FRAME0),
        (_set(2, "element_size", 4), "filter", FRAME0 + 68),
        (
            _set(0, "archive_offset", 2**63),
            "archive offset is out of bounds",
            FRAME0,
        ),
        (lambda f, r: f.__setitem__(0, FileRecord(f[0].name, 13, 7)), "frames hold 12", FRAME0),
        (lambda f, r: f.__setitem__(1, FileRecord("../a.index", 5, 9)), "'..'", None),
        (lambda f, r: f.__setitem__(1, FileRecord("/etc/passwd", 5, 9)), "absolute", None),
        (lambda f, r: f.__setitem__(1, FileRecord("a\\b", 5, 9)), "backslash", None),
        (lambda f, r: f.__setitem__(1, FileRecord("a//b", 5, 9)), "empty", None),
        (lambda f, r: f.__setitem__(1, FileRecord("", 5, 9)), "is empty", None),
        (lambda f, r: f.__setitem__(1, FileRecord(f[0].name, 5, 9)), "appears twice", None),
        (
            lambda f, r: f.__setitem__(1, FileRecord(f[0].name + "/x", 5, 9)),
            "lies under member",
            None,
        ),
    ],
)
def test_damaged_tables(change, message: str, offset: int | None) -> None:  # type: ignore[no-untyped-def]
    files, frames = _table()
    frames = frames.copy()
    change(files, frames)
    with pytest.raises(DataLossError, match=message) as info:
        layout.decode_toc(layout.encode_toc(files, frames), 41)
    if offset is not None:
        assert info.value.offset == offset


def test_frames_must_end_at_the_table() -> None:
    files, frames = _table()
    with pytest.raises(DataLossError, match="frames end at archive offset 41"):
        layout.decode_toc(layout.encode_toc(files, frames), 42)


def test_frames_out_of_file_order() -> None:
    files = [FileRecord("a", 3, 0), FileRecord("b", 3, 0)]
    frames = frame_rows([(1, 0, 3, 16, 4, 0, 0, 0), (0, 0, 3, 20, 4, 0, 0, 0)])
    with pytest.raises(DataLossError, match="out of file order|where it left off"):
        layout.decode_toc(layout.encode_toc(files, frames), 24)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d[:4] + struct.pack("<Q", 2**40) + d[12:], "more than its"),
        (lambda d: struct.pack("<I", 2**31) + d[4:], "more than its"),
        (lambda d: d[:-3], "runs past|stray"),
        (lambda d: d + b"\x00", "stray bytes"),
        (lambda d: d[:6], "shorter than|more than"),
    ],
)
def test_bogus_counts_and_lengths(mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    files, frames = _table()
    with pytest.raises(DataLossError, match=message):
        layout.decode_toc(mutate(layout.encode_toc(files, frames)), 41)


def test_long_and_non_utf8_names() -> None:
    files, frames = _table()
    data = layout.encode_toc(files, frames)
    name_at = data.index(b"sub/a.index")
    with pytest.raises(DataLossError, match="not UTF-8") as info:
        layout.decode_toc(data[:name_at] + b"\xff" + data[name_at + 1 :], 41)
    assert info.value.offset == name_at
    long_name = data[: name_at - 2] + struct.pack("<H", 5000) + data[name_at:]
    with pytest.raises(DataLossError, match="limit of 4096"):
        layout.decode_toc(long_name, 41)

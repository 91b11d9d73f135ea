"""The ``.index`` SSTable: TF's constants, block layout, round trips and damage."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dtckpt.errors import DataLossError, UnimplementedError
from dtckpt.format.crc import crc32c, mask
from dtckpt.format.table import (
    shared_prefix,
    FOOTER_SIZE,
    decode_block,
    decode_table,
    encode_block,
    encode_table,
    find_short_successor,
    find_shortest_separator,
)

EMPTY_METAINDEX_ON_DISK = "00 00 00 00 01 00 00 00 00 c0 f2 a1 b0"


def test_empty_table_is_tf_constant_layout() -> None:
    data = encode_table([(b"", bytes.fromhex("08011a020801"))])
    # One data block, the empty metaindex block, the index block, the footer.
    assert data[-8:].hex(" ") == "57 fb 80 8b 24 75 47 db"
    assert EMPTY_METAINDEX_ON_DISK.replace(" ", "") in data.hex()
    assert decode_table(data) == [(b"", bytes.fromhex("08011a020801"))]


def test_block_prefix_compression_and_restarts() -> None:
    block = encode_block([(b"abc", b"1"), (b"abd", b"2"), (b"b", b"3")], restart_interval=2)
    # entry 1: shared 0; entry 2: shares "ab"; entry 3 starts a new restart (shared 0).
    assert block[:7].hex(" ") == "00 03 01 61 62 63 31"
    assert block[7:12].hex(" ") == "02 01 01 64 32"
    assert block[12:16].hex(" ") == "00 01 01 62"
    restarts = struct.unpack_from("<3I", block, len(block) - 12)
    assert restarts == (0, 12, 2)
    assert decode_block(block) == [(b"abc", b"1"), (b"abd", b"2"), (b"b", b"3")]


@pytest.mark.parametrize(
    "start, limit, expected",
    [
        (b"abc", b"abe", b"abd"),
        (b"abc", b"abd", b"abc"),
        (b"ab", b"abc", b"ab"),
        (b"a\xff", b"b", b"a\xff"),
        (b"714eef1d", b"7159", b"714eef1d"),
        (b"e3", b"e5", b"e4"),
    ],
)
def test_shortest_separator(start: bytes, limit: bytes, expected: bytes) -> None:
    assert find_shortest_separator(start, limit) == expected


def test_short_successor() -> None:
    assert find_short_successor(b"save_counter/x") == b"t"
    assert find_short_successor(b"\xff\xffa") == b"\xff\xffb"
    assert find_short_successor(b"\xff\xff") == b"\xff\xff"


keys = st.lists(st.binary(min_size=1, max_size=40), unique=True, max_size=300).map(sorted)


@settings(max_examples=60, deadline=None)
@given(keys, st.integers(1, 4096), st.integers(1, 20))
def test_table_round_trip(sorted_keys: list[bytes], block_size: int, interval: int) -> None:
    items = [(b"", b"header")] + [(k, k[::-1] * 3) for k in sorted_keys]
    data = encode_table(items, block_size=block_size, restart_interval=interval)
    assert decode_table(data) == items


def test_unsorted_keys_are_refused() -> None:
    with pytest.raises(ValueError):
        encode_table([(b"b", b""), (b"a", b"")])


def _small_table() -> bytes:
    return encode_table([(b"", b"h")] + [(b"key%03d" % i, b"v" * 10) for i in range(50)])


def test_truncated_table() -> None:
    data = _small_table()
    with pytest.raises(DataLossError, match="shorter than the 48-byte table footer"):
        decode_table(data[: FOOTER_SIZE - 1])
    with pytest.raises(DataLossError, match="bad magic"):
        decode_table(data[:-100])


def test_bad_magic_names_offset() -> None:
    data = bytearray(_small_table())
    data[-1] ^= 0xFF
    with pytest.raises(DataLossError, match="bad magic") as info:
        decode_table(bytes(data))
    assert info.value.offset == len(data) - 8


def test_flipped_byte_in_data_block() -> None:
    data = bytearray(_small_table())
    data[20] ^= 0x01
    with pytest.raises(DataLossError, match="block checksum mismatch") as info:
        decode_table(bytes(data))
    assert info.value.offset == 0


def test_snappy_block_is_unsupported() -> None:
    # The first block re-labelled "snappy" (type byte 1) with a valid checksum.
    items = [(b"", b"h")]
    block = encode_block(items, 16)
    kind = b"\x01"
    trailer = kind + struct.pack("<I", mask(crc32c(kind, crc32c(block))))
    good = encode_table(items)
    patched = block + trailer + good[len(block) + 5 :]
    with pytest.raises(UnimplementedError, match="Snappy"):
        decode_table(patched)


def test_corrupt_block_restart_count() -> None:
    with pytest.raises(DataLossError):
        decode_block(b"\x00\x00\x00\x00\xff\xff\x00\x00")
    with pytest.raises(DataLossError):
        decode_block(b"\x05\x01\x01a")  # shared > previous key, no room for restarts


def _shared_naive(a: bytes, b: bytes) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


@settings(max_examples=400, deadline=None)
@given(
    common=st.binary(max_size=300),
    a=st.binary(max_size=40),
    b=st.binary(max_size=40),
)
def test_shared_prefix_matches_a_byte_by_byte_count(common: bytes, a: bytes, b: bytes) -> None:
    # Long common parts take the big-integer path, short ones the loop; both are exact,
    # zero bytes included (a leading zero byte must not vanish from the integers).
    for x, y in ((common + a, common + b), (a, b), (common, common + b), (b"\0" + common, a)):
        assert shared_prefix(x, y) == _shared_naive(x, y)

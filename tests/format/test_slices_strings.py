"""Slice-spec parsing and DT_STRING encoding."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dtckpt.errors import DataLossError, InvalidArgumentError
from dtckpt.format.crc import mask
from dtckpt.format.slices import (
    format_shape_and_slice,
    format_slice,
    intersect,
    is_full,
    parse_shape_and_slice,
    parse_slice,
    resolve,
)
from dtckpt.format.strings import decode_string_tensor, encode_string_tensor


def test_parse_examples() -> None:
    assert parse_shape_and_slice("") is None
    assert parse_shape_and_slice("5 4 -:1,3") == ((5, 4), ((0, -1), (1, 3)))
    assert parse_shape_and_slice("4 6 0,2:-") == ((4, 6), ((0, 2), (0, -1)))
    assert format_slice(((0, -1), (1, 3))) == "-:1,3"
    assert format_shape_and_slice((5, 4), ((0, -1), (1, 3))) == "5 4 -:1,3"


@pytest.mark.parametrize(
    "spec",
    [
        "5",
        "5 4 -",
        "5 4 -:1,3,4",
        "5 4 -:1",
        "5 4 -:x,1",
        "5 4 -:1,0",
        "5 4 -:-1,2",
        "5 4 -:2,3",
        "a 4 -:-",
        "-5 4 -:-",
    ],
)
def test_parse_rejects(spec: str) -> None:
    with pytest.raises(InvalidArgumentError):
        parse_shape_and_slice(spec)


def test_box_helpers() -> None:
    assert resolve(((0, -1), (1, 3)), (5, 4)) == ((0, 5), (1, 3))
    assert is_full(((0, -1), (0, 4)), (5, 4))
    assert not is_full(((0, 2), (0, 4)), (5, 4))
    assert intersect(((0, 5), (1, 3)), ((2, 2), (0, 2))) == ((2, 2), (1, 1))
    assert intersect(((0, 2),), ((2, 2),)) is None
    assert parse_slice("", 0) == ()


def test_string_tensor_object_graph_example() -> None:
    # The object graph of a TF checkpoint: one 903-byte string, 909 bytes on disk.
    chunks, _, size = encode_string_tensor([b"x" * 903])
    assert size == 909
    assert chunks[0] == bytes.fromhex("8707")


def test_empty_string_tensor() -> None:
    chunks, crc, size = encode_string_tensor([])
    assert size == 4 and b"".join(chunks) == mask(0).to_bytes(4, "little")
    assert decode_string_tensor(b"".join(chunks), 0, crc).shape == (0,)


@given(st.lists(st.binary(max_size=300), max_size=20))
def test_string_round_trip(items: list[bytes]) -> None:
    chunks, crc, size = encode_string_tensor(items)
    raw = b"".join(chunks)
    assert len(raw) == size
    out = decode_string_tensor(raw, len(items), crc)
    assert list(out) == items and out.dtype == object


def test_string_damage() -> None:
    chunks, crc, _ = encode_string_tensor([b"hello", b"", b"\x01"])
    raw = bytearray(b"".join(chunks))
    bad_len = bytearray(raw)
    bad_len[0] ^= 0x01
    with pytest.raises(DataLossError, match="length checksum"):
        decode_string_tensor(bytes(bad_len), 3, crc)
    bad_body = bytearray(raw)
    bad_body[-1] ^= 0x01
    with pytest.raises(DataLossError, match="checksum does not match"):
        decode_string_tensor(bytes(bad_body), 3, crc)
    with pytest.raises(DataLossError, match="cannot fit"):
        decode_string_tensor(bytes(raw), 10**12, crc)
    with pytest.raises(DataLossError):
        decode_string_tensor(bytes(raw[:-1]), 3, crc)


def test_big_endian_string_lengths() -> None:
    # A big-endian writer checksums the lengths as big-endian words and
    # stores the masked length checksum big-endian.
    import struct

    from dtckpt.format.crc import crc32c

    items = [b"ab", b"cde"]
    lengths = b"\x02\x03"
    c = crc32c(struct.pack(">II", 2, 3))
    word = struct.pack(">I", mask(c))
    c = crc32c(word, c)
    c = crc32c(b"abcde", c)
    raw = lengths + word + b"abcde"
    out = decode_string_tensor(raw, 2, mask(c), big_endian=True)
    assert list(out) == items
    with pytest.raises(DataLossError):
        decode_string_tensor(raw, 2, mask(c), big_endian=False)
    assert np.asarray(out).shape == (2,)

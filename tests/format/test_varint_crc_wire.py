"""Varints, masked CRC32C and the protobuf wire codec: literal bytes and round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dtckpt.errors import DataLossError
from dtckpt.format import wire
from dtckpt.format.crc import MASK_DELTA, crc32c, mask, masked_crc32c, unmask
from dtckpt.format.varint import decode_varint, encode_varint, varint_size


@pytest.mark.parametrize(
    "value, encoded",
    [
        (0, "00"),
        (1, "01"),
        (127, "7f"),
        (128, "8001"),
        (300, "ac02"),
        (2**32, "8080808010"),
        (2**64 - 1, "ffffffffffffffffff01"),
    ],
)
def test_varint_literals(value: int, encoded: str) -> None:
    assert encode_varint(value).hex() == encoded
    assert decode_varint(bytes.fromhex(encoded)) == (value, len(encoded) // 2)
    assert varint_size(value) == len(encoded) // 2


@given(st.integers(0, 2**64 - 1), st.binary(max_size=4))
def test_varint_round_trip(value: int, tail: bytes) -> None:
    encoded = encode_varint(value)
    assert decode_varint(encoded + tail) == (value, len(encoded))


@pytest.mark.parametrize(
    "raw", ["", "80", "ffff", "ffffffffffffffffffff01", "ffffffffffffffffff7f"]
)
def test_varint_rejects_damage(raw: str) -> None:
    with pytest.raises(DataLossError) as info:
        decode_varint(bytes.fromhex(raw))
    assert info.value.offset == 0


def test_the_varint_table_is_the_encoding() -> None:
    # Every value the precomputed table answers, and the first ones past it, against
    # the 7-bits-a-byte rule spelled out.
    def reference(value: int) -> bytes:
        out = bytearray()
        while value >= 0x80:
            out.append((value & 0x7F) | 0x80)
            value >>= 7
        return bytes(out + bytes((value,)))

    for value in range(2**14 + 300):
        assert encode_varint(value) == reference(value)


def test_varint_rejects_out_of_range_values() -> None:
    with pytest.raises(ValueError):
        encode_varint(-1)
    with pytest.raises(ValueError):
        encode_varint(2**64)


def test_crc32c_known_answer_and_masks() -> None:
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"56789", crc32c(b"1234")) == 0xE3069283
    assert mask(0) == MASK_DELTA == 0xA282EAD8
    # The scalar int64 save_counter entry of a TF checkpoint stores 41de7501 (LE 01 75 de 41).
    assert masked_crc32c((1).to_bytes(8, "little")) == 0x41DE7501


@given(st.integers(0, 2**32 - 1))
def test_mask_round_trip(crc: int) -> None:
    assert unmask(mask(crc)) == crc


def test_wire_fields_literal() -> None:
    assert wire.field_varint(1, 150) == bytes.fromhex("089601")
    assert wire.field_varint(1, 0) == b""
    assert wire.field_varint(1, 0, keep_zero=True) == bytes.fromhex("0800")
    assert wire.field_bytes(2, b"abc") == bytes.fromhex("1203616263")
    assert wire.field_bytes(2, b"", keep_empty=True) == bytes.fromhex("1200")
    assert wire.field_fixed32(6, 0x173DDBC0) == bytes.fromhex("35c0db3d17")
    # Negative int32/int64 are sign-extended to ten varint bytes.
    assert wire.field_varint(1, -1) == bytes.fromhex("08ffffffffffffffffff01")


def test_iter_fields_all_wire_types() -> None:
    msg = (
        wire.field_varint(1, 7)
        + wire.field_bytes(2, b"xy")
        + wire.field_fixed32(3, 5)
        + wire.field_double(4, 1.5)
    )
    fields = [
        (n, t, bytes(v) if isinstance(v, memoryview) else v) for n, t, v in wire.iter_fields(msg)
    ]
    assert fields == [(1, 0, 7), (2, 2, b"xy"), (3, 5, 5), (4, 1, 0x3FF8000000000000)]


@pytest.mark.parametrize(
    "raw",
    ["12", "1205ab", "35abcd", "11ab", "0b", "00", "0f00"],
)
def test_iter_fields_rejects_damage(raw: str) -> None:
    with pytest.raises(DataLossError):
        list(wire.iter_fields(bytes.fromhex(raw)))


def test_signed_views() -> None:
    assert wire.as_int64(2**64 - 1) == -1
    assert wire.as_int32(2**64 - 1) == -1
    assert wire.as_int32(2**31) == -(2**31)

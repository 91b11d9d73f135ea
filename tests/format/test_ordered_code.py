"""OrderedCode slice keys: TF's verified examples, order preservation and round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dtckpt.errors import DataLossError
from dtckpt.format.ordered_code import (
    decode_signed_num_increasing,
    decode_string,
    decode_tensor_name_slice,
    encode_num_increasing,
    encode_signed_num_increasing,
    encode_string,
    encode_tensor_name_slice,
)


@pytest.mark.parametrize(
    "value, code",
    [
        (0, "80"),
        (5, "85"),
        (-1, "7f"),
        (63, "bf"),
        (-64, "40"),
        (64, "c040"),
        (100, "c064"),
        (-100, "3f9c"),
        (8192, "e02000"),
        (2**63 - 1, "ffc07fffffffffffffff"),
        (-(2**63), "003f8000000000000000"),
    ],
)
def test_signed_examples(value: int, code: str) -> None:
    assert encode_signed_num_increasing(value).hex() == code
    assert decode_signed_num_increasing(bytes.fromhex(code), 0) == (value, len(code) // 2)


@given(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=2, max_size=20))
def test_signed_code_preserves_order(values: list[int]) -> None:
    codes = [encode_signed_num_increasing(v) for v in values]
    assert [v for _, v in sorted(zip(codes, values))] == sorted(values)
    for code, v in zip(codes, values):
        assert decode_signed_num_increasing(code + b"\x00", 0) == (v, len(code))


def test_unsigned_examples() -> None:
    assert encode_num_increasing(0).hex() == "00"
    assert encode_num_increasing(2).hex() == "0102"
    assert encode_num_increasing(300).hex() == "02012c"


def test_string_escapes() -> None:
    assert encode_string(b"a\x00b\xff").hex(" ") == "61 00 ff 62 ff 00 00 01"
    assert decode_string(encode_string(b"a\x00b\xff") + b"zz", 0) == (b"a\x00b\xff", 8)
    with pytest.raises(DataLossError):
        decode_string(b"ab\x00\x02", 0)
    with pytest.raises(DataLossError):
        decode_string(b"abc", 0)


def test_tensor_name_slice_examples() -> None:
    assert encode_tensor_name_slice(b"foo", ((0, -1), (0, 1))).hex(" ") == (
        "00 66 6f 6f 00 01 01 02 80 7f 80 81"
    )
    assert encode_tensor_name_slice(b"foo", ((0, -1), (1, 3))).hex(" ").endswith("80 7f 81 83")


@given(
    st.binary(max_size=30),
    st.lists(st.tuples(st.integers(0, 2**40), st.integers(-1, 2**40)), max_size=6),
)
def test_tensor_name_slice_round_trip(name: bytes, extents: list[tuple[int, int]]) -> None:
    key = encode_tensor_name_slice(name, tuple(extents))
    assert key[0] == 0
    assert decode_tensor_name_slice(key) == (name, tuple(extents))


def test_decode_tensor_name_slice_rejects_garbage() -> None:
    with pytest.raises(DataLossError):
        decode_tensor_name_slice(b"foo")
    with pytest.raises(DataLossError):
        decode_tensor_name_slice(encode_tensor_name_slice(b"a", ((0, 1),)) + b"\x80")
    with pytest.raises(DataLossError):
        decode_tensor_name_slice(b"\x00a\x00\x01\x09")


def test_signed_codes_at_every_length_boundary() -> None:
    # The values either side of each power of two reach every code length, both signs.
    near = {b + d for k in range(64) for b in (1 << k, -(1 << k)) for d in (-1, 0, 1)}
    values = sorted(v for v in near if -(2**63) <= v < 2**63)
    codes = [encode_signed_num_increasing(v) for v in values]
    assert codes == sorted(codes)
    assert {len(c) for c in codes} == set(range(1, 11))
    for code, v in zip(codes, values):
        assert decode_signed_num_increasing(code, 0) == (v, len(code))

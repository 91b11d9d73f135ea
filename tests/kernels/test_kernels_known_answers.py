"""Literal known answers for the public kernels, on whichever backend is active."""

from __future__ import annotations

import crc32c
import numpy as np
import pytest

from dtckpt import kernels

VARINTS = [0, 1, 127, 128, 300, 2**32, 2**63 - 1]
VARINT_BYTES = bytes.fromhex("00017f8001ac028080808010ffffffffffffffff7f")


def test_backend_name() -> None:
    assert kernels.backend() in ("numba", "numpy")


def test_crc32c_check_value() -> None:
    # RFC 3720 B.4 / the usual CRC catalogue check value.
    assert kernels.crc32c_value(b"123456789") == 0xE3069283
    assert kernels.crc32c_value(b"") == 0


def test_crc32c_continue() -> None:
    assert kernels.crc32c_value(b"56789", kernels.crc32c_value(b"1234")) == 0xE3069283


def test_combine_known() -> None:
    a, b = b"1234", b"56789"
    assert kernels.crc32c_combine(crc32c.crc32c(a), crc32c.crc32c(b), len(b)) == 0xE3069283
    assert kernels.crc32c_combine(0x12345678, 0, 0) == 0x12345678


def test_combine_long_zero_run() -> None:
    zeros = bytes(3_000_001)
    got = kernels.crc32c_combine(crc32c.crc32c(b"abc"), crc32c.crc32c(zeros), len(zeros))
    assert got == crc32c.crc32c(b"abc" + zeros)


def test_parallel_matches_single_call() -> None:
    data = np.random.default_rng(7).integers(0, 256, 1_000_003, dtype=np.uint8)
    want = crc32c.crc32c(data)
    assert kernels.crc32c_parallel(data, chunk_size=65_536, workers=2) == want
    assert kernels.crc32c_parallel(data) == want


def test_encode_varints_literal() -> None:
    assert kernels.encode_varint_lengths(VARINTS).tobytes() == VARINT_BYTES


def test_decode_varints_literal() -> None:
    values, end = kernels.decode_varint_lengths(b"\xee" + VARINT_BYTES + b"tail", len(VARINTS), 1)
    assert values.dtype == np.int64
    assert values.tolist() == VARINTS
    assert end == 1 + len(VARINT_BYTES)


def test_decode_varint_errors_name_offset() -> None:
    with pytest.raises(ValueError, match="truncated varint at byte offset 3"):
        kernels.decode_varint_lengths(b"\x01\x02\x03\x80", 2, 2)
    with pytest.raises(ValueError, match="byte offset 1 is longer than 10 bytes"):
        kernels.decode_varint_lengths(b"\x00" + b"\xff" * 11, 2)
    with pytest.raises(ValueError, match="byte offset 0 exceeds 2"):
        kernels.decode_varint_lengths(b"\xff" * 9 + b"\x01", 1)


def test_copy_box_literal() -> None:
    # A 3x4 int16 tensor (8 bytes a row); take rows 1..2, columns 1..2 into a 2x2 tensor.
    src = np.arange(12, dtype="<i2")
    dst = np.zeros(4, dtype="<i2")
    kernels.copy_box(src.view(np.uint8), (3, 8), (1, 2), dst.view(np.uint8), (2, 4), (0, 0), (2, 4))
    assert dst.tolist() == [5, 6, 9, 10]


def test_copy_box_into_middle_of_larger_dst() -> None:
    dst = np.full(12, 0xAA, dtype=np.uint8)
    kernels.copy_box(b"\x01\x02\x03\x04", (2, 2), (0, 0), dst, (3, 4), (1, 1), (2, 2))
    assert dst.reshape(3, 4).tolist() == [
        [0xAA] * 4,
        [0xAA, 1, 2, 0xAA],
        [0xAA, 3, 4, 0xAA],
    ]


def test_copy_box_rank0_and_empty() -> None:
    dst = np.zeros(1, dtype=np.uint8)
    kernels.copy_box(b"\x07", (), (), dst, (), (), ())
    assert dst.tolist() == [7]
    kernels.copy_box(b"", (0, 3), (0, 0), np.zeros(0, np.uint8), (0, 3), (0, 0), (0, 3))


def test_copy_box_crc_literal() -> None:
    src = np.frombuffer(b"..123..456..789", dtype=np.uint8)  # a 3x5 byte array
    dst = np.zeros(9, dtype=np.uint8)
    assert kernels.copy_box_crc(src, (3, 5), (0, 2), dst, (3, 3)) == 0xE3069283
    assert dst.tobytes() == b"123456789"
    assert kernels.copy_box_crc(
        src, (3, 5), (0, 2), dst, (3, 3), value=0xE3069283
    ) == crc32c.crc32c(b"123456789" * 2)

"""Bad arguments are ValueErrors in both backends, raised before any compiled code runs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from kernel_impls import IMPL_NAMES, load_impl


@pytest.fixture(params=IMPL_NAMES)
def impl(request: pytest.FixtureRequest) -> Any:
    return load_impl(request.param)


SRC = np.arange(24, dtype=np.uint8)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (((4, 6), (0, 0), (2, 3), (0, 0), (2,)), "rank"),
        (((4, 6), (3, 0), (2, 3), (0, 0), (2, 3)), r"src box \[3, 5\) exceeds src_shape\[0\]"),
        (((4, 6), (0, 0), (2, 3), (0, 1), (2, 3)), r"dst box \[1, 4\) exceeds dst_shape\[1\]"),
        (((4, 5), (0, 0), (2, 3), (0, 0), (2, 3)), "src_shape .* holds 20 bytes"),
        (((4, 6), (0, 0), (3, 3), (0, 0), (2, 3)), "dst_shape .* holds 9 bytes"),
        (((4, 6), (0, -1), (2, 3), (0, 0), (2, 3)), "non-negative"),
        (((4, 6), (0, 0.5), (2, 3), (0, 0), (2, 3)), "integers"),
    ],
)
def test_copy_box_rejects(impl: Any, args: tuple, message: str) -> None:
    src_shape, src_origin, dst_shape, dst_origin, extent = args
    dst = np.zeros(6, dtype=np.uint8)
    with pytest.raises(ValueError, match=message):
        impl.copy_box(SRC, src_shape, src_origin, dst, dst_shape, dst_origin, extent)


def test_copy_box_rejects_bad_buffers(impl: Any) -> None:
    box = ((4, 6), (0, 0), (2, 3), (0, 0), (2, 3))
    with pytest.raises(ValueError, match="1-D uint8"):
        impl.copy_box(SRC.astype(np.int16), box[0], box[1], np.zeros(6, np.uint8), *box[2:])
    with pytest.raises(ValueError, match="writable"):
        impl.copy_box(SRC, box[0], box[1], np.frombuffer(bytes(6), np.uint8), *box[2:])
    with pytest.raises(ValueError, match="contiguous"):
        impl.copy_box(SRC, box[0], box[1], np.zeros(12, np.uint8)[::2], *box[2:])
    with pytest.raises(ValueError, match="share memory"):
        impl.copy_box(SRC, box[0], box[1], SRC[:6], *box[2:])


def test_copy_box_crc_rejects(impl: Any) -> None:
    with pytest.raises(ValueError, match="dst_shape"):
        impl.copy_box_crc(SRC, (4, 6), (0, 0), np.zeros(5, np.uint8), (2, 3))
    with pytest.raises(ValueError, match="value"):
        impl.copy_box_crc(SRC, (4, 6), (0, 0), np.zeros(6, np.uint8), (2, 3), value=2**32)


def test_crc_arguments_rejected(impl: Any) -> None:
    with pytest.raises(ValueError, match="crc_a"):
        impl.crc32c_combine(-1, 0, 0)
    with pytest.raises(ValueError, match="crc_b"):
        impl.crc32c_combine(0, 2**32, 0)
    with pytest.raises(ValueError, match="len_b"):
        impl.crc32c_combine(0, 0, -5)
    with pytest.raises(ValueError, match="workers"):
        impl.crc32c_parallel(b"abc", 1, 0)
    with pytest.raises(ValueError, match="chunk_size"):
        impl.crc32c_parallel(b"abc", 0, 2)
    with pytest.raises(ValueError, match="uint8"):
        impl.crc32c_value(np.zeros(3, np.float32))


def test_varint_arguments_rejected(impl: Any) -> None:
    with pytest.raises(ValueError, match="count"):
        impl.decode_varint_lengths(b"\x00", -1)
    with pytest.raises(ValueError, match="offset 5 is outside"):
        impl.decode_varint_lengths(b"\x00", 1, 5)
    with pytest.raises(ValueError, match="non-negative"):
        impl.encode_varint_lengths([1, -2])
    with pytest.raises(ValueError, match="integers"):
        impl.encode_varint_lengths([1.5])
    with pytest.raises(ValueError, match="1-D"):
        impl.encode_varint_lengths([[1]])
    with pytest.raises(ValueError, match="below 2"):
        impl.encode_varint_lengths(np.array([2**63], dtype=np.uint64))


def test_hardware_crc_request_on_cpu_without_sse42(monkeypatch: pytest.MonkeyPatch) -> None:
    jit = load_impl("jit")
    monkeypatch.setattr(jit, "HAVE_SSE42", False)
    with pytest.raises(ValueError, match="SSE4.2"):
        jit.copy_box_crc_fused(SRC, (4, 6), (0, 0), np.zeros(6, np.uint8), (2, 3), hardware=True)

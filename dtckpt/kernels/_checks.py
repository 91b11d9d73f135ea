"""Argument validation shared by both kernel backends.

Every public kernel, NumPy or Numba, runs its arguments through these checks before touching a
buffer, so that a bad shape or offset is a ``ValueError`` with a readable message and never an
out-of-bounds access inside compiled code. The checks work on Python integers, which cannot
overflow, and hand the kernels int64 arrays whose products are already known to fit.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

#: The largest value a varint length may decode to; TF stores string lengths as uint64, but a
#: length above int64 cannot describe bytes in any real file, so it is rejected as corrupt.
INT64_MAX = 2**63 - 1

#: Status codes returned by the varint decoders; 0 means success.
VARINT_OK = 0
VARINT_TRUNCATED = 1
VARINT_OVERFLOW = 2
VARINT_TOO_LARGE = 3


def as_byte_array(buf: object, name: str, *, writable: bool = False) -> npt.NDArray[np.uint8]:
    """Return ``buf`` as a 1-D contiguous uint8 array without copying.

    ndarrays must already be 1-D, C-contiguous uint8 (a silent copy of a destination would drop
    the written bytes); any other buffer-protocol object is wrapped with ``np.frombuffer``.
    """
    if isinstance(buf, np.ndarray):
        arr = buf
    else:
        try:
            arr = np.frombuffer(buf, dtype=np.uint8)  # type: ignore[call-overload]
        except TypeError as exc:
            raise ValueError(f"{name} must be a uint8 array or a bytes-like object") from exc
    if arr.dtype != np.uint8 or arr.ndim != 1:
        raise ValueError(
            f"{name} must be a 1-D uint8 array, got {arr.dtype} with shape {arr.shape}"
        )
    if not arr.flags.c_contiguous:
        raise ValueError(f"{name} must be contiguous")
    if writable and not arr.flags.writeable:
        raise ValueError(f"{name} must be writable")
    return arr


def as_index_tuple(values: Sequence[int], name: str) -> tuple[int, ...]:
    """Convert a sequence of integer-likes to a tuple of Python ints, rejecting floats and bools."""
    try:
        out = tuple(operator.index(v) for v in values)
    except TypeError as exc:
        raise ValueError(f"{name} must be a sequence of integers, got {values!r}") from exc
    if any(isinstance(v, bool) for v in values):
        raise ValueError(f"{name} must be a sequence of integers, got {values!r}")
    return out


@dataclass(frozen=True)
class Box:
    """A validated box copy: int64 arrays of one rank, in bytes on the last axis."""

    src_shape: npt.NDArray[np.int64]
    src_origin: npt.NDArray[np.int64]
    dst_shape: npt.NDArray[np.int64]
    dst_origin: npt.NDArray[np.int64]
    extent: npt.NDArray[np.int64]
    nbytes: int


def _int64(values: tuple[int, ...]) -> npt.NDArray[np.int64]:
    return np.array(values, dtype=np.int64).reshape(len(values))


def check_box(
    src: npt.NDArray[np.uint8],
    src_shape: Sequence[int],
    src_origin: Sequence[int],
    dst: npt.NDArray[np.uint8],
    dst_shape: Sequence[int],
    dst_origin: Sequence[int],
    extent: Sequence[int],
) -> Box:
    """Check that both boxes lie inside their buffers and that the buffers do not overlap."""
    fields = {
        "src_shape": as_index_tuple(src_shape, "src_shape"),
        "src_origin": as_index_tuple(src_origin, "src_origin"),
        "dst_shape": as_index_tuple(dst_shape, "dst_shape"),
        "dst_origin": as_index_tuple(dst_origin, "dst_origin"),
        "extent": as_index_tuple(extent, "extent"),
    }
    rank = len(fields["extent"])
    for key, value in fields.items():
        if len(value) != rank:
            raise ValueError(f"{key} has rank {len(value)} but extent has rank {rank}")
        if any(v < 0 for v in value):
            raise ValueError(f"{key} must be non-negative, got {value}")
    ext = fields["extent"]
    for side, buf in (("src", src), ("dst", dst)):
        shape, origin = fields[f"{side}_shape"], fields[f"{side}_origin"]
        if math.prod(shape) != buf.size:
            raise ValueError(
                f"{side}_shape {shape} holds {math.prod(shape)} bytes but {side} has {buf.size}"
            )
        for axis, (o, e, s) in enumerate(zip(origin, ext, shape, strict=True)):
            if o + e > s:
                raise ValueError(f"{side} box [{o}, {o + e}) exceeds {side}_shape[{axis}] = {s}")
    nbytes = math.prod(ext)
    if nbytes and np.may_share_memory(src, dst):
        raise ValueError("src and dst must not share memory")
    return Box(
        src_shape=_int64(fields["src_shape"]),
        src_origin=_int64(fields["src_origin"]),
        dst_shape=_int64(fields["dst_shape"]),
        dst_origin=_int64(fields["dst_origin"]),
        extent=_int64(fields["extent"]),
        nbytes=nbytes,
    )


def check_crc(value: int, name: str) -> int:
    """Check a CRC-32C value given as an argument."""
    value = operator.index(value)
    if not 0 <= value <= 0xFFFFFFFF:
        raise ValueError(f"{name} must be a 32-bit unsigned integer, got {value}")
    return value


def check_length(length: int, name: str) -> int:
    """Check a byte count; 2**63 bytes is beyond any buffer, so larger values are mistakes."""
    length = operator.index(length)
    if not 0 <= length <= INT64_MAX:
        raise ValueError(f"{name} must be in [0, 2**63), got {length}")
    return length


def check_varint_args(
    buf: object, count: int, offset: int
) -> tuple[npt.NDArray[np.uint8], int, int]:
    """Check the arguments of ``decode_varint_lengths``."""
    arr = as_byte_array(buf, "buf")
    count = operator.index(count)
    offset = operator.index(offset)
    if count < 0:
        raise ValueError(f"count must be non-negative, got {count}")
    if not 0 <= offset <= arr.size:
        raise ValueError(f"offset {offset} is outside the buffer of {arr.size} bytes")
    return arr, count, offset


def varint_error(status: int, offset: int) -> ValueError:
    """Build the error for a failed varint decode; both backends raise exactly this message."""
    if status == VARINT_TRUNCATED:
        return ValueError(f"truncated varint at byte offset {offset}")
    if status == VARINT_OVERFLOW:
        return ValueError(
            f"varint at byte offset {offset} is longer than 10 bytes or exceeds 64 bits"
        )
    return ValueError(f"varint length at byte offset {offset} exceeds 2**63 - 1")


def check_lengths(lengths: object) -> npt.NDArray[np.int64]:
    """Check the argument of ``encode_varint_lengths`` and return it as int64."""
    arr = np.asarray(lengths)
    if arr.ndim != 1:
        raise ValueError(f"lengths must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"lengths must be integers, got {arr.dtype}")
    if arr.dtype.kind == "u" and arr.dtype.itemsize == 8 and int(arr.max()) > INT64_MAX:
        raise ValueError("lengths must be below 2**63")
    out = arr.astype(np.int64)
    if int(out.min()) < 0:
        raise ValueError("lengths must be non-negative")
    return out

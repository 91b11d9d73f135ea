"""NumPy reference kernels: the specification that the Numba twins in ``jit`` must match.

Each function is the plainest fast NumPy form of its operation (slice assignment, vectorised
varints), validated by the same checks as the compiled twin, and raising the same errors.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from . import _algorithms as alg
from . import _checks as chk
from . import _threads
from ._crc32c import crc32c_module
from ._index_reference import decode_block_entries, parse_bundle_entries

_crc32c = crc32c_module()

_XPOW8N = alg.xpow8n_table()

__all__ = [
    "copy_box",
    "copy_box_crc",
    "crc32c_combine",
    "crc32c_parallel",
    "crc32c_value",
    "decode_block_entries",
    "decode_varint_lengths",
    "encode_varint_lengths",
    "parse_bundle_entries",
]


def _box_slices(origin: npt.NDArray[np.int64], extent: npt.NDArray[np.int64]) -> tuple[slice, ...]:
    return tuple(slice(int(o), int(o + e)) for o, e in zip(origin, extent, strict=True))


def copy_box(
    src: object,
    src_shape: Sequence[int],
    src_origin: Sequence[int],
    dst: npt.NDArray[np.uint8],
    dst_shape: Sequence[int],
    dst_origin: Sequence[int],
    extent: Sequence[int],
) -> None:
    """Copy ``src[src_origin : src_origin+extent]`` into ``dst[dst_origin : dst_origin+extent]``.

    ``src`` and ``dst`` are flat C-order byte buffers viewed with shapes ``src_shape`` and
    ``dst_shape``; all sizes are in bytes on the last axis.
    """
    s = chk.as_byte_array(src, "src")
    d = chk.as_byte_array(dst, "dst", writable=True)
    box = chk.check_box(s, src_shape, src_origin, d, dst_shape, dst_origin, extent)
    if box.nbytes == 0:
        return
    target = d.reshape(tuple(box.dst_shape))
    source = s.reshape(tuple(box.src_shape))
    target[_box_slices(box.dst_origin, box.extent)] = source[
        _box_slices(box.src_origin, box.extent)
    ]


def copy_box_crc(
    src: object,
    src_shape: Sequence[int],
    src_origin: Sequence[int],
    dst: npt.NDArray[np.uint8],
    extent: Sequence[int],
    value: int = 0,
) -> int:
    """Copy a box out of ``src`` into the whole of ``dst`` and return the CRC-32C of ``dst``.

    The CRC continues ``value`` (the CRC of preceding bytes; 0 for none).
    """
    ext = chk.as_index_tuple(extent, "extent")
    value = chk.check_crc(value, "value")
    copy_box(src, src_shape, src_origin, dst, ext, (0,) * len(ext), ext)
    return int(_crc32c.crc32c(dst, value))


def crc32c_combine(crc_a: int, crc_b: int, len_b: int) -> int:
    """Return the CRC-32C of A+B from ``crc(A)``, ``crc(B)`` and ``len(B)``."""
    return alg.combine(
        chk.check_crc(crc_a, "crc_a"),
        chk.check_crc(crc_b, "crc_b"),
        chk.check_length(len_b, "len_b"),
        _XPOW8N,
    )


def crc32c_parallel(
    buf: object, chunk_size: int | None = None, workers: int = 2, value: int = 0
) -> int:
    """CRC-32C of ``buf`` hashed as ``chunk_size`` chunks on ``workers`` threads."""
    return _threads.parallel_crc(buf, value, chunk_size, workers, crc32c_combine)


def crc32c_value(buf: object, value: int = 0) -> int:
    """CRC-32C of ``buf`` continuing ``value``; large buffers are hashed in parallel."""
    return _threads.crc_value(buf, value, crc32c_combine)


def decode_varint_lengths(
    buf: object, count: int, offset: int = 0
) -> tuple[npt.NDArray[np.int64], int]:
    """Decode ``count`` LEB128 varints starting at ``offset``; return them and the end offset.

    These are the uint64 length prefixes of a DT_STRING tensor (TF ``tensor_bundle.cc``). A
    varint is at most 10 bytes; one that runs past the buffer, is longer, overflows 64 bits or
    exceeds 2**63 - 1 raises ``ValueError`` naming the byte offset where it starts.
    """
    arr, count, offset = chk.check_varint_args(buf, count, offset)
    if count == 0:
        return np.zeros(0, dtype=np.int64), offset
    # ``count`` valid varints fit in 10 * count bytes, so nothing beyond that window is read.
    window = arr[offset : offset + 10 * count]
    ends = np.flatnonzero(window < 0x80)[:count]
    starts = np.concatenate(([0], ends[:-1] + 1))
    sizes = ends - starts + 1
    last = window[ends].astype(np.int64)
    overflow = (sizes > 10) | ((sizes == 10) & (last > 1))
    group = np.repeat(np.arange(ends.size), sizes)
    pos = np.arange(group.size) - starts[group]
    payload = (window[: group.size] & 0x7F).astype(np.uint64)
    payload[pos >= 10] = 0
    shift = (7 * np.minimum(pos, 9)).astype(np.uint64)
    values = np.add.reduceat(payload << shift, starts) if ends.size else np.zeros(0, np.uint64)
    too_large = ~overflow & (values > np.uint64(chk.INT64_MAX))
    bad = np.flatnonzero(overflow | too_large)
    if bad.size:
        first = int(bad[0])
        status = chk.VARINT_OVERFLOW if overflow[first] else chk.VARINT_TOO_LARGE
        raise chk.varint_error(status, offset + int(starts[first]))
    if ends.size < count:
        tail = int(ends[-1]) + 1 if ends.size else 0
        status = chk.VARINT_OVERFLOW if window.size - tail >= 10 else chk.VARINT_TRUNCATED
        raise chk.varint_error(status, offset + tail)
    return values.astype(np.int64), offset + int(ends[-1]) + 1


def encode_varint_lengths(lengths: object) -> npt.NDArray[np.uint8]:
    """Encode non-negative integers as consecutive LEB128 varints (the inverse of decoding)."""
    values = chk.check_lengths(lengths)
    sizes = np.ones(values.size, dtype=np.int64)
    for k in range(1, 10):
        sizes += values >= (1 << (7 * k))
    out = np.empty(int(sizes.sum()), dtype=np.uint8)
    starts = np.cumsum(sizes) - sizes
    for k in range(10):
        live = sizes > k
        if not live.any():
            break
        more = (sizes[live] > k + 1).astype(np.int64) << 7
        out[starts[live] + k] = ((values[live] >> (7 * k)) & 0x7F) | more
    return out


# --- byte shuffle -------------------------------------------------------------------------

__all__ += ["check_shuffle_args", "shuffle_bytes", "unshuffle_bytes"]


def check_shuffle_args(
    src: object, itemsize: int, dst: object
) -> tuple[npt.NDArray[np.uint8], int, npt.NDArray[np.uint8]]:
    """Check the arguments of ``shuffle_bytes``/``unshuffle_bytes`` (both backends call this).

    ``src`` is any 1-D bytes-like buffer, ``dst`` a writable uint8 array of the same size that
    shares no memory with it, and ``itemsize`` a positive integer dividing that size.
    """
    s = chk.as_byte_array(src, "src")
    d = chk.as_byte_array(dst, "dst", writable=True)
    if isinstance(itemsize, bool):
        raise ValueError(f"itemsize must be an integer, got {itemsize!r}")
    try:
        k = operator.index(itemsize)
    except TypeError as exc:
        raise ValueError(f"itemsize must be an integer, got {itemsize!r}") from exc
    if k < 1:
        raise ValueError(f"itemsize must be at least 1, got {k}")
    if s.size != d.size:
        raise ValueError(f"src has {s.size} bytes but dst has {d.size}")
    if s.size % k:
        raise ValueError(f"{s.size} bytes are not a whole number of {k}-byte items")
    if s.size and np.may_share_memory(s, d):
        raise ValueError("src and dst must not share memory")
    return s, k, d


def shuffle_bytes(src: object, itemsize: int, dst: npt.NDArray[np.uint8]) -> None:
    """Byte-shuffle ``src``, ``n`` items of ``itemsize`` bytes, into ``dst``: byte ``j`` of item
    ``i`` goes to ``dst[j * n + i]``, so ``dst`` holds every item's byte 0, then every byte 1...

    Neighbouring floats share sign and exponent bytes; gathered into planes they form long
    runs that a general-purpose compressor finds (the shuffle filter of HDF5 and Blosc).
    """
    s, k, d = check_shuffle_args(src, itemsize, dst)
    n = s.size // k
    items = s.reshape(n, k)
    # One strided column per plane: NumPy copies these about 4x faster than one transpose.
    for j in range(k):
        d[j * n : (j + 1) * n] = items[:, j]


def unshuffle_bytes(src: object, itemsize: int, dst: npt.NDArray[np.uint8]) -> None:
    """The inverse of :func:`shuffle_bytes`: ``dst[i * itemsize + j] = src[j * n + i]``."""
    s, k, d = check_shuffle_args(src, itemsize, dst)
    n = s.size // k
    items = d.reshape(n, k)
    for j in range(k):
        items[:, j] = s[j * n : (j + 1) * n]

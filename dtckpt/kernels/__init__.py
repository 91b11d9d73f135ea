"""Byte-level kernels behind the checkpoint reader and writer, with one backend chosen once.

Two modules implement the same functions: ``reference`` in NumPy, the specification, and
``jit``, its Numba twins. The first call to any function here picks ``jit`` unless the
environment variable ``DTCKPT_DISABLE_NUMBA`` is set to a non-empty value other than ``0``
or Numba cannot be imported, in which case it picks ``reference`` (msgpack's
accelerated/fallback pattern). Nothing is imported at import time, so ``import dtckpt`` stays
cheap and never loads Numba.

Box copies work on flat C-order byte buffers; shapes, origins and extents count bytes on the
last axis (callers multiply it by the item size), which lets one kernel serve every dtype.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "SMALL_WORK_BYTES",
    "sized",
    "backend",
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

#: The environment variable that forces the NumPy reference backend.
DISABLE_NUMBA_ENV = "DTCKPT_DISABLE_NUMBA"

_impl: ModuleType | None = None


def _numba_disabled() -> bool:
    return os.environ.get(DISABLE_NUMBA_ENV, "") not in ("", "0")


def _load() -> ModuleType:
    global _impl
    if _impl is None:
        impl: ModuleType
        if _numba_disabled():
            from . import reference as impl
        else:
            try:
                import numba  # noqa: F401
            except Exception:  # a broken install is as good as none: fall back, do not fail
                from . import reference as impl
            else:
                from . import jit as impl
        _impl = impl
    return _impl


#: Work below this many bytes runs on the NumPy twins: importing Numba and loading compiled
#: kernels costs more than they would save on it.
SMALL_WORK_BYTES = 1 << 20

#: While Numba is not loaded yet, jobs below this many bytes also stay on the twins: the
#: first use costs about 0.2-0.25 s (importing Numba, loading the cached kernels), which the
#: slowest twin (index decoding, about 13 MB/s) only repays on a few MB. This keeps a cold
#: ``dtckpt inspect`` of a 10,000-tensor checkpoint (a 0.6 MB index) free of Numba.
COLD_START_BYTES = 4 << 20


def sized(nbytes: int, threshold: int | None = None) -> ModuleType:
    """The kernel module for a job of ``nbytes``: ``reference`` below ``threshold`` (default
    :data:`SMALL_WORK_BYTES`; at least :data:`COLD_START_BYTES` until the backend is
    loaded), else the chosen backend. Both modules have the functions of
    this package under the same names."""
    limit = SMALL_WORK_BYTES if threshold is None else threshold
    if _impl is None:
        limit = max(limit, COLD_START_BYTES)
    if nbytes < limit:
        from . import reference

        return reference
    return _load()


def backend() -> str:
    """Return ``"numba"`` or ``"numpy"``: the backend the kernels here use."""
    return "numba" if _load().__name__.endswith(".jit") else "numpy"


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

    ``src`` (any bytes-like, may be read-only) and ``dst`` (writable uint8 array) are flat C-order
    buffers of shapes ``src_shape``/``dst_shape``; all five sequences share one rank >= 0 and
    count bytes on the last axis. The buffers must not overlap. Raises ``ValueError`` if a box
    leaves its buffer.
    """
    _load().copy_box(src, src_shape, src_origin, dst, dst_shape, dst_origin, extent)


def copy_box_crc(
    src: object,
    src_shape: Sequence[int],
    src_origin: Sequence[int],
    dst: npt.NDArray[np.uint8],
    extent: Sequence[int],
    value: int = 0,
) -> int:
    """Copy the box ``src[src_origin : src_origin+extent]`` into all of ``dst`` (``dst.size`` must
    equal the box's bytes) and return the CRC-32C of ``dst``, continuing ``value``."""
    return int(_load().copy_box_crc(src, src_shape, src_origin, dst, extent, value))


def crc32c_combine(crc_a: int, crc_b: int, len_b: int) -> int:
    """Return the CRC-32C of A+B from ``crc(A)``, ``crc(B)`` and ``len(B)``."""
    return int(_load().crc32c_combine(crc_a, crc_b, len_b))


def crc32c_parallel(
    buf: object, chunk_size: int | None = None, workers: int = 2, value: int = 0
) -> int:
    """CRC-32C of ``buf`` (continuing ``value``), hashed as chunks of ``chunk_size`` bytes (default:
    one per worker) on ``workers`` threads and joined with ``crc32c_combine``."""
    return int(_load().crc32c_parallel(buf, chunk_size, workers, value))


def crc32c_value(buf: object, value: int = 0) -> int:
    """CRC-32C of ``buf`` continuing ``value``: one call for small buffers, parallel for large."""
    return int(_load().crc32c_value(buf, value))


def decode_block_entries(
    block: object, limit: int, max_key_bytes: int | None = None
) -> tuple[
    npt.NDArray[np.uint8], npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]
]:
    """Decode every entry of one SSTable block (``dtckpt.format.table`` rules F-IX-1..2).

    ``block`` (uint8 array or bytes) is the block without its 5-byte trailer; its entries end at
    ``limit`` (``len(block) - 4 - 4 * num_restarts``; the caller checks ``num_restarts``).
    Returns ``(keys, key_offsets, value_offsets, value_lengths)``: the full keys concatenated
    as uint8, key ``i`` being ``keys[key_offsets[i]:key_offsets[i + 1]]`` (``n + 1`` int64
    offsets), and value ``i`` being ``block[value_offsets[i]:][:value_lengths[i]]`` (int64).

    A damaged entry raises ``ValueError("corrupt block entry at byte offset N: ...")``, ``N``
    being where the entry starts in ``block``: a varint that runs past ``limit`` or is longer
    than 5 bytes, a ``shared`` count above the previous key's length, or a key suffix and
    value that run past ``limit``. ``limit`` outside ``[0, len(block)]`` is a ``ValueError``.

    Prefix compression lets a small block describe huge keys (each entry may repeat most of
    the previous key for three bytes); ``max_key_bytes`` bounds their total, and a block
    whose keys would exceed it raises ``ValueError`` before anything that size is allocated.
    """
    result: tuple[
        npt.NDArray[np.uint8], npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]
    ] = _load().decode_block_entries(block, limit, max_key_bytes)
    return result


def decode_varint_lengths(
    buf: object, count: int, offset: int = 0
) -> tuple[npt.NDArray[np.int64], int]:
    """Decode ``count`` LEB128 varints at ``offset`` (DT_STRING length prefixes) into int64; return
    them and the offset after the last. Truncated, over-long (> 10 bytes / 64 bits) or > 2**63 - 1
    varints raise ``ValueError`` naming the varint's byte offset."""
    result: tuple[npt.NDArray[np.int64], int] = _load().decode_varint_lengths(buf, count, offset)
    return result


def encode_varint_lengths(lengths: object) -> npt.NDArray[np.uint8]:
    """Encode a 1-D sequence of non-negative integers as consecutive LEB128 varints."""
    result: npt.NDArray[np.uint8] = _load().encode_varint_lengths(lengths)
    return result


def parse_bundle_entries(
    blob: object, starts: object, ends: object
) -> tuple[
    npt.NDArray[np.bool_],
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
]:
    """Decode many ``BundleEntryProto`` messages (``tensor_bundle.proto``) into columns.

    Entry ``i`` is ``blob[starts[i]:ends[i]]`` (``blob``: uint8 array or bytes; ``starts`` and
    ``ends``: 1-D integer arrays of one length whose ranges lie inside ``blob``, else
    ``ValueError``). Returns ``(simple, dtype, shard_id, offset, size, crc32c, dims_offsets,
    dims)``: ``simple`` is bool, the rest int64; entry ``i``'s shape is
    ``dims[dims_offsets[i]:dims_offsets[i + 1]]``.

    ``simple[i]`` is True when the entry has TensorFlow's usual form: single-byte tags
    08 12 18 20 28 35 only, dims written ``12 00`` or ``12 len 08 varint``, varints as
    ``decode_varint`` takes them, ``offset``/``size``/``dtype``/dims below 2**63 and
    ``shard_id`` below 2**31; the columns then hold exactly what the generic protobuf decoder
    (``dtckpt.format.messages.decode_entry``) reads. Other rows (slices, unknown fields,
    damage) hold zeros and no dims: decode them with ``decode_entry``. Nothing here raises for
    damaged entries.
    """
    result: tuple[
        npt.NDArray[np.bool_],
        npt.NDArray[np.int64],
        npt.NDArray[np.int64],
        npt.NDArray[np.int64],
        npt.NDArray[np.int64],
        npt.NDArray[np.int64],
        npt.NDArray[np.int64],
        npt.NDArray[np.int64],
    ] = _load().parse_bundle_entries(blob, starts, ends)
    return result


__all__ += ["shuffle_bytes", "unshuffle_bytes"]


def shuffle_bytes(src: object, itemsize: int, dst: npt.NDArray[np.uint8]) -> None:
    """Byte-shuffle ``src`` into ``dst`` (the archive's shuffle filter, rule A-FR-3).

    ``src`` (any 1-D bytes-like) holds ``n`` items of ``itemsize`` bytes; ``dst`` (a writable
    uint8 array of the same size, not overlapping ``src``) receives byte 0 of every item, then
    byte 1 of every item, and so on: ``dst[j * n + i] = src[i * itemsize + j]``. A size that
    is not a whole number of items, or bad buffers, raise ``ValueError``.
    """
    _load().shuffle_bytes(src, itemsize, dst)


def unshuffle_bytes(src: object, itemsize: int, dst: npt.NDArray[np.uint8]) -> None:
    """The inverse of :func:`shuffle_bytes`: ``dst[i * itemsize + j] = src[j * n + i]``."""
    _load().unshuffle_bytes(src, itemsize, dst)

"""Numba twins of the bulk ``.index`` decoders in ``_index_reference``; ``jit`` re-exports them.

Compiled code does no bounds checking of its own, so every read below is guarded by an explicit
comparison with the end of the region it may touch, and the Python wrappers validate the
arguments first (``_index.check_*``). Kernels return a status code and a byte offset; the
wrappers turn a failure into the same ``ValueError`` the reference raises.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from . import _index as idx
from ._llvm import memcpy

__all__ = ["decode_block_entries", "parse_bundle_entries"]

_jit = numba.njit(cache=True, nogil=True)

# Globals read by compiled code are frozen into it as constants.
_INT64_LIMIT = np.uint64(idx.INT64_LIMIT)
_SHARD_ID_LIMIT = np.uint64(idx.SHARD_ID_LIMIT)


# --- SSTable block entries ----------------------------------------------------------------


@_jit
def _varint32(buf, pos, limit):  # type: ignore[no-untyped-def]
    """Return ``(status, value, next_pos)`` for the varint32 at ``buf[pos:limit]``."""
    value = 0
    for shift in range(0, 7 * idx.MAX_VARINT32_BYTES, 7):
        if pos >= limit:
            return idx.BLOCK_TRUNCATED_VARINT, 0, pos
        byte = buf[pos]
        pos += 1
        value |= np.int64(byte & 0x7F) << shift
        if byte < 0x80:
            return idx.BLOCK_OK, value, pos
    return idx.BLOCK_LONG_VARINT, 0, pos


@_jit
def _entry_header(buf, pos, limit, key_length):  # type: ignore[no-untyped-def]
    """Decode and check one entry's three varints; return ``(status, shared, non_shared,
    value_length, pos)`` with ``pos`` at the key suffix."""
    status, shared, pos = _varint32(buf, pos, limit)
    if status != idx.BLOCK_OK:
        return status, 0, 0, 0, pos
    status, non_shared, pos = _varint32(buf, pos, limit)
    if status != idx.BLOCK_OK:
        return status, 0, 0, 0, pos
    status, value_length, pos = _varint32(buf, pos, limit)
    if status != idx.BLOCK_OK:
        return status, 0, 0, 0, pos
    if shared > key_length:
        return idx.BLOCK_BAD_SHARED, 0, 0, 0, pos
    if non_shared + value_length > limit - pos:
        return idx.BLOCK_PAST_LIMIT, 0, 0, 0, pos
    return idx.BLOCK_OK, shared, non_shared, value_length, pos


@_jit
def _scan_block(buf, limit):  # type: ignore[no-untyped-def]
    """Check every entry; return ``(status, entry_offset, count, key_bytes)``, the last two
    sizing the outputs exactly before anything is allocated."""
    pos = 0
    count = 0
    key_length = 0
    key_bytes = 0
    while pos < limit:
        entry = pos
        status, shared, non_shared, value_length, pos = _entry_header(buf, pos, limit, key_length)
        if status != idx.BLOCK_OK:
            return status, entry, count, key_bytes
        key_length = shared + non_shared
        key_bytes += key_length
        pos += non_shared + value_length
        count += 1
    return idx.BLOCK_OK, 0, count, key_bytes


@_jit
def _fill_block(buf, limit, count, key_bytes):  # type: ignore[no-untyped-def]
    """Decode the ``count`` entries that ``_scan_block`` has checked."""
    keys = np.empty(key_bytes, dtype=np.uint8)
    key_offsets = np.empty(count + 1, dtype=np.int64)
    value_offsets = np.empty(count, dtype=np.int64)
    value_lengths = np.empty(count, dtype=np.int64)
    key_offsets[0] = 0
    pos = 0
    key_start = 0
    key_length = 0
    for i in range(count):
        _, shared, non_shared, value_length, pos = _entry_header(buf, pos, limit, key_length)
        out = key_offsets[i]
        # The previous key ends where this one starts, so the two copies never overlap.
        memcpy(keys, out, keys, key_start, shared)
        memcpy(keys, out + shared, buf, pos, non_shared)
        key_start = out
        key_length = shared + non_shared
        key_offsets[i + 1] = out + key_length
        pos += non_shared
        value_offsets[i] = pos
        value_lengths[i] = value_length
        pos += value_length
    return keys, key_offsets, value_offsets, value_lengths


def decode_block_entries(
    block: object, limit: int, max_key_bytes: int | None = None
) -> tuple[
    npt.NDArray[np.uint8], npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]
]:
    """Decode the entries in ``block[:limit]``; return ``(keys, key_offsets, value_offsets,
    value_lengths)``. See ``dtckpt.kernels.decode_block_entries``."""
    arr, limit = idx.check_block_args(block, limit)
    status, entry, count, key_bytes = _scan_block(arr, limit)
    if status != idx.BLOCK_OK:
        raise idx.block_entry_error(int(status), int(entry))
    if max_key_bytes is not None and key_bytes > max_key_bytes:
        raise idx.key_budget_error(max_key_bytes)
    return _fill_block(arr, limit, count, key_bytes)  # type: ignore[no-any-return]


# --- BundleEntryProto ---------------------------------------------------------------------


@_jit
def _varint64(buf, pos, end):  # type: ignore[no-untyped-def]
    """Return ``(ok, value, next_pos)`` for the varint at ``buf[pos:end]`` under
    ``dtckpt.format.varint.decode_varint``'s rules (at most 10 bytes, at most 2**64 - 1)."""
    value = np.uint64(0)
    shift = 0
    while pos < end:
        byte = buf[pos]
        pos += 1
        if shift == 63 and byte > 1:
            return False, value, pos
        value |= np.uint64(byte & 0x7F) << np.uint64(shift)
        if byte < 0x80:
            return True, value, pos
        shift += 7
    return False, value, pos


@_jit
def _parse_entry(buf, pos, n, dims, first):  # type: ignore[no-untyped-def]
    """Parse the entry ``buf[pos:n]``, writing its dims from ``dims[first]`` on.

    Returns ``(simple, dtype, shard_id, offset, size, crc32c, dims_end)``. Mirrors the
    reference twin (``_index_reference``) statement by statement: each read past ``n`` that
    would raise IndexError there is preceded here by a comparison that makes it not simple.
    """
    dtype = np.uint64(0)
    shard_id = np.uint64(0)
    offset = np.uint64(0)
    size = np.uint64(0)
    crc = 0
    k = first
    huge_dim = False
    while pos < n:
        tag = buf[pos]
        if tag == idx.TAG_CRC32C:
            if pos + 5 > n:
                return False, 0, 0, 0, 0, 0, first
            crc = (
                np.int64(buf[pos + 1])
                | np.int64(buf[pos + 2]) << 8
                | np.int64(buf[pos + 3]) << 16
                | np.int64(buf[pos + 4]) << 24
            )
            pos += 5
            continue
        ok, value, pos = _varint64(buf, pos + 1, n)
        if not ok:
            return False, 0, 0, 0, 0, 0, first
        if tag == idx.TAG_DTYPE:
            dtype = value
        elif tag == idx.TAG_SHAPE:
            if value > np.uint64(n - pos):
                return False, 0, 0, 0, 0, 0, first
            end = pos + np.int64(value)
            k = first
            huge_dim = False
            while pos < end:
                # Every dim takes two bytes or more of the entry, so the room the caller makes,
                # (entry bytes) // 2 + 1, always suffices; the check on k costs nothing.
                if buf[pos] != idx.TAG_DIM or pos + 1 >= n or k >= dims.shape[0]:
                    return False, 0, 0, 0, 0, 0, first
                length = np.int64(buf[pos + 1])
                if length == 0:
                    dims[k] = 0
                    k += 1
                    pos += 2
                    continue
                if pos + 2 >= n or buf[pos + 2] != idx.TAG_DIM_SIZE or length > idx.MAX_DIM_BYTES:
                    return False, 0, 0, 0, 0, 0, first
                ok, dim, after = _varint64(buf, pos + 3, n)
                if not ok or after != pos + 2 + length:
                    return False, 0, 0, 0, 0, 0, first
                huge_dim |= dim >= _INT64_LIMIT
                dims[k] = np.int64(dim)
                k += 1
                pos = after
            if pos != end:
                return False, 0, 0, 0, 0, 0, first
        elif tag == idx.TAG_SHARD_ID:
            shard_id = value
        elif tag == idx.TAG_OFFSET:
            offset = value
        elif tag == idx.TAG_SIZE:
            size = value
        else:  # slices (0x3a), unknown fields, multi-byte tags
            return False, 0, 0, 0, 0, 0, first
    if (
        offset >= _INT64_LIMIT
        or size >= _INT64_LIMIT
        or shard_id >= _SHARD_ID_LIMIT
        or dtype >= _INT64_LIMIT
        or huge_dim
    ):
        return False, 0, 0, 0, 0, 0, first
    return True, np.int64(dtype), np.int64(shard_id), np.int64(offset), np.int64(size), crc, k


@_jit
def _parse_entries(blob, starts, ends):  # type: ignore[no-untyped-def]
    n = starts.shape[0]
    simple = np.zeros(n, dtype=np.bool_)
    columns = np.zeros((5, n), dtype=np.int64)
    dims_offsets = np.empty(n + 1, dtype=np.int64)
    # Room for a few dims an entry, grown by doubling; sized per entry by its byte count.
    dims = np.empty(4 * n + 16, dtype=np.int64)
    count = 0
    for i in range(n):
        start = starts[i]
        end = ends[i]
        need = count + (end - start) // 2 + 1
        if need > dims.shape[0]:
            grown = np.empty(max(need, 2 * dims.shape[0]), dtype=np.int64)
            grown[:count] = dims[:count]
            dims = grown
        dims_offsets[i] = count
        ok, dtype, shard_id, offset, size, crc, k = _parse_entry(blob, start, end, dims, count)
        if ok:
            simple[i] = True
            columns[0, i] = dtype
            columns[1, i] = shard_id
            columns[2, i] = offset
            columns[3, i] = size
            columns[4, i] = crc
            count = k
    dims_offsets[n] = count
    return simple, columns, dims_offsets, dims[:count].copy()


def parse_bundle_entries(
    blob: object, starts: object, ends: object
) -> tuple[npt.NDArray[Any], ...]:
    """Decode the simple ``BundleEntryProto`` messages ``blob[starts[i]:ends[i]]`` into columns
    ``(simple, dtype, shard_id, offset, size, crc32c, dims_offsets, dims)``. See
    ``dtckpt.kernels.parse_bundle_entries``."""
    arr, lo, hi = idx.check_entry_ranges(blob, starts, ends)
    simple, columns, dims_offsets, dims = _parse_entries(arr, lo, hi)
    return (simple, *columns, dims_offsets, dims)

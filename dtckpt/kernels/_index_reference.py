"""Reference (pure Python) twins of the bulk ``.index`` decoders; ``reference`` re-exports them.

Both loop over ``bytes`` objects, whose indexing yields Python ints cheaply, and build NumPy
columns only at the end. Layouts, status codes and the acceptance rules live in ``_index``.
"""

from __future__ import annotations

from itertools import chain
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _index as idx

__all__ = ["decode_block_entries", "parse_bundle_entries"]

#: The columns of a row that ``parse_bundle_entries`` leaves to the generic decoder.
_NOT_SIMPLE: tuple[int, int, int, int, int, list[int]] = (0, 0, 0, 0, 0, [])


def _as_bytes(buf: object, arr: npt.NDArray[np.uint8]) -> bytes:
    return buf if isinstance(buf, bytes) else arr.tobytes()


# --- SSTable block entries ----------------------------------------------------------------


def _varint32(data: bytes, pos: int, limit: int, entry: int) -> tuple[int, int]:
    value = 0
    for shift in range(0, 7 * idx.MAX_VARINT32_BYTES, 7):
        if pos >= limit:
            raise idx.block_entry_error(idx.BLOCK_TRUNCATED_VARINT, entry)
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
    raise idx.block_entry_error(idx.BLOCK_LONG_VARINT, entry)


def decode_block_entries(
    block: object, limit: int, max_key_bytes: int | None = None
) -> tuple[
    npt.NDArray[np.uint8], npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]
]:
    """Decode the entries in ``block[:limit]``; return ``(keys, key_offsets, value_offsets,
    value_lengths)``. See ``dtckpt.kernels.decode_block_entries``."""
    arr, limit = idx.check_block_args(block, limit)
    data = _as_bytes(block, arr)
    keys = bytearray()
    key_offsets = [0]
    value_offsets: list[int] = []
    value_lengths: list[int] = []
    key = b""
    pos = 0
    while pos < limit:
        entry = pos
        # TF's keys are short and its values small, so three one-byte varints are the rule.
        if pos + 3 <= limit and data[pos] < 0x80 and data[pos + 1] < 0x80 and data[pos + 2] < 0x80:
            shared, non_shared, value_length = data[pos], data[pos + 1], data[pos + 2]
            pos += 3
        else:
            shared, pos = _varint32(data, pos, limit, entry)
            non_shared, pos = _varint32(data, pos, limit, entry)
            value_length, pos = _varint32(data, pos, limit, entry)
        if shared > len(key):
            raise idx.block_entry_error(idx.BLOCK_BAD_SHARED, entry)
        if non_shared + value_length > limit - pos:
            raise idx.block_entry_error(idx.BLOCK_PAST_LIMIT, entry)
        key = key[:shared] + data[pos : pos + non_shared]
        keys += key
        if max_key_bytes is not None and len(keys) > max_key_bytes:
            raise idx.key_budget_error(max_key_bytes)
        key_offsets.append(len(keys))
        pos += non_shared
        value_offsets.append(pos)
        value_lengths.append(value_length)
        pos += value_length
    return (
        np.frombuffer(keys, dtype=np.uint8),
        np.array(key_offsets, dtype=np.int64),
        np.array(value_offsets, dtype=np.int64).reshape(-1),
        np.array(value_lengths, dtype=np.int64).reshape(-1),
    )


# --- BundleEntryProto ---------------------------------------------------------------------


def _varint64(b: bytes, pos: int) -> tuple[int, int]:
    """The varint at ``b[pos:]`` under ``dtckpt.format.varint.decode_varint``'s rules, or -1 for
    one that decoder rejects (longer than 10 bytes, above 2**64 - 1). A truncated varint raises
    IndexError, which the caller takes as a read past the entry's end."""
    byte = b[pos]
    if byte < 0x80:
        return byte, pos + 1
    value = byte & 0x7F
    byte = b[pos + 1]
    if byte < 0x80:  # offsets, sizes and dims below 2**14 take two bytes
        return value | byte << 7, pos + 2
    value |= (byte & 0x7F) << 7
    pos += 2
    for shift in range(14, 70, 7):
        byte = b[pos]
        pos += 1
        if shift == 63 and byte > 1:
            return -1, pos
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
    return -1, pos  # unreachable: the tenth byte either ends the varint or is rejected


_TAG_CRC32C, _TAG_DTYPE, _TAG_SHAPE = idx.TAG_CRC32C, idx.TAG_DTYPE, idx.TAG_SHAPE
_TAG_SHARD_ID, _TAG_OFFSET, _TAG_SIZE = idx.TAG_SHARD_ID, idx.TAG_OFFSET, idx.TAG_SIZE
_TAG_DIM, _TAG_DIM_SIZE, _MAX_DIM_BYTES = idx.TAG_DIM, idx.TAG_DIM_SIZE, idx.MAX_DIM_BYTES


def _parse_entry(b: bytes) -> tuple[int, int, int, int, int, list[int]] | None:
    """``(dtype, shard_id, offset, size, crc32c, dims)`` of a simple entry, else None.

    This is the specification of "simple": straight-line parsing of TF's usual encoding; any
    read past the entry's end, or anything unusual, makes the entry not simple. Varints of one
    byte (most values and dimensions) and of two (offsets and sizes below 2**14) are read
    inline: a 10,000-entry index runs this loop 60,000 times (V-CL-4).
    """
    n = len(b)
    pos = 0
    dtype = shard_id = offset = size = crc = 0
    dims: list[int] = []
    try:
        while pos < n:
            tag = b[pos]
            if tag == _TAG_CRC32C:
                if pos + 5 > n:
                    return None
                crc = int.from_bytes(b[pos + 1 : pos + 5], "little")
                pos += 5
                continue
            value = b[pos + 1]
            if value < 0x80:
                pos += 2
            elif b[pos + 2] < 0x80:  # offsets and sizes below 2**14
                value = (value & 0x7F) | b[pos + 2] << 7
                pos += 3
            else:
                value, pos = _varint64(b, pos + 1)
                if value < 0:
                    return None
            if tag == _TAG_DTYPE:
                dtype = value
            elif tag == _TAG_SHAPE:
                end = pos + value
                if end > n:
                    return None
                dims = []
                while pos < end:
                    if b[pos] != _TAG_DIM:
                        return None
                    length = b[pos + 1]
                    if length == 0:
                        dims.append(0)
                        pos += 2
                        continue
                    if b[pos + 2] != _TAG_DIM_SIZE or length > _MAX_DIM_BYTES:
                        return None
                    dim = b[pos + 3]
                    if dim < 0x80:
                        after = pos + 4
                    else:
                        dim, after = _varint64(b, pos + 3)
                        if dim < 0:
                            return None
                    if after != pos + 2 + length:
                        return None
                    dims.append(dim)
                    pos = after
                if pos != end:
                    return None
            elif tag == _TAG_SHARD_ID:
                shard_id = value
            elif tag == _TAG_OFFSET:
                offset = value
            elif tag == _TAG_SIZE:
                size = value
            else:  # slices (0x3a), unknown fields, multi-byte tags
                return None
    except IndexError:
        return None
    if (
        offset >= idx.INT64_LIMIT
        or size >= idx.INT64_LIMIT
        or shard_id >= idx.SHARD_ID_LIMIT
        or dtype >= idx.INT64_LIMIT
        or (dims and max(dims) >= idx.INT64_LIMIT)
    ):
        return None
    return dtype, shard_id, offset, size, crc, dims


def parse_bundle_entries(
    blob: object, starts: object, ends: object
) -> tuple[npt.NDArray[Any], ...]:
    """Decode the simple ``BundleEntryProto`` messages ``blob[starts[i]:ends[i]]`` into columns
    ``(simple, dtype, shard_id, offset, size, crc32c, dims_offsets, dims)``. See
    ``dtckpt.kernels.parse_bundle_entries``."""
    arr, lo, hi = idx.check_entry_ranges(blob, starts, ends)
    data = _as_bytes(blob, arr)
    rows = [_parse_entry(data[a:b]) for a, b in zip(lo.tolist(), hi.tolist(), strict=True)]
    simple = np.array([row is not None for row in rows], dtype=np.bool_).reshape(-1)
    full = [_NOT_SIMPLE if row is None else row for row in rows]
    columns = np.array([row[:5] for row in full], dtype=np.int64).reshape(-1, 5).T.copy()
    dims_offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(np.array([len(row[5]) for row in full], dtype=np.int64), out=dims_offsets[1:])
    dims = np.fromiter(chain.from_iterable(row[5] for row in full), np.int64, dims_offsets[-1])
    return (simple, *columns, dims_offsets, dims)

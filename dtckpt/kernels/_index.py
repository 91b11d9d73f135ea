"""What both backends share for decoding a ``.index`` file in bulk: the byte layouts, the status
codes the compiled kernels return, the error messages, and argument validation.

One SSTable block entry (LevelDB ``table/block.cc``, ``DecodeEntry``)::

    shared:varint32 non_shared:varint32 value_length:varint32 key_suffix[non_shared] value
    key = previous_key[:shared] + key_suffix

A ``varint32`` is at most 5 bytes. Its value is taken in full (up to 35 bits) rather than cut to
32 bits as LevelDB's ``GetVarint32Ptr`` does; a value above 2**32 - 1 then fails the bounds
checks, as it does in ``dtckpt.format.table.decode_block``.

One ``BundleEntryProto`` as TensorFlow writes it (``tensor_bundle.proto``), every tag one byte::

    08 dtype | 12 len shape | 18 shard_id | 20 offset | 28 size | 35 crc32c:fixed32 | 3a slices...
    shape = (12 len (08 size)?)*            each dim: "12 00" (size 0) or "12 len 08 varint"

``parse_bundle_entries`` decodes the entries of exactly that form (the *simple* ones) and marks
the rest for the generic protobuf decoder (``dtckpt.format.messages.decode_entry``), which
reads every simple entry to the same values. A final dtype or shape dim of 2**63 or more (which
an int64 column cannot hold) makes the entry not simple too.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np
import numpy.typing as npt

from ._checks import INT64_MAX, as_byte_array

#: The longest varint32 (LevelDB ``kMaxVarint32Bytes``).
MAX_VARINT32_BYTES = 5

#: Status codes of the block decoders; 0 means success, the others name the damage.
BLOCK_OK = 0
BLOCK_TRUNCATED_VARINT = 1
BLOCK_LONG_VARINT = 2
BLOCK_BAD_SHARED = 3
BLOCK_PAST_LIMIT = 4

_BLOCK_REASONS = {
    BLOCK_TRUNCATED_VARINT: "a varint runs past the end of the entries",
    BLOCK_LONG_VARINT: "a varint32 is longer than 5 bytes",
    BLOCK_BAD_SHARED: "it shares more bytes than the previous key has",
    BLOCK_PAST_LIMIT: "its key suffix and value run past the end of the entries",
}

#: ``BundleEntryProto`` tags: (field number << 3) | wire type.
TAG_DTYPE = 0x08
TAG_SHAPE = 0x12
TAG_SHARD_ID = 0x18
TAG_OFFSET = 0x20
TAG_SIZE = 0x28
TAG_CRC32C = 0x35
#: ``TensorShapeProto.dim`` (field 2, LEN) and ``Dim.size`` (field 1, VARINT).
TAG_DIM = 0x12
TAG_DIM_SIZE = 0x08
#: A dim's message is its tag byte plus a varint64 of at most 10 bytes.
MAX_DIM_BYTES = 11

#: Limits past which an entry is left to the generic decoder (which maps a uint64 on the wire
#: to a negative int64 or int32); the dtype and dim limits exist because the columns are int64.
SHARD_ID_LIMIT = 2**31
INT64_LIMIT = 2**63


def _read_only(arr: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """A read-only view: Numba compiles (and caches) one version of a kernel per writability,
    so handing it only read-only arrays halves the compiling and the cache loads."""
    if not arr.flags.writeable:
        return arr
    view: npt.NDArray[Any] = arr.view()
    view.flags.writeable = False
    return view


def key_budget_error(max_key_bytes: int) -> ValueError:
    """The error both twins raise when a block's keys would exceed ``max_key_bytes``."""
    return ValueError(f"the keys of this block expand past the limit of {max_key_bytes} bytes")


def block_entry_error(status: int, offset: int) -> ValueError:
    """Build the error for a damaged block entry; both backends raise exactly this message."""
    return ValueError(f"corrupt block entry at byte offset {offset}: {_BLOCK_REASONS[status]}")


def check_block_args(block: object, limit: int) -> tuple[npt.NDArray[np.uint8], int]:
    """Check the arguments of ``decode_block_entries``."""
    arr = as_byte_array(block, "block")
    limit = operator.index(limit)
    if not 0 <= limit <= arr.size:
        raise ValueError(f"limit {limit} is outside the block of {arr.size} bytes")
    return _read_only(arr), limit


def _as_int64_vector(values: object, name: str) -> npt.NDArray[np.int64]:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must be integers, got {arr.dtype}")
    if arr.dtype.kind == "u" and arr.dtype.itemsize == 8 and int(arr.max()) > INT64_MAX:
        raise ValueError(f"{name} must be below 2**63")
    return np.ascontiguousarray(arr, dtype=np.int64)


def check_entry_ranges(
    blob: object, starts: object, ends: object
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Check the arguments of ``parse_bundle_entries``: every ``blob[starts[i]:ends[i]]`` must be
    a range inside ``blob``, so that the kernels may index it without further checks."""
    arr = as_byte_array(blob, "blob")
    lo = _as_int64_vector(starts, "starts")
    hi = _as_int64_vector(ends, "ends")
    if lo.shape != hi.shape:
        raise ValueError(f"starts has {lo.size} entries but ends has {hi.size}")
    bad = np.flatnonzero((lo < 0) | (lo > hi) | (hi > arr.size))
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"entry {i} spans [{int(lo[i])}, {int(hi[i])}), "
            f"which is not a range inside the blob of {arr.size} bytes"
        )
    return _read_only(arr), _read_only(lo), _read_only(hi)

"""The decoded ``.index`` of a bundle: the header and every entry, held as columns.

::

    PREFIX.index bytes
      --table.data_blocks-->            verified data blocks
      --kernels.decode_block_entries--> keys + value spans      (one call per block)
      --kernels.parse_bundle_entries--> dtype | shard_id | offset | size | crc32c | dims
                                        one row per entry, all entries in one call

A checkpoint index can hold hundreds of thousands of entries, and listing
them should not cost a Python object per protobuf field. Entries are kept as
columns and turned into :class:`BundleEntry` records only when asked for.
Rows that the batch parser does not call *simple* (partitioned full entries,
unusual encodings, damage) and rows that fail the vectorised checks go
through the generic decoder and :func:`validate_entry`, which raise the
precise error; the checks are the same either way (rule F-RD-2).

Hostile indexes (``spec/hostile-input.md``): every error names the index file
(rule H-ER-1); sizes are checked against shapes with exact integers (H-BD-4);
decoding holds a bounded amount of memory (H-AL-1). Both kernel backends are
fuzzed against each other (H-FZ-1) and the inputs that once broke them are
replayed by the tests (H-FZ-2).
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterable
from itertools import pairwise
from typing import Any

import numpy as np

from .. import kernels
from ..dtypes import DataType, info
from ..errors import CheckpointError, DataLossError, InvalidArgumentError, TensorNotFoundError
from .messages import BIG, LITTLE, BundleEntry, BundleHeader, decode_entry, decode_header
from .ordered_code import encode_tensor_name_slice
from .slices import resolve
from .table import KEY_BYTES_BASE as _TABLE_KEY_BYTES_BASE
from .table import KEY_BYTES_PER_BYTE, data_blocks, entries_limit

__all__ = [
    "BundleIndex",
    "validate_entry",
    "check_header",
    "element_count",
    "VERSION",
    "MIN_PRODUCER",
    "MAX_RANK",
]

# Rule F-IX-3: kTensorBundleVersion / kTensorBundleMinProducer.
VERSION = 1
MIN_PRODUCER = 0
_MAX_FAST_RANK = 32
#: Indexes of at most this many entries skip the columns: their entries are decoded, with
#: every check, one at a time when first asked for (as the columns' doubtful rows are).
_FEW_ENTRIES = 8
#: Indexes smaller than this are decoded by the pure-Python twins: for a few
#: thousand entries that is quicker than importing Numba in a fresh process.
BATCH_THRESHOLD = 64 << 10
#: Keys are prefix-compressed, so an index can describe far more key bytes than
#: it holds. Real checkpoints stay far below this bound (a few times the index
#: size); a forged one is refused before the keys are materialised (rule H-BD-5,
#: the same bound as ``table.key_budget``; kept here so that tests can lower it).
KEY_BYTES_BASE = _TABLE_KEY_BYTES_BASE
KEY_BYTES_PER_INDEX_BYTE = KEY_BYTES_PER_BYTE

# itemsize per DataType value: > 0 fixed width, 0 variable width, -1 not storable.
_ITEMSIZE = np.full(64, -1, dtype=np.int64)
for _value in DataType:
    try:
        _ITEMSIZE[int(_value)] = info(_value).itemsize
    except CheckpointError:
        pass


def _show(key: bytes) -> str:
    return key.decode("utf-8", errors="backslashreplace")


def check_header(header: BundleHeader, path: str) -> None:
    """Version and sanity checks of a bundle header (rule F-IX-3)."""
    version = header.version
    where: dict[str, Any] = {"path": path, "key": b""}
    if version.producer < MIN_PRODUCER:
        raise InvalidArgumentError(
            f"checkpoint producer version {version.producer} is below the minimum "
            f"{MIN_PRODUCER} supported by this reader",
            **where,
        )
    if version.min_consumer > VERSION:
        raise InvalidArgumentError(
            f"checkpoint needs a reader of version {version.min_consumer} or newer; "
            f"this reader is version {VERSION}",
            **where,
        )
    if VERSION in version.bad_consumers:
        raise InvalidArgumentError(f"checkpoint disallows readers of version {VERSION}", **where)
    if header.endianness not in (LITTLE, BIG):
        raise DataLossError(f"unknown endianness {header.endianness}", **where)
    if header.num_shards < 0:
        raise DataLossError(f"negative num_shards {header.num_shards}", **where)


def validate_entry(key: bytes, entry: BundleEntry, num_shards: int, path: str) -> None:
    """Everything about an entry that can be checked without its data file (rule F-RD-2).

    Element counts and byte sizes are exact Python integers, so a shape that
    claims terabytes fails here or against the data file's size, before
    anything of its size is allocated (rule H-BD-4).
    """
    where: dict[str, Any] = {"path": path, "key": key}
    try:
        row = info(entry.dtype)
    except CheckpointError:
        raise DataLossError(f"unknown dtype enum {entry.dtype}", **where) from None
    if any(d < 0 for d in entry.shape):
        raise DataLossError(f"invalid shape {_show_shape(entry.shape)}", **where)
    for tensor_slice in entry.slices:
        try:
            resolve(tensor_slice, entry.shape, what="stored slice")
        except InvalidArgumentError as exc:
            raise DataLossError(exc.message, **where) from None
    if entry.slices:
        if key.startswith(b"\x00"):  # a slice key: its own bytes are stored, so its size
            # must be checked against its shape; an entry with slices is never checked (H-BD-8)
            raise DataLossError("a slice entry lists slices of its own", **where)
        return
    if not 0 <= entry.shard_id < max(num_shards, 0):
        raise DataLossError(
            f"shard_id {entry.shard_id} is outside the {num_shards} shards of the header", **where
        )
    if entry.offset < 0 or entry.size < 0:
        raise DataLossError(f"negative offset/size {entry.offset}/{entry.size}", **where)
    numel = _element_count(entry.shape)
    if row.is_string:
        # One varint byte per element at least, then the 4-byte length checksum.
        if numel is None or numel + 4 > entry.size:
            raise DataLossError(
                f"string entry of {_show_count(numel)} elements cannot fit in {entry.size} bytes",
                **where,
            )
    elif not row.is_variable_width and (numel is None or numel * row.itemsize != entry.size):
        nbytes = _show_count(None if numel is None else numel * row.itemsize)
        raise DataLossError(
            f"entry size {entry.size} does not match {row.name} shape "
            f"{_show_shape(entry.shape)} ({nbytes} bytes)",
            **where,
        )


_INT64_MAX = (1 << 63) - 1
_SHOWN_DIMS = 16


def element_count(shape: tuple[int, ...] | list[int]) -> int | None:
    """The product of ``shape`` (dims already non-negative), or None above int64.

    No tensor of any reader can hold more bytes than that, and stopping there keeps the
    work linear: the exact product of a forged shape of thousands of huge dims takes
    quadratic time, and its decimal form may be too long for ``str`` (rule H-BD-4). Every
    reader (bundles, ``.npy`` headers, ``.safetensors`` headers) multiplies shapes here.
    """
    if 0 in shape:
        return 0
    numel = 1
    for d in shape:
        numel *= d
        if numel > _INT64_MAX:
            return None
    return numel


_element_count = element_count


def _numpy_max_rank() -> int:
    for rank in (64, 32):
        try:
            np.empty((1,) * rank, dtype=np.uint8)
        except ValueError:
            continue
        return rank
    return 32  # pragma: no cover - every NumPy holds 32


#: The most dimensions a NumPy array can have (``NPY_MAXDIMS``: 64 since NumPy 2.0, 32
#: before). TensorFlow writes tensors of up to 254 dimensions; readers refuse more than
#: this with a typed error before reading any data (rule H-BD-7).
MAX_RANK = _numpy_max_rank()


def _show_count(count: int | None) -> str:
    return "more than 2**63" if count is None else str(count)


def _show_shape(shape: tuple[int, ...]) -> str:
    if len(shape) <= _SHOWN_DIMS:
        return str(list(shape))
    head = ", ".join(str(d) for d in shape[:_SHOWN_DIMS])
    return f"[{head}, ... ({len(shape)} dims)]"


def _column(values: np.ndarray) -> array[int]:
    return array("q", values.astype(np.int64).tobytes())


class BundleIndex:
    """The header and entries of one ``.index`` file, decoded from its bytes."""

    def __init__(self, data: bytes | memoryview, path: str) -> None:
        self.path = path
        self._kernels = kernels.sized(len(data), BATCH_THRESHOLD)
        try:
            keys, starts, ends = self._decode_blocks(data)
        except CheckpointError as exc:
            raise exc.located(path=path) from None
        if not keys or keys[0] != b"":
            raise DataLossError("no bundle header under the empty key", path=path)
        try:
            self.header = decode_header(data[starts[0] : ends[0]])
        except CheckpointError as exc:
            raise DataLossError(
                f"cannot parse bundle header: {exc.message}", path=path, key=b""
            ) from None
        check_header(self.header, path)
        self.keys: list[bytes] = keys[1:]
        self._parse_columns(data, starts[1:], ends[1:])
        self._cache: dict[int, BundleEntry] = {}
        self._visible: list[bytes] | None = None
        self._visible_set: frozenset[bytes] | None = None

    # -- decoding ------------------------------------------------------------
    def _decode_blocks(
        self, data: bytes | memoryview
    ) -> tuple[list[bytes], np.ndarray, np.ndarray]:
        array = np.frombuffer(data, dtype=np.uint8)
        keys: list[bytes] = []
        starts, ends = [], []
        key_budget = KEY_BYTES_BASE + KEY_BYTES_PER_INDEX_BYTE * len(data)
        for offset, size in data_blocks(data):
            block = array[offset : offset + size]
            try:
                limit = entries_limit(block)
                key_buf, key_offsets, value_offsets, value_lengths = (
                    self._kernels.decode_block_entries(block, limit, key_budget)
                )
            except DataLossError as exc:
                raise exc.located(base_offset=offset) from None
            except ValueError as exc:
                raise DataLossError(f"corrupt block: {exc}", offset=offset) from None
            key_budget -= key_buf.size
            joined = key_buf.tobytes()
            del key_buf  # rule H-AL-1: hold the keys twice at most, not three times
            bounds = key_offsets.tolist()
            block_keys = [joined[a:b] for a, b in pairwise(bounds)]
            if keys and block_keys and block_keys[0] <= keys[-1]:
                raise DataLossError("keys out of order", key=block_keys[0], offset=offset)
            for previous, key in pairwise(block_keys):
                if key <= previous:
                    raise DataLossError("keys out of order", key=key, offset=offset)
            keys.extend(block_keys)
            starts.append(value_offsets + offset)
            ends.append(value_offsets + value_lengths + offset)
        if not starts:
            return keys, np.zeros(0, np.int64), np.zeros(0, np.int64)
        return keys, np.concatenate(starts), np.concatenate(ends)

    def _parse_columns(
        self, data: bytes | memoryview, entry_starts: np.ndarray, entry_ends: np.ndarray
    ) -> None:
        n = len(self.keys)
        if n <= _FEW_ENTRIES:
            # A bundle of a handful of entries (one per device or per merged part) costs
            # less decoded entry by entry, with every check, when first asked for.
            self._ok = bytearray(n)
            self._dtype = self._shard = self._offset = self._size = self._crc = array("q")
            self._dims_offsets, self._dims = array("q", bytes(8 * (n + 1))), array("q")
            bounds = zip(entry_starts.tolist(), entry_ends.tolist(), strict=True)
            self._slow_rows = {row: data[a:b] for row, (a, b) in enumerate(bounds)}
            return
        blob = np.frombuffer(data, dtype=np.uint8)
        columns = self._kernels.parse_bundle_entries(blob, entry_starts, entry_ends)
        simple, dtype, shard, offset, size, crc, dims_offsets, dims = columns
        ranks = np.diff(dims_offsets)
        # Vectorised rule F-RD-2 for simple rows; anything doubtful takes the slow path.
        ok = simple & (ranks <= _MAX_FAST_RANK) & (dtype < len(_ITEMSIZE))
        itemsize = np.where(ok, _ITEMSIZE[np.where(ok, dtype, 0)], -1)
        ok &= itemsize >= 0
        ok &= (shard >= 0) & (shard < max(self.header.num_shards, 0))
        numel = np.ones(n, dtype=np.int64)
        bound = np.ones(n, dtype=np.float64)
        starts = dims_offsets[:-1]
        for j in range(int(ranks.max(initial=0)) if n else 0):
            has = ok & (ranks > j)
            if not has.any():
                break
            d = dims[starts[has] + j]
            numel[has] *= d
            bound[has] *= d
        # Products that could have wrapped around in int64 go the slow way (rule H-BD-2).
        ok &= bound * np.maximum(itemsize, 1) < 2.0**62
        strings = itemsize == 0
        fixed_ok = (numel * np.maximum(itemsize, 0)) == size
        string_ok = (numel + 4) <= size
        variant = dtype == int(DataType.DT_VARIANT)
        ok &= np.where(strings, string_ok | variant, fixed_ok)
        # Compact columns (8 bytes a value, not a Python int each): a big index costs
        # little beside the tensors it describes, and a row is still O(1) to reach.
        self._ok = bytearray(ok.astype(np.uint8).tobytes())
        self._dtype = _column(dtype)
        self._shard = _column(shard)
        self._offset = _column(offset)
        self._size = _column(size)
        self._crc = _column(crc)
        self._dims_offsets = _column(dims_offsets)
        self._dims = _column(dims)
        # The encoded entries the columns could not vouch for, decoded on demand; the
        # index file's bytes are not kept.
        slow = np.flatnonzero(~ok).tolist()
        self._slow_rows = {row: data[entry_starts[row] : entry_ends[row]] for row in slow}

    # -- entries -------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.keys)

    def __contains__(self, key: bytes) -> bool:
        return self._find(key) >= 0

    def _find(self, key: bytes) -> int:
        # The keys are sorted and unique (rule F-IX-1): a binary search needs no second
        # table beside them.
        row = bisect_left(self.keys, key)
        return row if row < len(self.keys) and self.keys[row] == key else -1

    def row(self, key: bytes) -> int:
        row = self._find(key)
        if row < 0:
            raise TensorNotFoundError(f"Key {_show(key)} not found in checkpoint", key=key)
        return row

    def entry(self, key: bytes) -> BundleEntry:
        """The validated entry under ``key``."""
        row = self.row(key)
        if self._ok[row]:  # made from the columns each time: cheap, and nothing to keep
            a, b = self._dims_offsets[row], self._dims_offsets[row + 1]
            return BundleEntry(
                self._dtype[row],
                tuple(self._dims[a:b]),
                self._shard[row],
                self._offset[row],
                self._size[row],
                self._crc[row],
            )
        cached = self._cache.get(row)
        if cached is not None:
            return cached
        raw = self._slow_rows[row]
        try:
            entry = decode_entry(raw)
        except CheckpointError as exc:
            raise DataLossError(
                f"cannot parse BundleEntryProto: {exc.message}", path=self.path, key=key
            ) from None
        validate_entry(key, entry, self.header.num_shards, self.path)
        self._cache[row] = entry
        return entry

    def visible_keys(self) -> list[bytes]:
        """Keys as TF's ``CheckpointReader`` lists them: slice keys hidden (rule F-RD-7)."""
        if self._visible is None:
            hidden: set[bytes] = set()
            for row, key in enumerate(self.keys):
                if self._ok[row] or key.startswith(b"\x00"):
                    continue  # simple rows have no slices; slice keys are never partitioned
                for tensor_slice in self.entry(key).slices:
                    hidden.add(encode_tensor_name_slice(key, tensor_slice))
            self._visible = [k for k in self.keys if k not in hidden] if hidden else list(self.keys)
        return self._visible

    def visible_entries(self) -> list[tuple[bytes, BundleEntry]]:
        """``(key, entry)`` for each visible key, in key order, every entry validated.

        The rows are walked in order, so no key is searched for: a listing of the whole
        index costs one step per entry.
        """
        visible = self.visible_keys()
        if len(visible) == len(self.keys):
            rows: Iterable[tuple[int, bytes]] = enumerate(self.keys)
        else:
            shown = set(visible)
            rows = ((row, key) for row, key in enumerate(self.keys) if key in shown)
        ok, offsets, dims = self._ok, self._dims_offsets, self._dims
        dtype, shard, offset, size, crc = (
            self._dtype,
            self._shard,
            self._offset,
            self._size,
            self._crc,
        )
        out = []
        for row, key in rows:
            if ok[row]:
                entry = BundleEntry(
                    dtype[row],
                    tuple(dims[offsets[row] : offsets[row + 1]]),
                    shard[row],
                    offset[row],
                    size[row],
                    crc[row],
                )
            else:
                entry = self.entry(key)
            out.append((key, entry))
        return out

    def is_visible(self, key: bytes) -> bool:
        if self._visible_set is None:
            self._visible_set = frozenset(self.visible_keys())
        return key in self._visible_set

    def shape_map(self) -> dict[bytes, list[int]]:
        """Full shapes of the visible keys, every entry validated."""
        out = {}
        offsets, dims, ok = self._dims_offsets, self._dims, self._ok
        for key in self.visible_keys():
            row = self.row(key)
            if ok[row]:
                out[key] = dims[offsets[row] : offsets[row + 1]].tolist()
            else:
                out[key] = list(self.entry(key).shape)
        return out

    def dtype_map(self) -> dict[bytes, int]:
        """DataType enum values of the visible keys, every entry validated."""
        out = {}
        for key in self.visible_keys():
            row = self.row(key)
            out[key] = self._dtype[row] if self._ok[row] else self.entry(key).dtype
        return out

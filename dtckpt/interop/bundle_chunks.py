"""Reading a bundle's tensors as C-order chunks, checksums verified (rules I-TF-1, I-TF-2).

::

    plain entry        shard bytes [offset, offset + size) in chunks; the CRC-32C runs along
                       and is compared before the last chunk is handed out

    partitioned tensor, rows of the full tensor taken a box at a time:

              cols 0..3   cols 4..7            box rows [a, b): for every stored slice that
            +-----------+-----------+          meets them, its rows [a, b) are one contiguous
     rows   | slice A   | slice B   |  <- a    run of that slice's bytes: read it, extend the
     0..3   |           |           |          slice's running CRC, paste it into the box
            +-----------+-----------+  <- b    (A's CRC is checked once its row 3 is read)
     rows   | slice C   | slice D   |
     4..5   +-----------+-----------+

Every slice is read exactly once, in order, so every slice's checksum is
verified, whatever the partition, as long as one row of the full tensor fits
in a chunk. Only a tensor whose single rows exceed a chunk, or whose slices
look damaged, is left to ``BundleReader.read_slice`` (which reports damage
precisely, and skips the checksums of partial reads as TensorFlow does).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..dtypes import DTypeInfo, info
from ..errors import CheckpointError, DataLossError, OutOfRangeError
from ..format.bundle_reader import BundleReader
from ..format.crc import crc32c, unmask
from ..format.messages import BIG, LITTLE, BundleEntry
from ..format.ordered_code import encode_tensor_name_slice
from ..format.slices import intersect, resolve
from . import tensors as _tensors
from .tensors import row_boxes

__all__ = ["entry_chunks", "partitioned_chunks"]

_HOST_ORDER = LITTLE if np.little_endian else BIG
#: Partitions with more slices are assembled by ``read_slice``: checking that
#: slices do not overlap is quadratic here, and only forged indexes have thousands.
MAX_PIECES = 256

Box = tuple[tuple[int, int], ...]


# -- plain entries ----------------------------------------------------------------------
def entry_chunks(
    bundle: BundleReader, kb: bytes, entry: BundleEntry, row: DTypeInfo
) -> Iterator[np.ndarray]:
    """A plain entry in chunks, checksum verified before the last one (rule I-TF-1)."""
    try:
        path = _check_span(bundle, kb, entry)
        swap = _swap_width(bundle, row)
        step = _tensors.chunk_elements(row.itemsize) * row.itemsize
        crc = 0
        for done in range(0, entry.size, step):
            raw = np.empty(min(step, entry.size - done), dtype=np.uint8)
            bundle.read_shard_into(entry.shard_id, entry.offset + done, raw)
            crc = crc32c(raw, crc)
            if done + raw.size == entry.size:  # nothing of a damaged tensor gets through
                _verify(crc, entry, path, kb)
            yield _elements(raw, row, swap)
        if entry.size == 0:
            _verify(crc, entry, path, kb)
    except CheckpointError as exc:
        raise _with_key(exc, kb) from None


def _check_span(bundle: BundleReader, kb: bytes, entry: BundleEntry) -> str:
    """The entry's data file, checked to hold all of its bytes before any is read."""
    path = bundle.shard_path(entry.shard_id)
    available = bundle.shard_size(entry.shard_id)
    if entry.offset + entry.size > available:
        raise OutOfRangeError(
            f"entry needs bytes [{entry.offset}, {entry.offset + entry.size}) but the data "
            f"file holds {available} bytes (truncated?)",
            path=path,
            key=kb,
            offset=entry.offset,
        )
    return path


def _verify(crc: int, entry: BundleEntry, path: str, kb: bytes) -> None:
    if crc != unmask(entry.crc32c):
        raise DataLossError(
            f"Checksum does not match: stored {unmask(entry.crc32c):#010x} vs. calculated on "
            f"the restored bytes {crc:#010x}",
            path=path,
            key=kb,
            offset=entry.offset,
        )


def _swap_width(bundle: BundleReader, row: DTypeInfo) -> int:
    return row.swap_width if bundle.header.endianness != _HOST_ORDER else 0


def _elements(raw: np.ndarray, row: DTypeInfo, swap: int) -> np.ndarray:
    """Bytes as elements of ``row``, little-endian (rule F-RD-4 for big-endian bundles)."""
    if swap:
        raw = raw.view(f"u{swap}").byteswap().view(np.uint8)
    return raw.view(row.numpy)


def _with_key(exc: CheckpointError, kb: bytes) -> CheckpointError:
    """``exc`` naming the tensor, also when a lower layer set an empty placeholder key."""
    if exc.key:
        return exc
    return type(exc)(exc.message, path=exc.path, key=kb, offset=exc.offset)


# -- partitioned tensors ----------------------------------------------------------------
@dataclass(frozen=True)
class _Piece:
    """One stored slice: its key, its entry, and the box it fills in the full tensor."""

    key: bytes
    entry: BundleEntry
    box: Box

    @property
    def row_bytes(self) -> int:
        out = info(self.entry.dtype).itemsize
        for _, n in self.box[1:]:
            out *= n
        return out


def partitioned_chunks(bundle: BundleReader, kb: bytes, entry: BundleEntry) -> Iterator[np.ndarray]:
    """A partitioned tensor in C order, by boxes of whole rows (rule I-TF-2)."""
    row = info(entry.dtype)
    shape = tuple(entry.shape)
    cuts = [c for s in entry.slices for c in _row_range(resolve(s, shape))]
    pieces = _pieces(bundle, kb, entry)
    if pieces is None or _volume(shape[1:]) * row.itemsize > _tensors.CHUNK_BYTES:
        for box in row_boxes(shape, row.itemsize, cuts):
            yield bundle.read_slice(kb, box).reshape(-1)
        return
    paths = [_check_span(bundle, piece.key, piece.entry) for piece in pieces]
    swap = _swap_width(bundle, row)
    crcs = [0] * len(pieces)
    for box in row_boxes(shape, row.itemsize, cuts):
        (start, rows), *_ = box
        out = np.empty((rows,) + shape[1:], dtype=row.numpy)
        for i, piece in enumerate(pieces):
            crcs[i] = _paste(bundle, piece, paths[i], out, start, crcs[i], row, swap)
        yield out.reshape(-1)


def _paste(
    bundle: BundleReader,
    piece: _Piece,
    path: str,
    out: np.ndarray,
    start: int,
    crc: int,
    row: DTypeInfo,
    swap: int,
) -> int:
    """Copy the rows of ``piece`` that fall in ``out`` (rows from ``start``); the new CRC."""
    (first, count), *rest = piece.box
    lo, hi = max(start, first), min(start + out.shape[0], first + count)
    if lo >= hi:
        return crc
    raw = np.empty((hi - lo) * piece.row_bytes, dtype=np.uint8)
    try:
        bundle.read_shard_into(
            piece.entry.shard_id, piece.entry.offset + (lo - first) * piece.row_bytes, raw
        )
    except CheckpointError as exc:
        raise _with_key(exc, piece.key) from None
    crc = crc32c(raw, crc)
    if hi == first + count:  # the slice's last row: all of its bytes went through
        _verify(crc, piece.entry, path, piece.key)
    values = _elements(raw, row, swap).reshape((hi - lo,) + tuple(n for _, n in rest))
    out[(slice(lo - start, hi - start),) + tuple(slice(s, s + n) for s, n in rest)] = values
    return crc


def _pieces(bundle: BundleReader, kb: bytes, entry: BundleEntry) -> list[_Piece] | None:
    """The stored slices, if they exactly tile the tensor; ``None`` when anything is off."""
    shape = tuple(entry.shape)
    if not shape or len(entry.slices) > MAX_PIECES:
        return None
    pieces = []
    for tensor_slice in entry.slices:
        box = resolve(tensor_slice, shape)
        slice_key = encode_tensor_name_slice(kb, tensor_slice)
        if slice_key not in bundle:
            return None
        stored = bundle.entry(slice_key)
        if stored.dtype != entry.dtype or tuple(stored.shape) != tuple(n for _, n in box):
            return None
        pieces.append(_Piece(slice_key, stored, box))
    if sum(_volume(tuple(n for _, n in p.box)) for p in pieces) != _volume(shape):
        return None
    for i, a in enumerate(pieces):
        if any(intersect(a.box, b.box) is not None for b in pieces[i + 1 :]):
            return None
    return pieces


def _row_range(box: Box) -> tuple[int, int]:
    (start, length), *_ = box
    return start, start + length


def _volume(shape: tuple[int, ...]) -> int:
    out = 1
    for d in shape:
        out *= d
    return out

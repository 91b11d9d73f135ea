"""Reading a bundle: ``BundleReader`` (TF's ``BundleReader``, rules F-RD-*).

::

    PREFIX.index --decode_table--> [("", header), (key, entry), ...]
                                              |
        read(key) ---- plain entry ----> pread [offset, offset+size) of
                                         PREFIX.data-<shard_id>-of-<num_shards>,
                                         verify masked CRC32C, byte-swap if BIG
                  ---- full entry with slices --> read_slice(key, whole tensor)
        read_slice(key, box) --> for every stored slice overlapping the box:
                                 read only the rows of it that overlap, paste.

Everything read from the index is validated before it is used to open,
seek or allocate: shard ids against ``num_shards``, offsets and sizes against
the real file size, shapes against the entry size. A damaged file raises a
:mod:`dtckpt.errors` exception naming the file, the key and the byte offset.

The files come from a :class:`~dtckpt.format.streams.BundleSource`: the file
system by default, or the member files of an archive, read in place (rule
A-RD-2), whose reader's prefix is then ``ARCHIVE::PREFIX``.
"""

from __future__ import annotations

import mmap as mmap_module
import os
import threading
from typing import NamedTuple

import numpy as np

from .. import kernels
from ..dtypes import DataType, DTypeInfo, info
from ..errors import (
    CheckpointError,
    DataLossError,
    InvalidArgumentError,
    NotFoundError,
    OutOfRangeError,
    TensorNotFoundError,
    UnimplementedError,
)
from .crc import crc32c, unmask
from .index import MAX_RANK, BundleIndex, element_count
from .messages import BIG, LITTLE, BundleEntry, TensorSlice
from .naming import DATA_SUFFIX_RE, data_filename, index_filename, key_bytes
from .ordered_code import encode_tensor_name_slice
from .slice_index import Box, SliceIndex
from .slices import full_slice, resolve
from .streams import BundleSource, ShardFile, StoreShard, source_for
from .strings import decode_string_tensor
from .tiling import box_volume, tiling_problem

__all__ = ["BundleReader", "ByteRange", "ReadCost", "MAX_RANK", "READ_SCRATCH"]
_HOST_ORDER = LITTLE if np.little_endian else BIG
_INT64_MAX = (1 << 63) - 1
#: Data files of the same prefix named in the message about a missing one, at most.
_SHOWN_SIBLINGS = 8
#: What a read takes from one stored slice: the slice's box, its (entry, key), the overlap.
_Stored = tuple[BundleEntry, bytes]
_Piece = tuple[Box, _Stored, Box]
#: Largest temporary buffer a read of part of a tensor uses by default: a stored slice
#: whose bytes cannot land straight in the result is streamed through it, whole rows
#: (dimension 0) at a time (rule R-MB-2).
READ_SCRATCH = 16 << 20
#: Stored slices at most this large that land whole in a read's result are read in runs
#: (``BundleReader._paste_runs``), a run at most ``_RUN_BYTES``: few enough bytes that a
#: run's checksums then find them in cache.
_BATCHED_PIECE = 64 << 10
_RUN_BYTES = 1 << 20


def _show(key: bytes) -> str:
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        return key.decode("latin-1")


class ByteRange(NamedTuple):
    """Bytes a read takes from a data file: ``[offset, offset + length)`` of shard
    ``shard_id``, belonging to the entry ``key`` (rule F-RD-8)."""

    shard_id: int
    offset: int
    length: int
    key: bytes


class ReadCost(NamedTuple):
    """What one read takes, found from the index alone (rules F-RD-8, R-PL-2).

    ``allocates`` is the size of the array the read returns when it is given no ``out``
    (0 with one); ``scratch`` the peak of the temporary buffers it uses beside it; and
    ``least_scratch`` the smallest scratch limit under which it can still run (one row of
    the widest stored slice it streams).
    """

    ranges: list[ByteRange]
    allocates: int
    scratch: int
    least_scratch: int


class BundleReader:
    """Random access to the tensors of one bundle.

    ``mmap=True`` selects the zero-copy mode: whole-tensor reads return
    read-only arrays over memory-mapped data files (checksums are still
    verified on every read). Such arrays stay backed by the file: if another
    program truncates or rewrites a data file in place while they live, their
    values change, and touching a page past the file's new end kills the
    process with ``SIGBUS`` (rule H-SP-2). dtckpt's writers never rewrite a
    data file in place, so re-saving the same prefix leaves them intact.

    ``source`` says where the files named after ``prefix`` come from: the file
    system by default, or a :class:`~dtckpt.format.streams.BundleSource` such
    as an archive (:mod:`dtckpt.archive`). The reader closes its source when it
    is closed. A source whose files cannot be memory-mapped still honours
    ``mmap=True`` with read-only arrays, decoded into memory.
    """

    def __init__(
        self, prefix: str, *, mmap: bool = False, source: BundleSource | None = None
    ) -> None:
        self.prefix = os.fspath(prefix)
        self.index_path = index_filename(self.prefix)
        self.use_mmap = mmap
        self._shards: dict[int, ShardFile] = {}
        self._maps: dict[int, mmap_module.mmap] = {}
        self._source: BundleSource = source_for(self.prefix) if source is None else source
        self._boxes: dict[bytes, SliceIndex[tuple[BundleEntry, bytes]]] = {}
        self._open_lock = threading.Lock()
        self._siblings: list[str] | None = None
        self._shard_paths: dict[int, str] = {}
        try:
            data = self._source.read_index(self.index_path)
            if data is None:
                raise NotFoundError(
                    f"no checkpoint at prefix {self.prefix!r} ({self.index_path} does not exist)",
                    path=self.index_path,
                )
            self.index = BundleIndex(data, self.index_path)
        except BaseException:
            self.close()
            raise
        self.header = self.index.header

    # -- lifecycle -----------------------------------------------------------
    def close(self) -> None:
        self.close_files()
        self._source.close()

    def close_files(self) -> None:
        """Close the data files (and their maps) opened so far; later reads reopen them.

        The index stays in memory: a reader kept for later reads (deferred
        restores) holds no file descriptor meanwhile.
        """
        with self._open_lock:
            maps = list(self._maps.values())
            self._maps.clear()
            shards = list(self._shards.values())
            self._shards.clear()
        for m in maps:
            try:
                m.close()
            except BufferError:  # arrays handed out still view it; GC frees it later
                pass
        for shard in shards:
            shard.close()

    def __enter__(self) -> BundleReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    # -- metadata ------------------------------------------------------------
    @property
    def num_shards(self) -> int:
        return self.header.num_shards

    def raw_keys(self) -> list[bytes]:
        """Every key of the index except the header, slice keys included, sorted."""
        return list(self.index.keys)

    def keys(self) -> list[bytes]:
        """Tensor keys as ``tf.train.load_checkpoint`` lists them: no slice keys."""
        return list(self.index.visible_keys())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, (str, bytes)) and key_bytes(key) in self.index

    def entry(self, key: str | bytes) -> BundleEntry:
        """The validated entry stored under ``key``."""
        kb = key_bytes(key)
        try:
            return self.index.entry(kb)
        except TensorNotFoundError as exc:
            raise exc.located(path=self.prefix) from None

    def entries(self) -> dict[bytes, BundleEntry]:
        """All entries, decoded and validated (slice keys included)."""
        return {k: self.index.entry(k) for k in self.index.keys}

    def dtype_info(self, key: str | bytes) -> DTypeInfo:
        return info(self.entry(key).dtype)

    # -- data files ----------------------------------------------------------
    def _shard(self, shard_id: int, key: bytes) -> ShardFile:
        opened = self._shards.get(shard_id)
        if opened is not None:
            return opened
        with self._open_lock:  # readers may be shared by threads reading different blocks
            return self._open_shard(shard_id, key)

    def _open_shard(self, shard_id: int, key: bytes) -> ShardFile:
        opened = self._shards.get(shard_id)
        if opened is not None:
            return opened
        path = data_filename(self.prefix, shard_id, self.num_shards)
        shard = self._source.open_shard(path)
        if shard is None:
            raise NotFoundError(self._missing_shard_message(path), path=path, key=key)
        self._shards[shard_id] = shard
        return shard

    def shard_path(self, shard_id: int) -> str:
        """The file name of data shard ``shard_id`` (``PREFIX.data-NNNNN-of-MMMMM``)."""
        path = self._shard_paths.get(shard_id)
        if path is None:
            path = self._shard_paths[shard_id] = data_filename(
                self.prefix, shard_id, self.num_shards
            )
        return path

    def shard_size(self, shard_id: int) -> int:
        """The size in bytes of data shard ``shard_id``; NotFoundError if it is missing."""
        return self._shard(shard_id, b"").size

    def read_shard_into(self, shard_id: int, offset: int, out: np.ndarray) -> None:
        """Fill the 1-D ``uint8`` array ``out`` with shard bytes from ``offset`` on.

        No checksum is involved: this is the raw byte access that verifiers
        and copiers build on. A short shard raises :class:`OutOfRangeError`.
        """
        self._shard(shard_id, b"").read_into(out, offset)

    def _sibling_paths(self) -> list[str]:
        """The files beside the index, listed once per reader (rule H-WK-1): a forged
        ``num_shards`` or thousands of keys in missing shards cost one listing."""
        if self._siblings is None:
            self._siblings = self._source.siblings(self.index_path)
        return self._siblings

    def present_shards(self) -> list[int]:
        """The ids of the data shards whose files are there under this bundle's names, sorted.

        Found from one listing of the directory (or archive), so the work follows the files
        that exist, not ``num_shards`` (rule H-WK-1). A name present may still turn out not
        to be a readable regular file when it is opened.
        """
        base = os.path.basename(self.prefix)
        found = []
        for sibling in self._sibling_paths():
            name = os.path.basename(sibling)  # however the directory was spelled
            match = DATA_SUFFIX_RE.search(name)
            if match is None or name[: match.start()] != base:
                continue
            shard, total = int(match.group(1)), int(match.group(2))
            if total == self.num_shards and 0 <= shard < total:
                if name == os.path.basename(data_filename(self.prefix, shard, total)):
                    found.append(shard)
        return sorted(set(found))

    def _missing_shard_message(self, path: str) -> str:
        others = []
        for sibling in self._sibling_paths():
            match = DATA_SUFFIX_RE.search(sibling)
            if match and sibling[: match.start()] == self.prefix:
                others.append(sibling[len(self.prefix) - len(os.path.basename(self.prefix)) :])
                if len(others) > _SHOWN_SIBLINGS:
                    break
        message = f"data file is missing (header says num_shards={self.num_shards})"
        if others:
            shown = sorted(others)[:_SHOWN_SIBLINGS]
            more = ", ..." if len(others) > _SHOWN_SIBLINGS else ""
            message += f"; found instead: {', '.join(shown)}{more}"
        return message

    def _check_span(self, key: bytes, entry: BundleEntry) -> ShardFile:
        return self._check_bytes(key, entry.shard_id, entry.offset, entry.size)

    def _check_bytes(self, key: bytes, shard_id: int, offset: int, size: int) -> ShardFile:
        """Data file ``shard_id``, opened, once bytes ``[offset, offset + size)`` are found
        to lie inside it."""
        shard = self._shard(shard_id, key)
        if offset + size > shard.size:
            raise OutOfRangeError(
                f"entry needs bytes [{offset}, {offset + size}) but the data file holds "
                f"{shard.size} bytes (truncated?)",
                path=shard.path,
                key=key,
                offset=offset,
            )
        return shard

    def _map(self, shard_id: int, key: bytes) -> mmap_module.mmap | None:
        existing = self._maps.get(shard_id)
        if existing is not None:
            return existing
        mapped = self._shard(shard_id, key).map()
        if mapped is not None:
            self._maps[shard_id] = mapped
        return mapped

    # -- reading -------------------------------------------------------------
    def read(
        self, key: str | bytes, out: np.ndarray | None = None, *, scratch: int = READ_SCRATCH
    ) -> np.ndarray:
        """The whole tensor stored under ``key`` (assembled from slices if needed).

        With ``out`` (a writeable, C-contiguous array of the tensor's shape and dtype) the
        tensor is read straight into it and ``out`` is returned: no other array is made.
        A checksum that fails leaves ``out`` holding what was read. ``scratch`` as for
        :meth:`read_slice`.
        """
        kb = key_bytes(key)
        entry = self.entry(kb)
        if entry.slices:
            return self.read_slice(kb, full_slice(len(entry.shape)), out=out, scratch=scratch)
        if out is None:
            return self._read_entry(kb, entry)
        row = info(entry.dtype)
        _check_out(out, tuple(entry.shape), row, kb)
        self._read_entry(kb, entry, out=out)
        if self.header.endianness != _HOST_ORDER and row.swap_width:
            _byteswap_in_place(out, row)
        return out

    def _check_readable(self, key: bytes, entry: BundleEntry, row: DTypeInfo) -> None:
        """What no read can return, refused before any data is read (rules H-BD-7, H-BD-8)."""
        if row.enum == DataType.DT_VARIANT:
            raise UnimplementedError(
                f"reading {row.name} tensors is not supported", path=self.index_path, key=key
            )
        if len(entry.shape) > MAX_RANK:
            raise UnimplementedError(
                f"a tensor of {len(entry.shape)} dimensions cannot be read: NumPy arrays have "
                f"at most {MAX_RANK}",
                path=self.index_path,
                key=key,
            )
        # NumPy multiplies every dimension, zeros aside: a tensor without elements whose
        # other dims multiply past 2**63 bytes cannot be an array (TensorFlow holds it).
        spread = element_count(tuple(d for d in entry.shape if d))
        if spread is None or spread * row.numpy.itemsize > _INT64_MAX:
            raise UnimplementedError(
                "a tensor whose non-zero dimensions multiply past 2**63 bytes cannot be a "
                "NumPy array",
                path=self.index_path,
                key=key,
            )

    def _read_entry(
        self, key: bytes, entry: BundleEntry, out: np.ndarray | None = None
    ) -> np.ndarray:
        """Read one stored (non-partitioned) entry in full, checksum verified (rule F-RD-3).

        With ``out`` (a C-contiguous array of the right size) the bytes land
        there directly and no byte-swap is applied (the caller swaps).
        """
        row = info(entry.dtype)
        self._check_readable(key, entry, row)
        shard = self._check_span(key, entry)
        path = shard.path
        big = self.header.endianness != _HOST_ORDER
        if row.is_string:
            raw = np.empty(entry.size, dtype=np.uint8)
            shard.read_into(raw, entry.offset)
            numel = int(np.prod(entry.shape, dtype=np.int64)) if entry.shape else 1
            try:
                values = decode_string_tensor(raw, numel, entry.crc32c, big_endian=big)
            except CheckpointError as exc:
                raise exc.located(path=path, key=key, base_offset=entry.offset) from None
            return values.reshape(entry.shape)
        wants_map = self.use_mmap and out is None and entry.size > 0
        mapped = self._map(entry.shard_id, key) if wants_map else None
        if mapped is not None:
            raw = np.frombuffer(mapped, dtype=np.uint8, count=entry.size, offset=entry.offset)
            actual = crc32c(raw)
        else:
            target = out if out is not None else np.empty(entry.shape, dtype=row.numpy)
            raw = target.reshape(-1).view(np.uint8)
            actual = shard.read_into_with_crc32c(raw, entry.offset)
        if actual != unmask(entry.crc32c):  # rule F-RD-3
            raise DataLossError(
                "Checksum does not match: stored "
                f"{unmask(entry.crc32c):#010x} vs. calculated on the restored bytes "
                f"{actual:#010x}",
                path=path,
                key=key,
                offset=entry.offset,
            )
        if out is not None:
            return out
        # The array allocated above when there is one: a view of it would keep two
        # array objects alive for every value restored.
        array = target if mapped is None else raw.view(row.numpy).reshape(entry.shape)
        if big and row.swap_width:
            array = _byteswapped(array, row)
        if wants_map and mapped is None:
            array.flags.writeable = False  # the mmap contract, for a source that cannot map
        return array

    def read_slice(
        self,
        key: str | bytes,
        tensor_slice: TensorSlice,
        out: np.ndarray | None = None,
        *,
        scratch: int = READ_SCRATCH,
    ) -> np.ndarray:
        """The box ``tensor_slice`` of tensor ``key``, reading only what overlaps it;
        ``out`` as for :meth:`read`. A stored slice that cannot be read straight into
        the result goes through a buffer of at most ``scratch`` bytes (at least one of
        its rows; rule R-MB-2)."""
        kb = key_bytes(key)
        entry = self.entry(kb)
        row = info(entry.dtype)
        self._check_readable(kb, entry, row)
        box = resolve(tensor_slice, entry.shape, what=f"slice of {_show(kb)!r}")
        shape = tuple(length for _, length in box)
        if out is not None:
            _check_out(out, shape, row, kb)
        stored = self._stored_boxes(kb, entry)
        exact = stored.exact(box)
        if exact is not None:  # rule F-RD-5: exact match, read directly
            stored_entry, stored_key = exact[1]
            exact_key = kb if stored_entry is entry else stored_key
            if out is None:
                return self._read_entry(exact_key, stored_entry)
            self._read_entry(exact_key, stored_entry, out=out)
            if self.header.endianness != _HOST_ORDER and row.swap_width:
                _byteswap_in_place(out, row)
            return out
        pieces = [
            (stored_box, stored_entry, stored_key, overlap)
            for stored_box, (stored_entry, stored_key), overlap in stored.overlapping(box)
        ]
        # Every piece must lie inside its data file before anything of the
        # request's size is allocated: the request is then bounded by bytes
        # that really exist.
        for _, stored_entry, stored_key, _ in pieces:
            self._check_span(stored_key, stored_entry)
        _check_tiling(kb, box, [p[3] for p in pieces], self.index_path, stored.disjoint)
        given = out is not None
        if out is None:
            out = np.empty(shape, dtype=row.numpy)
        small = []
        for piece in pieces:
            landing = None if row.is_string else _direct_landing(box, out.shape, piece, row)
            if landing is not None and piece[1].size <= _BATCHED_PIECE:
                small.append((piece[1].shard_id, piece[1].offset, landing, piece[1], piece[2]))
            else:
                self._paste(out, box, *piece, row, scratch)
        if small:
            self._paste_runs(out.reshape(-1).view(np.uint8), small)
        big = self.header.endianness != _HOST_ORDER
        if big and row.swap_width:
            if given:
                _byteswap_in_place(out, row)
            else:
                out = _byteswapped(out, row)
        return out

    def read_ranges(
        self, key: str | bytes, tensor_slice: TensorSlice | None = None
    ) -> list[ByteRange]:
        """The byte ranges ``read(key)`` (or ``read_slice(key, tensor_slice)``) reads, found
        from the index alone: the plan those reads then carry out (rule F-RD-8)."""
        kb = key_bytes(key)
        entry = self.entry(kb)
        if tensor_slice is None and not entry.slices:
            return [_whole_range(entry, kb)]
        _, exact, pieces = self._pieces(kb, entry, tensor_slice)
        if exact is not None:
            return [_whole_range(*exact[1])]
        row = info(entry.dtype)
        return [_piece_range(stored_box, payload, overlap, row)
                for stored_box, payload, overlap in pieces]  # fmt: skip

    def read_cost(
        self,
        key: str | bytes,
        tensor_slice: TensorSlice | None = None,
        *,
        into: bool = False,
        scratch: int = READ_SCRATCH,
    ) -> ReadCost:
        """The bytes ``read``/``read_slice`` will take and the memory they will use, from
        the index alone (rules F-RD-8, R-PL-2); ``into``: the read is given an ``out``."""
        kb = key_bytes(key)
        entry = self.entry(kb)
        row = info(entry.dtype)
        if tensor_slice is None and not entry.slices and not row.is_string:
            # A plain entry read whole: straight into the result, nothing else allocated.
            numel = element_count(entry.shape) or 0
            whole = [_whole_range(entry, kb)]
            return ReadCost(whole, 0 if into else numel * row.itemsize, 0, 0)
        pieces: list[_Piece] = []
        if tensor_slice is None and not entry.slices:
            box = tuple((0, d) for d in entry.shape)
            ranges = [_whole_range(entry, kb)]
        else:
            box, exact, pieces = self._pieces(kb, entry, tensor_slice)
            ranges = [] if exact is None else [_whole_range(*exact[1])]
        shape = tuple(n for _, n in box)
        numel = int(np.prod(shape, dtype=np.int64)) if shape else 1
        # One walk over the pieces gives both what each reads and how it reaches the result.
        peak = least = 0
        for stored_box, payload, overlap in pieces:
            ranges.append(_piece_range(stored_box, payload, overlap, row))
            if row.is_string:
                continue
            mode, first, count, row_bytes = _piece_mode(box, shape, stored_box, overlap, row)
            if mode == _DIRECT:
                continue
            per_chunk = max(1, scratch // row_bytes) if row_bytes else count
            peak = max(peak, min(count, per_chunk) * row_bytes)
            least = max(least, row_bytes)
        if row.is_string:
            # The stored bytes, then one Python bytes object per element (their headers,
            # about 33 bytes each, are an estimate) in an object array.
            stored = sum(r.length for r in ranges)
            return ReadCost(ranges, stored + numel * (8 + 33), stored, stored)
        return ReadCost(ranges, 0 if into else numel * row.itemsize, peak, least)

    def _pieces(
        self, key: bytes, entry: BundleEntry, tensor_slice: TensorSlice | None
    ) -> tuple[Box, tuple[Box, _Stored] | None, list[_Piece]]:
        """``(box, exact, pieces)`` of a read of ``tensor_slice`` (the whole tensor when
        ``None``): the stored slice that is exactly the box, if one is (F-RD-5), else every
        stored slice overlapping it with the overlap (F-RD-6)."""
        if tensor_slice is None:
            tensor_slice = full_slice(len(entry.shape))
        box = resolve(tensor_slice, entry.shape, what=f"slice of {_show(key)!r}")
        stored = self._stored_boxes(key, entry)
        exact = stored.exact(box)
        if exact is not None:
            return box, exact, []
        return box, None, stored.overlapping(box)

    def check_stored(
        self, key: str | bytes, entry: BundleEntry | None = None, *, expect: bool = False
    ) -> None:
        """Open the data files holding ``key``'s bytes and check that they lie inside them,
        reading none of them (rule F-RD-9).

        A restore calls this for every value before it changes anything: a missing or
        truncated data file then fails the restore while nothing has changed, and a file
        unlinked afterwards (an old checkpoint pruned by another writer) stays readable
        through the descriptor held until :meth:`close_files`. ``entry``: the entry under
        ``key``, when the caller has it already. ``expect``: the value will be read, after
        those checked before it (a data object of a store then reads it ahead, S-SI-8).
        """
        kb = key_bytes(key)
        if entry is None:
            entry = self.entry(kb)
        if not entry.slices:
            shard = self._check_span(kb, entry)
            if expect and isinstance(shard, StoreShard):
                shard.expect(entry.offset, entry.size)
            return
        for piece in self.read_ranges(kb):
            self._check_bytes(piece.key, piece.shard_id, piece.offset, piece.length)

    def _stored_boxes(  # rule F-SL-5
        self, key: bytes, entry: BundleEntry
    ) -> SliceIndex[_Stored]:
        # Resharding reads many boxes of one tensor: work out its stored slices once,
        # indexed so that each request costs what it overlaps, not every slice.
        cached = self._boxes.get(key)
        if cached is None:
            found = self._find_stored_boxes(key, entry)
            cached = SliceIndex([(box, (e, k)) for box, e, k in found])
            self._boxes[key] = cached
        return cached

    def _find_stored_boxes(
        self, key: bytes, entry: BundleEntry
    ) -> list[tuple[tuple[tuple[int, int], ...], BundleEntry, bytes]]:
        if not entry.slices:
            return [(tuple((0, d) for d in entry.shape), entry, key)]
        boxes = []
        for tensor_slice in entry.slices:
            slice_key = encode_tensor_name_slice(key, tensor_slice)
            try:
                slice_entry = self.index.entry(slice_key)
            except TensorNotFoundError:
                raise DataLossError(
                    "a slice listed by the full entry has no entry of its own",
                    path=self.index_path,
                    key=slice_key,
                ) from None
            if slice_entry.slices:  # its size was never checked against its shape (H-BD-8)
                raise DataLossError(
                    "a slice entry lists slices of its own", path=self.index_path, key=slice_key
                )
            stored_box = resolve(tensor_slice, entry.shape)
            expected_shape = tuple(n for _, n in stored_box)
            if slice_entry.dtype != entry.dtype or slice_entry.shape != expected_shape:
                raise DataLossError(
                    f"slice entry has dtype {slice_entry.dtype} shape {list(slice_entry.shape)}, "
                    f"expected dtype {entry.dtype} shape {list(expected_shape)}",
                    path=self.index_path,
                    key=slice_key,
                )
            boxes.append((stored_box, slice_entry, slice_key))
        _check_disjoint_spans(key, [b[1] for b in boxes], self.index_path)
        return boxes

    def _paste_runs(
        self, flat: np.ndarray, pieces: list[tuple[int, int, int, BundleEntry, bytes]]
    ) -> None:
        """Small stored slices, each landing whole in one contiguous run of the result
        (``(shard_id, offset, byte in flat, entry, key)``): those adjacent both in their data
        file and in the result are read with one call (at most ``_RUN_BYTES``), then each
        one's checksum is verified on the bytes that landed (rule F-RD-3). A slice costs a
        checksum call instead of a read of its own: one tensor saved as thousands of rows."""
        pieces.sort(key=lambda p: (p[0], p[1]))
        start = 0
        while start < len(pieces):
            shard_id, offset, at, _, key = pieces[start]
            stop, end, length = start + 1, offset + pieces[start][3].size, pieces[start][3].size
            while stop < len(pieces):
                nxt_shard, nxt_offset, nxt_at, nxt_entry, _ = pieces[stop]
                if (nxt_shard != shard_id or nxt_offset != end or nxt_at != at + length
                        or length + nxt_entry.size > _RUN_BYTES):  # fmt: skip
                    break
                end += nxt_entry.size
                length += nxt_entry.size
                stop += 1
            shard = self._check_bytes(key, shard_id, offset, length)
            shard.read_into(flat[at : at + length], offset)
            for _, piece_offset, piece_at, entry, piece_key in pieces[start:stop]:
                actual = crc32c(flat[piece_at : piece_at + entry.size].data)
                if actual != unmask(entry.crc32c):
                    raise DataLossError(
                        "Checksum does not match: stored "
                        f"{unmask(entry.crc32c):#010x} vs. calculated on the restored bytes "
                        f"{actual:#010x}",
                        path=shard.path,
                        key=piece_key,
                        offset=piece_offset,
                    )
            start = stop

    def _paste(
        self,
        out: np.ndarray,
        box: tuple[tuple[int, int], ...],
        stored_box: tuple[tuple[int, int], ...],
        entry: BundleEntry,
        key: bytes,
        overlap: tuple[tuple[int, int], ...],
        row: DTypeInfo,
        scratch: int,
    ) -> None:
        rel = tuple(o - s for (o, _), (s, _) in zip(overlap, stored_box, strict=True))
        extent = tuple(n for _, n in overlap)
        dst_origin = tuple(o - b for (o, _), (b, _) in zip(overlap, box, strict=True))
        if row.is_string:
            values = self._read_entry(key, entry)
            src_index = tuple(slice(r, r + e) for r, e in zip(rel, extent, strict=True))
            dst_index = tuple(slice(d, d + e) for d, e in zip(dst_origin, extent, strict=True))
            out[dst_index] = values[src_index]
            return
        mode, first, count, row_bytes = _piece_mode(box, out.shape, stored_box, overlap, row)
        if mode == _DIRECT:
            start = int(np.ravel_multi_index(dst_origin, out.shape)) if out.ndim else 0
            flat = out.reshape(-1)[start : start + int(np.prod(extent, dtype=np.int64))]
            self._read_entry(key, entry, out=flat)
            return
        # Rows (dimension 0) of the stored slice are streamed through one buffer of at most
        # ``scratch`` bytes (rule R-MB-2). When every row is needed, every byte of the entry
        # is read, and its checksum is extended chunk by chunk and compared at the end
        # (F-RD-3); otherwise only the needed rows are read, unverified (F-RD-6).
        shard = self._check_span(key, entry)
        per_chunk = max(1, scratch // row_bytes) if row_bytes else max(1, count)
        buffer = np.empty(min(count, per_chunk) * row_bytes, dtype=np.uint8)
        itemsize = row.itemsize
        stored_inner = tuple(n for _, n in stored_box[1:])
        copier = kernels.sized(buffer.size)
        crc = 0
        done = 0
        while done < count:
            n = min(per_chunk, count - done)
            chunk = buffer[: n * row_bytes]
            shard.read_into(chunk, entry.offset + (first + done) * row_bytes)
            if mode == _WHOLE:
                crc = crc32c(chunk.data, crc)
            copier.copy_box(
                chunk,
                _bytes_shape((n,) + stored_inner, itemsize),
                _bytes_origin((0,) + rel[1:], itemsize),
                out.reshape(-1).view(np.uint8),
                _bytes_shape(out.shape, itemsize),
                _bytes_origin((dst_origin[0] + done,) + dst_origin[1:], itemsize),
                _bytes_shape((n,) + extent[1:], itemsize),
            )
            done += n
        if mode == _WHOLE and crc != unmask(entry.crc32c):
            raise DataLossError(
                "Checksum does not match: stored "
                f"{unmask(entry.crc32c):#010x} vs. calculated on the restored bytes {crc:#010x}",
                path=shard.path,
                key=key,
                offset=entry.offset,
            )


#: How a stored slice reaches a read's result (rule R-MB-2): straight into it, or streamed
#: by rows through a buffer, every row (checksum verified) or the needed ones.
_DIRECT, _WHOLE, _ROWS = 0, 1, 2


def _piece_mode(
    box: tuple[tuple[int, int], ...],
    out_shape: tuple[int, ...],
    stored_box: tuple[tuple[int, int], ...],
    overlap: tuple[tuple[int, int], ...],
    row: DTypeInfo,
) -> tuple[int, int, int, int]:
    """``(mode, first_row, rows, row_bytes)`` of one piece of a read (rules F-RD-6, R-MB-2)."""
    stored_shape = tuple(n for _, n in stored_box)
    row_bytes = row.itemsize
    for n in stored_shape[1:]:
        row_bytes *= n
    if _landing(box, out_shape, stored_box, overlap) is not None:
        return _DIRECT, 0, stored_shape[0] if stored_shape else 1, row_bytes
    rows = _partial_rows(stored_box, overlap, row)
    if rows is None:
        return _WHOLE, 0, stored_shape[0] if stored_shape else 1, row_bytes
    return _ROWS, overlap[0][0] - stored_box[0][0], overlap[0][1], row_bytes


def _whole_range(entry: BundleEntry, key: bytes) -> ByteRange:
    """The bytes of one stored entry, read whole."""
    return ByteRange(entry.shard_id, entry.offset, entry.size, key)


def _piece_range(stored_box: Box, payload: _Stored, overlap: Box, row: DTypeInfo) -> ByteRange:
    """The bytes a read needs of one stored slice overlapping it: its needed rows, or all."""
    entry, key = payload
    rows = _partial_rows(stored_box, overlap, row)
    if rows is None:
        return ByteRange(entry.shard_id, entry.offset, entry.size, key)
    return ByteRange(entry.shard_id, entry.offset + rows[0], rows[1], key)


def _landing(box: Box, out_shape: tuple[int, ...], stored_box: Box, overlap: Box) -> int | None:
    """The element of the result, flattened, where a stored slice lands when all of it lands
    in one contiguous run of the result (mode ``_DIRECT``), else ``None``."""
    if overlap != stored_box:
        return None
    extent = tuple(n for _, n in overlap)
    origin = tuple(o - b for (o, _), (b, _) in zip(overlap, box, strict=True))
    if not _is_contiguous_box(out_shape, origin, extent):
        return None
    at = 0
    for o, d in zip(origin, out_shape, strict=True):
        at = at * d + o
    return at


def _direct_landing(
    box: Box, out_shape: tuple[int, ...], piece: tuple[Box, BundleEntry, bytes, Box], row: DTypeInfo
) -> int | None:
    """The byte of the result, flattened, where a piece read straight into it lands
    (:func:`_landing`), when its entry holds exactly those bytes; else ``None``."""
    stored_box, entry, _, overlap = piece
    at = _landing(box, out_shape, stored_box, overlap)
    if at is None or entry.size != box_volume(stored_box) * row.itemsize:
        return None
    return at * row.itemsize


def _partial_rows(
    stored_box: tuple[tuple[int, int], ...], overlap: tuple[tuple[int, int], ...], row: DTypeInfo
) -> tuple[int, int] | None:
    """``(start, length)`` in bytes, from the entry's start, of the rows (along dimension 0)
    of a stored slice that a read of ``overlap`` needs; ``None`` when it reads the entry whole
    (every row is needed, or strings, whose elements have no fixed place)."""
    if row.is_string or overlap[:1] == stored_box[:1]:
        return None
    row_bytes = row.itemsize
    for _, n in stored_box[1:]:
        row_bytes *= n
    return (overlap[0][0] - stored_box[0][0]) * row_bytes, overlap[0][1] * row_bytes


def _bytes_shape(shape: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    return shape[:-1] + (shape[-1] * itemsize,) if shape else ()


def _bytes_origin(origin: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    return origin[:-1] + (origin[-1] * itemsize,) if origin else ()


def _is_contiguous_box(
    shape: tuple[int, ...], origin: tuple[int, ...], extent: tuple[int, ...]
) -> bool:
    """Whether a box of a C-order array occupies one contiguous run of it."""
    k = 0
    while k < len(extent) and extent[k] == 1:
        k += 1
    return all(extent[j] == shape[j] for j in range(k + 1, len(shape)))


def _check_disjoint_spans(key: bytes, entries: list[BundleEntry], path: str) -> None:
    """No two stored slices may share data bytes (rule F-RD-6, step 1).

    Each entry's span is checked against its file size on its own; this check
    makes the sum of the spans bounded by the files too, so that the pieces'
    volumes bound what a read of the whole tensor may allocate.
    """
    spans = sorted((e.shard_id, e.offset, e.offset + e.size) for e in entries if e.size > 0)
    for (shard_a, _, stop_a), (shard_b, start_b, _) in zip(spans, spans[1:], strict=False):
        if shard_a == shard_b and start_b < stop_a:
            raise DataLossError(
                f"stored slices share data bytes (shard {shard_b}, byte {start_b})",
                path=path,
                key=key,
            )


def _check_tiling(
    key: bytes,
    box: tuple[tuple[int, int], ...],
    overlaps: list[tuple[tuple[int, int], ...]],
    path: str,
    disjoint: bool = False,
) -> None:
    """The pieces must cover ``box`` exactly once (TF's ``TensorSliceSet`` rules; F-SL-7).
    ``disjoint``: no two can overlap (slices on one grid), so that covering the box's volume
    is covering it."""
    covered = sum(box_volume(overlap) for overlap in overlaps)
    numel = 0 if any(n == 0 for _, n in box) else 1
    for _, n in box:
        numel *= n
        if numel > covered:  # already short: no need to multiply out a forged shape
            break
    if covered < numel:
        raise InvalidArgumentError(
            f"the stored slices of {_show(key)!r} do not cover the requested slice "
            f'{[list(e) for e in box]} ("Does not have sufficient slices")',
            path=path,
            key=key,
        )
    if not disjoint and tiling_problem(box, overlaps) is not None:
        raise DataLossError("stored slices overlap", path=path, key=key)


def _check_out(out: np.ndarray, shape: tuple[int, ...], row: DTypeInfo, key: bytes) -> None:
    if (
        row.is_variable_width
        or out.dtype != row.numpy
        or tuple(out.shape) != shape
        or not out.flags.c_contiguous
        or not out.flags.writeable
    ):
        raise InvalidArgumentError(
            f"cannot read into a {out.dtype} {list(out.shape)} array: the value is "
            f"{row.name} {list(shape)} (a writeable C-contiguous array of it is needed)",
            key=key,
        )


def _byteswap_in_place(array: np.ndarray, row: DTypeInfo) -> None:
    """Rule F-RD-4 on an array the caller owns."""
    array.reshape(-1).view(np.dtype(f"u{row.swap_width}")).byteswap(inplace=True)


def _byteswapped(array: np.ndarray, row: DTypeInfo) -> np.ndarray:
    """Elements reversed in units of the dtype's swap width (rule F-RD-4)."""
    unit = np.dtype(f"u{row.swap_width}")
    swapped: np.ndarray = array.reshape(-1).view(unit).byteswap()
    return swapped.view(row.numpy).reshape(array.shape)

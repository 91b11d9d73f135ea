"""Writing a single-shard bundle: ``BundleWriter`` (TF's ``BundleWriter``, rules F-WR-*).

::

    add("b", x) add("a", y) add_slice("w", [4,6], "0,2:-", z)     (any key order)
         |          |            |
         v          v            v
    PREFIX.data-00000-of-00001:  [ x bytes ][ y bytes ][ z bytes ]   in call order
    PREFIX.index:  ""  -> header          keys sorted bytewise
                   "\\x00w..0,2:-" -> entry of the slice
                   "a" -> entry(offset=len(x)) ; "b" -> entry(offset 0)
                   "w" -> full entry: shape [4,6], slices [0,2:-]

Tensor bytes are written straight from each array's buffer, never gathered
into one big copy, and each array's CRC is computed while it is written.
Both files first get a ``.tempstate<random>`` name (rule S-TP-1) and are
renamed into place together, under the directory lock: an old ``.index`` of
the prefix is removed, then the data file and the index are renamed, so an
``.index`` that exists always describes the complete data beside it (rule
S-AT-1). With ``fsync=True`` both files are fsynced before the renames and the
directory after them (rule S-AT-2); by default, as TensorFlow's writer, nothing
is fsynced.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, BinaryIO, cast

import numpy as np

from ..dtypes import DTypeInfo, from_numpy, info
from ..errors import AlreadyExistsError, FailedPreconditionError, InvalidArgumentError
from ..storage.base import ObjectWriter
from ..storage.durable import TEMPSTATE, TemporaryFile, install
from ..storage.urls import is_url
from ..storage.urls import resolve as resolve_url
from .crc import crc32c, mask
from .messages import (
    BIG,
    LITTLE,
    BundleEntry,
    BundleHeader,
    TensorSlice,
    encode_entry,
    encode_header,
)
from .naming import data_filename, index_filename, key_bytes
from .ordered_code import encode_tensor_name_slice
from .slices import is_full, resolve
from .streams import write_strided_with_crc32c, write_with_crc32c
from .strings import encode_string_tensor
from .table import encode_table

if TYPE_CHECKING:
    from ..storage.objects import PlacedObject, PrefixClaim

__all__ = ["BundleWriter", "DataFileWriter", "as_tensor"]


def as_tensor(value: Any, dtype: Any = None) -> tuple[np.ndarray, DTypeInfo]:
    """Normalise a value to a little-endian array (not necessarily contiguous) and its TF dtype.

    Strings (``bytes``/``str`` scalars, ``S``/``U``/object arrays) become object
    arrays of ``bytes``; ``str`` is encoded as UTF-8, as TensorFlow does.
    """
    row = info(dtype) if dtype is not None else None
    if row is not None and row.is_string or (row is None and _looks_like_strings(value)):
        array = np.asarray(value, dtype=object)
        flat = array.reshape(-1)
        out = np.empty(flat.shape, dtype=object)
        for i, item in enumerate(flat):
            if isinstance(item, str):
                item = item.encode("utf-8")
            elif isinstance(item, (bytes, bytearray, memoryview, np.bytes_)):
                item = bytes(item)
            else:
                raise InvalidArgumentError(
                    f"string tensor element {i} is {type(item).__name__}, not bytes or str"
                )
            out[i] = item
        return out.reshape(array.shape), info("string")
    array = np.asarray(value, dtype=None if row is None else row.numpy)
    row = row or from_numpy(array.dtype)
    if array.dtype.byteorder == ">" or (array.dtype.byteorder == "=" and not _LITTLE_HOST):
        array = array.astype(array.dtype.newbyteorder("<"))
    if array.dtype != row.numpy and array.dtype.newbyteorder("=") != row.numpy:
        array = array.astype(row.numpy)
    return array, row


_LITTLE_HOST = np.little_endian


def _looks_like_strings(value: Any) -> bool:
    if isinstance(value, (str, bytes)):
        return True
    if isinstance(value, np.ndarray):
        return value.dtype.kind in ("S", "U", "O")
    try:
        return np.asarray(value).dtype.kind in ("S", "U", "O")
    except (ValueError, TypeError):
        return False


class DataFileWriter:
    """Writes one data file of a bundle and keeps the entries describing it (rules F-WR-1, -2).

    The bytes go to ``<path>.tempstate<N>`` (rule S-TP-1), held locked while
    open; :meth:`seal` flushes them (and fsyncs them with ``fsync=True``) and
    hands the temporary over to be renamed to ``path`` by whoever commits the
    bundle (:class:`BundleWriter`, or a multi-client save, rule P-SV-2). Every
    entry it makes names data shard ``shard_id``: the file's number among the
    bundle's data files.
    """

    def __init__(
        self,
        path: str,
        *,
        shard_id: int = 0,
        endianness: int = LITTLE,
        fsync: bool = False,
        token: int | None = None,
    ) -> None:
        if endianness not in (LITTLE, BIG):
            raise InvalidArgumentError(
                f"endianness must be LITTLE (0) or BIG (1), not {endianness}"
            )
        self.path = os.fspath(path)
        self.shard_id = int(shard_id)
        self.endianness = endianness
        self.fsync = bool(fsync)
        self._object: ObjectWriter | None = None
        if is_url(self.path):
            # An object store: the data goes under its final name, invisible until it
            # is committed, and no index names it before then (rule S-OS-1).
            from ..storage.objects import PlacedObject

            store, key = resolve_url(self.path)
            self._object = store.open_writer(key)
            self._placed = PlacedObject(store, key, self.path)
            self.temporary_path = self.path
            self._file = cast(BinaryIO, self._object)
        else:
            parent = os.path.dirname(self.path)
            if parent:
                os.makedirs(parent, exist_ok=True)
            token = secrets.randbits(63) if token is None else token
            self.temporary_path = f"{self.path}{TEMPSTATE}{token}"
            self._data_temp = TemporaryFile(self.temporary_path)
            self._file = self._data_temp.file
        self._offset = 0
        self._entries: dict[bytes, BundleEntry] = {}
        self._slices: dict[bytes, list[TensorSlice]] = {}  # partitioned tensors' slices
        self._finished = False

    @property
    def entries(self) -> dict[bytes, BundleEntry]:
        """The entries written so far, by key (slice keys and full entries included)."""
        for key, slices in self._slices.items():
            if len(self._entries[key].slices) != len(slices):
                self._entries[key] = self._entries[key]._replace(slices=tuple(slices))
        return self._entries

    def seal(self) -> TemporaryFile | PlacedObject:
        """Finish the data file (flushed, and fsynced with ``fsync``); its locked temporary.

        The caller renames it into place (``durable.install``) or discards it.
        """
        self._check_open()
        self._finished = True
        if self._object is not None:
            self._object.commit()  # aborts itself on a failure
            return self._placed
        try:
            self._data_temp.sync(self.fsync)
        except BaseException:
            self._data_temp.discard()
            raise
        return self._data_temp

    def abort(self) -> None:
        """Discard everything written so far."""
        self._finished = True
        if self._object is not None:
            self._object.abort()
            return
        self._data_temp.discard()

    # -- adding tensors -------------------------------------------------
    def _new_key(self, key: str | bytes) -> bytes:
        """``key`` as bytes, once checked to be free (rule F-WR-5)."""
        self._check_open()
        kb = key_bytes(key)
        if kb in self._entries:
            raise AlreadyExistsError("Adding duplicate key", key=kb)
        if kb == b"":
            raise InvalidArgumentError("the empty key is reserved for the bundle header")
        return kb

    def add(self, key: str | bytes, tensor: Any, dtype: Any = None) -> BundleEntry:
        """Append a whole tensor under ``key`` (TF's ``BundleWriter::Add``).

        Rules F-WR-1 (data order) and F-WR-5 (refused keys).
        """
        kb = self._new_key(key)
        array, row = as_tensor(tensor, dtype)
        entry = self._append(array, row)
        self._entries[kb] = entry
        return entry

    def add_slice(
        self,
        key: str | bytes,
        full_shape: tuple[int, ...],
        tensor_slice: TensorSlice,
        tensor: Any,
        dtype: Any = None,
    ) -> None:
        """Store ``tensor`` as the slice ``tensor_slice`` of a tensor of ``full_shape``.

        A slice that covers the whole tensor is stored as a plain entry, as
        TensorFlow's ``AddSlice`` does (rule F-SL-2); otherwise the full entry lists
        the slice and the data goes under the slice key (rules F-SL-3, F-SL-5).
        """
        self._check_open()
        kb = key_bytes(key)
        full_shape = tuple(int(d) for d in full_shape)
        box = resolve(tensor_slice, full_shape, what=f"slice of {kb!r}")
        array, row = as_tensor(tensor, dtype)
        if tuple(array.shape) != tuple(length for _, length in box):
            raise InvalidArgumentError(
                f"slice tensor has shape {list(array.shape)}, the slice spec needs "
                f"{[length for _, length in box]}",
                key=kb,
            )
        if is_full(tensor_slice, full_shape):
            self.add(kb, array, row.enum)
            return
        full = self._entries.get(kb)
        if full is None:
            full = BundleEntry(dtype=row.enum, shape=full_shape, shard_id=self.shard_id)
            self._entries[kb] = full
            self._slices[kb] = []
        elif kb not in self._slices:
            raise AlreadyExistsError("a whole tensor is already stored under this key", key=kb)
        elif full.dtype != row.enum or full.shape != full_shape:
            raise InvalidArgumentError(
                f"slice dtype/shape ({row.name}, {list(full_shape)}) disagree with earlier "
                f"slices ({info(full.dtype).name}, {list(full.shape)})",
                key=kb,
            )
        slice_key = encode_tensor_name_slice(kb, tensor_slice)
        if slice_key in self._entries:
            raise AlreadyExistsError("Adding duplicate key", key=slice_key)
        # Collected in a list and put in the full entry when the entries are asked for:
        # rebuilding the entry's tuple per slice would make N slices cost O(N^2).
        self._slices[kb].append(tuple(tensor_slice))
        self._entries[slice_key] = self._append(array, row)

    def _append(self, array: np.ndarray, row: DTypeInfo) -> BundleEntry:
        shape = tuple(int(d) for d in array.shape)
        big = self.endianness == BIG
        if row.is_string:
            chunks, crc, size = encode_string_tensor(list(array.reshape(-1)), big_endian=big)
            for chunk in chunks:
                self._file.write(chunk)
        else:
            size = array.nbytes
            if big and row.swap_width:  # what a big-endian host has in memory (F-WR-6)
                flat = np.ascontiguousarray(array).reshape(-1)
                array = flat.view(f"u{row.swap_width}").byteswap().view(array.dtype)
            if array.flags.c_contiguous:
                crc = mask(write_with_crc32c(self._file, array.reshape(-1).view(np.uint8)))
            else:
                crc = mask(write_strided_with_crc32c(self._file, array))
        entry = BundleEntry(
            dtype=row.enum,
            shape=shape,
            shard_id=self.shard_id,
            offset=self._offset,
            size=size,
            crc32c=crc,
        )
        self._offset += size  # back to back: no alignment padding (rule F-WR-2)
        return entry

    def _check_open(self) -> None:
        if self._finished:
            raise FailedPreconditionError(f"the writer of {self.path!r} is already finished")

    # -- streaming ----------------------------------------------------------
    def add_chunks(
        self, key: str | bytes, dtype: Any, shape: tuple[int, ...], chunks: Iterable[np.ndarray]
    ) -> BundleEntry:
        """Append a fixed-width tensor that arrives as pieces, never holding it whole.

        ``chunks`` is an iterable of arrays whose elements, taken in turn and
        each in C order, are the tensor's elements in C order; each piece is
        converted to ``dtype`` as :meth:`add` converts its tensor. The bytes go
        straight to the data file and the entry's CRC-32C is extended piece by
        piece, so the entry is the one :meth:`add` would write for the whole
        tensor (rules F-WR-1, F-CRC-3). Strings have no fixed width: use :meth:`add`.

        Pieces holding more or fewer elements than ``shape`` needs raise
        :class:`InvalidArgumentError`; then, or when ``chunks`` itself raises,
        the bytes already written stay in the data file without an entry, so
        abort the writer (leaving a ``with`` block by the exception does).
        """
        kb = self._new_key(key)
        row = info(dtype)
        if row.is_variable_width:
            raise InvalidArgumentError(f"{row.name} tensors cannot be streamed; use add()", key=kb)
        dims = tuple(int(d) for d in shape)
        if any(d < 0 for d in dims):
            raise InvalidArgumentError(f"negative dimension in shape {list(dims)}", key=kb)
        expected = int(np.prod(dims, dtype=object)) * row.itemsize
        swap = row.swap_width if self.endianness == BIG else 0
        offset, written, crc = self._offset, 0, 0
        try:
            for chunk in chunks:
                array, _ = as_tensor(chunk, row.enum)
                flat = np.ascontiguousarray(array).reshape(-1)
                if swap:  # what a big-endian host has in memory (F-WR-6)
                    flat = flat.view(f"u{swap}").byteswap().view(flat.dtype)
                raw = flat.view(np.uint8)
                if written + raw.nbytes > expected:
                    raise InvalidArgumentError(
                        f"pieces hold more than the {expected} bytes of shape {list(dims)}", key=kb
                    )
                crc = crc32c(raw, crc)
                self._file.write(raw.data)
                written += raw.nbytes
        finally:
            self._offset += written  # later entries stay right even if this one fails
        if written != expected:
            raise InvalidArgumentError(
                f"pieces hold {written} bytes; shape {list(dims)} needs {expected}", key=kb
            )
        entry = BundleEntry(
            dtype=row.enum,
            shape=dims,
            shard_id=self.shard_id,
            offset=offset,
            size=expected,
            crc32c=mask(crc),
        )
        self._entries[kb] = entry
        return entry


class BundleWriter(DataFileWriter):
    """Writes one bundle with a single data shard at ``prefix``.

    ``endianness=BIG`` writes the bundle a big-endian host would write
    (numeric data and string length words byte-swapped, header field set);
    it exists to test readers, TensorFlow's included.

    Use as a context manager or call :meth:`finish`; an exception inside the
    ``with`` block removes the temporary files and leaves nothing at ``prefix``.
    ``fsync=True`` makes the bundle durable before :meth:`finish` returns
    (rule S-AT-3); the default, like TensorFlow, does not fsync.
    """

    def __init__(self, prefix: str, *, endianness: int = LITTLE, fsync: bool = False) -> None:
        self.prefix = os.fspath(prefix)
        self._claim: PrefixClaim | None = None
        if is_url(self.prefix):  # rule S-OS-2: claim the prefix, then drop an old index
            from ..storage.objects import PrefixClaim

            store, key = resolve_url(self.prefix)
            self._claim = PrefixClaim(store, key)
            self._claim.acquire()
            try:
                store.delete(index_filename(key))
            except BaseException:
                self._claim.release()
                raise
        token = secrets.randbits(63)  # one number for both temporaries (rule S-TP-1)
        try:
            super().__init__(
                data_filename(self.prefix, 0, 1), endianness=endianness, fsync=fsync, token=token
            )
        except BaseException:
            if self._claim is not None:
                self._claim.release()
            raise
        self._tmp_index_path = f"{index_filename(self.prefix)}{TEMPSTATE}{token}"
        self._index_temp: TemporaryFile | None = None

    def __enter__(self) -> BundleWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            if not self._finished:
                self.finish()
        else:
            self.abort()

    def finish(self) -> None:
        """Write the index and put both files in place (TF's ``BundleWriter::Finish``).

        The index goes to its temporary name first; then, under the directory
        lock, an old index is removed and the data file and the index are
        renamed, data first (rules F-WR-3, F-WR-4, S-AT-1, S-AT-2).
        """
        self._check_open()
        if self._object is not None:
            self._finish_in_store()
            return
        self._finished = True
        try:
            header = BundleHeader(num_shards=1, endianness=self.endianness)
            items = [(b"", encode_header(header))]
            entries = self.entries
            items.extend((k, encode_entry(entries[k])) for k in sorted(entries))
            index = self._index_temp = TemporaryFile(self._tmp_index_path)
            index.file.write(encode_table(items))
            self._data_temp.sync(self.fsync)
            index.sync(self.fsync)
            index_path = index_filename(self.prefix)
            install(
                [(self.temporary_path, self.path), (self._tmp_index_path, index_path)],
                directory=os.path.dirname(self.prefix) or os.curdir,
                fsync=self.fsync,
                replaces_index=index_path,
                temporaries=(self._data_temp, index),
            )
        except BaseException:
            self._remove_temporaries()
            raise

    def _encode_index(self) -> bytes:
        header = BundleHeader(num_shards=1, endianness=self.endianness)
        items = [(b"", encode_header(header))]
        entries = self.entries
        items.extend((k, encode_entry(entries[k])) for k in sorted(entries))
        return encode_table(items)

    def _finish_in_store(self) -> None:
        """Rules S-OS-1 to S-OS-3: the data object completes under its final name, then
        the index is created only if absent, which commits the bundle."""
        assert self._claim is not None
        table = self._encode_index()
        placed = None
        try:
            placed = self.seal()
            store, key = resolve_url(self.prefix)
            store.create_if_absent(index_filename(key), table)
        except BaseException:
            if placed is not None:
                placed.discard()
            self._claim.release()
            raise
        self._claim.release()

    def abort(self) -> None:
        """Discard everything written so far."""
        self._finished = True
        if self._object is not None:
            self._object.abort()
            if self._claim is not None:
                self._claim.release()
            return
        self._remove_temporaries()

    def _remove_temporaries(self) -> None:
        for temporary in (self._data_temp, self._index_temp):
            if temporary is not None:
                temporary.discard()

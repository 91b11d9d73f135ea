"""Merging bundles into one: TF's ``MergeBundles`` / ``MergeV2Checkpoints`` (rule F-MG-1).

::

    part-0.index + part-0.data-00000-of-00001 ─┐
    part-1.index + part-1.data-00000-of-00001 ─┼─> dest.index
    part-2.index + part-2.data-00000-of-00001 ─┘   dest.data-0000{0,1,2}-of-00003

Data files are renamed, never copied, together with the merged index under
the destination directory's lock: an old index of the destination is
removed first, then the data files and the index are renamed, so an index
never describes data files of another version (rule S-AT-1). With
``fsync=True`` the inputs' data files and the new index are fsynced before
the renames and the directory after them (rule S-AT-2).

In an object store (any input or the destination a URL, rule S-SI-5) there
is no rename: each data file is copied to its merged name by ranged reads and
an upload, the merged index is created last, only if absent, under a claim of
the destination prefix (rules S-OS-1 to S-OS-3), and only then are the inputs'
indexes and copied data files deleted, index first (S-OS-6): a merge that
fails leaves its inputs whole. A URL input merged into a local destination is
copied to a temporary beside its final name and renamed in with the rest.

Inputs are taken in the order given; each data file that holds an entry
gets the next global shard id the first time one of its entries is seen, in
key order within each input. Entries of the same partitioned tensor coming
from several inputs have their ``slices`` lists concatenated. The merged
header's ``num_shards`` is the sum of the inputs' ``num_shards``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import BinaryIO

from ..errors import AlreadyExistsError, InvalidArgumentError, NotFoundError
from ..storage.base import ObjectWriter
from ..storage.durable import TemporaryFile, fsync_path, install, temporary_name
from ..storage.urls import is_url, resolve
from .bundle_reader import BundleReader
from .messages import (
    LITTLE,
    BundleEntry,
    BundleHeader,
    TensorSlice,
    encode_entry,
    encode_header,
)
from .naming import data_filename, index_filename
from .table import encode_table

__all__ = ["merge_bundles", "merge_entries", "encode_index", "split_for_merge", "merge_split"]

#: Bytes of a data file copied per read when a merge copies it (to or from a store).
COPY_CHUNK = 64 << 20

#: A data file's entries ready to merge: full entries of partitioned tensors as records,
#: every other entry already encoded (``split_for_merge``).
SplitEntries = tuple[dict[bytes, BundleEntry], list[tuple[bytes, bytes]]]


def merge_bundles(
    prefixes: Sequence[str],
    merged_prefix: str,
    *,
    allow_missing_files: bool = False,
    delete_old_dirs: bool = True,
    fsync: bool = False,
) -> None:
    """Merge the bundles at ``prefixes`` into ``merged_prefix`` (``fsync``: rule S-AT-3)."""
    merged_prefix = os.fspath(merged_prefix)
    to_store = is_url(merged_prefix)
    parent = "" if to_store else os.path.dirname(merged_prefix)
    if parent:
        os.makedirs(parent, exist_ok=True)
    present = []
    for prefix in prefixes:
        prefix = os.fspath(prefix)
        if _exists(index_filename(prefix)):
            present.append(prefix)
        elif not allow_missing_files:
            raise InvalidArgumentError(
                f"cannot merge: {index_filename(prefix)} does not exist", path=prefix
            )
    if not present:
        raise NotFoundError(
            "cannot merge: none of the input bundles exists: " + ", ".join(map(str, prefixes))
        )

    merged: dict[bytes, BundleEntry] = {}
    # A partitioned tensor's slices from every bundle, joined once at the end: adding
    # each bundle's to a growing tuple would make M bundles cost O(M^2).
    slices: dict[bytes, list[TensorSlice]] = {}
    file_ids: dict[str, int] = {}
    total_shards = 0
    first_header: BundleHeader | None = None
    for prefix in present:
        with BundleReader(prefix) as reader:
            header = reader.header
            if first_header is None:
                first_header = header
            elif header.endianness != first_header.endianness:
                raise InvalidArgumentError(
                    "cannot merge bundles of different endianness", path=reader.index_path
                )
            elif header.version != first_header.version:
                raise InvalidArgumentError(
                    "cannot merge bundles of different versions", path=reader.index_path
                )
            total_shards += header.num_shards
            for key in reader.raw_keys():
                entry = reader.entry(key)
                _merge_entry(
                    merged, slices, key, entry, prefix, header.num_shards, file_ids, reader
                )

    assert first_header is not None
    for key, parts in slices.items():
        merged[key] = merged[key]._replace(slices=tuple(parts))
    num_files = len(file_ids)
    renames = [
        (source, data_filename(merged_prefix, shard_id, num_files))
        for source, shard_id in file_ids.items()
    ]
    header = BundleHeader(
        num_shards=total_shards, endianness=first_header.endianness, version=first_header.version
    )
    items = [(b"", encode_header(header))]
    items.extend((key, encode_entry(merged[key])) for key in sorted(merged))
    index_path = index_filename(merged_prefix)
    if to_store:
        _write_merged_to_store(merged_prefix, encode_table(items), renames)
    else:
        _write_merged(index_path, encode_table(items), renames, parent or os.curdir, fsync)
    _remove_inputs(present, index_path, renames, delete_old_dirs, to_store)


def _exists(path: str) -> bool:
    if is_url(path):
        store, key = resolve(path)
        return store.exists(key)
    return os.path.exists(path)


def _is_copied(source: str, to_store: bool) -> bool:
    """Whether a data file reaches its merged name by a copy (a store is at either end)."""
    return to_store or is_url(source)


def _remove_inputs(
    present: list[str],
    index_path: str,
    moves: list[tuple[str, str]],
    delete_old_dirs: bool,
    to_store: bool,
) -> None:
    """Step 7 of F-MG-1, once the merged index exists: each input's index goes, then the
    data files that were copied rather than renamed (index first, rule S-OS-6)."""
    for prefix in present:
        index = index_filename(prefix)
        if is_url(index) or to_store:
            if index != index_path:
                store, key = resolve(index)
                store.delete(key)
        elif os.path.abspath(index) != os.path.abspath(index_path):
            try:
                os.remove(index)
            except OSError:
                pass
    for source, target in moves:
        if _is_copied(source, to_store) and source != target:
            store, key = resolve(source)
            store.delete(key)
    if not delete_old_dirs:
        return
    # Only when empty, as TF's non-recursive DeleteDir; a store has no directories.
    merged_dir = None if to_store else os.path.dirname(os.path.abspath(index_path))
    for prefix in present:
        if is_url(prefix):
            continue
        directory = os.path.dirname(os.path.abspath(prefix))
        if directory != merged_dir:
            try:
                os.rmdir(directory)
            except OSError:
                pass


def _copy(source: str, out: BinaryIO | ObjectWriter) -> None:
    """The bytes of the file or object ``source`` written to ``out``, read by ranged
    requests of at most :data:`COPY_CHUNK` bytes (rule S-SI-3)."""
    store, key = resolve(source)
    reader = store.open_reader(key)
    try:
        buffer = bytearray(min(COPY_CHUNK, reader.size))
        for offset in range(0, reader.size, COPY_CHUNK):
            view = memoryview(buffer)[: min(COPY_CHUNK, reader.size - offset)]
            reader.read_into(view, offset)
            out.write(view)
    finally:
        reader.close()


def _write_merged_to_store(merged_prefix: str, table: bytes, copies: list[tuple[str, str]]) -> None:
    """Steps 5 and 6 of F-MG-1 in an object store, as a save commits (rules S-OS-1 to
    S-OS-3): claim the prefix, drop its old index, copy the data files under their final
    names, then create the index only if absent. A failure removes what was copied."""
    from ..storage.objects import PlacedObject, PrefixClaim

    store, key = resolve(merged_prefix)
    claim = PrefixClaim(store, key, shards=len(copies))
    claim.acquire()
    placed: list[PlacedObject] = []
    try:
        store.delete(index_filename(key))
        for source, target in copies:
            if source == target:
                continue  # already in place: an input merged into its own prefix
            _, target_key = resolve(target)
            writer = store.open_writer(target_key)
            try:
                _copy(source, writer)
                writer.commit()
            except BaseException:
                writer.abort()
                raise
            placed.append(PlacedObject(store, target_key, target))
        store.create_if_absent(index_filename(key), table)
    except BaseException:
        for done in placed:
            done.discard()
        raise
    finally:
        claim.release()


def _write_merged(
    index_path: str,
    table: bytes,
    renames: list[tuple[str, str]],
    directory: str,
    fsync: bool,
) -> None:
    """Steps 5 and 6 of F-MG-1, as one commit (rules S-AT-1, S-AT-2). A data file of a
    store is first copied to a temporary beside its final name, then renamed in."""
    index = TemporaryFile(temporary_name(index_path))
    temporaries = [index]
    try:
        index.file.write(table)
        index.sync(fsync)
        local = []
        for source, target in renames:
            if is_url(source):
                copy = TemporaryFile(temporary_name(target))
                temporaries.append(copy)
                _copy(source, copy.file)
                copy.sync(fsync)
                local.append((copy.path, target))
            else:
                if fsync:
                    fsync_path(source)
                local.append((source, target))
        install(
            [*local, (index.path, index_path)],
            directory=directory,
            fsync=fsync,
            replaces_index=index_path,
            temporaries=temporaries,
        )
    except BaseException:
        for temporary in temporaries:
            temporary.discard()
        raise


def _merge_entry(
    merged: dict[bytes, BundleEntry],
    slices: dict[bytes, list[TensorSlice]],
    key: bytes,
    entry: BundleEntry,
    prefix: str,
    num_shards: int,
    file_ids: dict[str, int],
    reader: BundleReader,
) -> None:
    existing = merged.get(key)
    if existing is None:
        source = data_filename(prefix, entry.shard_id, num_shards)
        if source not in file_ids:
            file_ids[source] = len(file_ids)
        merged[key] = BundleEntry(
            dtype=entry.dtype,
            shape=entry.shape,
            shard_id=file_ids[source],
            offset=entry.offset,
            size=entry.size,
            crc32c=entry.crc32c,
            slices=entry.slices,
        )
        if entry.slices:
            slices[key] = list(entry.slices)
        return
    # Met again: a partitioned tensor's slices, appended in place (linear).
    check_combinable(existing, entry, key, reader.index_path)
    slices[key].extend(entry.slices)


def check_combinable(existing: BundleEntry, entry: BundleEntry, key: bytes, path: str) -> None:
    """A partitioned tensor's full entry may meet another file's: two whole entries under
    one key, or slices of different dtypes or shapes, are refused (F-MG-1)."""
    if not existing.slices or not entry.slices:
        raise AlreadyExistsError("duplicate tensor key while merging bundles", path=path, key=key)
    if existing.dtype != entry.dtype or existing.shape != entry.shape:
        raise InvalidArgumentError(
            "partitioned tensor has different dtype or shape in two merged bundles",
            path=path,
            key=key,
        )


def merge_entries(
    parts: Sequence[Mapping[bytes, BundleEntry]], *, where: str = ""
) -> dict[bytes, BundleEntry]:
    """The entries of data files numbered in advance, merged as :func:`merge_bundles` merges.

    ``parts[k]`` holds the entries of data file ``k``, whose entries already
    name shard ``k`` (a :class:`~dtckpt.format.bundle_writer.DataFileWriter`'s).
    Taken in order, a key met again must be a partitioned tensor's full entry,
    whose slices are appended: exactly the index that merging the parts as
    single-shard bundles, in this order, would write (rules F-MG-1, P-SV-2).
    """
    merged = _Slices(where)
    for entries in parts:
        for key in sorted(entries):
            merged.add(key, entries[key])
    return merged.entries()


class _Slices:
    """Entries met in merge order; a partitioned tensor's slice lists grow in place.

    Each list is extended, never rebuilt, and each full entry is built once at
    the end: merging a tensor stored in P files costs O(P), not O(P^2).
    """

    def __init__(self, where: str) -> None:
        self.where = where
        self.first: dict[bytes, BundleEntry] = {}
        self.more: dict[bytes, list[TensorSlice]] = {}

    def add(self, key: bytes, entry: BundleEntry) -> None:
        existing = self.first.get(key)
        if existing is None:
            self.first[key] = entry
            return
        check_combinable(existing, entry, key, self.where)
        self.more.setdefault(key, list(existing.slices)).extend(entry.slices)

    def entries(self) -> dict[bytes, BundleEntry]:
        out = self.first
        for key, slices in self.more.items():
            out[key] = out[key]._replace(slices=tuple(slices))
        return out


def encode_index(
    entries: Mapping[bytes, BundleEntry], num_shards: int, *, endianness: int = LITTLE
) -> bytes:
    """The bytes of a bundle's index: the header, then the entries in key order (F-IX-*)."""
    header = BundleHeader(num_shards=num_shards, endianness=endianness)
    items = [(b"", encode_header(header))]
    items.extend((key, encode_entry(entries[key])) for key in sorted(entries))
    return encode_table(items)


def split_for_merge(entries: Mapping[bytes, BundleEntry]) -> SplitEntries:
    """One data file's entries as its writer hands them to whoever merges (rule P-SV-2).

    Only a partitioned tensor's full entry can meet another file's (its slice
    lists are concatenated): it stays a record. Every other entry is encoded
    here, by the writer, so that the merging side encodes one entry per
    partitioned tensor instead of one per entry.
    """
    full: dict[bytes, BundleEntry] = {}
    encoded: list[tuple[bytes, bytes]] = []
    for key in sorted(entries):
        entry = entries[key]
        if entry.slices:
            full[key] = entry
        else:
            encoded.append((key, encode_entry(entry)))
    return full, encoded


def merge_split(parts: Sequence[SplitEntries], num_shards: int, *, where: str = "") -> bytes:
    """The index :func:`encode_index` writes for :func:`merge_entries` of the same files,
    from their :func:`split_for_merge` forms (byte for byte the same)."""
    merged = _Slices(where)
    for records, _ in parts:
        for key in sorted(records):
            merged.add(key, records[key])
    full = merged.entries()
    items = [(key, encode_entry(entry)) for key, entry in full.items()]
    for _, encoded in parts:
        items.extend(encoded)
    items.sort(key=lambda item: item[0])
    for (key, _), (following, _) in zip(items, items[1:], strict=False):
        if key == following:
            raise AlreadyExistsError(
                "duplicate tensor key while merging bundles", path=where, key=key
            )
    header = BundleHeader(num_shards=num_shards)
    return encode_table([(b"", encode_header(header)), *items])

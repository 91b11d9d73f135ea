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

Inputs are taken in the order given; each data file that holds an entry
gets the next global shard id the first time one of its entries is seen, in
key order within each input. Entries of the same partitioned tensor coming
from several inputs have their ``slices`` lists concatenated. The merged
header's ``num_shards`` is the sum of the inputs' ``num_shards``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from ..errors import (
    AlreadyExistsError,
    InvalidArgumentError,
    NotFoundError,
    UnimplementedError,
)
from ..storage.durable import TemporaryFile, fsync_path, install, temporary_name
from ..storage.urls import is_url
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
    if is_url(merged_prefix) or any(is_url(os.fspath(p)) for p in prefixes):
        # Merging renames data files into place; a store has no rename (rule S-SI-5).
        raise UnimplementedError(
            "merging bundles in an object store is not supported: merge local copies, or "
            "save the checkpoint to the store whole",
            path=merged_prefix,
        )
    parent = os.path.dirname(merged_prefix)
    if parent:
        os.makedirs(parent, exist_ok=True)
    present = []
    for prefix in prefixes:
        prefix = os.fspath(prefix)
        if os.path.exists(index_filename(prefix)):
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
    _write_merged(index_path, encode_table(items), renames, parent or os.curdir, fsync)

    merged_dir = os.path.dirname(os.path.abspath(merged_prefix))
    for prefix in present:
        if os.path.abspath(index_filename(prefix)) != os.path.abspath(index_path):
            try:
                os.remove(index_filename(prefix))
            except OSError:
                pass
        if delete_old_dirs:
            directory = os.path.dirname(os.path.abspath(prefix))
            if directory != merged_dir:
                try:
                    os.rmdir(directory)  # only when empty, as TF's non-recursive DeleteDir
                except OSError:
                    pass


def _write_merged(
    index_path: str,
    table: bytes,
    renames: list[tuple[str, str]],
    directory: str,
    fsync: bool,
) -> None:
    """Steps 5 and 6 of F-MG-1, as one commit (rules S-AT-1, S-AT-2)."""
    index = TemporaryFile(temporary_name(index_path))
    try:
        index.file.write(table)
        index.sync(fsync)
        if fsync:
            for source, _ in renames:
                fsync_path(source)
        install(
            [*renames, (index.path, index_path)],
            directory=directory,
            fsync=fsync,
            replaces_index=index_path,
            temporaries=(index,),
        )
    except BaseException:
        index.discard()
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

"""Bundles read straight out of an archive: ``ARCHIVE::PREFIX`` paths (rules A-RD-2, A-RD-3).

::

    "model.dtar::ckpt-3"        BundleReader(prefix, source=ArchiveSource(...))
        index_path   "model.dtar::ckpt-3.index"              -> member "ckpt-3.index"
        shard_path   "model.dtar::ckpt-3.data-00000-of-00001" -> member "ckpt-3.data-00000-of-00001"

A bundle inside an archive is named by the archive's path, ``::`` and the member prefix,
so every file name a reader derives from its prefix, and shows in its errors, says which
archive and which member it means, and the same string opens it again.
"""

from __future__ import annotations

import posixpath

import numpy as np

from ..format.crc import crc32c
from .paths import SEPARATOR
from .reader import ArchiveReader

__all__ = ["ArchiveSource", "ArchiveShard", "INDEX_RATIO", "INDEX_SLACK"]

#: Rule H-AL-2: an index member decodes to at most this many times its compressed bytes
#: (TensorFlow-written indexes compress 2 to 4 times with zstd) ...
INDEX_RATIO = 16
#: ... plus this much, for small indexes.
INDEX_SLACK = 1 << 20


class ArchiveShard:
    """One member file, read through the archive's frames (the ``ShardFile`` protocol)."""

    def __init__(self, reader: ArchiveReader, name: str, path: str) -> None:
        self._reader = reader
        self.name = name
        self.path = path
        self.size = reader.member(name).size

    def read_into(self, out: np.ndarray, offset: int) -> None:
        self._reader.read_into(self.name, offset, out)

    def read_into_with_crc32c(self, out: np.ndarray, offset: int) -> int:
        self._reader.read_into(self.name, offset, out)
        return crc32c(out)

    def map(self) -> None:
        """Frames are compressed: there is nothing to map (rule A-RD-3)."""
        return None

    def close(self) -> None:
        pass


class ArchiveSource:
    """The member files of an archive as a ``BundleSource`` (``dtckpt.format.streams``).

    Paths are ``ARCHIVE::MEMBER``; the source owns its :class:`ArchiveReader` and closes it
    when the bundle reader closes.
    """

    def __init__(self, reader: ArchiveReader) -> None:
        self.reader = reader
        self._head = reader.path + SEPARATOR

    def _member(self, path: str) -> str | None:
        if not path.startswith(self._head):
            return None
        name = path[len(self._head) :]
        return name if name in self.reader.members else None

    def read_index(self, path: str) -> memoryview | None:
        """The index member, held once; it may decode to at most :data:`INDEX_RATIO` times its
        compressed bytes plus :data:`INDEX_SLACK` (rule H-AL-2), so that a member of zeros
        that claims gigabytes from a few kilobytes is refused before it is decoded."""
        name = self._member(path)
        if name is None:
            return None
        limit = INDEX_SLACK + INDEX_RATIO * self.reader.compressed_size(name)
        return self.reader.read_member_view(name, limit=limit)

    def open_shard(self, path: str) -> ArchiveShard | None:
        name = self._member(path)
        return None if name is None else ArchiveShard(self.reader, name, path)

    def siblings(self, path: str) -> list[str]:
        if not path.startswith(self._head):
            return []
        directory = posixpath.dirname(path[len(self._head) :])
        return [
            self._head + name
            for name in self.reader.members
            if posixpath.dirname(name) == directory
        ]

    def close(self) -> None:
        self.reader.close()

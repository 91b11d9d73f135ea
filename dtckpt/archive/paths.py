"""Naming archives and the bundles inside them: ``ARCHIVE`` and ``ARCHIVE::MEMBER`` (A-RD-2).

Only the first eight bytes of a file are read here, so that ``load_checkpoint`` can tell an
archive from a checkpoint prefix without loading zstd or anything else of the archive code.
"""

from __future__ import annotations

import os
import posixpath

from ..errors import CheckpointError, InvalidArgumentError, NotFoundError
from ..storage.inputs import open_input
from ..storage.urls import is_url, resolve
from .layout import MAGIC

__all__ = ["SEPARATOR", "is_archive", "split_archive_path", "member_path", "normalize_member"]

#: Between an archive's path and a member prefix inside it.
SEPARATOR = "::"


def is_archive(path: str) -> bool:
    """Whether ``path`` is a file that starts with the archive magic (rule A-RD-4)."""
    path = os.fspath(path)
    if is_url(path):
        return _is_archive_object(path)
    if not os.path.isfile(path):  # never open a FIFO or device: the read could block
        return False
    try:
        fd = open_input(path)  # rule H-SP-1: a FIFO swapped in since the check is refused
    except (NotFoundError, OSError):
        return False
    try:
        return os.pread(fd, len(MAGIC), 0) == MAGIC
    except OSError:
        return False
    finally:
        os.close(fd)


def _is_archive_object(url: str) -> bool:
    """Rule A-RD-4 on an object store: one ranged read of the first bytes (S-SI-3)."""
    try:
        store, key = resolve(url)
        if not store.exists(key):
            return False
        reader = store.open_reader(key)
        try:
            return reader.size >= len(MAGIC) and bytes(reader.read(0, len(MAGIC))) == MAGIC
        finally:
            reader.close()
    except (CheckpointError, OSError):
        return False


def split_archive_path(path: str) -> tuple[str, str | None] | None:
    """``(archive, member)`` for ``ARCHIVE`` or ``ARCHIVE::MEMBER``, else ``None``.

    The archive is the shortest head of ``path`` before a ``::`` that is an archive file,
    so paths that merely contain ``::`` keep their meaning.
    """
    path = os.fspath(path)
    if is_archive(path):
        return path, None
    at = path.find(SEPARATOR)
    while at != -1:
        if is_archive(path[:at]):
            return path[:at], path[at + len(SEPARATOR) :] or None
        at = path.find(SEPARATOR, at + 1)
    return None


def member_path(archive: str, member: str) -> str:
    return f"{archive}{SEPARATOR}{member}"


def normalize_member(member: str) -> str:
    """A member path as given by a user (``./ckpt-3``, ``sub/``): normalised, inside the root."""
    name = posixpath.normpath(member.replace(os.sep, "/")).strip("/")
    if name == ".":
        return ""
    if name == ".." or name.startswith("../"):
        raise InvalidArgumentError(f"member {member!r} lies outside the archive")
    return name

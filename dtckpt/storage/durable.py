"""Crash-safe files: temporaries, fsync, renames into place, cleaning (rules S-AT-*, S-TP-*).

::

    write                       fsync (optional)     commit, under the directory lock
    P.data-00000-of-00001.tempstate<N> --+           1. remove an old P.index
    P.index.tempstate<N> ----------------+-------->  2. rename the data files into place
                                                     3. rename P.index.tempstate<N> to P.index
                                                     4. fsync the directory (optional)

A file is first written under a temporary name (S-TP-1) and held with
``flock`` while it is open, which marks it *live*: the cleaner that runs at
the start of every checkpoint save (S-TP-2) removes only temporaries that no
live writer holds. Contents are flushed and, when asked, fsynced before the
rename, and the directory is fsynced after it, so that after a power loss
the name never points at missing bytes and the rename itself is not lost
(S-AT-2). Removing the old index first means an index never describes data
files of another version (S-AT-1).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import BinaryIO

from .dirlock import UNSUPPORTED_LOCK_ERRNOS, directory_lock, fcntl, open_directory

__all__ = [
    "TemporaryFile",
    "temporary_name",
    "install",
    "fsync_directory",
    "fsync_path",
    "is_temporary_name",
    "remove_stale_temporaries",
    "clean_if_changed",
    "note_unchanged",
    "TEMPSTATE",
    "replace_on_success",
    "output_file",
    "remove_stale_outputs",
    "is_output_temporary_name",
    "is_sharded_part_name",
    "SHARDED_TEMP_SUFFIX",
    "SHARDED_TEMP_MARKER",
]

#: Suffix of a bundle file's temporary name: ``P.index.tempstate<N>`` (TF's, rule S-TP-1).
TEMPSTATE = ".tempstate"
#: Suffix of the directory a sharded (DTensor) save writes its per-device bundles into.
SHARDED_TEMP_SUFFIX = "_temp"

# Rule S-TP-1: the names of temporaries, and nothing else, are what the cleaner may touch.
_BUNDLE_TEMP = re.compile(r".+\.(?:index|data-\d{5,}-of-\d{5,})\.tempstate\d+")
_STATE_TEMP = re.compile(r"checkpoint\.tmp[0-9a-f]{32}")
_INDEX_TEMP = re.compile(r"(.+)\.index\.tempstate\d+")
_DATA_FILE = re.compile(r"(.+)\.data-\d{5,}-of-\d{5,}")
_PART_FILE = re.compile(
    r"part-\d{5,}-of-\d{5,}(?:_dev-\d+-of-\d+)?\.(?:index|data-\d{5,}-of-\d{5,})"
    r"(?:\.tempstate\d+)?"
)
_CREATE_ATTEMPTS = 3


def temporary_name(path: str) -> str:
    """``path.tempstate<N>`` with ``N`` a random 63-bit number, as TensorFlow names them."""
    return f"{path}{TEMPSTATE}{secrets.randbits(63)}"


def is_sharded_part_name(name: str) -> bool:
    """Whether a file name is one of a sharded save's per-device files in ``P_temp/``."""
    return bool(_PART_FILE.fullmatch(name))


def is_temporary_name(name: str) -> bool:
    """Whether a file name (no directory) is one of the temporaries of rule S-TP-1."""
    return bool(_BUNDLE_TEMP.fullmatch(name) or _STATE_TEMP.fullmatch(name))


class TemporaryFile:
    """A new file under a temporary name, locked while open so cleaners leave it alone.

    ``file`` is a buffered binary file to write to. :meth:`sync` flushes it
    (and fsyncs it when asked) but keeps it open and locked; :func:`install`
    closes it under the directory lock just before renaming it.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.file: BinaryIO = os.fdopen(_create_locked(path), "wb")

    def sync(self, fsync: bool) -> None:
        """Push the written bytes to the OS and, with ``fsync``, to the disk."""
        self.file.flush()
        if fsync:
            os.fsync(self.file.fileno())

    def close(self) -> None:
        self.file.close()

    def discard(self) -> None:
        """Close and remove the file, whatever state it is in."""
        try:
            self.file.close()
        except OSError:
            pass  # a failed flush of bytes that are being thrown away
        _remove_if_present(self.path)


#: Rule S-TP-5: the temporary of a single output file (an archive, a converted file):
#: ``.<name>.tmp<16 hex digits>`` beside it.
_OUTPUT_TEMP = re.compile(r"\..+\.tmp[0-9a-f]{16}")


def is_output_temporary_name(name: str) -> bool:
    """Whether a file name (no directory) is the temporary of an output file (rule S-TP-5)."""
    return bool(_OUTPUT_TEMP.fullmatch(name))


def remove_stale_outputs(path: str) -> list[str]:
    """Remove the temporaries of the output file ``path`` that no live writer holds (S-TP-5).

    The directory is listed once; only regular files named ``.<name>.tmp<16 hex digits>``
    for this very ``<name>`` are candidates, and each is removed only if its ``flock`` can be
    taken at once (its writer died). Returns the paths removed.
    """
    directory = os.path.dirname(os.path.abspath(path))
    pattern = re.compile(re.escape(f".{os.path.basename(path)}.tmp") + "[0-9a-f]{16}")
    removed: list[str] = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        if pattern.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
            if _remove_if_stale(entry.path):
                removed.append(entry.path)
    return removed


@contextmanager
def output_file(path: str) -> Iterator[str]:
    """Yield a new temporary path beside ``path``; rename it onto ``path`` when the block
    succeeds (rule S-TP-5).

    The temporary, ``.<name>.tmp<16 hex digits>``, is created exclusively and held with
    ``flock`` until it is renamed or removed, so that the next writer of ``path``, which
    first removes the temporaries a killed writer left, leaves a live one alone. The block
    writes the temporary by its path. On an exception it is removed and ``path`` is
    untouched.
    """
    remove_stale_outputs(path)
    directory = os.path.dirname(os.path.abspath(path))
    temporary = os.path.join(directory, f".{os.path.basename(path)}.tmp{secrets.token_hex(8)}")
    held = _create_locked(temporary)
    try:
        with replace_on_success(path, temporary):
            yield temporary
    finally:
        os.close(held)


@contextmanager
def replace_on_success(path: str, temporary: str) -> Iterator[str]:
    """Yield ``temporary`` to be written; rename it onto ``path`` when the block succeeds.

    On an exception the temporary file is removed (if it was made) and
    ``path`` is untouched: a reader sees the old file or the whole new one.
    For single files outside a bundle (archives, converted files); bundles
    are committed by :func:`install`.
    """
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        try:
            os.remove(temporary)
        except OSError:
            pass  # never made, or already gone: the error that matters is the one raised
        raise


def _create_locked(path: str) -> int:
    """Create ``path`` exclusively and flock it; retried if a cleaner removed it meanwhile."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(_CREATE_ATTEMPTS):
        fd = os.open(path, flags, 0o666)
        if fcntl is None:  # pragma: no cover - Windows: an open file cannot be removed
            return fd
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as exc:
            if exc.errno in UNSUPPORTED_LOCK_ERRNOS:
                return fd  # cleaners cannot lock it either, so they leave it alone
            os.close(fd)
            raise
        # A cleaner may have locked and removed the file between open and flock.
        if _same_file(fd, path):
            return fd
        os.close(fd)
    raise FileExistsError(errno.EEXIST, "temporary file keeps being removed", path)


def _same_file(fd: int, path: str) -> bool:
    try:
        named = os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino)


def _remove_if_present(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def fsync_path(path: str) -> None:
    """fsync a file that is already written and closed (the inputs of a merge)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_directory(directory: str) -> None:
    """Make the renames and removals inside ``directory`` durable (rule S-AT-2)."""
    if os.name == "nt":  # pragma: no cover - directories cannot be opened; NTFS journals renames
        return
    fd = open_directory(directory or os.curdir)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno != errno.EINVAL:  # EINVAL: this filesystem does not sync directories
            raise
    finally:
        os.close(fd)


def install(
    renames: Sequence[tuple[str, str]],
    *,
    directory: str,
    fsync: bool,
    replaces_index: str | None = None,
    temporaries: Iterable[TemporaryFile] = (),
    keep_on_failure: bool = False,
    lock: bool = True,
) -> None:
    """Rename finished files into place under the directory lock (rule S-AT-1).

    ``lock=False`` is for a client of a multi-client save whose root already
    holds the lock for everyone (rule P-SV-2): that lock is another process's.

    ``replaces_index`` (the ``.index`` the renames will write) is removed
    first, so that while data files are replaced no index describes them.
    The renames run in the order given: data files first, the index last.
    If any step fails, the files already renamed are removed again, the last
    renamed first (the index before its data), unless ``keep_on_failure``.
    """
    held = directory_lock(directory) if lock else contextlib.nullcontext()
    with held:
        for temporary in temporaries:
            temporary.close()  # releases its flock; the directory lock keeps cleaners out
        done: list[str] = []
        try:
            if replaces_index is not None:
                _remove_if_present(replaces_index)
            for source, target in renames:
                os.replace(source, target)
                done.append(target)
            if fsync:
                fsync_directory(directory)
        except BaseException:
            if not keep_on_failure:
                for target in reversed(done):
                    try:
                        _remove_if_present(target)
                    except OSError:
                        pass
            raise


def remove_stale_temporaries(directory: str) -> list[str]:
    """Remove the temporaries in ``directory`` that no live writer holds (rule S-TP-2).

    Call it under the directory lock. Only regular files named as rule S-TP-1
    says are removed, and ``<prefix>_temp`` directories whose every entry is a
    per-device part file; symbolic links are never followed or removed. A
    stale index temporary ``P.index.tempstate<N>`` is the mark of a save of
    ``P`` that never committed: when ``P.index`` does not exist, the data files
    ``P.data-NNNNN-of-NNNNN`` it left are removed with it (rule S-TP-2).
    Returns the paths removed.
    """
    removed: list[str] = []
    try:
        entries = list(os.scandir(directory or os.curdir))
    except (FileNotFoundError, NotADirectoryError):
        return removed
    uncommitted: set[str] = set()
    for entry in entries:
        if entry.is_symlink():
            continue
        if is_temporary_name(entry.name) and entry.is_file(follow_symlinks=False):
            if _remove_if_stale(entry.path):
                removed.append(entry.path)
                marked = _INDEX_TEMP.fullmatch(entry.name)
                if marked:
                    uncommitted.add(marked.group(1))
        elif entry.name.endswith(SHARDED_TEMP_SUFFIX) and entry.is_dir(follow_symlinks=False):
            removed.extend(_remove_stale_sharded_dir(entry.path))
    if uncommitted:
        removed.extend(_remove_uncommitted_data(entries, uncommitted))
    return removed


def _remove_uncommitted_data(entries: list[os.DirEntry[str]], prefixes: set[str]) -> list[str]:
    """The data files of the prefixes whose save left a mark and no index (one pass)."""
    names = {entry.name for entry in entries}
    orphaned = {p for p in prefixes if f"{p}.index" not in names}
    removed = []
    for entry in entries:
        found = _DATA_FILE.fullmatch(entry.name)
        if found is None or found.group(1) not in orphaned:
            continue
        if entry.is_symlink() or not entry.is_file(follow_symlinks=False):
            continue
        try:
            os.remove(entry.path)
        except OSError:
            continue
        removed.append(entry.path)
    return removed


#: Per directory, its (device, inode, mtime) when this process last left it clean
#: (rule S-TP-3).
_LEFT_CLEAN: dict[str, tuple[int, int, int]] = {}


def _signature(directory: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(directory or os.curdir)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_mtime_ns)


def clean_if_changed(directory: str) -> list[str]:
    """:func:`remove_stale_temporaries`, unless nothing changed the directory since this
    process last left it clean (rule S-TP-3). Call it under the directory lock.

    Listing a directory costs its size; a program that saves K checkpoints into one
    directory would otherwise pay O(K^2) for the listings alone.
    """
    key = os.path.abspath(directory or os.curdir)
    signature = _signature(directory)
    if signature is not None and _LEFT_CLEAN.get(key) == signature:
        return []
    _LEFT_CLEAN.pop(key, None)
    return remove_stale_temporaries(directory)


def note_unchanged(directory: str) -> None:
    """Record that this process's save left ``directory`` without temporaries (S-TP-3).

    Call it under the directory lock, at the end of a save that succeeded.
    """
    signature = _signature(directory)
    if signature is not None:
        _LEFT_CLEAN[os.path.abspath(directory or os.curdir)] = signature


#: Rule S-TP-4: the file that marked ``P_temp/`` as made by a sharded save of an earlier
#: version (no save makes one now). Only a directory holding it is ever removed.
SHARDED_TEMP_MARKER = ".dtckpt-sharded-save"


def _is_ours(entry: os.DirEntry[str]) -> bool:
    """A regular file a sharded save writes into ``P_temp/`` (its marker or a part file)."""
    if entry.is_symlink() or not entry.is_file(follow_symlinks=False):
        return False
    return entry.name == SHARDED_TEMP_MARKER or bool(_PART_FILE.fullmatch(entry.name))


def _remove_stale_sharded_dir(path: str) -> list[str]:
    """Remove a leftover ``<prefix>_temp`` directory: one holding the marker of rule S-TP-4
    and nothing but part files, none of them live."""
    try:
        entries = list(os.scandir(path))
    except OSError:
        return []
    if not all(_is_ours(entry) for entry in entries):
        return []
    if SHARDED_TEMP_MARKER not in {entry.name for entry in entries}:
        return []  # an empty directory, or one a user made: not provably ours
    parts = [e for e in entries if e.name != SHARDED_TEMP_MARKER]
    removed = [entry.path for entry in parts if _remove_if_stale(entry.path)]
    if len(removed) < len(parts):
        return removed  # a live writer still uses it
    marker = os.path.join(path, SHARDED_TEMP_MARKER)
    try:
        os.remove(marker)
        os.rmdir(path)
    except OSError:
        return removed
    return [*removed, marker, path]


def _remove_if_stale(path: str) -> bool:
    """Remove ``path`` unless a live writer holds its flock; whether it was removed."""
    if fcntl is None:  # pragma: no cover - Windows refuses to remove a file a writer has open
        try:
            os.remove(path)
        except OSError:
            return False
        return True
    try:
        fd = os.open(
            path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        )
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # held by a live writer, or locks are unsupported: leave it
        if not _same_file(fd, path):
            return False
        os.remove(path)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)

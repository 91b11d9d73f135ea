"""The local file system as a :class:`~dtckpt.storage.base.Store` (rules S-SI-*).

::

    open_writer(k)        .k.tmp<16 hex> (flock'd, S-TP-5) --commit: fsync, rename--> k
    create_if_absent(k)   temporary --fsync, link(2) onto k: fails if k exists--> k
    replace_if_unchanged  under the directory lock (S-LK-1): compare, temporary, rename

Keys are paths. Checkpoint saves to local paths keep their own commit
(``durable.install``, the directory lock, the cleaners): this class serves what
stores have in common (state files, single objects, the conformance tests) and
is the model the object stores follow.
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Callable, Sequence

from ..errors import ConditionalWriteConflict, OutOfRangeError
from .base import MAX_IN_FLIGHT, Span, coalesce
from .dirlock import directory_lock
from .durable import TemporaryFile, fsync_directory
from .inputs import open_input, read_input

__all__ = ["LocalStore", "LocalReader", "LocalWriter", "LOCAL_STORE"]


class LocalReader:
    """A regular file read with ``os.pread`` (files are opened as rule H-SP-1 says)."""

    __slots__ = ("key", "size", "_fd")

    def __init__(self, key: str) -> None:
        self.key = key
        self._fd = open_input(key)
        self.size = os.fstat(self._fd).st_size

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise OutOfRangeError(
                f"bytes [{offset}, {offset + length}) are past the end ({self.size} bytes)",
                path=self.key,
                offset=offset,
            )
        data = os.pread(self._fd, length, offset)
        while len(data) < length:  # short reads: large requests, or the file shrank
            more = os.pread(self._fd, length - len(data), offset + len(data))
            if not more:
                raise OutOfRangeError(
                    f"the file ends after {offset + len(data)} bytes",
                    path=self.key,
                    offset=offset + len(data),
                )
            data += more
        return data

    def read_into(self, out: memoryview, offset: int) -> None:
        if offset < 0 or offset + len(out) > self.size:
            raise OutOfRangeError(
                f"bytes [{offset}, {offset + len(out)}) are past the end ({self.size} bytes)",
                path=self.key,
                offset=offset,
            )
        done = 0
        while done < len(out):
            n = os.preadv(self._fd, [out[done:]], offset + done)
            if n == 0:
                raise OutOfRangeError(
                    f"the file ends after {offset + done} bytes",
                    path=self.key,
                    offset=offset + done,
                )
            done += n

    def read_ranges(self, spans: Sequence[Span]) -> list[bytes | memoryview]:
        out: dict[Span, bytes | memoryview] = {}
        for run, members in coalesce(spans, max_length=MAX_IN_FLIGHT):
            view = memoryview(self.read(run.offset, run.length))
            for span in members:
                start = span.offset - run.offset
                out[span] = view[start : start + span.length]
        return [out[span] if span.length else b"" for span in spans]

    def close(self) -> None:
        os.close(self._fd)


class LocalWriter:
    """A new file under a locked temporary name (rule S-TP-5), renamed onto ``key`` by
    :meth:`commit` after an fsync (rule S-AT-2)."""

    def __init__(self, key: str, *, fsync: bool) -> None:
        self.key = key
        self._fsync = fsync
        directory, name = os.path.split(os.path.abspath(key))
        os.makedirs(directory, exist_ok=True)
        self._temporary = TemporaryFile(
            os.path.join(directory, f".{name}.tmp{secrets.token_hex(8)}")
        )
        self._done = False

    def write(self, data: bytes | bytearray | memoryview) -> int:
        return self._temporary.file.write(data)

    def commit(self) -> None:
        try:
            self._temporary.sync(self._fsync)
            self._temporary.close()
            os.replace(self._temporary.path, self.key)
            if self._fsync:
                fsync_directory(os.path.dirname(os.path.abspath(self.key)))
        except BaseException:
            self.abort()
            raise
        self._done = True

    def abort(self) -> None:
        if not self._done:
            self._done = True
            self._temporary.discard()


def _token(data: bytes) -> str:
    import hashlib  # only conditional replaces need it

    return hashlib.sha256(data).hexdigest()


class LocalStore:
    """The file system; ``fsync=True`` makes every commit durable (rule S-AT-2)."""

    atomic_conditions = True

    def __init__(self, *, fsync: bool = True) -> None:
        self.fsync = fsync

    def url(self, key: str) -> str:
        return key

    def join(self, directory: str, name: str) -> str:
        return os.path.join(directory, name)

    def parent(self, key: str) -> str:
        return os.path.dirname(key) or os.curdir

    def open_reader(self, key: str) -> LocalReader:
        return LocalReader(key)

    def open_writer(self, key: str) -> LocalWriter:
        return LocalWriter(key, fsync=self.fsync)

    def read(self, key: str, *, limit: int | None = None) -> bytes:
        return read_input(key, limit=limit)

    def exists(self, key: str) -> bool:
        return os.path.isfile(key)

    def create_if_absent(self, key: str, data: bytes) -> None:
        """Rule S-SI-4: ``link(2)`` refuses an existing name, atomically, in every process."""
        writer = LocalWriter(key, fsync=self.fsync)
        try:
            writer.write(data)
            writer._temporary.sync(self.fsync)
            try:
                os.link(writer._temporary.path, key)
            except FileExistsError:
                raise ConditionalWriteConflict(
                    "not created: an object already exists under this name", path=key
                ) from None
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                    raise
                self._create_under_lock(key, writer)  # a file system without hard links
                return
            if self.fsync:
                fsync_directory(self.parent(key))
        finally:
            writer.abort()

    def _create_under_lock(self, key: str, writer: LocalWriter) -> None:
        with directory_lock(self.parent(key)):
            if os.path.lexists(key):
                raise ConditionalWriteConflict(
                    "not created: an object already exists under this name", path=key
                )
            writer.commit()

    def read_versioned(self, key: str) -> tuple[bytes | None, str | None]:
        try:
            data = read_input(key)
        except FileNotFoundError:
            return None, None
        return data, _token(data)

    def replace_if_unchanged(self, key: str, data: bytes, token: str | None) -> str:
        """Rule S-SI-4, under the directory lock that every dtckpt writer of the directory
        takes (S-LK-1)."""
        directory = self.parent(key)
        os.makedirs(directory, exist_ok=True)
        with directory_lock(directory):
            current, now = self.read_versioned(key)
            if now != token:
                what = "appeared" if token is None else "changed or vanished"
                raise ConditionalWriteConflict(
                    f"not replaced: the object {what} since it was read", path=key
                )
            writer = self.open_writer(key)
            writer.write(data)
            writer.commit()
        return _token(data)

    def list_directories(self, directory: str) -> list[str]:
        return _names(directory, os.DirEntry.is_dir)

    def list(self, directory: str) -> list[str]:
        return _names(directory, os.DirEntry.is_file)

    def delete(self, key: str) -> None:
        try:
            os.remove(key)
        except FileNotFoundError:
            pass


#: The file system with durable commits: what a local path resolves to.
LOCAL_STORE = LocalStore()


def _names(directory: str, kind: Callable[..., bool]) -> list[str]:
    """The names in ``directory`` of one kind of entry (``os.DirEntry.is_file`` or
    ``is_dir``), symlinks not followed; none when the directory does not exist."""
    try:
        with os.scandir(directory or os.curdir) as entries:
            return [e.name for e in entries if kind(e, follow_symlinks=False)]
    except (FileNotFoundError, NotADirectoryError):
        return []

"""One dtckpt writer at a time per checkpoint directory (rule S-LK-1).

::

    process A                              process B
    with directory_lock("run"):            with directory_lock("run"):
        clean temporaries                      (waits in flock)
        write and commit run/ckpt-7            .
        replace run/checkpoint                 .
        delete run/ckpt-4                      .
                                           <- A's flock released
                                               clean, write run/ckpt-7 ...

On POSIX the lock is ``flock(LOCK_EX)`` on a descriptor of the directory
itself. No lock file is created, so a checkpoint directory holds exactly
the files TensorFlow would write, and the kernel drops the lock when the
process dies, SIGKILL included: a crash never leaves a stale lock behind.

Inside one process a reentrant lock per directory (keyed by its resolved
path) comes first: other threads wait, and the thread that holds the lock
may take it again, as a save does when it commits a bundle and then
replaces the state file under the same hold.

Fallback: where ``fcntl`` does not exist (Windows) or the filesystem refuses
``flock`` (some network filesystems), only the in-process lock is taken and a
warning is logged once per directory. Several processes must then not write
into one directory at the same time.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

fcntl: ModuleType | None
try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = ["directory_lock", "open_directory", "UNSUPPORTED_LOCK_ERRNOS"]

_LOG = logging.getLogger("dtckpt")

#: ``flock`` failures that mean "this filesystem does not lock", not "try again".
UNSUPPORTED_LOCK_ERRNOS = frozenset(
    code
    for code in (
        getattr(errno, "ENOLCK", None),
        getattr(errno, "EOPNOTSUPP", None),
        getattr(errno, "ENOTSUP", None),
        errno.EINVAL,
        errno.EBADF,
    )
    if code is not None
)


class _Holder:
    """The in-process side of one directory's lock."""

    __slots__ = ("thread_lock", "depth", "fd", "users")

    def __init__(self) -> None:
        self.thread_lock = threading.RLock()
        self.depth = 0
        self.fd: int | None = None
        self.users = 0


_HOLDERS: dict[str, _Holder] = {}
_HOLDERS_LOCK = threading.Lock()
_WARNED: set[str] = set()


def open_directory(directory: str) -> int:
    """A read-only descriptor of ``directory`` (to lock it or to fsync it)."""
    return os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))


@contextmanager
def directory_lock(directory: str) -> Iterator[None]:
    """Hold the lock of ``directory`` (which must exist) for the ``with`` block."""
    key = os.path.realpath(directory or os.curdir)
    with _HOLDERS_LOCK:
        holder = _HOLDERS.setdefault(key, _Holder())
        holder.users += 1
    try:
        with holder.thread_lock:
            if holder.depth == 0:
                holder.fd = _lock_process_wide(key)
            holder.depth += 1
            try:
                yield
            finally:
                holder.depth -= 1
                if holder.depth == 0 and holder.fd is not None:
                    os.close(holder.fd)  # closing the descriptor releases the flock
                    holder.fd = None
    finally:
        with _HOLDERS_LOCK:
            holder.users -= 1
            if holder.users == 0:
                del _HOLDERS[key]


def _lock_process_wide(directory: str) -> int | None:
    """flock the directory; ``None`` where that is impossible (the documented fallback)."""
    if fcntl is None:  # pragma: no cover - Windows
        _warn_once(directory, "this platform has no fcntl.flock")
        return None
    try:
        fd = open_directory(directory)
    except OSError as exc:
        _warn_once(directory, f"the directory cannot be opened ({exc.strerror})")
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError as exc:
        os.close(fd)
        if exc.errno in UNSUPPORTED_LOCK_ERRNOS:
            _warn_once(directory, f"the filesystem refuses flock ({exc.strerror})")
            return None
        raise
    return fd


def _warn_once(directory: str, why: str) -> None:
    if directory not in _WARNED:
        _WARNED.add(directory)
        _LOG.warning(
            "Saving into %r without the inter-process directory lock because %s; "
            "only one process may write checkpoints there at a time.",
            directory,
            why,
        )

"""Opening files to read them: regular files only, and never a blocking open (rule H-SP-1).

::

    path --os.stat--> regular file?  no: NotFoundError "expected a regular file, found a FIFO"
                          | yes
                          v
         os.open(O_RDONLY | O_NONBLOCK | O_NOCTTY) --fstat--> still a regular file? --> fd

Every reader of dtckpt (bundle indexes and data files, archives, ``.npz`` and
``.safetensors`` files, state files) opens what it reads through
:func:`open_input`. A FIFO, a socket, a device (``/dev/zero``) or a directory
under a checkpoint's name is refused by its type before anything is read from
it: a plain ``open`` of a FIFO blocks until a writer comes, and reading a
device such as ``/dev/zero`` never ends. The type is checked twice, by name
before opening (so a FIFO or device is never even opened) and on the open
descriptor (so a file swapped in between is caught); ``O_NONBLOCK`` keeps that
second open from blocking if a FIFO was swapped in. A symbolic link is
followed: what counts is the file it names.
"""

from __future__ import annotations

import os
import stat

from ..errors import DataLossError, NotFoundError

__all__ = ["open_input", "read_input", "file_kind", "is_regular_file", "OPEN_FLAGS"]

#: Flags of every open for reading: ``O_NONBLOCK`` so that opening a FIFO never waits for a
#: writer, ``O_NOCTTY`` so that a terminal never becomes the controlling one.
OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_BINARY", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_CLOEXEC", 0)
)

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def file_kind(mode: int) -> str:
    """What a file of ``st_mode`` ``mode`` is, in words (``"a regular file"``, ``"a FIFO"``)."""
    if stat.S_ISREG(mode):
        return "a regular file"
    for test, name in _KINDS:
        if test(mode):
            return name
    return "a special file"


def is_regular_file(path: str) -> bool:
    """Whether ``path`` names a regular file (following links), without opening it."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):  # ValueError: a NUL byte in the path
        return False


def _refuse(path: str, mode: int, what: str) -> NotFoundError:
    return NotFoundError(f"expected {what}, found {file_kind(mode)}", path=path)


def open_input(path: str, *, what: str = "a regular file") -> int:
    """A read-only descriptor of the regular file ``path`` (rule H-SP-1).

    Raises :class:`~dtckpt.errors.NotFoundError` when nothing is there and when something
    other than a regular file is (its message says what was found; ``what`` says what was
    expected, e.g. ``"an index file"``).
    """
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise NotFoundError("no such file", path=path) from None
    except ValueError:  # an embedded NUL byte
        raise NotFoundError("no such file (the name holds a NUL byte)", path=path) from None
    if not stat.S_ISREG(mode):
        raise _refuse(path, mode, what)
    try:
        fd = os.open(path, OPEN_FLAGS)
    except (FileNotFoundError, NotADirectoryError):
        raise NotFoundError("no such file (removed while opening it)", path=path) from None
    except IsADirectoryError:
        raise NotFoundError(f"expected {what}, found a directory", path=path) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):  # swapped for something else since the stat
            raise _refuse(path, mode, what)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_input(path: str, *, what: str = "a regular file", limit: int | None = None) -> bytes:
    """The whole content of the regular file ``path``, held once (rules H-SP-1, H-AL-1).

    With ``limit``, a file larger than ``limit`` bytes raises :class:`DataLossError` before
    anything is read. A file that grows while it is read is read up to the size it had
    when it was opened.
    """
    fd = open_input(path, what=what)
    try:
        size = os.fstat(fd).st_size
        if limit is not None and size > limit:
            raise DataLossError(
                f"{size} bytes are more than the {limit} this file may have", path=path
            )
        data = os.read(fd, size) if size else b""
        if len(data) == size:
            return data
        parts = [data]  # one read returns at most ~2 GiB on Linux
        done = len(data)
        while done < size:
            piece = os.read(fd, size - done)
            if not piece:
                break  # the file shrank since fstat: what is there is what it holds
            parts.append(piece)
            done += len(piece)
        return b"".join(parts)
    finally:
        os.close(fd)

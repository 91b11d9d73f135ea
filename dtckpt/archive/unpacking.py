"""``unpack``: an archive's member files back into a directory, byte for byte (A-UP-*).

::

    ArchiveReader(archive) --every target checked first--> DIR/name.tmp* <- frames, in order
                                                           checksums    -> rename to DIR/name

Nothing is written until every member's target has been checked (rule A-UP-1): it lies
inside DIR, and it does not exist unless ``overwrite=True``. Each file is written under a
temporary name and renamed once its frame and file checksums have been checked (A-UP-2),
so a damaged archive never leaves a damaged file under a member's name.
"""

from __future__ import annotations

import errno
import os
import secrets
import tempfile
from dataclasses import dataclass

from ..errors import AlreadyExistsError, CheckpointError, DataLossError, InvalidArgumentError
from ..progress import NULL_PROGRESS, Progress
from ..storage.staging import upload_file
from ..storage.urls import is_url, resolve
from .reader import ArchiveReader, MemberInfo

__all__ = ["UnpackReport", "unpack"]


@dataclass(frozen=True)
class UnpackReport:
    """What ``unpack`` wrote: files, bytes, and the checkpoint prefix inside the directory
    when the archive holds exactly one bundle (else ``None``)."""

    files: int
    bytes: int
    prefix: str | None


def unpack(
    archive: str,
    directory: str,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> UnpackReport:
    """Write every member of ``archive`` under ``directory`` (created if needed).

    Raises :class:`AlreadyExistsError` if a member's file exists and ``overwrite`` is false,
    and :class:`DataLossError` for a damaged archive or a member name that would escape
    ``directory``; in both cases before anything is written.
    """
    progress = progress or NULL_PROGRESS
    if is_url(os.fspath(directory)):
        return _unpack_to_store(archive, os.fspath(directory), overwrite, progress)
    root = os.path.abspath(os.fspath(directory))
    with ArchiveReader(os.fspath(archive)) as reader:
        members = list(reader.members.values())
        targets = [_target(reader, root, info) for info in members]
        for info, target in zip(members, targets, strict=True):
            _check_free(reader, info, target, overwrite)
        total = sum(info.size for info in members)
        progress.start(total, "unpack", "B")
        os.makedirs(root, exist_ok=True)
        with _Directories(root) as directories:
            for info, target in zip(members, targets, strict=True):
                try:
                    parent = directories.enter(info.name.split("/")[:-1], info, target)
                    _write_member(reader, info, parent, target, progress)
                except OSError as exc:
                    if isinstance(exc, CheckpointError) or exc.errno not in _NAME_ERRNOS:
                        raise
                    raise InvalidArgumentError(
                        f"member {info.name!r} cannot be written here: {exc.strerror}",
                        path=target,
                    ) from None
        progress.finish()
    return UnpackReport(len(members), total, _single_prefix(root, [m.name for m in members]))


def _unpack_to_store(
    archive: str, directory: str, overwrite: bool, progress: Progress
) -> UnpackReport:
    """Rule S-SI-7: unpack into a local temporary directory, then upload every member as
    an object under the URL ``directory``, the data objects before the indexes and the
    ``checkpoint`` state file last, so that what a reader finds is always complete."""
    store, key = resolve(directory)
    with tempfile.TemporaryDirectory(prefix="dtckpt-unpack-") as local:
        report = unpack(archive, local, overwrite=True, progress=progress)
        names: list[str] = []
        for root, _, files in os.walk(local):
            names.extend(os.path.relpath(os.path.join(root, f), local) for f in files)
        names = [n.replace(os.sep, "/") for n in names]
        if not overwrite:
            for name in names:
                if store.exists(store.join(key, name)):
                    raise AlreadyExistsError(
                        "a member's object already exists (overwrite=True replaces it)",
                        path=store.url(store.join(key, name)),
                    )

        def order(name: str) -> tuple[int, str]:
            last = name.rpartition("/")[2]
            return (2 if last == "checkpoint" else 1 if last.endswith(".index") else 0, name)

        for name in sorted(names, key=order):
            upload_file(os.path.join(local, *name.split("/")), store.url(store.join(key, name)))
    prefix = None
    if report.prefix is not None:
        inside = os.path.relpath(report.prefix, local).replace(os.sep, "/")
        prefix = store.url(store.join(key, inside))
    return UnpackReport(report.files, report.bytes, prefix)


#: Errors that say a member's name cannot be made under the directory (too long, too deep).
_NAME_ERRNOS = frozenset({errno.ENAMETOOLONG, errno.ELOOP})
_DIRECTORY_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)


def _target(reader: ArchiveReader, root: str, info: MemberInfo) -> str:
    """Rule A-UP-1: the member's path under ``root``; names were checked when the table was
    decoded (A-TC-3), and this second check holds whatever that check missed."""
    target = os.path.normpath(os.path.join(root, *info.name.split("/")))
    if os.path.commonpath([root, target]) != root or target == root:
        raise DataLossError(
            f"member name {info.name!r} would be written outside {root}", path=reader.path
        )
    return target


def _check_free(reader: ArchiveReader, info: MemberInfo, target: str, overwrite: bool) -> None:
    if os.path.isdir(target):
        raise AlreadyExistsError(f"member {info.name!r} would replace a directory", path=target)
    if not overwrite and os.path.lexists(target):
        raise AlreadyExistsError(
            f"member {info.name!r} exists; pass overwrite=True (dtckpt unpack --overwrite) to "
            "replace it",
            path=target,
        )


class _Directories:
    """The directory descriptor of the current member's parent, made as needed.

    Each component is made and opened relative to its parent's descriptor (``mkdir`` and
    ``open`` with ``dir_fd``), holding two descriptors at a time, so no recursion, no
    ``PATH_MAX`` and no descriptor limit follows a member's depth, and a member costs its
    own components (rule H-WK-1). Members come sorted, so those of one directory follow each
    other and reuse its descriptor. A component that is a symbolic link is followed only if
    it resolves inside ``root`` (rule A-UP-1).
    """

    def __init__(self, root: str) -> None:
        self.root = root
        self.real_root = os.path.realpath(root)
        self.parts: list[str] | None = None
        self.fd = -1

    def __enter__(self) -> _Directories:
        return self

    def __exit__(self, *exc: object) -> None:
        self._close()

    def _close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
        self.fd = -1
        self.parts = None

    def enter(self, parts: list[str], info: MemberInfo, target: str) -> int:
        """The descriptor of the directory ``root/parts...``, made as needed."""
        if parts == self.parts:
            return self.fd
        self._close()
        fd = os.open(self.root, _DIRECTORY_FLAGS)
        try:
            for depth, name in enumerate(parts):
                child = self._open_child(fd, parts[:depth], name, info, target)
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        self.fd, self.parts = fd, parts
        return fd

    def _open_child(
        self, parent: int, above: list[str], name: str, info: MemberInfo, target: str
    ) -> int:
        try:
            os.mkdir(name, dir_fd=parent)
        except FileExistsError:
            pass
        try:
            return os.open(name, _DIRECTORY_FLAGS | getattr(os, "O_NOFOLLOW", 0), dir_fd=parent)
        except OSError:
            path = os.path.join(self.root, *above, name)
            if not os.path.islink(path):
                raise
        # A link inside the directory: followed only when it stays inside it.
        real = os.path.realpath(path)
        if os.path.commonpath([self.real_root, real]) != self.real_root:
            raise InvalidArgumentError(
                f"member {info.name!r} would be written through a link out of {self.root}",
                path=target,
            ) from None
        return os.open(name, _DIRECTORY_FLAGS, dir_fd=parent)


def _write_member(
    reader: ArchiveReader, info: MemberInfo, parent: int, target: str, progress: Progress
) -> None:
    """Rule A-UP-2: written under a temporary name in ``parent`` (a directory descriptor),
    renamed once every frame and the file checksum are checked."""
    name = os.path.basename(target)
    tmp = f".{name}.tmp{secrets.token_hex(8)}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(tmp, flags | getattr(os, "O_CLOEXEC", 0), 0o666, dir_fd=parent)
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in reader.iter_member(info.name):
                out.write(chunk.data)
                progress.advance(chunk.size)
        reader.check_member_crc(info)  # rule A-UP-2
        os.replace(tmp, name, src_dir_fd=parent, dst_dir_fd=parent)
    except BaseException:
        try:
            os.remove(tmp, dir_fd=parent)
        except OSError:
            pass  # the error that matters is the one raised
        raise


def _single_prefix(root: str, names: list[str]) -> str | None:
    indexes = [n for n in names if n.endswith(".index")]
    if len(indexes) != 1:
        return None
    return os.path.join(root, *indexes[0][: -len(".index")].split("/"))

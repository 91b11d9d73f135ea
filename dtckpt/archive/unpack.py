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

import os
import secrets
from dataclasses import dataclass

from ..errors import AlreadyExistsError, DataLossError, InvalidArgumentError
from ..format.durable import replace_on_success
from ..progress import NULL_PROGRESS, Progress
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
    root = os.path.abspath(os.fspath(directory))
    with ArchiveReader(os.fspath(archive)) as reader:
        members = list(reader.members.values())
        targets = [_target(reader, root, info) for info in members]
        for info, target in zip(members, targets, strict=True):
            _check_free(reader, info, target, overwrite)
        total = sum(info.size for info in members)
        progress.start(total, "unpack", "B")
        for info, target in zip(members, targets, strict=True):
            _write_member(reader, info, root, target, progress)
        progress.finish()
    return UnpackReport(len(members), total, _single_prefix(root, [m.name for m in members]))


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


def _write_member(
    reader: ArchiveReader, info: MemberInfo, root: str, target: str, progress: Progress
) -> None:
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    # A directory inside DIR may be a symbolic link to elsewhere: follow it and refuse.
    real_root = os.path.realpath(root)
    if os.path.commonpath([real_root, os.path.realpath(parent)]) != real_root:
        raise InvalidArgumentError(
            f"member {info.name!r} would be written through a link out of {root}",
            path=target,
        )
    tmp = os.path.join(parent, f".{os.path.basename(target)}.tmp{secrets.token_hex(8)}")
    with replace_on_success(target, tmp), open(tmp, "wb") as out:
        for chunk in reader.iter_member(info.name):
            out.write(chunk.data)
            progress.advance(chunk.size)
        reader.check_member_crc(info)  # rule A-UP-2


def _single_prefix(root: str, names: list[str]) -> str | None:
    indexes = [n for n in names if n.endswith(".index")]
    if len(indexes) != 1:
        return None
    return os.path.join(root, *indexes[0][: -len(".index")].split("/"))

"""``pack``: write a checkpoint (prefix, directory or SavedModel) as one archive (A-PK-*).

::

    members (collect_members) --plan_member_frames--> frames per file
    worker threads: pread chunk -> crc32c -> shuffle? -> zstd        (a few frames in flight)
    main thread:    header | frame | frame | ... | TOC | footer      (in order, to NAME.tmp*)
                    then rename NAME.tmp* -> NAME                    (rule A-PK-3)

The chunks are read, filtered and compressed on a small thread pool (preadv, the CRC, the
Numba shuffle and zstd all release the GIL), while the main thread appends finished frames
in order. At most :data:`IN_FLIGHT` frames exist at once, so memory stays a few chunks
whatever the checkpoint's size.
"""

from __future__ import annotations

import os
import stat
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from ..errors import InvalidArgumentError, NotFoundError
from ..format.crc import crc32c
from ..format.streams import read_into
from ..progress import NULL_PROGRESS, Progress
from ..storage.inputs import file_kind, open_input
from ..storage.staging import output_any, staged_tree
from ..storage.urls import is_url
from .frames import WORKERS, combine_crc, encode_frame
from .layout import FRAME_DTYPE, FileRecord, Footer, encode_footer, encode_header, encode_toc
from .members import Member, PlannedFrame, collect_members, plan_member_frames

__all__ = ["PackReport", "pack", "IN_FLIGHT", "MIN_LEVEL", "MAX_LEVEL"]

#: Compression levels zstd accepts: negative levels trade ratio for speed.
MIN_LEVEL = -(1 << 17)
MAX_LEVEL = 22
#: Frames being read, filtered or compressed, or waiting to be written, at most.
IN_FLIGHT = WORKERS + 2


@dataclass(frozen=True)
class PackReport:
    """What ``pack`` wrote: member files, their bytes, the archive's bytes, and raw / packed."""

    files: int
    raw_bytes: int
    packed_bytes: int
    ratio: float


def pack(
    path: str,
    archive: str,
    *,
    level: int = 3,
    shuffle: bool = True,
    progress: Progress | None = None,
) -> PackReport:
    """Pack the checkpoint at ``path`` into the archive file ``archive`` (rules A-PK-1..4).

    ``path`` is a checkpoint prefix (its ``.index`` and data files), a directory with a
    ``checkpoint`` state file (every file in it), or a SavedModel directory (every file,
    recursively). Float tensors are byte-shuffled before compression unless ``shuffle`` is
    false (rule A-FR-4); ``level`` is zstd's. The archive appears under its name only once
    complete (temporary name, then rename).
    """
    path, archive = os.fspath(path), os.fspath(archive)
    if (
        isinstance(level, bool)
        or not isinstance(level, int)
        or not (MIN_LEVEL <= level <= MAX_LEVEL)
    ):
        raise InvalidArgumentError(f"zstd level must be an integer in [{MIN_LEVEL}, {MAX_LEVEL}]")
    if not is_url(archive):
        if os.path.isdir(archive):
            raise InvalidArgumentError("the archive path is a directory", path=archive)
        directory = os.path.dirname(os.path.abspath(archive))
        if not os.path.isdir(directory):
            raise NotFoundError("the archive's directory does not exist", path=directory)
    progress = progress or NULL_PROGRESS
    with ExitStack() as stack:
        if is_url(path):  # packed from a local copy of its objects (rule S-SI-7)
            path = stack.enter_context(staged_tree(path))
        # Rule S-TP-5: the archive is written under a held temporary name, and the
        # temporaries of killed packs of the same archive are removed first (and are never
        # packed). An archive in an object store is uploaded whole once written (S-SI-7).
        with output_any(archive) as tmp:
            excluded = [tmp] if is_url(archive) else [archive, tmp]
            members = collect_members(path, exclude=excluded)
            with open(tmp, "wb") as out:
                raw_bytes = _write_archive(out, members, level, shuffle, progress)
                packed_bytes = out.tell()
    return PackReport(len(members), raw_bytes, packed_bytes, raw_bytes / packed_bytes)


def _write_archive(
    out: BinaryIO, members: list[Member], level: int, shuffle: bool, progress: Progress
) -> int:
    sizes = [_size(member) for member in members]
    plans = plan_member_frames(members, sizes, shuffle=shuffle)
    progress.start(sum(sizes), "pack", "B")
    out.write(encode_header())
    records, crcs = _write_frames(out, members, plans, level, progress)
    files = [
        FileRecord(member.name, size, crc)  # rule A-PK-4
        for member, size, crc in zip(members, sizes, crcs, strict=True)
    ]
    toc = encode_toc(files, records)
    toc_offset = out.tell()
    out.write(toc)
    out.write(encode_footer(Footer(toc_offset, len(toc), crc32c(toc))))
    progress.finish()
    return sum(sizes)


def _size(member: Member) -> int:
    try:
        info = os.stat(member.path)
    except FileNotFoundError:
        raise NotFoundError("file vanished while packing", path=member.path) from None
    if not stat.S_ISREG(info.st_mode):  # rule H-SP-1: a FIFO would be packed empty
        raise InvalidArgumentError(
            f"cannot pack this file: it is {file_kind(info.st_mode)}, not a regular file",
            path=member.path,
        )
    return info.st_size


class _OpenFiles:
    """File descriptors of the members being read: each is opened for its first frame and
    closed after its last, so a directory of thousands of files never holds many open."""

    def __init__(self, members: list[Member]) -> None:
        self.members = members
        self.fds: dict[int, int] = {}

    def fd(self, i: int) -> int:
        fd = self.fds.get(i)
        if fd is None:
            try:
                fd = open_input(self.members[i].path)  # rule H-SP-1
            except NotFoundError as exc:
                raise NotFoundError(
                    f"file vanished while packing ({exc.message})", path=self.members[i].path
                ) from None
            self.fds[i] = fd
        return fd

    def done(self, i: int) -> None:
        fd = self.fds.pop(i, None)
        if fd is not None:
            os.close(fd)

    def close(self) -> None:
        for i in list(self.fds):
            self.done(i)


def _write_frames(
    out: BinaryIO,
    members: list[Member],
    plans: list[list[PlannedFrame]],
    level: int,
    progress: Progress,
) -> tuple[np.ndarray, list[int]]:
    """Write every frame in order; return the frame records and each file's CRC-32C."""
    jobs = [(i, frame) for i, plan in enumerate(plans) for frame in plan]
    records = np.zeros(len(jobs), dtype=FRAME_DTYPE)
    crcs = [0] * len(members)
    position = out.tell()
    files = _OpenFiles(members)
    try:
        with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="dtckpt-pack") as workers:
            pending: deque[Future[tuple[bytes, int]]] = deque()
            try:
                for row, (i, frame) in enumerate(jobs):
                    for j, ahead in jobs[row + len(pending) : row + IN_FLIGHT]:
                        fd = files.fd(j)
                        pending.append(workers.submit(_compress, fd, members[j].path, ahead, level))
                    data, crc = pending.popleft().result()
                    out.write(data)
                    records[row] = (
                        i,
                        frame.offset,
                        frame.length,
                        position,
                        len(data),
                        crc,
                        frame.filter_id,
                        frame.element_size,
                    )
                    position += len(data)
                    crcs[i] = combine_crc(crcs[i], crc, frame.length)
                    if frame is plans[i][-1]:
                        files.done(i)
                    progress.advance(frame.length)
            except BaseException:
                for future in pending:  # only the running ones finish before the pool closes
                    future.cancel()
                raise
    finally:
        files.close()
    return records, crcs


def _compress(fd: int, path: str, frame: PlannedFrame, level: int) -> tuple[bytes, int]:
    """Read one chunk, checksum it, filter and compress it (runs on a worker thread)."""
    raw = np.empty(frame.length, dtype=np.uint8)
    read_into(fd, raw, frame.offset, path=path)
    crc = crc32c(raw)
    return encode_frame(raw, frame.filter_id, frame.element_size, level), crc

"""``ArchiveReader``: random access to the member files of an archive (rules A-RD-1, A-AR-*).

::

    open:  pread header (16 B) and footer (32 B) -> pread TOC -> crc32c -> decode_toc
    read_into(name, offset, out):
           frames of `name` overlapping [offset, offset + len(out))   (binary search)
           whole frames   -> decoded straight into `out`, several at once on threads
           partial frames -> decoded once into a small cache, the needed bytes copied

Every number the table holds is checked before it is used (``layout.decode_toc``), and
every frame is checked as it is decoded (``frames.decode_frame``); damage raises
:class:`~dtckpt.errors.DataLossError` naming the archive, the member and the archive byte
offset of the frame or table record. The reader is safe to share between threads.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ..errors import CheckpointError, DataLossError, NotFoundError, OutOfRangeError
from ..format.crc import crc32c
from ..format.streams import read_into
from ..progress import NULL_PROGRESS, Progress
from ..storage.staging import open_any
from ..storage.urls import is_url
from .frames import WORKERS, combine_crc, decode_frame
from .layout import (
    FOOTER_SIZE,
    FRAME_RECORD,
    HEADER_SIZE,
    TOC_HEAD,
    FileRecord,
    decode_footer,
    decode_header,
    decode_toc,
)

__all__ = ["ArchiveReader", "MemberInfo", "CACHE_FRAMES"]

#: Decoded frames kept for reads that need only part of one (many small tensors share a
#: frame, and a resharding read cuts rows out of large ones).
CACHE_FRAMES = 4
#: Reads of fewer whole-frame bytes decode on the calling thread: handing small frames to
#: other threads costs more than it saves.
PARALLEL_BYTES = 1 << 20

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _decoders() -> ThreadPoolExecutor:
    """Threads that decode frames; their tasks never wait on other tasks, so any thread (a
    DTensor block reader included) may submit to them without risk of deadlock."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="dtckpt-unzstd")
        return _pool


@dataclass(frozen=True)
class MemberInfo:
    """A member file: name, size, CRC-32C and its frames ``[first_frame, end_frame)``."""

    name: str
    size: int
    crc32c: int
    first_frame: int
    end_frame: int


class ArchiveReader:
    """The member files of the archive at ``path``, read without unpacking it."""

    def __init__(self, path: str) -> None:
        self.path = os.fspath(path)
        self._fd = -1
        if not is_url(self.path) and not os.path.exists(self.path):
            raise NotFoundError("no archive here", path=self.path)
        # Rule H-SP-1; an archive in an object store is fetched whole (S-SI-7).
        self._fd = open_any(self.path, what="an archive file")
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        try:
            self.size = os.fstat(self._fd).st_size
            self._open()
        except BaseException:
            self.close()
            raise

    def _open(self) -> None:
        try:
            decode_header(self._pread(0, min(self.size, HEADER_SIZE)))
        except CheckpointError as exc:
            raise exc.located(path=self.path) from None
        if self.size < HEADER_SIZE + FOOTER_SIZE + TOC_HEAD.size:
            raise DataLossError(
                f"{self.size} bytes are too few for an archive (truncated?)", path=self.path
            )
        footer_at = self.size - FOOTER_SIZE
        try:
            footer = decode_footer(self._pread(footer_at, FOOTER_SIZE), self.size)
        except CheckpointError as exc:
            raise exc.located(path=self.path, base_offset=footer_at) from None
        toc = self._pread(footer.toc_offset, footer.toc_length)
        actual = crc32c(toc)
        if actual != footer.toc_crc32c:
            raise DataLossError(
                f"table of contents checksum does not match: stored {footer.toc_crc32c:#010x}, "
                f"computed {actual:#010x}",
                path=self.path,
                offset=footer.toc_offset,
            )
        try:
            decoded = decode_toc(toc, footer.toc_offset)
        except CheckpointError as exc:
            raise exc.located(path=self.path, base_offset=footer.toc_offset) from None
        self.frames = decoded.frames
        self._frame_offsets = self.frames["offset"].astype(np.int64)
        self.toc_offset = footer.toc_offset
        self.members: dict[str, MemberInfo] = {}
        for i, record in enumerate(decoded.files):
            first, end = decoded.first_frame[i], decoded.first_frame[i + 1]
            self.members[record.name] = MemberInfo(
                record.name, record.size, record.crc32c, first, end
            )

    # -- lifecycle -----------------------------------------------------------
    def close(self) -> None:
        fd, self._fd = getattr(self, "_fd", -1), -1
        if fd >= 0:
            os.close(fd)
        self._cache.clear()

    def __enter__(self) -> ArchiveReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    # -- members -------------------------------------------------------------
    def names(self) -> list[str]:
        """Member names in archive order (sorted)."""
        return list(self.members)

    def files(self) -> list[FileRecord]:
        return [FileRecord(m.name, m.size, m.crc32c) for m in self.members.values()]

    def member(self, name: str) -> MemberInfo:
        info = self.members.get(name)
        if info is None:
            raise NotFoundError(f"no member {name!r} in this archive", path=self.path)
        return info

    def read_member(self, name: str) -> bytes:
        """A whole small member's bytes (a state file): :meth:`read_member_view`, copied."""
        return bytes(self.read_member_view(name))

    def read_member_view(self, name: str, *, limit: int | None = None) -> memoryview:
        """A whole member's bytes (an index file), decoded into one buffer and held once
        (rule H-AL-2), as a read-only view.

        Decoded frame by frame, so that a damaged frame stops the read. With ``limit``, a
        member larger than ``limit`` bytes raises :class:`DataLossError` before any of it
        is decoded.
        """
        info = self.member(name)
        if limit is not None and info.size > limit:
            raise DataLossError(
                f"member {name!r} decodes to {info.size} bytes, more than the {limit} its "
                f"{self.compressed_size(name)} compressed bytes may hold",
                path=self.path,
                offset=self._record_offset(info.first_frame),
            )
        out = bytearray(info.size)
        if info.size:
            self.read_into(name, 0, np.frombuffer(out, dtype=np.uint8))  # frames decode in place
        return memoryview(out).toreadonly()

    def compressed_size(self, name: str) -> int:
        """The bytes the frames of member ``name`` take in the archive."""
        info = self.member(name)
        lengths = self.frames["compressed_length"][info.first_frame : info.end_frame]
        return int(lengths.sum(dtype=np.int64))

    def read_into(self, name: str, offset: int, out: np.ndarray) -> None:
        """Fill the 1-D ``uint8`` array ``out`` with member bytes from ``offset`` on (A-RD-1).

        Only the frames overlapping the range are read. A range past the member's end raises
        :class:`OutOfRangeError`; a damaged frame :class:`DataLossError`.
        """
        info = self.member(name)
        end = offset + out.size
        if offset < 0 or end > info.size:
            raise OutOfRangeError(
                f"member {name!r} holds {info.size} bytes; [{offset}, {end}) was asked for",
                path=self.path,
                offset=max(offset, 0),
            )
        if out.size == 0:
            return
        offsets = self._frame_offsets[info.first_frame : info.end_frame]
        first = info.first_frame + int(np.searchsorted(offsets, offset, side="right")) - 1
        last = info.first_frame + int(np.searchsorted(offsets, end, side="left"))
        whole = []
        for i in range(first, last):
            start = int(self._frame_offsets[i])
            length = int(self.frames["raw_length"][i])
            lo, hi = max(start, offset), min(start + length, end)
            target = out[lo - offset : hi - offset]
            if lo == start and hi == start + length:
                whole.append((i, target))
            else:
                target[...] = self._cached(i, name)[lo - start : hi - start]
        if len(whole) < 2 or sum(t.size for _, t in whole) < PARALLEL_BYTES:
            for i, target in whole:
                self._decode(i, name, target)
        else:
            futures = [_decoders().submit(self._decode, i, name, t) for i, t in whole]
            for future in futures:
                future.result()

    def iter_member(self, name: str, ahead: int = WORKERS + 1) -> Iterator[np.ndarray]:
        """A member's bytes frame by frame, in order, decoding up to ``ahead`` frames at once
        (``unpack`` writes each while later ones decode)."""
        info = self.member(name)
        pending = []
        rows = iter(range(info.first_frame, info.end_frame))
        try:
            for i in rows:
                pending.append(_decoders().submit(self._decoded, i, name))
                if len(pending) >= ahead:
                    yield pending.pop(0).result()
            while pending:
                yield pending.pop(0).result()
        finally:
            for future in pending:
                future.cancel()

    def verify(self, progress: Progress | None = None) -> int:
        """Decode every frame and check every frame and file checksum (rules A-FR-2, A-PK-4);
        return the member bytes checked. Damage raises :class:`DataLossError`."""
        progress = progress or NULL_PROGRESS
        progress.start(sum(m.size for m in self.members.values()), "verify archive", "B")
        for info in self.members.values():
            for chunk in self.iter_member(info.name):
                progress.advance(chunk.size)
            self.check_member_crc(info)
        progress.finish()
        return sum(m.size for m in self.members.values())

    def check_member_crc(self, info: MemberInfo) -> None:
        """Check a member's file checksum against its frames' (rule A-PK-4). Each frame's
        checksum is checked when the frame is decoded, so together they prove the file's."""
        crc = 0
        rows = self.frames[info.first_frame : info.end_frame]
        for frame_crc, length in zip(
            rows["crc32c"].tolist(), rows["raw_length"].tolist(), strict=True
        ):
            crc = combine_crc(crc, frame_crc, length)
        if crc != info.crc32c:
            raise DataLossError(
                f"member {info.name!r}: file checksum does not match: stored "
                f"{info.crc32c:#010x}, computed {crc:#010x}",
                path=self.path,
                offset=self._record_offset(info.first_frame),
            )

    # -- frames --------------------------------------------------------------
    def _record_offset(self, frame: int) -> int:
        return self.toc_offset + TOC_HEAD.size + frame * FRAME_RECORD.size

    def _cached(self, i: int, name: str) -> np.ndarray:
        with self._lock:
            hit = self._cache.get(i)
            if hit is not None:
                self._cache.move_to_end(i)
                return hit
        decoded = self._decoded(i, name)
        with self._lock:
            self._cache[i] = decoded
            while len(self._cache) > CACHE_FRAMES:
                self._cache.popitem(last=False)
        return decoded

    def _decoded(self, i: int, name: str) -> np.ndarray:
        out = np.empty(int(self.frames["raw_length"][i]), dtype=np.uint8)
        self._decode(i, name, out)
        return out

    def _decode(self, i: int, name: str, out: np.ndarray) -> None:
        row = self.frames[i]
        at = int(row["archive_offset"])
        start = int(row["offset"])
        frame = self._pread_array(at, int(row["compressed_length"]))
        try:
            decode_frame(
                frame,
                int(row["raw_length"]),
                int(row["crc32c"]),
                int(row["filter"]),
                int(row["element_size"]),
                out,
            )
        except DataLossError as exc:
            raise DataLossError(
                f"member {name!r} bytes [{start}, {start + out.size}): {exc.message}",
                path=self.path,
                offset=at,
            ) from None

    def _pread(self, offset: int, length: int) -> bytes:
        return self._pread_array(offset, length).tobytes()

    def _pread_array(self, offset: int, length: int) -> np.ndarray:
        buf = np.empty(length, dtype=np.uint8)
        read_into(self._fd, buf, offset, path=self.path)
        return buf

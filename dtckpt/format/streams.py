"""Moving tensor bytes between arrays and files, checksumming on the way.

The CRC of a large buffer runs on a worker thread while the main thread
writes (or after it reads) the same buffer: ``crc32c`` releases the GIL, so on
a machine with two cores the checksum costs almost nothing beside the I/O.
Small buffers are checksummed inline, where a thread hand-off would cost more
than it saves.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO

import numpy as np

from ..errors import OutOfRangeError
from .crc import crc32c

__all__ = ["write_with_crc32c", "read_into", "OVERLAP_THRESHOLD"]

#: Buffers at least this large are checksummed on a worker thread.
OVERLAP_THRESHOLD = 4 << 20
_POOL: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dtckpt-crc")
    return _POOL


def write_with_crc32c(file: BinaryIO, raw: np.ndarray) -> int:
    """Write the 1-D ``uint8`` array ``raw`` to ``file``; return its (unmasked) CRC-32C."""
    view = memoryview(raw)
    if raw.nbytes < OVERLAP_THRESHOLD:
        crc = crc32c(view)
        file.write(view)
        return crc
    future = _pool().submit(crc32c, view)
    file.write(view)
    return future.result()


def read_into(fd: int, out: np.ndarray, offset: int, *, path: str) -> None:
    """Fill the 1-D ``uint8`` array ``out`` with the file's bytes at ``offset``.

    Raises :class:`OutOfRangeError` naming the file and offset when the file
    ends early (a truncated data shard).
    """
    view = memoryview(out)
    done = 0
    total = len(view)
    while done < total:
        n = os.preadv(fd, [view[done:]], offset + done)
        if n == 0:
            raise OutOfRangeError(
                f"data file ends after {offset + done} bytes; {total - done} more were expected",
                path=path,
                offset=offset + done,
            )
        done += n

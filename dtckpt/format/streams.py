"""Moving tensor bytes between arrays and files, checksumming on the way.

The CRC of a large buffer runs on a worker thread while the main thread
writes (or after it reads) the same buffer: ``crc32c`` releases the GIL, so on
a machine with two cores the checksum costs almost nothing beside the I/O.
Small buffers are checksummed inline, where a thread hand-off would cost more
than it saves.
"""

from __future__ import annotations

import os
from typing import BinaryIO

import numpy as np

from .. import kernels
from ..errors import OutOfRangeError
from ..pools import pool
from .crc import crc32c

__all__ = [
    "write_with_crc32c",
    "write_strided_with_crc32c",
    "read_into",
    "read_into_with_crc32c",
    "box_in_container",
    "OVERLAP_THRESHOLD",
]

#: Buffers at least this large are checksummed on a worker thread.
OVERLAP_THRESHOLD = 4 << 20


def write_with_crc32c(file: BinaryIO, raw: np.ndarray) -> int:
    """Write the 1-D ``uint8`` array ``raw`` to ``file``; return its (unmasked) CRC-32C."""
    view = raw.data
    if raw.nbytes < OVERLAP_THRESHOLD:
        crc = crc32c(view)
        file.write(view)
        return crc
    future = pool("checksum").submit(crc32c, view)
    file.write(view)
    return future.result()


#: Bytes staged per step when a non-contiguous array is written.
WRITE_CHUNK = 8 << 20


def box_in_container(
    view: np.ndarray,
) -> tuple[np.ndarray, tuple[int, ...], tuple[int, ...]] | None:
    """Describe ``view`` as a box cut out of a C-order array, if it is one.

    Returns ``(container_bytes, container_shape, origin)`` (shapes in
    elements) when ``view`` is a basic slice of a C-contiguous array --
    what :func:`dtckpt.kernels.copy_box_crc` needs -- else ``None``.
    """
    item = view.itemsize
    strides = view.strides
    if view.ndim == 0 or view.size == 0 or strides[-1] != item or min(strides) <= 0:
        return None
    base = view
    while isinstance(base.base, np.ndarray):
        base = base.base
    if not base.flags.c_contiguous:
        return None
    offset = view.__array_interface__["data"][0] - base.__array_interface__["data"][0]
    container = [0] * view.ndim
    for k in range(view.ndim - 1, 0, -1):
        if strides[k - 1] % strides[k]:
            return None
        container[k] = strides[k - 1] // strides[k]
    origin = []
    rest = offset
    for stride in strides:
        index, rest = divmod(rest, stride)
        origin.append(index)
    if rest:
        return None
    container[0] = origin[0] + view.shape[0]
    if any(o + n > c for o, n, c in zip(origin, view.shape, container, strict=True)):
        return None
    nbytes = container[0] * strides[0]
    if nbytes > base.nbytes:
        return None
    return base.reshape(-1).view(np.uint8)[:nbytes], tuple(container), tuple(origin)


def write_strided_with_crc32c(file: BinaryIO, array: np.ndarray) -> int:
    """Write a non-contiguous array in C order; return the CRC-32C of the bytes written.

    Rows along dimension 0 are staged through one reusable buffer of about
    :data:`WRITE_CHUNK` bytes, so memory stays bounded whatever the array's
    size. A view that is a box of a larger C-order array is cut and
    checksummed in one pass by the ``copy_box_crc`` kernel; anything else is
    copied by NumPy and then checksummed.
    """
    if array.ndim == 0 or array.size == 0:
        contiguous = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
        return write_with_crc32c(file, contiguous)
    row_bytes = array.nbytes // array.shape[0]
    rows = max(1, WRITE_CHUNK // max(row_bytes, 1))
    staging = np.empty(min(rows, array.shape[0]) * row_bytes, dtype=np.uint8)
    box = box_in_container(array)
    cutter = kernels.sized(array.nbytes)
    item = array.itemsize
    crc = 0
    for start in range(0, array.shape[0], rows):
        n = min(rows, array.shape[0] - start)
        out = staging[: n * row_bytes]
        if box is not None:
            source, container, origin = box
            extent = (n,) + array.shape[1:]
            crc = cutter.copy_box_crc(
                source,
                container[:-1] + (container[-1] * item,),
                (origin[0] + start,) + origin[1:-1] + (origin[-1] * item,),
                out,
                extent[:-1] + (extent[-1] * item,),
                crc,
            )
        else:
            out.view(array.dtype).reshape((n,) + array.shape[1:])[...] = array[start : start + n]
            crc = crc32c(out.data, crc)
        file.write(out.data)
    return crc


def read_into(fd: int, out: np.ndarray, offset: int, *, path: str) -> None:
    """Fill the 1-D ``uint8`` array ``out`` with the file's bytes at ``offset``.

    Raises :class:`OutOfRangeError` naming the file and offset when the file
    ends early (a truncated data shard).
    """
    view = out.data
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


#: Chunk size of a pipelined read: large enough to amortise the thread hand-off.
READ_CHUNK = 4 << 20


def read_into_with_crc32c(fd: int, out: np.ndarray, offset: int, *, path: str) -> int:
    """:func:`read_into`, returning the CRC-32C of the bytes read (rule F-CRC-3).

    Large reads are split into chunks; while chunk ``i`` is read, a worker
    thread extends the checksum over chunk ``i - 1``, so the verification
    costs little beyond the read itself.
    """
    total = out.nbytes
    if total < OVERLAP_THRESHOLD:
        read_into(fd, out, offset, path=path)
        return crc32c(out.data)
    view = out.data
    pending = None
    for start in range(0, total, READ_CHUNK):
        stop = min(start + READ_CHUNK, total)
        read_into(fd, out[start:stop], offset + start, path=path)
        previous = pending.result() if pending is not None else 0
        pending = pool("checksum").submit(crc32c, view[start:stop], previous)
    assert pending is not None
    return pending.result()

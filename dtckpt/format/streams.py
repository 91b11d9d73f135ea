"""Moving tensor bytes between arrays and files, checksumming on the way.

The CRC of a large buffer runs on a worker thread while the main thread
writes (or after it reads) the same buffer: ``crc32c`` releases the GIL, so on
a machine with two cores the checksum costs almost nothing beside the I/O.
Small buffers are checksummed inline, where a thread hand-off would cost more
than it saves.

Readers reach their files through a :class:`BundleSource`: :data:`LOCAL_FILES`
reads the file system with ``os.preadv`` on one descriptor per file
(:class:`LocalFile`), and an archive (``dtckpt.archive.source``) decodes its
frames instead, and an object store (a URL, ``s3://...``) is read through
:class:`StoreFiles` with ranged requests. The bundle reader only ever calls ``read_into`` and
``read_into_with_crc32c`` of the file it was given, so the local path costs one
method call more than calling the functions here directly.
"""

from __future__ import annotations

import mmap as mmap_module
import os
import threading
from typing import BinaryIO, Protocol

import numpy as np

from .. import kernels
from ..errors import CheckpointError, NotFoundError, OutOfRangeError
from ..pools import in_pool_thread, pool
from ..storage.base import ObjectReader, Span
from ..storage.inputs import open_input, read_input
from ..storage.urls import is_url, resolve
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

#: Piece size of a write checksummed in place, small enough to stay in cache.
INLINE_PIECE = 4 << 20


def write_with_crc32c(file: BinaryIO, raw: np.ndarray) -> int:
    """Write the 1-D ``uint8`` array ``raw`` to ``file``; return its (unmasked) CRC-32C."""
    view = raw.data
    if raw.nbytes < OVERLAP_THRESHOLD:
        crc = crc32c(view)
        file.write(view)
        return crc
    if in_pool_thread():
        # One of several parallel writers (a device's bundle): checksum each chunk
        # just before it is copied out, while it is in cache, instead of a second
        # pass on another thread (1 GiB DTensor save on two cores: 131-133 ms
        # against 142-156 ms through the checksum pool).
        crc = 0
        for start in range(0, raw.nbytes, INLINE_PIECE):
            part = view[start : start + INLINE_PIECE]
            crc = crc32c(part, crc)
            file.write(part)
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
    costs little beyond the read itself. Called from a dtckpt pool thread,
    where other reads run beside it, each chunk is checksummed in place
    instead (a 1 GiB resharding restore on two cores: 67-79 ms against
    95-119 ms through the checksum pool).
    """
    total = out.nbytes
    if total < OVERLAP_THRESHOLD:
        read_into(fd, out, offset, path=path)
        return crc32c(out.data)
    view = out.data
    if in_pool_thread():
        # Already one of several parallel readers (a DVariable's blocks, say): the
        # other readers keep the cores busy, and handing each chunk to the checksum
        # pool would only add thread switches. Checksum each chunk while it is hot.
        crc = 0
        for start in range(0, total, READ_CHUNK):
            stop = min(start + READ_CHUNK, total)
            read_into(fd, out[start:stop], offset + start, path=path)
            crc = crc32c(view[start:stop], crc)
        return crc
    pending = None
    for start in range(0, total, READ_CHUNK):
        stop = min(start + READ_CHUNK, total)
        read_into(fd, out[start:stop], offset + start, path=path)
        previous = pending.result() if pending is not None else 0
        pending = pool("checksum").submit(crc32c, view[start:stop], previous)
    assert pending is not None
    return pending.result()


# --- where a reader finds its files -------------------------------------------------------

__all__ += ["ShardFile", "BundleSource", "LocalFile", "LocalFiles", "LOCAL_FILES"]


class ShardFile(Protocol):
    """One open file of a bundle, as :class:`~dtckpt.format.bundle_reader.BundleReader` reads it.

    ``path`` names it in error messages and ``size`` is its length in bytes. Reads fill the
    whole of a 1-D ``uint8`` array and raise :class:`OutOfRangeError` past the end.
    """

    path: str
    size: int

    def read_into(self, out: np.ndarray, offset: int) -> None: ...

    def read_into_with_crc32c(self, out: np.ndarray, offset: int) -> int: ...

    def map(self) -> mmap_module.mmap | None:
        """The whole file memory-mapped read-only, or ``None`` where it cannot be mapped."""

    def close(self) -> None: ...


class BundleSource(Protocol):
    """Where a bundle's files come from: the file system (:data:`LOCAL_FILES`) or an archive.

    Paths are the ones the reader derives from its prefix (``PREFIX.index``,
    ``PREFIX.data-00000-of-00001``). ``read_index`` and ``open_shard`` return ``None`` for a
    file that does not exist; every other failure is a :mod:`dtckpt.errors` exception.
    """

    def read_index(self, path: str) -> bytes | memoryview | None: ...

    def open_shard(self, path: str) -> ShardFile | None: ...

    def siblings(self, path: str) -> list[str]:
        """Paths of the files beside ``path``, in its directory (for the message about a
        missing file); empty where they cannot be listed."""

    def close(self) -> None: ...


class LocalFile:
    """A data file on disk, read with ``os.preadv`` through one file descriptor."""

    __slots__ = ("fd", "size", "path")

    def __init__(self, fd: int, size: int, path: str) -> None:
        self.fd = fd
        self.size = size
        self.path = path

    def read_into(self, out: np.ndarray, offset: int) -> None:
        read_into(self.fd, out, offset, path=self.path)

    def read_into_with_crc32c(self, out: np.ndarray, offset: int) -> int:
        return read_into_with_crc32c(self.fd, out, offset, path=self.path)

    def map(self) -> mmap_module.mmap:
        return mmap_module.mmap(self.fd, 0, access=mmap_module.ACCESS_READ)

    def close(self) -> None:
        os.close(self.fd)


class LocalFiles:
    """The file system as a :class:`BundleSource`.

    Files are opened through :func:`~dtckpt.storage.inputs.open_input`: a FIFO, device or
    directory under a bundle file's name is refused by its type, never read (rule H-SP-1).
    """

    def read_index(self, path: str) -> bytes | None:
        if not os.path.exists(path):
            return None
        return read_input(path, what="an index file")

    def open_shard(self, path: str) -> LocalFile | None:
        if not os.path.exists(path):
            return None
        fd = open_input(path, what="a data file")
        return LocalFile(fd, os.fstat(fd).st_size, path)

    def siblings(self, path: str) -> list[str]:
        directory = os.path.dirname(path)
        try:
            names = os.listdir(directory or ".")
        except OSError:
            return []
        return [os.path.join(directory, name) for name in names]

    def close(self) -> None:
        pass


#: The one :class:`LocalFiles`; it holds no state.
LOCAL_FILES = LocalFiles()


# --- files of an object store ----------------------------------------------------------------

__all__ += ["StoreFiles", "StoreShard"]


#: A read-ahead fetches the next expected spans of a data object up to this many bytes
#: in one batch of coalesced requests (rule S-SI-8).
READ_AHEAD = 8 << 20
#: Values at most this large are read ahead; a larger one is its own request anyway.
READ_AHEAD_VALUE = 1 << 20
#: How far past the next expected span a read looks for itself before reading alone.
_AHEAD_SEARCH = 64


class StoreShard:
    """A data object of a store (a URL), read by ranged requests (rule S-SI-3).

    A restore tells each data object which small values it will read, in order
    (:meth:`expect`), before it reads any (rule F-RD-9). A read of an expected value
    that is not held yet then fetches it together with the next expected ones, up to
    :data:`READ_AHEAD` bytes, as coalesced requests (adjacent values in one GET): a
    restore of many small tensors costs a few requests, not one each (rule S-SI-8).
    """

    __slots__ = ("path", "size", "_reader", "_expected", "_next", "_ahead", "_lock")

    def __init__(self, path: str, reader: ObjectReader) -> None:
        self.path = path
        self.size = reader.size
        self._reader = reader
        self._expected: list[Span] = []
        self._next = 0  # the first expected span not fetched yet
        self._ahead: dict[Span, memoryview] = {}  # fetched, not read yet
        self._lock = threading.Lock()  # device threads may read blocks of one object

    def expect(self, offset: int, length: int) -> None:
        """``[offset, offset + length)`` will be read, after the spans expected before it."""
        if 0 < length <= READ_AHEAD_VALUE:
            self._expected.append(Span(offset, length))

    def read_into(self, out: np.ndarray, offset: int) -> None:
        if offset + out.nbytes > self.size:
            raise OutOfRangeError(
                f"data file ends after {self.size} bytes; {offset + out.nbytes - self.size} "
                "more were expected",
                path=self.path,
                offset=self.size,
            )
        target = memoryview(out.data).cast("B")
        span = Span(offset, out.nbytes)
        with self._lock:
            held = self._ahead.pop(span, None)
            if held is None and self._read_ahead(span):
                held = self._ahead.pop(span)
        if held is not None:
            target[:] = held
            return
        self._reader.read_into(target, offset)

    def _read_ahead(self, span: Span) -> bool:
        """Fetch ``span`` with the expected spans after it; False if it is not expected."""
        expected, start = self._expected, self._next
        stop = min(len(expected), start + _AHEAD_SEARCH)
        while start < stop and expected[start] != span:
            start += 1
        if start == stop:
            return False
        end, total = start, 0
        while end < len(expected) and (end == start or total + expected[end].length <= READ_AHEAD):
            total += expected[end].length
            end += 1
        batch = expected[start:end]
        # Reads come in the order expected: what an earlier batch still holds was skipped
        # (an object a newer restore had set), and is let go rather than kept to the end.
        self._ahead.clear()
        for wanted, data in zip(batch, self._reader.read_ranges(batch), strict=True):
            self._ahead[wanted] = memoryview(data)
        self._next = end
        return True

    def read_into_with_crc32c(self, out: np.ndarray, offset: int) -> int:
        self.read_into(out, offset)
        return crc32c(out.data)  # rule F-CRC-3, on exactly the bytes that arrived

    def map(self) -> None:
        return None

    def close(self) -> None:
        self._ahead.clear()
        self._expected.clear()
        self._reader.close()


class StoreFiles:
    """The objects of a store as a :class:`BundleSource`; paths are URLs (rule S-SI-5)."""

    def read_index(self, path: str) -> bytes | None:
        store, key = resolve(path)
        try:
            return store.read(key)
        except NotFoundError:
            return None

    def open_shard(self, path: str) -> StoreShard | None:
        store, key = resolve(path)
        try:
            return StoreShard(path, store.open_reader(key))
        except NotFoundError:
            return None

    def siblings(self, path: str) -> list[str]:
        directory = path.rstrip("/").rpartition("/")[0]
        store, key = resolve(directory)
        try:
            names = store.list(key)
        except CheckpointError:
            return []
        return [f"{directory}/{name}" for name in names]

    def close(self) -> None:
        pass


#: The one :class:`StoreFiles`; it holds no state.
STORE_FILES = StoreFiles()
__all__ += ["STORE_FILES"]


def source_for(path: str) -> BundleSource:
    """Where the files of the bundle at ``path`` come from: the file system, or the store
    a URL names (rule S-SI-5)."""
    return STORE_FILES if is_url(path) else LOCAL_FILES


__all__ += ["source_for"]

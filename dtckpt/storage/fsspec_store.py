"""Any fsspec file system as a :class:`~dtckpt.storage.base.Store`; S3 natively (rules S-SI-*).

::

    S3 (s3fs)                                     other fsspec file systems
    open_writer   CreateMultipartUpload,          fs.open(key, "wb"): visible at close
                  UploadPart x N in parallel,
                  CompleteMultipartUpload = commit
    create_if_absent      PutObject If-None-Match: *     exists? then write, one process
    replace_if_unchanged  PutObject If-Match: <ETag>     token = SHA-256, one process
    reads         ranged GETs (cat_ranges), coalesced, <= MAX_IN_FLIGHT bytes requested

Only S3 gives conditions that hold between processes: elsewhere they hold
between the threads of this process (``atomic_conditions`` is ``False``), which
is what ``memory://`` tests need. Listings are never served from fsspec's
cache: another process may have changed the directory since.

Every exception of fsspec, s3fs or botocore leaves this module as a
:mod:`dtckpt.errors` exception naming the object's URL (rule S-SI-2): s3fs and
botocore retry a failed request a bounded number of times first, except one
refused for its credentials (rule S-OS-8).
"""

from __future__ import annotations

import hashlib
import tempfile
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any, TypeVar

from ..errors import (
    CheckpointError,
    ConditionalWriteConflict,
    DataLossError,
    NotFoundError,
    OutOfRangeError,
    PermissionDeniedError,
    UnavailableError,
)
from ..pools import pool
from .base import MAX_IN_FLIGHT, Span, coalesce

__all__ = ["FsspecStore", "PART_SIZE"]

#: Size of each part of a multipart upload, and of each ranged GET of a long read. S3 wants
#: parts of 5 MiB at least (the last aside).
PART_SIZE = 16 << 20

#: Size of each ranged GET of a long read; the pieces of one read are requested together.
#: Against moto on 127.0.0.1, loading a 128 MiB checkpoint of 16 MiB tensors took 1.6 s with
#: 16 MiB pieces, 2.9 s with 8 MiB and 5.9 s with 4 MiB (each request costs the server a
#: pass over the object): few large requests, as s3fs's own cat_file makes.
READ_PIECE = 16 << 20

_T = TypeVar("_T")
#: Guards the emulated conditions of file systems that have none (one process only).
_EMULATION_LOCK = threading.Lock()


def _is_precondition_failure(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) is an HTTP 412 / conflicting conditional write."""
    seen: BaseException | None = exc
    for _ in range(8):  # a short chain of causes; never a cycle
        if seen is None:
            return False
        response = getattr(seen, "response", None)
        if isinstance(response, dict):
            code = response.get("Error", {}).get("Code")
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("PreconditionFailed", "ConditionalRequestConflict") or status == 412:
                return True
        if isinstance(seen, FileExistsError) or "pre-condition" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


@contextmanager
def _translated(url: str, *, conditional: bool = False) -> Iterator[None]:
    """Turn what fsspec, s3fs and botocore raise into dtckpt's errors (rule S-SI-2)."""
    try:
        yield
    except CheckpointError:
        raise
    except FileNotFoundError:
        raise NotFoundError("no such object", path=url) from None
    except PermissionError as exc:
        raise PermissionDeniedError(f"access refused: {exc}", path=url) from exc
    except Exception as exc:
        if not _from_the_store(exc):
            raise  # a bug, not a failure of the store: never disguised as one
        if conditional and _is_precondition_failure(exc):
            raise ConditionalWriteConflict(
                "the conditional write lost: another writer changed this object first", path=url
            ) from None
        if _names_credentials(exc):
            raise PermissionDeniedError(f"credentials refused: {exc}", path=url) from exc
        raise UnavailableError(
            f"the object store failed ({type(exc).__name__}: {exc})", path=url
        ) from exc


#: Libraries whose exceptions are failures of the store (the network, the server).
_STORE_LIBRARIES = ("botocore", "aiobotocore", "aiohttp", "s3fs", "fsspec", "gcsfs", "adlfs")


def _from_the_store(exc: BaseException) -> bool:
    if isinstance(exc, (OSError, TimeoutError, ConnectionError)):
        return True
    return type(exc).__module__.split(".")[0] in _STORE_LIBRARIES


def _names_credentials(exc: BaseException) -> bool:
    name = type(exc).__name__
    return "Credential" in name or "ExpiredToken" in str(exc) or "InvalidAccessKeyId" in str(exc)


class FsspecReader:
    """One object read by ranged requests."""

    def __init__(self, store: FsspecStore, key: str, size: int) -> None:
        self.key = key
        self.size = size
        self._store = store

    def _check(self, offset: int, length: int) -> None:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise OutOfRangeError(
                f"bytes [{offset}, {offset + length}) are past the end ({self.size} bytes)",
                path=self._store.url(self.key),
                offset=offset,
            )

    def read(self, offset: int, length: int) -> bytes | memoryview:
        return self.read_ranges([Span(offset, length)])[0]

    def read_into(self, out: memoryview, offset: int) -> None:
        """Fill ``out`` (a writable byte view) from ``offset``, in parallel ranged GETs."""
        self._check(offset, len(out))
        piece = READ_PIECE
        pieces = [
            Span(offset + start, min(piece, len(out) - start))
            for start in range(0, len(out), piece)
        ]
        for span, data in self._fetch(pieces):
            start = span.offset - offset
            out[start : start + span.length] = data

    def read_ranges(self, spans: Sequence[Span]) -> list[bytes | memoryview]:
        for span in spans:
            self._check(span.offset, span.length)
        runs = coalesce(spans, max_length=PART_SIZE)
        found = dict(self._fetch([run for run, _ in runs]))
        out: dict[Span, bytes | memoryview] = {}
        for run, members in runs:
            view = memoryview(found[run])
            for span in members:
                start = span.offset - run.offset
                out[span] = view[start : start + span.length]
        return [out[span] if span.length else b"" for span in spans]

    def _fetch(self, spans: Sequence[Span]) -> Iterator[tuple[Span, bytes]]:
        """The bytes of each span, requested in batches of at most MAX_IN_FLIGHT bytes."""
        batch: list[Span] = []
        held = 0
        for span in spans:
            if batch and held + span.length > MAX_IN_FLIGHT:
                yield from self._fetch_batch(batch)
                batch, held = [], 0
            batch.append(span)
            held += span.length
        if batch:
            yield from self._fetch_batch(batch)

    def _fetch_batch(self, spans: list[Span]) -> Iterator[tuple[Span, bytes]]:
        fs, url = self._store.fs, self._store.url(self.key)
        with _translated(url):
            if len(spans) == 1:
                span = spans[0]
                results = [fs.cat_file(self.key, start=span.offset, end=span.offset + span.length)]
            else:
                results = fs.cat_ranges(
                    [self.key] * len(spans),
                    [s.offset for s in spans],
                    [s.offset + s.length for s in spans],
                    on_error="return",
                )
        # Every request of the batch is checked before any bytes are handed on: a value
        # read in place is left as it was when one of its requests fails (rule S-OS-9).
        for data in results:
            if isinstance(data, BaseException):
                with _translated(url):
                    raise data
        for span, data in zip(spans, results, strict=True):
            self._store.count(read=len(data), requests=1)
            if len(data) != span.length:
                raise OutOfRangeError(
                    f"asked for {span.length} bytes, the store returned {len(data)}",
                    path=url,
                    offset=span.offset,
                )
            yield span, data

    def close(self) -> None:
        pass


class _FileWriter:
    """Spooled here, then copied into ``fs.open(key, "wb")`` at :meth:`commit`: some file
    systems (``memory://``) show a file as soon as it is opened."""

    def __init__(self, store: FsspecStore, key: str) -> None:
        self.key = key
        self._store = store
        self._url = store.url(key)
        self._spool = tempfile.SpooledTemporaryFile(max_size=PART_SIZE)
        self._done = False

    def write(self, data: bytes | bytearray | memoryview) -> int:
        return self._spool.write(data)

    def commit(self) -> None:
        self._done = True
        try:
            self._spool.seek(0)
            with _translated(self._url), self._store.fs.open(self.key, "wb") as out:
                while piece := self._spool.read(PART_SIZE):
                    out.write(piece)
                    self._store.count(written=len(piece))
            self._store._fresh(self.key)
        finally:
            self._spool.close()

    def abort(self) -> None:
        if not self._done:
            self._done = True
            self._spool.close()


class _MultipartWriter:
    """An S3 object written as a multipart upload, parts sent in parallel (rule S-OS-1).

    Nothing is visible under ``key`` before :meth:`commit` completes the upload;
    an aborted or abandoned upload never becomes an object. At most
    :data:`MAX_IN_FLIGHT` bytes of parts are held in requests at once, over every
    writer of the store.
    """

    def __init__(self, store: FsspecStore, key: str) -> None:
        self.key = key
        self._store = store
        self._url = store.url(key)
        self._bucket, self._name = store.split(key)
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[Future[dict[str, Any]]] = []
        self._done = False

    def write(self, data: bytes | bytearray | memoryview) -> int:
        view = memoryview(data).cast("B")
        taken = 0
        while taken < len(view):
            room = PART_SIZE - len(self._buffer)
            self._buffer += view[taken : taken + room]
            taken += min(room, len(view) - taken)
            if len(self._buffer) >= PART_SIZE:
                self._send(bytes(self._buffer))
                self._buffer = bytearray()
        return len(view)

    def _call(self, method: str, **kwargs: Any) -> Any:
        with _translated(self._url):
            return self._store.fs.call_s3(method, Bucket=self._bucket, Key=self._name, **kwargs)

    def _send(self, body: bytes) -> None:
        if self._upload_id is None:
            self._upload_id = self._call("create_multipart_upload")["UploadId"]
        # Bound what the store holds in requests, over all its writers (rule S-SI-3): a part
        # waits for a slot, which the upload of an earlier part gives back.
        self._store.part_slots.acquire()
        number = len(self._parts) + 1
        try:
            self._parts.append(pool("transfer").submit(self._upload, number, body))
        except BaseException:
            self._store.part_slots.release()
            raise

    def _upload(self, number: int, body: bytes) -> dict[str, Any]:
        try:
            reply = self._call(
                "upload_part", UploadId=self._upload_id, PartNumber=number, Body=body
            )
        finally:
            self._store.part_slots.release()
        self._store.count(written=len(body))
        return {"PartNumber": number, "ETag": reply["ETag"]}

    def commit(self) -> None:
        try:
            if self._upload_id is None:
                self._call("put_object", Body=bytes(self._buffer))
                self._store.count(written=len(self._buffer))
            else:
                if self._buffer:
                    self._send(bytes(self._buffer))
                parts = [p.result() for p in self._parts]
                self._call(
                    "complete_multipart_upload",
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": parts},
                )
        except BaseException:
            self.abort()
            raise
        self._done = True
        self._buffer = bytearray()

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        self._buffer = bytearray()
        for part in self._parts:
            if part.cancel():  # never started: its slot is given back here
                self._store.part_slots.release()
        for part in self._parts:
            try:
                part.result()
            except BaseException:  # noqa: BLE001 - aborting anyway
                pass
        if self._upload_id is not None:
            try:  # best effort: a server that is gone keeps the parts, never an object
                self._call("abort_multipart_upload", UploadId=self._upload_id)
            except CheckpointError:
                pass


class FsspecStore:
    """Objects of one fsspec file system; keys are that file system's paths.

    ``bytes_read`` and ``bytes_written`` count the payload bytes moved since the
    store was made (benchmarks compare them with what a read needed), ``reads`` the
    ranged requests of data objects.
    """

    def __init__(self, fs: Any) -> None:
        self.fs = fs
        protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
        self.protocol = str(protocols[0])
        self.is_s3 = hasattr(fs, "call_s3") and hasattr(fs, "split_path")
        self.atomic_conditions = self.is_s3
        self.bytes_read = 0
        self.bytes_written = 0
        self.reads = 0
        self._counting = threading.Lock()
        #: Parts of multipart uploads in requests at once, all writers of this store together.
        self.part_slots = threading.Semaphore(max(1, MAX_IN_FLIGHT // PART_SIZE))

    def count(self, *, read: int = 0, written: int = 0, requests: int = 0) -> None:
        """Add to :attr:`bytes_read`, :attr:`bytes_written` and :attr:`reads` (reader
        threads share them)."""
        with self._counting:
            self.reads += requests
            self.bytes_read += read
            self.bytes_written += written

    # -- names ------------------------------------------------------------------------
    def url(self, key: str) -> str:
        return str(self.fs.unstrip_protocol(key))

    def join(self, directory: str, name: str) -> str:
        return f"{directory.rstrip('/')}/{name}"

    def parent(self, key: str) -> str:
        return key.rstrip("/").rpartition("/")[0]

    def split(self, key: str) -> tuple[str, str]:
        bucket, name, _ = self.fs.split_path(key)
        return bucket, name

    def _fresh(self, key: str) -> None:
        """Forget fsspec's cached listing: another process may have written since."""
        self.fs.invalidate_cache(self.parent(key))
        self.fs.invalidate_cache(key)

    # -- reading ----------------------------------------------------------------------
    def _size(self, key: str) -> int:
        self._fresh(key)
        with _translated(self.url(key)):
            info = self.fs.info(key)
        if info.get("type") == "directory":
            raise NotFoundError("expected an object, found a directory", path=self.url(key))
        return int(info["size"])

    def open_reader(self, key: str) -> FsspecReader:
        return FsspecReader(self, key, self._size(key))

    def read(self, key: str, *, limit: int | None = None) -> bytes:
        size = self._size(key)
        if limit is not None and size > limit:
            raise DataLossError(
                f"{size} bytes are more than the {limit} this object may have", path=self.url(key)
            )
        if size == 0:
            return b""
        reader = FsspecReader(self, key, size)
        out = bytearray(size)
        reader.read_into(memoryview(out), 0)
        return bytes(out)

    def exists(self, key: str) -> bool:
        self._fresh(key)
        # Not ``fs.isfile``: it answers False to every failure, so refused credentials or
        # a server error would read as a missing object (rules S-SI-2, S-OS-8).
        try:
            with _translated(self.url(key)):
                info = self.fs.info(key)
        except NotFoundError:
            return False
        return bool(info.get("type") == "file")

    # -- writing ----------------------------------------------------------------------
    def open_writer(self, key: str) -> _MultipartWriter | _FileWriter:
        if self.is_s3:
            return _MultipartWriter(self, key)
        return _FileWriter(self, key)

    def create_if_absent(self, key: str, data: bytes) -> None:
        url = self.url(key)
        if self.is_s3:
            bucket, name = self.split(key)
            with _translated(url, conditional=True):
                self.fs.call_s3("put_object", Bucket=bucket, Key=name, Body=data, IfNoneMatch="*")
            self._fresh(key)
            return
        with _EMULATION_LOCK:
            if self.exists(key):
                raise ConditionalWriteConflict(
                    "not created: an object already exists under this name", path=url
                )
            self._write_whole(key, data)

    def _write_whole(self, key: str, data: bytes) -> None:
        with _translated(self.url(key)):
            self.fs.pipe_file(key, data)
        self._fresh(key)

    def read_versioned(self, key: str) -> tuple[bytes | None, str | None]:
        if self.is_s3:
            return self._get_with_etag(key)
        try:
            data = self.read(key)
        except NotFoundError:
            return None, None
        return data, hashlib.sha256(data).hexdigest()

    def _get_with_etag(self, key: str) -> tuple[bytes | None, str | None]:
        from fsspec.asyn import sync

        bucket, name = self.split(key)

        async def get() -> tuple[bytes, str]:
            reply = await self.fs._call_s3("get_object", Bucket=bucket, Key=name)
            try:
                body = await reply["Body"].read()
            finally:
                reply["Body"].close()
            return body, str(reply["ETag"])

        try:
            with _translated(self.url(key)):
                data, etag = sync(self.fs.loop, get)
        except NotFoundError:
            return None, None
        self.count(read=len(data))
        return data, etag

    def replace_if_unchanged(self, key: str, data: bytes, token: str | None) -> str:
        url = self.url(key)
        if self.is_s3:
            bucket, name = self.split(key)
            condition = {"IfNoneMatch": "*"} if token is None else {"IfMatch": token}
            try:
                with _translated(url, conditional=True):
                    reply = self.fs.call_s3(
                        "put_object", Bucket=bucket, Key=name, Body=data, **condition
                    )
            except NotFoundError:  # If-Match on an object deleted since it was read
                raise ConditionalWriteConflict(
                    "not replaced: the object vanished since it was read", path=url
                ) from None
            self._fresh(key)
            return str(reply["ETag"])
        with _EMULATION_LOCK:
            _, now = self.read_versioned(key)
            if now != token:
                raise ConditionalWriteConflict(
                    "not replaced: the object changed since it was read", path=url
                )
            self._write_whole(key, data)
        return hashlib.sha256(data).hexdigest()

    # -- listing and removing -----------------------------------------------------------
    def _names(self, directory: str, kind: str) -> list[str]:
        """The base names of the entries of ``kind`` directly in ``directory``, listed afresh."""
        self.fs.invalidate_cache(directory)
        try:
            with _translated(self.url(directory)):
                entries = self.fs.ls(directory, detail=True)
        except NotFoundError:
            return []
        return [
            str(e["name"]).rstrip("/").rpartition("/")[2] for e in entries if e.get("type") == kind
        ]

    def list_directories(self, directory: str) -> list[str]:
        return self._names(directory, "directory")

    def list(self, directory: str) -> list[str]:
        return self._names(directory, "file")

    def delete(self, key: str) -> None:
        try:
            with _translated(self.url(key)):
                self.fs.rm_file(key)
        except NotFoundError:
            pass
        self._fresh(key)

    def abort_uploads(self, prefix: str) -> int:
        """Abort the multipart uploads under way of keys starting with ``prefix`` (S3
        only; elsewhere there are none): a writer killed mid-upload leaves its parts
        stored, and billed, until someone aborts them (rule S-OS-5). Returns how many."""
        if not self.is_s3:
            return 0
        bucket, name = self.split(prefix)
        aborted = 0
        with _translated(self.url(prefix)):
            reply = self.fs.call_s3("list_multipart_uploads", Bucket=bucket, Prefix=name)
            for upload in reply.get("Uploads", []):
                self.fs.call_s3(
                    "abort_multipart_upload",
                    Bucket=bucket,
                    Key=upload["Key"],
                    UploadId=upload["UploadId"],
                )
                aborted += 1
        return aborted

"""The store interface: what the format and checkpoint layers ask of storage (rules S-SI-*).

::

    Store                                  one namespace of objects, named by keys
      open_reader(key)  -> ObjectReader    .size, read(offset, n), read_ranges([...])
      open_writer(key)  -> ObjectWriter    write(bytes)...; commit() makes it visible
      create_if_absent(key, data)          conditional create (S3: If-None-Match: *)
      read_versioned(key) -> (data, token) what a conditional replace compares against
      replace_if_unchanged(key, data, token) -> token   (S3: If-Match: <etag>)
      read(key) / exists(key) / list(directory) / delete(key)

A key is a ``/``-separated name inside the store (a local path for
:class:`~dtckpt.storage.local.LocalStore`, ``bucket/dir/name`` for S3);
``store.url(key)`` is the name users see in messages. Every failure is a
:mod:`dtckpt.errors` exception: a missing object :class:`NotFoundError`, a
lost condition :class:`ConditionalWriteConflict`, a network or server failure
:class:`UnavailableError`, refused credentials :class:`PermissionDeniedError`
(rule S-SI-2).

An object written through :meth:`Store.open_writer` is invisible under its
name until :meth:`ObjectWriter.commit` returns, and never visible if the writer
is aborted or the process dies first (rule S-SI-1). Readers fetch only the
byte ranges they are asked for (rule S-SI-3). Every implementation passes the
conformance tests of ``tests/storage/store_tests.py`` (rule S-SI-6).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple, Protocol

__all__ = [
    "Store",
    "ObjectReader",
    "ObjectWriter",
    "Span",
    "coalesce",
    "MAX_IN_FLIGHT",
]

#: Bytes a reader or writer of an object store holds in requests at once (rule S-SI-3).
MAX_IN_FLIGHT = 64 << 20


class Span(NamedTuple):
    """``[offset, offset + length)`` of one object."""

    offset: int
    length: int


def coalesce(spans: Iterable[Span], *, max_length: int) -> list[tuple[Span, list[Span]]]:
    """Merge spans that touch or overlap into runs of at most ``max_length`` bytes (S-SI-3).

    Returns each run with the spans it serves, runs in offset order. Only spans
    that are adjacent or overlapping join: a run never covers a byte no span
    asked for, so coalescing saves requests without reading more.
    """
    ordered = sorted((s for s in spans if s.length > 0), key=lambda s: s.offset)
    runs: list[tuple[Span, list[Span]]] = []
    start = stop = -1
    members: list[Span] = []
    for span in ordered:
        end = span.offset + span.length
        if members and span.offset <= stop and max(stop, end) - start <= max_length:
            stop = max(stop, end)
            members.append(span)
            continue
        if members:
            runs.append((Span(start, stop - start), members))
        start, stop, members = span.offset, end, [span]
    if members:
        runs.append((Span(start, stop - start), members))
    return runs


class ObjectReader(Protocol):
    """One object opened for ranged reads; ``size`` is its length when it was opened."""

    key: str
    size: int

    def read(self, offset: int, length: int) -> bytes | memoryview:
        """Exactly ``length`` bytes from ``offset``; :class:`OutOfRangeError` past the end."""

    def read_into(self, out: memoryview, offset: int) -> None:
        """Fill the writable byte view ``out`` with the bytes from ``offset``."""

    def read_ranges(self, spans: Sequence[Span]) -> list[bytes | memoryview]:
        """The bytes of each span, in the order given: adjacent spans fetched as one
        request, at most :data:`MAX_IN_FLIGHT` bytes requested at once."""

    def close(self) -> None: ...


class ObjectWriter(Protocol):
    """A new object, invisible under its name until :meth:`commit` (rule S-SI-1)."""

    key: str

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Append ``data`` (copied before returning, so the caller may reuse its buffer)."""

    def commit(self) -> None:
        """Make the whole object visible under its key, replacing any object there."""

    def abort(self) -> None:
        """Discard what was written; the key keeps what it held. Safe to call twice."""


class Store(Protocol):
    """A namespace of objects (rules S-SI-1 to S-SI-4).

    ``atomic_conditions`` says whether :meth:`create_if_absent` and
    :meth:`replace_if_unchanged` hold against other processes (the local file
    system under its directory lock, S3's conditional requests), or only
    against other threads of this process (an fsspec file system without
    conditional writes, such as ``memory://``).
    """

    atomic_conditions: bool

    def url(self, key: str) -> str:
        """The name of ``key`` as a user writes it (``s3://bucket/dir/name``, a local path)."""

    def join(self, directory: str, name: str) -> str: ...

    def parent(self, key: str) -> str: ...

    def open_reader(self, key: str) -> ObjectReader: ...

    def open_writer(self, key: str) -> ObjectWriter: ...

    def read(self, key: str, *, limit: int | None = None) -> bytes:
        """The whole object; :class:`DataLossError` if it is larger than ``limit``."""

    def exists(self, key: str) -> bool: ...

    def create_if_absent(self, key: str, data: bytes) -> None:
        """Write ``data`` under ``key`` only if nothing is there (rule S-SI-4);
        :class:`ConditionalWriteConflict` otherwise."""

    def read_versioned(self, key: str) -> tuple[bytes | None, str | None]:
        """The object and a token naming this version of it; ``(None, None)`` when absent."""

    def replace_if_unchanged(self, key: str, data: bytes, token: str | None) -> str:
        """Write ``data`` under ``key`` only if its version is still ``token`` (``None``:
        only if it is still absent); the new version's token. Rule S-SI-4."""

    def list_directories(self, directory: str) -> list[str]:
        """The names of the directories (key prefixes) directly in ``directory``."""

    def list(self, directory: str) -> list[str]:
        """The names (no directory part) of the objects directly in ``directory``; empty
        when there is none."""

    def delete(self, key: str) -> None:
        """Remove ``key``; nothing happens when it is absent."""

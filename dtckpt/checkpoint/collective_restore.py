"""Restoring one checkpoint on every client: the root reads the index once (rule P-RS-1).

::

    root (client 0)                              every other client
    open P.index, read the object graph
    match it to the objects, check every value
    against the index (phase 1 of O-RS-2)
    cut the index: for each client, the entries
    of the blocks its devices hold
    ---- scatter (one collective): the graph and its index, or the root's error ----
    read its own blocks                          open a reader on the index it got,
                                                 match, check, read its own blocks

The one collective carries everything: no client reads the index file but the
root, and each reads from the data files only the bytes of its own blocks.
A value that is not a sharded value (a ``Variable``, the save counter) or a
value no object claimed when the checkpoint was opened (a deferred restore)
reaches every client whole, with all its slices. Failures the root meets up
to the scatter (no checkpoint, a mismatched shape or dtype) are every
client's (rule P-ER-2); a failure after it, while a client reads its own
bytes, is that client's alone (rule P-RS-2). A checkpoint inside an archive
(rule A-RD-2) is read by each client on its own, without a collective.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..comm import Communicator
from ..comm.agree import Reply, record_of
from ..format.bundle_reader import BundleReader
from ..format.messages import TensorSlice, encode_entry, encode_header
from ..format.ordered_code import encode_tensor_name_slice
from ..format.slice_index import SliceIndex
from ..format.slices import resolve
from ..format.streams import ShardFile, source_for
from ..format.table import encode_table
from .sharded import Box, is_sharded

__all__ = ["RestoreSession", "ReceivedIndex", "cut_index"]


@dataclass(frozen=True)
class _Payload:
    """What one client receives: the object graph's bytes (or None) and its index."""

    graph: bytes | None
    index: bytes


class ReceivedIndex:
    """A :class:`~dtckpt.format.streams.BundleSource` whose index came from the root.

    The data files are read from the file system, or the store a URL names, as every
    client sees them (rule S-SI-5).
    """

    def __init__(self, index_path: str, data: bytes) -> None:
        self._index_path = index_path
        self._data = data
        self._files = source_for(index_path)

    def read_index(self, path: str) -> bytes | memoryview | None:
        return self._data if path == self._index_path else self._files.read_index(path)

    def open_shard(self, path: str) -> ShardFile | None:
        return self._files.open_shard(path)

    def siblings(self, path: str) -> list[str]:
        return self._files.siblings(path)

    def close(self) -> None:
        return None


class RestoreSession:
    """One client's side of a collective restore of ``path``.

    With one client it does nothing. With several, the root calls
    :meth:`share` once the objects are matched (or :meth:`refuse` with the error
    that stopped it); every other client calls :meth:`receive` instead of
    opening the index.
    """

    def __init__(
        self, comm: Communicator, path: str, timeout: float, *, alone: bool = False
    ) -> None:
        self.comm = comm
        self.path = path
        self.timeout = timeout
        # ``alone``: every client reads on its own, with no collective (an archive, whose
        # data only its own reader can get at).
        self.alone = alone or comm.size == 1
        self.shared = self.alone
        self.what = f"restore {path}"

    @property
    def reads_index(self) -> bool:
        """Whether this client opens the index itself (the root, a lone process, or all)."""
        return self.alone or self.comm.rank == 0

    def receive(self) -> tuple[BundleReader, bytes | None]:
        """A reader over the entries the root sent this client, and the object graph."""
        got: Reply = self.comm.scatter(None, timeout=self.timeout, what=self.what)
        self.shared = True
        payload: _Payload = got.unwrap()
        reader = BundleReader(self.path, source=ReceivedIndex(f"{self.path}.index", payload.index))
        return reader, payload.graph

    def refuse(self, exc: BaseException) -> None:
        """Tell every client why the root cannot restore (once; only before :meth:`share`)."""
        if self.shared or self.alone or self.comm.rank != 0:
            return
        self.shared = True
        error = Reply(error=record_of(exc, 0))
        self.comm.scatter([error] * self.comm.size, timeout=self.timeout, what=self.what)

    def share(
        self, reader: BundleReader, graph: bytes | None, plan: Iterable[tuple[str, Any]]
    ) -> None:
        """Send each client the graph and the index cut to its blocks (the one collective).

        ``plan`` pairs each checkpoint key with the value that will read it:
        a sharded value reads only its clients' blocks, anything else the whole.
        """
        if self.shared:
            return
        try:
            cut = cut_index(reader, dict(plan), self.comm.size)
            replies = [Reply(_Payload(graph, index)) for index in cut]
        except Exception as exc:
            self.refuse(exc)
            raise
        self.shared = True
        self.comm.scatter(replies, timeout=self.timeout, what=self.what)


def cut_index(reader: BundleReader, plan: dict[str, Any], clients: int) -> list[bytes]:
    """For each client, the index it needs: every entry, but a sharded value's slices only
    where that client's devices overlap them (rule P-RS-1). One pass over the entries,
    plus the overlaps of each client's blocks."""
    header = (b"", encode_header(reader.header))
    common: list[tuple[bytes, bytes]] = [header]
    own: list[list[tuple[bytes, bytes]]] = [[] for _ in range(clients)]
    for key in reader.keys():
        entry = reader.entry(key)
        value: Any = plan.get(key.decode("utf-8", "surrogateescape"))
        if not entry.slices or not is_sharded(value):
            common.append((key, encode_entry(entry)))
            for tensor_slice in entry.slices:
                slice_key = encode_tensor_name_slice(key, tensor_slice)
                common.append((slice_key, encode_entry(reader.entry(slice_key))))
            continue
        stored = SliceIndex([(resolve(s, entry.shape), s) for s in entry.slices])
        for client in range(clients):
            wanted = _overlapping(stored, value.client_boxes(client))
            kept = tuple(s for s in entry.slices if s in wanted)
            trimmed = entry._replace(slices=kept)
            own[client].append((key, encode_entry(trimmed)))
            for tensor_slice in kept:
                slice_key = encode_tensor_name_slice(key, tensor_slice)
                own[client].append((slice_key, encode_entry(reader.entry(slice_key))))
    return [encode_table(sorted(common + mine)) for mine in own]


def _overlapping(stored: SliceIndex[TensorSlice], boxes: list[Box]) -> set[TensorSlice]:
    found: set[TensorSlice] = set()
    for box in boxes:
        for _, tensor_slice, _ in stored.overlapping(box):
            found.add(tensor_slice)
    return found

"""Saving one checkpoint from every client at once: data files first, the index last (P-SV-2).

::

    every client                                 the root (client 0) too
    plan the parts (metadata only, P-SV-1)
    ----- 1. start (bcast from the root) -----   lock the directory, clean it (S-TP-2, -3),
                                                 mark the save: P.index.tempstate<N> (held),
                                                 remove an old P.index (S-AT-1)
    write its parts: P.data-k-of-K.tempstate<M>,
    fsync, rename to P.data-k-of-K, fsync dir
    ----- 2. entries (gather to the root) ----   merge the entries (F-MG-1), write the index
                                                 into the mark, fsync, rename to P.index,
                                                 fsync dir; the state file (S-ST-1)
    ----- 3. outcome (bcast from the root) ---
    failed before the commit: remove its own data files
    run the write callbacks

Three collectives, whatever the number of clients or tensors. No client reads,
renames or removes another client's files; entries travel, files do not. The
index exists only once every data file is in place, so after an interruption
anywhere there is either no new index or a complete checkpoint (rule P-SV-3).
A lone process runs the same steps with a one-member communicator: its files
are byte for byte those of a save by any number of clients.

On an object store (a URL) there is no rename and no directory lock: the root
cleans stale claims (S-OS-5) and claims the prefix instead of marking it
(S-OS-2), data objects are written under their final names (S-OS-1), and the
index is created only if absent, which is the commit (S-OS-3). A failure
leaves the previous checkpoints and the state file untouched (S-OS-7).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import wait
from contextlib import ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..comm import Communicator
from ..comm.agree import ErrorRecord, Reply, client_of, first_failure, record_of
from ..errors import DeadlineExceededError
from ..format.bundle_writer import DataFileWriter
from ..format.merge import SplitEntries, merge_split, split_for_merge
from ..format.naming import data_filename, index_filename
from ..pools import pool
from ..storage.base import Store
from ..storage.dirlock import directory_lock
from ..storage.durable import (
    TemporaryFile,
    clean_if_changed,
    install,
    note_unchanged,
    temporary_name,
)
from ..storage.urls import is_url, resolve
from .sharded import Item, Part, plan_parts

#: Unsynced local parts are written on threads from this many bytes in all.
THREADED_BYTES = 4 << 20

if TYPE_CHECKING:
    from ..storage.objects import PlacedObject, PrefixClaim

__all__ = ["save_collectively"]


@dataclass(frozen=True)
class _Outcome:
    """What the root tells every client at the end (collective 3)."""

    committed: bool
    result: Any = None


def save_collectively(
    path: str,
    tensors: Sequence[tuple[str, Any]],
    *,
    comm: Communicator,
    timeout: float,
    regular_on_device_zero: bool = False,
    writers: str = "lowest",
    fsync: bool = True,
    after: Callable[[str], Any] | None = None,
) -> Any:
    """Write ``tensors`` at ``path`` with every member of ``comm``; ``after``'s result.

    Every member calls this with the same arguments (its own local blocks).
    ``after(path)`` runs on the root once the index is in place, still under
    the directory lock (the state file, a manager's deletions); what it returns
    reaches every member. A failure anywhere raises the same typed error on
    every member (rule P-ER-2).
    """
    save = _Save(path, comm, timeout, fsync)
    try:
        parts = plan_parts(tensors, regular_on_device_zero=regular_on_device_zero, writers=writers)
    except Exception as exc:  # told to the others at the next collective
        save.fail(exc)
        parts = []
    with ExitStack() as held:
        save.count = len(parts)  # the claim records it (rule S-OS-5)
        save.start(held)
        save.write([p for p in parts if p.client == comm.rank], len(parts))
        outcome = save.commit(parts, after)
    return outcome.result


class _Save:
    """The state of one client's part in a collective save."""

    def __init__(self, path: str, comm: Communicator, timeout: float, fsync: bool) -> None:
        self.path = path
        self.index_path = index_filename(path)
        self.directory = os.path.dirname(path) or os.curdir
        self.comm = comm
        self.root = comm.rank == 0
        self.timeout = timeout
        self.fsync = fsync
        self.failure: Exception | None = None
        self.mark: TemporaryFile | None = None
        self.placed: list[str] = []  # this client's data files under their final names
        self.entries: dict[int, SplitEntries] = {}
        self.name = os.path.basename(path)
        self.store: Store | None = None
        self.key = ""
        if is_url(path):
            self.store, self.key = resolve(path)
        self.claim: PrefixClaim | None = None
        self.count = 0

    def fail(self, exc: Exception) -> None:
        if self.failure is None:
            self.failure = exc

    def _record(self) -> ErrorRecord | None:
        if self.failure is None:
            return None
        return record_of(self.failure, client_of(self.comm))

    def _raise(self, record: ErrorRecord) -> None:
        error = record.to_exception()
        if self.failure is not None and error is not self.failure:
            raise error from self.failure
        raise error

    # -- 1. start ------------------------------------------------------------------
    def start(self, held: ExitStack) -> None:
        if self.root and self.failure is None and self.store is not None:
            from ..storage.objects import PrefixClaim, clean_stale_claims

            try:
                clean_stale_claims(self.store, self.store.parent(self.key))  # rule S-OS-5
                claim = PrefixClaim(self.store, self.key, shards=self.count)
                claim.acquire()  # rule S-OS-2: a second writer of the prefix stops here
                self.claim = claim
                self.store.delete(index_filename(self.key))  # rule S-AT-1, step 1
            except Exception as exc:
                self.fail(exc)
        elif self.root and self.failure is None:
            try:
                os.makedirs(self.directory, exist_ok=True)
                held.enter_context(directory_lock(self.directory))  # rule S-LK-1
                clean_if_changed(self.directory)  # rules S-TP-2, S-TP-3
                # The mark of a save under way; left behind by a crash, it tells the next
                # save which data files never got their index (rule S-TP-2).
                self.mark = TemporaryFile(temporary_name(self.index_path))
                _remove_if_present(self.index_path)  # rule S-AT-1, step 1
            except Exception as exc:
                self.fail(exc)
        reply = Reply(True, self._record()) if self.root else None
        got: Reply = self.comm.bcast(reply, timeout=self.timeout, what=f"save {self.name}: start")
        if got.error is not None:
            self._discard_mark()
            self._raise(got.error)

    # -- 2. this client's data files -----------------------------------------------------
    def write(self, parts: list[Part], count: int) -> None:
        if self.failure is not None or not parts:
            return
        written: list[tuple[DataFileWriter, TemporaryFile | PlacedObject]] = []
        try:
            if self._threaded(parts):
                # Each part (a device's data file) is written and fsynced on its own thread,
                # as the devices would write at once; writes, checksums, fsyncs and uploads
                # release the GIL.
                futures = [pool("io").submit(self._write_part, part, count) for part in parts]
                wait(futures)  # every writer ends before anything is cleaned up
                failed = None
                for done in futures:
                    error = done.exception()
                    if error is None:
                        written.append(done.result())
                    elif failed is None:
                        failed = error
                if failed is not None:
                    raise failed
            else:
                for part in parts:
                    written.append(self._write_part(part, count))
            if self.store is None:
                self._install(written)
            self.placed = [w.path for w, _ in written]
            # Entries travel encoded, but for partitioned tensors' full entries: the
            # root then encodes one entry per tensor, not one per block (P-SV-2).
            self.entries = {
                part.number: split_for_merge(w.entries)
                for part, (w, _) in zip(parts, written, strict=True)
            }
        except Exception as exc:
            for _, temporary in written:
                temporary.discard()
            self.fail(exc)

    def _threaded(self, parts: list[Part]) -> bool:
        """Whether the parts are written on the ``io`` pool's threads.

        Threads pay off when a part waits (an fsync, an upload) or moves enough bytes for
        its checksum and write to overlap; many small unsynced local parts are mostly
        Python work, which threads only pass back and forth under the GIL (on two cores
        that took up to three times the CPU of writing them one after another).
        """
        if len(parts) < 2:
            return False
        if self.fsync or self.store is not None:
            return True
        return sum(_part_bytes(part) for part in parts) >= THREADED_BYTES

    def _install(self, written: list[tuple[DataFileWriter, TemporaryFile | PlacedObject]]) -> None:
        """Rename this client's data files into place (local files only)."""
        install(
            [(w.temporary_path, w.path) for w, _ in written],
            directory=self.directory,
            # Other clients' renames must be durable before they report (S-AT-2); a
            # lone process's are made durable by the directory fsync after its index.
            fsync=self.fsync and self.comm.size > 1,
            temporaries=[t for _, t in written if isinstance(t, TemporaryFile)],
            lock=self.root,  # the root holds it for everyone (rule S-LK-1)
        )

    def _write_part(
        self, part: Part, count: int
    ) -> tuple[DataFileWriter, TemporaryFile | PlacedObject]:
        path = data_filename(self.path, part.number, count)
        writer = DataFileWriter(path, shard_id=part.number, fsync=self.fsync)
        try:
            for item in part.items:
                _add(writer, item, part.device)
        except BaseException:
            writer.abort()
            raise
        return writer, writer.seal()  # seal discards the file itself if its fsync fails

    # -- 3. the index, and the outcome ---------------------------------------------------
    def commit(self, parts: list[Part], after: Callable[[str], Any] | None) -> _Outcome:
        report = Reply(self.entries, self._record())
        try:
            reports = self.comm.gather(
                report, timeout=self.timeout, what=f"save {self.name}: entries"
            )
        except DeadlineExceededError as exc:
            if not self.root:
                # Whether the root will commit is unknown: the files stay, and a mark
                # lets the next save remove them if no index ever came (rule P-SV-3).
                self._leave_mark()
                raise
            self.fail(exc)
            reports = None
        outcome, record = _Outcome(False), None
        if self.root:
            outcome, record = self._commit_index(parts, reports, after)
        try:
            # Waiting for the outcome spans the root's own wait for the slowest client
            # and its commit: twice the deadline, so that a late client is named to all.
            got: Reply = self.comm.bcast(
                Reply(outcome, record) if self.root else None,
                timeout=2 * self.timeout,
                what=f"save {self.name}: outcome",
            )
        except DeadlineExceededError:
            self._leave_mark()  # the root's verdict never came: as above
            raise
        final: _Outcome = got.value if got.value is not None else _Outcome(False)
        if got.error is not None:
            if not final.committed:
                self._remove_placed()
                if isinstance(self.failure, DeadlineExceededError):
                    self._keep_mark()  # a late client may still place files: next save's job
                else:
                    self._discard_mark()
            self._raise(got.error)
        return final

    def _commit_index(
        self,
        parts: list[Part],
        reports: list[Any] | None,
        after: Callable[[str], Any] | None,
    ) -> tuple[_Outcome, ErrorRecord | None]:
        errors = [r.error for r in reports or () if r.error is not None]
        mine = self._record()
        if mine is not None:
            errors.append(mine)
        if errors:
            return _Outcome(False), first_failure(errors)
        assert reports is not None
        try:
            numbered: dict[int, SplitEntries] = {}
            for reply in reports:
                numbered.update(reply.value)
            ordered = [numbered[k] for k in range(len(parts))]
            table = merge_split(ordered, len(parts), where=self.index_path)
            if self.store is not None:
                # Rule S-OS-3: the commit. Created only if absent, so that of two writers
                # of the prefix (whose claims failed to keep one out) only one commits.
                self.store.create_if_absent(index_filename(self.key), table)
                self._discard_mark()  # the claim, once the index is there (S-OS-2)
            else:
                self._install_index(table)
        except Exception as exc:
            self.fail(exc)
            return _Outcome(False), self._record()
        try:
            result = after(self.path) if after is not None else None
        except Exception as exc:  # the checkpoint is complete; the error is still the save's
            self.fail(exc)
            return _Outcome(True), self._record()
        if self.store is None:
            note_unchanged(self.directory)  # rule S-TP-3: every client's files are in place
        return _Outcome(True, result), None

    def _install_index(self, table: bytes) -> None:
        assert self.mark is not None
        mark, self.mark = self.mark, None
        try:
            mark.file.write(table)
            mark.sync(self.fsync)
            install(
                [(mark.path, self.index_path)],
                directory=self.directory,
                fsync=self.fsync,
                replaces_index=self.index_path,
                temporaries=(mark,),
            )
        except BaseException:
            mark.discard()
            raise

    # -- cleaning up ---------------------------------------------------------------------
    def _remove_placed(self) -> None:
        for placed in reversed(self.placed):
            try:
                if self.store is not None:
                    self.store.delete(resolve(placed)[1])
                else:
                    _remove_if_present(placed)
            except OSError:
                pass  # on an object store, the claim left behind marks it (S-OS-5)
        self.placed = []

    def _keep_mark(self) -> None:
        if self.claim is not None:
            self.claim.abandon()  # left for the next save's cleaning (S-OS-5)
            self.claim = None
        if self.mark is not None:
            self.mark.close()  # unlocked, so the next save's cleaner takes it as stale
            self.mark = None

    def _discard_mark(self) -> None:
        if self.claim is not None:
            claim, self.claim = self.claim, None
            try:
                claim.release()
            except OSError:
                pass  # a claim that stays is stale from now on (S-OS-5)
        if self.mark is not None:
            self.mark.discard()
            self.mark = None

    def _leave_mark(self) -> None:
        if self.store is not None:
            return  # the root's claim stays until the root decides (S-OS-2)
        if self.placed:
            try:
                TemporaryFile(temporary_name(self.index_path)).close()
            except OSError:
                pass


def _part_bytes(part: Part) -> int:
    """The bytes of array data a part writes (other values count as nothing)."""
    total = 0
    for _, value, block in part.items:
        data = value if block is None else value.local_block(part.device)
        total += getattr(data, "nbytes", 0)
    return total


def _add(writer: DataFileWriter, item: Item, device: int | None) -> None:
    """One entry of a part: a whole value, or one block of a sharded value."""
    key, value, block = item
    if block is None:
        writer.add(key, value)
        return
    assert device is not None  # blocks belong to device parts (plan_parts)
    data = value.local_block(device)
    if block.box is None:  # a replicated value, stored whole
        writer.add(key, data)
    else:
        writer.add_slice(key, tuple(value.shape), block.box, data)


def _remove_if_present(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def graph_tensor(graph_bytes: bytes) -> np.ndarray:
    """The object graph as the scalar string tensor saved under its key (rule O-GR-5)."""
    return np.array(graph_bytes, dtype=object)

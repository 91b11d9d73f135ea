"""Committing a bundle to an object store, which has no rename (rules S-OS-*).

::

    a save of P in s3://bucket/run/
    0. clean: stale claims in .dtckpt-claims/, with the data objects they left   (S-OS-5)
    1. claim P:   create_if_absent(.dtckpt-claims/P)  a second writer of P stops here (S-OS-2)
       remove an old P.index                          no index describes what follows
    2. data:      P.data-k-of-K under their final names, multipart, parts in parallel (S-OS-1)
    3. commit:    create_if_absent(P.index)           the checkpoint exists from here (S-OS-3)
    4. release:   delete .dtckpt-claims/P
    5. state:     checkpoint replaced if unchanged, re-read and retried on a conflict (S-OS-4)

Claims live under their own key prefix, ``DIR/.dtckpt-claims/``, so that the
cleaning a save starts with lists the claims (a few, the saves under way or
interrupted), never the checkpoints of the directory; each claim records how
many data objects its save writes, so that their names need no listing either.

A reader finds a checkpoint by its index, and the index is created only once
every data object is complete, by one request that fails if an index is
already there: no reader ever sees a half-written checkpoint, and two writers
of one prefix never both commit. An interrupted save leaves its claim; the
next save in the directory finds the claim stale and removes it with the data
objects of that prefix when no index was created (rule S-OS-5).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from ..errors import CheckpointError, ConditionalWriteConflict
from .base import Store

__all__ = [
    "CLAIMS",
    "CLAIM_LEASE",
    "STATE_ATTEMPTS",
    "PrefixClaim",
    "clean_stale_claims",
    "replace_with_retry",
]

#: Rule S-OS-2: the claim of a save of ``DIR/P`` under way is the object ``DIR/.dtckpt-claims/P``.
CLAIMS = ".dtckpt-claims"
#: Rule S-OS-5: seconds after which a claim from another host is taken as abandoned.
CLAIM_LEASE = 3600.0
#: Attempts at claiming a prefix whose claim changes under us (a stale one taken over or
#: released meanwhile) before the save gives up.
_CLAIM_ATTEMPTS = 4
#: Rule S-OS-4: attempts of a conditional replace of the state file before giving up.
STATE_ATTEMPTS = 16

_T = TypeVar("_T")
_HOST = socket.gethostname()
#: Tokens of the claims this process holds now (rule S-OS-5).
_LIVE: set[str] = set()
_LIVE_LOCK = threading.Lock()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _is_stale(data: bytes | None, now: float) -> bool:
    """Rule S-OS-5: whether the writer that made a claim is known to be gone."""
    if data is None:
        return True
    try:
        claim = json.loads(data)
        host, pid, token, made = claim["host"], int(claim["pid"]), claim["token"], claim["time"]
    except (ValueError, KeyError, TypeError):
        return True  # not a claim this code wrote whole: nobody holds it
    if host == _HOST:
        if pid == os.getpid():
            with _LIVE_LOCK:
                return token not in _LIVE
        return not _pid_alive(pid)
    return bool(now - float(made) > CLAIM_LEASE)


def _data_names(prefix: str, claim: bytes | None) -> list[str]:
    """The data objects a claim's save writes: ``P.data-NNNNN-of-KKKKK`` (TensorFlow's names,
    as ``format.naming`` makes them), ``K`` recorded in the claim; none if it has no count."""
    try:
        shards = int(json.loads(claim or b"")["shards"])
    except (ValueError, KeyError, TypeError):
        return []
    return [f"{prefix}.data-{i:05d}-of-{shards:05d}" for i in range(max(0, shards))]


class PrefixClaim:
    """The claim of one prefix by one save that writes ``shards`` data objects (S-OS-2)."""

    def __init__(self, store: Store, prefix: str, *, shards: int = 1) -> None:
        self.store = store
        self.prefix = prefix
        self.shards = shards
        base = prefix.rstrip("/").rpartition("/")[2]
        self.key = store.join(store.join(store.parent(prefix), CLAIMS), base)
        self.token = secrets.token_hex(16)
        self.held = False

    def _content(self) -> bytes:
        claim = {
            "host": _HOST,
            "pid": os.getpid(),
            "token": self.token,
            "time": time.time(),
            "shards": self.shards,
        }
        return json.dumps(claim).encode()

    def acquire(self) -> None:
        """Claim the prefix; :class:`ConditionalWriteConflict` if a live writer holds it.

        A stale claim (its writer gone, S-OS-5) is taken over by a conditional
        replace, so of two writers taking over the same stale claim one wins; the
        data objects the stale claim's save wrote go before this save writes its own.
        """
        with _LIVE_LOCK:
            _LIVE.add(self.token)
        try:
            self._claim()
        except BaseException:
            with _LIVE_LOCK:
                _LIVE.discard(self.token)
            raise
        self.held = True

    def _claim(self) -> None:
        data: bytes | None = None
        for attempt in range(_CLAIM_ATTEMPTS):
            if attempt:  # the claim exists: taken over only if stale
                data, version = self.store.read_versioned(self.key)
                if not _is_stale(data, time.time()):
                    raise ConditionalWriteConflict(
                        "another writer is saving this checkpoint prefix now (its claim "
                        f"{self.store.url(self.key)} is live): one writer per prefix",
                        path=self.store.url(self.key),
                    )
            try:
                if attempt:
                    self.store.replace_if_unchanged(self.key, self._content(), version)
                else:
                    self.store.create_if_absent(self.key, self._content())
            except ConditionalWriteConflict:
                if attempt + 1 == _CLAIM_ATTEMPTS:
                    raise
                continue  # it changed meanwhile (released, or taken over): look again
            break
        if data is not None and not self.store.exists(self.prefix + ".index"):
            for name in _data_names(self.prefix, data):  # the stale save's data objects
                self.store.delete(name)

    def release(self) -> None:
        """Delete the claim (best effort on a failure path: a claim left is stale, S-OS-5)."""
        try:
            if self.held:
                self.store.delete(self.key)
        finally:
            self.held = False
            with _LIVE_LOCK:
                _LIVE.discard(self.token)

    def abandon(self) -> None:
        """Forget the claim without deleting it: the next save will find it stale."""
        self.held = False
        with _LIVE_LOCK:
            _LIVE.discard(self.token)


def clean_stale_claims(store: Store, directory: str) -> list[str]:
    """Rule S-OS-5: remove the stale claims of ``directory`` and, for each prefix claimed
    that has no index, the data objects its save wrote. Lists the claims only, never the
    directory's checkpoints; returns the keys removed."""
    claims = store.join(directory, CLAIMS)
    now = time.time()
    removed: list[str] = []
    for name in store.list(claims):
        key = store.join(claims, name)
        data, version = store.read_versioned(key)
        if data is None or not _is_stale(data, now):
            continue
        prefix = store.join(directory, name)
        # Re-claim it first: a writer that took the prefix over meanwhile owns its data
        # objects, and then this conditional replace fails and nothing is removed.
        takeover = PrefixClaim(store, prefix, shards=0)
        with _LIVE_LOCK:
            _LIVE.add(takeover.token)  # live while the leftovers go (another cleaner waits)
        try:
            try:
                store.replace_if_unchanged(key, takeover._content(), version)
            except ConditionalWriteConflict:
                continue
            if not store.exists(prefix + ".index"):
                for leftover in _data_names(prefix, data):
                    if store.exists(leftover):
                        store.delete(leftover)
                        removed.append(leftover)
                # A data object still being uploaded when its writer died is no object
                # yet: its stored parts go too (a store without uploads has none).
                abort_uploads = getattr(store, "abort_uploads", None)
                if abort_uploads is not None:
                    abort_uploads(prefix + ".data-")
            store.delete(key)
            removed.append(key)
        finally:
            with _LIVE_LOCK:
                _LIVE.discard(takeover.token)
    return removed


def replace_with_retry(
    store: Store,
    key: str,
    update: Callable[[bytes | None], bytes],
    *,
    attempts: int = STATE_ATTEMPTS,
) -> bytes:
    """Rule S-OS-4: read ``key``, write ``update(what was read)`` only if ``key`` did not
    change meanwhile; on a conflict read again and retry, at most ``attempts`` times.

    Two writers that both update through this function never lose each other's update:
    the second to write re-reads the first's. Returns what was written.
    """
    for attempt in range(attempts):
        data, version = store.read_versioned(key)
        new = update(data)
        try:
            store.replace_if_unchanged(key, new, version)
            return new
        except ConditionalWriteConflict:
            if attempt + 1 == attempts:
                raise
            time.sleep(min(0.5, 0.01 * 2**attempt) * (0.5 + secrets.randbelow(100) / 100))
    raise CheckpointError("unreachable")  # pragma: no cover - the loop returns or raises


class PlacedObject:
    """A data object committed under its final name before its index exists (S-OS-1):
    what a sealed data file is on an object store. ``discard`` deletes it."""

    def __init__(self, store: Store, key: str, path: str) -> None:
        self.store = store
        self.key = key
        self.path = path

    def sync(self, fsync: bool) -> None:
        pass  # complete once committed: the store holds it durably

    def close(self) -> None:
        pass

    def discard(self) -> None:
        try:
            self.store.delete(self.key)
        except CheckpointError:
            pass  # left for the next save's cleaning (S-OS-5)


__all__ += ["PlacedObject"]

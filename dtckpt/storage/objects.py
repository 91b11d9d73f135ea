"""Committing a bundle to an object store, which has no rename (rules S-OS-*).

::

    a save of P in s3://bucket/run/
    0. clean: stale claims of the directory, with the data objects they left  (S-OS-5)
    1. claim P:   create_if_absent(P.dtckpt-claim)    a second writer of P stops here (S-OS-2)
       remove an old P.index                          no index describes what follows
    2. data:      P.data-k-of-K under their final names, multipart, parts in parallel (S-OS-1)
    3. commit:    create_if_absent(P.index)           the checkpoint exists from here (S-OS-3)
    4. release:   delete P.dtckpt-claim
    5. state:     checkpoint replaced if unchanged, re-read and retried on a conflict (S-OS-4)

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
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from ..errors import CheckpointError, ConditionalWriteConflict
from .base import Store

__all__ = [
    "CLAIM_SUFFIX",
    "CLAIM_LEASE",
    "STATE_ATTEMPTS",
    "PrefixClaim",
    "clean_stale_claims",
    "replace_with_retry",
    "delete_checkpoint",
]

#: Rule S-OS-2: the object that marks a save of ``P`` under way: ``P.dtckpt-claim``.
CLAIM_SUFFIX = ".dtckpt-claim"
#: Rule S-OS-5: seconds after which a claim from another host is taken as abandoned.
CLAIM_LEASE = 3600.0
#: Rule S-OS-4: attempts of a conditional replace of the state file before giving up.
STATE_ATTEMPTS = 16

_DATA = re.compile(r"(.+)\.data-\d{5,}-of-\d{5,}")
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


class PrefixClaim:
    """The claim of one prefix by one save (rule S-OS-2)."""

    def __init__(self, store: Store, prefix: str) -> None:
        self.store = store
        self.key = prefix + CLAIM_SUFFIX
        self.token = secrets.token_hex(16)
        self.held = False

    def _content(self) -> bytes:
        claim = {"host": _HOST, "pid": os.getpid(), "token": self.token, "time": time.time()}
        return json.dumps(claim).encode()

    def acquire(self) -> None:
        """Claim the prefix; :class:`ConditionalWriteConflict` if a live writer holds it.

        A stale claim (its writer gone, S-OS-5) is taken over by a conditional
        replace, so of two writers taking over the same stale claim one wins.
        """
        with _LIVE_LOCK:
            _LIVE.add(self.token)
        try:
            try:
                self.store.create_if_absent(self.key, self._content())
            except ConditionalWriteConflict:
                data, version = self.store.read_versioned(self.key)
                if not _is_stale(data, time.time()):
                    raise ConditionalWriteConflict(
                        "another writer is saving this checkpoint prefix now (its claim "
                        f"{self.store.url(self.key)} is live): one writer per prefix",
                        path=self.store.url(self.key),
                    ) from None
                self.store.replace_if_unchanged(self.key, self._content(), version)
        except BaseException:
            with _LIVE_LOCK:
                _LIVE.discard(self.token)
            raise
        self.held = True

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
    that has no index, its data objects. One listing; returns the keys removed."""
    names = store.list(directory)
    present = set(names)
    data_of: dict[str, list[str]] = {}
    for name in names:
        found = _DATA.fullmatch(name)
        if found is not None:
            data_of.setdefault(found.group(1), []).append(name)
    now = time.time()
    removed: list[str] = []
    for name in names:
        if not name.endswith(CLAIM_SUFFIX):
            continue
        key = store.join(directory, name)
        data, version = store.read_versioned(key)
        if data is None or not _is_stale(data, now):
            continue
        prefix = name[: -len(CLAIM_SUFFIX)]
        # Re-claim it first: a writer that took the prefix over meanwhile owns its data
        # objects, and then this conditional replace fails and nothing is removed.
        takeover = PrefixClaim(store, store.join(directory, prefix))
        with _LIVE_LOCK:
            _LIVE.add(takeover.token)  # live while the leftovers go (another cleaner waits)
        try:
            try:
                store.replace_if_unchanged(key, takeover._content(), version)
            except ConditionalWriteConflict:
                continue
            if prefix + ".index" not in present:
                for other in data_of.get(prefix, []):
                    store.delete(store.join(directory, other))
                    removed.append(store.join(directory, other))
            store.delete(key)
            removed.append(key)
        finally:
            with _LIVE_LOCK:
                _LIVE.discard(takeover.token)
    return removed


def delete_checkpoint(store: Store, directory: str, names: list[str]) -> None:
    """Rule S-OS-6: delete a checkpoint's objects, its index first, then its data."""
    for name in sorted(names, key=lambda n: not n.endswith(".index")):
        store.delete(store.join(directory, name))


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

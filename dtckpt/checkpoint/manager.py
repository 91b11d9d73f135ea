"""``CheckpointManager``: keep the newest checkpoints of one directory (rules C-MG-*).

::

    directory/
      checkpoint                     state: managed prefixes oldest first, their
                                     timestamps, last_preserved_timestamp (C-MG-6)
      ckpt-7.index                   \\  one checkpoint; the manager deletes exactly
      ckpt-7.data-00000-of-00001     /   these two kinds of file (C-MG-7, C-MG-8)
      ckpt-8.index
      ckpt-8.data-00000-of-00001

``save()`` writes ``<directory>/<checkpoint_name>-N`` through the checkpoint,
then (once the bundle is complete, in the background for async writes) records
it, rewrites the state file, deletes the oldest checkpoints beyond
``max_to_keep`` and rewrites the state file again. Source:
``tensorflow/python/checkpoint/checkpoint_management.py`` (``CheckpointManager``,
TF 2.21).

All of it runs under the directory lock (rule S-LK-1). The state file is
replaced (and fsynced) before anything is deleted (rule S-MG-1), and the
manager deletes only files it can show are checkpoint files of its own
directory: regular files named ``PREFIX.index`` or
``PREFIX.data-NNNNN-of-NNNNN`` whose real location is inside it, whatever
paths the state file holds (rule S-MG-2).

Only one manager should be active in a directory at a time (rule C-MG-10):
each manager holds the list of checkpoints in memory and writes it whole
after every save, so two managers overwrite each other's lists and may delete
each other's checkpoints. The lock still keeps every checkpoint and the state
file whole, and the state file names the checkpoint of the last save to
finish (rule S-LK-2).

In an object store (a URL directory) there is no lock: the state file is
replaced only if unchanged since it was read, and merged with what another
manager recorded meanwhile (rule S-OS-4), and a checkpoint's index is deleted
before its data (rule S-OS-6).
"""

from __future__ import annotations

import collections
import contextlib
import functools
import logging
import os
import re
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..comm import world
from ..comm.agree import run_on_root
from ..errors import NotFoundError
from ..storage.dirlock import directory_lock
from ..storage.urls import is_url, resolve
from .checkpoint import Checkpoint
from .options import COLLECTIVE_TIMEOUT, CheckpointOptions
from .state import get_checkpoint_state, merge_into_state, update_checkpoint_state

__all__ = ["CheckpointManager"]

_LOG = logging.getLogger("dtckpt")

SECONDS_PER_HOUR = 3600.0  # rule C-MG-7
INDEX_SUFFIX = ".index"  # rule C-MG-8
#: Rule C-MG-8: a checkpoint's files; ASCII digits only, the prefix taken literally (S-MG-2).
_CHECKPOINT_FILE = re.compile(r"(.+)(?:\.index|\.data-[0-9]{5}-of-[0-9]{5})", re.DOTALL)
RECOVERY_CLOCK_MARGIN = 1.0  # rule C-MG-1: a fresh manager starts one second in the past
RESUME_ATTEMPTS = 5  # rule C-MG-9: latest checkpoints tried when another writer prunes them


@dataclass(frozen=True)
class _Bookkeeping:
    """A manager's list of checkpoints after a save, as the root sends it to the others."""

    checkpoints: list[tuple[str, tuple[str, float]]]  # canonical key -> (path, timestamp)
    latest: str | None
    last_preserved_timestamp: float


def _numpy_value(value: Any) -> Any:
    """A step counter or checkpoint number as a Python scalar (``_evaluate`` in TF)."""
    if hasattr(value, "numpy"):
        value = value.numpy()
    return np.asarray(value).item()


def _checkpoint_number(value: Any) -> int:
    """Rule C-MG-4: an int is used as is; a variable or array is read, then made an int."""
    if isinstance(value, (int, np.integer)):
        return int(value)
    return int(_numpy_value(value))


def _checkpoint_files(directory: str) -> dict[str, list[str]]:
    """``{prefix: [its .index, then its data files in order]}`` from one listing."""
    try:
        if is_url(directory):
            store, key = resolve(directory)
            names = store.list(key)
        else:
            names = os.listdir(directory)
    except OSError:
        return {}
    found: dict[str, list[str]] = {}
    for name in sorted(names):
        match = _CHECKPOINT_FILE.fullmatch(name)
        if match is not None:
            found.setdefault(match.group(1), []).append(name)
    for group in found.values():
        group.sort(key=lambda name: not name.endswith(INDEX_SUFFIX))  # stable: index first
    return found


class CheckpointManager:
    """Saves numbered checkpoints in ``directory`` and deletes old ones, like
    ``tf.train.CheckpointManager``.

    ``max_to_keep`` checkpoints stay in the active set, oldest deleted first;
    ``None`` keeps all (rule C-MG-2). With ``keep_checkpoint_every_n_hours`` a
    checkpoint leaving the active set is kept on disk when it is at least that
    many hours newer than the last one kept that way (rule C-MG-7). With
    ``checkpoint_interval`` (which needs ``step_counter``), ``save`` skips
    steps closer than the interval to the last saved one (rule C-MG-3);
    ``last_checkpoint_step`` (also in TF 2.21) says which step that was.
    ``init_fn`` is called by ``restore_or_initialize`` when there is nothing
    to restore (rule C-MG-9). A manager created over a directory that already
    has a state file carries on from it (rule C-MG-1). Only one manager may be
    active per directory (rule C-MG-10).
    """

    def __init__(
        self,
        checkpoint: Checkpoint,
        directory: str | os.PathLike[str],
        max_to_keep: int | None,
        keep_checkpoint_every_n_hours: float | None = None,
        checkpoint_name: str = "ckpt",
        step_counter: Any = None,
        checkpoint_interval: int | None = None,
        init_fn: Callable[[], Any] | None = None,
        last_checkpoint_step: int | None = None,
    ) -> None:
        if max_to_keep is not None and max_to_keep <= 0:
            raise ValueError(
                f"Expected a positive integer or `None` for `max_to_keep`, got {max_to_keep}."
            )
        if checkpoint_interval is not None and step_counter is None:
            raise ValueError(
                "`step_counter` should be passed if `checkpoint_interval` is not None."
            )
        self._checkpoint = checkpoint
        self._max_to_keep = max_to_keep
        self._keep_checkpoint_every_n_hours = keep_checkpoint_every_n_hours
        self._directory = os.fspath(directory)
        self._prefix = os.path.join(self._directory, checkpoint_name)
        self._step_counter = step_counter
        self._checkpoint_interval = checkpoint_interval
        self._last_checkpoint_step = last_checkpoint_step
        self._init_fn = init_fn
        self._lock = threading.Lock()
        # Canonical path (rule S-MG-3) -> (the path as recorded, its timestamp), oldest first.
        self._maybe_delete: collections.OrderedDict[str, tuple[str, float]] = (
            collections.OrderedDict()
        )
        self._real_dirs: dict[str, str] = {}
        self._in_store = is_url(self._directory)
        # Checkpoints this manager deleted or stopped listing: a merge of the state file
        # never brings them back (rule S-OS-4).
        self._forgotten: set[str] = set()
        self._latest_checkpoint: str | None = None
        self._recover_state()

    def _recover_state(self) -> None:
        """Rule C-MG-1: carry on from the state file a previous manager left behind.

        With several clients the root reads it for all (rule P-RS-3).
        """
        directory = self._directory
        recovered = run_on_root(
            world(),
            lambda: get_checkpoint_state(directory),
            timeout=COLLECTIVE_TIMEOUT,
            what=f"CheckpointManager({directory!r})",
        )
        now = time.time()
        if recovered is None:
            # Starting slightly in the past keeps a manager re-created at once from
            # preserving (rule C-MG-7) its first checkpoint on that account alone.
            self._last_preserved_timestamp = now - RECOVERY_CLOCK_MARGIN
            return
        self._latest_checkpoint = recovered.model_checkpoint_path
        self._last_preserved_timestamp = recovered.last_preserved_timestamp
        if now < self._last_preserved_timestamp:
            _LOG.warning(
                "time.time() returned a value %f seconds behind the last preserved "
                "checkpoint timestamp.",
                self._last_preserved_timestamp - now,
            )
            self._last_preserved_timestamp = now
        paths = recovered.all_model_checkpoint_paths
        stamps = recovered.all_model_checkpoint_timestamps or [
            self._last_preserved_timestamp
        ] * len(paths)
        for path, stamp in zip(paths, stamps, strict=False):
            # Extra paths without timestamps are dropped (TF zips the lists). After the
            # clock went back, future timestamps are capped at now, which is not newer
            # than the clamped last_preserved_timestamp: those checkpoints are left alone.
            stamp = min(stamp, now)
            if stamp > self._last_preserved_timestamp:
                # Two spellings of one checkpoint are one entry, at the later place (S-MG-3).
                key = self._canonical(path)
                self._maybe_delete.pop(key, None)
                self._maybe_delete[key] = (path, stamp)

    # -- properties --------------------------------------------------------------
    @property
    def checkpoint(self) -> Checkpoint:
        """The ``Checkpoint`` this manager saves."""
        return self._checkpoint

    @property
    def directory(self) -> str:
        return self._directory

    @property
    def checkpoint_interval(self) -> int | None:
        return self._checkpoint_interval

    @property
    def latest_checkpoint(self) -> str | None:
        """The newest checkpoint prefix, or ``None``; set once its files are complete."""
        with self._lock:
            return self._latest_checkpoint

    @property
    def checkpoints(self) -> list[str]:
        """The managed checkpoint prefixes, oldest first (rule C-MG-6).

        Checkpoints kept by ``keep_checkpoint_every_n_hours`` are not listed.
        """
        with self._lock:
            return [path for path, _ in self._maybe_delete.values()]

    # -- saving ------------------------------------------------------------------
    def save(
        self,
        checkpoint_number: Any = None,
        check_interval: bool = True,
        options: CheckpointOptions | None = None,
    ) -> str | None:
        """Write a new checkpoint and manage it; its path, or ``None`` when skipped.

        ``checkpoint_number`` (an int or an integer variable) names the file;
        by default ``save_counter`` does. ``save_counter`` is incremented
        either way (rule C-MG-4). With ``checkpoint_interval`` set, a step
        already saved is never saved again, and with ``check_interval`` a step
        less than the interval after the last saved one is skipped (rule
        C-MG-3). The state file is updated and old checkpoints deleted only
        after the new checkpoint's files are complete (rule C-MG-5).
        """
        if self._checkpoint_interval is not None:
            step = _numpy_value(self._step_counter)
            last = self._last_checkpoint_step
            if last is not None:
                if step == last:
                    return None
                if check_interval and step < last + self._checkpoint_interval:
                    return None
            self._last_checkpoint_step = step
        counter = self._checkpoint.save_counter
        counter.assign_add(1)
        number = _checkpoint_number(counter if checkpoint_number is None else checkpoint_number)
        path = f"{self._prefix}-{number}"
        options = options or CheckpointOptions()
        after = functools.partial(self._record_and_sweep, fsync=options.experimental_fsync)
        return self._checkpoint._write(path, options, after, self._adopt)

    def _record_and_sweep(self, save_path: str, fsync: bool = True) -> _Bookkeeping:
        """Rules C-MG-5, S-MG-1: runs once ``save_path``'s bundle is in place (in the
        writer thread for an async save), still under the directory lock; on the root
        only when several clients save, which :meth:`_adopt` what it returns (P-SV-2)."""
        # Already held by the save when the checkpoint sits directly in the directory;
        # taken here when ``checkpoint_name`` names a subdirectory.
        held = (
            contextlib.nullcontext()
            if self._in_store
            else directory_lock(self._directory or os.curdir)
        )
        with held, self._lock:
            self._real_dirs.clear()  # links may have changed since the last save
            stamp = time.time()
            # A re-saved path goes to the back of the queue with its new time, whatever
            # spelling the state file gave it (rule S-MG-3).
            key = self._canonical(save_path)
            self._maybe_delete.pop(key, None)
            self._maybe_delete[key] = (save_path, stamp)
            self._latest_checkpoint = save_path
            # The state names the new checkpoint, durably, before anything is deleted,
            # so an interruption during the sweep still leaves it findable.
            self._record_state(fsync)
            self._sweep()
            self._record_state(fsync)
            return _Bookkeeping(
                list(self._maybe_delete.items()),
                self._latest_checkpoint,
                self._last_preserved_timestamp,
            )

    def _adopt(self, bookkeeping: _Bookkeeping) -> None:
        """Take on the root's list of checkpoints after a save (the other clients)."""
        with self._lock:
            self._maybe_delete = collections.OrderedDict(bookkeeping.checkpoints)
            self._latest_checkpoint = bookkeeping.latest
            self._last_preserved_timestamp = bookkeeping.last_preserved_timestamp

    def _record_state(self, fsync: bool = True) -> None:
        """Rule C-MG-6: the state file lists the active set with its timestamps."""
        assert self._latest_checkpoint is not None
        paths = [path for path, _ in self._maybe_delete.values()]
        stamps = [stamp for _, stamp in self._maybe_delete.values()]
        if self._in_store:
            merge_into_state(
                self._directory,
                self._latest_checkpoint,
                paths,
                stamps,
                self._last_preserved_timestamp,
                self._forgotten,
            )
            return
        update_checkpoint_state(
            self._directory,
            self._latest_checkpoint,
            paths,
            stamps,
            self._last_preserved_timestamp,
            save_relative_paths=True,
            fsync=fsync,
        )

    def _sweep(self) -> None:
        """Rule C-MG-7: drop the oldest checkpoints beyond ``max_to_keep``."""
        if not self._max_to_keep:
            return
        hours = self._keep_checkpoint_every_n_hours
        doomed = []
        while len(self._maybe_delete) > self._max_to_keep:
            key, (path, stamp) = self._maybe_delete.popitem(last=False)
            self._forgotten.add(path)
            if hours and stamp - hours * SECONDS_PER_HOUR >= self._last_preserved_timestamp:
                # Kept on disk but no longer listed, so the state file stays short.
                self._last_preserved_timestamp = stamp
                continue
            doomed.append((key, path))
        kept = set(self._maybe_delete)
        if self._latest_checkpoint is not None:
            kept.add(self._canonical(self._latest_checkpoint))
        # Rule S-MG-3: a checkpoint still kept is never deleted under another spelling.
        self._delete_checkpoints([path for key, path in doomed if key not in kept])

    def _delete_checkpoints(self, prefixes: list[str]) -> None:
        """Rules C-MG-8, S-MG-2: remove each ``prefix.index`` and ``prefix.data-NNNNN-of-NNNNN``,
        regular files only, and only inside the manager's directory.

        Each directory is listed once for all the prefixes in it (rule S-MG-3), so deleting
        thousands of checkpoints costs one listing, not one per checkpoint.
        """
        by_parent: dict[str, list[str]] = {}
        for prefix in prefixes:
            parent = self._resolved_parent(prefix)
            base = os.path.basename(prefix)
            if parent is None or base in ("", os.curdir, os.pardir):
                _LOG.warning(
                    "Not deleting checkpoint %r: it is outside the manager's directory %r.",
                    prefix,
                    self._directory,
                )
                continue
            by_parent.setdefault(parent, []).append(base)
        for parent, bases in by_parent.items():
            files = _checkpoint_files(parent)
            for base in bases:
                # The index goes first: without it the prefix is absent, never half there
                # (rules C-MG-8, S-OS-6).
                for name in files.pop(base, []):
                    if self._in_store:
                        store, key = resolve(parent)
                        store.delete(store.join(key, name))
                    else:
                        self._delete_file(os.path.join(parent, name))

    @staticmethod
    def _delete_file(path: str) -> None:
        try:
            mode = os.lstat(path).st_mode
            if not stat.S_ISREG(mode):  # a link or a directory is not provably ours
                _LOG.warning("Not deleting %r: it is not a regular file.", path)
                return
            os.remove(path)
        except FileNotFoundError:
            _LOG.warning(
                "Hit FileNotFoundError when deleting %r, possibly because another "
                "process/thread is also deleting/moving the same file",
                path,
            )

    def _real_dir(self, directory: str) -> str:
        """``realpath`` of a directory, once per spelling (thousands of prefixes share one)."""
        real = self._real_dirs.get(directory)
        if real is None:
            real = self._real_dirs[directory] = os.path.realpath(directory or os.curdir)
        return real

    def _canonical(self, prefix: str) -> str:
        """Rule S-MG-3: one name for every spelling of a checkpoint (``./ckpt-1``,
        ``sub/../ckpt-1``, a path through a linked directory): the real path of its
        directory joined with its last component. A URL is its own name."""
        if self._in_store:
            return prefix
        try:
            base = os.path.basename(prefix)
            if base in ("", os.curdir, os.pardir):
                return os.path.realpath(prefix)
            return os.path.join(self._real_dir(os.path.dirname(prefix)), base)
        except ValueError:  # a NUL byte: no file has this name
            return prefix

    def _resolved_parent(self, prefix: str) -> str | None:
        """The real directory of ``prefix``'s files if it is the manager's directory or
        below it (after ``..`` and symbolic links), else ``None``."""
        if self._in_store:
            parent = prefix.rstrip("/").rpartition("/")[0]
            root = self._directory.rstrip("/")
            return parent if parent == root or parent.startswith(root + "/") else None
        try:
            root = self._real_dir(self._directory)
            parent = self._real_dir(os.path.dirname(prefix))
            inside = os.path.commonpath([root, parent]) == root
        except ValueError:  # a NUL byte in the path, or different drives on Windows
            return None
        return parent if inside else None

    # -- restoring ---------------------------------------------------------------
    def restore_or_initialize(self) -> str | None:
        """Rule C-MG-9: restore the newest checkpoint and return its path, or else
        call ``init_fn`` and return ``None``.

        Unlike TensorFlow, a pending async save is waited for first, so a
        checkpoint still being written counts as the newest.
        """
        self.sync()
        latest = self.latest_checkpoint
        for attempt in range(1, RESUME_ATTEMPTS + 1):
            if latest is None:
                break
            try:
                self._checkpoint.restore(latest)
            except NotFoundError:
                # Another writer in this directory pruned it after the state file was
                # read (C-MG-10). The restore changed nothing (rule F-RD-9): carry on from
                # whatever the state file names now, if that is another checkpoint.
                newer = self._state_latest()
                if attempt == RESUME_ATTEMPTS or newer is None or newer == latest:
                    raise
                _LOG.warning("%s was deleted before it could be read; restoring %s", latest, newer)
                with self._lock:
                    self._latest_checkpoint = latest = newer
                continue
            if self._checkpoint_interval is not None:
                self._last_checkpoint_step = _numpy_value(self._step_counter)
            return latest
        if self._init_fn is not None:
            self._init_fn()
            _LOG.info("Customized initialization is done through the passed `init_fn`.")
        return None

    def _state_latest(self) -> str | None:
        """The newest checkpoint the state file names now (read by the root for all)."""
        directory = self._directory
        state = run_on_root(
            world(),
            lambda: get_checkpoint_state(directory),
            timeout=COLLECTIVE_TIMEOUT,
            what=f"CheckpointManager({directory!r}).restore_or_initialize",
        )
        return None if state is None else str(state.model_checkpoint_path)

    def sync(self) -> None:
        """Wait for a pending async save (and its bookkeeping); re-raise its error."""
        self._checkpoint.sync()

"""Saves whose every checkpoint can be checked on its own, and faults to break them with.

A :class:`Workload` saves one model again and again in one of four ways (``MODES``):
``plain`` (``Checkpoint.save``), ``manager`` (``CheckpointManager.save``, ``max_to_keep=3``),
``dtensor`` (``DTensorCheckpoint.save`` on a 2x4 mesh) and ``async``
(``Checkpoint.save`` with ``enable_async``). The values saved as checkpoint ``N`` by writer
``W`` are all derived from one tag, ``W * TAG_WRITER + N``, so :meth:`Workload.check` can tell
from the restored values alone which save wrote a checkpoint, and whether all of its files come
from that one save.

:func:`inject` makes the k-th ``os.replace``, ``os.fsync`` or file ``write`` raise
``OSError(ENOSPC)``, for the fault-injection tests and the long run.
"""

from __future__ import annotations

import errno
import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

import dtckpt
from dtckpt import dtensor as dd
from dtckpt.storage.durable import is_temporary_name
from dtckpt.format.naming import DATA_SUFFIX_RE

verify_bundle: Callable[[str], Any] | None
try:
    from dtckpt.format.verify import verify_bundle
except ImportError:  # pragma: no cover - the verifier is newer than these checks
    verify_bundle = None

MODES = ("plain", "manager", "dtensor", "async")
FAULT_OPS = ("replace", "fsync", "write")
TAG_WRITER = 1_000_000
MAX_TO_KEEP = 3
PREFIX = "ckpt"


def tag_of(writer: int, number: int) -> int:
    return writer * TAG_WRITER + number


def number_of(prefix: str) -> int:
    """``N`` of a ``.../ckpt-N`` prefix."""
    match = re.fullmatch(rf"{PREFIX}-(\d+)", os.path.basename(prefix))
    if match is None:
        raise AssertionError(f"not a numbered checkpoint: {prefix!r}")
    return int(match.group(1))


class Workload:
    """One model saved in one ``mode`` into ``directory`` by writer number ``writer``.

    ``rows`` sets the size: about ``rows * 1 KiB`` of float32 values plus a small
    int64 tensor and a string.
    """

    def __init__(self, mode: str, directory: str, *, writer: int = 0, rows: int = 512) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        self.mode, self.directory, self.writer, self.rows = mode, directory, writer, rows
        self.ckpt: dtckpt.Checkpoint
        self.model: Any
        self.ckpt, self.model = self._build(fill=0)
        self.manager = (
            dtckpt.CheckpointManager(self.ckpt, directory, max_to_keep=MAX_TO_KEEP)
            if mode == "manager"
            else None
        )

    # -- the model ---------------------------------------------------------------------
    def _build(self, fill: int) -> tuple[dtckpt.Checkpoint, Any]:
        model = dtckpt.Module(name="model")
        if self.mode == "dtensor":
            mesh = dd.create_mesh([("x", 2), ("y", 4)])
            model.w = dd.DVariable(self._dtensor_value(fill, ["x", "y"], mesh))
            model.v = dd.DVariable(self._dtensor_value(fill, ["y", dd.UNSHARDED], mesh))
            model.step = dtckpt.Variable(np.int64(fill), name="step")
            return dd.DTensorCheckpoint(mesh, model=model), model
        model.w = dtckpt.Variable(self._weights(fill), name="w")
        model.b = dtckpt.Variable(np.arange(64, dtype=np.int64) + fill, name="b")
        model.note = dtckpt.Variable(np.array(f"tag {fill}".encode(), dtype=object), name="note")
        model.step = dtckpt.Variable(np.int64(fill), name="step")
        return dtckpt.Checkpoint(model=model), model

    def _weights(self, tag: int) -> np.ndarray:
        base = np.arange(self.rows * 256, dtype=np.float32).reshape(self.rows, 256) % 251
        weights: np.ndarray = base + np.float32(tag % 4_000_000)
        return weights

    def _dtensor_value(self, tag: int, specs: list[str], mesh: dd.Mesh) -> dd.DTensor:
        layout = dd.Layout(specs, mesh)
        return dd.copy_to_mesh(self._weights(tag)[:, :128], layout)

    def set_values(self, number: int) -> None:
        """Give every variable the values of checkpoint ``number`` of this writer."""
        tag = tag_of(self.writer, number)
        model = self.model
        if self.mode == "dtensor":
            model.w.assign(self._weights(tag)[:, :128])
            model.v.assign(self._weights(tag)[:, :128])
        else:
            model.w.assign(self._weights(tag))
            model.b.assign(np.arange(64, dtype=np.int64) + tag)
            model.note.assign(np.array(f"tag {tag}".encode(), dtype=object))
        model.step.assign(np.int64(tag))

    # -- saving ------------------------------------------------------------------------
    @property
    def counter(self) -> int:
        return int(self.ckpt.save_counter.numpy())

    def resume(self) -> int:
        """Restore the newest checkpoint, if any; the save counter it leaves."""
        if self.manager is not None:
            self.manager.restore_or_initialize()
        else:
            latest = dtckpt.latest_checkpoint(self.directory)
            if latest is not None:
                self.ckpt.restore(latest).assert_consumed()
        return self.counter

    def save_next(self, **options: Any) -> str:
        """Save the next checkpoint with its own values; its path (the save may be pending)."""
        number = self.counter + 1
        self.set_values(number)
        opts = dtckpt.CheckpointOptions(enable_async=self.mode == "async", **options)
        if self.manager is not None:
            path = self.manager.save(options=opts)
        else:
            path = self.ckpt.save(os.path.join(self.directory, PREFIX), options=opts)
        assert path is not None and number_of(path) == number, (path, number)
        return path

    def sync(self) -> None:
        self.ckpt.sync()

    # -- checking ----------------------------------------------------------------------
    def check(self, prefix: str) -> tuple[int, int]:
        """Verify every byte of ``prefix`` and restore it into fresh objects.

        Returns ``(writer, number)`` of the save that wrote it; raises if any file
        disagrees with another or with the number in the prefix.
        """
        verify(prefix)
        ckpt, model = self._build(fill=-1)
        ckpt.restore(prefix).assert_consumed()
        tag = int(model.step.numpy())
        writer, number = divmod(tag, TAG_WRITER)
        if number != number_of(prefix):
            raise AssertionError(f"{prefix}: holds the values of save {number}")
        if int(ckpt.save_counter.numpy()) != number:
            raise AssertionError(f"{prefix}: save_counter {int(ckpt.save_counter.numpy())}")
        expected = self._weights(tag)
        if self.mode == "dtensor":
            for name in ("w", "v"):
                if not np.array_equal(getattr(model, name).numpy(), expected[:, :128]):
                    raise AssertionError(f"{prefix}: {name} is not from save {tag}")
        else:
            same = np.array_equal(model.w.numpy(), expected) and np.array_equal(
                model.b.numpy(), np.arange(64, dtype=np.int64) + tag
            )
            if not same or model.note.numpy().item() != f"tag {tag}".encode():
                raise AssertionError(f"{prefix}: values are not all from save {tag}")
        return writer, number


def verify(prefix: str) -> None:
    """Check every checksum of the bundle at ``prefix``, and read every tensor."""
    if verify_bundle is not None:
        report = verify_bundle(prefix)
        if not report.ok:
            raise AssertionError(f"{prefix}: " + "; ".join(map(str, report.problems)))
    with dtckpt.load_checkpoint(prefix) as reader:
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)


def leftovers(directory: str) -> set[str]:
    """Temporaries (rule S-TP-1) in ``directory``: files, and ``*_temp`` directories."""
    found = set()
    for name in os.listdir(directory):
        if is_temporary_name(name) or (
            name.endswith("_temp") and os.path.isdir(os.path.join(directory, name))
        ):
            found.add(name)
    return found


def orphan_data_files(directory: str) -> set[str]:
    """Data files whose prefix has no index."""
    names = set(os.listdir(directory))
    orphans = set()
    for name in names:
        match = DATA_SUFFIX_RE.search(name)
        if match and name[: match.start()] + ".index" not in names:
            orphans.add(name)
    return orphans


# -- faults ----------------------------------------------------------------------------------


class FaultCounter:
    """Counts calls of one operation and fails the ``fail_at``-th (1-based; 0: never)."""

    def __init__(self, fail_at: int) -> None:
        self.fail_at, self.calls, self.fired = fail_at, 0, False
        self._lock = threading.Lock()

    def tick(self, what: str) -> None:
        with self._lock:
            self.calls += 1
            fire = self.calls == self.fail_at
        if fire:
            self.fired = True
            raise OSError(errno.ENOSPC, f"No space left on device (injected into {what})")


class _FailingFile:
    """A file object whose ``write`` consults a :class:`FaultCounter` first."""

    def __init__(self, file: Any, counter: FaultCounter) -> None:
        self._file, self._counter = file, counter

    def write(self, data: Any) -> int:
        self._counter.tick("write")
        written: int = self._file.write(data)
        return written

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)


@contextmanager
def inject(op: str, fail_at: int = 0) -> Iterator[FaultCounter]:
    """While active, the ``fail_at``-th call of ``op`` raises ``OSError(ENOSPC)``.

    ``op`` is ``"replace"`` (``os.replace``), ``"fsync"`` (``os.fsync``) or ``"write"``
    (``write`` on every file opened with ``os.fdopen``, which is how every temporary
    is written). With ``fail_at=0`` the calls are only counted.
    """
    counter = FaultCounter(fail_at)
    name = {"replace": "replace", "fsync": "fsync", "write": "fdopen"}[op]
    original: Callable[..., Any] = getattr(os, name)

    def patched(*args: Any, **kwargs: Any) -> Any:
        if op == "write":
            return _FailingFile(original(*args, **kwargs), counter)
        counter.tick(op)
        return original(*args, **kwargs)

    setattr(os, name, patched)
    try:
        yield counter
    finally:
        setattr(os, name, original)

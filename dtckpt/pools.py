"""Process-wide thread pools, created on first use (never at import time).

dtckpt overlaps work that releases the GIL: checksums beside reads and writes
(``checksum``), the devices' block reads and bundle writes of a DTensor
checkpoint (``io``), and asynchronous checkpoint writes (``async``, one
worker, so that background saves happen in the order they were made).

An asynchronous save is never lost at exit (rule S-AS-1): saves submitted with
:func:`submit_save` are waited for when the interpreter exits, before
``concurrent.futures`` stops accepting work, and a save that failed without
anyone collecting its error (:func:`collect`) is reported on the ``dtckpt``
logger. A pool asked for work while the interpreter is exiting (when new threads
can no longer start) runs it on the calling thread instead of refusing it.
"""

from __future__ import annotations

import concurrent.futures.thread as _futures_thread
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["pool", "in_pool_thread", "io_threads", "submit_save", "collect", "CORES"]

#: Cores this process may use.
CORES = max(1, os.cpu_count() or 1)

#: ``transfer`` runs object-store requests, which wait on the network, not on a core.
_SIZES = {"checksum": CORES, "io": max(2, min(8, CORES)), "async": 1, "transfer": 8}
_POOLS: dict[str, ThreadPoolExecutor] = {}
_LOCK = threading.Lock()
_PREFIX = "dtckpt-pool-"
_LOG = logging.getLogger("dtckpt")
_T = TypeVar("_T")

#: Asynchronous saves whose outcome nobody has collected yet.
_PENDING: set[Future[Any]] = set()
_EXIT_HOOK = False


def _interpreter_exiting() -> bool:
    return bool(getattr(_futures_thread, "_shutdown", False))


class _Pool(ThreadPoolExecutor):
    """A thread pool that, once the interpreter is exiting, runs new work inline."""

    def submit(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> Future[_T]:
        try:
            return super().submit(fn, *args, **kwargs)
        except RuntimeError:
            if not _interpreter_exiting():
                raise
        # "cannot schedule new futures after interpreter shutdown": a save still running
        # at exit (S-AS-1) finishes its work here rather than failing.
        future: Future[_T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the future, as a pool does
            future.set_exception(exc)
        return future


def io_threads() -> int:
    """How many threads the ``io`` pool runs at once (what a plan counts on)."""
    return _SIZES["io"]


def pool(name: str) -> ThreadPoolExecutor:
    """The shared pool ``name`` (``"checksum"``, ``"io"``, ``"async"`` or ``"transfer"``)."""
    existing = _POOLS.get(name)
    if existing is not None:
        return existing
    with _LOCK:
        if name not in _POOLS:
            _POOLS[name] = _Pool(max_workers=_SIZES[name], thread_name_prefix=f"{_PREFIX}{name}")
        return _POOLS[name]


def in_pool_thread() -> bool:
    """Whether the caller runs on a worker of one of these pools."""
    return threading.current_thread().name.startswith(_PREFIX)


def submit_save(job: Callable[[], None]) -> Future[None]:
    """Run ``job`` (an asynchronous save) on the ``async`` pool; it completes before the
    interpreter exits, and its error is reported then if nobody collected it (S-AS-1)."""
    _install_exit_hook()
    future = pool("async").submit(job)
    with _LOCK:
        _PENDING.add(future)
    return future


def collect(future: Future[_T]) -> _T:
    """The result of a save from :func:`submit_save`, waited for; its error is raised here,
    and so is not reported again at exit."""
    with _LOCK:
        _PENDING.discard(future)
    return future.result()


def _install_exit_hook() -> None:
    """Wait for pending saves at exit, before ``concurrent.futures`` refuses new work.

    ``threading`` calls its exit hooks in reverse order of registration, and
    ``concurrent.futures`` registered its own when it was imported (above), so this hook
    runs first, while the pools still accept the saves' own work (``io``, ``checksum``).
    """
    global _EXIT_HOOK
    with _LOCK:
        if _EXIT_HOOK:
            return
        _EXIT_HOOK = True
    register = getattr(threading, "_register_atexit", None)
    if register is None:  # pragma: no cover - Python < 3.9
        import atexit

        atexit.register(_finish_pending_saves)
        return
    try:
        register(_finish_pending_saves)
    except RuntimeError:  # already shutting down: the pools run work inline (_Pool)
        pass


def _finish_pending_saves() -> None:
    while True:
        with _LOCK:
            pending = list(_PENDING)
            _PENDING.clear()
        if not pending:
            return
        for future in pending:
            try:
                future.result()
            except BaseException as exc:  # noqa: BLE001 - reported, the process is exiting
                _LOG.error(
                    "An asynchronous checkpoint save failed: %s: %s", type(exc).__name__, exc
                )

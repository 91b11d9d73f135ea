"""Rank programs of ``test_collective_failures.py``: one client fails, every client hears of it.

Each program first saves a good checkpoint (``ckpt-1``), then breaks one client (the
*victim*) during the next save, and checks on every client what rules P-ER-2, P-SV-3 and
S-CR-1 promise: the same typed error naming the victim, ``checkpoint`` still naming
``ckpt-1``, which restores, no index of the failed save, and a clean directory once the
next save is done.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

import dtckpt
from dtckpt import dtensor as dd
from dtckpt import errors
from dtckpt.comm import world
from tests.dtensor.multiclient_model import build, check, mesh_for
from tests.stress.crash_workloads import leftovers, orphan_data_files

XY = [["x", 2], ["y", 4]]
SHORT = dtckpt.CheckpointOptions(experimental_collective_timeout=3.0)


@contextmanager
def patched(name: str, replacement: Callable[..., Any]) -> Iterator[None]:
    original = getattr(os, name)
    setattr(os, name, replacement(original))
    try:
        yield
    finally:
        setattr(os, name, original)


def _enospc(what: str) -> OSError:
    return OSError(errno.ENOSPC, f"No space left on device (injected into {what})")


def fault(kind: str) -> Callable[[], Any]:
    """A context in which this client's next save breaks in the way ``kind`` says."""

    def first_data_file(path: Any) -> bool:
        return isinstance(path, str) and ".data-" in path

    def write_fails(fdopen: Callable[..., Any]) -> Callable[..., Any]:
        def opened(fd: int, *args: Any, **kwargs: Any) -> Any:
            file = fdopen(fd, *args, **kwargs)

            class Failing:
                def write(self, data: Any) -> int:
                    raise _enospc("write")

                def __getattr__(self, name: str) -> Any:
                    return getattr(file, name)

            return Failing()

        return opened

    def fsync_fails(fsync: Callable[..., Any]) -> Callable[..., Any]:
        def failing(fd: int) -> None:
            raise _enospc("fsync")

        return failing

    def replace_fails(target_end: str) -> Callable[..., Any]:
        def wrap(replace: Callable[..., Any]) -> Callable[..., Any]:
            def failing(source: str, target: str) -> None:
                if str(target).endswith(target_end) or (
                    target_end == "data" and first_data_file(target)
                ):
                    raise _enospc(f"rename to {os.path.basename(target)}")
                replace(source, target)

            return failing

        return wrap

    def open_refused(open_: Callable[..., Any]) -> Callable[..., Any]:
        def refusing(path: Any, flags: int, *args: Any) -> int:
            if isinstance(path, str) and ".tempstate" in path and ".data-" in path:
                raise PermissionError(errno.EACCES, "Permission denied", path)
            return int(open_(path, flags, *args))

        return refusing

    table = {
        "write": lambda: patched("fdopen", write_fails),
        "fsync": lambda: patched("fsync", fsync_fails),
        "rename": lambda: patched("replace", replace_fails("data")),
        "index": lambda: patched("replace", replace_fails(".index")),
        "state": lambda: patched("replace", replace_fails("checkpoint")),
        "permission": lambda: patched("open", open_refused),
    }
    return table[kind]


EXPECTED = {
    "write": (errors.ResourceExhaustedError, errno.ENOSPC),
    "fsync": (errors.ResourceExhaustedError, errno.ENOSPC),
    "rename": (errors.ResourceExhaustedError, errno.ENOSPC),
    "index": (errors.ResourceExhaustedError, errno.ENOSPC),
    "state": (errors.ResourceExhaustedError, errno.ENOSPC),
    "permission": (errors.PermissionDeniedError, errno.EACCES),
    "value": (errors.InvalidArgumentError, None),
}


def one_client_fails(directory: str, kind: str, victim: int, use_async: bool = False) -> None:
    """``victim`` breaks in the save of ``ckpt-2``; every client checks the aftermath."""
    comm = world()
    mesh = mesh_for(XY, comm.size)
    model, _ = build(mesh, 1)
    if kind == "value":  # a string block that is not a string, on the victim only
        layout = dd.Layout(["x", dd.UNSHARDED], mesh)
        names = np.array([[f"s{i}".encode()] * 4 for i in range(8)], dtype=object)
        model.names = dd.DVariable(names, layout=layout)
    ckpt = dtckpt.Checkpoint(model=model)
    first = ckpt.save(f"{directory}/ckpt", options=SHORT)
    assert first == f"{directory}/ckpt-1"
    if kind == "value" and comm.rank == victim:
        model.names._dvalue.components[0][0, 0] = 12345  # dtckpt allows it; the writer refuses
    options = dtckpt.CheckpointOptions(
        experimental_collective_timeout=SHORT.experimental_collective_timeout,
        enable_async=use_async,
    )
    cls, code = EXPECTED[kind]
    raised: BaseException | None = None
    context = fault(kind)() if comm.rank == victim and kind != "value" else _nothing()
    with context:
        try:
            ckpt.save(f"{directory}/ckpt", options=options)
            ckpt.sync()
        except Exception as exc:  # noqa: BLE001 - checked just below
            raised = exc
    assert type(raised) is cls, repr(raised)
    assert raised.client == victim, str(raised)
    assert str(raised).startswith(f"client {victim}: "), str(raised)
    if code is not None:
        assert raised.errno == code, raised.errno
    committed = kind == "state"  # the index was in place when the state file failed
    assert dtckpt.latest_checkpoint(directory) == first
    assert os.path.exists(f"{directory}/ckpt-2.index") == committed
    if kind == "value":
        model.names._dvalue.components[0][0, 0] = b"s0"
    comm.barrier(timeout=60)  # every client has cleaned up after itself
    if not committed:
        assert leftovers(directory) == set(), leftovers(directory)
        assert orphan_data_files(directory) == set(), orphan_data_files(directory)
    for path, tag in ((first, 1), (f"{directory}/ckpt-2", 1)):
        if path == first or committed:
            fresh, _ = build(mesh, 0)
            dtckpt.Checkpoint(model=fresh).read(path).expect_partial()
            check(fresh, tag)
    third = ckpt.save(f"{directory}/ckpt", options=SHORT)
    assert dtckpt.latest_checkpoint(directory) == third == f"{directory}/ckpt-3"
    comm.barrier(timeout=60)
    assert leftovers(directory) == set() and orphan_data_files(directory) == set()


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def one_client_stalls(directory: str) -> None:
    """The last client sleeps past the deadline while writing: every client fails in time."""
    comm = world()
    mesh = mesh_for(XY, comm.size)
    model, _ = build(mesh, 1)
    ckpt = dtckpt.Checkpoint(model=model)
    first = ckpt.save(f"{directory}/ckpt", options=SHORT)
    late = comm.size - 1
    context = patched("fdopen", _sleeping_writes) if comm.rank == late else _nothing()
    started = time.monotonic()
    raised: BaseException | None = None
    with context:
        try:
            ckpt.save(f"{directory}/ckpt", options=SHORT)
        except Exception as exc:  # noqa: BLE001 - checked just below
            raised = exc
    assert isinstance(raised, errors.DeadlineExceededError), repr(raised)
    assert raised.client == late and f"client {late}" in str(raised), str(raised)
    if comm.rank != late:  # the others gave up at the deadline, not at the late one's pace
        assert time.monotonic() - started < 2 * SHORT.experimental_collective_timeout + 2.5
    assert dtckpt.latest_checkpoint(directory) == first
    assert not os.path.exists(f"{directory}/ckpt-2.index")
    comm.barrier(timeout=60)
    third = ckpt.save(f"{directory}/ckpt", options=SHORT)  # and cleans what the late one left
    assert third == f"{directory}/ckpt-3" and dtckpt.latest_checkpoint(directory) == third
    comm.barrier(timeout=60)
    assert leftovers(directory) == set() and orphan_data_files(directory) == set()
    fresh, _ = build(mesh, 0)
    dtckpt.Checkpoint(model=fresh).restore(third).assert_consumed()
    check(fresh, 1)


def _sleeping_writes(fdopen: Callable[..., Any]) -> Callable[..., Any]:
    slept: list[bool] = []

    def opened(fd: int, *args: Any, **kwargs: Any) -> Any:
        if not slept:
            slept.append(True)
            time.sleep(2 * SHORT.experimental_collective_timeout + 2.0)
        return fdopen(fd, *args, **kwargs)

    return opened


def killed_mid_save(directory: str, when: str) -> None:
    """The last client is killed (SIGKILL) while writing, or once its data files are in place."""
    comm = world()
    mesh = mesh_for(XY, comm.size)
    model, _ = build(mesh, 1)
    ckpt = dtckpt.Checkpoint(model=model)
    ckpt.save(f"{directory}/ckpt", options=SHORT)
    comm.barrier(timeout=60)
    if comm.rank == comm.size - 1:
        if when == "writing":
            os.fdopen = _killing(os.fdopen)  # type: ignore[assignment]
        else:
            os.replace = _killing_after(os.replace)  # type: ignore[assignment]
    ckpt.save(f"{directory}/ckpt", options=SHORT)
    raise AssertionError("the save must not finish: a client was killed")


def _killing(function: Callable[..., Any]) -> Callable[..., Any]:
    def kill(*args: Any, **kwargs: Any) -> Any:
        result = function(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)
        return result

    return kill


def _killing_after(replace: Callable[..., Any]) -> Callable[..., Any]:
    def kill(source: str, target: str) -> None:
        replace(source, target)
        if ".data-" in target:
            os.kill(os.getpid(), signal.SIGKILL)

    return kill


def async_saves(directory: str) -> None:
    """Background saves by every client, while the main threads run collectives of their own."""
    comm = world()
    mesh = mesh_for(XY, comm.size)
    model, _ = build(mesh, 0)
    manager = dtckpt.CheckpointManager(dtckpt.Checkpoint(model=model), directory, max_to_keep=2)
    options = dtckpt.CheckpointOptions(enable_async=True, experimental_fsync=False)
    main_before = comm.stats.count
    background_before = comm.background().stats.count
    for tag in (1, 2, 3):
        for name in ("w", "k", "r", "h", "e"):
            getattr(model, name).assign(build(mesh, tag)[0].__getattribute__(name).read_value())
        model.step.assign(np.int64(tag))
        model.note.assign(np.array(f"tag {tag}".encode(), dtype=object))
        manager.save(options=options)
        dd.barrier(mesh, f"between saves {tag}")  # the main thread's own collectives
    manager.sync()
    # The saves' collectives ran on the background communicator, not on the world's.
    barriers = 3 * 2 if comm.size > 1 else 0  # a lone process's barriers wait for no one
    assert comm.stats.count - main_before == barriers, comm.stats.count - main_before
    assert comm.background().stats.count - background_before == 9  # 3 saves, 3 each
    assert manager.checkpoints == [f"{directory}/ckpt-2", f"{directory}/ckpt-3"]
    for path, tag in ((f"{directory}/ckpt-2", 2), (f"{directory}/ckpt-3", 3)):
        fresh, _ = build(mesh, 0)
        dtckpt.Checkpoint(model=fresh).restore(path).assert_consumed()
        check(fresh, tag)

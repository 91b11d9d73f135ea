"""Rank programs of ``tests/dtensor/test_multiclient.py``: every client runs the same code.

Each function also runs in one process (a one-client run), which is what the files of
the multi-client runs are compared with.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

import dtckpt
from dtckpt import dtensor as dd
from dtckpt.archive.paths import split_archive_path
from dtckpt.comm import world
from tests.dtensor.multiclient_model import SPECS, build, check, mesh_for

WRITE_OPTIONS = dtckpt.CheckpointOptions(experimental_fsync=False)


def RESTORE_COLLECTIVES() -> int:  # noqa: N802 - reads as the constant it stands for
    """One scatter with several clients; a lone process has no one to send to."""
    return 1 if world().size > 1 else 0


class Collectives:
    """Counts the collectives of the world communicator over a block of code."""

    def __init__(self) -> None:
        self.start = world().stats.count

    def taken(self) -> int:
        return world().stats.count - self.start


def save_every_way(directory: str, dims: list[list[Any]], tag: int = 5) -> None:
    """The same model saved by every kind of save; each save is 3 collectives, a restore 1."""
    clients = world().size
    mesh = mesh_for(dims, clients)
    model, _ = build(mesh, tag)
    counts: dict[str, int] = {}

    def timed(name: str, save: Any) -> None:
        counter = Collectives()
        save()
        counts[name] = counter.taken()

    timed("write", lambda: dtckpt.Checkpoint(model=model).write(f"{directory}/write/c"))
    ckpt = dtckpt.Checkpoint(model=model)
    timed("save", lambda: ckpt.save(f"{directory}/save/c"))
    ckpt.save(f"{directory}/save/c")
    timed("dtensor", lambda: dd.DTensorCheckpoint(mesh, model=model).save(f"{directory}/dck/c"))
    manager = dtckpt.CheckpointManager(
        dtckpt.Checkpoint(model=model), f"{directory}/manager", max_to_keep=1
    )
    timed("manager", lambda: manager.save())
    manager.save()
    balanced = dtckpt.CheckpointOptions(experimental_writers="balanced")
    timed(
        "balanced",
        lambda: dtckpt.Checkpoint(model=model).write(f"{directory}/balanced/c", options=balanced),
    )
    named = {name: getattr(model, name) for name in SPECS}
    named["step"] = model.step.numpy()
    timed("names", lambda: dd.name_based_save(mesh, f"{directory}/names/c", named))
    assert all(n == 3 for n in counts.values()), counts

    # Every client agrees on what the manager kept.
    assert manager.checkpoints == [f"{directory}/manager/ckpt-2"], manager.checkpoints
    assert manager.latest_checkpoint == f"{directory}/manager/ckpt-2"
    assert dtckpt.latest_checkpoint(f"{directory}/save") == f"{directory}/save/c-2"

    # Restores: one collective each, every local block right.
    for path in ("write/c", "save/c-2", "dck/c-1", "manager/ckpt-2", "balanced/c"):
        fresh, _ = build(mesh, 0)
        counter = Collectives()
        # Checkpoints that have a save counter are restored, the others read.
        restore = "write" not in path and "balanced" not in path
        ckpt = dtckpt.Checkpoint(model=fresh)
        (ckpt.restore if restore else ckpt.read)(f"{directory}/{path}").assert_consumed()
        assert counter.taken() == RESTORE_COLLECTIVES(), (path, counter.taken())
        check(fresh, tag)
    fresh, _ = build(mesh, 0)
    wanted = {name: getattr(fresh, name) for name in SPECS}
    restored = dd.name_based_restore(mesh, f"{directory}/names/c", wanted)
    for name, tensor in restored.items():
        getattr(fresh, name).assign(tensor)
    fresh.step.assign(tag)
    fresh.note.assign(np.array(f"tag {tag}".encode(), dtype=object))
    check(fresh, tag)
    if world().rank == 0:
        with open(os.path.join(directory, "counts.json"), "w") as f:
            json.dump(counts, f)


def save_for_resharding(path: str, dims: list[list[Any]], tag: int) -> None:
    mesh = mesh_for(dims, world().size)
    model, _ = build(mesh, tag)
    dtckpt.Checkpoint(model=model).write(path, options=WRITE_OPTIONS)


def restore_and_check(paths_and_tags: list[list[Any]], dims: list[list[Any]]) -> None:
    """Restore each ``[path, tag]`` into the model on mesh ``dims`` and check every block."""
    mesh = mesh_for(dims, world().size)
    for path, tag in paths_and_tags:
        fresh, _ = build(mesh, 0)
        counter = Collectives()
        dtckpt.Checkpoint(model=fresh).read(path).assert_consumed()
        # An archive is read by each client on its own (rule P-RS-1).
        archived = split_archive_path(path) is not None
        assert counter.taken() == (0 if archived else RESTORE_COLLECTIVES())
        check(fresh, int(tag))


def reshard_round(restores: list[list[Any]], dims: list[list[Any]], save: str, tag: int) -> None:
    """Restore others' checkpoints into mesh ``dims``, then save one of our own."""
    restore_and_check(restores, dims)
    save_for_resharding(save, dims, tag)


def config_facts(expect_jobs: list[str]) -> None:
    """TensorFlow's client facts, meshes, pack/unpack and barriers under MPI (D-CF-*, D-MU-1)."""
    import time

    from dtckpt.errors import DeadlineExceededError, InvalidArgumentError, UnimplementedError

    rank, size = world().rank, world().size
    assert dd.initialize_accelerator_system("CPU", num_logical_cpu_devices=2) == "CPU"
    try:
        dd.initialize_multi_client()
        raise AssertionError("a second initialization must fail")
    except InvalidArgumentError as exc:
        assert "already been initialized" in str(exc)
    assert (dd.client_id(), dd.num_clients(), dd.job_name()) == (rank, size, "worker")
    assert dd.jobs() == expect_jobs
    assert dd.num_local_devices("CPU") == 2 and dd.num_global_devices("CPU") == 2 * size
    assert dd.full_job_name() == f"worker/replica:0/task:{rank}"
    assert [d.to_string() for d in dd.local_devices("CPU")] == [
        f"/job:worker/replica:0/task:{rank}/device:CPU:{i}" for i in range(2)
    ]
    mesh = dd.create_distributed_mesh([("x", size), ("y", 2)], device_type="CPU")
    assert mesh.local_device_ids() == [2 * rank, 2 * rank + 1]
    layout = dd.Layout(["x", "y"], mesh)
    parts = [np.full((1, 1), 10 * rank + i, np.float32) for i in range(2)]
    tensor = dd.pack(parts, layout)
    assert tensor.shape == (size, 2) and [p.item() for p in dd.unpack(tensor)] == [
        10 * rank,
        10 * rank + 1,
    ]
    doubled = tensor * 2 + 1
    assert [p.item() for p in dd.unpack(doubled)] == [20 * rank + 1, 20 * rank + 3]
    try:
        tensor.numpy()
        raise AssertionError("numpy() of a tensor sharded over clients must fail")
    except UnimplementedError as exc:
        assert "other clients' devices" in str(exc)
    replicated = dd.relayout(np.arange(4.0).reshape(2, 2), dd.Layout.replicated(mesh, 2))
    assert np.array_equal(replicated.numpy(), np.arange(4.0).reshape(2, 2))
    try:
        dd.pack(parts + parts, layout)
        raise AssertionError("pack takes one value per local device")
    except InvalidArgumentError as exc:
        assert "expected 2 inputs" in str(exc)
    dd.barrier(mesh, "together")
    if rank == size - 1:
        time.sleep(1.5)
    try:
        dd.barrier(mesh, "late", timeout_in_ms=500)
        assert rank == size - 1, "only the late client may pass"
    except DeadlineExceededError as exc:
        assert exc.client == size - 1, str(exc)
    dd.barrier(mesh, "after")
    try:
        dd.shutdown_accelerator_system()
        raise AssertionError("shutting down several clients must fail")
    except InvalidArgumentError as exc:
        assert "multi-client mode is not supported" in str(exc)


def mismatched_environment() -> None:
    """DTENSOR_CLIENT_ID names another rank: every client function refuses, naming both."""
    from dtckpt.errors import InvalidArgumentError

    try:
        dd.client_id()
        raise AssertionError("a mismatched DTENSOR_CLIENT_ID must be refused")
    except InvalidArgumentError as exc:
        rank = world().rank
        assert str(exc) == (
            f"DTENSOR_CLIENT_ID={1 - rank} but this process is MPI rank {rank} of 2"
        ), str(exc)
    try:
        dd.initialize_accelerator_system()
        raise AssertionError("initialization must check the environment too")
    except InvalidArgumentError:
        pass

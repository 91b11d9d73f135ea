"""Rank programs of ``tests/dtensor/test_plans_multiclient.py``: every client runs the same code."""

from __future__ import annotations

from typing import Any

import numpy as np

import dtckpt
from dtckpt.comm import world
from dtckpt.format import streams
from tests.dtensor.multiclient_model import build, check, mesh_for

XY = [["x", 2], ["y", 4]]
AB = [["a", 4], ["b", 2]]


def plan_then_restore(directory: str) -> None:
    """Each client plans its own devices with no collective, then restores (one collective)
    reading exactly the byte ranges of its plan, within a memory budget."""
    clients = world().size
    saved, _ = build(mesh_for(XY, clients), 7)
    path = dtckpt.Checkpoint(model=saved).write(f"{directory}/c")
    mesh = mesh_for(AB, clients)
    fresh, _ = build(mesh, 0)
    ckpt = dtckpt.Checkpoint(model=fresh)
    before = world().stats.count
    options = dtckpt.CheckpointOptions(experimental_dry_run=True)
    plan = ckpt.read(path, options=options)
    assert world().stats.count == before  # a plan is no collective
    mine = set(fresh.w.read_value().local_devices)
    assert plan.clients == clients
    assert {r.device for r in plan.reads if r.device is not None} == mine
    assert {r.client for r in plan.reads if r.device is not None} == {world().rank}
    seen: list[tuple[str, int, int]] = []
    plain, checked = streams.LocalFile.read_into, streams.LocalFile.read_into_with_crc32c

    def read_into(self: Any, out: np.ndarray, offset: int) -> None:
        seen.append((self.path, offset, out.nbytes))
        plain(self, out, offset)

    def read_into_with_crc32c(self: Any, out: np.ndarray, offset: int) -> int:
        seen.append((self.path, offset, out.nbytes))
        return checked(self, out, offset)

    streams.LocalFile.read_into = read_into  # type: ignore[method-assign]
    streams.LocalFile.read_into_with_crc32c = read_into_with_crc32c  # type: ignore[method-assign]
    try:
        budget = dtckpt.CheckpointOptions(experimental_memory_budget=max(plan.peak_bytes, 1))
        ckpt.read(path, options=budget).assert_consumed()
    finally:
        streams.LocalFile.read_into = plain  # type: ignore[method-assign]
        streams.LocalFile.read_into_with_crc32c = checked  # type: ignore[method-assign]
    check(fresh, 7)
    planned = [(p, r.offset, r.length) for read in plan.reads for p, r in zip(read.files, read.ranges)]
    graph = [
        (p, r.offset, r.length)
        for p, r in _graph_ranges(path)
    ]
    values = [s for s in seen if s not in graph]  # the root also reads the object graph
    assert _merged(values) == _merged(planned)
    assert sum(n for _, _, n in values) == plan.bytes_read


def _graph_ranges(path: str) -> list[tuple[str, Any]]:
    with dtckpt.BundleReader(path) as reader:
        return [(reader.shard_path(r.shard_id), r) for r in reader.read_ranges("_CHECKPOINTABLE_OBJECT_GRAPH")]


def _merged(ranges: list[tuple[str, int, int]]) -> dict[str, list[tuple[int, int]]]:
    out: dict[str, list[tuple[int, int]]] = {}
    for name, offset, length in sorted(ranges):
        spans = out.setdefault(name, [])
        if spans and spans[-1][1] >= offset:
            spans[-1] = (spans[-1][0], max(spans[-1][1], offset + length))
        else:
            spans.append((offset, offset + length))
    return out

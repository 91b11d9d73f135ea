"""Restore plans (rules R-PL-1..4): what a restore reads and allocates, known before it runs,
and checked against what the real restore then does."""

from __future__ import annotations

import logging
import pathlib
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest

import dtckpt
from dtckpt.checkpoint.plans import RestorePlan
from dtckpt.format import streams

MiB = 1 << 20
#: Python objects a restore makes besides the values (the index, the object graph, the
#: plan's records): far below a MiB for the few values here.
SLACK = MiB // 2


class Reads:
    """Every byte range read from a data file, through the local bundle source."""

    def __init__(self) -> None:
        self.ranges: list[tuple[str, int, int]] = []

    def intervals(self) -> dict[str, list[tuple[int, int]]]:
        return _merged(self.ranges)

    @property
    def total(self) -> int:
        return sum(length for _, _, length in self.ranges)


def _merged(ranges: list[tuple[str, int, int]]) -> dict[str, list[tuple[int, int]]]:
    out: dict[str, list[tuple[int, int]]] = {}
    for path, offset, length in sorted(ranges):
        spans = out.setdefault(path, [])
        if spans and spans[-1][1] >= offset:
            spans[-1] = (spans[-1][0], max(spans[-1][1], offset + length))
        else:
            spans.append((offset, offset + length))
    return out


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Reads:
    seen = Reads()
    plain, checked = streams.LocalFile.read_into, streams.LocalFile.read_into_with_crc32c

    def read_into(self: streams.LocalFile, out: np.ndarray, offset: int) -> None:
        seen.ranges.append((self.path, offset, out.nbytes))
        plain(self, out, offset)

    def read_into_with_crc32c(self: streams.LocalFile, out: np.ndarray, offset: int) -> int:
        seen.ranges.append((self.path, offset, out.nbytes))
        return checked(self, out, offset)

    monkeypatch.setattr(streams.LocalFile, "read_into", read_into)
    monkeypatch.setattr(streams.LocalFile, "read_into_with_crc32c", read_into_with_crc32c)
    return seen


@contextmanager
def traced() -> Iterator[list[int]]:
    """The peak growth of traced memory inside the block (NumPy reports its arrays)."""
    result: list[int] = []
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        yield result
        result.append(tracemalloc.get_traced_memory()[1] - base)
    finally:
        tracemalloc.stop()


def _plan_ranges(plan: RestorePlan) -> list[tuple[str, int, int]]:
    return [
        (path, r.offset, r.length)
        for read in plan.reads
        for path, r in zip(read.files, read.ranges, strict=True)
    ]


def _model(values: dict[str, np.ndarray]) -> dtckpt.Module:
    m = dtckpt.Module()
    for name, value in values.items():
        setattr(m, name, dtckpt.Variable(value))
    return m


def _values() -> dict[str, np.ndarray]:
    return {
        "a": np.arange(2 * MiB, dtype=np.float32).reshape(512, -1),  # 8 MiB
        "b": np.full((3 * MiB // 4,), 2.0, np.float32),  # 3 MiB
        "c": np.arange(10, dtype=np.int64),
    }


def _zeros(values: dict[str, np.ndarray]) -> dtckpt.Module:
    return _model({name: np.zeros_like(v) for name, v in values.items()})


def test_the_plan_is_what_the_restore_reads_and_allocates(
    tmp_path: pathlib.Path, reads: Reads
) -> None:
    values = _values()
    path = dtckpt.Checkpoint(m=_model(values)).write(str(tmp_path / "ckpt"))
    m = _zeros(values)
    held = m.b._value  # someone else holds b's array: b gets a new one
    ckpt = dtckpt.Checkpoint(m=m)
    plan = ckpt.read(path, options=dtckpt.CheckpointOptions(experimental_dry_run=True))
    assert isinstance(plan, RestorePlan)
    # Planned from the index and the object graph alone: no value was read.
    with dtckpt.BundleReader(path) as reader:
        (graph,) = reader.read_ranges("_CHECKPOINTABLE_OBJECT_GRAPH")
        graph_range = (reader.shard_path(graph.shard_id), graph.offset, graph.length)
    assert reads.ranges == [graph_range]
    reads.ranges.clear()
    assert {(k, t) for k, t in plan.matched} == {
        ("m/a/.ATTRIBUTES/VARIABLE_VALUE", "(root).m.a"),
        ("m/b/.ATTRIBUTES/VARIABLE_VALUE", "(root).m.b"),
        ("m/c/.ATTRIBUTES/VARIABLE_VALUE", "(root).m.c"),
    }
    by_target = {r.target: r for r in plan.reads}
    assert by_target["(root).m.a"].in_place and not by_target["(root).m.b"].in_place
    assert by_target["(root).m.b"].allocates == values["b"].nbytes
    assert plan.bytes_needed == plan.bytes_read == sum(v.nbytes for v in values.values())
    assert plan.read_amplification == 1.0
    assert plan.peak_bytes == values["b"].nbytes  # b's new array; a and c in place

    with traced() as peak:
        ckpt.read(path).assert_consumed()
    reads.ranges.remove(graph_range)
    assert _merged(_plan_ranges(plan)) == reads.intervals()
    assert reads.total == plan.bytes_read
    assert plan.peak_bytes <= peak[0] <= plan.peak_bytes + SLACK, (peak, plan.peak_bytes)
    assert not held.any()
    for name, value in values.items():
        assert np.array_equal(getattr(m, name).numpy(), value)


def test_a_dry_run_changes_nothing_and_names_what_matches_nothing(tmp_path: pathlib.Path) -> None:
    saved = _model({"a": np.ones(3, np.float32), "gone": np.ones(2, np.float32)})
    saved.later = _model({"w": np.ones(4, np.float32)})
    path = dtckpt.Checkpoint(m=saved).write(str(tmp_path / "ckpt"))
    m = _model({"a": np.zeros(3, np.float32), "new": np.zeros(5, np.float32)})
    ckpt = dtckpt.Checkpoint(m=m)
    plan = ckpt.read(path, options=dtckpt.CheckpointOptions(experimental_dry_run=True))
    assert plan.unmatched == ["(root).m.new"]
    # m.gone and m.later.w have no object: restored if they are created later (O-RS-3).
    assert sorted(plan.unused) == sorted(plan.deferred) == [
        "m/gone/.ATTRIBUTES/VARIABLE_VALUE",
        "m/later/w/.ATTRIBUTES/VARIABLE_VALUE",
    ]
    assert [t for _, t in plan.matched] == ["(root).m.a"]
    assert not m.a.numpy().any()
    assert m._self_deferred is None  # no restore waits for m.later
    assert ckpt._self_save_counter is None  # restore() creates it; a dry run does not
    plan = ckpt.restore(path, options=dtckpt.CheckpointOptions(experimental_dry_run=True))
    assert isinstance(plan, RestorePlan) and ckpt._self_save_counter is None
    text = plan.format()
    assert "unmatched objects" in text and "(root).m.new" in text and "read amplification" in text
    assert plan.to_dict()["unused"] == plan.unused


def test_a_dry_run_warns_about_nothing(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    import gc

    path = dtckpt.Checkpoint(m=_model({"a": np.ones(3, np.float32)})).write(str(tmp_path / "c"))
    with caplog.at_level(logging.WARNING, logger="dtckpt"):
        dtckpt.Checkpoint().read(path, options=dtckpt.CheckpointOptions(experimental_dry_run=True))
        gc.collect()
    assert not caplog.records


def test_sliced_reads_are_planned_and_streamed(tmp_path: pathlib.Path, reads: Reads) -> None:
    """A value stored in row slices, read whole: each slice straight into place."""
    prefix = str(tmp_path / "sliced")
    value = np.arange(64 * 1024, dtype=np.float32).reshape(64, 1024)
    dtckpt.save_v2(prefix, ["w", "w"], ["64 1024 0,32:-", "64 1024 32,32:-"], [value[:32], value[32:]])
    with dtckpt.BundleReader(prefix) as reader:
        cost = reader.read_cost("w", ((0, 64), (0, 512)), scratch=MiB // 16)
        assert cost.scratch == MiB // 16 and cost.least_scratch == 4096
        assert sum(r.length for r in cost.ranges) == value.nbytes  # every row of both slices
        reads.ranges.clear()
        out = reader.read_slice("w", ((0, 64), (0, 512)), scratch=MiB // 16)
        assert np.array_equal(out, value[:, :512])
        assert _merged([(p, o, n) for p, o, n in reads.ranges]) == {
            reader.shard_path(0): [(0, value.nbytes)]
        }
        assert max(n for _, _, n in reads.ranges) <= MiB // 16


def _checkpoint_with(tmp_path: pathlib.Path, **values: np.ndarray) -> str:
    return dtckpt.Checkpoint(m=_model(values)).write(str(tmp_path / "ckpt"))


def test_budget_refusal_names_the_smallest_budget_and_changes_nothing(
    tmp_path: pathlib.Path,
) -> None:
    path = _checkpoint_with(
        tmp_path, a=np.ones(MiB, np.float32), b=np.ones(2 * MiB, np.float32)
    )
    m = _zeros({"a": np.ones(MiB, np.float32), "b": np.ones(2 * MiB, np.float32)})
    held = m.b._value  # b cannot be read in place: it needs a new 8 MiB array
    options = dtckpt.CheckpointOptions(experimental_memory_budget=4 * MiB)
    with pytest.raises(dtckpt.errors.MemoryBudgetError) as info:
        dtckpt.Checkpoint(m=m).read(path, options=options)
    assert info.value.needed == 8 * MiB and info.value.budget == 4 * MiB
    assert isinstance(info.value, MemoryError | OSError)
    assert f"experimental_memory_budget={8 * MiB}" in str(info.value)
    assert not m.a.numpy().any() and not m.b.numpy().any()  # nothing assigned, not even a
    options = dtckpt.CheckpointOptions(experimental_memory_budget=info.value.needed)
    dtckpt.Checkpoint(m=m).read(path, options=options).assert_consumed()
    assert m.a.numpy().min() == 1.0 and m.b.numpy().min() == 1.0 and not held.any()


def test_memory_budget_option_is_checked() -> None:
    with pytest.raises(dtckpt.errors.InvalidArgumentError):
        dtckpt.CheckpointOptions(experimental_memory_budget=-1)
    with pytest.raises(dtckpt.errors.InvalidArgumentError):
        dtckpt.CheckpointOptions(experimental_memory_budget=1.5)  # type: ignore[arg-type]
    assert dtckpt.CheckpointOptions(experimental_memory_budget=np.int64(3)).experimental_memory_budget == 3


def test_plans_by_name_too(tmp_path: pathlib.Path, reads: Reads) -> None:
    prefix = str(tmp_path / "tf1")
    dtckpt.save_v2(prefix, ["v", "extra"], ["", ""], [np.ones(1000, np.float32), np.ones(3)])
    v = dtckpt.Variable(np.zeros(1000, np.float32), name="v")
    w = dtckpt.Variable(np.zeros(2, np.float32), name="w")
    ckpt = dtckpt.Checkpoint(v=v, w=w)
    plan = ckpt.read(prefix, options=dtckpt.CheckpointOptions(experimental_dry_run=True))
    assert [r.key for r in plan.reads] == ["v"] and plan.reads.__next__().in_place
    assert plan.unused == ["extra"] and plan.unmatched == ["w"]
    assert not v.numpy().any()
    ckpt.read(prefix)
    assert reads.total == plan.bytes_read == 4000 and v.numpy().min() == 1.0



def test_slot_variables_are_planned_as_new_arrays_and_a_dry_run_makes_none() -> None:
    from tests.checkpoint.test_object_goldens import _skeleton, load_golden

    golden = load_golden("og_v1_slots")
    ckpt = _skeleton(golden)
    plan = ckpt.read(golden.prefix, options=dtckpt.CheckpointOptions(experimental_dry_run=True))
    assert ckpt.model.kernel.slots == {}  # a dry run creates no slot variable
    slots = [r for r in plan.reads if ".OPTIMIZER_SLOT/" in r.key]
    assert sorted(r.target for r in slots) == [
        "(root).model.bias.slots['m']",
        "(root).model.bias.slots['v']",
        "(root).model.kernel.slots['m']",
        "(root).model.kernel.slots['v']",
    ]
    assert all(not r.in_place and r.keeps and r.allocates == r.needed for r in slots)
    with traced() as peak:
        ckpt.read(golden.prefix).assert_consumed()
    kept = sum(r.allocates for r in plan.reads if r.keeps)
    assert plan.peak_bytes >= kept and peak[0] >= kept
    assert sorted(ckpt.model.kernel.slots) == ["m", "v"]

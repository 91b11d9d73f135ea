"""Memory budgets and plans of DTensor restores (rules R-PL-2, R-MB-1, R-MB-2, R-MB-4)."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

import dtckpt
from dtckpt import dtensor
from dtckpt.errors import MemoryBudgetError

from ..budgets import BUDGET, COLS, ROWS, GiB, traced_peak


def _mesh() -> dtensor.Mesh:
    return dtensor.create_mesh([("x", 2), ("y", 4)], device_type="CPU")


def test_a_resharding_restore_of_1_gib_stays_within_64_mib(tmp_path: pathlib.Path) -> None:
    """Saved as [x, y] blocks, restored into [y, x] blocks on the same mesh: every target
    block takes parts of rows of several stored blocks, streamed (rule R-MB-2)."""
    mesh = _mesh()
    m = dtckpt.Module()
    m.w = dtensor.DVariable(
        np.arange(ROWS * COLS, dtype=np.float32).reshape(ROWS, COLS),
        layout=dtensor.Layout(["x", "y"], mesh),
    )
    path = dtckpt.Checkpoint(m=m).write(str(tmp_path / "ckpt"))
    del m
    target = dtckpt.Module()
    target.w = dtensor.DVariable(
        np.zeros((ROWS, COLS), np.float32), layout=dtensor.Layout(["y", "x"], mesh)
    )
    ckpt = dtckpt.Checkpoint(m=target)
    options = dtckpt.CheckpointOptions(experimental_memory_budget=BUDGET)
    plan = ckpt.read(path, options=dtckpt.CheckpointOptions(
        experimental_dry_run=True, experimental_memory_budget=BUDGET))  # fmt: skip
    assert plan.bytes_needed == GiB and plan.peak_bytes <= BUDGET
    assert all(r.in_place for r in plan.reads)
    assert sorted(d for _, d in plan.by_device()) == list(range(8))
    peak = traced_peak(lambda: ckpt.read(path, options=options).assert_consumed())
    assert plan.peak_bytes <= peak <= BUDGET, (peak, plan.peak_bytes)
    block = target.w._dvalue.components[5]  # device 5: y=1, x=1 -> rows 1/4, columns 1/2
    rows, cols = ROWS // 4, COLS // 2
    expected_first = rows * COLS + cols
    assert block.shape == (rows, cols) and block[0, 0] == expected_first
    assert block[-1, -1] == (2 * rows - 1) * COLS + COLS - 1


def test_the_plan_counts_what_each_device_reads(tmp_path: pathlib.Path) -> None:
    mesh = _mesh()
    m = dtckpt.Module()
    value = np.arange(64 * 32, dtype=np.float32).reshape(64, 32)
    m.w = dtensor.DVariable(value, layout=dtensor.Layout(["x", "y"], mesh))
    path = dtckpt.Checkpoint(m=m).write(str(tmp_path / "ckpt"))
    target = dtckpt.Module()
    target.w = dtensor.DVariable(
        np.zeros_like(value), layout=dtensor.Layout([dtensor.UNSHARDED, "x"], mesh)
    )
    plan = dtckpt.Checkpoint(m=target).read(
        path, options=dtckpt.CheckpointOptions(experimental_dry_run=True)
    )
    reads = {r.device: r for r in plan.reads}
    # [-, x]: device d holds columns of half d // 4 ... but replicated over y: devices 0-3
    # share one block, read once by device 0; the others copy it.
    assert reads[0].ranges and not reads[1].ranges and not reads[3].ranges
    assert reads[4].ranges and not reads[5].ranges
    assert plan.bytes_needed == 4 * value.nbytes  # each device needs half the tensor
    # Each needed half-width column block takes whole rows of 4 stored blocks of [x, y]:
    # their whole bytes (the rows are all needed), so half the tensor each, read once.
    assert plan.bytes_read == value.nbytes
    assert plan.read_amplification == pytest.approx(0.25)


def test_name_based_restore_under_a_budget(tmp_path: pathlib.Path) -> None:
    mesh = _mesh()
    value = np.arange(512 * 256, dtype=np.float32).reshape(512, 256)  # 512 KiB
    prefix = str(tmp_path / "named")
    saved = dtensor.copy_to_mesh(value, dtensor.Layout(["x", "y"], mesh))
    dtensor.name_based_save(mesh, prefix, {"w": saved})
    wanted = {"w": dtensor.copy_to_mesh(np.zeros_like(value), dtensor.Layout(["y", "x"], mesh))}
    small = dtckpt.CheckpointOptions(experimental_memory_budget=64 * 1024)
    with pytest.raises(MemoryBudgetError) as info:
        dtensor.name_based_restore(mesh, prefix, wanted, options=small)
    # The new blocks (the whole tensor, once) plus one row of a stored block.
    assert info.value.needed == value.nbytes + 256 // 4 * 4
    enough = dtckpt.CheckpointOptions(experimental_memory_budget=info.value.needed)
    got = dtensor.name_based_restore(mesh, prefix, wanted, options=enough)
    assert np.array_equal(got["w"].numpy(), value)

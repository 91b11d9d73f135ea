"""Memory budgets (rules R-MB-1..3): 1 GiB saved and restored within 64 MiB of extra memory,
traced; what cannot fit is refused before anything is read or written."""

from __future__ import annotations

import os
import pathlib
from typing import Any

import numpy as np
import pytest

import dtckpt
from dtckpt import dtensor
from dtckpt.errors import MemoryBudgetError

from ..budgets import BUDGET, COLS, ROWS, GiB, MiB, traced_peak


def _budget(bytes_: int = BUDGET) -> dtckpt.CheckpointOptions:
    return dtckpt.CheckpointOptions(experimental_memory_budget=bytes_)


def test_a_restore_of_1_gib_of_column_blocks_stays_within_64_mib(tmp_path: pathlib.Path) -> None:
    """Stored as column blocks (a DVariable sharded on its second dimension), read into a
    whole Variable: every block is streamed through a few MiB of rows (rule R-MB-2)."""
    mesh = dtensor.create_mesh([("x", 4)], device_type="CPU")
    m = dtckpt.Module()
    m.w = dtensor.DVariable(
        np.arange(ROWS * COLS, dtype=np.float32).reshape(ROWS, COLS),
        layout=dtensor.Layout([dtensor.UNSHARDED, "x"], mesh),
    )
    path = dtckpt.Checkpoint(m=m).write(str(tmp_path / "ckpt"))
    del m
    target = dtckpt.Module()
    target.w = dtckpt.Variable(np.zeros((ROWS, COLS), np.float32))
    ckpt = dtckpt.Checkpoint(m=target)
    plan = ckpt.read(path, options=dtckpt.CheckpointOptions(
        experimental_dry_run=True, experimental_memory_budget=BUDGET))  # fmt: skip
    assert plan.bytes_read == GiB and plan.peak_bytes <= BUDGET
    peak = traced_peak(lambda: ckpt.read(path, options=_budget()).assert_consumed())
    assert plan.peak_bytes <= peak <= BUDGET, (peak, plan.peak_bytes)
    value = target.w._value
    assert value[0, 0] == 0 and value[-1, -1] == ROWS * COLS - 1
    assert np.array_equal(value[:, COLS // 2], np.arange(ROWS) * COLS + COLS // 2)


def test_an_asynchronous_save_of_1_gib_stays_within_64_mib(tmp_path: pathlib.Path) -> None:
    m = dtckpt.Module()
    for k in range(4):
        setattr(m, f"v{k}", dtckpt.Variable(np.full((GiB // 16,), k, np.float32)))
    ckpt = dtckpt.Checkpoint(m=m)
    options = dtckpt.CheckpointOptions(
        enable_async=True, experimental_memory_budget=BUDGET, experimental_fsync=False
    )

    def save() -> None:
        ckpt.save(str(tmp_path / "ckpt"), options=options)
        ckpt.sync()

    assert traced_peak(save) <= BUDGET
    with dtckpt.CheckpointReader(str(tmp_path / "ckpt-1")) as reader:
        assert reader.get_tensor("m/v3/.ATTRIBUTES/VARIABLE_VALUE")[-1] == 3
    assert os.path.getsize(str(tmp_path / "ckpt-1.data-00000-of-00001")) > GiB


class _Buffer(dtckpt.Module):
    """A trackable whose saved array it may write into later: a background save copies it."""

    def __init__(self, array: np.ndarray) -> None:
        super().__init__()
        object.__setattr__(self, "_array", array)

    def _serialize_to_tensors(self) -> dict[str, Any]:
        return {"buffer": self._array}


def test_an_asynchronous_save_that_must_copy_more_than_the_budget_is_refused(
    tmp_path: pathlib.Path,
) -> None:
    ckpt = dtckpt.Checkpoint(b=_Buffer(np.ones(2 * MiB, np.float32)))
    options = dtckpt.CheckpointOptions(enable_async=True, experimental_memory_budget=4 * MiB)
    with pytest.raises(MemoryBudgetError) as info:
        ckpt.write(str(tmp_path / "ckpt"), options=options)
    assert info.value.needed == 8 * MiB
    assert os.listdir(tmp_path) == []  # nothing written
    ckpt.write(str(tmp_path / "ckpt"), options=_budget(info.value.needed))
    ckpt.sync()
    ckpt.write(str(tmp_path / "sync"), options=_budget(0))  # a synchronous save copies nothing


def test_a_strided_value_is_saved_through_a_bounded_staging_buffer(tmp_path: pathlib.Path) -> None:
    m = dtckpt.Module()
    m.t = _Buffer(np.ones((64, 2 * MiB // 64), np.float32)[:, ::2])  # 4 MiB, not contiguous
    ckpt = dtckpt.Checkpoint(m=m)
    with pytest.raises(MemoryBudgetError) as info:
        ckpt.write(str(tmp_path / "a"), options=_budget(MiB))
    assert info.value.needed == 4 * MiB  # one staging buffer: all rows fit in 8 MiB
    ckpt.write(str(tmp_path / "b"), options=_budget(4 * MiB))

"""Restores read into place when nobody can see it (rule O-RS-15); background writes keep
variables' arrays instead of copying them (rule O-CK-10)."""

from __future__ import annotations

import pathlib
import threading
import tracemalloc
import weakref
from typing import Any

import numpy as np
import pytest

import dtckpt
from dtckpt import dtensor
from dtckpt.checkpoint import checkpoint as checkpoint_module

MiB = 1 << 20


def _saved(tmp_path: pathlib.Path, value: np.ndarray, name: str = "ckpt") -> str:
    m = dtckpt.Module()
    m.v = dtckpt.Variable(value)
    return dtckpt.Checkpoint(m=m).write(str(tmp_path / name))


def test_an_unshared_array_is_read_into(tmp_path: pathlib.Path) -> None:
    path = _saved(tmp_path, np.arange(6, dtype=np.float32))
    m = dtckpt.Module()
    m.v = dtckpt.Variable(np.zeros(6, np.float32))
    before = weakref.ref(m.v._value)  # a weak reference does not share the array
    dtckpt.Checkpoint(m=m).read(path).assert_consumed()
    assert m.v._value is before()  # the same array, now holding the checkpoint's values
    assert np.array_equal(m.v.numpy(), np.arange(6, dtype=np.float32))


def test_a_shared_array_is_never_changed(tmp_path: pathlib.Path) -> None:
    path = _saved(tmp_path, np.arange(6, dtype=np.float32))
    m = dtckpt.Module()
    m.v = dtckpt.Variable(np.zeros(6, np.float32))
    view = m.v._value[2:]  # someone else refers to the variable's array
    dtckpt.Checkpoint(m=m).read(path).assert_consumed()
    assert not view.any()  # what they hold did not change
    assert np.array_equal(m.v.numpy(), np.arange(6, dtype=np.float32))


def test_in_place_restore_needs_no_second_copy(tmp_path: pathlib.Path) -> None:
    value = np.ones((16, MiB // 4), np.float32)  # 16 MiB
    path = _saved(tmp_path, value)
    m = dtckpt.Module()
    m.v = dtckpt.Variable(np.zeros_like(value))
    del value
    dtckpt.Checkpoint(m=m).read(path)  # compile kernels, warm caches
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        dtckpt.Checkpoint(m=m).read(path).assert_consumed()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert peak < 2 * MiB, peak
    assert m.v.numpy().min() == 1.0


def _dvariable(value: np.ndarray) -> Any:
    mesh = dtensor.create_mesh([("x", 2), ("y", 2)], device_type="CPU")
    return dtensor.DVariable(value, layout=dtensor.Layout(["x", "y"], mesh))


def test_dvariable_blocks_are_read_into_unless_held(tmp_path: pathlib.Path) -> None:
    full = np.arange(16, dtype=np.float32).reshape(4, 4)
    m = dtckpt.Module()
    m.w = _dvariable(full)
    path = dtckpt.Checkpoint(m=m).write(str(tmp_path / "d"))
    target = dtckpt.Module()
    target.w = _dvariable(np.zeros((4, 4), np.float32))
    blocks = [weakref.ref(c) for c in target.w._dvalue.components]
    dtckpt.Checkpoint(m=target).read(path).assert_consumed()
    assert all(a is b() for a, b in zip(target.w._dvalue.components, blocks, strict=True))
    assert np.array_equal(target.w.numpy(), full)
    # A read_value() result is a snapshot: a later restore never changes it.
    target.w.assign(np.zeros((4, 4), np.float32))
    seen = target.w.read_value()
    dtckpt.Checkpoint(m=target).read(path).assert_consumed()
    assert not seen.numpy().any()
    assert np.array_equal(target.w.numpy(), full)


def test_async_write_keeps_arrays_and_saves_the_values_at_the_call(
    tmp_path: pathlib.Path,
) -> None:
    value = np.ones((8, MiB // 4), np.float32)  # 8 MiB
    m = dtckpt.Module()
    m.v = dtckpt.Variable(value)
    ckpt = dtckpt.Checkpoint(m=m)
    options = dtckpt.CheckpointOptions(enable_async=True)
    ckpt.write(str(tmp_path / "warm"), options=options)
    ckpt.sync()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        path = ckpt.write(str(tmp_path / "a"), options=options)
        blocked = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    m.v.assign(np.full_like(value, 3.0))  # after the call: not in the checkpoint
    ckpt.sync()
    assert blocked < MiB, blocked  # no copy of the 8 MiB value was made
    assert dtckpt.load_checkpoint(path).get_tensor("m/v/.ATTRIBUTES/VARIABLE_VALUE").min() == 1.0


def test_a_restore_does_not_read_into_an_array_a_pending_write_holds(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = _saved(tmp_path, np.full(4, 9.0, np.float32), "other")
    m = dtckpt.Module()
    m.v = dtckpt.Variable(np.full(4, 1.0, np.float32))
    release = threading.Event()
    save = checkpoint_module.save_collectively

    def held(*args: Any, **kwargs: Any) -> Any:
        release.wait(30)
        return save(*args, **kwargs)

    monkeypatch.setattr(checkpoint_module, "save_collectively", held)
    writer = dtckpt.Checkpoint(m=m)
    later = dtckpt.CheckpointOptions(enable_async=True)
    path = writer.write(str(tmp_path / "pending"), options=later)
    dtckpt.Checkpoint(m=m).read(other).assert_consumed()  # while the write waits
    assert np.array_equal(m.v.numpy(), np.full(4, 9.0, np.float32))
    release.set()
    writer.sync()
    saved = dtckpt.load_checkpoint(path).get_tensor("m/v/.ATTRIBUTES/VARIABLE_VALUE")
    assert np.array_equal(saved, np.full(4, 1.0, np.float32))

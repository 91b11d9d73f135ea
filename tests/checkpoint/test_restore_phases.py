"""How a restore runs: checks from the index before any read, one object at a time, and what it
keeps alive (rules O-RS-6, O-RS-14)."""

from __future__ import annotations

import gc
import os
import pathlib
import weakref

import numpy as np
import pytest

import dtckpt
from dtckpt.checkpoint.graph import OBJECT_GRAPH_PROTO_KEY


def _model(a: float = 1.0, b: float = 2.0) -> dtckpt.Module:
    m = dtckpt.Module()
    m.a = dtckpt.Variable(np.full(3, a, np.float32))
    m.b = dtckpt.Variable(np.full(4, b, np.float32))
    return m


def _write(tmp_path: pathlib.Path) -> str:
    return dtckpt.Checkpoint(m=_model()).write(str(tmp_path / "ckpt"))


def _damage_value(prefix: str, key: str) -> None:
    """Flip one byte of ``key``'s value in the data file (its checksum then fails)."""
    with dtckpt.BundleReader(prefix) as reader:
        entry = reader.entry(key)
    path = prefix + ".data-00000-of-00001"
    with open(path, "r+b") as f:
        f.seek(entry.offset)
        byte = f.read(1)
        f.seek(entry.offset)
        f.write(bytes([byte[0] ^ 0xFF]))


def test_shape_checked_before_any_value_is_read(tmp_path: pathlib.Path) -> None:
    path = _write(tmp_path)
    _damage_value(path, "m/a/.ATTRIBUTES/VARIABLE_VALUE")  # read first, were it read
    target = dtckpt.Module()
    target.a = dtckpt.Variable(np.zeros(3, np.float32))
    target.b = dtckpt.Variable(np.zeros(5, np.float32))  # the wrong shape
    # The mismatch is found from the index: the damaged value is never reached.
    with pytest.raises(dtckpt.errors.InvalidArgumentError, match="m.b"):
        dtckpt.Checkpoint(m=target).read(path)
    assert not target.a.numpy().any() and not target.b.numpy().any()


def test_damage_found_while_reading_raises(tmp_path: pathlib.Path) -> None:
    path = _write(tmp_path)
    _damage_value(path, "m/b/.ATTRIBUTES/VARIABLE_VALUE")
    target = _model(0.0, 0.0)
    # Read in place (rule O-RS-15): the error says the variable holds what was read.
    with pytest.raises(dtckpt.errors.DataLossError, match="Checksum.*now holds what was read"):
        dtckpt.Checkpoint(m=target).read(path)
    # Values are assigned one object at a time: the one read before the damage is in.
    assert np.array_equal(target.a.numpy(), np.ones(3, np.float32))
    # A variable whose array is shared is read into a new array: a failure leaves it as it was.
    target = _model(0.0, 0.0)
    view = target.b._value[:]  # another reference to b's array
    with pytest.raises(dtckpt.errors.DataLossError, match="Checksum") as info:
        dtckpt.Checkpoint(m=target).read(path)
    assert "read in place" not in str(info.value)
    assert not target.b.numpy().any() and not view.any()


def test_missing_or_short_data_file_found_before_anything_changes(
    tmp_path: pathlib.Path,
) -> None:
    path = _write(tmp_path)
    data = path + ".data-00000-of-00001"
    with dtckpt.BundleReader(path) as reader:
        end_of_b = reader.entry("m/b/.ATTRIBUTES/VARIABLE_VALUE").offset + 16
    os.truncate(data, end_of_b - 1)  # m/b's last byte gone; m/a (read first) still whole
    target = _model(0.0, 0.0)
    with pytest.raises(dtckpt.errors.OutOfRangeError, match="truncated"):
        dtckpt.Checkpoint(m=target).read(path)
    assert not target.a.numpy().any() and not target.b.numpy().any()
    os.unlink(data)
    with pytest.raises(dtckpt.errors.NotFoundError, match="data file is missing"):
        dtckpt.Checkpoint(m=target).read(path)
    assert not target.a.numpy().any() and not target.b.numpy().any()


def test_missing_key_found_before_reading(tmp_path: pathlib.Path) -> None:
    path = _write(tmp_path)
    # A bundle whose object graph names a key it does not hold (m/b's value).
    prefix = str(tmp_path / "bare")
    reader = dtckpt.load_checkpoint(path)
    keys = [OBJECT_GRAPH_PROTO_KEY, "m/a/.ATTRIBUTES/VARIABLE_VALUE"]
    dtckpt.save_v2(prefix, keys, ["", ""], [reader.get_tensor(k) for k in keys])
    target = _model(0.0, 0.0)
    with pytest.raises(dtckpt.errors.TensorNotFoundError):
        dtckpt.Checkpoint(m=target).read(prefix)
    assert not target.a.numpy().any()


def test_pending_restore_creates_no_reference_cycle(tmp_path: pathlib.Path) -> None:
    path = _write(tmp_path)
    root = dtckpt.Module()
    status = dtckpt.Checkpoint(m=root).read(path)  # m.a and m.b wait for creation
    probe = weakref.ref(root)
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        del status, root
        assert probe() is None  # freed by reference counting alone
    finally:
        if was_enabled:
            gc.enable()


def test_deferred_restore_still_works_after_status_is_dropped(tmp_path: pathlib.Path) -> None:
    path = _write(tmp_path)
    root = dtckpt.Module()
    dtckpt.Checkpoint(m=root).read(path)
    gc.collect()
    root.a = dtckpt.Variable(np.zeros(3, np.float32))
    assert np.array_equal(root.a.numpy(), np.ones(3, np.float32))


def _open_paths() -> set[str]:
    out = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            out.add(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            pass
    return out


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs Linux /proc")
def test_no_file_stays_open_while_restorations_are_pending(tmp_path: pathlib.Path) -> None:
    path = _write(tmp_path)
    root = dtckpt.Module()
    root.a = dtckpt.Variable(np.zeros(3, np.float32))
    status = dtckpt.Checkpoint(m=root).read(path)  # m.b is pending
    data = os.path.realpath(path + ".data-00000-of-00001")
    assert data not in _open_paths()
    root.b = dtckpt.Variable(np.zeros(4, np.float32))  # restored on creation: reopened
    assert np.array_equal(root.b.numpy(), np.full(4, 2.0, np.float32))
    assert data not in _open_paths()
    status.assert_consumed()


def test_a_chain_of_ten_thousand_modules_saves_and_restores(tmp_path: pathlib.Path) -> None:
    """No walk recurses: depth is limited by memory, not by Python's recursion limit."""

    def chain(value: float) -> dtckpt.Module:
        root = node = dtckpt.Module()
        for _ in range(10_000):
            node.child = dtckpt.Module()
            node = node.child
        node.v = dtckpt.Variable(np.float32(value))
        return root

    path = dtckpt.Checkpoint(m=chain(7.0)).write(str(tmp_path / "deep"))
    target = chain(0.0)
    assert len(target.submodules) == 10_000 and len(target.variables) == 1
    dtckpt.Checkpoint(m=target).read(path).assert_consumed()
    assert float(target.variables[0].numpy()) == 7.0
    # Restored on creation, too: the chain attached after the read.
    later = dtckpt.Module()
    status = dtckpt.Checkpoint(m=later).read(path)
    later.child = chain(0.0).child
    status.assert_consumed()
    assert float(later.variables[0].numpy()) == 7.0

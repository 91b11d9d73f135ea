"""Checkpoint save/write/read/restore, statuses, deferred restoration and options."""

from __future__ import annotations

import logging
import os
import pathlib
import threading

import numpy as np
import pytest

import dtckpt
from dtckpt.errors import InvalidArgumentError, NotFoundError


class Net(dtckpt.Module):
    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.v = dtckpt.Variable(np.arange(3, dtype=np.float32) * scale)
        self.inner = dtckpt.Module()
        self.inner.w = dtckpt.Variable(np.full((2, 2), scale, np.float32))


def _values(net: Net) -> list[list[float]]:
    return [net.v.numpy().tolist(), net.inner.w.numpy().ravel().tolist()]


def test_save_numbers_checkpoints_and_writes_state(tmp_path: pathlib.Path) -> None:
    ckpt = dtckpt.Checkpoint(model=Net())
    first = ckpt.save(str(tmp_path / "ckpt"))
    second = ckpt.save(str(tmp_path / "ckpt"))
    assert first.endswith("ckpt-1") and second.endswith("ckpt-2")
    assert int(ckpt.save_counter.numpy()) == 2
    assert (tmp_path / "checkpoint").read_text() == (
        'model_checkpoint_path: "ckpt-2"\nall_model_checkpoint_paths: "ckpt-2"\n'
    )
    assert dtckpt.latest_checkpoint(str(tmp_path)) == second


def test_write_has_no_counter_or_state(tmp_path: pathlib.Path) -> None:
    path = dtckpt.Checkpoint(model=Net()).write(str(tmp_path / "w"))
    assert path == str(tmp_path / "w")
    assert not (tmp_path / "checkpoint").exists()
    names = [n for n, _ in dtckpt.list_variables(path)]
    assert "save_counter/.ATTRIBUTES/VARIABLE_VALUE" not in names
    assert "model/inner/w/.ATTRIBUTES/VARIABLE_VALUE" in names


def test_restore_values_and_counter(tmp_path: pathlib.Path) -> None:
    src = dtckpt.Checkpoint(model=Net(2.0))
    src.save(str(tmp_path / "ckpt"))
    path = src.save(str(tmp_path / "ckpt"))
    dst = dtckpt.Checkpoint(model=Net(0.0))
    dst.restore(path).assert_consumed()
    assert _values(dst.model) == _values(src.model)
    assert int(dst.save_counter.numpy()) == 2


def test_read_of_write_is_consumed_but_restore_is_not(tmp_path: pathlib.Path) -> None:
    path = dtckpt.Checkpoint(model=Net(3.0)).write(str(tmp_path / "w"))
    dtckpt.Checkpoint(model=Net()).read(path).assert_consumed()
    status = dtckpt.Checkpoint(model=Net()).restore(path)
    status.assert_nontrivial_match()
    with pytest.raises(AssertionError, match="not bound"):
        status.assert_consumed()  # save_counter exists now and is not in the checkpoint
    status.expect_partial()


@pytest.mark.parametrize("order", ["module-first", "variable-first", "inner-later"])
def test_deferred_restoration(tmp_path: pathlib.Path, order: str) -> None:
    path = dtckpt.Checkpoint(model=Net(5.0)).write(str(tmp_path / "w"))
    if order == "module-first":
        model = dtckpt.Module()
        status = dtckpt.Checkpoint(model=model).read(path)
        model.v = dtckpt.Variable(np.zeros(3, np.float32))
        model.inner = dtckpt.Module()
        model.inner.w = dtckpt.Variable(np.zeros((2, 2), np.float32))
    elif order == "variable-first":
        ckpt = dtckpt.Checkpoint()
        status = ckpt.read(path)
        model = dtckpt.Module()
        model.inner = dtckpt.Module()
        model.inner.w = dtckpt.Variable(np.zeros((2, 2), np.float32))
        model.v = dtckpt.Variable(np.zeros(3, np.float32))
        ckpt.model = model  # the whole subtree restores on attach
    else:
        model = dtckpt.Module()
        model.v = dtckpt.Variable(np.zeros(3, np.float32))
        status = dtckpt.Checkpoint(model=model).read(path)
        inner = dtckpt.Module()
        inner.w = dtckpt.Variable(np.zeros((2, 2), np.float32))
        model.inner = inner
    assert model.v.numpy().tolist() == [0.0, 5.0, 10.0]
    assert model.inner.w.numpy().ravel().tolist() == [5.0] * 4
    status.assert_consumed()


def test_deferred_into_lists_and_dicts(tmp_path: pathlib.Path) -> None:
    m = dtckpt.Module()
    m.layers = [dtckpt.Variable(1.0), dtckpt.Variable(2.0)]
    m.table = {"k": dtckpt.Variable(3.0)}
    path = dtckpt.Checkpoint(m=m).write(str(tmp_path / "w"))
    n = dtckpt.Module()
    n.layers = []
    n.table = {}
    status = dtckpt.Checkpoint(m=n).read(path)
    n.layers.append(dtckpt.Variable(0.0))
    n.layers.append(dtckpt.Variable(0.0))
    n.table["k"] = dtckpt.Variable(0.0)
    assert [float(v.numpy()) for v in n.layers] == [1.0, 2.0]
    assert float(n.table["k"].numpy()) == 3.0
    status.assert_consumed()


def test_newer_restore_wins_over_older_deferred(tmp_path: pathlib.Path) -> None:
    a = dtckpt.Checkpoint(model=Net(1.0)).write(str(tmp_path / "a"))
    b = dtckpt.Checkpoint(model=Net(2.0)).write(str(tmp_path / "b"))
    model = dtckpt.Module()
    ckpt = dtckpt.Checkpoint(model=model)
    ckpt.read(a)
    ckpt.read(b)
    model.v = dtckpt.Variable(np.zeros(3, np.float32))
    assert model.v.numpy().tolist() == [0.0, 2.0, 4.0]


def test_status_methods(tmp_path: pathlib.Path) -> None:
    path = dtckpt.Checkpoint(model=Net()).write(str(tmp_path / "w"))
    partial = dtckpt.Module()
    partial.v = dtckpt.Variable(np.zeros(3, np.float32))
    status = dtckpt.Checkpoint(model=partial).read(path)
    status.assert_existing_objects_matched().assert_nontrivial_match()
    with pytest.raises(AssertionError, match="Unresolved object"):
        status.assert_consumed()
    assert status.expect_partial() is status
    status.run_restore_ops()
    extra = Net()
    extra.unsaved = dtckpt.Variable(1.0)
    with pytest.raises(AssertionError, match="not bound"):
        dtckpt.Checkpoint(model=extra).read(path).assert_existing_objects_matched()
    empty = dtckpt.Checkpoint(other=dtckpt.Variable(1.0)).read(path)
    with pytest.raises(AssertionError, match="Nothing except the root"):
        empty.assert_nontrivial_match()
    none = dtckpt.Checkpoint(model=Net()).restore(None)
    with pytest.raises(AssertionError):
        none.assert_consumed()


def test_unused_values_warn_unless_expect_partial(tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture) -> None:
    import gc

    path = dtckpt.Checkpoint(model=Net()).write(str(tmp_path / "w"))
    with caplog.at_level(logging.WARNING, logger="dtckpt"):
        status = dtckpt.Checkpoint(model=dtckpt.Module()).read(path)
        del status
        gc.collect()
    assert "Value in checkpoint could not be found" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dtckpt"):
        status = dtckpt.Checkpoint(model=dtckpt.Module()).read(path).expect_partial()
        del status
        gc.collect()
    assert caplog.text == ""


def test_constructor_value_errors() -> None:
    with pytest.raises(ValueError, match="expecting root"):
        dtckpt.Checkpoint(root=3)
    with pytest.raises(ValueError, match="expecting x to be a trackable"):
        dtckpt.Checkpoint(x=3)
    root = dtckpt.Module()
    root.child = dtckpt.Variable(1.0)
    with pytest.raises(ValueError, match="root.child already exists"):
        dtckpt.Checkpoint(root, child=dtckpt.Variable(2.0))
    dtckpt.Checkpoint(root, child=root.child)  # the same object is fine


def test_root_with_kwargs_round_trip(tmp_path: pathlib.Path) -> None:
    root = Net(4.0)
    extra = dtckpt.Variable(7.0)
    path = dtckpt.Checkpoint(root, extra=extra).save(str(tmp_path / "ckpt"))
    names = [n for n, _ in dtckpt.list_variables(path)]
    assert "extra/.ATTRIBUTES/VARIABLE_VALUE" in names and "v/.ATTRIBUTES/VARIABLE_VALUE" in names
    root2, extra2 = Net(0.0), dtckpt.Variable(0.0)
    ckpt2 = dtckpt.Checkpoint(root2, extra=extra2)
    ckpt2.restore(path).assert_consumed()
    assert float(extra2.numpy()) == 7.0 and _values(root2) == _values(root)
    assert int(ckpt2.save_counter.numpy()) == 1


def test_mismatch_names_key_path_and_changes_nothing(tmp_path: pathlib.Path) -> None:
    path = dtckpt.Checkpoint(model=Net(1.0)).write(str(tmp_path / "w"))
    wrong = Net(9.0)
    wrong.v = dtckpt.Variable(np.zeros(4, np.float32))
    shapes = r"\(root\).model.v.*shape \(3,\).*shape \(4,\)"
    with pytest.raises(InvalidArgumentError, match=shapes):
        dtckpt.Checkpoint(model=wrong).read(path)
    assert wrong.inner.w.numpy().ravel().tolist() == [9.0] * 4
    wrong_dtype = Net(9.0)
    wrong_dtype.v = dtckpt.Variable(np.zeros(3, np.int64))
    with pytest.raises(InvalidArgumentError, match="expected dtype int64 .* original dtype float"):
        dtckpt.Checkpoint(model=wrong_dtype).read(path)


def test_missing_path(tmp_path: pathlib.Path) -> None:
    with pytest.raises(NotFoundError, match="nothing"):
        dtckpt.Checkpoint(model=Net()).restore(str(tmp_path / "nothing"))


def test_savedmodel_directory(tmp_path: pathlib.Path) -> None:
    saved = tmp_path / "saved"
    (saved / "variables").mkdir(parents=True)
    (saved / "saved_model.pb").write_bytes(b"")
    dtckpt.Checkpoint(model=Net(6.0)).write(str(saved / "variables" / "variables"))
    net = Net(0.0)
    dtckpt.Checkpoint(model=net).restore(str(saved)).expect_partial()
    assert net.v.numpy().tolist() == [0.0, 6.0, 12.0]


def test_name_based_restore(tmp_path: pathlib.Path) -> None:
    prefix = str(tmp_path / "tf1")
    dtckpt.save_v2(prefix, ["dense/kernel", "global_step"], ["", ""],
                   [np.ones((2, 2), np.float32), np.int64(9)])
    m = dtckpt.Module()
    m.kernel = dtckpt.Variable(np.zeros((2, 2), np.float32), name="dense/kernel")
    m.step = dtckpt.Variable(np.int64(0), name="global_step")
    status = dtckpt.Checkpoint(model=m).restore(prefix)
    status.assert_consumed()
    assert m.kernel.numpy().sum() == 4 and int(m.step.numpy()) == 9
    m.other = dtckpt.Variable(1.0, name="not_there")
    with pytest.raises(AssertionError, match="not_there"):
        dtckpt.Checkpoint(model=m).restore(prefix).assert_consumed()


def test_async_write_returns_early_and_sync_waits(tmp_path: pathlib.Path) -> None:
    net = Net(1.0)
    ckpt = dtckpt.Checkpoint(model=net)
    options = dtckpt.CheckpointOptions(enable_async=True)
    path = ckpt.save(str(tmp_path / "ckpt"), options=options)
    net.v.assign(np.full(3, 42.0, np.float32))  # after the copy: not in the checkpoint
    ckpt.sync()
    restored = Net(0.0)
    dtckpt.Checkpoint(model=restored).restore(path).assert_consumed()
    assert restored.v.numpy().tolist() == [0.0, 1.0, 2.0]
    assert dtckpt.latest_checkpoint(str(tmp_path)) == path


def test_async_errors_surface(tmp_path: pathlib.Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    ckpt = dtckpt.Checkpoint(model=Net())
    ckpt.write(str(blocker / "ckpt"), options=dtckpt.CheckpointOptions(enable_async=True))
    with pytest.raises(OSError):
        ckpt.sync()
    ckpt.sync()  # the error is raised once, then the checkpoint is usable again


def test_async_error_raised_by_next_save(tmp_path: pathlib.Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    ckpt = dtckpt.Checkpoint(model=Net())
    ckpt.write(str(blocker / "ckpt"), options=dtckpt.CheckpointOptions(enable_async=True))
    with pytest.raises(OSError):
        ckpt.save(str(tmp_path / "ok"))


def test_write_callbacks(tmp_path: pathlib.Path) -> None:
    seen: list[str] = []
    event = threading.Event()
    options = dtckpt.CheckpointOptions(
        experimental_write_callbacks=[seen.append, event.set]
    )
    path = dtckpt.Checkpoint(model=Net()).write(str(tmp_path / "w"), options=options)
    assert seen == [path] and event.is_set()
    with pytest.raises(InvalidArgumentError):
        dtckpt.CheckpointOptions(experimental_write_callbacks=[lambda a, b: None])


def test_golden_object_checkpoint_restores(tmp_path: pathlib.Path) -> None:
    from tests.conftest import GOLDEN

    prefix = str(GOLDEN / "little_checkpoint" / "ckpt")
    model = dtckpt.Module()
    model.kernel = dtckpt.Variable(np.zeros((2, 3), np.float32))
    model.step = dtckpt.Variable(np.int64(0))
    shapes = dict(dtckpt.list_variables(prefix))
    model.kernel = dtckpt.Variable(np.zeros(shapes["model/kernel/.ATTRIBUTES/VARIABLE_VALUE"],
                                            dtckpt.load_checkpoint(prefix).get_variable_to_dtype_map()["model/kernel/.ATTRIBUTES/VARIABLE_VALUE"]))
    model.step = dtckpt.Variable(np.zeros(shapes["model/step/.ATTRIBUTES/VARIABLE_VALUE"],
                                          dtckpt.load_checkpoint(prefix).get_variable_to_dtype_map()["model/step/.ATTRIBUTES/VARIABLE_VALUE"]))
    dtckpt.Checkpoint(model=model).read(prefix).assert_consumed()
    reader = dtckpt.load_checkpoint(prefix)
    assert np.array_equal(model.kernel.numpy(), reader.get_tensor("model/kernel/.ATTRIBUTES/VARIABLE_VALUE"))
    os.fspath(tmp_path)


def test_name_based_restore_fills_every_variable_of_a_name(tmp_path: pathlib.Path) -> None:
    prefix = str(tmp_path / "tf1")
    dtckpt.save_v2(prefix, ["Variable"], [""], [np.float32(3.0)])
    m = dtckpt.Module()
    m.a = dtckpt.Variable(0.0)
    m.b = dtckpt.Variable(0.0)
    dtckpt.Checkpoint(model=m).restore(prefix).assert_consumed()
    assert float(m.a.numpy()) == float(m.b.numpy()) == 3.0


def test_kwargs_are_attributes_also_with_a_root() -> None:
    root = dtckpt.Module()
    alpha = dtckpt.Variable(1.0)
    ckpt = dtckpt.Checkpoint(root, alpha=alpha, items=[dtckpt.Variable(2.0)])
    assert ckpt.alpha is alpha
    assert float(ckpt.items[0].numpy()) == 2.0


@pytest.mark.parametrize(
    "graph_value, message",
    [(np.array([b"a", b"b"], dtype=object), "not a scalar string"),
     (np.float32(1.0), "not a scalar string"),
     (np.array(b"\x0a\x04\x0a\x02\x10\x05", dtype=object), "wrong wire type")],
)
def test_damaged_object_graph_is_a_located_data_loss(tmp_path: pathlib.Path, graph_value, message) -> None:  # type: ignore[no-untyped-def]
    prefix = str(tmp_path / "bad")
    dtckpt.save_v2(prefix, ["_CHECKPOINTABLE_OBJECT_GRAPH"], [""], [graph_value])
    with pytest.raises(dtckpt.errors.DataLossError, match=message) as info:
        dtckpt.Checkpoint(model=Net()).read(prefix)
    assert info.value.path == prefix + ".index"
    assert info.value.key == "_CHECKPOINTABLE_OBJECT_GRAPH"

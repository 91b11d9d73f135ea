"""``dtckpt.train``: views, path helpers, the state file, and Checkpoint's TF-only corners
(rules O-VW-1, O-TF-1, O-VA-2, O-CK-4, O-CK-7..9)."""

from __future__ import annotations

import copy
import gc
import os
import pathlib
import subprocess
import sys
import weakref

import numpy as np
import pytest

import dtckpt
import dtckpt.train as train
from dtckpt.checkpoint.checkpoint import add_variable
from dtckpt.checkpoint.state import update_checkpoint_state_internal
from dtckpt.checkpoint.trackable import Trackable
from dtckpt.errors import (
    DataLossError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    TensorNotFoundError,
)


def test_train_names_and_lazy_import() -> None:
    for name in train.__all__:
        assert getattr(train, name) is not None, name
    assert train.experimental.PythonState is dtckpt.train.experimental.PythonState
    assert train.Checkpoint is dtckpt.Checkpoint and train.load_variable is dtckpt.load_variable
    code = (
        "import sys, dtckpt.train; "
        "print('dtckpt.checkpoint.checkpoint' in sys.modules, 'numba' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def _saved_root(tmp_path: pathlib.Path) -> tuple[Trackable, str]:
    root, leaf = Trackable(), Trackable()
    root._track_trackable(leaf, "leaf")
    return root, dtckpt.Checkpoint(root=root).save(str(tmp_path / "ckpt"))


def test_checkpoint_view(tmp_path: pathlib.Path) -> None:
    _, path = _saved_root(tmp_path)
    view = train.CheckpointView(path)
    assert view.children(0) == {"leaf": 1, "root": 0, "save_counter": 2}
    assert view.descendants() == [0, 1, 2]
    other, leaf = Trackable(), Trackable()
    other._track_trackable(leaf, "leaf")
    other._track_trackable(Trackable(), "extra")
    matched, only_checkpoint, only_objects = view.diff(other)
    assert matched == {0: other, 1: leaf} and only_checkpoint == [2]
    assert [type(o) for o in only_objects] == [type(leaf)] and only_objects[0] is not leaf


def test_checkpoint_view_refuses_name_based_and_damaged_checkpoints(tmp_path: pathlib.Path) -> None:
    prefix = str(tmp_path / "names")
    dtckpt.save_v2(prefix, ["w"], [""], [np.zeros(2, np.float32)])
    with pytest.raises(InvalidArgumentError, match="does not appear to be object-based"):
        train.CheckpointView(prefix)
    bad = str(tmp_path / "bad")
    dtckpt.save_v2(bad, ["_CHECKPOINTABLE_OBJECT_GRAPH"], [""], [np.array(b"\x0a\x04\x0a\x02\x10\x05", dtype=object)])
    with pytest.raises(DataLossError) as info:
        train.CheckpointView(bad)
    assert info.value.path == bad + ".index" and info.value.key == "_CHECKPOINTABLE_OBJECT_GRAPH"
    with pytest.raises(NotFoundError):
        train.CheckpointView(str(tmp_path / "nothing"))


def test_trackable_view() -> None:
    root, leaf = Trackable(), Trackable()
    root._track_trackable(leaf, "leaf")
    leaf._track_trackable(root, "back")  # a cycle: each object once
    assert train.TrackableView.children(root) == {"leaf": leaf}
    view = train.TrackableView(root)
    assert view.descendants() == [root, leaf]
    assert train.TrackableView(weakref.ref(root)).root is root


def test_load_variable(tmp_path: pathlib.Path) -> None:
    m = dtckpt.Module()
    m.v = dtckpt.Variable(np.arange(3, dtype=np.int32))
    path = dtckpt.Checkpoint(m=m).save(str(tmp_path / "ckpt"))
    key = "m/v/.ATTRIBUTES/VARIABLE_VALUE"
    assert train.load_variable(path, key).tolist() == [0, 1, 2]
    assert train.load_variable(str(tmp_path), key + ":0").tolist() == [0, 1, 2]
    with pytest.raises(TensorNotFoundError):
        train.load_variable(path, "nope")


def test_checkpoints_iterator(tmp_path: pathlib.Path) -> None:
    ckpt = dtckpt.Checkpoint(v=dtckpt.Variable(1.0))
    first = ckpt.save(str(tmp_path / "ckpt"))
    assert list(train.checkpoints_iterator(str(tmp_path), timeout=0.2)) == [first]
    calls: list[str] = []

    def timeout_fn() -> bool:  # asked after each path and at each timeout
        calls.append("asked")
        if len(calls) == 2:
            ckpt.save(str(tmp_path / "ckpt"))
        return len(calls) >= 3

    seen = list(train.checkpoints_iterator(str(tmp_path), timeout=0.2, timeout_fn=timeout_fn))
    assert seen == [first, str(tmp_path / "ckpt-2")] and len(calls) == 3
    assert list(train.checkpoints_iterator(str(tmp_path / "empty"), timeout=0.1)) == []


def test_generate_checkpoint_state_proto(tmp_path: pathlib.Path) -> None:
    absolute = str(tmp_path / "model-0")
    state = train.generate_checkpoint_state_proto(str(tmp_path), absolute)
    assert state.model_checkpoint_path == absolute and state.all_model_checkpoint_paths == [absolute]
    relative = train.generate_checkpoint_state_proto("train", os.path.join("train", "model-0"))
    assert relative.model_checkpoint_path == "model-0"
    paths = ["model-2"]
    state = train.generate_checkpoint_state_proto(str(tmp_path), absolute, paths)
    assert paths == ["model-2", absolute] and state.all_model_checkpoint_paths is paths  # as TF
    with pytest.raises(InvalidArgumentError, match="timestamps, if provided, must match"):
        train.generate_checkpoint_state_proto(str(tmp_path), absolute, [], [1.0, 2.0])


def test_update_checkpoint_state_public_and_internal(tmp_path: pathlib.Path) -> None:
    elsewhere = str(tmp_path / "elsewhere" / "model-1")
    directory = tmp_path / "run"
    directory.mkdir()
    train.update_checkpoint_state(
        str(directory), str(directory / "model-2"), [elsewhere, str(directory / "model-2")]
    )
    text = (directory / "checkpoint").read_text()
    assert f'all_model_checkpoint_paths: "{elsewhere}"' in text  # absolute stays absolute
    update_checkpoint_state_internal(
        str(directory), str(directory / "model-3"), [str(directory / "model-3")],
        save_relative_paths=True,
    )
    assert (directory / "checkpoint").read_text().startswith('model_checkpoint_path: "model-3"')
    state = train.get_checkpoint_state(str(directory))
    assert state is not None and state.model_checkpoint_path == str(directory / "model-3")
    with pytest.raises(FailedPreconditionError, match="conflicts with path used for checkpoint"):
        update_checkpoint_state_internal(str(directory), str(directory / "checkpoint"))


def test_variable_ref_hash_and_arithmetic() -> None:
    v = dtckpt.Variable(np.int32(2))
    with pytest.raises(TypeError, match="use variable.ref"):
        hash(v)
    refs = {v.ref(): "v"}
    assert refs[v.ref()] == "v" and v.ref().deref() is v and v.ref() != dtckpt.Variable(2).ref()
    assert int(v + 3) == 5 and int(3 * v) == 6 and int(v**2) == 4 and int(-v) == -2
    assert (v + 3).dtype == np.int32 and bool(v > 1) and float(v / 4) == 0.5
    w = dtckpt.Variable(np.arange(4.0))
    assert (w @ w) == 14.0 and w[1:3].tolist() == [1.0, 2.0] and v == v and v != w


def test_weakly_held_root(tmp_path: pathlib.Path) -> None:
    root = dtckpt.Module()
    root.v = dtckpt.Variable(1)
    ref = root.v.ref()
    ckpt = dtckpt.Checkpoint(root=weakref.ref(root))
    path = ckpt.save(str(tmp_path / "ckpt"))
    root.v.assign(2)
    ckpt.restore(path)
    assert int(root.v.numpy()) == 1
    del root
    gc.collect()
    count = sys.getrefcount(ref.deref())  # (outside an assert, which would hold one more)
    assert count == 2  # only ``ref`` holds the variable now
    with pytest.raises(FailedPreconditionError, match="no longer exists"):
        ckpt.save(str(tmp_path / "ckpt"))


def test_deepcopy_of_a_checkpoint(tmp_path: pathlib.Path) -> None:
    v = dtckpt.Variable(1.0)
    original = dtckpt.Checkpoint(v=v, items=[dtckpt.Variable(3.0)])
    copied = copy.deepcopy(original)
    copied.v.assign(2.0)
    assert float(v.numpy()) == 1.0 and copied.items[0] is not original.items[0]
    path = copied.save(str(tmp_path / "ckpt"))
    original.restore(path).assert_consumed()
    assert float(v.numpy()) == 2.0


def test_add_variable(tmp_path: pathlib.Path) -> None:
    obj = dtckpt.Module()
    with pytest.raises(ValueError, match="do not specify shape"):
        add_variable(obj, "twice", shape=[], initializer=1)
    constant = add_variable(obj, "constant", initializer=1)
    ones = add_variable(obj, "ones", shape=[2], initializer=lambda shape, dtype: np.ones(shape, dtype))
    drawn = add_variable(obj, "drawn", shape=[3, 4], dtype=np.float64)
    counted = add_variable(obj, "counted", shape=[2], dtype=np.int64)
    assert constant.numpy() == 1 and constant.dtype == np.float32 and ones.numpy().tolist() == [1, 1]
    assert drawn.dtype == np.float64 and np.abs(drawn.numpy()).max() <= np.sqrt(6 / 7)
    assert counted.numpy().tolist() == [0, 0]
    with pytest.raises(ValueError, match="'constant'.*already declared"):
        add_variable(obj, "constant", shape=[])
    path = dtckpt.Checkpoint(m=obj).write(str(tmp_path / "w"))
    fresh = dtckpt.Module()
    status = dtckpt.Checkpoint(m=fresh).read(path)
    restored = add_variable(fresh, "drawn", shape=[3, 4], dtype=np.float64)  # restore on create
    np.testing.assert_array_equal(restored.numpy(), drawn.numpy())
    status.expect_partial()


def test_missing_checkpoint_messages(tmp_path: pathlib.Path) -> None:
    missing = str(tmp_path / "nope")
    with pytest.raises(NotFoundError, match="Failed to find any matching files for"):
        dtckpt.Checkpoint().read(missing)
    with pytest.raises(NotFoundError, match=r"Error when restoring from checkpoint or SavedModel at .*nope: .*\n.*checkpoint suffix"):
        dtckpt.Checkpoint().restore(missing)

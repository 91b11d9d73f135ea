"""tf.train.CheckpointManager and dtckpt.CheckpointManager driven through the same saves.

Both must leave the same files with byte-identical bundles and state files that
differ only in timestamp values; with one fake clock fed to both, the state
files are identical too. Each library's manager picks up the other's directory,
and TensorFlow restores dtckpt's latest checkpoint with ``assert_consumed()``.
"""

from __future__ import annotations

import pathlib
import re
import types
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

pytest.importorskip("tensorflow")
import tensorflow as tf  # noqa: E402
from tensorflow.python.checkpoint import checkpoint_management  # noqa: E402

import dtckpt  # noqa: E402
import dtckpt.checkpoint.manager as manager_module  # noqa: E402

W = np.arange(4, dtype=np.float32).reshape(2, 2)
K = np.array([1, 2, 3], dtype=np.int64)
TIMESTAMP = re.compile(r"^((?:all_model_checkpoint|last_preserved)_timestamps?): .*$", re.M)


def build(lib: Any, scale: float = 1.0) -> Any:
    if lib is tf:
        m = tf.Module(name="m")
        m.w = tf.Variable(W * scale, name="w")
        m.k = tf.Variable(K * int(scale))
        return tf.train.Checkpoint(v=tf.Variable(np.float32(0.5 * scale), name="v"), m=m)
    dm = dtckpt.Module(name="m")
    dm.w = dtckpt.Variable(W * scale, name="w")
    dm.k = dtckpt.Variable(K * int(scale))
    return dtckpt.Checkpoint(v=dtckpt.Variable(np.float32(0.5 * scale), name="v"), m=dm)


def manager(lib: Any, ckpt: Any, directory: pathlib.Path, **kwargs: Any) -> Any:
    cls = tf.train.CheckpointManager if lib is tf else dtckpt.CheckpointManager
    return cls(ckpt, str(directory), **kwargs)


# Each step: ("save", checkpoint_number) or ("assign", value for v and m.k's scale).
SEQUENCE: list[tuple[str, Any]] = [
    ("save", None),
    ("assign", 2.0),
    ("save", None),
    ("save", 10),
    ("assign", 3.0),
    ("save", None),
    ("save", None),
]


def run(lib: Any, directory: pathlib.Path, **kwargs: Any) -> tuple[Any, list[str | None]]:
    ckpt = build(lib)
    mgr = manager(lib, ckpt, directory, **kwargs)
    returned = []
    for action, arg in SEQUENCE:
        if action == "assign":
            ckpt.v.assign(np.float32(arg))
            ckpt.m.k.assign(K * int(arg))
        else:
            path = mgr.save(checkpoint_number=arg)
            returned.append(None if path is None else pathlib.Path(path).name)
    return mgr, returned


def listing(directory: pathlib.Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir()}


def test_same_saves_same_files(tmp_path: pathlib.Path) -> None:
    theirs, tf_returned = run(tf, tmp_path / "tf", max_to_keep=2)
    ours, our_returned = run(dtckpt, tmp_path / "ours", max_to_keep=2)
    assert our_returned == tf_returned == ["ckpt-1", "ckpt-2", "ckpt-10", "ckpt-4", "ckpt-5"]
    tf_files, our_files = listing(tmp_path / "tf"), listing(tmp_path / "ours")
    assert sorted(our_files) == sorted(tf_files)
    for name, data in tf_files.items():
        if name != "checkpoint":
            assert our_files[name] == data, name
    tf_state = tf_files["checkpoint"].decode()
    our_state = our_files["checkpoint"].decode()
    assert TIMESTAMP.sub(r"\1: T", our_state) == TIMESTAMP.sub(r"\1: T", tf_state)
    assert len(TIMESTAMP.findall(our_state)) == 3
    assert [pathlib.Path(p).name for p in ours.checkpoints] == [
        pathlib.Path(p).name for p in theirs.checkpoints
    ]


def test_tf_manager_restores_dtckpt_latest(tmp_path: pathlib.Path) -> None:
    ours, _ = run(dtckpt, tmp_path, max_to_keep=2)
    fresh = build(tf, scale=0.0)
    theirs = tf.train.CheckpointManager(fresh, str(tmp_path), max_to_keep=2)
    assert theirs.latest_checkpoint == ours.latest_checkpoint
    assert theirs.checkpoints == ours.checkpoints
    fresh.restore(theirs.latest_checkpoint).assert_consumed()
    assert float(fresh.v.numpy()) == 3.0
    assert fresh.m.k.numpy().tolist() == (K * 3).tolist()
    assert fresh.m.w.numpy().tolist() == W.tolist()
    assert int(fresh.save_counter.numpy()) == 5
    # TF's manager carries on in dtckpt's directory: the next save drops ckpt-4.
    assert pathlib.Path(theirs.save()).name == "ckpt-6"
    assert not (tmp_path / "ckpt-4.index").exists()


def test_dtckpt_manager_restores_tf_latest(tmp_path: pathlib.Path) -> None:
    theirs, _ = run(tf, tmp_path, max_to_keep=2)
    fresh = build(dtckpt, scale=0.0)
    ours = dtckpt.CheckpointManager(fresh, str(tmp_path), max_to_keep=2)
    assert ours.checkpoints == theirs.checkpoints
    assert ours.restore_or_initialize() == theirs.latest_checkpoint
    fresh.restore(ours.latest_checkpoint).assert_consumed()
    assert float(fresh.v.numpy()) == 3.0


@pytest.fixture
def shared_clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[list[float]], None]:
    """The same ``time.time`` readings for both managers, so timestamps agree exactly."""

    def install(readings: list[float]) -> None:
        for module in (checkpoint_management, manager_module):
            queue = list(readings)
            monkeypatch.setattr(
                module, "time", types.SimpleNamespace(time=lambda q=queue: q.pop(0))
            )

    return install


@pytest.mark.parametrize(
    ("kwargs", "kept"),
    [
        ({"max_to_keep": 2}, ["ckpt-4", "ckpt-5"]),
        ({"max_to_keep": None}, ["ckpt-1", "ckpt-10", "ckpt-2", "ckpt-4", "ckpt-5"]),
        # ckpt-2 and ckpt-4 left the active set over an hour after the last preserved one.
        ({"max_to_keep": 1, "keep_checkpoint_every_n_hours": 1}, ["ckpt-2", "ckpt-4", "ckpt-5"]),
    ],
)
def test_same_clock_same_state_file(
    kwargs: dict[str, Any],
    kept: list[str],
    tmp_path: pathlib.Path,
    shared_clock: Callable[[list[float]], None],
) -> None:
    t = 1_700_000_000.25
    # Construction, then one reading per save; wide gaps so that
    # keep_checkpoint_every_n_hours preserves some checkpoints.
    readings = [t, t + 10, t + 4000, t + 4100, t + 9000, t + 9100]
    shared_clock(readings)
    theirs, tf_returned = run(tf, tmp_path / "tf", **kwargs)
    shared_clock(readings)
    ours, our_returned = run(dtckpt, tmp_path / "ours", **kwargs)
    assert our_returned == tf_returned
    assert listing(tmp_path / "ours") == listing(tmp_path / "tf")
    assert sorted({name.split(".")[0] for name in listing(tmp_path / "ours")}) == [
        "checkpoint",
        *kept,
    ]
    assert [pathlib.Path(p).name for p in ours.checkpoints] == [
        pathlib.Path(p).name for p in theirs.checkpoints
    ]

"""``CheckpointManager``: retention, numbering, intervals, recovery, safe deletion, async saves.

No TensorFlow here. Time is a fake clock where timestamps matter, so state
files can be compared as literal text; ``og_manager`` (written by
``tf.train.CheckpointManager``) is reproduced byte for byte, state file
included, by feeding the manager TF's own timestamps.
"""

from __future__ import annotations

import logging
import os
import pathlib
import shutil
import threading
import types
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pytest

import dtckpt
import dtckpt.checkpoint.manager as manager_module
from dtckpt.pools import pool
from dtckpt.checkpoint.state import (
    format_checkpoint_state,
    get_checkpoint_state,
    parse_checkpoint_state,
)
from tests.conftest import Golden, assert_same_array, load_golden

DATA = ".data-00000-of-00001"


class Clock:
    """``time.time`` for the manager module: the given readings, then the last one plus a step."""

    def __init__(self, readings: Iterable[float], step: float = 1.0) -> None:
        self.readings, self.step = list(readings), step
        self.last = 0.0

    def __call__(self) -> float:
        self.last = self.readings.pop(0) if self.readings else self.last + self.step
        return self.last


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Clock]:
    def install(readings: Iterable[float], step: float = 1.0) -> Clock:
        fake = Clock(readings, step)
        monkeypatch.setattr(manager_module, "time", types.SimpleNamespace(time=fake))
        return fake

    return install


def make_checkpoint(scale: float = 1.0) -> dtckpt.Checkpoint:
    m = dtckpt.Module(name="m")
    m.w = dtckpt.Variable(np.arange(4, dtype=np.float32).reshape(2, 2) * scale, name="w")
    m.k = dtckpt.Variable(np.array([1, 2, 3], dtype=np.int64) * int(scale))
    return dtckpt.Checkpoint(v=dtckpt.Variable(np.float32(0.5 * scale), name="v"), m=m)


def files(directory: pathlib.Path) -> set[str]:
    return {p.name for p in directory.iterdir()}


def bundle(name: str) -> set[str]:
    return {name + ".index", name + DATA}


def state_text(
    paths: list[str], stamps: list[float], last_preserved: float, latest: str | None = None
) -> str:
    lines = [f'model_checkpoint_path: "{latest or paths[-1]}"']
    lines += [f'all_model_checkpoint_paths: "{p}"' for p in paths]
    lines += [f"all_model_checkpoint_timestamps: {t!r}" for t in stamps]
    lines += [f"last_preserved_timestamp: {last_preserved!r}"]
    return "".join(line + "\n" for line in lines)


# -- retention -------------------------------------------------------------------


@pytest.mark.parametrize("saves", [3, 4, 5])
def test_max_to_keep_leaves_the_newest(
    saves: int, tmp_path: pathlib.Path, clock: Callable[..., Clock]
) -> None:
    clock([1000.0], step=10.0)
    ckpt = make_checkpoint()
    manager = dtckpt.CheckpointManager(ckpt, str(tmp_path), max_to_keep=2)
    for i in range(1, saves + 1):
        assert manager.save() == str(tmp_path / f"ckpt-{i}")
        ckpt.v.assign(float(i))
    kept = [f"ckpt-{saves - 1}", f"ckpt-{saves}"]
    assert files(tmp_path) == {"checkpoint"} | bundle(kept[0]) | bundle(kept[1])
    assert manager.checkpoints == [str(tmp_path / k) for k in kept]
    assert manager.latest_checkpoint == str(tmp_path / kept[1])
    stamps = [1000.0 + 10.0 * (saves - 1), 1000.0 + 10.0 * saves]
    assert (tmp_path / "checkpoint").read_text() == state_text(kept, stamps, 999.0)
    assert dtckpt.latest_checkpoint(str(tmp_path)) == str(tmp_path / kept[1])
    assert int(ckpt.save_counter.numpy()) == saves


def test_max_to_keep_none_keeps_everything(
    tmp_path: pathlib.Path, clock: Callable[..., Clock]
) -> None:
    clock([50.0], step=1.0)
    manager = dtckpt.CheckpointManager(make_checkpoint(), tmp_path, max_to_keep=None)
    for _ in range(4):
        manager.save()
    names = [f"ckpt-{i}" for i in range(1, 5)]
    assert files(tmp_path) == {"checkpoint"}.union(*(bundle(n) for n in names))
    assert manager.checkpoints == [str(tmp_path / n) for n in names]
    assert (tmp_path / "checkpoint").read_text() == state_text(
        names, [51.0, 52.0, 53.0, 54.0], 49.0
    )


@pytest.mark.parametrize("bad", [0, -1])
def test_max_to_keep_must_be_positive(bad: int, tmp_path: pathlib.Path) -> None:
    with pytest.raises(ValueError, match="max_to_keep"):
        dtckpt.CheckpointManager(make_checkpoint(), tmp_path, max_to_keep=bad)


def test_interval_needs_a_step_counter(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ValueError, match="step_counter"):
        dtckpt.CheckpointManager(make_checkpoint(), tmp_path, 2, checkpoint_interval=5)


def test_properties(tmp_path: pathlib.Path) -> None:
    ckpt = make_checkpoint()
    manager = dtckpt.CheckpointManager(ckpt, tmp_path / "run", 3, checkpoint_name="model")
    assert manager.directory == str(tmp_path / "run")
    assert manager.checkpoint is ckpt
    assert manager.checkpoint_interval is None
    assert manager.latest_checkpoint is None and manager.checkpoints == []
    assert manager.save() == str(tmp_path / "run" / "model-1")


def test_keep_checkpoint_every_n_hours_preserves(
    tmp_path: pathlib.Path, clock: Callable[..., Clock]
) -> None:
    t = 10_000.0
    clock([t, t, t + 1000, t + 3700, t + 4000, t + 8000])
    manager = dtckpt.CheckpointManager(
        make_checkpoint(), tmp_path, max_to_keep=1, keep_checkpoint_every_n_hours=1
    )
    for _ in range(5):
        manager.save()
    # ckpt-3 left the active set 3700 s after the last preserved time (t - 1): kept on disk,
    # and no longer listed. ckpt-1, ckpt-2 and ckpt-4 were too close to a preserved time.
    assert files(tmp_path) == {"checkpoint"} | bundle("ckpt-3") | bundle("ckpt-5")
    assert manager.checkpoints == [str(tmp_path / "ckpt-5")]
    assert (tmp_path / "checkpoint").read_text() == state_text(["ckpt-5"], [t + 8000], t + 3700)
    # A later manager never deletes the preserved checkpoint.
    clock([t + 9000, t + 20_000, t + 30_000])
    later = dtckpt.CheckpointManager(manager.checkpoint, tmp_path, max_to_keep=1)
    assert later.checkpoints == [str(tmp_path / "ckpt-5")]
    later.save()
    later.save()
    assert files(tmp_path) == {"checkpoint"} | bundle("ckpt-3") | bundle("ckpt-7")


# -- numbering -------------------------------------------------------------------


def test_checkpoint_number_int_and_variable(tmp_path: pathlib.Path) -> None:
    ckpt = make_checkpoint()
    manager = dtckpt.CheckpointManager(ckpt, tmp_path, max_to_keep=2)
    assert manager.save(checkpoint_number=100) == str(tmp_path / "ckpt-100")
    step = dtckpt.Variable(np.int64(7))
    assert manager.save(checkpoint_number=step) == str(tmp_path / "ckpt-7")
    assert int(step.numpy()) == 7  # a given number is never incremented
    assert manager.save(checkpoint_number=np.int32(8)) == str(tmp_path / "ckpt-8")
    assert int(ckpt.save_counter.numpy()) == 3  # the counter still counts every save
    assert manager.save() == str(tmp_path / "ckpt-4")
    assert manager.checkpoints == [str(tmp_path / "ckpt-8"), str(tmp_path / "ckpt-4")]


def test_resaved_path_moves_to_the_end(tmp_path: pathlib.Path) -> None:
    manager = dtckpt.CheckpointManager(make_checkpoint(), tmp_path, max_to_keep=2)
    for number in (5, 6, 5):
        manager.save(checkpoint_number=number)
    assert manager.checkpoints == [str(tmp_path / "ckpt-6"), str(tmp_path / "ckpt-5")]
    manager.save(checkpoint_number=7)
    assert files(tmp_path) == {"checkpoint"} | bundle("ckpt-5") | bundle("ckpt-7")


# -- checkpoint_interval -----------------------------------------------------------


def test_checkpoint_interval_with_a_variable_step(tmp_path: pathlib.Path) -> None:
    ckpt = make_checkpoint()
    step = dtckpt.Variable(np.int64(0))
    manager = dtckpt.CheckpointManager(
        ckpt, tmp_path, max_to_keep=None, step_counter=step, checkpoint_interval=10
    )
    assert manager.checkpoint_interval == 10
    saved = []
    for value, check in [(0, True), (5, True), (10, True), (10, False), (12, False), (15, True)]:
        step.assign(np.int64(value))
        saved.append(manager.save(check_interval=check))
    names = [None if p is None else os.path.basename(p) for p in saved]
    # The same step is never saved twice, even with check_interval=False, which only
    # lifts the interval.
    assert names == ["ckpt-1", None, "ckpt-2", None, "ckpt-3", None]
    assert int(ckpt.save_counter.numpy()) == 3  # skipped saves do not count
    step.assign(np.int64(22))
    assert manager.save() == str(tmp_path / "ckpt-4")


@pytest.mark.parametrize("counter", [7, np.int64(7), np.array(7)])
def test_step_counter_may_be_int_like(counter: Any, tmp_path: pathlib.Path) -> None:
    manager = dtckpt.CheckpointManager(
        make_checkpoint(), tmp_path, 2, step_counter=counter, checkpoint_interval=1
    )
    assert manager.save() == str(tmp_path / "ckpt-1")
    assert manager.save() is None  # the step has not moved


# -- restore_or_initialize ---------------------------------------------------------


def test_restore_or_initialize_calls_init_fn_when_empty(tmp_path: pathlib.Path) -> None:
    calls = []
    manager = dtckpt.CheckpointManager(
        make_checkpoint(), tmp_path, 2, init_fn=lambda: calls.append(1)
    )
    assert manager.restore_or_initialize() is None
    assert calls == [1]
    no_init = dtckpt.CheckpointManager(make_checkpoint(), tmp_path / "other", 2)
    assert no_init.restore_or_initialize() is None


def test_restore_or_initialize_follows_a_checkpoint_pruned_by_another_writer(
    tmp_path: pathlib.Path,
) -> None:
    writer = dtckpt.CheckpointManager(make_checkpoint(scale=1.0), tmp_path, 1)
    writer.save()
    resuming = dtckpt.CheckpointManager(make_checkpoint(scale=0.0), tmp_path, 1)
    stale = resuming.latest_checkpoint
    # Before the resuming manager opens it, the other writer saves anew and prunes it.
    newest_values = make_checkpoint(scale=5.0)
    writer._checkpoint.m.w.assign(newest_values.m.w.numpy())
    newest = writer.save()
    assert stale is not None and not os.path.exists(stale + ".index")
    assert resuming.restore_or_initialize() == newest
    assert_same_array(resuming._checkpoint.m.w.numpy(), newest_values.m.w.numpy())
    # A state file naming a checkpoint that is gone for good still fails, typed.
    for name in os.listdir(tmp_path):
        if name.startswith(os.path.basename(newest) + "."):
            os.unlink(tmp_path / name)
    with pytest.raises(dtckpt.errors.NotFoundError):
        dtckpt.CheckpointManager(make_checkpoint(), tmp_path, 1).restore_or_initialize()


def test_restore_or_initialize_restores_the_latest(tmp_path: pathlib.Path) -> None:
    original = make_checkpoint(scale=3.0)
    step = dtckpt.Variable(np.int64(40))
    first = dtckpt.CheckpointManager(
        original, tmp_path, 2, step_counter=step, checkpoint_interval=10
    )
    first.save()
    step.assign(np.int64(50))
    path = first.save()

    fresh = make_checkpoint(scale=0.0)
    calls: list[int] = []
    manager = dtckpt.CheckpointManager(
        fresh,
        tmp_path,
        2,
        step_counter=step,
        checkpoint_interval=10,
        init_fn=lambda: calls.append(1),
    )
    assert manager.restore_or_initialize() == path
    assert calls == []
    assert_same_array(fresh.m.w.numpy(), original.m.w.numpy())
    assert_same_array(fresh.v.numpy(), original.v.numpy())
    assert int(fresh.save_counter.numpy()) == 2
    # The restored step counts as saved: the same step is not saved again.
    assert manager.save(check_interval=False) is None
    step.assign(np.int64(60))
    assert manager.save() == str(tmp_path / "ckpt-3")


# -- an existing directory ---------------------------------------------------------


def _golden_checkpoint(golden: Golden, zero: bool) -> dtckpt.Checkpoint:
    def value(value_id: str) -> np.ndarray:
        array = golden.value(value_id)
        return np.zeros_like(array) if zero else array

    m = dtckpt.Module(name="m")
    m.w = dtckpt.Variable(value("v1"), name="w")
    m.k = dtckpt.Variable(value("v2"))
    return dtckpt.Checkpoint(v=dtckpt.Variable(value("v0"), name="v"), m=m)


def _golden_times(golden: Golden) -> tuple[float, list[float]]:
    states = [
        parse_checkpoint_state(s["state_file"])
        for s in golden.manifest["saves"]
        if "state_file" in s
    ]
    return states[0].last_preserved_timestamp, [
        s.all_model_checkpoint_timestamps[-1] for s in states
    ]


def test_reproduces_the_tf_manager_golden(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, clock: Callable[..., Clock]
) -> None:
    golden = load_golden("og_manager")
    preserved, stamps = _golden_times(golden)
    clock([preserved + 1.0, *stamps])  # TF's clock: construction, then each save
    monkeypatch.chdir(tmp_path)  # the golden's directory was "."
    ckpt = _golden_checkpoint(golden, zero=False)
    manager = dtckpt.CheckpointManager(ckpt, ".", **_manager_kwargs(golden))
    for step in golden.manifest["saves"]:
        if "assign" in step:
            target: Any = ckpt
            for part in step["assign"]:
                target = getattr(target, part)
            target.assign(golden.value(step["value"]))
            continue
        assert manager.save() == os.path.join(".", step["returned"])
        assert (tmp_path / "checkpoint").read_text() == step["state_file"]
    assert files(tmp_path) == set(golden.manifest["files"])
    for name in golden.manifest["files"]:
        assert (tmp_path / name).read_bytes() == (golden.directory / name).read_bytes(), name
    assert [os.path.basename(p) for p in manager.checkpoints] == golden.manifest[
        "manager_checkpoints"
    ]


def _manager_kwargs(golden: Golden) -> dict[str, Any]:
    spec = golden.manifest["manager"]
    return {
        "max_to_keep": spec["max_to_keep"],
        "keep_checkpoint_every_n_hours": spec["keep_checkpoint_every_n_hours"],
        "checkpoint_name": spec["checkpoint_name"],
    }


def test_manager_over_the_tf_golden_directory(
    tmp_path: pathlib.Path, clock: Callable[..., Clock]
) -> None:
    golden = load_golden("og_manager")
    directory = tmp_path / "run"
    shutil.copytree(golden.directory, directory)
    (directory / "manifest.json").unlink()
    tf_state = parse_checkpoint_state((directory / "checkpoint").read_text())
    now = tf_state.all_model_checkpoint_timestamps[-1] + 100.0
    clock([now, now + 1.0])
    ckpt = _golden_checkpoint(golden, zero=True)
    manager = dtckpt.CheckpointManager(ckpt, str(directory), **_manager_kwargs(golden))
    assert manager.checkpoints == [str(directory / "ckpt-2"), str(directory / "ckpt-3")]
    assert manager.latest_checkpoint == str(directory / "ckpt-3")
    assert manager.restore_or_initialize() == str(directory / "ckpt-3")
    expected = golden.expected()
    assert_same_array(ckpt.m.k.numpy(), expected["m/k/.ATTRIBUTES/VARIABLE_VALUE"])
    assert manager.save() == str(directory / "ckpt-4")  # save_counter came back as 3
    assert files(directory) == {"checkpoint"} | bundle("ckpt-3") | bundle("ckpt-4")
    assert (directory / "checkpoint").read_text() == state_text(
        ["ckpt-3", "ckpt-4"],
        [tf_state.all_model_checkpoint_timestamps[-1], now + 1.0],
        tf_state.last_preserved_timestamp,
    )


def test_clock_behind_the_state_file_keeps_everything(
    tmp_path: pathlib.Path, clock: Callable[..., Clock], caplog: pytest.LogCaptureFixture
) -> None:
    golden = load_golden("og_manager")
    shutil.copytree(golden.directory, tmp_path, dirs_exist_ok=True)
    preserved = parse_checkpoint_state(
        (tmp_path / "checkpoint").read_text()
    ).last_preserved_timestamp
    clock([preserved - 500.0], step=1.0)
    with caplog.at_level(logging.WARNING, logger="dtckpt"):
        manager = dtckpt.CheckpointManager(_golden_checkpoint(golden, zero=True), tmp_path, 1)
    assert "behind the last preserved" in caplog.text
    # Timestamps from the future are capped at now, which is not newer than the clamped
    # last_preserved_timestamp: nothing is managed, nothing old is deleted.
    assert manager.checkpoints == []
    assert manager.latest_checkpoint == str(tmp_path / "ckpt-3")
    manager.save(checkpoint_number=10)
    assert {"ckpt-2.index", "ckpt-3.index", "ckpt-10.index"} <= files(tmp_path)
    state = get_checkpoint_state(str(tmp_path))
    assert state is not None
    assert state.last_preserved_timestamp == preserved - 500.0
    assert state.all_model_checkpoint_paths == [str(tmp_path / "ckpt-10")]


def test_state_without_timestamps_manages_nothing_old(tmp_path: pathlib.Path) -> None:
    ckpt = make_checkpoint()
    for _ in range(3):
        ckpt.save(str(tmp_path / "ckpt"))  # Checkpoint.save writes no timestamps
    manager = dtckpt.CheckpointManager(ckpt, tmp_path, max_to_keep=1)
    assert manager.latest_checkpoint == str(tmp_path / "ckpt-3")
    assert manager.checkpoints == []
    manager.save()
    manager.save()
    assert files(tmp_path) == {"checkpoint"}.union(*(bundle(f"ckpt-{i}") for i in (1, 2, 3, 5)))


def test_relative_directory(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    manager = dtckpt.CheckpointManager(make_checkpoint(), "out", max_to_keep=1)
    assert manager.save() == os.path.join("out", "ckpt-1")
    assert manager.save() == os.path.join("out", "ckpt-2")
    state = parse_checkpoint_state((tmp_path / "out" / "checkpoint").read_text())
    assert state.model_checkpoint_path == "ckpt-2"
    assert state.all_model_checkpoint_paths == ["ckpt-2"]
    assert files(tmp_path / "out") == {"checkpoint"} | bundle("ckpt-2")
    assert dtckpt.latest_checkpoint("out") == os.path.join("out", "ckpt-2")


# -- deletion stays inside the directory --------------------------------------------


def test_never_deletes_outside_the_directory(
    tmp_path: pathlib.Path, clock: Callable[..., Clock], caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "run"
    outside = tmp_path / "outside"
    ckpt = make_checkpoint()
    for prefix in (outside / "ckpt-1", outside / "ckpt-2", outside / "linked" / "ckpt-3"):
        ckpt.write(str(prefix))
    directory.mkdir()
    (directory / "link").symlink_to(outside / "linked", target_is_directory=True)
    ckpt.write(str(directory / "ckpt-4"))
    listed = ["../outside/ckpt-1", str(outside / "ckpt-2"), "link/ckpt-3", "ckpt-4"]
    (directory / "checkpoint").write_text(state_text(listed, [101.0, 102.0, 103.0, 104.0], 100.0))
    before = files(outside) | files(outside / "linked")

    clock([200.0, 201.0])
    manager = dtckpt.CheckpointManager(ckpt, directory, max_to_keep=1)
    assert len(manager.checkpoints) == 4
    with caplog.at_level(logging.WARNING, logger="dtckpt"):
        assert manager.save(checkpoint_number=5) == str(directory / "ckpt-5")
    assert files(outside) | files(outside / "linked") == before
    assert caplog.text.count("outside the manager's directory") == 3
    assert files(directory) == {"checkpoint", "link"} | bundle("ckpt-5")
    assert manager.checkpoints == [str(directory / "ckpt-5")]


def test_deletes_only_the_bundle_files(tmp_path: pathlib.Path) -> None:
    manager = dtckpt.CheckpointManager(make_checkpoint(), tmp_path, 1, checkpoint_name="ck[p]t")
    manager.save()
    bystanders = [
        "ckpt-1.index",
        "ck[p]t-1.meta",
        "ck[p]t-1.data-00000-of-00001.tmp",
        "ck[p]t-10.index",
    ]
    for name in bystanders:
        (tmp_path / name).write_bytes(b"keep")
    manager.save()
    assert files(tmp_path) == {"checkpoint", *bystanders} | bundle("ck[p]t-2")


def test_old_checkpoints_go_only_after_the_new_one_is_complete(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager = dtckpt.CheckpointManager(make_checkpoint(), tmp_path, max_to_keep=1)
    seen = []
    delete = manager._delete_checkpoints

    def watch(prefixes: list[str]) -> None:
        latest = manager._latest_checkpoint
        assert latest is not None
        state = get_checkpoint_state(str(tmp_path))
        assert state is not None
        for prefix in prefixes:
            seen.append(
                (
                    os.path.basename(prefix),
                    files(tmp_path) >= bundle(os.path.basename(latest)),
                    state.model_checkpoint_path == latest,
                )
            )
        delete(prefixes)

    monkeypatch.setattr(manager, "_delete_checkpoints", watch)
    for _ in range(3):
        manager.save()
    assert seen == [("ckpt-1", True, True), ("ckpt-2", True, True)]


# -- async -------------------------------------------------------------------------


def test_async_save_and_sync(tmp_path: pathlib.Path) -> None:
    ckpt = make_checkpoint()
    manager = dtckpt.CheckpointManager(ckpt, tmp_path, max_to_keep=2)
    options = dtckpt.CheckpointOptions(enable_async=True)
    # Hold the background writer so the save is visibly pending.
    gate = threading.Event()
    blocker = pool("async").submit(gate.wait)
    try:
        assert manager.save(options=options) == str(tmp_path / "ckpt-1")
        assert manager.latest_checkpoint is None and manager.checkpoints == []
        assert not (tmp_path / "checkpoint").exists()
    finally:
        gate.set()
        blocker.result()
    manager.sync()
    assert manager.latest_checkpoint == str(tmp_path / "ckpt-1")
    for i in range(2, 5):
        ckpt.v.assign(float(i))
        manager.save(options=options)
    manager.sync()
    assert files(tmp_path) == {"checkpoint"} | bundle("ckpt-3") | bundle("ckpt-4")
    assert manager.checkpoints == [str(tmp_path / "ckpt-3"), str(tmp_path / "ckpt-4")]
    fresh = make_checkpoint(scale=0.0)
    fresh.restore(manager.latest_checkpoint).assert_consumed()
    assert float(fresh.v.numpy()) == 4.0


def test_restore_or_initialize_waits_for_a_pending_save(tmp_path: pathlib.Path) -> None:
    ckpt = make_checkpoint()
    manager = dtckpt.CheckpointManager(ckpt, tmp_path, 2, init_fn=lambda: pytest.fail("init_fn"))
    gate = threading.Event()
    blocker = pool("async").submit(gate.wait)
    path = manager.save(options=dtckpt.CheckpointOptions(enable_async=True))
    gate.set()
    blocker.result()
    assert manager.restore_or_initialize() == path


def test_async_write_callbacks_still_run(tmp_path: pathlib.Path) -> None:
    called: list[str] = []
    options = dtckpt.CheckpointOptions(
        enable_async=True, experimental_write_callbacks=[called.append]
    )
    manager = dtckpt.CheckpointManager(make_checkpoint(), tmp_path, 2)
    manager.save(options=options)
    manager.sync()
    assert called == [str(tmp_path / "ckpt-1")]
    assert options.experimental_write_callbacks == [called.append]  # not mutated


# -- the state file ------------------------------------------------------------------


def test_state_file_round_trips_tf_text() -> None:
    golden = load_golden("og_manager")
    texts = [s["state_file"] for s in golden.manifest["saves"] if "state_file" in s]
    texts.append((golden.directory / "checkpoint").read_text())
    for text in texts:
        assert format_checkpoint_state(parse_checkpoint_state(text)) == text


def test_written_state_file_round_trips(tmp_path: pathlib.Path) -> None:
    manager = dtckpt.CheckpointManager(make_checkpoint(), tmp_path, max_to_keep=3)
    for _ in range(4):
        manager.save()
    text = (tmp_path / "checkpoint").read_text()
    state = parse_checkpoint_state(text)
    assert format_checkpoint_state(state) == text
    assert state.all_model_checkpoint_paths == ["ckpt-2", "ckpt-3", "ckpt-4"]
    assert state.all_model_checkpoint_timestamps == sorted(state.all_model_checkpoint_timestamps)
    assert state.last_preserved_timestamp < state.all_model_checkpoint_timestamps[0]


# -- rule S-MG-3: canonical paths, one listing ------------------------------------------


@pytest.mark.parametrize("spelling", ["./ckpt-1", "sub/../ckpt-1", "alias/ckpt-1", "ABS"])
def test_a_newest_checkpoint_spelled_otherwise_is_never_deleted(
    tmp_path: pathlib.Path, spelling: str, clock: Callable[..., Clock]
) -> None:
    directory = tmp_path / "run"
    (directory / "sub").mkdir(parents=True)
    (directory / "alias").symlink_to(directory, target_is_directory=True)
    if spelling == "ABS":
        spelling = str(directory / "alias" / "." / "ckpt-1")
    ckpt = make_checkpoint()
    ckpt.write(str(directory / "ckpt-1"))
    (directory / "checkpoint").write_text(state_text([spelling], [101.0], 100.0))
    clock([200.0, 201.0])
    manager = dtckpt.CheckpointManager(ckpt, directory, max_to_keep=1)
    assert len(manager.checkpoints) == 1
    # save_counter is 0: the save writes ckpt-1 again, the very checkpoint listed above.
    assert manager.save() == str(directory / "ckpt-1")
    assert files(directory) >= bundle("ckpt-1")
    assert manager.checkpoints == [str(directory / "ckpt-1")]
    fresh = make_checkpoint(scale=0.0)
    fresh.restore(manager.latest_checkpoint).assert_consumed()


def test_two_spellings_in_the_state_file_are_one_checkpoint(tmp_path: pathlib.Path) -> None:
    ckpt = make_checkpoint()
    ckpt.write(str(tmp_path / "ckpt-3"))
    listed = ["ckpt-3", "./ckpt-3", "sub/../ckpt-3"]
    (tmp_path / "sub").mkdir()
    (tmp_path / "checkpoint").write_text(state_text(listed, [101.0, 102.0, 103.0], 100.0))
    manager = dtckpt.CheckpointManager(ckpt, tmp_path, max_to_keep=2)
    assert manager.checkpoints == [str(tmp_path / "sub/../ckpt-3")]


def test_deleting_thousands_of_checkpoints_lists_the_directory_once(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, clock: Callable[..., Clock]
) -> None:
    count = 20_000
    ckpt = make_checkpoint()
    for i in (1, 2, count):
        ckpt.write(str(tmp_path / f"ckpt-{i}"))
    listed = [f"ckpt-{i}" for i in range(1, count + 1)]
    stamps = [100.0 + i for i in range(1, count + 1)]
    (tmp_path / "checkpoint").write_text(state_text(listed, stamps, 100.0))
    clock([50_000.0], step=0.5)
    manager = dtckpt.CheckpointManager(ckpt, tmp_path, max_to_keep=1)
    listings = []
    real_listdir = os.listdir

    def counting_listdir(path: Any = ".") -> list[str]:
        listings.append(os.fspath(path))
        return real_listdir(path)

    monkeypatch.setattr(manager_module.os, "listdir", counting_listdir)
    manager.save(checkpoint_number=count + 1)
    assert listings.count(os.path.realpath(tmp_path)) == 1
    assert files(tmp_path) == {"checkpoint"} | bundle(f"ckpt-{count + 1}")

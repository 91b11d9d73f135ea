"""Crash-safe Checkpoint-level saves: fsync switch and order, lock, cleaning, hostile state files.

Rules S-AT-*, S-ST-1, S-MG-*, S-LK-*, S-TP-* (spec/durability.md). The SIGKILL loop is in
``test_crash.py``, the fault injection in ``test_faults.py``.
"""

from __future__ import annotations

import copy
import fcntl
import logging
import os
import time
import pathlib
import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dtckpt
import dtckpt.checkpoint.collective_save as save_module
import dtckpt.checkpoint.state as state_module
from dtckpt.checkpoint.state import (
    CheckpointState,
    format_checkpoint_state,
    get_checkpoint_state,
    update_checkpoint_state,
)
from dtckpt.format.bundle_writer import BundleWriter
from dtckpt.storage.durable import SHARDED_TEMP_MARKER
from tests.stress.crash_workloads import MODES, Workload, leftovers

ROOT = pathlib.Path(__file__).resolve().parents[2]
HEX32 = "0123456789abcdef" * 2
DATA = ".data-00000-of-00001"


def small_checkpoint(value: float = 1.0) -> dtckpt.Checkpoint:
    model = dtckpt.Module(name="m")
    model.w = dtckpt.Variable(np.full((3, 4), value, np.float32), name="w")
    return dtckpt.Checkpoint(model=model)


def restored_value(prefix: str, saved: bool = False) -> float:
    """The value of ``w``, read back with every checkpoint value consumed."""
    fresh = small_checkpoint(0.0)
    (fresh.restore if saved else fresh.read)(prefix).assert_consumed()
    values = set(fresh.model.w.numpy().reshape(-1).tolist())
    assert len(values) == 1, values
    return float(values.pop())


def flock_is_free(directory: str) -> bool:
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The descriptors passed to ``os.fsync``, in order."""
    calls: list[int] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    yield calls


# -- the fsync switch (rule S-AT-3) ---------------------------------------------------------


def test_experimental_fsync_option() -> None:
    options = dtckpt.CheckpointOptions()
    assert options.experimental_fsync is True
    off = dtckpt.CheckpointOptions(experimental_fsync=False)
    assert off.experimental_fsync is False and "experimental_fsync=False" in repr(off)
    assert copy.copy(off).experimental_fsync is False


@pytest.mark.parametrize("mode", MODES)
def test_every_checkpoint_save_fsyncs_unless_switched_off(
    mode: str, tmp_path: pathlib.Path, fsyncs: list[int]
) -> None:
    workload = Workload(mode, str(tmp_path), rows=4)
    workload.save_next()
    workload.sync()
    assert len(fsyncs) >= 5  # data, index, directory, state file, directory
    fsyncs.clear()
    path = workload.save_next(experimental_fsync=False)
    workload.sync()
    assert fsyncs == []
    assert workload.check(path)[1] == 2


def test_write_fsyncs_too(tmp_path: pathlib.Path, fsyncs: list[int]) -> None:
    small_checkpoint().write(str(tmp_path / "w"))
    assert len(fsyncs) == 3  # data, index, directory; no state file
    fsyncs.clear()
    options = dtckpt.CheckpointOptions(experimental_fsync=False)
    small_checkpoint().write(str(tmp_path / "w"), options=options)
    assert fsyncs == []


def test_state_file_fsync_keyword(tmp_path: pathlib.Path, fsyncs: list[int]) -> None:
    update_checkpoint_state(str(tmp_path), str(tmp_path / "ckpt-1"))
    assert len(fsyncs) == 2  # the file, then the directory
    fsyncs.clear()
    update_checkpoint_state(str(tmp_path), str(tmp_path / "ckpt-2"), fsync=False)
    assert fsyncs == []
    state = get_checkpoint_state(str(tmp_path))
    assert state is not None and state.model_checkpoint_path == str(tmp_path / "ckpt-2")
    assert os.listdir(tmp_path) == ["checkpoint"]


# -- order: bundle, then state file, then deletions (rules S-ST-1, S-MG-1) --------------


@pytest.fixture
def trace(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, str]]]:
    """fsyncs (by path), renames (by target) and removals, in order."""
    events: list[tuple[str, str]] = []
    real_fsync, real_replace, real_remove = os.fsync, os.replace, os.remove

    def fsync(fd: int) -> None:
        events.append(("fsync", os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))))
        real_fsync(fd)

    def replace(source: str, target: str) -> None:
        real_replace(source, target)
        events.append(("renamed", os.path.basename(target)))

    def remove(path: str) -> None:
        real_remove(path)
        events.append(("removed", os.path.basename(path)))

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "remove", remove)
    yield events


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/fd")
def test_manager_save_order(tmp_path: pathlib.Path, trace: list[tuple[str, str]]) -> None:
    run = tmp_path / "run"
    manager = dtckpt.CheckpointManager(small_checkpoint(), str(run), max_to_keep=1)
    manager.save()
    trace.clear()
    manager.save()
    kinds = [(kind, name.split(".tempstate")[0].split(".tmp")[0]) for kind, name in trace]
    assert kinds == [
        ("fsync", "ckpt-2" + DATA),  # each file is durable before its rename; the data
        ("renamed", "ckpt-2" + DATA),  # files are in place before the index is written
        ("fsync", "ckpt-2.index"),
        ("renamed", "ckpt-2.index"),
        ("fsync", "run"),  # the bundle is durable ...
        ("fsync", "checkpoint"),
        ("renamed", "checkpoint"),
        ("fsync", "run"),  # ... before the state file names it, which is durable ...
        ("removed", "ckpt-1.index"),  # ... before anything is deleted, index first
        ("removed", "ckpt-1" + DATA),
        ("fsync", "checkpoint"),
        ("renamed", "checkpoint"),
        ("fsync", "run"),
    ]


def test_lock_held_from_cleaning_to_state_file_but_not_in_callbacks(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, bool]] = []
    clean, write_state = (
        save_module.clean_if_changed,
        state_module.write_checkpoint_state,
    )

    def watched_clean(directory: str) -> list[str]:
        seen.append(("cleaning", flock_is_free(directory)))
        return clean(directory)

    def watched_state(save_dir: str, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(("state", flock_is_free(save_dir)))
        return write_state(save_dir, *args, **kwargs)

    monkeypatch.setattr(save_module, "clean_if_changed", watched_clean)
    monkeypatch.setattr(state_module, "write_checkpoint_state", watched_state)
    options = dtckpt.CheckpointOptions(
        experimental_write_callbacks=[
            lambda: seen.append(("callback", flock_is_free(str(tmp_path))))
        ]
    )
    small_checkpoint().save(str(tmp_path / "ckpt"), options=options)
    assert seen == [("cleaning", False), ("state", False), ("callback", True)]


# -- overwrites are whole (rules S-AT-1, S-LK-2) ----------------------------------------------


def test_overwriting_a_prefix_replaces_it_whole(tmp_path: pathlib.Path) -> None:
    prefix = str(tmp_path / "model")
    small_checkpoint(1.0).write(prefix)
    small_checkpoint(2.0).write(prefix)
    assert restored_value(prefix) == 2.0
    assert sorted(os.listdir(tmp_path)) == ["model" + DATA, "model.index"]


def test_interrupted_overwrite_leaves_nothing_rather_than_a_mix(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = str(tmp_path / "model")
    small_checkpoint(1.0).write(prefix)
    real = os.replace

    def index_rename_fails(source: str, target: str) -> None:
        if target.endswith(".index"):
            raise OSError(28, "No space left on device")
        real(source, target)

    monkeypatch.setattr(os, "replace", index_rename_fails)
    with pytest.raises(OSError):
        small_checkpoint(2.0).write(prefix)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == []
    with pytest.raises(dtckpt.errors.NotFoundError):
        dtckpt.load_checkpoint(prefix)


def test_dtensor_save_over_a_plain_one_at_the_same_prefix(tmp_path: pathlib.Path) -> None:
    plain = Workload("plain", str(tmp_path / "a"), rows=8)
    sharded = Workload("dtensor", str(tmp_path / "a"), rows=8)
    plain.save_next()
    path = sharded.save_next()  # ckpt-1 again, now with eight data files
    assert sharded.check(path) == (0, 1)
    assert dtckpt.latest_checkpoint(str(tmp_path / "a")) == path


# -- cleaning and readers (rules S-TP-1, S-TP-2) -------------------------------------------


def _litter(directory: pathlib.Path) -> set[str]:
    """Temporaries a crashed save would leave, and bystanders that must stay."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ckpt-7.index.tempstate1").write_bytes(b"\x00garbage")
    (directory / ("ckpt-7" + DATA + ".tempstate1")).write_bytes(b"garbage")
    (directory / f"checkpoint.tmp{HEX32}").write_text('model_checkpoint_path: "ckpt-7"\n')
    (directory / "ckpt-8_temp").mkdir()
    (directory / "ckpt-8_temp" / SHARDED_TEMP_MARKER).write_bytes(b"")
    (directory / "ckpt-8_temp" / "part-00000-of-00001_dev-0-of-8.index").write_bytes(b"x")
    bystanders = {"notes.txt", "ckpt-7.index.tempstate", "checkpoint.tmp", "other_temp"}
    bystanders |= {"unmarked_temp", "empty_temp"}
    for name in bystanders - {"other_temp", "unmarked_temp", "empty_temp"}:
        (directory / name).write_bytes(b"keep")
    (directory / "other_temp").mkdir()
    (directory / "other_temp" / "data.bin").write_bytes(b"keep")
    (directory / "other_temp" / SHARDED_TEMP_MARKER).write_bytes(b"")
    # Rule S-TP-4: without the marker, even part files or nothing at all are not ours.
    (directory / "unmarked_temp").mkdir()
    (directory / "unmarked_temp" / "part-00000-of-00001.index").write_bytes(b"keep")
    (directory / "empty_temp").mkdir()
    return bystanders


@pytest.mark.parametrize("mode", MODES)
def test_the_next_save_removes_leftovers_and_nothing_else(
    mode: str, tmp_path: pathlib.Path
) -> None:
    bystanders = _litter(tmp_path)
    workload = Workload(mode, str(tmp_path), rows=4)
    path = workload.save_next()
    workload.sync()
    # Not ours: one holds a foreign file, one lacks the marker, one is empty.
    assert leftovers(str(tmp_path)) == {"other_temp", "unmarked_temp", "empty_temp"}
    names = set(os.listdir(tmp_path))
    assert bystanders <= names
    assert (tmp_path / "other_temp" / "data.bin").read_bytes() == b"keep"
    assert workload.check(path)[1] == 1


def test_unchanged_directory_is_not_listed_again(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rule S-TP-3: a process's next save skips the listing when nothing else changed the
    directory, and lists (and cleans) again as soon as something did."""
    ckpt = small_checkpoint(1.0)
    ckpt.save(str(tmp_path / "ckpt"))
    listed: list[str] = []
    scandir = os.scandir

    def counting(path: str = ".") -> object:
        listed.append(os.path.abspath(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", counting)
    ckpt.save(str(tmp_path / "ckpt"))
    ckpt.save(str(tmp_path / "ckpt"))
    assert str(tmp_path) not in listed
    # A crashed writer's leftover changes the directory: the next save finds and removes it.
    time.sleep(0.02)  # past the filesystem's timestamp granularity
    leftover = tmp_path / "ckpt-9.index.tempstate1"
    leftover.write_bytes(b"\x00garbage")
    ckpt.save(str(tmp_path / "ckpt"))
    assert str(tmp_path) in listed
    assert not leftover.exists()


def test_readers_ignore_leftovers(tmp_path: pathlib.Path) -> None:
    small_checkpoint(3.0).save(str(tmp_path / "ckpt"))
    _litter(tmp_path)
    assert dtckpt.latest_checkpoint(str(tmp_path)) == str(tmp_path / "ckpt-1")
    assert dtckpt.list_variables(str(tmp_path))[0][0] == "_CHECKPOINTABLE_OBJECT_GRAPH"
    assert restored_value(str(tmp_path / "ckpt-1"), saved=True) == 3.0


def test_a_live_writers_temporaries_survive_cleaning(tmp_path: pathlib.Path) -> None:
    writer = BundleWriter(str(tmp_path / "raw"))
    writer.add("x", np.arange(5))
    small_checkpoint().save(str(tmp_path / "ckpt"))  # cleans tmp_path
    writer.finish()
    assert dtckpt.load_checkpoint(str(tmp_path / "raw")).get_tensor("x").tolist() == list(range(5))


_RAW_WRITER = """
import sys
import numpy as np
from dtckpt.format.bundle_writer import BundleWriter
writer = BundleWriter(sys.argv[1])
writer.add("x", np.arange(6))
print("writing", flush=True)
sys.stdin.readline()
writer.finish()
"""


def test_another_processes_live_temporaries_survive_cleaning(tmp_path: pathlib.Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _RAW_WRITER, str(tmp_path / "raw")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    assert child.stdout is not None and child.stdout.readline() == "writing\n"
    live = leftovers(str(tmp_path))
    assert len(live) == 1  # the writer's data file, still being written
    small_checkpoint().save(str(tmp_path / "ckpt"))  # cleans tmp_path
    assert leftovers(str(tmp_path)) == live
    child.communicate("\n")
    assert child.returncode == 0
    assert dtckpt.load_checkpoint(str(tmp_path / "raw")).get_tensor("x").tolist() == list(range(6))
    assert leftovers(str(tmp_path)) == set()


# -- hostile state files (rule S-MG-2) ------------------------------------------------------


def _snapshot(root: pathlib.Path) -> dict[str, bytes | str]:
    out: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink():
            out[key] = "-> " + os.readlink(path)
        elif path.is_file():
            out[key] = path.read_bytes()
        else:
            out[key] = "dir"
    return out


def _hostile_directory(tmp_path: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    outside = tmp_path / "outside"
    (outside / "sub").mkdir(parents=True)
    for name in ("victim", "sub/victim", "ckpt-9"):
        (outside / f"{name}.index").write_bytes(b"precious")
        (outside / f"{name}{DATA}").write_bytes(b"precious")
    run = tmp_path / "run"
    run.mkdir()
    (run / "link").symlink_to(outside, target_is_directory=True)
    (run / "ckpt-9.index").symlink_to(outside / "ckpt-9.index")  # a link to a file outside
    (run / ("ckpt-9" + DATA)).symlink_to(outside / ("ckpt-9" + DATA))
    (run / "ckpt-8.index").mkdir()  # a directory with a checkpoint file's name
    return run, outside


HOSTILE = [
    "../outside/victim",
    "link/victim",
    "link/sub/victim",
    "sub/../../outside/victim",
    "ckpt-9",
    "ckpt-8",
    "",
    ".",
    "..",
    "bad\x00name",
    "link/../../outside/sub/victim",
]


def test_hostile_state_file_cannot_make_the_manager_delete_outside(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    run, outside = _hostile_directory(tmp_path)
    paths = [*HOSTILE, str(outside / "victim"), str(outside / "sub" / "victim")]
    state = CheckpointState("ckpt-9", paths, [100.0 + i for i in range(len(paths))], 99.0)
    (run / "checkpoint").write_text(format_checkpoint_state(state))
    before_outside = _snapshot(outside)
    before_run = _snapshot(run)
    ckpt = small_checkpoint(5.0)
    manager = dtckpt.CheckpointManager(ckpt, str(run), max_to_keep=1)
    with caplog.at_level(logging.WARNING, logger="dtckpt"):
        manager.save()
        manager.save()
    assert _snapshot(outside) == before_outside
    after = _snapshot(run)
    for name, value in before_run.items():
        if name != "checkpoint":
            assert after[name] == value, name  # links and the directory are still there
    assert "not a regular file" in caplog.text
    assert restored_value(str(run / "ckpt-2"), saved=True) == 5.0
    assert manager.checkpoints == [str(run / "ckpt-2")]


_COMPONENT = st.sampled_from(
    ["..", ".", "link", "sub", "victim", "ckpt-9", "ckpt-8", "outside", ""]
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    relative=st.lists(
        st.lists(_COMPONENT, min_size=1, max_size=5).map("/".join), min_size=1, max_size=4
    ),
    absolute=st.booleans(),
)
def test_no_listed_path_reaches_outside(
    relative: list[str], absolute: bool, tmp_path_factory: pytest.TempPathFactory
) -> None:
    base = tmp_path_factory.mktemp("hostile")
    run, outside = _hostile_directory(base)
    paths = [str(run / p) if absolute else p for p in relative]
    state = CheckpointState("ckpt-7", paths, [100.0 + i for i in range(len(paths))], 99.0)
    (run / "checkpoint").write_text(format_checkpoint_state(state))
    before = _snapshot(outside)
    manager = dtckpt.CheckpointManager(small_checkpoint(), str(run), max_to_keep=1)
    manager.save()
    assert _snapshot(outside) == before
    assert os.path.islink(run / "ckpt-9.index") and os.path.isdir(run / "ckpt-8.index")


# -- rule S-TP-4: the directory of a sharded save ---------------------------------------


def _dtensor_checkpoint() -> dtckpt.Checkpoint:
    from dtckpt import dtensor

    mesh = dtensor.create_mesh([("x", 2)], device_type="CPU")
    model = dtckpt.Module()
    model.w = dtensor.DVariable(
        dtensor.call_with_layout(
            np.ones, dtensor.Layout(["x", "unsharded"], mesh), shape=(4, 3), dtype=np.float32
        )
    )
    return dtensor.DTensorCheckpoint(mesh, model=model)


def test_a_sharded_save_never_touches_a_users_directory(tmp_path: pathlib.Path) -> None:
    # Rule S-TP-4: no save makes P_temp/ any more; a directory of that name is not ours.
    mine = tmp_path / "ckpt-1_temp"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    (mine / "part-00000-of-00001.index").write_text("named like a part file")
    path = _dtensor_checkpoint().save(str(tmp_path / "ckpt"))
    assert dtckpt.load_checkpoint(path).get_tensor("model/w/.ATTRIBUTES/VARIABLE_VALUE").sum() == 12
    assert sorted(os.listdir(mine)) == ["part-00000-of-00001.index", "thesis.tex"]


def test_a_sharded_save_never_follows_a_linked_temp_directory(tmp_path: pathlib.Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / SHARDED_TEMP_MARKER).write_text("")
    (target / "part-00000-of-00001.index").write_text("keep")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "ckpt-1_temp").symlink_to(target, target_is_directory=True)
    _dtensor_checkpoint().save(str(tmp_path / "run" / "ckpt"))
    assert sorted(os.listdir(target)) == [SHARDED_TEMP_MARKER, "part-00000-of-00001.index"]
    assert (tmp_path / "run" / "ckpt-1_temp").is_symlink()


def test_a_sharded_save_removes_an_older_versions_leftovers(tmp_path: pathlib.Path) -> None:
    leftover = tmp_path / "ckpt-1_temp"
    leftover.mkdir()
    (leftover / SHARDED_TEMP_MARKER).write_text("")
    (leftover / "part-00000-of-00001_dev-0-of-2.index").write_bytes(b"stale")
    path = _dtensor_checkpoint().save(str(tmp_path / "ckpt"))
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == []
    assert dtckpt.load_checkpoint(path).get_tensor("model/w/.ATTRIBUTES/VARIABLE_VALUE").sum() == 12


# -- rule S-AS-1: asynchronous saves at exit ----------------------------------------------

_ASYNC_AT_EXIT = """
import sys
import numpy as np
import dtckpt
from dtckpt import dtensor
mesh = dtensor.create_mesh([("x", 2), ("y", 4)], device_type="CPU")
model = dtckpt.Module()
model.w = dtensor.DVariable(dtensor.call_with_layout(
    np.ones, dtensor.Layout(["x", "y"], mesh), shape=(64, 128), dtype=np.float32))
checkpoint = dtensor.DTensorCheckpoint(mesh, model=model)
options = dtckpt.CheckpointOptions(enable_async=True)
print(checkpoint.save(sys.argv[1], options=options), flush=True)
"""


def _run_child(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )


def test_an_async_save_made_just_before_exit_completes(tmp_path: pathlib.Path) -> None:
    result = _run_child(_ASYNC_AT_EXIT, str(tmp_path / "ckpt"))
    assert result.returncode == 0, result.stderr
    path = result.stdout.strip()
    assert path == str(tmp_path / "ckpt-1") and result.stderr == ""
    assert dtckpt.latest_checkpoint(str(tmp_path)) == path
    value = dtckpt.load_checkpoint(path).get_tensor("model/w/.ATTRIBUTES/VARIABLE_VALUE")
    assert value.shape == (64, 128) and float(value.sum()) == 64 * 128


def test_an_async_save_that_fails_at_exit_is_reported(tmp_path: pathlib.Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the save needs a directory")
    result = _run_child(_ASYNC_AT_EXIT, str(blocker / "ckpt"))
    assert result.stdout.strip() == str(blocker / "ckpt-1")
    assert "An asynchronous checkpoint save failed" in result.stderr

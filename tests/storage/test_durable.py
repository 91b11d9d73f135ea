"""Crash-safe file helpers: temporaries, commits, cleaning, the directory lock.

Rules S-AT-*, S-TP-* and S-LK-* of spec/durability.md.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import pathlib
import signal
import subprocess
import sys
import threading
import types
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dtckpt
import dtckpt.storage.dirlock as dirlock
import dtckpt.storage.durable as durable
from dtckpt.format.bundle_reader import BundleReader
from dtckpt.format.bundle_writer import BundleWriter
from dtckpt.storage.dirlock import directory_lock
from dtckpt.storage.durable import (
    SHARDED_TEMP_MARKER,
    TemporaryFile,
    install,
    is_temporary_name,
    remove_stale_temporaries,
)

ROOT = pathlib.Path(__file__).resolve().parents[2]
HEX32 = "0123456789abcdef" * 2


def flock_is_free(directory: pathlib.Path) -> bool:
    """Whether another open file description could take the directory's flock now."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


# -- temporaries -----------------------------------------------------------------------


def test_a_live_temporary_is_kept_and_a_closed_one_removed(tmp_path: pathlib.Path) -> None:
    live = TemporaryFile(str(tmp_path / "a.index.tempstate1"))
    live.file.write(b"x")
    stale = TemporaryFile(str(tmp_path / "b.index.tempstate2"))
    stale.close()  # as a crashed writer's: nobody holds it any more
    assert remove_stale_temporaries(str(tmp_path)) == [str(tmp_path / "b.index.tempstate2")]
    assert os.listdir(tmp_path) == ["a.index.tempstate1"]
    live.discard()
    assert os.listdir(tmp_path) == []


def test_temporary_names_are_exclusive(tmp_path: pathlib.Path) -> None:
    first = TemporaryFile(str(tmp_path / "c.index.tempstate5"))
    with pytest.raises(FileExistsError):
        TemporaryFile(str(tmp_path / "c.index.tempstate5"))
    first.discard()


@pytest.mark.parametrize(
    ("name", "temporary"),
    [
        ("ckpt-1.index.tempstate123", True),
        ("ckpt-1.data-00000-of-00001.tempstate9", True),
        ("a.b.data-00012-of-00100.tempstate0", True),
        (f"checkpoint.tmp{HEX32}", True),
        ("ckpt-1.index", False),
        ("ckpt-1.data-00000-of-00001", False),
        ("ckpt-1.index.tempstate", False),
        ("ckpt-1.meta.tempstate12", False),
        ("ckpt-1.data-0-of-1.tempstate12", False),
        ("checkpoint.tmp1234", False),
        (f"checkpoint.tmp{HEX32.upper()}", False),
        (f"other.tmp{HEX32}", False),
        ("checkpoint", False),
    ],
)
def test_temporary_names(name: str, temporary: bool) -> None:
    assert is_temporary_name(name) is temporary


_NAME_PART = st.sampled_from(
    [
        "ckpt-1",
        "a",
        ".index",
        ".data-00000-of-00001",
        ".tempstate",
        "7",
        "checkpoint",
        ".tmp",
        HEX32,
        "_temp",
        ".meta",
        "x",
    ]
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(names=st.sets(st.lists(_NAME_PART, min_size=1, max_size=5).map("".join), max_size=8))
def test_cleaning_removes_exactly_the_stale_temporaries(
    names: set[str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    directory = tmp_path_factory.mktemp("clean")
    for name in names:
        (directory / name).write_bytes(b"x")
    removed = remove_stale_temporaries(str(directory))
    expected = {name for name in names if is_temporary_name(name)}
    assert {os.path.basename(p) for p in removed} == expected
    assert set(os.listdir(directory)) == names - expected


def test_cleaning_leaves_links_foreign_files_and_foreign_temp_dirs(tmp_path: pathlib.Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.index.tempstate1").write_bytes(b"v")
    (outside / "part-00000-of-00001.index").write_bytes(b"v")
    run = tmp_path / "run"
    run.mkdir()
    (run / "ckpt-2.index.tempstate3").symlink_to(outside / "victim.index.tempstate1")
    (run / "ckpt-3_temp").symlink_to(outside, target_is_directory=True)
    (run / "mine_temp").mkdir()
    (run / "mine_temp" / SHARDED_TEMP_MARKER).write_bytes(b"")  # rule S-TP-4: ours
    (run / "mine_temp" / "part-00000-of-00001_dev-0-of-8.index").write_bytes(b"p")
    (
        run / "mine_temp" / "part-00000-of-00001_dev-0-of-8.data-00000-of-00001.tempstate4"
    ).write_bytes(b"p")
    (run / "theirs_temp").mkdir()
    (run / "theirs_temp" / "part-00000-of-00001.index").write_bytes(b"p")
    (run / "theirs_temp" / "notes.txt").write_bytes(b"keep")
    removed = remove_stale_temporaries(str(run))
    assert sorted(os.path.relpath(p, run) for p in removed) == [
        "mine_temp",
        f"mine_temp/{SHARDED_TEMP_MARKER}",
        "mine_temp/part-00000-of-00001_dev-0-of-8.data-00000-of-00001.tempstate4",
        "mine_temp/part-00000-of-00001_dev-0-of-8.index",
    ]
    assert sorted(os.listdir(run)) == ["ckpt-2.index.tempstate3", "ckpt-3_temp", "theirs_temp"]
    assert sorted(os.listdir(outside)) == ["part-00000-of-00001.index", "victim.index.tempstate1"]
    assert sorted(os.listdir(run / "theirs_temp")) == ["notes.txt", "part-00000-of-00001.index"]


def test_cleaning_a_missing_directory_removes_nothing(tmp_path: pathlib.Path) -> None:
    assert remove_stale_temporaries(str(tmp_path / "nope")) == []


# -- commits ---------------------------------------------------------------------------


def _temporary(path: pathlib.Path, data: bytes) -> TemporaryFile:
    temporary = TemporaryFile(str(path))
    temporary.file.write(data)
    temporary.sync(False)
    return temporary


def test_install_removes_the_old_index_first_and_renames_in_order(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "p.index").write_bytes(b"old index")
    (tmp_path / "p.data-00000-of-00001").write_bytes(b"old data")
    data = _temporary(tmp_path / "p.data-00000-of-00001.tempstate1", b"new data")
    index = _temporary(tmp_path / "p.index.tempstate1", b"new index")
    seen: list[tuple[str, ...]] = []
    real_remove, real_replace = os.remove, os.replace

    def remove(path: str) -> None:
        seen.append(("remove", os.path.basename(path)))
        real_remove(path)

    def replace(source: str, target: str) -> None:
        seen.append(
            ("replace", os.path.basename(target), str(os.path.exists(tmp_path / "p.index")))
        )
        real_replace(source, target)

    monkeypatch.setattr(os, "remove", remove)
    monkeypatch.setattr(os, "replace", replace)
    install(
        [
            (data.path, str(tmp_path / "p.data-00000-of-00001")),
            (index.path, str(tmp_path / "p.index")),
        ],
        directory=str(tmp_path),
        fsync=False,
        replaces_index=str(tmp_path / "p.index"),
        temporaries=(data, index),
    )
    # While the data file is replaced no index exists: never old index + new data.
    assert seen == [
        ("remove", "p.index"),
        ("replace", "p.data-00000-of-00001", "False"),
        ("replace", "p.index", "False"),
    ]
    assert (tmp_path / "p.data-00000-of-00001").read_bytes() == b"new data"
    assert (tmp_path / "p.index").read_bytes() == b"new index"


@pytest.mark.parametrize("fail_at", [1, 2, 3])
def test_a_failed_install_takes_back_what_it_renamed(
    fail_at: int, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _temporary(tmp_path / "p.data-00000-of-00001.tempstate1", b"d")
    index = _temporary(tmp_path / "p.index.tempstate1", b"i")
    calls = {"n": 0}
    real_replace, real_fsync = os.replace, os.fsync

    def counted(real):  # type: ignore[no-untyped-def]
        def call(*args):  # type: ignore[no-untyped-def]
            calls["n"] += 1
            if calls["n"] == fail_at:
                raise OSError(errno.ENOSPC, "full")
            return real(*args)

        return call

    monkeypatch.setattr(os, "replace", counted(real_replace))
    monkeypatch.setattr(os, "fsync", counted(real_fsync))
    with pytest.raises(OSError, match="full"):
        install(
            [
                (data.path, str(tmp_path / "p.data-00000-of-00001")),
                (index.path, str(tmp_path / "p.index")),
            ],
            directory=str(tmp_path),
            fsync=True,  # call 3 is the directory's fsync
            replaces_index=str(tmp_path / "p.index"),
            temporaries=(data, index),
        )
    data.discard()
    index.discard()
    assert os.listdir(tmp_path) == []


def test_state_file_kept_when_the_directory_fsync_fails(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    new = _temporary(tmp_path / f"checkpoint.tmp{HEX32}", b"new")
    (tmp_path / "checkpoint").write_bytes(b"old")

    def fail(fd: int) -> None:
        raise OSError(errno.EIO, "disk gone")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="disk gone"):
        install(
            [(new.path, str(tmp_path / "checkpoint"))],
            directory=str(tmp_path),
            fsync=True,
            temporaries=(new,),
            keep_on_failure=True,
        )
    assert os.listdir(tmp_path) == ["checkpoint"]
    assert (tmp_path / "checkpoint").read_bytes() == b"new"


def test_directory_fsync_tolerates_einval_only(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def einval(fd: int) -> None:
        raise OSError(errno.EINVAL, "not here")

    monkeypatch.setattr(os, "fsync", einval)
    durable.fsync_directory(str(tmp_path))

    def eio(fd: int) -> None:
        raise OSError(errno.EIO, "broken")

    monkeypatch.setattr(os, "fsync", eio)
    with pytest.raises(OSError, match="broken"):
        durable.fsync_directory(str(tmp_path))


# -- fsync order of the raw writers (rules S-AT-2, S-AT-3) ---------------------------------


def _path_of(fd: int) -> str:
    return os.readlink(f"/proc/self/fd/{fd}")


@pytest.fixture
def trace(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, str]]]:
    """Every fsync (by path), rename (by target) and removal, in order."""
    events: list[tuple[str, str]] = []
    real_fsync, real_replace, real_remove = os.fsync, os.replace, os.remove

    def fsync(fd: int) -> None:
        events.append(("fsync", _path_of(fd)))
        real_fsync(fd)

    def replace(source: str, target: str) -> None:
        events.append(("rename", os.path.realpath(source)))
        events.append(("renamed", os.path.realpath(target)))
        real_replace(source, target)

    def remove(path: str) -> None:
        real_remove(path)  # only removals that happen are traced
        events.append(("remove", os.path.realpath(path)))

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "remove", remove)
    yield events


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/fd")
def test_save_v2_fsyncs_files_then_renames_then_the_directory(
    tmp_path: pathlib.Path, trace: list[tuple[str, str]]
) -> None:
    run = tmp_path.resolve()
    dtckpt.save_v2(str(run / "p"), ["a"], [""], [np.arange(3.0)], fsync=True)
    data, index = str(run / "p.data-00000-of-00001"), str(run / "p.index")
    assert [kind for kind, _ in trace] == [
        "fsync",
        "fsync",
        "rename",
        "renamed",
        "rename",
        "renamed",
        "fsync",
    ]
    assert trace[0][1].startswith(data + ".tempstate") and trace[1][1].startswith(
        index + ".tempstate"
    )
    assert trace[2:] == [
        ("rename", trace[0][1]),
        ("renamed", data),
        ("rename", trace[1][1]),
        ("renamed", index),
        ("fsync", str(run)),
    ]


def test_raw_writers_do_not_fsync_by_default(
    tmp_path: pathlib.Path, trace: list[tuple[str, str]]
) -> None:
    dtckpt.save_v2(str(tmp_path / "parts" / "a"), ["x"], ["4 0,2"], [np.zeros(2)])
    dtckpt.save_v2(str(tmp_path / "parts" / "b"), ["x"], ["4 2,2"], [np.ones(2)])
    with BundleWriter(str(tmp_path / "w")) as writer:
        writer.add("t", np.ones(2))
    dtckpt.merge_v2_checkpoints(
        [str(tmp_path / "parts" / "a"), str(tmp_path / "parts" / "b")], str(tmp_path / "m")
    )
    assert [event for event in trace if event[0] == "fsync"] == []
    assert BundleReader(str(tmp_path / "m")).read("x").tolist() == [0, 0, 1, 1]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/fd")
def test_merge_with_fsync_syncs_inputs_index_and_directory(
    tmp_path: pathlib.Path, trace: list[tuple[str, str]]
) -> None:
    run = tmp_path.resolve()
    for name, spec, value in (("a", "4 0,2", np.zeros(2)), ("b", "4 2,2", np.ones(2))):
        dtckpt.save_v2(str(run / "parts" / name), ["x"], [spec], [value])
    trace.clear()
    dtckpt.merge_v2_checkpoints(
        [str(run / "parts" / "a"), str(run / "parts" / "b")], str(run / "m"), fsync=True
    )
    synced = [path for kind, path in trace if kind == "fsync"]
    sources = [str(run / "parts" / f"{n}.data-00000-of-00001") for n in "ab"]
    assert synced[0].startswith(str(run / "m.index.tempstate"))
    assert synced[1:] == [*sources, str(run)]
    renamed = [path for kind, path in trace if kind == "renamed"]
    assert renamed == [
        str(run / "m.data-00000-of-00002"),
        str(run / "m.data-00001-of-00002"),
        str(run / "m.index"),
    ]


def test_writers_overwrite_a_prefix_whole(
    tmp_path: pathlib.Path, trace: list[tuple[str, str]]
) -> None:
    prefix = str(tmp_path / "p")
    dtckpt.save_v2(prefix, ["a"], [""], [np.zeros(4)])
    trace.clear()
    dtckpt.save_v2(prefix, ["a", "b"], ["", ""], [np.ones(4), np.arange(2)])
    kinds = [(kind, os.path.basename(path)) for kind, path in trace if kind != "rename"]
    assert kinds == [
        ("remove", "p.index"),
        ("renamed", "p.data-00000-of-00001"),
        ("renamed", "p.index"),
    ]
    assert BundleReader(prefix).read("a").tolist() == [1.0] * 4


# -- the directory lock (rule S-LK-1) ---------------------------------------------------


def test_lock_is_reentrant_and_held_until_the_outermost_exit(tmp_path: pathlib.Path) -> None:
    assert flock_is_free(tmp_path)
    with directory_lock(str(tmp_path)):
        assert not flock_is_free(tmp_path)
        with directory_lock(str(tmp_path / ".." / tmp_path.name)):  # the same directory
            assert not flock_is_free(tmp_path)
        assert not flock_is_free(tmp_path)
    assert flock_is_free(tmp_path)
    assert dirlock._HOLDERS == {}


def test_threads_take_turns(tmp_path: pathlib.Path) -> None:
    order: list[str] = []
    trying, inside = threading.Event(), threading.Event()

    def second() -> None:
        trying.set()
        with directory_lock(str(tmp_path)):
            order.append("second in")
            inside.set()

    with directory_lock(str(tmp_path)):
        order.append("first in")
        thread = threading.Thread(target=second)
        thread.start()
        trying.wait()
        inside.wait(0.2)  # the second thread cannot get in while the first holds the lock
        order.append("first out")
    thread.join()
    assert order == ["first in", "first out", "second in"]


_HOLDER = """
import sys
from dtckpt.storage.dirlock import directory_lock
with directory_lock(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.readline()
"""


def _holder(directory: pathlib.Path) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(directory)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert child.stdout is not None and child.stdout.readline() == "held\n"
    return child


def test_another_process_waits_and_a_killed_holder_leaves_no_stale_lock(
    tmp_path: pathlib.Path,
) -> None:
    child = _holder(tmp_path)
    assert not flock_is_free(tmp_path)
    child.communicate("\n")
    assert flock_is_free(tmp_path)
    child = _holder(tmp_path)
    assert not flock_is_free(tmp_path)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert flock_is_free(tmp_path)
    assert os.listdir(tmp_path) == []  # no lock file


def test_without_fcntl_only_threads_are_serialised(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(dirlock, "fcntl", None)
    monkeypatch.setattr(dirlock, "_WARNED", set())
    with caplog.at_level(logging.WARNING, logger="dtckpt"):
        for _ in range(2):
            with directory_lock(str(tmp_path)):
                assert flock_is_free(tmp_path)
    assert caplog.text.count("without the inter-process directory lock") == 1


def test_a_filesystem_without_flock_falls_back(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    fake = types.SimpleNamespace(flock=refuse, LOCK_EX=fcntl.LOCK_EX, LOCK_NB=fcntl.LOCK_NB)
    monkeypatch.setattr(dirlock, "fcntl", fake)
    monkeypatch.setattr(durable, "fcntl", fake)
    monkeypatch.setattr(dirlock, "_WARNED", set())
    leftover = tmp_path / "p.index.tempstate1"
    leftover.write_bytes(b"x")
    with caplog.at_level(logging.WARNING, logger="dtckpt"):
        dtckpt.save_v2(str(tmp_path / "p"), ["a"], [""], [np.ones(2)])
        with directory_lock(str(tmp_path)):
            # Liveness cannot be checked, so a temporary is never removed.
            assert remove_stale_temporaries(str(tmp_path)) == []
    assert "refuses flock" in caplog.text
    assert BundleReader(str(tmp_path / "p")).read("a").tolist() == [1.0, 1.0]
    assert leftover.exists()


def test_other_flock_errors_are_raised(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(fd: int, operation: int) -> None:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(
        dirlock, "fcntl", types.SimpleNamespace(flock=broken, LOCK_EX=fcntl.LOCK_EX)
    )
    with pytest.raises(OSError, match="I/O error"):
        with directory_lock(str(tmp_path)):
            pass
    assert dirlock._HOLDERS == {}


def test_cleaning_leaves_temp_dirs_without_the_marker(tmp_path: pathlib.Path) -> None:
    """Rule S-TP-4: a `*_temp` directory is a leftover only if it holds the marker; an empty
    one, or one of part files a user made, stays."""
    (tmp_path / "empty_temp").mkdir()
    (tmp_path / "unmarked_temp").mkdir()
    (tmp_path / "unmarked_temp" / "part-00000-of-00001.index").write_bytes(b"keep")
    assert remove_stale_temporaries(str(tmp_path)) == []
    assert sorted(os.listdir(tmp_path)) == ["empty_temp", "unmarked_temp"]

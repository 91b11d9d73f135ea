"""A failure on one client of a multi-client save (rules P-ER-1, P-ER-2, P-SV-3, P-AS-1, S-TP-2).

Four MPI clients save on a 2x4 mesh; one of them runs out of disk space while writing,
fsyncing or renaming its data file, is refused permission, holds a bad value, or the root
fails to rename the index or the state file. Every client raises the same typed error
naming that client, the previous checkpoint and the state file are untouched, and the next
save leaves a clean directory. A client that stalls past the deadline makes every client
fail in time; a client killed mid-save leaves what the next save cleans.
"""

from __future__ import annotations

import os
import pathlib

import pytest

import dtckpt
from tests.dtensor.multiclient_model import build, check, mesh_for
from tests.mpi import run_ranks
from tests.stress.crash_workloads import leftovers, orphan_data_files

RANKS = "tests.checkpoint.collective_failure_ranks"


@pytest.mark.parametrize(
    "kind, victim",
    [
        ("write", 2),
        ("fsync", 1),
        ("rename", 3),
        ("permission", 2),
        ("value", 2),  # device 4 writes the block x=1
        ("index", 0),
        ("state", 0),
    ],
)
def test_a_failure_on_one_client_is_everyones(
    kind: str, victim: int, tmp_path: pathlib.Path
) -> None:
    run_ranks(4, f"{RANKS}:one_client_fails", str(tmp_path), kind, victim)


def test_an_asynchronous_failure_is_raised_by_sync_everywhere(tmp_path: pathlib.Path) -> None:
    run_ranks(4, f"{RANKS}:one_client_fails", str(tmp_path), "write", 3, True)


def test_a_stalled_client_fails_everyone_at_the_deadline(tmp_path: pathlib.Path) -> None:
    run_ranks(4, f"{RANKS}:one_client_stalls", str(tmp_path))


@pytest.mark.parametrize("when", ["writing", "renamed"])
def test_a_killed_client_leaves_what_the_next_save_cleans(
    when: str, tmp_path: pathlib.Path
) -> None:
    done = run_ranks(4, f"{RANKS}:killed_mid_save", str(tmp_path), when, check=False)
    assert done.returncode != 0, "the launcher reports the killed client"
    directory = str(tmp_path)
    first = f"{directory}/ckpt-1"
    assert dtckpt.latest_checkpoint(directory) == first
    assert not os.path.exists(f"{directory}/ckpt-2.index")
    assert leftovers(directory) or orphan_data_files(directory), "the kill left something"
    if when == "renamed":  # the killed client's data file is in place, with no index
        assert orphan_data_files(directory)
    mesh = mesh_for([["x", 2], ["y", 4]], 1)
    fresh, _ = build(mesh, 0)
    ckpt = dtckpt.Checkpoint(model=fresh)
    ckpt.restore(first).assert_consumed()
    check(fresh, 1)
    # The next save (here by one process) removes the temporaries and the orphaned files.
    path = ckpt.save(f"{directory}/ckpt")
    assert dtckpt.latest_checkpoint(directory) == path
    assert leftovers(directory) == set() and orphan_data_files(directory) == set()


def test_asynchronous_saves_of_several_clients(tmp_path: pathlib.Path) -> None:
    run_ranks(4, f"{RANKS}:async_saves", str(tmp_path / "mpi"))
    # One process saving the same way writes the same bytes.
    from tests.checkpoint import collective_failure_ranks as ranks
    from tests.dtensor.multiclient_model import files

    ranks.async_saves(str(tmp_path / "one"))
    ours, theirs = files(str(tmp_path / "mpi")), files(str(tmp_path / "one"))
    assert list(ours) == list(theirs) and all(ours[n] == theirs[n] for n in ours)


def test_a_stale_mark_takes_its_orphaned_data_files_along(tmp_path: pathlib.Path) -> None:
    from dtckpt.storage.durable import remove_stale_temporaries

    for name in (
        "a.index.tempstate12",  # a save of a that never committed
        "a.data-00000-of-00002",
        "a.data-00001-of-00002",
        "b.index.tempstate34",  # a save of b that did: b.index is there
        "b.index",
        "b.data-00000-of-00001",
        "c.data-00000-of-00001",  # no mark: not provably a leftover
        "a.data-00000-of-00002.bak",  # not a data file name
    ):
        (tmp_path / name).write_bytes(b"x")
    os.symlink(tmp_path / "c.data-00000-of-00001", tmp_path / "a.data-00002-of-00003")
    removed = sorted(os.path.basename(p) for p in remove_stale_temporaries(str(tmp_path)))
    assert removed == [
        "a.data-00000-of-00002",
        "a.data-00001-of-00002",
        "a.index.tempstate12",
        "b.index.tempstate34",
    ]
    assert sorted(os.listdir(tmp_path)) == [
        "a.data-00000-of-00002.bak",
        "a.data-00002-of-00003",  # a link is never removed
        "b.data-00000-of-00001",
        "b.index",
        "c.data-00000-of-00001",
    ]

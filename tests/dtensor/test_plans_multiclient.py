"""Plans of collective restores (rules R-PL-1, R-PL-2): each client plans and reads its own
devices' blocks, on 1 and 2 MPI clients."""

from __future__ import annotations

import pathlib

from tests.dtensor.plan_ranks import plan_then_restore
from tests.mpi import run_ranks


def test_one_client(tmp_path: pathlib.Path) -> None:
    plan_then_restore(str(tmp_path))


def test_two_clients(tmp_path: pathlib.Path) -> None:
    run_ranks(2, "tests.dtensor.plan_ranks:plan_then_restore", str(tmp_path / "mpi"))

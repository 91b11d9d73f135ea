"""MPI's communicator passes the conformance tests on 3 and 4 ranks (rules P-CM-1 to P-CM-3)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.mpi import run_ranks


@pytest.mark.parametrize("ranks", [3, 4])
def test_mpi_conformance(ranks: int) -> None:
    done = run_ranks(ranks, "tests.comm.mpi_ranks:conformance", timeout=300)
    # Each rank prints pytest's summary; none may report a failure or a skip.
    assert done.stdout.count(" passed") == ranks, done.stdout[-3000:]
    assert "failed" not in done.stdout and "skipped" not in done.stdout


def test_import_does_not_need_mpi4py() -> None:
    code = (
        "import sys; sys.modules['mpi4py'] = None\n"
        "import dtckpt, dtckpt.comm, dtckpt.dtensor\n"
        "from dtckpt.comm.mpi import MPICommunicator\n"
        "try:\n"
        "    MPICommunicator()\n"
        "except ImportError as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("MissingDependencyError")
    assert "pip install dtckpt[mpi]" in out.stdout

"""Running a test's ranks under ``mpiexec`` from pytest, with a hard timeout.

::

    run_ranks(4, "tests.checkpoint.collective_ranks:save_same_bytes", str(tmp_path))

starts ``mpiexec -n 4 python -m mpi4py tests/mpi_runner.py MODULE:FUNCTION ARGS`` from
the repository root; every rank calls ``FUNCTION(*ARGS)``. With ``-m mpi4py``, an
exception on one rank aborts every rank, so a failing rank never leaves the others
hanging; the whole run is killed (its process group) at the timeout. The MPI launcher
is the one installed beside this Python (the ``mpich`` wheel of the test extra), so the
tests run wherever the test extra is installed and never skip.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parent.parent
RUNNER = ROOT / "tests" / "mpi_runner.py"


def mpiexec() -> str:
    """The ``mpiexec`` of this Python's environment (else the first on ``PATH``)."""
    beside = pathlib.Path(sys.executable).parent / "mpiexec"
    if beside.exists():
        return str(beside)
    found = shutil.which("mpiexec")
    if found is None:
        raise AssertionError(
            "mpiexec is not installed: the test extra brings it (pip install -e .[test])"
        )
    return found


def run_ranks(
    ranks: int,
    target: str,
    *args: Any,
    timeout: float = 180.0,
    env: dict[str, str] | None = None,
    per_rank_env: dict[str, list[str]] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run ``target`` (``module:function``) on ``ranks`` MPI processes; its completed process.

    ``per_rank_env`` gives variables a value per rank (``mpiexec``'s ``:``-separated
    sections). With ``check`` a non-zero exit fails the calling test with every rank's output.
    """
    program = [sys.executable, "-m", "mpi4py", str(RUNNER), target, json.dumps(list(args))]
    command = [mpiexec(), "-n", str(ranks), *program]
    if per_rank_env:
        command = [mpiexec()]
        for rank in range(ranks):
            if rank:
                command.append(":")
            command += ["-n", "1"]
            for name, values in per_rank_env.items():
                command += ["-env", name, values[rank]]
            command += program
    environment = dict(os.environ)
    environment.update(env or {})
    environment["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), environment.get("PYTHONPATH", "")) if p
    )
    for name in ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE"):
        environment.pop(name, None)  # a launcher of our own is not an inherited one
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        raise AssertionError(
            f"{target} on {ranks} ranks did not finish in {timeout} s\n{out[-4000:]}\n{err[-4000:]}"
        ) from None
    done = subprocess.CompletedProcess(command, process.returncode, out, err)
    if check and done.returncode != 0:
        raise AssertionError(
            f"{target} on {ranks} ranks exited with {done.returncode}\n"
            f"--- stdout ---\n{out[-6000:]}\n--- stderr ---\n{err[-6000:]}"
        )
    return done

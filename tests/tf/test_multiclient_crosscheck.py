"""Multi-client checkpoints against TensorFlow's: 2 TF clients and 2 MPI clients (P-SV-2, P-RS-1).

TensorFlow 2.21 runs as two DTensor clients on localhost (free ports, ``DTENSOR_*``
variables, as its own ``multi_client_test_util`` starts them); dtckpt runs as two MPI
processes. On the same 2x4 mesh, with the same values and layouts, both write files of
the same names and sizes whose index entries agree in every field but the offset inside
a data file (TensorFlow's order there varies from run to run). Each restores the other's
checkpoint into a 4x2 mesh with other layouts, and checks every local block.
"""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import sys

import pytest

pytest.importorskip("tensorflow")

import dtckpt  # noqa: E402
from tests.mpi import ROOT, run_ranks  # noqa: E402

XY = [["x", 2], ["y", 4]]
AB = [["a", 4], ["b", 2]]
CLIENT = pathlib.Path(__file__).with_name("tf_multiclient_client.py")
RANKS = "tests.tf.multiclient_ranks"


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("localhost", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def run_tf_clients(action: str, path: str, dims: list[list[object]], tag: int) -> None:
    """Two TensorFlow DTensor clients, each a process of its own, doing ``action`` at ``path``."""
    ports = _free_ports(2)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    for name in ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE"):
        env.pop(name, None)
    processes = []
    for client in range(2):
        args = {"client": client, "ports": ports, "action": action, "path": path}
        args.update(dims=dims, tag=tag)
        processes.append(
            subprocess.Popen(
                [sys.executable, str(CLIENT), json.dumps(args)],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=300))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    for client, (process, (out, err)) in enumerate(zip(processes, outputs, strict=True)):
        assert process.returncode == 0, f"TF client {client}: {out[-3000:]}\n{err[-5000:]}"
        assert f"client {client} {action} ok" in out


def _same_entries_and_sizes(ours: str, theirs: str) -> None:
    a, b = dtckpt.BundleReader(ours), dtckpt.BundleReader(theirs)
    assert a.header == b.header
    assert a.raw_keys() == b.raw_keys()
    for key in b.raw_keys():
        assert a.entry(key)._replace(offset=0) == b.entry(key)._replace(offset=0), key

    def sizes(prefix: str) -> dict[str, int]:
        directory, base = os.path.split(prefix)
        return {
            f: os.path.getsize(os.path.join(directory, f))
            for f in os.listdir(directory)
            if f.startswith(base + ".data-")
        }

    assert sizes(ours) == sizes(theirs)


def test_two_tf_clients_and_two_mpi_clients_read_each_other(tmp_path: pathlib.Path) -> None:
    theirs, ours = str(tmp_path / "tf" / "ckpt"), str(tmp_path / "dtckpt" / "ckpt")
    run_tf_clients("save", theirs, XY, 7)
    run_ranks(2, f"{RANKS}:save", ours, XY, 7)
    _same_entries_and_sizes(ours, theirs)
    run_ranks(2, f"{RANKS}:restore", theirs, AB, 7)
    run_tf_clients("restore", ours, AB, 7)


def test_tf_clients_read_balanced_writers(tmp_path: pathlib.Path) -> None:
    ours = str(tmp_path / "balanced" / "ckpt")
    run_ranks(2, f"{RANKS}:save", ours, XY, 9, "balanced")
    run_tf_clients("restore", ours, AB, 9)

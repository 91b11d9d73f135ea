"""Several MPI processes, one mesh, one checkpoint (rules P-SV-1 to P-SV-3, P-RS-1, P-WR-1).

Each test starts its clients with ``mpiexec`` (``tests/mpi.py``); the rank programs are
in ``multiclient_ranks.py``. A multi-client save's files are byte for byte those of a
single-process save of the same state; checkpoints written by 1, 2, 4 and 8 clients
restore into meshes of other shapes with 1, 2, 4 and 8 clients.
"""

from __future__ import annotations

import json
import os
import pathlib

import numpy as np

import dtckpt
from dtckpt import dtensor as dd
from tests.dtensor import multiclient_ranks as ranks
from tests.dtensor.multiclient_model import files
from tests.mpi import run_ranks

XY = [["x", 2], ["y", 4]]
AB = [["a", 4], ["b", 2]]
P8 = [["p", 8]]
U = dd.UNSHARDED
KINDS = ("write", "save", "dck", "manager", "balanced", "names")


def test_four_clients_write_the_bytes_of_one_process(tmp_path: pathlib.Path) -> None:
    run_ranks(4, "tests.dtensor.multiclient_ranks:save_every_way", str(tmp_path / "mpi"), XY)
    ranks.save_every_way(str(tmp_path / "one"), XY)
    for kind in KINDS:
        ours, theirs = files(str(tmp_path / "mpi" / kind)), files(str(tmp_path / "one" / kind))
        assert ours and list(ours) == list(theirs), kind
        for name in ours:
            assert ours[name] == theirs[name], (kind, name)
    counts = json.loads((tmp_path / "mpi" / "counts.json").read_text())
    assert counts == {k: 3 for k in ("write", "save", "dtensor", "manager", "balanced", "names")}
    # No temporaries, no stray files.
    leftovers = [p.name for p in (tmp_path / "mpi").rglob("*") if "tempstate" in p.name]
    assert leftovers == []


def test_balanced_writers_spread_replicated_blocks(tmp_path: pathlib.Path) -> None:
    # Data parallel x tensor parallel: every weight is cut over tp and copied over dp.
    # TensorFlow's rule has the dp=0 row (one client of 4) write everything; balanced
    # writers give each dp row a quarter. Both checkpoints restore the same values.
    mesh = dd.create_mesh([("dp", 4), ("tp", 2)])
    model = dtckpt.Module()
    values = {f"w{i}": np.arange(64 * 32, dtype=np.float32).reshape(64, 32) + i for i in range(8)}
    for name, value in values.items():
        setattr(model, name, dd.DVariable(value, layout=dd.Layout([U, "tp"], mesh)))
    lowest = dtckpt.Checkpoint(model=model).write(str(tmp_path / "lowest" / "c"))
    balanced = dtckpt.Checkpoint(model=model).write(
        str(tmp_path / "balanced" / "c"),
        options=dtckpt.CheckpointOptions(experimental_writers="balanced"),
    )

    def data_sizes(prefix: str) -> list[int]:
        folder = pathlib.Path(prefix).parent
        return sorted(p.stat().st_size for p in folder.iterdir() if ".data-" in p.name)

    assert len(data_sizes(lowest)) == 3  # devices 0, 1 and the regular part
    assert len(data_sizes(balanced)) == 9  # all 8 devices and the regular part
    total = sum(v.nbytes for v in values.values())
    assert max(data_sizes(lowest)) >= total // 2
    assert max(data_sizes(balanced)) <= total // 8 + 64 * 16 * 4
    a, b = dtckpt.BundleReader(lowest), dtckpt.BundleReader(balanced)
    assert a.raw_keys() == b.raw_keys()
    for path in (lowest, balanced):
        fresh = dtckpt.Module()
        other = dd.create_mesh([("x", 8)])
        for name, value in values.items():
            layout = dd.Layout(["x", U], other)
            setattr(fresh, name, dd.DVariable(np.zeros_like(value), layout=layout))
        dtckpt.Checkpoint(model=fresh).read(path).assert_consumed()
        for name, value in values.items():
            assert np.array_equal(getattr(fresh, name).numpy(), value), (path, name)


def test_resharding_across_1_2_4_and_8_clients(tmp_path: pathlib.Path) -> None:
    by = {n: str(tmp_path / f"by{n}" / "c") for n in (1, 2, 4, 8)}
    target = "tests.dtensor.multiclient_ranks:reshard_round"
    ranks.save_for_resharding(by[1], XY, 1)  # one process, 2x4
    run_ranks(4, target, [[by[1], 1]], XY, by[4], 4)  # 4 clients, 2x4
    dtckpt.archive.pack(by[4], str(tmp_path / "by4.dtar"))  # read in place by every client
    archived = str(tmp_path / "by4.dtar") + "::c"
    run_ranks(2, target, [[by[4], 4], [by[1], 1], [archived, 4]], AB, by[2], 2)  # 2 clients, 4x2
    run_ranks(8, target, [[by[4], 4], [by[2], 2]], P8, by[8], 8)  # 8 clients, 8
    run_ranks(4, "tests.dtensor.multiclient_ranks:restore_and_check", [[by[8], 8], [by[2], 2]], AB)
    ranks.restore_and_check([[by[8], 8], [by[4], 4], [by[2], 2]], AB)  # one process, 4x2


def test_the_readme_program_runs_alone_and_on_four_clients(tmp_path: pathlib.Path) -> None:
    import re
    import subprocess
    import sys

    from tests.mpi import ROOT, mpiexec

    text = (ROOT / "README.md").read_text()
    (program,) = re.findall(r"```py\n(.*?)```", text, re.S)
    env = dict(os.environ, PYTHONPATH=str(ROOT))  # this checkout's dtckpt
    for name in ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE"):
        env.pop(name, None)
    for clients in (1, 4):
        script = tmp_path / f"train{clients}.py"
        script.write_text(program.replace("/tmp/ck", str(tmp_path / f"ck{clients}")))
        command = [sys.executable, str(script)]
        if clients > 1:
            command = [mpiexec(), "-n", str(clients), sys.executable, "-m", "mpi4py", str(script)]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=300, cwd=ROOT, env=env
        )
        assert done.returncode == 0, done.stderr[-4000:]
        # One line per client (the launcher may interleave them, so count, not split).
        assert done.stdout.count(" holds ") == clients, done.stdout
    one = files(str(tmp_path / "ck1" / "mc"))
    four = files(str(tmp_path / "ck4" / "mc"))
    assert one and list(one) == list(four) and all(one[n] == four[n] for n in one)

"""Multi-client DTensor checkpoints: 1, 2 and 4 MPI clients beside one process and raw file I/O.

Run from anywhere::

    python bench/multiclient.py            # full run: 1 GiB in 16 DVariables, a few minutes
    python bench/multiclient.py --quick    # 64 MiB, for smoke tests
    python bench/multiclient.py --repeats 5 --json bench/results/multiclient.json

The variables live on a 2x4 mesh (``x``, ``y``) with layout ``[x, y]``, so every block
is held by one device and each of N clients holds 1/N of the bytes. Each configuration
runs as its own program: one process alone (the single-process save), then ``mpiexec -n
N`` for N = 2 and 4 (this machine's cores are shared by all clients). In each, every
client times, between two barriers: a raw write of its blocks (one file, plain
``write``), ``Checkpoint.write`` (no fsync, as the raw write), a raw read of its blocks
back (``readinto``), and a resharding ``Checkpoint.read`` into a 4x2 mesh with layout
``[b, a]``. Every figure is the best of several interleaved rounds; throughput counts
the whole checkpoint's bytes (1 GiB) over the time from the first barrier to the last.
Also reported per save: the number of collectives and the seconds spent inside them
(least over clients: the protocol's own cost; most: waiting for the slowest writer),
and the latency of one barrier.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(HERE)
for _path in (HERE, REPO_ROOT):  # the checkout's dtckpt and bench/_common, however started
    if _path not in sys.path:
        sys.path.insert(0, _path)

from _common import (  # noqa: E402
    GB,
    base_parser,
    fmt_seconds,
    fmt_size,
    header,
    machine_facts,
    repeats_from,
    table,
    write_json,
)


@dataclass(frozen=True)
class Config:
    label: str
    count: int  # how many float32 DVariables ...
    side: int  # ... each of shape [side, side]
    repeats: int

    @property
    def nbytes(self) -> int:
        return self.count * self.side * self.side * 4


FULL = Config("full", 16, 4096, 5)  # 16 x 64 MiB = 1 GiB
QUICK = Config("quick", 16, 1024, 3)  # 16 x 4 MiB = 64 MiB
CLIENTS = (1, 2, 4)
SAVE_MESH = [("x", 2), ("y", 4)]
RESTORE_MESH = [("a", 4), ("b", 2)]
BARRIERS = 200


def expected_block(index: int, side: int, box: tuple[tuple[int, int], ...]) -> np.ndarray:
    """Block ``box`` of variable ``index``: exact float32 values computable for any box."""
    (r0, rn), (c0, cn) = box
    rows = np.arange(r0, r0 + rn, dtype=np.int64)[:, None]
    cols = np.arange(c0, c0 + cn, dtype=np.int64)[None, :]
    return (((rows * side + cols) * 7 + index) % 8388593).astype(np.float32)


# --- one client's program (alone or under mpiexec) ---------------------------------------------


def rank_program(cfg: Config, work: str, out: str, repeats: int) -> None:
    import dtckpt
    from dtckpt import dtensor as dd
    from dtckpt.comm import world
    from dtckpt.mesh import device_box

    comm = world()
    clients = comm.size

    def mesh(dims: list[tuple[str, int]]) -> Any:
        if clients == 1:
            return dd.create_mesh(dims)
        dd.set_num_local_devices("CPU", 8 // clients)
        return dd.create_distributed_mesh(dims)

    shape = (cfg.side, cfg.side)
    layout = dd.Layout(["x", "y"], mesh(SAVE_MESH))
    target = dd.Layout(["b", "a"], mesh(RESTORE_MESH))
    model = dtckpt.Module()
    local: list[np.ndarray] = []
    for i in range(cfg.count):
        devices = layout.mesh.local_device_ids()
        parts = [expected_block(i, cfg.side, device_box(layout, shape, d)) for d in devices]
        local.extend(parts)
        setattr(model, f"v{i:02d}", dd.DVariable(dd.DTensor(parts, layout, shape)))
    fresh = dtckpt.Module()
    for i in range(cfg.count):
        parts = [
            np.zeros(target.local_shape_from_global_shape(shape), np.float32)
            for _ in target.mesh.local_device_ids()
        ]
        setattr(fresh, f"v{i:02d}", dd.DVariable(dd.DTensor(parts, target, shape)))
    prefix = os.path.join(work, "ckpt")
    raw = os.path.join(work, f"raw-{comm.rank}")
    options = dtckpt.CheckpointOptions(experimental_fsync=False)
    buffers = [np.empty_like(a) for a in local]
    long = 600.0

    def timed(run: Any) -> float:
        comm.barrier(timeout=long)
        start = time.perf_counter()
        run()
        comm.barrier(timeout=long)
        return time.perf_counter() - start

    def raw_write() -> None:
        with open(raw, "wb") as f:
            for a in local:
                f.write(a.data)

    def raw_read() -> None:
        with open(raw, "rb", buffering=0) as f:
            for b in buffers:
                f.readinto(b.data)  # type: ignore[attr-defined]

    def clear() -> None:
        comm.barrier(timeout=long)
        if comm.rank == 0:
            for name in os.listdir(work):
                if name.startswith("ckpt") or name == "checkpoint":
                    os.remove(os.path.join(work, name))
        if os.path.exists(raw):
            os.remove(raw)

    times: dict[str, list[float]] = {"raw write": [], "save": [], "raw read": [], "restore": []}
    collectives: list[tuple[int, float]] = []
    for _ in range(repeats):
        clear()
        times["raw write"].append(timed(raw_write))
        clear()
        comm.barrier(timeout=long)
        before = (comm.stats.count, comm.stats.seconds)
        start = time.perf_counter()
        dtckpt.Checkpoint(model=model).write(prefix, options=options)
        after = (comm.stats.count, comm.stats.seconds)
        comm.barrier(timeout=long)
        times["save"].append(time.perf_counter() - start)
        collectives.append((after[0] - before[0], after[1] - before[1]))
        raw_write()
        times["raw read"].append(timed(raw_read))
        times["restore"].append(timed(lambda: dtckpt.Checkpoint(model=fresh).read(prefix)))
    # Checks, once, outside timing: the restore is right, the raw read too.
    for i in range(cfg.count):
        tensor = getattr(fresh, f"v{i:02d}").read_value()
        for device, block in zip(tensor.local_devices, tensor.components, strict=True):
            want = expected_block(i, cfg.side, device_box(target, shape, device))
            assert np.array_equal(block, want), (i, device)
    assert all(np.array_equal(a, b) for a, b in zip(local, buffers, strict=True))
    comm.barrier(timeout=long)
    start = time.perf_counter()
    for _ in range(BARRIERS):
        comm.barrier(timeout=long)
    barrier = (time.perf_counter() - start) / BARRIERS
    mine = {"times": times, "collectives": collectives, "barrier_s": barrier}
    everyone = comm.gather(mine, timeout=long)
    if comm.rank == 0:
        assert everyone is not None
        with open(out, "w") as f:
            json.dump({"clients": clients, "ranks": everyone}, f)


# --- the driver ----------------------------------------------------------------------------------


def run_clients(clients: int, cfg: Config, work: str, repeats: int) -> dict[str, Any]:
    out = os.path.join(work, f"result-{clients}.json")
    program = [sys.executable]
    if clients > 1:
        mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
        program = [
            mpiexec if os.path.exists(mpiexec) else "mpiexec",
            "-n",
            str(clients),
            sys.executable,
            "-m",
            "mpi4py",
        ]
    folder = os.path.join(work, f"clients-{clients}")
    os.makedirs(folder)
    env = dict(os.environ)
    for name in ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE"):
        env.pop(name, None)
    command = [
        *program,
        os.path.abspath(__file__),
        "--rank-program",
        json.dumps(asdict(cfg)),
        folder,
        out,
        str(repeats),
    ]
    print(f"  {clients} client(s): {' '.join(command[:4])} ...", file=sys.stderr, flush=True)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise SystemExit(
            f"{clients} client(s) failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
        )
    with open(out) as f:
        result: dict[str, Any] = json.load(f)
    shutil.rmtree(folder, ignore_errors=True)
    return result


def summarize(result: dict[str, Any], nbytes: int) -> dict[str, Any]:
    ranks = result["ranks"]
    best = {
        op: min(max(r["times"][op][i] for r in ranks) for i in range(len(ranks[0]["times"][op])))
        for op in ranks[0]["times"]
    }
    rounds = len(ranks[0]["collectives"])
    counts = {c for r in ranks for c, _ in r["collectives"]}
    inside = [[s for _, s in r["collectives"]] for r in ranks]
    return {
        "clients": result["clients"],
        "best_s": best,
        "gbps": {op: nbytes / t / GB for op, t in best.items()},
        "collectives_per_save": sorted(counts),
        "collective_s_least": min(min(v) for v in inside),
        "collective_s_most": max(min(v) for v in inside),
        "barrier_s": max(r["barrier_s"] for r in ranks),
        "rounds": rounds,
    }


def main(argv: list[str] | None = None) -> int:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--rank-program":
        cfg = Config(**json.loads(sys.argv[2]))
        rank_program(cfg, sys.argv[3], sys.argv[4], int(sys.argv[5]))
        return 0
    p = base_parser(
        __doc__.split("\n\n")[0],
        "small, fast run (64 MiB in 16 DVariables) for smoke tests",
        FULL.repeats,
    )
    args = p.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    repeats = repeats_from(p, args.repeats, cfg.repeats)
    started = time.perf_counter()
    if args.dir:
        os.makedirs(args.dir, exist_ok=True)
    work = tempfile.mkdtemp(prefix="dtckpt-bench-mc-", dir=args.dir)
    try:
        facts = machine_facts(work, REPO_ROOT, None)
        facts["loadavg_start"] = list(os.getloadavg())
        runs = {n: summarize(run_clients(n, cfg, work, repeats), cfg.nbytes) for n in CLIENTS}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    wall = time.perf_counter() - started
    facts["loadavg_end"] = list(os.getloadavg())

    print(header("dtckpt multi-client checkpoint benchmark", facts, cfg.label, repeats, "not used"))
    print(
        f"checkpoint: {fmt_size(cfg.nbytes)} in {cfg.count} float32 DVariables "
        f"[{cfg.side}, {cfg.side}], 2x4 mesh [x, y]; restore into 4x2 [b, a]"
    )
    print()
    print(
        "Timings: best over rounds of the slowest client (GB = 1e9 bytes of the whole checkpoint)"
    )
    rows = []
    for n, run in runs.items():
        for op in ("raw write", "save", "raw read", "restore"):
            rows.append([f"{n}", op, fmt_seconds(run["best_s"][op]), f"{run['gbps'][op]:.2f} GB/s"])
    print(table(["clients", "operation", "time", "throughput"], rows, right=[2, 3]))
    print()
    one = runs[1]
    comparisons = []
    for n, run in runs.items():
        for op, raw_op in (("save", "raw write"), ("restore", "raw read")):
            comparisons.append(
                {
                    "name": f"{op}, {n} client(s) vs one process",
                    "ratio": run["gbps"][op] / one["gbps"][op],
                }
            )
            comparisons.append(
                {
                    "name": f"{op}, {n} client(s) vs raw {raw_op.split()[1]} ({n} client(s))",
                    "ratio": run["gbps"][op] / run["gbps"][raw_op],
                }
            )
    print("Ratios: throughput / reference throughput (> 1 means faster than the reference)")
    print(
        table(
            ["comparison", "ratio"],
            [[c["name"], f"{c['ratio']:.2f}"] for c in comparisons],
            right=[1],
        )
    )
    print()
    print(
        "Collectives per save, and seconds inside them (least over clients: the protocol's "
        "cost; most: waiting for the slowest writer); one barrier's latency"
    )
    rows = [
        [
            f"{n}",
            ",".join(map(str, run["collectives_per_save"])),
            fmt_seconds(run["collective_s_least"]),
            fmt_seconds(run["collective_s_most"]),
            fmt_seconds(run["barrier_s"]),
        ]
        for n, run in runs.items()
    ]
    print(table(["clients", "collectives", "least", "most", "barrier"], rows, right=[1, 2, 3, 4]))
    print()
    print(f"Wall time {wall:.0f} s.")
    if args.json:
        write_json(
            args.json,
            facts,
            asdict(cfg) | {"repeats": repeats, "bytes": cfg.nbytes},
            wall,
            runs={str(n): r for n, r in runs.items()},
            comparisons=comparisons,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

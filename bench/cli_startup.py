"""Cold-start time of the ``dtckpt`` command line on a checkpoint of many small tensors.

Run from anywhere::

    python bench/cli_startup.py             # 10,000 tensors, 9 rounds (about half a minute)
    python bench/cli_startup.py --quick     # 1,000 tensors, 3 rounds (CI smoke test)
    python bench/cli_startup.py --json bench/results/cli_startup.json

Every timed run is a fresh ``python -m dtckpt ...`` process, as a user at a shell starts it:
interpreter start-up, imports, opening the index and printing are all in the time. The
interpreter's own floor (``python -c pass``, ``python -c "import numpy"``) is timed beside
it. One more run under ``python -X importtime`` lists which heavy modules (Numba,
zstandard, ml_dtypes, the DTensor package...) the command imported. The checkpoint is
written with ``dtckpt.save_v2``; nothing else of dtckpt is used. See bench/README.md.
"""

from __future__ import annotations

import os
import re
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
    Variant,
    base_parser,
    header,
    interleaved,
    machine_facts,
    repeats_from,
    write_json,
)
from bundle_io import Report, log  # noqa: E402

import dtckpt  # noqa: E402


@dataclass(frozen=True)
class Config:
    label: str
    tensors: int
    repeats: int


FULL = Config("full", 10_000, 9)
QUICK = Config("quick", 1_000, 3)

#: The budget for ``dtckpt inspect`` of 10,000 tensors in a fresh process.
BUDGET_S = 0.3
#: Modules a light command should not need; reported when imported.
HEAVY = (
    "numba",
    "llvmlite",
    "zstandard",
    "ml_dtypes",
    "tensorflow",
    "dtckpt.dtensor",
    "dtckpt.mesh",
    "dtckpt.checkpoint.checkpoint",
    "dtckpt.kernels.jit",
)
_IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def write_checkpoint(prefix: str, count: int) -> int:
    """``count`` float32 vectors of 4 to 64 elements under Keras-like keys; the index size."""
    rng = np.random.default_rng(0)
    names = [
        f"layer_{i // 2:05d}/{'kernel' if i % 2 == 0 else 'bias'}/.ATTRIBUTES/VARIABLE_VALUE"
        for i in range(count)
    ]
    arrays = [rng.standard_normal(int(rng.integers(4, 65))).astype(np.float32) for _ in names]
    dtckpt.save_v2(prefix, names, [""] * count, arrays)
    return os.path.getsize(prefix + ".index")


def command(*args: str) -> list[str]:
    return [sys.executable, *args]


#: The children's environment: set by :func:`bench` before anything runs.
CHILD_ENV: dict[str, str] = dict(os.environ)


def child_environment(work: str) -> dict[str, str]:
    """This environment, with bytecode caching on, in a cache under ``work``.

    An installed package has its ``.pyc`` files; an environment that sets
    ``PYTHONDONTWRITEBYTECODE`` would otherwise make every timed run compile every
    module of dtckpt from source, a cost no user of an installed dtckpt pays.
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = os.path.join(work, "pycache")
    return env


def run_quietly(argv: list[str]) -> None:
    done = subprocess.run(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=REPO_ROOT, env=CHILD_ENV
    )
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr[-2000:]!r}")


def imported(argv: list[str]) -> dict[str, float]:
    """Cumulative import milliseconds by module, from one run under ``-X importtime``."""
    done = subprocess.run(
        [argv[0], "-X", "importtime", *argv[1:]],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        env=CHILD_ENV,
    )
    out = {}
    for line in done.stderr.splitlines():
        match = _IMPORT_LINE.match(line)
        if match:
            out[match.group(4)] = int(match.group(2)) / 1000
    return out


def bench(cfg: Config, work: str, rep: Report, repeats: int) -> dict[str, Any]:
    prefix = os.path.join(work, "ckpt")
    CHILD_ENV.clear()
    CHILD_ENV.update(child_environment(work))
    log(f"writing {cfg.tensors:,} small tensors")
    index_bytes = write_checkpoint(prefix, cfg.tensors)
    rep.notes.append(f"checkpoint: {cfg.tensors:,} tensors, index {index_bytes:,} bytes")
    runs = {
        "python -c pass": command("-c", "pass"),
        "python -c 'import numpy'": command("-c", "import numpy"),
        "dtckpt --help": command("-m", "dtckpt", "--help"),
        "dtckpt inspect": command("-m", "dtckpt", "inspect", prefix),
        "dtckpt inspect --json": command("-m", "dtckpt", "inspect", "--json", prefix),
        "dtckpt verify": command("-m", "dtckpt", "verify", prefix),
    }
    for argv in runs.values():  # checks each works, and compiles any .pyc files once
        run_quietly(argv)
    variants = {
        name: Variant(name, lambda argv=argv: run_quietly(argv)) for name, argv in runs.items()
    }
    log(f"timing {len(variants)} commands x {repeats} interleaved rounds")
    interleaved(list(variants.values()), repeats)
    unit = f"{cfg.tensors:,} tensors, cold"
    rep.section(
        f"fresh process each run ({cfg.tensors:,} tensors)",
        [
            (v, None, unit if name.startswith("dtckpt i") or name == "dtckpt verify" else "floor")
            for name, v in variants.items()
        ],
    )
    budget = Variant(f"the {BUDGET_S} s budget", lambda: None, times=[BUDGET_S])
    numpy_floor = variants["python -c 'import numpy'"]
    rep.compare(
        f"inspect {cfg.tensors:,}, cold", variants["dtckpt inspect"], budget, budget.name, 1.0
    )
    rep.compare(
        f"inspect {cfg.tensors:,}, cold",
        variants["dtckpt inspect"],
        numpy_floor,
        numpy_floor.name,
        None,
    )
    rep.compare(
        f"inspect --json {cfg.tensors:,}, cold",
        variants["dtckpt inspect --json"],
        budget,
        budget.name,
        None,
    )
    rep.compare(
        f"verify {cfg.tensors:,}, cold", variants["dtckpt verify"], budget, budget.name, None
    )
    modules = {}
    for name in ("dtckpt inspect", "dtckpt verify", "dtckpt --help"):
        loaded = imported(runs[name])
        modules[name] = {m: loaded[m] for m in HEAVY if m in loaded}
        tops = sorted(
            ((ms, m) for m, ms in loaded.items() if "." not in m and m != "dtckpt"),
            reverse=True,
        )[:5]
        heavy = ", ".join(f"{m} ({ms:.0f} ms)" for m, ms in modules[name].items()) or "none"
        rep.notes.append(f"{name}: heavy modules imported: {heavy}")
        rep.notes.append(
            f"{name}: largest top-level imports: "
            + ", ".join(f"{m} {ms:.0f} ms" for ms, m in tops)
            + f"; dtckpt {loaded.get('dtckpt', 0):.0f} ms (cumulative, one run)"
        )
    return {"index_bytes": index_bytes, "heavy_modules": modules}


def main(argv: list[str] | None = None) -> int:
    p = base_parser(
        __doc__.split("\n\n")[0], "1,000 tensors, 3 rounds (CI smoke test)", FULL.repeats
    )
    args = p.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    repeats = repeats_from(p, args.repeats, cfg.repeats)
    started = time.perf_counter()
    if args.dir:
        os.makedirs(args.dir, exist_ok=True)
    work = tempfile.mkdtemp(prefix="dtckpt-bench-cli-", dir=args.dir)
    rep = Report()
    try:
        facts = machine_facts(work, REPO_ROOT, None)
        facts["loadavg_start"] = list(os.getloadavg())
        extra = bench(cfg, work, rep, repeats)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    wall = time.perf_counter() - started
    facts["loadavg_end"] = list(os.getloadavg())
    facts["numba_disabled"] = os.environ.get("DTCKPT_DISABLE_NUMBA", "") not in ("", "0")

    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        header(
            "dtckpt command-line start-up benchmark",
            facts,
            cfg.label,
            repeats,
            "not used",
            machine_extra=f"; load average {load}",
        )
    )
    print()
    print("Timings: whole process, start to exit")
    print(rep.timing_table())
    print()
    print("Ratios: time theirs / ours (> 1 means the command is faster than the reference)")
    print(rep.target_table())
    print()
    print("Imports and notes")
    for note in rep.notes:
        print(f"  {note}")
    misses = rep.misses()
    print()
    print(
        f"{len(misses)} target(s) missed"
        + (": " + "; ".join(misses) if misses else "")
        + f". Wall time {wall:.0f} s."
    )
    if args.json:
        write_json(
            args.json,
            facts,
            asdict(cfg) | {"repeats": repeats, "budget_s": BUDGET_S},
            wall,
            **rep.as_json(),
            **extra,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

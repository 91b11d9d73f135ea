"""Host memory and caller stalls of checkpointing 1 GiB of state, dtckpt beside TensorFlow.

Three questions users of every checkpoint library ask, answered side by side in one run:

* **restore into existing variables**: how far does the process's resident memory rise
  above the state it already holds? (dtckpt validates every value from the index first,
  then reads each straight into its variable's own array, rules O-RS-14 and O-RS-15.)
* **save**: the same question for a synchronous save.
* **asynchronous save**: how long is the caller blocked by ``save()`` before training can
  go on, per GiB of state, and are the saved values exactly those at the call even when
  every variable is assigned right after? (dtckpt keeps the arrays of values that are
  replaced rather than written into instead of copying them, rule O-CK-10.)

Every figure comes from a fresh child process per engine and question, so one
measurement cannot inherit another's heap: the peak resident set (Linux ``VmHWM``,
reset just before the call) minus the resident set just before it, with glibc's mmap
threshold fixed so that a transient buffer cannot hide in memory freed earlier. PyTorch DCP
(``torch.distributed.checkpoint``, one process, no process group) and Orbax (JAX on the CPU)
get rows of their own when they import; the benchmark does not install them.

Run ``python bench/memory.py`` (1 GiB in 16 float32 variables) or ``--quick`` (64 MiB).
"""

from __future__ import annotations

import argparse
import functools
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(HERE)
for _path in (HERE, REPO_ROOT):  # the checkout's dtckpt and bench/_common, however started
    if _path not in sys.path:
        sys.path.insert(0, _path)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _common import (  # noqa: E402
    MiB,
    base_parser,
    current_rss,
    header,
    machine_facts,
    peak_rss,
    repeats_from,
    reset_peak_rss,
    table,
    write_json,
)
from bundle_io import import_tf  # noqa: E402

import dtckpt  # noqa: E402


@dataclass(frozen=True)
class Config:
    label: str
    count: int  # float32 variables ...
    elements: int  # ... of this many elements each
    repeats: int

    @property
    def total_bytes(self) -> int:
        return self.count * self.elements * 4


FULL = Config("full", 16, 16 * MiB, 3)  # 16 x 64 MiB = 1 GiB
QUICK = Config("quick", 16, MiB, 1)  # 16 x 4 MiB = 64 MiB

TARGET_RESTORE_PEAK_MIB = 64.0  # extra resident memory of a restore (<= passes)
TARGET_ASYNC_MS_PER_GIB = 20.0  # caller blocked by an asynchronous save (<= passes)


def names(cfg: Config) -> list[str]:
    return [f"v{i:03d}" for i in range(cfg.count)]


def value(cfg: Config, i: int, generation: int) -> np.ndarray:
    """The value of variable ``i`` at a training step: distinct per variable and step.

    Random bits (a fixed noise XOR a number of this variable and step), so that a checkpoint
    library that compresses (Orbax does) gets no easier bytes than any other; the first and
    the last element are ``1000 * generation + i``, which the runs check. Every page is
    written, so the array is resident from the start (``np.zeros`` would map pages lazily
    and make a restore into it look as if it grew the heap).
    """
    mark = generation * 1000.0 + i
    array = np.empty(cfg.elements, dtype=np.float32)  # owns its memory, unlike a view
    np.bitwise_xor(
        _noise(cfg.elements), np.uint32(generation * 65_537 + i + 1), out=array.view(np.uint32)
    )
    array[0] = array[-1] = mark
    return array


@functools.lru_cache(maxsize=1)
def _noise(elements: int) -> np.ndarray:
    return np.random.default_rng(20260).integers(0, 2**32, elements, dtype=np.uint32)


# --- the engines --------------------------------------------------------------------------


class Ours:
    """dtckpt; :class:`Theirs` (TensorFlow) has the same API, the peers adapt theirs to it."""

    name = "dtckpt"

    def variables(self, cfg: Config, generation: int) -> dict[str, Any]:
        return {n: dtckpt.Variable(value(cfg, i, generation)) for i, n in enumerate(names(cfg))}

    def checkpoint(self, variables: dict[str, Any]) -> Any:
        return dtckpt.Checkpoint(**variables)

    def write(self, ckpt: Any, prefix: str) -> str:
        return str(ckpt.write(prefix))

    def read(self, ckpt: Any, path: str) -> None:
        ckpt.read(path).assert_consumed()

    def save_async(self, ckpt: Any, prefix: str) -> str:
        options = dtckpt.CheckpointOptions(experimental_enable_async_checkpoint=True)
        return str(ckpt.save(prefix, options=options))

    def sync(self, ckpt: Any) -> None:
        ckpt.sync()

    def assign(self, variables: dict[str, Any], name: str, array: np.ndarray) -> None:
        variables[name].assign(array)

    def last_elements(self, variables: dict[str, Any]) -> list[float]:
        return [float(v.numpy()[-1]) for v in variables.values()]

    def first_elements(self, path: str, cfg: Config) -> list[float]:
        reader = dtckpt.train.load_checkpoint(path)
        return [float(reader.get_tensor(f"{n}/.ATTRIBUTES/VARIABLE_VALUE")[0]) for n in names(cfg)]


class Theirs(Ours):
    name = "tensorflow"

    def __init__(self, tf: Any) -> None:
        self.tf = tf

    def variables(self, cfg: Config, generation: int) -> dict[str, Any]:
        return {n: self.tf.Variable(value(cfg, i, generation)) for i, n in enumerate(names(cfg))}

    def checkpoint(self, variables: dict[str, Any]) -> Any:
        return self.tf.train.Checkpoint(**variables)

    def save_async(self, ckpt: Any, prefix: str) -> str:
        options = self.tf.train.CheckpointOptions(experimental_enable_async_checkpoint=True)
        return str(ckpt.save(prefix, options=options))

    def first_elements(self, path: str, cfg: Config) -> list[float]:
        reader = self.tf.train.load_checkpoint(path)
        return [float(reader.get_tensor(f"{n}/.ATTRIBUTES/VARIABLE_VALUE")[0]) for n in names(cfg)]


@dataclass
class PeerState:
    """A peer's stand-in for a checkpoint object: the state, its checkpointers, its saves."""

    variables: dict[str, Any]
    saver: Any = None  # Orbax's synchronous checkpointer
    background: Any = None  # Orbax's asynchronous checkpointer
    pending: Any = None  # the future of DCP's last asynchronous save
    saves: int = 0

    def next_path(self, prefix: str) -> str:
        self.saves += 1
        os.makedirs(os.path.dirname(prefix), exist_ok=True)
        return os.path.abspath(f"{prefix}-{self.saves}")


class TorchDCP:
    """PyTorch's ``torch.distributed.checkpoint`` on a state dict of CPU tensors, one process.

    ``load`` fills the state dict's tensors in place, so a restore into existing tensors is
    what DCP does anyway; a training step writes into the tensors too (an optimizer's
    ``step``), so ``assign`` copies into them, which makes the asynchronous save's check
    meaningful: ``async_save`` must have copied the values before it returned.
    """

    name = "torch-dcp"

    def __init__(self, torch: Any, dcp: Any) -> None:
        self.torch, self.dcp = torch, dcp

    def variables(self, cfg: Config, generation: int) -> dict[str, Any]:
        return {
            n: self.torch.from_numpy(value(cfg, i, generation)) for i, n in enumerate(names(cfg))
        }

    def checkpoint(self, variables: dict[str, Any]) -> Any:
        return PeerState(variables)

    def write(self, ckpt: Any, prefix: str) -> str:
        self.dcp.save(ckpt.variables, checkpoint_id=prefix, no_dist=True)
        return prefix

    def read(self, ckpt: Any, path: str) -> None:
        self.dcp.load(ckpt.variables, checkpoint_id=path, no_dist=True)

    def save_async(self, ckpt: Any, prefix: str) -> str:
        path = ckpt.next_path(prefix)
        ckpt.pending = self.dcp.async_save(ckpt.variables, checkpoint_id=path, no_dist=True)
        return path

    def sync(self, ckpt: Any) -> None:
        if ckpt.pending is not None:
            ckpt.pending.result()
            ckpt.pending = None

    def assign(self, variables: dict[str, Any], name: str, array: np.ndarray) -> None:
        variables[name].copy_(self.torch.from_numpy(array))

    def last_elements(self, variables: dict[str, Any]) -> list[float]:
        return [float(t[-1]) for t in variables.values()]

    def first_elements(self, path: str, cfg: Config) -> list[float]:
        state = {n: self.torch.empty(cfg.elements, dtype=self.torch.float32) for n in names(cfg)}
        self.dcp.load(state, checkpoint_id=path, no_dist=True)
        return [float(t[0]) for t in state.values()]


class Orbax:
    """Orbax's ``StandardCheckpointHandler`` on a dict of JAX arrays (CPU backend).

    JAX arrays are immutable: a restore returns new arrays, and a training step replaces
    them. The restore keeps the held arrays' shapes, dtypes and shardings as its target and
    deletes the arrays before it reads (what a JAX program resuming in place does), so that
    its figure is, as for the others, the rise above the state the process holds.
    """

    name = "orbax"

    def __init__(self, jax: Any, ocp: Any) -> None:
        self.jax, self.ocp = jax, ocp

    def variables(self, cfg: Config, generation: int) -> dict[str, Any]:
        return {
            n: self.jax.numpy.asarray(value(cfg, i, generation)) for i, n in enumerate(names(cfg))
        }

    def checkpoint(self, variables: dict[str, Any]) -> Any:
        return PeerState(
            variables,
            saver=self.ocp.Checkpointer(self.ocp.StandardCheckpointHandler()),
            background=self.ocp.StandardCheckpointer(),  # saves asynchronously
        )

    def write(self, ckpt: Any, prefix: str) -> str:
        path = os.path.abspath(prefix)
        ckpt.saver.save(path, ckpt.variables)
        return path

    def read(self, ckpt: Any, path: str) -> None:
        held = ckpt.variables
        target = {
            n: self.jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding)
            for n, a in held.items()
        }
        for a in held.values():
            a.delete()
        held.update(ckpt.saver.restore(path, target))

    def save_async(self, ckpt: Any, prefix: str) -> str:
        path = ckpt.next_path(prefix)
        ckpt.background.save(path, ckpt.variables)
        return path

    def sync(self, ckpt: Any) -> None:
        ckpt.background.wait_until_finished()

    def assign(self, variables: dict[str, Any], name: str, array: np.ndarray) -> None:
        variables[name] = self.jax.numpy.asarray(array)

    def last_elements(self, variables: dict[str, Any]) -> list[float]:
        return [float(a[-1]) for a in variables.values()]

    def first_elements(self, path: str, cfg: Config) -> list[float]:
        sharding = self.jax.sharding.SingleDeviceSharding(self.jax.devices("cpu")[0])
        target = {
            n: self.jax.ShapeDtypeStruct((cfg.elements,), np.float32, sharding=sharding)
            for n in names(cfg)
        }
        restored = self.ocp.Checkpointer(self.ocp.StandardCheckpointHandler()).restore(path, target)
        return [float(restored[n][0]) for n in names(cfg)]


PEERS = {"torch-dcp": "PyTorch DCP", "orbax": "Orbax"}


def import_peer(name: str) -> tuple[Any, str]:
    """``(engine, versions)`` of a peer, or ``(None, why not)`` when it does not import."""
    try:
        if name == "torch-dcp":
            import torch
            import torch.distributed.checkpoint as dcp

            return TorchDCP(torch, dcp), f"torch {torch.__version__}"
        import jax
        import orbax.checkpoint as ocp

        jax.config.update("jax_platforms", "cpu")
        version = importlib.metadata.version("orbax-checkpoint")
        return Orbax(jax, ocp), f"orbax-checkpoint {version}, jax {jax.__version__}"
    except Exception as exc:  # a missing or broken install: the run goes on without it
        return None, f"{type(exc).__name__}: {exc}"


def engine(name: str) -> Any:
    if name == "dtckpt":
        return Ours()
    if name in PEERS:
        side, why = import_peer(name)
        if side is None:
            raise SystemExit(f"{PEERS[name]} not available: {why}")
        return side
    tf, why = import_tf()
    if tf is None:
        raise SystemExit(f"TF not available: {why}")
    return Theirs(tf)


# --- one question in a fresh process --------------------------------------------------------


def _peak_around(call: Any) -> tuple[float, float]:
    """``(seconds, peak resident growth in bytes)`` of ``call()``."""
    base = current_rss()
    if not reset_peak_rss():
        raise SystemExit("cannot reset the peak RSS mark (/proc/self/clear_refs)")
    start = time.perf_counter()
    call()
    elapsed = time.perf_counter() - start
    return elapsed, float(peak_rss() - base)


def child(kind: str, cfg: Config, work: str, source: str) -> dict[str, Any]:
    """``kind`` is ``<engine>-<question>``; prints one JSON line for the parent."""
    lib, question = kind.rsplit("-", 1)
    side = engine(lib)
    out: dict[str, Any] = {"kind": kind}
    if question == "source":  # a peer's own checkpoint of generation 0, for its restore
        out["path"] = side.write(side.checkpoint(side.variables(cfg, generation=0)), source)
        return out
    if question == "restore":
        variables = side.variables(cfg, generation=0)
        ckpt = side.checkpoint(variables)
        side.read(ckpt, source)  # warm-up: first-call costs (TF traces its restore ops)
        for n in names(cfg):
            side.assign(variables, n, np.full(cfg.elements, -1.0, dtype=np.float32))
        out["seconds"], out["peak_bytes"] = _peak_around(lambda: side.read(ckpt, source))
        out["correct"] = side.last_elements(variables) == [float(i) for i in range(cfg.count)]
    elif question == "save":
        variables = side.variables(cfg, generation=1)
        ckpt = side.checkpoint(variables)
        side.write(ckpt, os.path.join(work, f"warm-{kind}", "ckpt"))
        prefix = os.path.join(work, kind, "ckpt")
        out["seconds"], out["peak_bytes"] = _peak_around(lambda: side.write(ckpt, prefix))
    elif question == "async":
        variables = side.variables(cfg, generation=1)
        ckpt = side.checkpoint(variables)
        prefix = os.path.join(work, kind, "ckpt")
        blocked = []
        paths = []
        for step in range(2, 2 + max(cfg.repeats, 2)):
            side.sync(ckpt)  # the previous save has finished: only this call's cost is timed
            start = time.perf_counter()
            paths.append(side.save_async(ckpt, prefix))
            blocked.append(time.perf_counter() - start)
            # The next training step replaces every value while the save is under way.
            for i, n in enumerate(names(cfg)):
                side.assign(variables, n, value(cfg, i, step))
        side.sync(ckpt)
        out["blocked_first"] = blocked[0]
        out["blocked_steady"] = min(blocked[1:])
        want = [1000.0 * step + i for step in range(1, 1 + len(paths)) for i in range(cfg.count)]
        got = [x for path in paths for x in side.first_elements(path, cfg)]
        out["correct"] = got == want
    else:
        raise SystemExit(f"unknown question {question!r}")
    shutil.rmtree(os.path.join(work, kind), ignore_errors=True)
    shutil.rmtree(os.path.join(work, f"warm-{kind}"), ignore_errors=True)
    return out


def run_child(kind: str, quick: bool, work: str, source: str = "") -> dict[str, Any]:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", kind, "--dir", work]
    cmd += ["--child-source", source] + (["--quick"] if quick else [])
    # A fixed mmap threshold makes every large buffer its own mapping, returned to the
    # system when freed: glibc's adaptive threshold would otherwise recycle a freed buffer
    # inside the heap and hide a transient copy from the peak resident set.
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072", MALLOC_TRIM_THRESHOLD_="131072")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"child {kind} failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# --- the benchmark ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = base_parser(
        __doc__.split("\n\n")[0],
        "small, fast run (64 MiB in 16 variables) for smoke tests",
        FULL.repeats,
    )
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--child-source", default="", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    if args.child:
        print(json.dumps(child(args.child, cfg, args.dir, args.child_source)))
        return 0
    repeats = repeats_from(p, args.repeats, cfg.repeats)
    started = time.perf_counter()
    tf, tf_version = import_tf()
    engines = ["dtckpt"] + (["tensorflow"] if tf is not None else [])
    if tf is None:
        print(f"TF not available ({tf_version}); no tensorflow row", flush=True)
    peers: dict[str, str] = {}
    for lib, title in PEERS.items():
        side, versions = import_peer(lib)
        if side is None:
            print(f"{title} not installed ({versions}); no {lib} row", flush=True)
        else:
            engines.append(lib)
            peers[lib] = versions
    if args.dir:
        os.makedirs(args.dir, exist_ok=True)
    work = tempfile.mkdtemp(prefix="dtckpt-bench-mem-", dir=args.dir)
    results: dict[str, dict[str, Any]] = {}
    try:
        facts = machine_facts(work, REPO_ROOT, tf_version if tf is not None else None)
        facts["peers"] = peers
        ours = Ours().write(
            Ours().checkpoint(Ours().variables(cfg, generation=0)), os.path.join(work, "src")
        )
        sources = {lib: ours for lib in engines if lib not in PEERS}  # TF reads dtckpt's
        for lib in peers:  # each peer restores a checkpoint of its own format
            made = run_child(f"{lib}-source", args.quick, work, os.path.join(work, f"src-{lib}"))
            sources[lib] = made["path"]
        for _ in range(repeats):
            for lib in engines:
                for question in ("restore", "save", "async"):
                    kind = f"{lib}-{question}"
                    r = run_child(kind, args.quick, work, sources[lib])
                    best = results.setdefault(kind, r)
                    for key in ("seconds", "peak_bytes", "blocked_first", "blocked_steady"):
                        if key in r:
                            best[key] = min(best[key], r[key])
                    best["correct"] = best.get("correct", True) and r.get("correct", True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    wall = time.perf_counter() - started

    gib = cfg.total_bytes / 2**30
    print(
        header(
            "dtckpt host memory and stall benchmark",
            facts,
            cfg.label,
            repeats,
            tf_version if tf is not None else "not available",
            tf_extra="".join(f", {PEERS[lib]} ({v})" for lib, v in peers.items()),
        )
    )
    print(f"state   : {cfg.count} float32 variables, {cfg.total_bytes / MiB:.0f} MiB in all")
    print()
    rows = []
    for lib in engines:
        r, s, a = (results[f"{lib}-{q}"] for q in ("restore", "save", "async"))
        rows.append(
            [
                lib,
                f"{r['peak_bytes'] / MiB:.1f}",
                f"{r['seconds']:.3f}",
                f"{s['peak_bytes'] / MiB:.1f}",
                f"{s['seconds']:.3f}",
                f"{a['blocked_first'] * 1e3 / gib:.1f}",
                f"{a['blocked_steady'] * 1e3 / gib:.1f}",
                "yes" if r["correct"] and a["correct"] else "NO",
            ]
        )
    print(
        table(
            [
                "engine",
                "restore +MiB",
                "restore s",
                "save +MiB",
                "save s",
                "async 1st ms/GiB",
                "async ms/GiB",
                "values right",
            ],
            rows,
            right=range(1, 7),
        )
    )
    print()
    print("+MiB: peak resident memory above the state already held (best of the runs);")
    print(
        "async ms/GiB: the caller's wait in save(), first call and steady state (best of "
        "the later calls), per GiB of state;"
    )
    print(
        "save s: dtckpt fsyncs every file it commits (spec/durability.md), as DCP "
        "(sync_files) and Orbax (TensorStore) do by default; TF does not;"
    )
    if "orbax" in peers:
        print(
            "orbax restore: JAX arrays are immutable, so the held arrays are deleted (their "
            "shapes, dtypes and shardings kept as the target) before the new ones are read;"
        )
    print(
        "values right: the restored values, and each asynchronous save's values although "
        "every variable was assigned right after save() returned."
    )
    misses = []
    ours_r, ours_a = results["dtckpt-restore"], results["dtckpt-async"]
    if ours_r["peak_bytes"] / MiB > TARGET_RESTORE_PEAK_MIB:
        misses.append(
            f"restore peak {ours_r['peak_bytes'] / MiB:.1f} MiB > {TARGET_RESTORE_PEAK_MIB:.0f} MiB"
        )
    if ours_a["blocked_steady"] * 1e3 / gib > TARGET_ASYNC_MS_PER_GIB:
        misses.append(
            f"async save blocks {ours_a['blocked_steady'] * 1e3 / gib:.1f} ms/GiB > "
            f"{TARGET_ASYNC_MS_PER_GIB:.0f}"
        )
    wrong = [k for k, r in results.items() if not r.get("correct", True)]
    if wrong:
        misses.append("wrong values: " + ", ".join(wrong))
    print()
    print(
        f"{len(misses)} target(s) missed"
        + (": " + "; ".join(misses) if misses else "")
        + f" (targets: restore <= {TARGET_RESTORE_PEAK_MIB:.0f} MiB extra, async save <= "
        f"{TARGET_ASYNC_MS_PER_GIB:.0f} ms/GiB). Wall time {wall:.0f} s."
    )
    if args.json:
        write_json(
            args.json,
            facts,
            {"label": cfg.label, "count": cfg.count, "bytes": cfg.total_bytes, "repeats": repeats},
            wall,
            results=results,
            misses=misses,
        )
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())

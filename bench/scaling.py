"""How dtckpt's costs grow with the size of the structure, beside TensorFlow's.

Run from anywhere::

    python bench/scaling.py              # N = 1k, 4k, 16k, 64k (about 15 minutes with TF)
    python bench/scaling.py --quick      # small N, no TF; exits 1 on a growth exponent > 1.3
    python bench/scaling.py --only list_restore dict_restore --no-tf
    python bench/scaling.py --json bench/results/scaling.json

Each scenario is one shape real programs have (N variables in one list, one dict or one
module; a chain of N nested modules; lists and dicts nested N deep; one tensor stored as
N slices; a mesh of N devices; K saves into one directory...), timed at several sizes N,
each time the best of a few runs. The growth exponent is the slope of log(time) over
log(N), fitted over all sizes ("fit") and between the two largest ("top"): 1 is linear,
2 quadratic. An exponent above 1.15 is flagged; with ``--quick`` an exponent above 1.3
(still, after timing the scenario twice more) fails the run (exit status 1), the one
verdict a benchmark may give: on shape, not on speed. Where TensorFlow has the same
operation it runs the same scenario in the same process, and the table shows
TF time / dtckpt time (above 1: dtckpt is faster).

The last section measures memory: the peak Python allocations (tracemalloc) of restoring
N variables, against the allocations of the objects themselves.
"""

from __future__ import annotations

import contextlib
import gc
import io
import os
import shutil
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(HERE)
for _path in (HERE, REPO_ROOT):  # the checkout's dtckpt and bench/_common, however started
    if _path not in sys.path:
        sys.path.insert(0, _path)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _common import (  # noqa: E402
    base_parser,
    fmt_seconds,
    growth_exponent,
    header,
    machine_facts,
    repeats_from,
    table,
    write_json,
)
from bundle_io import import_tf, log  # noqa: E402

import dtckpt  # noqa: E402
from dtckpt import dtensor  # noqa: E402

NO_FSYNC = dtckpt.CheckpointOptions(experimental_fsync=False)
FLAG_EXPONENT = 1.15  # printed as a flag
FAIL_EXPONENT = 1.3  # --quick: the run fails
RETRIES = 2  # --quick: a scenario above FAIL_EXPONENT is timed again this many times at most
TIME_BUDGET = 20.0  # seconds of repeats per variant and size, after the first run
TF_SIZE_BUDGET = 180.0  # TF is not run at a size its earlier sizes predict to take longer

# --- scenarios --------------------------------------------------------------------------------


@dataclass
class Case:
    """One timed call; ``before`` (untimed) prepares each run."""

    run: Callable[[], Any]
    before: Callable[[], None] | None = None


Setup = Callable[[Any, int, str], Case]  # (library module, N, fresh directory) -> Case


@dataclass
class Scenario:
    name: str
    what: str
    sizes: tuple[int, ...]
    quick: tuple[int, ...]
    ours: Setup
    tf: Setup | None = None
    unit: str = "N"


class _Names:
    """Fresh prefixes under one directory, so that no write overwrites another."""

    def __init__(self, work: str) -> None:
        self.work, self.count = work, 0

    def __call__(self, stem: str = "ckpt") -> str:
        self.count += 1
        return os.path.join(self.work, f"{stem}{self.count}")


def _value(i: int) -> np.ndarray:
    return np.full((4,), i, dtype=np.float32)


def _model(lib: Any, kind: str, n: int, zero: bool = False) -> Any:
    """A module holding N small variables in the shape ``kind``; the same for dtckpt and TF."""

    def var(i: int) -> Any:
        return lib.Variable(np.zeros((4,), np.float32) if zero else _value(i))

    root = lib.Module()
    if kind == "list":
        root.items = [var(i) for i in range(n)]
    elif kind == "dict":
        root.items = {f"k{i}": var(i) for i in range(n)}
    elif kind == "attrs":
        for i in range(n):
            setattr(root, f"v{i}", var(i))
    elif kind == "shared":
        shared = var(1)
        subs = []
        for _ in range(n):
            sub = lib.Module()
            sub.v = shared
            subs.append(sub)
        root.items = subs
    elif kind == "chain":
        node = root
        for _ in range(n):
            child = lib.Module()
            node.child = child
            node = child
        node.v = var(7)
    elif kind == "nest":
        # Lists and dicts in turn, N deep, the variable at the bottom.
        top: Any = []
        inner = top
        for level in range(n):
            deeper: Any = {} if level % 2 else []
            if isinstance(inner, list):
                inner.append(deeper)
            else:
                inner["c"] = deeper
            inner = deeper
        if isinstance(inner, list):
            inner.append(var(7))
        else:
            inner["v"] = var(7)
        root.items = top
    else:
        raise ValueError(kind)
    return root


def _checkpoint(lib: Any) -> Any:
    return lib.Checkpoint if lib is dtckpt else lib.train.Checkpoint


def _write_model(lib: Any, model: Any, prefix: str) -> str:
    if lib is dtckpt:
        return str(dtckpt.Checkpoint(m=model).write(prefix, options=NO_FSYNC))
    return str(lib.train.Checkpoint(m=model).write(prefix))


def restore_setup(kind: str) -> Setup:
    """``Checkpoint(m=target).read(path).assert_consumed()`` into an existing structure."""

    def setup(lib: Any, n: int, work: str) -> Case:
        path = _write_model(lib, _model(lib, kind, n), os.path.join(work, "ckpt"))
        target = _model(lib, kind, n, zero=True)
        return Case(lambda: _checkpoint(lib)(m=target).read(path).assert_consumed())

    return setup


def write_setup(kind: str) -> Setup:
    """``Checkpoint(m=model).write(prefix)``, each run to a fresh prefix."""

    def setup(lib: Any, n: int, work: str) -> Case:
        model, names = _model(lib, kind, n), _Names(work)
        return Case(lambda: _write_model(lib, model, names()))

    return setup


def deferred_setup(kind: str) -> Setup:
    """Restore into an empty module, then attach the structure (restore on create)."""

    def setup(lib: Any, n: int, work: str) -> Case:
        path = _write_model(lib, _model(lib, kind, n), os.path.join(work, "ckpt"))
        fresh: list[Any] = []

        def before() -> None:
            fresh[:] = [lib.Module(), _model(lib, kind, n, zero=True).items]

        def run() -> None:
            root, items = fresh
            status = _checkpoint(lib)(m=root).read(path)
            root.items = items
            status.assert_consumed()

        return Case(run, before)

    return setup


def appended_setup(lib: Any, n: int, work: str) -> Case:
    """Restore into an empty list, then append N variables one by one."""
    path = _write_model(lib, _model(lib, "list", n), os.path.join(work, "ckpt"))
    fresh: list[Any] = []

    def before() -> None:
        fresh[:] = [lib.Module(), [lib.Variable(np.zeros((4,), np.float32)) for _ in range(n)]]

    def run() -> None:
        root, variables = fresh
        root.items = []
        status = _checkpoint(lib)(m=root).read(path)
        for variable in variables:
            root.items.append(variable)
        status.assert_consumed()

    return Case(run, before)


def saves_setup(lib: Any, n: int, work: str) -> Case:
    """N ``Checkpoint.save`` calls of one small variable into one directory."""
    names = _Names(work)

    def run() -> None:
        directory = names("dir")
        if lib is dtckpt:
            ckpt = dtckpt.Checkpoint(v=dtckpt.Variable(1.0))
            for _ in range(n):
                ckpt.save(os.path.join(directory, "ckpt"), options=NO_FSYNC)
        else:
            ckpt = lib.train.Checkpoint(v=lib.Variable(1.0))
            for _ in range(n):
                ckpt.save(os.path.join(directory, "ckpt"))

    return Case(run)


def manager_setup(lib: Any, n: int, work: str) -> Case:
    """N ``CheckpointManager.save`` calls (max_to_keep=5) into one directory."""
    names = _Names(work)

    def run() -> None:
        directory = names("dir")
        if lib is dtckpt:
            ckpt = dtckpt.Checkpoint(v=dtckpt.Variable(1.0))
            manager = dtckpt.CheckpointManager(ckpt, directory, max_to_keep=5)
            for _ in range(n):
                manager.save(options=NO_FSYNC)
        else:
            ckpt = lib.train.Checkpoint(v=lib.Variable(1.0))
            manager = lib.train.CheckpointManager(ckpt, directory, max_to_keep=5)
            for _ in range(n):
                manager.save()

    return Case(run)


def latest_setup(lib: Any, n: int, work: str) -> Case:
    """``latest_checkpoint`` of a directory whose state file lists N checkpoints."""
    names = [f"ckpt-{i}" for i in range(1, n + 1)]
    lines = [f'model_checkpoint_path: "{names[-1]}"']
    lines += [f'all_model_checkpoint_paths: "{name}"' for name in names]
    with open(os.path.join(work, "checkpoint"), "w") as f:
        f.write("\n".join(lines) + "\n")
    for suffix in (".index", ".data-00000-of-00001"):
        open(os.path.join(work, names[-1] + suffix), "wb").close()
    latest = dtckpt.latest_checkpoint if lib is dtckpt else lib.train.latest_checkpoint
    return Case(lambda: latest(work))


def _slices(n: int) -> tuple[list[str], list[np.ndarray]]:
    """One [N, 8] float32 tensor as N one-row slices."""
    specs = [f"{n} 8 {i},1:-" for i in range(n)]
    return specs, [np.full((1, 8), i, np.float32) for i in range(n)]


def _save_v2(lib: Any, prefix: str, names: list[str], specs: list[str], values: list[Any]) -> None:
    if lib is dtckpt:
        dtckpt.save_v2(prefix, names, specs, values)
    else:
        lib.raw_ops.SaveV2(
            prefix=prefix, tensor_names=names, shape_and_slices=specs, tensors=values
        )


def slices_save_setup(lib: Any, n: int, work: str) -> Case:
    specs, values = _slices(n)
    names = _Names(work)
    return Case(lambda: _save_v2(lib, names(), ["w"] * n, specs, values))


def slices_read_setup(lib: Any, n: int, work: str) -> Case:
    specs, values = _slices(n)
    prefix = os.path.join(work, "ckpt")
    _save_v2(lib, prefix, ["w"] * n, specs, values)
    load = dtckpt.load_checkpoint if lib is dtckpt else lib.train.load_checkpoint
    return Case(lambda: load(prefix).get_tensor("w"))


def slices_merge_setup(lib: Any, n: int, work: str) -> Case:
    """Merge N one-slice bundles of one tensor into one checkpoint (the merge consumes them)."""
    specs, values = _slices(n)
    names = _Names(work)
    parts: list[str] = []

    def before() -> None:
        directory = names("parts")
        parts[:] = [os.path.join(directory, f"part{i}") for i in range(n)]
        for i, part in enumerate(parts):
            _save_v2(lib, part, ["w"], [specs[i]], [values[i]])

    def run() -> None:
        if lib is dtckpt:
            dtckpt.merge_v2_checkpoints(parts, names(), delete_old_dirs=False)
        else:
            lib.raw_ops.MergeV2Checkpoints(
                checkpoint_prefixes=parts, destination_prefix=names(), delete_old_dirs=False
            )

    return Case(run, before)


def slices_verify_setup(lib: Any, n: int, work: str) -> Case:
    specs, values = _slices(n)
    prefix = os.path.join(work, "ckpt")
    _save_v2(lib, prefix, ["w"] * n, specs, values)
    return Case(lambda: _cli("verify", "--quiet", prefix, expect=0))


def _many(n: int) -> tuple[list[str], list[str], list[np.ndarray]]:
    names = [f"t{i:06d}" for i in range(n)]
    return names, [""] * n, [_value(i) for i in range(n)]


def tensors_checkpoint(lib: Any, n: int, work: str, stem: str = "ckpt") -> str:
    prefix = os.path.join(work, stem)
    _save_v2(lib, prefix, *_many(n))
    return prefix


def list_variables_setup(lib: Any, n: int, work: str) -> Case:
    prefix = tensors_checkpoint(lib, n, work)
    listing = dtckpt.list_variables if lib is dtckpt else lib.train.list_variables
    return Case(lambda: listing(prefix))


def save_many_setup(lib: Any, n: int, work: str) -> Case:
    names = _Names(work)
    many = _many(n)
    return Case(lambda: _save_v2(lib, names(), *many))


def _cli(*argv: str, expect: int) -> None:
    from dtckpt.cli import main

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = main(list(argv))
    if code != expect:
        raise RuntimeError(f"dtckpt {' '.join(argv)} exited {code}, expected {expect}")


def cli_setup(command: str) -> Setup:
    def setup(lib: Any, n: int, work: str) -> Case:
        prefix = tensors_checkpoint(lib, n, work)
        if command == "diff":
            other = tensors_checkpoint(lib, n, work, "other")
            return Case(lambda: _cli("diff", "--quiet", prefix, other, expect=0))
        if command == "inspect":
            return Case(lambda: _cli("inspect", prefix, expect=0))
        return Case(lambda: _cli("verify", "--quiet", prefix, expect=0))

    return setup


def convert_setup(extension: str) -> Setup:
    def setup(lib: Any, n: int, work: str) -> Case:
        prefix = tensors_checkpoint(lib, n, work)
        names = _Names(work)
        return Case(lambda: dtckpt.interop.convert(prefix, names("out") + extension))

    return setup


def _dtensor_model(devices: int, zero: bool = False, swap: bool = False) -> tuple[Any, Any]:
    """Eight variables on a (devices/2 x 2) mesh, each [devices*4, 64] float32 sharded on both
    dimensions (``swap`` puts the mesh's dimensions the other way round)."""
    rows = devices // 2
    dims = [("x", rows), ("y", 2)] if not swap else [("x", 2), ("y", rows)]
    mesh = dtensor.create_mesh(dims, device_type="CPU")
    layout = dtensor.Layout(["y", "x"] if swap else ["x", "y"], mesh)
    model = dtckpt.Module()
    for i in range(8):
        value = np.zeros((devices * 4, 64), np.float32) if zero else np.full(
            (devices * 4, 64), i, np.float32
        )
        setattr(model, f"w{i}", dtensor.DVariable(dtensor.copy_to_mesh(value, layout)))
    return mesh, model


def dtensor_save_setup(lib: Any, n: int, work: str) -> Case:
    mesh, model = _dtensor_model(n)
    names = _Names(work)
    return Case(
        lambda: dtensor.DTensorCheckpoint(mesh, model=model).save(names(), options=NO_FSYNC)
    )


def dtensor_restore_setup(lib: Any, n: int, work: str) -> Case:
    """Resharding restore: saved on (N/2 x 2) sharded [x, y], read on (2 x N/2) as [y, x]."""
    mesh, model = _dtensor_model(n)
    path = dtensor.DTensorCheckpoint(mesh, model=model).write(
        os.path.join(work, "ckpt"), options=NO_FSYNC
    )
    other, target = _dtensor_model(n, zero=True, swap=True)
    return Case(
        lambda: dtensor.DTensorCheckpoint(other, model=target).read(path).assert_consumed()
    )


def relayout_setup(lib: Any, n: int, work: str) -> Case:
    """[x, y] -> [x, unsharded] on a (N/2 x 2) mesh: each new block gathers two old ones.

    (A transposing relayout, [x, y] -> [y, x], makes every new block overlap N/4 old
    ones: its pieces grow as N^2 whatever the implementation, so it does not measure
    how the implementation scales.)"""
    mesh = dtensor.create_mesh([("x", n // 2), ("y", 2)], device_type="CPU")
    value = dtensor.copy_to_mesh(
        np.ones((n * 4, 64), np.float32), dtensor.Layout(["x", "y"], mesh)
    )
    target = dtensor.Layout(["x", dtensor.UNSHARDED], mesh)
    return Case(lambda: dtensor.relayout(value, target))


OBJECT_SIZES = (1_000, 4_000, 16_000, 64_000)
OBJECT_QUICK = (500, 2_000, 8_000)
SCENARIOS = [
    Scenario("list_restore", "restore N variables in one list", OBJECT_SIZES, OBJECT_QUICK,
             restore_setup("list"), restore_setup("list")),
    Scenario("dict_restore", "restore N variables in one dict", OBJECT_SIZES, OBJECT_QUICK,
             restore_setup("dict"), restore_setup("dict")),
    Scenario("attrs_restore", "restore N variable attributes of one module", OBJECT_SIZES,
             OBJECT_QUICK, restore_setup("attrs"), restore_setup("attrs")),
    Scenario("shared_restore", "restore one variable shared by N modules in a list",
             OBJECT_SIZES, OBJECT_QUICK, restore_setup("shared"), restore_setup("shared")),
    Scenario("chain_restore", "restore a chain of N nested modules", OBJECT_SIZES,
             OBJECT_QUICK, restore_setup("chain"), restore_setup("chain")),
    Scenario("nest_restore", "restore through lists and dicts nested N deep", OBJECT_SIZES,
             OBJECT_QUICK, restore_setup("nest"), restore_setup("nest")),
    Scenario("list_deferred", "restore, then assign a list of N variables", OBJECT_SIZES,
             OBJECT_QUICK, deferred_setup("list"), deferred_setup("list")),
    Scenario("dict_deferred", "restore, then assign a dict of N variables", OBJECT_SIZES,
             OBJECT_QUICK, deferred_setup("dict"), deferred_setup("dict")),
    Scenario("list_appended", "restore, then append N variables one by one", OBJECT_SIZES,
             OBJECT_QUICK, appended_setup, appended_setup),
    Scenario("list_write", "write N variables in one list", OBJECT_SIZES, OBJECT_QUICK,
             write_setup("list"), write_setup("list")),
    Scenario("dict_write", "write N variables in one dict", OBJECT_SIZES, OBJECT_QUICK,
             write_setup("dict"), write_setup("dict")),
    Scenario("attrs_write", "write N variable attributes of one module", OBJECT_SIZES,
             OBJECT_QUICK, write_setup("attrs"), write_setup("attrs")),
    Scenario("chain_write", "write a chain of N nested modules", OBJECT_SIZES, OBJECT_QUICK,
             write_setup("chain"), write_setup("chain")),
    Scenario("nest_write", "write lists and dicts nested N deep", OBJECT_SIZES, OBJECT_QUICK,
             write_setup("nest"), write_setup("nest")),
    Scenario("saves", "N Checkpoint.save calls into one directory", (250, 1_000, 4_000),
             (100, 400, 1_600), saves_setup, saves_setup),
    Scenario("manager", "N CheckpointManager.save calls (max_to_keep=5)", (250, 1_000, 4_000),
             (100, 400, 1_600), manager_setup, manager_setup),
    Scenario("latest", "latest_checkpoint of a state file listing N checkpoints",
             (4_000, 16_000, 64_000, 256_000), (2_000, 8_000, 32_000), latest_setup,
             latest_setup),
    Scenario("slices_save", "save_v2 of one tensor as N slices", OBJECT_SIZES, OBJECT_QUICK,
             slices_save_setup, slices_save_setup),
    Scenario("slices_read", "get_tensor of one tensor stored as N slices", OBJECT_SIZES,
             OBJECT_QUICK, slices_read_setup, slices_read_setup),
    Scenario("slices_merge", "merge N bundles holding slices of one tensor",
             (250, 1_000, 4_000), (100, 400, 1_600), slices_merge_setup, slices_merge_setup),
    Scenario("slices_verify", "verify one tensor stored as N slices", OBJECT_SIZES,
             OBJECT_QUICK, slices_verify_setup),
    Scenario("tensors_save", "save_v2 of N tensors", OBJECT_SIZES, OBJECT_QUICK,
             save_many_setup, save_many_setup),
    Scenario("list_variables", "list_variables of N tensors", OBJECT_SIZES, OBJECT_QUICK,
             list_variables_setup, list_variables_setup),
    Scenario("cli_inspect", "dtckpt inspect of N tensors", OBJECT_SIZES, OBJECT_QUICK,
             cli_setup("inspect")),
    Scenario("cli_verify", "dtckpt verify of N tensors", OBJECT_SIZES, OBJECT_QUICK,
             cli_setup("verify")),
    Scenario("cli_diff", "dtckpt diff of two checkpoints of N tensors", OBJECT_SIZES,
             OBJECT_QUICK, cli_setup("diff")),
    Scenario("convert_npz", "convert N tensors to .npz", OBJECT_SIZES, OBJECT_QUICK,
             convert_setup(".npz")),
    Scenario("convert_safetensors", "convert N tensors to .safetensors", OBJECT_SIZES,
             OBJECT_QUICK, convert_setup(".safetensors")),
    Scenario("dtensor_save", "DTensorCheckpoint.save on a mesh of N devices", (16, 64, 256),
             (8, 32, 128), dtensor_save_setup, unit="devices"),
    Scenario("dtensor_restore", "resharding restore on a mesh of N devices", (16, 64, 256),
             (8, 32, 128), dtensor_restore_setup, unit="devices"),
    Scenario("relayout", "relayout of one tensor on a mesh of N devices", (16, 64, 256),
             (8, 32, 128), relayout_setup, unit="devices"),
]  # fmt: skip

# --- timing -----------------------------------------------------------------------------------


@dataclass
class Row:
    scenario: str
    n: int
    ours: list[float] = field(default_factory=list)  # wall-clock seconds per run
    ours_cpu: list[float] = field(default_factory=list)  # this process's CPU seconds per run
    tf: list[float] = field(default_factory=list)


def time_case(case: Case, repeats: int) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU seconds of at least one run, then more until ``repeats`` runs or
    TIME_BUDGET seconds."""
    times: list[float] = []
    cpu: list[float] = []
    while len(times) < repeats and (not times or sum(times) < TIME_BUDGET):
        if case.before is not None:
            case.before()
        gc.collect()
        start, start_cpu = time.perf_counter(), time.process_time()
        case.run()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return times, cpu


def run_setup(
    setup: Setup, lib: Any, n: int, work: str, repeats: int
) -> tuple[list[float], list[float]]:
    directory = tempfile.mkdtemp(dir=work)
    try:
        case = setup(lib, n, directory)
        return time_case(case, repeats)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
        gc.collect()


def predict(rows: list[Row], n: int) -> float:
    """TF's time at size ``n``, extrapolated from its two largest earlier sizes (at least
    linearly); 0 without two earlier sizes."""
    timed = [(r.n, min(r.tf)) for r in rows if r.tf]
    if len(timed) < 2:
        return 0.0
    (n0, t0), (n1, t1) = timed[-2:]
    slope = max(1.0, growth_exponent([n0, n1], [t0, t1]) or 1.0)
    return t1 * (n / n1) ** slope


def too_fast(fit: float | None, sizes: list[int], rows: list[Row]) -> bool:
    """Whether a quick run's growth fails: both the CPU-time and the wall-clock fit above
    FAIL_EXPONENT. A cost that really grows too fast shows in both; a slow spell of the
    machine tilts only the wall clock, and threads passing the GIL back and forth inflate
    only the CPU time (each thread's waits count as the process's CPU)."""
    if fit is None or fit <= FAIL_EXPONENT:
        return False
    wall = growth_exponent(sizes, [min(r.ours) for r in rows])
    return wall is None or wall > FAIL_EXPONENT


def _fmt_exp(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


# --- memory -----------------------------------------------------------------------------------


def memory_check(n: int, work: str) -> dict[str, Any]:
    """Peak Python allocations of restoring N variables in a list, against the objects'."""
    path = _write_model(dtckpt, _model(dtckpt, "list", n), os.path.join(work, "memory"))
    # A first restore, untraced, so that kernels compiled on first use are not counted.
    dtckpt.Checkpoint(m=_model(dtckpt, "list", n, zero=True)).read(path).assert_consumed()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    target = _model(dtckpt, "list", n, zero=True)
    objects = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    status = dtckpt.Checkpoint(m=target).read(path)
    status.assert_consumed()
    peak = tracemalloc.get_traced_memory()[1] - base
    del status
    gc.collect()
    retained = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    return {"n": n, "objects_bytes": objects, "peak_extra_bytes": peak,
            "retained_bytes": retained, "ratio": peak / objects}  # fmt: skip


# --- main -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(
        __doc__.splitlines()[0],
        "small N, no TensorFlow; fail on a growth exponent above 1.3",
        3,
    )
    parser.add_argument("--only", nargs="+", metavar="SCENARIO", help="run only these")
    parser.add_argument("--no-tf", action="store_true", help="do not run TensorFlow")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    args = parser.parse_args(argv)
    if args.list:
        for s in SCENARIOS:
            print(f"{s.name:22} {s.what}")
        return 0
    # The exponent check needs the best of several runs, whatever --repeats says.
    repeats = max(repeats_from(parser, args.repeats, 3), 3 if args.quick else 1)
    chosen = [s for s in SCENARIOS if not args.only or s.name in args.only]
    unknown = set(args.only or ()) - {s.name for s in SCENARIOS}
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    tf, tf_version = (None, "not run") if (args.quick or args.no_tf) else import_tf()
    work = tempfile.mkdtemp(prefix="dtckpt-scaling-", dir=args.dir)
    facts = machine_facts(work, REPO_ROOT, tf_version if tf is not None else None)
    started = time.perf_counter()
    rows: list[Row] = []
    summary: list[dict[str, Any]] = []
    failures: list[str] = []
    try:
        for s in chosen:
            sizes = list(s.quick if args.quick else s.sizes)
            tf_skipped = None
            for n in sizes:
                row = Row(s.name, n)
                row.ours, row.ours_cpu = run_setup(s.ours, dtckpt, n, work, repeats)
                log(f"{s.name} N={n}: dtckpt {fmt_seconds(min(row.ours))}")
                if tf is not None and s.tf is not None and tf_skipped is None:
                    predicted = predict([r for r in rows if r.scenario == s.name], n)
                    if predicted > TF_SIZE_BUDGET:
                        tf_skipped = f"TF not run from N={n:,} on: about {predicted:,.0f} s each"
                        log(f"{s.name}: {tf_skipped}")
                    else:
                        try:
                            row.tf = run_setup(s.tf, tf, n, work, repeats)[0]
                        except Exception as exc:  # noqa: BLE001 - TF's failure is a result
                            # (a nest of 1,000 lists exceeds TF's recursion limit)
                            tf_skipped = f"TF fails from N={n:,} on: {type(exc).__name__}"
                            log(f"{s.name}: {tf_skipped}")
                        else:
                            log(f"{s.name} N={n}: TF {fmt_seconds(min(row.tf))}")
                rows.append(row)
            mine = [r for r in rows if r.scenario == s.name]
            # Growth is judged on CPU time: other programs on the machine slow the wall clock
            # of one size and not another, but not the work this process does.
            cpu = [min(r.ours_cpu) for r in mine]
            fit, top = growth_exponent(sizes, cpu), growth_exponent(sizes[-2:], cpu[-2:])
            again = 0
            while args.quick and too_fast(fit, sizes, mine) and again < RETRIES:
                # A quick run times small N a few times: one slow spell can tilt its fit. A
                # cost that really grows too fast stays above the limit when timed again;
                # the best of all runs of each size is kept.
                again += 1
                log(f"{s.name}: exponent {fit:.2f} > {FAIL_EXPONENT}, timed again ({again})")
                for row in mine:
                    wall, spent = run_setup(s.ours, dtckpt, row.n, work, repeats)
                    row.ours += wall
                    row.ours_cpu += spent
                cpu = [min(r.ours_cpu) for r in mine]
                fit, top = growth_exponent(sizes, cpu), growth_exponent(sizes[-2:], cpu[-2:])
            best = [min(r.ours) for r in mine]
            wall_fit = growth_exponent(sizes, best)
            tf_best = [min(r.tf) for r in mine if r.tf]
            tf_fit = growth_exponent(sizes[: len(tf_best)], tf_best) if len(tf_best) >= 2 else None
            flag = fit is not None and max(fit, top or 0) > FLAG_EXPONENT
            if args.quick and too_fast(fit, sizes, mine):
                failures.append(
                    f"{s.name}: growth exponent {fit:.2f} (CPU), {_fmt_exp(wall_fit)} (wall)"
                    f" > {FAIL_EXPONENT}"
                )
            summary.append({"scenario": s.name, "what": s.what, "unit": s.unit,
                            "tf_skipped": tf_skipped,
                            "sizes": sizes, "dtckpt_best_s": best, "tf_best_s": tf_best,
                            "exponent_fit": fit, "exponent_top": top, "tf_exponent_fit": tf_fit,
                            "exponent_fit_wall": wall_fit, "dtckpt_best_cpu_s": cpu,
                            "flagged": flag})  # fmt: skip
        memory = memory_check(20_000 if args.quick else 100_000, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    wall = time.perf_counter() - started

    label = "quick" if args.quick else "full"
    print(header("dtckpt scaling", facts, label, repeats, tf_version))
    print()
    body = []
    for r in rows:
        ours = min(r.ours)
        theirs = min(r.tf) if r.tf else None
        body.append([r.scenario, f"{r.n:,}", fmt_seconds(ours),
                     fmt_seconds(theirs) if theirs else "n/a",
                     f"{theirs / ours:.1f}x" if theirs else "n/a"])  # fmt: skip
    print(table(["scenario", "N", "dtckpt", "TF", "TF/dtckpt"], body, right=(1, 2, 3, 4)))
    print()
    print(
        f"Growth exponents (slope of log t over log N; flagged above {FLAG_EXPONENT}): fit and "
        "top on dtckpt's CPU time, wall on its wall-clock time, TF on TF's wall-clock time"
    )
    exps = [[x["scenario"], x["what"], _fmt_exp(x["exponent_fit"]), _fmt_exp(x["exponent_top"]),
             _fmt_exp(x["exponent_fit_wall"]), _fmt_exp(x["tf_exponent_fit"]),
             "FLAG" if x["flagged"] else ""]
            for x in summary]  # fmt: skip
    print(table(["scenario", "what", "fit", "top", "wall", "TF", ""], exps, right=(2, 3, 4, 5)))
    print()
    print(
        f"Memory: restoring {memory['n']:,} variables in a list: peak extra Python allocations "
        f"{memory['peak_extra_bytes'] / 2**20:.1f} MiB = {memory['ratio']:.2f}x the objects' "
        f"{memory['objects_bytes'] / 2**20:.1f} MiB (retained after the status is dropped: "
        f"{memory['retained_bytes'] / 2**20:.1f} MiB)"
    )
    comparisons = [x for x in summary if x["tf_best_s"]]
    print()
    print("Ratios: TF time / dtckpt time at the largest N TF ran" if comparisons else "Ratios: n/a")
    for x in comparisons:
        last = len(x["tf_best_s"]) - 1
        ratio = x["tf_best_s"][last] / x["dtckpt_best_s"][last]
        note = f" ({x['tf_skipped']})" if x["tf_skipped"] else ""
        print(f"  {x['scenario']:22} N={x['sizes'][last]:,}: {ratio:.1f}x{note}")
    if args.json:
        write_json(args.json, facts, {"label": label, "repeats": repeats}, wall,
                   comparisons=summary, rows=[r.__dict__ for r in rows],
                   memory=memory)  # fmt: skip
    for failure in failures:
        print(f"FAIL {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

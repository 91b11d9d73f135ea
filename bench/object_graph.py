"""Speed of ``dtckpt.Checkpoint`` (object-graph checkpoints) beside TensorFlow and raw ops.

Run from anywhere::

    python bench/object_graph.py             # full run, about two minutes
    python bench/object_graph.py --quick     # small and fast (CI smoke test)
    python bench/object_graph.py --repeats 5 --json bench/results/object_graph.json
    python bench/object_graph.py --profile   # also cProfile dtckpt wherever a target is missed

Two workloads: a module tree of many small variables, where the cost is the object graph
(building, encoding, decoding and matching it) and the per-tensor overhead; and a module of a
few large variables, where ``Checkpoint`` should cost no more than the raw ops underneath
(``save_v2``, ``restore_v2``). Every figure is the best of several interleaved runs, and
every comparison is a ratio of throughputs, ours / theirs (> 1 means dtckpt is faster). See
bench/README.md for what each row measures and the targets.
"""

from __future__ import annotations

import cProfile
import glob
import io
import os
import pstats
import shutil
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
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _common import (  # noqa: E402
    Variant,
    base_parser,
    fmt_size,
    header,
    interleaved,
    machine_facts,
    repeats_from,
    write_json,
)
from bundle_io import Report, import_tf, log, remove_prefix  # noqa: E402

import dtckpt  # noqa: E402

# TensorFlow's writers and the raw writes do not fsync; dtckpt's Checkpoint does by default
# (spec/durability.md). The timed writes compare the same work.
NO_FSYNC = dtckpt.CheckpointOptions(experimental_fsync=False)


@dataclass(frozen=True)
class Config:
    label: str
    submodules: int  # small workload: submodules in the root module's list ...
    vars_per_submodule: int  # ... each holding this many small float32 variables
    big_bytes: int  # large workload: total bytes ...
    big_count: int  # ... in this many float32 variables
    repeats: int


FULL = Config("full", 100, 100, 512 * 1024 * 1024, 32, 9)
QUICK = Config("quick", 10, 100, 64 * 1024 * 1024, 32, 3)

# Targets: ratio = throughput ours / theirs (>= target passes).
TARGET_SMALL_VS_TF = 5.0  # many small variables: Checkpoint write/read/restore vs TF's
TARGET_BIG_VS_RAW_OPS = 0.9  # large variables: Checkpoint vs save_v2 / restore_v2 / get_tensor

SMALL_MIN, SMALL_MAX = 4, 16  # small variables are float32 vectors of 4 to 16 elements


class ProfilingReport(Report):
    """``Report`` plus the cProfile texts of the variants that missed a target."""

    def __init__(self) -> None:
        super().__init__()
        self.profiles: dict[str, str] = {}


def small_values(cfg: Config) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(3)
    return [
        [
            rng.random(int(rng.integers(SMALL_MIN, SMALL_MAX + 1)), dtype=np.float32)
            for _ in range(cfg.vars_per_submodule)
        ]
        for _ in range(cfg.submodules)
    ]


def build_small(lib: Any, values: list[list[np.ndarray]], zero: bool = False) -> Any:
    """``root.layers = [sub_0, ...]``, ``sub_i.v000 ... v099`` variables; the same tree for
    ``lib`` = ``dtckpt`` or ``tf`` (``zero`` makes every variable zeros, to restore into)."""
    root = lib.Module()
    layers = []
    for row in values:
        sub = lib.Module()
        for j, value in enumerate(row):
            setattr(sub, f"v{j:03d}", lib.Variable(np.zeros_like(value) if zero else value))
        layers.append(sub)
    root.layers = layers
    return root


def small_variables(root: Any, per_submodule: int) -> list[Any]:
    return [getattr(sub, f"v{j:03d}") for sub in root.layers for j in range(per_submodule)]


def big_values(cfg: Config) -> list[np.ndarray]:
    rng = np.random.default_rng(4)
    elems = cfg.big_bytes // cfg.big_count // 4
    cols = 1024 if elems % 1024 == 0 else 1
    out = []
    for _ in range(cfg.big_count):
        a = np.empty((elems // cols, cols), dtype=np.float32)
        rng.random(out=a, dtype=np.float32)
        out.append(a)
    return out


def build_big(lib: Any, values: list[np.ndarray], zero: bool = False) -> Any:
    """A module with attributes ``v00`` ... ``v31``, one large variable each."""
    root = lib.Module()
    for i, value in enumerate(values):
        setattr(root, f"v{i:02d}", lib.Variable(np.zeros_like(value) if zero else value))
    return root


def big_variables(root: Any, count: int) -> list[Any]:
    return [getattr(root, f"v{i:02d}") for i in range(count)]


def values_of(variables: list[Any]) -> list[np.ndarray]:
    return [np.asarray(v.numpy()) for v in variables]


def same_values(variables: list[Any], expected: list[np.ndarray]) -> bool:
    got = values_of(variables)
    return len(got) == len(expected) and all(np.array_equal(g, e) for g, e in zip(got, expected))


def files_of(prefix: str) -> dict[str, bytes]:
    """The checkpoint's files by suffix (``.index``, ``.data-00000-of-00001``) and content."""
    out = {}
    for path in sorted(glob.glob(glob.escape(prefix) + ".*")):
        with open(path, "rb") as f:
            out[path[len(prefix) :]] = f.read()
    return out


def check_interop(
    what: str,
    ours_prefix: str,
    tf_prefix: str,
    tf: Any,
    build: Any,
    variables: Any,
    expected: list[np.ndarray],
) -> list[str]:
    """Untimed: the two libraries' files are byte-identical, and each library restores the
    other's file with ``assert_consumed`` and gets the written values. Returns notes."""
    notes = []
    ours, theirs = files_of(ours_prefix), files_of(tf_prefix)
    if sorted(ours) != sorted(theirs):
        raise RuntimeError(f"{what}: dtckpt wrote files {sorted(ours)}, TF {sorted(theirs)}")
    differ = [suffix for suffix in ours if ours[suffix] != theirs[suffix]]
    if differ:
        raise RuntimeError(f"{what}: dtckpt's and TF's files differ: {', '.join(differ)}")
    notes.append(
        f"{what}: dtckpt's and TF's files are byte-identical ("
        + ", ".join(f"{s} {len(b):,} bytes" for s, b in ours.items())
        + ")"
    )
    target = build(dtckpt, zero=True)
    dtckpt.Checkpoint(model=target).read(tf_prefix).assert_consumed()
    if not same_values(variables(target), expected):
        raise RuntimeError(f"{what}: dtckpt restored other values from TF's checkpoint")
    del target
    target = build(tf, zero=True)
    tf.train.Checkpoint(model=target).read(ours_prefix).assert_consumed()
    if not same_values(variables(target), expected):
        raise RuntimeError(f"{what}: TF restored other values from dtckpt's checkpoint")
    notes.append(f"{what}: each library restores the other's file (assert_consumed passes)")
    return notes


def dtckpt_restore_variants(
    prefix: str, read_into: Any, restore_into: Any, variables: Any, expected: Any
) -> list[Variant]:
    """``Checkpoint.read`` and ``Checkpoint.restore`` of ``prefix``, each into its own tree."""
    return [
        restore_variant(
            "dtckpt Checkpoint.read",
            lambda: dtckpt.Checkpoint(model=read_into).read(prefix),
            read_into,
            variables,
            expected,
        ),
        restore_variant(
            "dtckpt Checkpoint.restore",
            lambda: dtckpt.Checkpoint(model=restore_into).restore(prefix),
            restore_into,
            variables,
            expected,
        ),
    ]


def restore_variant(
    name: str, call: Any, target: Any, variables: Any, expected: list[np.ndarray]
) -> Variant:
    """A timed ``Checkpoint(model=target).read/restore``; the first result is checked (untimed):
    every value arrives, and ``read``'s status passes ``assert_consumed``."""
    checked: list[bool] = []

    def after(status: Any) -> None:
        if checked:
            return
        if name.endswith(".read"):
            status.assert_consumed()
        else:
            # restore() creates save_counter, which a write()-made file does not hold
            # (in TF as in dtckpt), so only the weaker match can be asserted.
            status.assert_nontrivial_match()
        if not same_values(variables(target), expected):
            raise RuntimeError(f"{name} restored other values than were written")
        checked.append(True)

    return Variant(name, call, after=after)


# --- 1. many small variables ----------------------------------------------------------------


def bench_small(
    cfg: Config, work: str, tf: Any, rep: ProfilingReport, repeats: int, profile: bool
) -> None:
    n = cfg.submodules * cfg.vars_per_submodule
    shape = f"{cfg.submodules} submodules x {cfg.vars_per_submodule} variables"
    log(f"[1] {n} small variables ({shape}): building the modules")
    values = small_values(cfg)
    expected = [v for row in values for v in row]
    total = sum(v.nbytes for v in expected)

    def build(lib: Any, zero: bool = False) -> Any:
        return build_small(lib, values, zero)

    def variables(root: Any) -> list[Any]:
        return small_variables(root, cfg.vars_per_submodule)

    t0 = time.perf_counter()
    source = build(dtckpt)
    read_into, restore_into = build(dtckpt, zero=True), build(dtckpt, zero=True)
    built_ours = (time.perf_counter() - t0) / 3
    ours_prefix = os.path.join(work, "small_dtckpt", "ckpt")
    tf_prefix = os.path.join(work, "small_tf", "ckpt")
    os.makedirs(os.path.dirname(ours_prefix), exist_ok=True)
    os.makedirs(os.path.dirname(tf_prefix), exist_ok=True)
    rep.notes.append(
        f"small: {n} variables, {total:,} bytes of values; dtckpt builds one module tree "
        f"in {built_ours * 1e3:.0f} ms"
    )

    if tf is not None:
        t0 = time.perf_counter()
        tf_source = build(tf)
        tf_read_into, tf_restore_into = build(tf, zero=True), build(tf, zero=True)
        built_tf = (time.perf_counter() - t0) / 3
        rep.notes.append(f"small: TF builds one module tree in {built_tf * 1e3:.0f} ms")
        log("[1] checking the files are byte-identical and each library reads the other's")
        dtckpt.Checkpoint(model=source).write(ours_prefix)
        tf.train.Checkpoint(model=tf_source).write(tf_prefix)
        rep.notes.extend(
            check_interop("small", ours_prefix, tf_prefix, tf, build, variables, expected)
        )

    w_ours = Variant(
        "dtckpt Checkpoint.write",
        lambda: dtckpt.Checkpoint(model=source).write(ours_prefix, options=NO_FSYNC),
        before=lambda: remove_prefix(ours_prefix),
    )
    writes = [w_ours]
    if tf is not None:
        w_tf = Variant(
            "TF Checkpoint.write",
            lambda: tf.train.Checkpoint(model=tf_source).write(tf_prefix),
            before=lambda: remove_prefix(tf_prefix),
        )
        writes.append(w_tf)
    log(f"[1] write: {repeats} interleaved rounds of {', '.join(v.name for v in writes)}")
    interleaved(writes, repeats)

    # The last write of each left its file: each library now reads its own.
    reads = [
        *dtckpt_restore_variants(ours_prefix, read_into, restore_into, variables, expected),
    ]
    if tf is not None:
        reads += [
            restore_variant(
                "TF Checkpoint.read",
                lambda: tf.train.Checkpoint(model=tf_read_into).read(tf_prefix),
                tf_read_into,
                variables,
                expected,
            ),
            restore_variant(
                "TF Checkpoint.restore",
                lambda: tf.train.Checkpoint(model=tf_restore_into).restore(tf_prefix),
                tf_restore_into,
                variables,
                expected,
            ),
        ]
    log(f"[1] read: {repeats} interleaved rounds of {', '.join(v.name for v in reads)}")
    interleaved(reads, repeats)

    def per_s(v: Variant) -> str:
        return f"{n / v.best / 1e3:.1f} k variables/s"

    rep.section(f"write {n} small variables", [(v, None, per_s(v)) for v in writes])
    rep.section(f"read {n} small variables", [(v, None, per_s(v)) for v in reads])
    by_name = {v.name: v for v in writes + reads}
    for op in ("write", "read", "restore"):
        rep.compare(
            f"{n} small: Checkpoint.{op}",
            by_name[f"dtckpt Checkpoint.{op}"],
            by_name.get(f"TF Checkpoint.{op}"),
            f"TF Checkpoint.{op}",
            TARGET_SMALL_VS_TF,
        )
    if profile:
        profile_misses(rep, "small", by_name)
    remove_prefix(ours_prefix)
    remove_prefix(tf_prefix)


# --- 2. a few large variables ---------------------------------------------------------------


def bench_big(
    cfg: Config, work: str, tf: Any, rep: ProfilingReport, repeats: int, profile: bool
) -> None:
    size = fmt_size(cfg.big_bytes)
    count = cfg.big_count
    log(f"[2] {size} in {count} float32 variables: generating data")
    expected = big_values(cfg)
    total = sum(a.nbytes for a in expected)
    keys = [f"model/v{i:02d}/.ATTRIBUTES/VARIABLE_VALUE" for i in range(count)]
    specs = [""] * count
    dtypes = [np.float32] * count

    def build(lib: Any, zero: bool = False) -> Any:
        return build_big(lib, expected, zero)

    def variables(root: Any) -> list[Any]:
        return big_variables(root, count)

    source = build(dtckpt)
    read_into, restore_into = build(dtckpt, zero=True), build(dtckpt, zero=True)
    ours_prefix = os.path.join(work, "big_dtckpt", "ckpt")
    raw_prefix = os.path.join(work, "big_save_v2", "ckpt")
    tf_prefix = os.path.join(work, "big_tf", "ckpt")
    for prefix in (ours_prefix, raw_prefix, tf_prefix):
        os.makedirs(os.path.dirname(prefix), exist_ok=True)

    if tf is not None:
        tf_source = build(tf)
        tf_read_into = build(tf, zero=True)
        log("[2] checking the files are byte-identical and each library reads the other's")
        dtckpt.Checkpoint(model=source).write(ours_prefix)
        tf.train.Checkpoint(model=tf_source).write(tf_prefix)
        rep.notes.extend(
            check_interop("large", ours_prefix, tf_prefix, tf, build, variables, expected)
        )

    def clear() -> None:
        for prefix in (ours_prefix, raw_prefix, tf_prefix):
            remove_prefix(prefix)

    # save_v2 is given the very arrays the Checkpoint writes (the variables' own values,
    # read once through the public numpy() copy), under the same keys.
    arrays = values_of(variables(source))

    def check_raw(_: Any) -> None:
        if "raw" in checked:
            return
        with dtckpt.load_checkpoint(raw_prefix) as reader:
            if not all(np.array_equal(reader.get_tensor(k), a) for k, a in zip(keys, expected)):
                raise RuntimeError("save_v2 wrote other values")
        checked.add("raw")

    checked: set[str] = set()
    w_ours = Variant(
        "dtckpt Checkpoint.write",
        lambda: dtckpt.Checkpoint(model=source).write(ours_prefix, options=NO_FSYNC),
        before=clear,
    )
    w_raw = Variant(
        "dtckpt save_v2 (same tensors)",
        lambda: dtckpt.save_v2(raw_prefix, keys, specs, arrays),
        before=clear,
        after=check_raw,
    )
    writes = [w_ours, w_raw]
    if tf is not None:
        writes.append(
            Variant(
                "TF Checkpoint.write",
                lambda: tf.train.Checkpoint(model=tf_source).write(tf_prefix),
                before=clear,
            )
        )
    log(f"[2] write: {repeats} interleaved rounds of {', '.join(v.name for v in writes)}")
    interleaved(writes, repeats)
    clear()

    # Reads: every dtckpt variant reads one file written by Checkpoint.write (the raw ops
    # read it by key; the object graph entry is a few hundred bytes), TF reads its own.
    dtckpt.Checkpoint(model=source).write(ours_prefix)
    if tf is not None:
        tf.train.Checkpoint(model=tf_source).write(tf_prefix)

    def raw_restore() -> list[np.ndarray]:
        return dtckpt.restore_v2(ours_prefix, keys, specs, dtypes)

    def raw_get_tensor() -> list[np.ndarray]:
        with dtckpt.load_checkpoint(ours_prefix) as reader:
            return [reader.get_tensor(k) for k in keys]

    def check_arrays(name: str) -> Any:
        def after(out: list[np.ndarray]) -> None:
            if name in checked:
                return
            if len(out) != count or not all(np.array_equal(o, e) for o, e in zip(out, expected)):
                raise RuntimeError(f"{name} returned other values than were written")
            checked.add(name)

        return after

    reads = [
        *dtckpt_restore_variants(ours_prefix, read_into, restore_into, variables, expected),
        Variant("dtckpt restore_v2 (same keys)", raw_restore, after=check_arrays("restore_v2")),
        Variant(
            "dtckpt load_checkpoint().get_tensor", raw_get_tensor, after=check_arrays("get")
        ),
    ]
    if tf is not None:
        reads.append(
            restore_variant(
                "TF Checkpoint.read",
                lambda: tf.train.Checkpoint(model=tf_read_into).read(tf_prefix),
                tf_read_into,
                variables,
                expected,
            )
        )
    log(f"[2] read: {repeats} interleaved rounds of {', '.join(v.name for v in reads)}")
    interleaved(reads, repeats)

    rep.section(f"write {size} / {count} variables", [(v, total, "") for v in writes])
    rep.section(f"read {size} / {count} variables", [(v, total, "") for v in reads])
    by_name = {v.name: v for v in writes + reads}
    ours_write = w_ours
    rep.compare(
        f"{size} large: Checkpoint.write",
        ours_write,
        by_name["dtckpt save_v2 (same tensors)"],
        "dtckpt save_v2",
        TARGET_BIG_VS_RAW_OPS,
    )
    rep.compare(
        f"{size} large: Checkpoint.write",
        ours_write,
        by_name.get("TF Checkpoint.write"),
        "TF Checkpoint.write",
        None,
    )
    for op in ("read", "restore"):
        ours = by_name[f"dtckpt Checkpoint.{op}"]
        rep.compare(
            f"{size} large: Checkpoint.{op}",
            ours,
            by_name["dtckpt restore_v2 (same keys)"],
            "dtckpt restore_v2",
            TARGET_BIG_VS_RAW_OPS,
        )
        rep.compare(
            f"{size} large: Checkpoint.{op}",
            ours,
            by_name["dtckpt load_checkpoint().get_tensor"],
            "dtckpt get_tensor",
            TARGET_BIG_VS_RAW_OPS,
        )
    rep.compare(
        f"{size} large: Checkpoint.read",
        by_name["dtckpt Checkpoint.read"],
        by_name.get("TF Checkpoint.read"),
        "TF Checkpoint.read",
        None,
    )
    if profile:
        profile_misses(rep, "large", by_name)
    clear()


# --- profiles of misses ---------------------------------------------------------------------


def profile_misses(
    rep: ProfilingReport, tag: str, variants: dict[str, Variant], top: int = 15
) -> None:
    """cProfile one more run of each dtckpt variant of the ``tag`` workload that missed a
    target, and keep the ``top`` functions by own time (and the callers of the first five)
    in ``rep.profiles``. Reads go first: a write's ``before`` may delete what they read."""
    missed = []
    for c in rep.comparisons:
        name = c.get("ours")
        if c["status"] == "MISS" and f" {tag}:" in c["what"] and name not in missed:
            missed.append(name)
    missed.sort(key=lambda name: "write" in name)
    for name in missed:
        v = variants[name]
        log(f"[profile] {tag}: {name}")
        if v.before is not None:
            v.before()
        prof = cProfile.Profile()
        prof.enable()
        result = v.run()
        prof.disable()
        del result
        text = io.StringIO()
        stats = pstats.Stats(prof, stream=text).sort_stats("tottime")
        stats.print_stats(top)
        stats.print_callers(5)  # who calls the builtins at the top (numpy.array, preadv ...)
        body = text.getvalue().replace(REPO_ROOT + os.sep, "")
        body = body.replace(os.path.dirname(os.__file__) + os.sep, "")  # the standard library
        rep.profiles[f"{tag}: {name}"] = body.strip("\n")


# --- driver ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = base_parser(
        __doc__.split("\n\n")[0],
        "small, fast run (1,000 small variables, 64 MiB) for smoke tests",
        FULL.repeats,
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="cProfile one more run of each dtckpt variant that misses a target",
    )
    args = p.parse_args(argv)

    cfg = QUICK if args.quick else FULL
    repeats = repeats_from(p, args.repeats, cfg.repeats)
    started = time.perf_counter()
    tf, tf_version = import_tf()
    tf_note = tf_version if tf is not None else "not available"
    if tf is None:
        print(f"TF not available ({tf_version}); running the dtckpt rows only", flush=True)

    if args.dir:
        os.makedirs(args.dir, exist_ok=True)
    work = tempfile.mkdtemp(prefix="dtckpt-bench-og-", dir=args.dir)
    rep = ProfilingReport()
    try:
        facts = machine_facts(work, REPO_ROOT, tf_version if tf is not None else None)
        bench_small(cfg, work, tf, rep, repeats, args.profile)
        bench_big(cfg, work, tf, rep, repeats, args.profile)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    wall = time.perf_counter() - started

    print(header("dtckpt object-graph checkpoint benchmark", facts, cfg.label, repeats, tf_note))
    print()
    print("Timings (GB = 1e9 bytes)")
    print(rep.timing_table())
    print()
    print(
        "Ratios: throughput ours / theirs (> 1 means dtckpt is faster); results against the targets"
    )
    print(rep.target_table())
    if rep.notes:
        print()
        print("Checks and notes")
        for note in rep.notes:
            print(f"  {note}")
    misses = rep.misses()
    print()
    print(
        f"{len(misses)} target(s) missed"
        + (": " + "; ".join(misses) if misses else "")
        + f". Wall time {wall:.0f} s."
    )
    for name, text in rep.profiles.items():
        print()
        print(f"cProfile of one run of {name} (the target missed), by own time")
        print(text.rstrip())

    if args.json:
        write_json(
            args.json,
            facts,
            asdict(cfg) | {"repeats": repeats},
            wall,
            **rep.as_json(),
            profiles=rep.profiles,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

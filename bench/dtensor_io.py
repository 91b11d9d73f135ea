"""DTensor checkpoints: dtckpt's ``DTensorCheckpoint`` beside TensorFlow's and raw file I/O.

Run from anywhere::

    python bench/dtensor_io.py             # full run: 1 GiB in 16 DVariables, a few minutes
    python bench/dtensor_io.py --quick     # 64 MiB, for smoke tests
    python bench/dtensor_io.py --repeats 5 --json bench/results/dtensor.json --dir /data/tmp

The variables live on a 2x4 mesh (``x``, ``y``) with layout ``[x, y]``; they are saved,
then restored into fresh variables on a 4x2 mesh (``a``, ``b``) with layout ``[b, a]``.
Every figure is the best of several interleaved runs, every comparison a ratio of
throughputs, ours / theirs (> 1 means dtckpt is faster). Besides speed: the bytes dtckpt
reads from the data files per byte restored, and the peak memory of a save and a restore
beyond the tensors. See bench/README.md for what each row measures and the targets.
"""

from __future__ import annotations

import argparse
import cProfile
import glob
import io
import json
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
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
    MiB,
    Variant,
    base_parser,
    current_rss,
    fmt_size,
    header,
    interleaved,
    machine_facts,
    peak_rss,
    repeats_from,
    reset_peak_rss,
    ru_maxrss,
    write_json,
)
from bundle_io import Report, log, remove_file  # noqa: E402
from bundle_io import import_tf as _import_tf  # noqa: E402

import dtckpt  # noqa: E402
from dtckpt import dtensor as dd  # noqa: E402


@dataclass(frozen=True)
class Config:
    label: str
    count: int  # how many float32 DVariables ...
    side: int  # ... each of shape [side, side]
    repeats: int


FULL = Config("full", 16, 4096, 5)  # 16 x 64 MiB = 1 GiB
QUICK = Config("quick", 16, 1024, 3)  # 16 x 4 MiB = 64 MiB

SAVE_MESH = [("x", 2), ("y", 4)]
SAVE_LAYOUT = ["x", "y"]
RESTORE_MESH = [("a", 4), ("b", 2)]
RESTORE_LAYOUT = ["b", "a"]
DEVICES = 8

# Targets: ratio = throughput ours / theirs (>= target passes).
TARGET_SAVE_VS_TF = 1.2
TARGET_SAVE_VS_RAW = 0.9
TARGET_RESTORE_VS_TF = 1.5
TARGET_AMPLIFICATION = 1.1  # aligned restore: bytes read / bytes needed (< passes)
TARGET_PEAK_MIB = 64.0  # peak RSS beyond the tensors (< passes)


def import_tf() -> tuple[Any, str]:
    """``(tf, version)`` with the host CPU split into 8 logical devices, or ``(None, reason)``.

    The split has to happen before TensorFlow initialises its devices, so right here.
    """
    tf, version = _import_tf()
    if tf is None:
        return None, version
    try:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * DEVICES
        )
        from tensorflow.experimental import dtensor  # noqa: F401

        tf.get_logger().setLevel("ERROR")  # DTensorCheckpoint's deprecation warning
    except Exception as exc:  # noqa: BLE001 - no DTensor means no TF rows
        return None, f"DTensor unusable: {type(exc).__name__}: {exc}"
    return tf, version


def attrs(count: int) -> list[str]:
    return [f"v{i:02d}" for i in range(count)]


def make_values(cfg: Config) -> Iterator[np.ndarray]:
    """The variables' values, one at a time (random float32, the same on every call)."""
    rng = np.random.default_rng(5)
    for _ in range(cfg.count):
        a = np.empty((cfg.side, cfg.side), dtype=np.float32)
        rng.random(out=a, dtype=np.float32)
        yield a


# --- building modules -------------------------------------------------------------------------


class Ours:
    """dtckpt's meshes, layouts and modules of DVariables."""

    def __init__(self) -> None:
        self.mesh = dd.create_mesh(SAVE_MESH, device_type="CPU")
        self.mesh2 = dd.create_mesh(RESTORE_MESH, device_type="CPU")
        self.layout = dd.Layout(SAVE_LAYOUT, self.mesh)
        self.layout2 = dd.Layout(RESTORE_LAYOUT, self.mesh2)

    def module(self, values: Any, layout: Any) -> Any:
        root = dtckpt.Module()
        for name, value in zip(attrs(len(values)), values):
            setattr(root, name, dd.DVariable(dd.copy_to_mesh(value, layout)))
        return root

    def zeros(self, cfg: Config, layout: Any) -> Any:
        """Fresh DVariables to restore into; their blocks are written, so resident."""
        root = dtckpt.Module()
        for name in attrs(cfg.count):
            parts = [
                np.zeros(layout.local_shape_from_global_shape((cfg.side, cfg.side)), np.float32)
                for _ in range(layout.mesh.size)
            ]
            for p in parts:
                p.fill(0)
            setattr(root, name, dd.DVariable(dd.DTensor(parts, layout, (cfg.side, cfg.side))))
        return root

    @staticmethod
    def values(root: Any, count: int) -> list[np.ndarray]:
        return [getattr(root, n).numpy() for n in attrs(count)]

    @staticmethod
    def save(mesh: Any, root: Any, prefix: str, fsync: bool = False) -> str:
        # TensorFlow's writers do not fsync, nor does the raw write: the compared save skips
        # the fsyncs too; the fsynced save (dtckpt's default) is timed beside a fsynced raw write.
        options = dtckpt.CheckpointOptions(experimental_fsync=fsync)
        return str(dd.DTensorCheckpoint(mesh, model=root).save(prefix, options=options))

    @staticmethod
    def restore(mesh: Any, root: Any, path: str) -> Any:
        return dd.DTensorCheckpoint(mesh, model=root).restore(path)


class Theirs:
    """The same with ``tf.experimental.dtensor``."""

    def __init__(self, tf: Any) -> None:
        from tensorflow.experimental import dtensor

        self.tf, self.dt = tf, dtensor
        self.mesh = dtensor.create_mesh(SAVE_MESH, device_type="CPU")
        self.mesh2 = dtensor.create_mesh(RESTORE_MESH, device_type="CPU")
        self.layout = dtensor.Layout(SAVE_LAYOUT, self.mesh)
        self.layout2 = dtensor.Layout(RESTORE_LAYOUT, self.mesh2)
        # For reading values back: dtckpt's arithmetic of which device holds which block.
        self.ours = Ours()

    def module(self, values: Any, layout: Any) -> Any:
        tf, dt = self.tf, self.dt
        root = tf.Module()
        replicated = dt.Layout.replicated(layout.mesh, rank=2)
        for name, value in zip(attrs(len(values)), values):
            whole = dt.copy_to_mesh(tf.constant(value), replicated)
            setattr(root, name, dt.DVariable(dt.relayout(whole, layout)))
            del whole
        return root

    def zeros(self, cfg: Config, layout: Any) -> Any:
        tf, dt = self.tf, self.dt
        root = tf.Module()
        for name in attrs(cfg.count):
            value = dt.call_with_layout(
                tf.zeros, layout, shape=[cfg.side, cfg.side], dtype=tf.float32
            )
            setattr(root, name, dt.DVariable(value))
        return root

    def values(self, root: Any, count: int) -> list[np.ndarray]:
        """Each variable assembled from its per-device components."""
        out = []
        for name in attrs(count):
            var = getattr(root, name)
            specs = list(var.layout.sharding_specs)
            mesh = self.ours.mesh if specs == SAVE_LAYOUT else self.ours.mesh2
            layout = dd.Layout(specs, mesh)
            parts = [p.numpy() for p in self.dt.unpack(var.read_value())]
            out.append(dd.DTensor(parts, layout, tuple(var.shape)).numpy())
        return out

    def save(self, mesh: Any, root: Any, prefix: str) -> str:
        return str(self.dt.DTensorCheckpoint(mesh, model=root).save(prefix))

    def restore(self, mesh: Any, root: Any, path: str) -> Any:
        return self.dt.DTensorCheckpoint(mesh, model=root).restore(path)


def same(got: list[np.ndarray], want: list[np.ndarray]) -> bool:
    return len(got) == len(want) and all(np.array_equal(g, w) for g, w in zip(got, want))


def clear_dir(path: str) -> None:
    """Empty ``path`` and flush every dirty page, outside the timed region, so that no
    variant pays for the write-back of the files an earlier variant wrote."""
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    os.sync()


def data_bytes(path: str) -> int:
    return sum(os.path.getsize(p) for p in glob.glob(glob.escape(path) + ".data-*"))


# --- bytes read -------------------------------------------------------------------------------


def _rchar() -> int | None:
    try:
        with open("/proc/self/io") as f:
            for line in f:
                if line.startswith("rchar:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


@contextmanager
def counting_reads(counts: dict[str, int]) -> Iterator[None]:
    """Count the bytes ``os.preadv`` returns (dtckpt's data-file reads go through it, in
    ``dtckpt/format/streams.py: read_into``), split into data files and the rest; and the
    process's ``rchar`` delta (every read of any file, the index included)."""
    real = os.preadv
    names: dict[int, str] = {}

    def preadv(fd: int, buffers: Any, offset: int, *rest: Any) -> int:
        n = real(fd, buffers, offset, *rest)
        name = names.get(fd)
        if name is None:
            try:
                name = names[fd] = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                name = names[fd] = ""
        counts["data" if ".data-" in name else "other"] += n
        counts["calls"] += 1
        return n

    counts.update(data=0, other=0, calls=0)
    before = _rchar()
    os.preadv = preadv
    try:
        yield
    finally:
        os.preadv = real
        after = _rchar()
        counts["rchar"] = -1 if before is None or after is None else after - before


# --- peak memory in child processes -----------------------------------------------------------


def child(kind: str, cfg: Config, work: str, source: str) -> None:
    """In a fresh process: build the variables, then save (or restore) once; print JSON.

    ``kind`` is ``dtckpt-save``, ``dtckpt-restore``, ``tf-save`` or ``tf-restore``;
    ``source`` is the checkpoint a restore reads.
    """
    lib, op = kind.split("-")
    if lib == "tf":
        tf, why = import_tf()
        if tf is None:
            raise SystemExit(f"TF not available: {why}")
        side: Any = Theirs(tf)
    else:
        side = Ours()
    if op == "save":
        root = side.module([], side.layout)
        for name, value in zip(attrs(cfg.count), make_values(cfg)):
            setattr(root, name, side.module([value], side.layout).v00)
            del value
        mesh = side.mesh
    else:
        root = side.zeros(cfg, side.layout2)
        mesh = side.mesh2
    base = current_rss()
    peak_before = peak_rss()
    reset = reset_peak_rss()
    t0 = time.perf_counter()
    if op == "save":
        side.save(mesh, root, os.path.join(work, f"mem_{kind}", "ckpt"))
    else:
        side.restore(mesh, root, source)
    elapsed = time.perf_counter() - t0
    peak = peak_rss()
    after = current_rss()
    shutil.rmtree(os.path.join(work, f"mem_{kind}"), ignore_errors=True)
    print(
        json.dumps(
            {
                "kind": kind,
                "rss_after_alloc": base,
                "peak_before": peak_before,
                "peak": peak,
                "rss_after": after,
                "peak_reset": reset,
                "ru_maxrss_after": ru_maxrss(),
                "seconds": elapsed,
            }
        )
    )


def run_child(kind: str, cfg: Config, work: str, source: str = "") -> dict[str, Any]:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", kind, "--dir", work]
    cmd += ["--child-source", source] + (["--quick"] if cfg is QUICK else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"child {kind} failed:\n{proc.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["peak_minus_base_mib"] = (result["peak"] - result["rss_after_alloc"]) / MiB
    return result


# --- the benchmark ----------------------------------------------------------------------------


class DTensorReport(Report):
    def __init__(self) -> None:
        super().__init__()
        self.reads: dict[str, Any] = {}
        self.profiles: dict[str, str] = {}

    def compare_value(
        self, what: str, value: float, target: float | None, note: str, unit: str = "x"
    ) -> None:
        """A row that is a figure rather than a throughput ratio (smaller is better)."""
        status = "-" if target is None else ("PASS" if value < target else "MISS")
        self.comparisons.append(
            {"what": what, "vs": "", "value": value, "unit": unit, "target_lt": target,
             "status": status, "note": note}
        )

    def target_table(self) -> str:
        from _common import table

        rows = []
        for c in self.comparisons:
            if "value" in c:
                rows.append([c["what"], c["note"], f"{c['value']:.3f}x",
                             "" if c["target_lt"] is None else f"< {c['target_lt']:.2f}x",
                             c["status"]])
            elif "value_mib" in c:
                value = "-" if c["value_mib"] is None else f"{c['value_mib']:.1f} MiB"
                target = "" if c["target_mib"] is None else f"< {c['target_mib']:.0f} MiB"
                rows.append([c["what"], c["note"], value, target, c["status"]])
            else:
                ratio = "-" if c["ratio"] is None else f"{c['ratio']:.2f}x"
                target = "" if c["target"] is None else f">= {c['target']:.2f}x"
                rows.append([c["what"], c["vs"], ratio, target, c["status"]])
        return table(["measurement (dtckpt)", "vs", "value", "target", "result"], rows, right=(2,))


def profile(rep: DTensorReport, label: str, v: Variant, top: int = 18) -> None:
    """cProfile one more run of ``v`` and keep the ``top`` functions by own time."""
    log(f"[profile] {label}")
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
    stats.print_callers(4)  # who waits on the locks and calls preadv at the top
    body = text.getvalue().replace(REPO_ROOT + os.sep, "")
    body = body.replace(os.path.dirname(os.__file__) + os.sep, "")
    rep.profiles[label] = body.strip("\n")


def bench(cfg: Config, work: str, tf: Any, rep: DTensorReport, repeats: int, quick: bool) -> None:
    total = cfg.count * cfg.side * cfg.side * 4
    size = fmt_size(total)
    shape = f"{cfg.count} x [{cfg.side}, {cfg.side}] float32"
    log(f"generating {size} ({shape}) and building the DVariables")
    values = list(make_values(cfg))
    ours = Ours()
    src = ours.module(values, ours.layout)
    theirs = Theirs(tf) if tf is not None else None
    tf_src = theirs.module(values, theirs.layout) if theirs is not None else None

    raw_path = os.path.join(work, "raw.bin")
    ours_dir, tf_dir = os.path.join(work, "save_ours"), os.path.join(work, "save_tf")

    def clear() -> None:
        remove_file(raw_path)
        clear_dir(ours_dir)
        clear_dir(tf_dir)

    def raw_write() -> None:
        with open(raw_path, "wb") as f:
            for a in values:
                f.write(memoryview(a.reshape(-1).view(np.uint8)))

    def raw_write_fsync() -> None:
        with open(raw_path, "wb") as f:
            for a in values:
                f.write(memoryview(a.reshape(-1).view(np.uint8)))
            f.flush()
            os.fsync(f.fileno())

    def check_raw(_: Any) -> None:
        if os.path.getsize(raw_path) != total:
            raise RuntimeError("raw write produced the wrong number of bytes")

    def check_saved(path: str) -> None:
        if data_bytes(path) < total:
            raise RuntimeError(f"{path}: the data files hold fewer bytes than the variables")

    s_raw = Variant("raw sequential write", raw_write, before=clear, after=check_raw)
    s_ours = Variant(
        "dtckpt DTensorCheckpoint.save, experimental_fsync=False",
        lambda: ours.save(ours.mesh, src, os.path.join(ours_dir, "ckpt")),
        before=clear,
        after=check_saved,
    )
    s_raw_sync = Variant(
        "raw sequential write + fsync", raw_write_fsync, before=clear, after=check_raw
    )
    s_ours_sync = Variant(
        "dtckpt DTensorCheckpoint.save, fsynced (the default)",
        lambda: ours.save(ours.mesh, src, os.path.join(ours_dir, "ckpt"), fsync=True),
        before=clear,
        after=check_saved,
    )
    saves = [s_raw, s_ours]
    if theirs is not None:
        saves.append(
            Variant(
                "TF DTensorCheckpoint.save",
                lambda: theirs.save(theirs.mesh, tf_src, os.path.join(tf_dir, "ckpt")),
                before=clear,
                after=check_saved,
            )
        )
    saves += [s_raw_sync, s_ours_sync]
    log(f"save: {repeats} interleaved rounds of {', '.join(v.name for v in saves)}")
    interleaved(saves, repeats)
    clear()
    rep.section(f"save {size}, 2x4 mesh [x, y] ({shape})", [(v, total, "") for v in saves])
    what = f"save {size}"
    rep.compare(what, s_ours, saves[2] if theirs is not None else None,
                "TF DTensorCheckpoint.save", TARGET_SAVE_VS_TF)
    rep.compare(what, s_ours, s_raw, "raw sequential write", TARGET_SAVE_VS_RAW)
    rep.compare(what + ", fsynced", s_ours_sync, s_raw_sync, "raw sequential write + fsync", None)

    # -- the checkpoints every restore reads: one by each library, written once.
    ours_path = ours.save(ours.mesh, src, os.path.join(work, "ckpt_ours", "ckpt"))
    tf_path = ""
    if theirs is not None:
        tf_path = theirs.save(theirs.mesh, tf_src, os.path.join(work, "ckpt_tf", "ckpt"))

    # -- correctness, once, outside timing.
    log("checking restored values (dtckpt <-> TF, aligned and resharded)")
    dst = ours.zeros(cfg, ours.layout2)
    ours.restore(ours.mesh2, dst, ours_path)
    if not same(Ours.values(dst, cfg.count), values):
        raise RuntimeError("dtckpt restored different values into [b, a] on the 4x2 mesh")
    checks = ["dtckpt restores its own checkpoint into [b, a] on 4x2: equal"]
    if theirs is not None:
        tf_dst = theirs.zeros(cfg, theirs.layout2)
        theirs.restore(theirs.mesh2, tf_dst, ours_path)
        if not same(theirs.values(tf_dst, cfg.count), values):
            raise RuntimeError("TF restored different values from dtckpt's checkpoint")
        checks.append("TF restores dtckpt's checkpoint into [b, a] on 4x2: equal")
        ours.restore(ours.mesh2, dst, tf_path)
        if not same(Ours.values(dst, cfg.count), values):
            raise RuntimeError("dtckpt restored different values from TF's checkpoint")
        checks.append("dtckpt restores TF's checkpoint into [b, a] on 4x2: equal")
        theirs.restore(theirs.mesh2, tf_dst, tf_path)
        if not same(theirs.values(tf_dst, cfg.count), values):
            raise RuntimeError("TF restored different values from its own checkpoint")
        checks.append("TF restores its own checkpoint into [b, a] on 4x2: equal")
    rep.notes.extend(checks)

    # -- read amplification, one counted restore per case (no timing).
    # The [b, a] blocks on 4x2 are the [x, y] blocks on 2x4 held by other devices, so the
    # transposed layout [y, x] on 2x4 is added: each of its blocks spans two saved ones.
    aligned = ours.zeros(cfg, ours.layout)
    transposed = ours.zeros(cfg, dd.Layout(SAVE_LAYOUT[::-1], ours.mesh))
    for case, mesh, root in (
        ("aligned: 2x4 [x, y] -> 2x4 [x, y]", ours.mesh, aligned),
        ("resharding: 2x4 [x, y] -> 4x2 [b, a]", ours.mesh2, dst),
        ("resharding: 2x4 [x, y] -> 2x4 [y, x]", ours.mesh, transposed),
    ):
        counts: dict[str, int] = {}
        with counting_reads(counts):
            ours.restore(mesh, root, ours_path)
        if not same(Ours.values(root, cfg.count), values):
            raise RuntimeError(f"dtckpt restored different values ({case})")
        counts["needed"] = total
        rep.reads[case] = counts
        target = TARGET_AMPLIFICATION if case.startswith("aligned") else None
        rep.compare_value(f"restore {size} read amplification", counts["data"] / total,
                          target, case)
    del aligned, transposed

    # -- timed restores: each library restores its own checkpoint into [b, a] on 4x2.
    r_ours = Variant(
        "dtckpt DTensorCheckpoint.restore", lambda: ours.restore(ours.mesh2, dst, ours_path)
    )
    restores = [r_ours]
    if theirs is not None:
        restores.append(
            Variant(
                "TF DTensorCheckpoint.restore",
                lambda: theirs.restore(theirs.mesh2, tf_dst, tf_path),
            )
        )
    log(f"restore: {repeats} interleaved rounds of {', '.join(v.name for v in restores)}")
    interleaved(restores, repeats)
    rep.section(
        f"restore {size}, 2x4 [x, y] -> 4x2 [b, a] (into existing DVariables)",
        [(v, total, "") for v in restores],
    )
    rep.compare(f"resharding restore {size}", r_ours,
                restores[1] if theirs is not None else None,
                "TF DTensorCheckpoint.restore", TARGET_RESTORE_VS_TF)
    if not same(Ours.values(dst, cfg.count), values):
        raise RuntimeError("dtckpt's timed restores left different values")

    missed = {c["ours"] for c in rep.comparisons if c["status"] == "MISS" and "ours" in c}
    for v in (r_ours, s_ours):
        if v.name in missed:
            profile(rep, v.name, v)
    del dst, values, src, tf_src
    if theirs is not None:
        del tf_dst

    # -- peak memory, in child processes.
    log("peak RSS of one save and one restore, in child processes")
    mem_src = ours_path
    for kind, source in (("dtckpt-save", ""), ("dtckpt-restore", mem_src)):
        rep.memory[kind] = run_child(kind, cfg, work, source)
    if theirs is not None and not quick:
        for kind, source in (("tf-save", ""), ("tf-restore", tf_path)):
            rep.memory[kind] = run_child(kind, cfg, work, source)
    m = rep.memory
    rep.compare_memory(f"peak RSS beyond tensors, {size} save",
                       m["dtckpt-save"]["peak_minus_base_mib"], TARGET_PEAK_MIB, "dtckpt save")
    # A restore builds the new values beside the variables' old ones (all are read before
    # any is assigned), so "the tensors" are both: peak - base - bytes restored.
    r = m["dtckpt-restore"]
    rep.compare_memory(f"peak RSS beyond tensors, {size} restore",
                       r["peak_minus_base_mib"] - total / MiB, TARGET_PEAK_MIB,
                       "dtckpt restore, beyond old + new values")
    rep.compare_memory(f"peak RSS growth, {size} restore", r["peak_minus_base_mib"], None,
                       "dtckpt restore, incl. the new values")
    for kind in ("tf-save", "tf-restore"):
        if kind in m:
            rep.compare_memory(f"peak RSS growth, {size} {kind.split('-')[1]}",
                               m[kind]["peak_minus_base_mib"], None, f"{kind}, for comparison")


def main(argv: list[str] | None = None) -> int:
    p = base_parser(
        __doc__.split("\n\n")[0],
        "small, fast run (64 MiB in 16 DVariables) for smoke tests",
        FULL.repeats,
    )
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--child-source", default="", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    cfg = QUICK if args.quick else FULL

    if args.child:
        child(args.child, cfg, args.dir, args.child_source)
        return 0

    repeats = repeats_from(p, args.repeats, cfg.repeats)
    started = time.perf_counter()
    tf, tf_version = import_tf()
    tf_note = tf_version if tf is not None else "not available"
    if tf is None:
        print(f"TF not available ({tf_version}); running the dtckpt rows only", flush=True)
    if args.dir:
        os.makedirs(args.dir, exist_ok=True)
    work = tempfile.mkdtemp(prefix="dtckpt-bench-dt-", dir=args.dir)
    rep = DTensorReport()
    try:
        facts = machine_facts(work, REPO_ROOT, tf_version if tf is not None else None)
        facts["loadavg_start"] = list(os.getloadavg())
        bench(cfg, work, tf, rep, repeats, args.quick)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    wall = time.perf_counter() - started
    facts["loadavg_end"] = list(os.getloadavg())

    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        header(
            "dtckpt DTensor checkpoint benchmark",
            facts,
            cfg.label,
            repeats,
            tf_note,
            machine_extra=f"; load average {load}",
            tf_extra=f" ({DEVICES} logical CPUs)",
        )
    )
    print()
    print("Timings (GB = 1e9 bytes)")
    print(rep.timing_table())
    print()
    print("Ratios: throughput ours / theirs (> 1 means dtckpt is faster); read amplification "
          "and memory: smaller is better")
    print(rep.target_table())
    print()
    print("Bytes read during one restore (os.preadv on data files; rchar: every read)")
    for case, c in rep.reads.items():
        print(f"  {case}: data {c['data']:,} B in {c['calls']} preadv calls, other "
              f"{c['other']:,} B, rchar {c['rchar']:,} B, needed {c['needed']:,} B")
    print()
    print("Checks (once, outside timing)")
    for note in rep.notes:
        print(f"  {note}")
    misses = rep.misses()
    print()
    print(f"{len(misses)} target(s) missed" + (": " + "; ".join(misses) if misses else "")
          + f". Wall time {wall:.0f} s.")
    for name, text in rep.profiles.items():
        print()
        print(f"cProfile of one run of {name} (the target missed), by own time")
        print(text.rstrip())

    if args.json:
        write_json(
            args.json,
            facts,
            asdict(cfg) | {"repeats": repeats, "bytes": cfg.count * cfg.side**2 * 4},
            wall,
            **rep.as_json(),
            reads=rep.reads,
            profiles=rep.profiles,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Throughput and memory of dtckpt's checkpoint I/O beside raw file I/O and TensorFlow.

Run from anywhere::

    python bench/bundle_io.py             # full run, a few minutes
    python bench/bundle_io.py --quick     # small and fast (CI smoke test)
    python bench/bundle_io.py --repeats 7 --json bench/results/latest.json --dir /data/tmp

Every figure is the best of several interleaved runs (A, B, C, A, B, C, ...), and every
comparison is a ratio of throughputs, ours / theirs, so that a ratio above 1 means dtckpt is
faster. See bench/README.md for what each row measures and the targets.
"""

from __future__ import annotations

import argparse
import glob
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
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import crc32c  # noqa: E402
from _common import (  # noqa: E402
    GB,
    MiB,
    Variant,
    base_parser,
    current_rss,
    fmt_seconds,
    fmt_size,
    header,
    interleaved,
    machine_facts,
    peak_rss,
    repeats_from,
    reset_peak_rss,
    ru_maxrss,
    table,
    write_json,
)

import dtckpt  # noqa: E402
import dtckpt.kernels  # noqa: E402


@dataclass(frozen=True)
class Config:
    label: str
    big_bytes: int  # total bytes of the large tensors
    big_count: int  # how many large tensors
    small_count: int  # how many small tensors
    crc_bytes: int  # buffer hashed in the CRC kernel row
    box_side: int  # float32 array [side, side] the block is cut from / the tensor assembled
    repeats: int


FULL = Config("full", 512 * MiB, 16, 10_000, 256 * MiB, 8192, 9)
QUICK = Config("quick", 64 * MiB, 16, 1_000, 64 * MiB, 4096, 3)

# Targets: ratio = throughput ours / theirs (>= target passes).
TARGET_WRITE_VS_RAW = 0.9
TARGET_WRITE_VS_TF = 1.0
TARGET_READ_VS_TF = 1.0
TARGET_MMAP_VS_TF = 3.0
TARGET_SMALL_SAVE_VS_TF = 0.5
TARGET_LIST_VS_TF = 0.5
TARGET_PEAK_MIB = 64.0  # peak RSS beyond the tensors while writing (< passes)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def import_tf() -> tuple[Any, str]:
    """``(tf, version)`` or ``(None, reason)``."""
    try:
        import tensorflow as tf
    except Exception as exc:  # noqa: BLE001 - any broken install counts as absent
        return None, f"{type(exc).__name__}: {exc}"
    return tf, str(tf.__version__)


def remove_prefix(prefix: str) -> None:
    """Delete every file of the checkpoint at ``prefix`` (temporaries included), then flush
    dirty pages, so that the next timed write does not pay for this one's write-back."""
    for path in glob.glob(glob.escape(prefix) + "*"):
        os.remove(path)
    os.sync()


def remove_file(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def readinto_all(f: Any, out: np.ndarray) -> None:
    view = memoryview(out.reshape(-1).view(np.uint8))
    done = 0
    while done < len(view):
        n = f.readinto(view[done:])
        if not n:
            raise EOFError("file ended early")
        done += n


def big_shape(nbytes: int) -> tuple[int, int]:
    elems = nbytes // 4
    cols = 1024 if elems % 1024 == 0 else 1
    return elems // cols, cols


def big_names(count: int) -> tuple[list[str], list[str]]:
    """Attribute names for ``tf.train.Checkpoint`` and the keys it stores them under."""
    attrs = [f"v{i:02d}" for i in range(count)]
    return attrs, [f"{a}/.ATTRIBUTES/VARIABLE_VALUE" for a in attrs]


def make_big(cfg: Config) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    shape = big_shape(cfg.big_bytes // cfg.big_count)
    arrays = []
    for _ in range(cfg.big_count):
        a = np.empty(shape, dtype=np.float32)
        rng.random(out=a, dtype=np.float32)
        arrays.append(a)
    return arrays


class Report:
    """Collects timed variants and comparisons; prints the tables and the JSON."""

    def __init__(self) -> None:
        self.sections: list[tuple[str, list[tuple[Variant, int | None, str]]]] = []
        self.comparisons: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.memory: dict[str, Any] = {}

    def section(self, title: str, variants: list[tuple[Variant, int | None, str]]) -> None:
        """``variants``: (variant, bytes moved or None, unit note for items)."""
        self.sections.append((title, variants))

    def compare(
        self,
        what: str,
        ours: Variant,
        theirs: Variant | None,
        vs: str,
        target: float | None,
    ) -> None:
        """Ratio of throughputs ``ours`` / ``theirs`` (the same work, so of times inverted);
        ``vs`` names ``theirs`` in the table. ``theirs=None`` records a row TF could not run."""
        row: dict[str, Any] = {"what": what, "vs": vs, "ours": ours.name, "target": target}
        if theirs is None:
            row.update(theirs=None, ratio=None, status="n/a", reason="TF not available")
        else:
            ratio = theirs.best / ours.best
            status = "-" if target is None else ("PASS" if ratio >= target else "MISS")
            row.update(theirs=theirs.name, ratio=ratio, status=status)
        self.comparisons.append(row)

    def compare_memory(
        self, what: str, value_mib: float | None, target: float | None, note: str = ""
    ) -> None:
        status = "n/a"
        if value_mib is not None:
            status = "-" if target is None else ("PASS" if value_mib < target else "MISS")
        self.comparisons.append(
            {
                "what": what,
                "vs": "",
                "value_mib": value_mib,
                "target_mib": target,
                "status": status,
                "note": note,
            }
        )

    # -- output --------------------------------------------------------------------------
    def timing_table(self) -> str:
        rows = []
        for title, variants in self.sections:
            rows.append([title, "", "", ""])
            for v, nbytes, unit in variants:
                if nbytes:
                    rate = f"{nbytes / v.best / GB:.2f} GB/s"
                else:
                    rate = unit
                med = sorted(v.times)[len(v.times) // 2]
                rows.append(["  " + v.name, fmt_seconds(v.best), fmt_seconds(med), rate])
        return table(["variant", "best", "median", "throughput"], rows, right=(1, 2, 3))

    def target_table(self) -> str:
        rows = []
        for c in self.comparisons:
            if "value_mib" in c:
                value = "-" if c["value_mib"] is None else f"{c['value_mib']:.1f} MiB"
                target = "" if c["target_mib"] is None else f"< {c['target_mib']:.0f} MiB"
                rows.append([c["what"], c["note"], value, target, c["status"]])
                continue
            ratio = "-" if c["ratio"] is None else f"{c['ratio']:.2f}x"
            rows.append([c["what"], c["vs"], ratio, _target(c["target"]), c["status"]])
        return table(["measurement (dtckpt)", "vs", "ratio", "target", "result"], rows, right=(2,))

    def misses(self) -> list[str]:
        return [
            f"{c['what']} vs {c['vs']}" if c["vs"] else c["what"]
            for c in self.comparisons
            if c["status"] == "MISS"
        ]

    def as_json(self) -> dict[str, Any]:
        return {
            "sections": [
                {
                    "title": title,
                    "variants": [
                        {
                            "name": v.name,
                            "times_s": v.times,
                            "best_s": v.best,
                            "bytes": nbytes,
                            "gb_per_s": (nbytes / v.best / GB) if nbytes else None,
                        }
                        for v, nbytes, _ in variants
                    ],
                }
                for title, variants in self.sections
            ],
            "comparisons": self.comparisons,
            "memory": self.memory,
            "notes": self.notes,
        }


def _target(t: float | None) -> str:
    return "" if t is None else f">= {t:.2f}x"


# --- 1. large tensors -----------------------------------------------------------------------


def bench_large(cfg: Config, work: str, tf: Any, rep: Report, repeats: int) -> None:
    size = fmt_size(cfg.big_bytes)
    log(f"[1] {size} in {cfg.big_count} float32 tensors: generating data")
    arrays = make_big(cfg)
    total = sum(a.nbytes for a in arrays)
    attrs, keys = big_names(cfg.big_count)
    specs = [""] * len(keys)
    tf_vars = [tf.Variable(a) for a in arrays] if tf is not None else None

    raw_path = os.path.join(work, "raw_write.bin")
    ours_prefix = os.path.join(work, "write_dtckpt", "ckpt")
    tf_prefix = os.path.join(work, "write_tf", "ckpt")

    def clear_writes() -> None:
        remove_file(raw_path)
        remove_prefix(ours_prefix)
        remove_prefix(tf_prefix)

    def raw_write() -> None:
        with open(raw_path, "wb") as f:
            for a in arrays:
                f.write(memoryview(a.reshape(-1).view(np.uint8)))

    def ours_write() -> None:
        dtckpt.save_v2(ours_prefix, keys, specs, arrays)

    def tf_write() -> None:
        tf.train.Checkpoint(**dict(zip(attrs, tf_vars))).write(tf_prefix)

    # Each writer's output is checked once, right after its first timed run (untimed): the
    # raw file's size, and that dtckpt and TF each read what the other wrote.
    def check_raw(_: Any) -> None:
        if "raw" not in checked and os.path.getsize(raw_path) != total:
            raise RuntimeError("raw write produced the wrong number of bytes")
        checked.add("raw")

    def check_ours(_: Any) -> None:
        if "dtckpt" in checked:
            return
        with dtckpt.load_checkpoint(ours_prefix) as reader:
            if not all(np.array_equal(reader.get_tensor(k), a) for k, a in zip(keys, arrays)):
                raise RuntimeError("dtckpt could not read back what save_v2 wrote")
        if tf is not None:
            got = tf.train.load_checkpoint(ours_prefix).get_tensor(keys[0])
            if not np.array_equal(got, arrays[0]):
                raise RuntimeError("TF reads different data from the dtckpt checkpoint")
        checked.add("dtckpt")

    def check_tf(_: Any) -> None:
        if "tf" in checked:
            return
        with dtckpt.load_checkpoint(tf_prefix) as reader:
            if not np.array_equal(reader.get_tensor(keys[-1]), arrays[-1]):
                raise RuntimeError("dtckpt reads different data from the TF checkpoint")
        checked.add("tf")

    checked: set[str] = set()
    os.makedirs(os.path.dirname(ours_prefix), exist_ok=True)
    os.makedirs(os.path.dirname(tf_prefix), exist_ok=True)
    w_raw = Variant("raw sequential write", raw_write, before=clear_writes, after=check_raw)
    w_ours = Variant("dtckpt save_v2", ours_write, before=clear_writes, after=check_ours)
    w_tf = Variant("TF Checkpoint.write", tf_write, before=clear_writes, after=check_tf)
    writes = [w_raw, w_ours] + ([w_tf] if tf is not None else [])
    log(f"[1] write: {repeats} interleaved rounds of {', '.join(v.name for v in writes)}")
    interleaved(writes, repeats)
    clear_writes()
    rep.section(f"write {size} / {cfg.big_count} tensors", [(v, total, "") for v in writes])
    rep.compare(f"write {size}: save_v2", w_ours, w_raw, "raw write", TARGET_WRITE_VS_RAW)
    rep.compare(
        f"write {size}: save_v2",
        w_ours,
        w_tf if tf is not None else None,
        "TF Checkpoint.write",
        TARGET_WRITE_VS_TF,
    )

    # -- reads: all variants read the same checkpoint, written once by dtckpt.
    read_prefix = os.path.join(work, "read", "ckpt")
    dtckpt.save_v2(read_prefix, keys, specs, arrays)
    (data_path,) = glob.glob(glob.escape(read_prefix) + ".data-*")
    dest = [np.empty_like(a) for a in arrays]
    for d in dest:
        d.fill(0)  # fault the pages in: raw reads land in ready memory

    def raw_read() -> list[np.ndarray]:
        with open(data_path, "rb", buffering=0) as f:
            for d in dest:
                readinto_all(f, d)
        return dest

    def raw_read_fresh() -> list[np.ndarray]:
        # What get_tensor has to do, by hand: new arrays, read, checksum (not compared).
        out = []
        with open(data_path, "rb", buffering=0) as f:
            for a in arrays:
                d = np.empty_like(a)
                readinto_all(f, d)
                crc32c.crc32c(d)
                out.append(d)
        return out

    def ours_read() -> list[np.ndarray]:
        reader = dtckpt.load_checkpoint(read_prefix)
        out = [reader.get_tensor(k) for k in keys]
        reader.close()
        return out

    def ours_mmap() -> tuple[Any, list[np.ndarray]]:
        reader = dtckpt.load_checkpoint(read_prefix, mmap=True)
        return reader, [reader.get_tensor(k) for k in keys]

    def tf_read() -> list[np.ndarray]:
        reader = tf.train.load_checkpoint(read_prefix)
        return [reader.get_tensor(k) for k in keys]

    def same(out: list[np.ndarray]) -> bool:
        return len(out) == len(arrays) and all(np.array_equal(o, a) for o, a in zip(out, arrays))

    log("[1] read: checking every reader returns the written data")
    checks = [
        ("raw", raw_read()),
        ("raw fresh", raw_read_fresh()),
        ("dtckpt", ours_read()),
        ("dtckpt mmap", ours_mmap()[1]),
    ]
    if tf is not None:
        checks.append(("TF", tf_read()))
    for who, out in checks:
        if not same(out):
            raise RuntimeError(f"{who} read returned wrong data")
    del checks, out

    r_raw = Variant("raw sequential readinto", raw_read)
    r_fresh = Variant("raw readinto new arrays + crc32c", raw_read_fresh)
    r_ours = Variant("dtckpt get_tensor", ours_read)
    r_mmap = Variant("dtckpt get_tensor mmap=True", ours_mmap)
    r_tf = Variant("TF get_tensor", tf_read)
    reads = [r_raw, r_fresh, r_ours, r_mmap] + ([r_tf] if tf is not None else [])
    log(f"[1] read: {repeats} interleaved rounds of {', '.join(v.name for v in reads)}")
    interleaved(reads, repeats)
    remove_prefix(read_prefix)
    rep.section(
        f"read {size} / {cfg.big_count} tensors, checksums verified",
        [(v, total, "") for v in reads],
    )
    tf_or_none = r_tf if tf is not None else None
    rep.compare(f"read {size}: get_tensor", r_ours, r_raw, "raw readinto", None)
    rep.compare(f"read {size}: get_tensor", r_ours, r_fresh, "raw new arrays + crc32c", None)
    rep.compare(f"read {size}: get_tensor", r_ours, tf_or_none, "TF get_tensor", TARGET_READ_VS_TF)
    rep.compare(f"read {size}: mmap get_tensor", r_mmap, r_raw, "raw readinto", None)
    rep.compare(
        f"read {size}: mmap get_tensor", r_mmap, tf_or_none, "TF get_tensor", TARGET_MMAP_VS_TF
    )


# --- 2. many small tensors ------------------------------------------------------------------


def make_small(count: int) -> tuple[list[str], list[np.ndarray]]:
    rng = np.random.default_rng(1)
    names, arrays = [], []
    for i in range(count):
        layer = i // 2
        if i % 500 == 499:  # a few int64 scalars, like step counters
            names.append(f"layer_{layer:05d}/step/.ATTRIBUTES/VARIABLE_VALUE")
            arrays.append(np.int64(rng.integers(0, 1 << 40)))
            continue
        kind = "kernel" if i % 2 == 0 else "bias"
        names.append(f"layer_{layer:05d}/{kind}/.ATTRIBUTES/VARIABLE_VALUE")
        arrays.append(rng.random(int(rng.integers(4, 65)), dtype=np.float32))
    return names, arrays


def bench_small(cfg: Config, work: str, tf: Any, rep: Report, repeats: int) -> None:
    n = cfg.small_count
    log(f"[2] {n} small tensors")
    names, arrays = make_small(n)
    specs = [""] * n
    ours_prefix = os.path.join(work, "small_dtckpt", "ckpt")
    tf_prefix = os.path.join(work, "small_tf", "ckpt")
    os.makedirs(os.path.dirname(ours_prefix), exist_ok=True)
    os.makedirs(os.path.dirname(tf_prefix), exist_ok=True)

    def clear() -> None:
        remove_prefix(ours_prefix)
        remove_prefix(tf_prefix)

    def ours_save() -> None:
        dtckpt.save_v2(ours_prefix, names, specs, arrays)

    def tf_save() -> None:
        tf.raw_ops.SaveV2(
            prefix=tf_prefix, tensor_names=names, shape_and_slices=specs, tensors=arrays
        )

    s_ours = Variant("dtckpt save_v2", ours_save, before=clear)
    s_tf = Variant("TF raw_ops.SaveV2", tf_save, before=clear)
    saves = [s_ours] + ([s_tf] if tf is not None else [])
    interleaved(saves, repeats)

    clear()

    # list_variables: both list one checkpoint written by dtckpt (and dtckpt lists TF's).
    list_prefix = os.path.join(work, "small_list", "ckpt")
    dtckpt.save_v2(list_prefix, names, specs, arrays)
    if tf is not None:
        tf_save()
    expected = sorted((k, list(np.shape(a))) for k, a in zip(names, arrays))
    if dtckpt.list_variables(list_prefix) != expected:
        raise RuntimeError("dtckpt.list_variables disagrees with what was written")
    if tf is not None:
        if [(k, list(s)) for k, s in tf.train.list_variables(list_prefix)] != expected:
            raise RuntimeError("tf.train.list_variables disagrees with what was written")
        if dtckpt.list_variables(tf_prefix) != expected:
            raise RuntimeError("dtckpt.list_variables misreads TF's SaveV2 checkpoint")

    l_ours = Variant("dtckpt list_variables", lambda: dtckpt.list_variables(list_prefix))
    l_tf = Variant("TF train.list_variables", lambda: tf.train.list_variables(list_prefix))
    lists = [l_ours] + ([l_tf] if tf is not None else [])
    interleaved(lists, repeats)
    clear()
    remove_prefix(list_prefix)

    def per_s(v: Variant) -> str:
        return f"{n / v.best / 1e3:.1f} k tensors/s"

    rep.section(f"save {n} small tensors", [(v, None, per_s(v)) for v in saves])
    rep.section(f"list {n} small tensors", [(v, None, per_s(v)) for v in lists])
    rep.compare(
        f"save {n} small: save_v2",
        s_ours,
        s_tf if tf is not None else None,
        "TF raw_ops.SaveV2",
        TARGET_SMALL_SAVE_VS_TF,
    )
    rep.compare(
        f"list {n} small: list_variables",
        l_ours,
        l_tf if tf is not None else None,
        "TF list_variables",
        TARGET_LIST_VS_TF,
    )


# --- 3. peak memory while writing -----------------------------------------------------------


def child_write(kind: str, nbytes: int, count: int, work: str) -> None:
    """In a fresh process: allocate the tensors, write them once, print memory as JSON."""
    prefix = os.path.join(work, f"mem_{kind}", "ckpt")
    rng = np.random.default_rng(0)
    shape = big_shape(nbytes // count)
    attrs, keys = big_names(count)
    tf = None
    if kind == "tf":
        tf, _ = import_tf()
    elif kind != "dtckpt":
        raise SystemExit(f"unknown --child-write kind {kind!r}")
    tensors: list[Any] = []
    for _ in range(count):
        a = np.empty(shape, dtype=np.float32)
        rng.random(out=a, dtype=np.float32)  # in place: no temporary
        tensors.append(a if tf is None else tf.Variable(a))
        del a
    base = current_rss()
    peak_before = peak_rss()
    maxrss_before = ru_maxrss()
    reset = reset_peak_rss()  # the mark now starts at ``base``, not at any earlier peak
    t0 = time.perf_counter()
    if tf is None:
        dtckpt.save_v2(prefix, keys, [""] * count, tensors)
    else:
        tf.train.Checkpoint(**dict(zip(attrs, tensors))).write(prefix)
    elapsed = time.perf_counter() - t0
    peak = peak_rss()
    remove_prefix(prefix)
    print(
        json.dumps(
            {
                "kind": kind,
                "rss_after_alloc": base,
                "peak_before_write": peak_before,
                "peak": peak,
                "peak_reset": reset,
                "ru_maxrss_before": maxrss_before,
                "ru_maxrss_after": ru_maxrss(),
                "write_s": elapsed,
                "numba_loaded": "numba" in sys.modules,
            }
        )
    )


def run_child(kind: str, cfg: Config, work: str) -> dict[str, Any]:
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--child-write",
        kind,
        "--child-bytes",
        str(cfg.big_bytes),
        "--child-count",
        str(cfg.big_count),
        "--dir",
        work,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"child {kind} failed:\n{proc.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["beyond_tensors_mib"] = (result["peak"] - result["rss_after_alloc"]) / MiB
    # Without a reset the mark is a high-water mark over the whole life of the process: if
    # allocating the tensors set a higher one than the write reached, the write is hidden.
    result["peak_set_before_write"] = (
        not result["peak_reset"] and result["peak"] == result["peak_before_write"]
    )
    return result


def bench_memory(cfg: Config, work: str, tf: Any, rep: Report) -> None:
    size = fmt_size(cfg.big_bytes)
    log(f"[3] peak RSS while writing {size}, in child processes")
    what = f"peak RSS beyond tensors, {size} write"

    def note(result: dict[str, Any], who: str) -> str:
        return who + (" (peak hidden by allocation)" if result["peak_set_before_write"] else "")

    ours = run_child("dtckpt", cfg, work)
    rep.memory["dtckpt"] = ours
    rep.compare_memory(
        what, ours["beyond_tensors_mib"], TARGET_PEAK_MIB, note(ours, "dtckpt save_v2")
    )
    if tf is None:
        rep.compare_memory(what, None, None, "TF not available")
        return
    theirs = run_child("tf", cfg, work)
    rep.memory["tf"] = theirs
    rep.compare_memory(
        what,
        theirs["beyond_tensors_mib"],
        None,
        note(theirs, "TF Checkpoint.write, for comparison"),
    )


# --- 4. kernels -----------------------------------------------------------------------------


def bench_kernels(cfg: Config, rep: Report, repeats: int) -> None:
    k = dtckpt.kernels
    log(f"[4] kernels (backend: {k.backend()})")
    rng = np.random.default_rng(2)

    # (a) CRC-32C of one large buffer.
    buf = rng.integers(0, 256, size=cfg.crc_bytes, dtype=np.uint8)
    if k.crc32c_parallel(buf, workers=2) != crc32c.crc32c(buf):
        raise RuntimeError("crc32c_parallel disagrees with crc32c.crc32c")
    c_one = Variant("crc32c.crc32c (one call)", lambda: crc32c.crc32c(buf))
    c_par = Variant("kernels.crc32c_parallel(workers=2)", lambda: k.crc32c_parallel(buf, workers=2))
    interleaved([c_one, c_par], repeats)
    rep.section(
        f"CRC-32C of {fmt_size(buf.nbytes)}", [(c_one, buf.nbytes, ""), (c_par, buf.nbytes, "")]
    )
    rep.compare(
        f"CRC-32C {fmt_size(buf.nbytes)}: crc32c_parallel", c_par, c_one, "crc32c.crc32c", None
    )
    del buf

    # (b) cut the middle quarter block out of a [side, side] float32 array, with its CRC.
    side = cfg.box_side
    src = rng.random((side, side), dtype=np.float32)
    lo, hi = side // 4, 3 * side // 4
    block = np.empty((hi - lo, hi - lo), dtype=np.float32)
    block_u8 = block.reshape(-1).view(np.uint8)
    src_u8 = src.reshape(-1).view(np.uint8)

    def numpy_cut() -> int:
        np.copyto(block, src[lo:hi, lo:hi])
        return int(crc32c.crc32c(block))

    def kernel_cut() -> int:
        return k.copy_box_crc(
            src_u8, (side, side * 4), (lo, lo * 4), block_u8, (hi - lo, (hi - lo) * 4)
        )

    want = numpy_cut()
    block.fill(0)
    if kernel_cut() != want or not np.array_equal(block, src[lo:hi, lo:hi]):
        raise RuntimeError("copy_box_crc disagrees with NumPy + crc32c")
    b_np = Variant("NumPy slice copy + crc32c", numpy_cut)
    b_k = Variant("kernels.copy_box_crc", kernel_cut)
    interleaved([b_np, b_k], repeats)
    rep.section(
        f"cut {fmt_size(block.nbytes)} block from {fmt_size(src.nbytes)} + CRC",
        [(b_np, block.nbytes, ""), (b_k, block.nbytes, "")],
    )
    rep.compare(
        f"cut {fmt_size(block.nbytes)} + CRC: copy_box_crc", b_k, b_np, "NumPy copy + crc32c", None
    )
    del block, block_u8

    # (c) assemble the [side, side] tensor from 8 pieces: 4 row bands x 2 column halves.
    out = np.empty_like(src)
    out_u8 = out.reshape(-1).view(np.uint8)
    rows, cols = side // 4, side // 2
    pieces = []
    for r in range(4):
        for c in range(2):
            r0, c0 = r * rows, c * cols
            pieces.append((r0, c0, np.ascontiguousarray(src[r0 : r0 + rows, c0 : c0 + cols])))
    del src, src_u8

    def numpy_assemble() -> None:
        for r0, c0, p in pieces:
            out[r0 : r0 + rows, c0 : c0 + cols] = p

    def kernel_assemble() -> None:
        for r0, c0, p in pieces:
            k.copy_box(
                p.reshape(-1).view(np.uint8),
                (rows, cols * 4),
                (0, 0),
                out_u8,
                (side, side * 4),
                (r0, c0 * 4),
                (rows, cols * 4),
            )

    numpy_assemble()
    expected = out.copy()
    out.fill(0)
    kernel_assemble()
    if not np.array_equal(out, expected):
        raise RuntimeError("copy_box assembled a different tensor than NumPy")
    del expected
    a_np = Variant("NumPy slice assignment", numpy_assemble)
    a_k = Variant("kernels.copy_box", kernel_assemble)
    interleaved([a_np, a_k], repeats)
    rep.section(
        f"assemble {fmt_size(out.nbytes)} tensor from 8 slices",
        [(a_np, out.nbytes, ""), (a_k, out.nbytes, "")],
    )
    rep.compare(f"assemble {fmt_size(out.nbytes)}: copy_box", a_k, a_np, "NumPy slice assign", None)


# --- driver ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = base_parser(
        __doc__.split("\n\n")[0],
        "small, fast run (64 MiB, 1,000 small tensors) for smoke tests",
        FULL.repeats,
    )
    p.add_argument("--child-write", help=argparse.SUPPRESS)
    p.add_argument("--child-bytes", type=int, help=argparse.SUPPRESS)
    p.add_argument("--child-count", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.child_write:
        child_write(args.child_write, args.child_bytes, args.child_count, args.dir)
        return 0

    cfg = QUICK if args.quick else FULL
    repeats = repeats_from(p, args.repeats, cfg.repeats)
    started = time.perf_counter()
    tf, tf_version = import_tf()
    tf_note = tf_version if tf is not None else "not available"
    if tf is None:
        print(f"TF not available ({tf_version}); running the dtckpt rows only", flush=True)

    if args.dir:
        os.makedirs(args.dir, exist_ok=True)
    work = tempfile.mkdtemp(prefix="dtckpt-bench-", dir=args.dir)
    rep = Report()
    try:
        facts = machine_facts(work, REPO_ROOT, tf_version if tf is not None else None)
        bench_large(cfg, work, tf, rep, repeats)
        bench_small(cfg, work, tf, rep, repeats)
        bench_memory(cfg, work, tf, rep)
        bench_kernels(cfg, rep, repeats)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    wall = time.perf_counter() - started

    print(header("dtckpt bundle I/O benchmark", facts, cfg.label, repeats, tf_note))
    print()
    print("Timings (GB = 1e9 bytes)")
    print(rep.timing_table())
    print()
    print(
        "Ratios: throughput ours / theirs (> 1 means dtckpt is faster); results against the targets"
    )
    print(rep.target_table())
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
            asdict(cfg) | {"repeats": repeats},
            wall,
            **rep.as_json(),
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

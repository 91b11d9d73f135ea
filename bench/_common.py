"""Helpers shared by the benchmarks: interleaved timing, machine facts, memory, tables."""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

MiB = 1 << 20
GB = 1e9


# --- timing -------------------------------------------------------------------------------


@dataclass
class Variant:
    """One contestant of an interleaved race.

    ``run`` is timed; ``before`` (untimed) prepares each run, e.g. removes the files the
    previous write left; ``after`` (untimed) receives what ``run`` returned, to check or
    drop it.
    """

    name: str
    run: Callable[[], Any]
    before: Callable[[], None] | None = None
    after: Callable[[Any], None] | None = None
    times: list[float] = field(default_factory=list)

    @property
    def best(self) -> float:
        return min(self.times)


def interleaved(variants: Sequence[Variant], repeats: int) -> None:
    """Run A, B, C, A, B, C, ... ``repeats`` rounds; each variant keeps all its times.

    Interleaving spreads slow spells of a noisy machine over every variant instead of
    punishing whichever happened to run during one; the best time of each is then the
    fairest single figure.
    """
    for _ in range(repeats):
        for v in variants:
            if v.before is not None:
                v.before()
            gc.collect()
            start = time.perf_counter()
            result = v.run()
            elapsed = time.perf_counter() - start
            v.times.append(elapsed)
            if v.after is not None:
                v.after(result)
            del result


# --- memory -------------------------------------------------------------------------------


def current_rss() -> int:
    """Resident set size of this process now, in bytes (Linux ``/proc``; else the peak)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return peak_rss()


def _status_kib(field_name: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def ru_maxrss() -> int:
    """``getrusage(RUSAGE_SELF).ru_maxrss`` in bytes.

    On Linux this high-water mark survives ``exec``: a child started by a large parent
    starts with the parent's peak, so it is useless for measuring a child's own peak.
    """
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


def peak_rss() -> int:
    """Peak resident set size of this process's memory so far, in bytes.

    Linux's ``VmHWM`` (the mark of this address space only, and resettable with
    :func:`reset_peak_rss`) where there is one, else ``ru_maxrss``.
    """
    hwm = _status_kib("VmHWM")
    return hwm if hwm is not None else ru_maxrss()


def reset_peak_rss() -> bool:
    """Lower the peak mark of :func:`peak_rss` to the current RSS (Linux); report success."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return _status_kib("VmHWM") is not None


# --- machine facts ------------------------------------------------------------------------


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _filesystem(path: str) -> str:
    """``device fstype`` of the mount holding ``path`` (Linux), or ``unknown``."""
    best, found = "", "unknown"
    real = os.path.realpath(path)
    try:
        with open("/proc/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) < 3:
                    continue
                mount = parts[1]
                inside = real == mount or real.startswith(mount.rstrip("/") + "/")
                if inside and len(mount) >= len(best):
                    best, found = mount, f"{parts[2]} on {mount} ({parts[0]})"
    except OSError:
        pass
    return found


def _git_revision(root: str) -> str:
    try:
        rev = subprocess.run(
            ["git", "-C", root, "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return rev + (" + uncommitted changes" if dirty else "")


def machine_facts(work_dir: str, repo_root: str, tf_version: str | None) -> dict[str, Any]:
    import dtckpt
    import dtckpt.kernels

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "cpu_model": _cpu_model(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
        if hasattr(os, "sysconf")
        else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": _version("numpy"),
        "numba": _version("numba"),
        "crc32c": _version("crc32c"),
        "dtckpt": dtckpt.__version__,
        "dtckpt_revision": _git_revision(repo_root),
        "kernels_backend": dtckpt.kernels.backend(),
        "tensorflow": tf_version,
        "work_dir": work_dir,
        "filesystem": _filesystem(work_dir),
    }


# --- formatting ---------------------------------------------------------------------------


def growth_exponent(sizes: Sequence[int], times: Sequence[float]) -> float | None:
    """Least-squares slope of log(time) over log(size): 1 is linear, 2 quadratic."""
    points = [(math.log(n), math.log(t)) for n, t in zip(sizes, times, strict=True) if t > 0]
    if len(points) < 2:
        return None
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else None


def fmt_seconds(t: float) -> str:
    if t >= 1:
        return f"{t:.3f} s"
    if t >= 1e-3:
        return f"{t * 1e3:.1f} ms"
    return f"{t * 1e6:.0f} us"


def fmt_size(n: int) -> str:
    if n >= MiB and n % MiB == 0:
        return f"{n // MiB} MiB"
    return f"{n / MiB:.1f} MiB"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> str:
    """A plain-text table; columns whose index is in ``right`` are right-aligned."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        out = []
        for i, cell in enumerate(cells):
            out.append(cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]))
        return "  ".join(out).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


# --- command line and report header ----------------------------------------------------


def base_parser(description: str, quick_help: str, default_repeats: int) -> argparse.ArgumentParser:
    """The options every benchmark takes: --quick, --repeats, --json, --dir."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help=quick_help)
    p.add_argument(
        "--repeats",
        type=int,
        default=None,
        help=f"interleaved rounds per comparison (default: {default_repeats}, --quick: 3)",
    )
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    p.add_argument(
        "--dir",
        metavar="DIR",
        help="make the temporary directory under DIR (default: the system temp dir)",
    )
    return p


def repeats_from(parser: argparse.ArgumentParser, requested: int | None, default: int) -> int:
    repeats = requested if requested is not None else default
    if repeats < 1:
        parser.error("--repeats must be at least 1")
    return repeats


def header(
    title: str,
    facts: dict[str, Any],
    label: str,
    repeats: int,
    tf_note: str,
    machine_extra: str = "",
    tf_extra: str = "",
) -> str:
    """The block every benchmark prints first: what ran, on what, with which versions."""
    f = facts
    return "\n".join(
        [
            f"{title} ({label} run, best of {repeats} interleaved runs)",
            f"machine : {f['cpu_count']} CPUs ({f['cpus_usable']} usable), {f['cpu_model']}, "
            f"{f['memory_gib']} GiB RAM, {f['platform']}{machine_extra}",
            f"software: Python {f['python']}, NumPy {f['numpy']}, Numba {f['numba']}, "
            f"crc32c {f['crc32c']}, TensorFlow {tf_note}{tf_extra}",
            f"dtckpt  : {f['dtckpt']} ({f['dtckpt_revision']}), kernels backend: "
            f"{f['kernels_backend']}",
            f"files   : {f['work_dir']} ({f['filesystem']}); page cache warm, not dropped",
        ]
    )


def write_json(
    path: str, facts: dict[str, Any], config: dict[str, Any], wall: float, **results: Any
) -> None:
    """Save one run (``--json PATH``): machine facts, configuration, wall time and results."""
    out = {"machine": facts, "config": config, "wall_s": wall, **results}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")

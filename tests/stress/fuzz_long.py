"""The long fuzzing run over dtckpt's decoders (rules H-FZ-1, H-FZ-2, H-AL-1).

::

    python tests/stress/fuzz_long.py --target index --runs 1000000
    python tests/stress/fuzz_long.py --target all --runs 100000        # every target in turn
    DTCKPT_DISABLE_NUMBA=1 python tests/stress/fuzz_long.py --target all --runs 100000
    python tests/stress/fuzz_long.py --target archive --seconds 600 --runs 1000000000
    python tests/stress/fuzz_long.py --target mesh --minimize findings/mesh/ab12.bin

Each target runs in a child process under atheris (libFuzzer, coverage-guided; only the
Python code imported under ``atheris.instrument_imports`` is instrumented, so the Numba kernels
are checked by comparison with their NumPy twins inside the targets) or, when atheris cannot be
imported or ``--engine hypothesis`` is given, under hypothesis with the CI strategies.

A finding (an exception the target does not allow, a failed check, ``MemoryError`` under the
address-space cap, an input over the sampled allocation budget) is recorded once per signature
under ``--findings`` with its traceback and the run goes on; a hang (``--timeout`` seconds on
one input) ends the child. At the end the run prints executions, executions per second and
findings per target.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import logging
import os
import pathlib
import resource
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TARGET_NAMES = (
    "table index block entry wire bundle strings object_graph state slices ordered_code mesh layout"
    " bundle_gen graph_gen archive safetensors npz manager special"
).split()


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default="all", choices=["all", *TARGET_NAMES])
    parser.add_argument("--runs", type=int, default=100_000, help="executions per target")
    parser.add_argument(
        "--seconds", type=int, default=0, help="stop each target after this long (0: --runs)"
    )
    parser.add_argument("--engine", choices=["atheris", "hypothesis"], default=None)
    parser.add_argument("--timeout", type=int, default=20, help="seconds one input may take")
    parser.add_argument("--max-len", type=int, default=1 << 16, help="largest input, bytes")
    parser.add_argument("--memory-headroom-mb", type=int, default=1024)
    parser.add_argument("--sample-every", type=int, default=50, help="trace 1 input in N")
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "dtckpt-fuzz"))
    parser.add_argument("--findings", default=None, help="default: WORKDIR/findings")
    parser.add_argument("--minimize", default=None, help="shrink this input; keep its finding")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.findings = args.findings or os.path.join(args.workdir, "findings")
    return args


# --- findings ---------------------------------------------------------------------------


class Recorder:
    """Counts executions and keeps the first input of every finding signature."""

    def __init__(self, target: str, findings: str, stats_path: str) -> None:
        self.target = target
        self.directory = pathlib.Path(findings) / target
        self.stats_path = stats_path
        self.executions = 0
        self.errors = 0
        self.findings: dict[str, int] = {}
        self.peak_ratio = 0.0
        self.peak_bytes = 0
        self.sampled = 0
        self.started = time.monotonic()

    def finding(self, data: bytes, exc: BaseException) -> None:
        from tests.fuzz.known import known_finding, signature

        sig = signature(exc)
        if known_finding(self.target, exc) is not None:
            sig = "(known, fix pending) " + sig
        if sig not in self.findings:
            self.directory.mkdir(parents=True, exist_ok=True)
            name = hashlib.sha1(sig.encode()).hexdigest()[:12]
            (self.directory / f"{name}.bin").write_bytes(data)
            text = "".join(traceback.format_exception(exc))
            (self.directory / f"{name}.txt").write_text(f"{sig}\n\n{text}")
            print(f"[{self.target}] NEW FINDING {sig} -> {name}.bin", file=sys.stderr, flush=True)
        self.findings[sig] = self.findings.get(sig, 0) + 1

    def save(self) -> None:
        seconds = time.monotonic() - self.started
        stats = {
            "target": self.target,
            "executions": self.executions,
            "typed_errors": self.errors,
            "seconds": round(seconds, 1),
            "findings": self.findings,
            "sampled": self.sampled,
            "peak_traced_bytes": self.peak_bytes,
            "peak_over_allowance": round(self.peak_ratio, 4),
        }
        tmp = self.stats_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(stats, f)
        os.replace(tmp, self.stats_path)


def _one_input(recorder: Recorder, args: argparse.Namespace) -> Callable[[bytes], None]:
    from tests.fuzz.budget import OverBudget, TracedPeak, allowance
    from tests.fuzz.targets import TARGETS, run

    target = TARGETS[recorder.target]
    saved = [time.monotonic() + 2.0]

    def one(data: bytes) -> None:
        recorder.executions += 1
        try:
            if recorder.executions % args.sample_every == 0:
                size = target.real_size(data)  # generated files count at their real size
                with TracedPeak() as traced:
                    outcome = run(target, data)
                peak = traced.peak
                recorder.sampled += 1
                recorder.peak_bytes = max(recorder.peak_bytes, peak)
                recorder.peak_ratio = max(recorder.peak_ratio, peak / allowance(size))
                if peak > allowance(size):
                    raise OverBudget(f"peak {peak} bytes for a {size}-byte input")
            else:
                outcome = run(target, data)
            if outcome is not None:
                recorder.errors += 1
        except Exception as exc:  # noqa: BLE001 - every other exception is a finding
            recorder.finding(data, exc)
        # libFuzzer ends the process at -max_total_time without returning: save often.
        now = time.monotonic()
        if recorder.executions % 2000 == 0 or recorder.executions >= args.runs or now > saved[0]:
            recorder.save()
            saved[0] = now + 2.0

    return one


# --- the child: one target ----------------------------------------------------------------


def _cap_memory(headroom_mb: int) -> None:
    """Cap the address space at what the warm process uses plus the headroom (rule H-AL-1)."""
    with open("/proc/self/status") as f:
        fields = dict(line.split(":", 1) for line in f if ":" in line)
    vm_bytes = int(fields["VmSize"].split()[0]) * 1024
    limit = vm_bytes + (headroom_mb << 20)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _seed_dir(target: str, workdir: pathlib.Path) -> pathlib.Path:
    from tests.fuzz.seeds import seeds
    from tests.fuzz.strategies import corpus_files

    directory = workdir / "seeds" / target
    directory.mkdir(parents=True, exist_ok=True)
    for i, seed in enumerate(seeds(target)):
        (directory / f"seed-{i:03d}").write_bytes(seed)
    for path in corpus_files(target):
        (directory / path.name).write_bytes(path.read_bytes())
    return directory


def _child(args: argparse.Namespace, engine: str) -> None:
    logging.getLogger("dtckpt").setLevel(logging.ERROR)  # the manager target warns by design
    workdir = pathlib.Path(args.workdir)
    stats_path = str(workdir / f"stats-{args.target}.json")
    recorder = Recorder(args.target, args.findings, stats_path)
    if engine == "atheris":
        import atheris

        with atheris.instrument_imports(include=["dtckpt"]):
            import tests.fuzz.targets  # noqa: F401 - imports every dtckpt module it fuzzes

            for module in _LATE_IMPORTS:  # imported by targets only when they run
                importlib.import_module(module)
        one = _one_input(recorder, args)
        _warm(args.target, one)
        _cap_memory(args.memory_headroom_mb)
        recorder.executions = 0
        recorder.started = time.monotonic()
        corpus = workdir / "corpus" / args.target
        corpus.mkdir(parents=True, exist_ok=True)
        argv = [
            sys.argv[0],
            f"-runs={args.runs}",
            *([f"-max_total_time={args.seconds}"] if args.seconds else []),
            f"-timeout={args.timeout}",
            f"-max_len={args.max_len}",
            "-rss_limit_mb=0",
            f"-artifact_prefix={pathlib.Path(args.findings) / args.target}/",
            "-print_final_stats=1",
            str(corpus),
            str(_seed_dir(args.target, workdir)),
        ]
        (pathlib.Path(args.findings) / args.target).mkdir(parents=True, exist_ok=True)
        atheris.Setup(argv, one)
        atheris.Fuzz()
    else:
        _hypothesis_loop(args, recorder)
    recorder.save()


#: Modules the targets import inside their functions; atheris instruments only what is
#: imported under ``instrument_imports``, so they are imported there first.
_LATE_IMPORTS = (
    "dtckpt.archive.reader",
    "dtckpt.archive.unpacking",
    "dtckpt.archive.writer",
    "dtckpt.archive.source",
    "dtckpt.archive.members",
    "dtckpt.interop.safetensors_io",
    "dtckpt.interop.npz_read",
    "dtckpt.interop.convert",
    "dtckpt.checkpoint.manager",
    "dtckpt.checkpoint.reader",
    "dtckpt.checkpoint.state",
)


def _warm(target: str, one: Callable[[bytes], None]) -> None:
    """Run every seed once (Numba compiles or loads its kernels now, before the memory cap)."""
    from tests.fuzz.seeds import seeds

    for seed in seeds(target):
        one(seed)


def _hypothesis_loop(args: argparse.Namespace, recorder: Recorder) -> None:
    from hypothesis import HealthCheck, Phase, given, settings

    from tests.fuzz.strategies import inputs

    one = _one_input(recorder, args)
    _warm(args.target, one)
    _cap_memory(args.memory_headroom_mb)
    recorder.executions = 0
    recorder.started = time.monotonic()

    def on_alarm(signum: int, frame: Any) -> None:
        raise TimeoutError(f"one input took more than {args.timeout} s")

    signal.signal(signal.SIGALRM, on_alarm)
    stop_at = time.monotonic() + args.seconds if args.seconds else None

    @settings(
        max_examples=args.runs,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(inputs(args.target))
    def loop(data: bytes) -> None:
        if stop_at is not None and time.monotonic() > stop_at:
            return
        signal.alarm(args.timeout)
        try:
            one(data)
        finally:
            signal.alarm(0)

    loop()


# --- the parent: targets in turn ----------------------------------------------------------


def _engine(requested: str | None) -> str:
    if requested is not None:
        return requested
    try:
        import atheris  # noqa: F401
    except ImportError:
        return "hypothesis"
    return "atheris"


def _run_target(args: argparse.Namespace, target: str, engine: str) -> dict[str, Any]:
    workdir = pathlib.Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    stats_path = workdir / f"stats-{target}.json"
    stats_path.unlink(missing_ok=True)
    command = [sys.executable, __file__, "--child", "--target", target, "--engine", engine]
    command += ["--runs", str(args.runs), "--timeout", str(args.timeout)]
    command += ["--seconds", str(args.seconds)]
    command += ["--max-len", str(args.max_len), "--workdir", str(workdir)]
    command += ["--findings", args.findings, "--sample-every", str(args.sample_every)]
    command += ["--memory-headroom-mb", str(args.memory_headroom_mb)]
    log = workdir / f"log-{target}.txt"
    started = time.monotonic()
    with open(log, "w") as out:
        code = subprocess.call(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    stats: dict[str, Any] = (
        json.loads(stats_path.read_text()) if stats_path.exists() else {"target": target}
    )
    stats["wall_seconds"] = round(time.monotonic() - started, 1)
    stats["exit_code"] = code
    if code != 0:  # libFuzzer stops on a hang or a crash outside the Python callback
        stats.setdefault("findings", {})[f"child exited {code} (see {log})"] = 1
    return stats


def _report(all_stats: list[dict[str, Any]], engine: str) -> None:
    backend = "numpy" if os.environ.get("DTCKPT_DISABLE_NUMBA", "") not in ("", "0") else "numba"
    print(f"engine {engine}, kernels {backend}")
    header = f"{'target':<13} {'executions':>11} {'seconds':>8} {'exec/s':>8} {'typed':>9} "
    print(header + "findings  peak/allowance")
    total = 0
    for s in all_stats:
        runs = int(s.get("executions", 0))
        seconds = float(s.get("seconds", 0.0)) or 1e-9
        total += runs
        found = sum(s.get("findings", {}).values())
        print(
            f"{s['target']:<13} {runs:>11} {seconds:>8.1f} {runs / seconds:>8.0f} "
            f"{s.get('typed_errors', 0):>9} {found:>8}  {s.get('peak_over_allowance', 0):.4f}"
        )
        for sig, count in s.get("findings", {}).items():
            print(f"    {count:>8} x {sig}")
    print(f"total executions {total}")


def _minimize(args: argparse.Namespace) -> None:
    """Shrink an input while it keeps the same finding signature (chunk deletion)."""
    from tests.fuzz.known import signature
    from tests.fuzz.targets import TARGETS, run

    target = TARGETS[args.target]

    def sig(data: bytes) -> str | None:
        try:
            run(target, data)
        except Exception as exc:  # noqa: BLE001
            return signature(exc)
        return None

    data = pathlib.Path(args.minimize).read_bytes()
    wanted = sig(data)
    if wanted is None:
        sys.exit(f"{args.minimize}: no finding to keep")
    chunk = max(1, len(data) // 2)
    while chunk >= 1:
        pos = 0
        while pos < len(data):
            candidate = data[:pos] + data[pos + chunk :]
            if sig(candidate) == wanted:
                data = candidate
            else:
                pos += chunk
        chunk //= 2
    out = pathlib.Path(args.minimize + ".min")
    out.write_bytes(data)
    print(f"{wanted}: {len(data)} bytes -> {out}")


def main(argv: list[str]) -> None:
    args = _parse_args(argv)
    engine = _engine(args.engine)
    if args.minimize:
        _minimize(args)
    elif args.child:
        _child(args, engine)
    else:
        targets = TARGET_NAMES if args.target == "all" else [args.target]
        stats = []
        for target in targets:
            stats.append(_run_target(args, target, engine))
            _report(stats[-1:], engine)
        if len(stats) > 1:
            _report(stats, engine)


if __name__ == "__main__":
    main(sys.argv[1:])

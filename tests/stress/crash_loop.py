"""Kill saving processes with SIGKILL at random moments; check that nothing is ever lost.

::

    python tests/stress/crash_loop.py --kills 200            # 50 kills in each of the 4 modes
    python tests/stress/crash_loop.py --kills 40 --modes dtensor async --seed 7
    DTCKPT_DISABLE_NUMBA=1 python tests/stress/crash_loop.py --kills 200

For each mode of :mod:`tests.stress.crash_workloads` a child process resumes from the newest
checkpoint and saves in a loop, appending ``saved N`` to a log (fsynced) after each ``save()``
returns. The parent kills it at a random moment, then checks (rules S-CR-1, S-TP-2):

* ``latest_checkpoint`` names a checkpoint once any save has completed, and that checkpoint
  verifies (every checksum), restores with ``assert_consumed()``, and holds exactly the values
  of the save its name says;
* it is not older than the last completed save (for async saves, whose ``save()`` returns
  before the files are written, not older than the save before it), nor than the checkpoint
  named after the previous kill;
* temporaries found after a kill are gone once a later child has completed a save.

Then two processes save into one directory at the same time (rule S-LK-2), and every
checkpoint and the state file are checked. Then faults (``ENOSPC`` from ``os.replace``,
``os.fsync``, ``write``) are injected at every step of a save (:mod:`tests.stress.fault_sweep`).
The run ends with a table: the load held, faults injected, kills survived, and what was lost.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import dtckpt  # noqa: E402
from tests.stress.crash_workloads import (  # noqa: E402
    MODES,
    Workload,
    leftovers,
    number_of,
    orphan_data_files,
)
from tests.stress.fault_sweep import SweepResult, sweep  # noqa: E402

#: Seconds a child may take to start and restore before the run gives up on it.
START_LIMIT = 120.0


@dataclasses.dataclass
class KillStats:
    """What one mode's kill loop did and found."""

    mode: str
    kills: int = 0
    saves: int = 0
    steady_saves: int = 0  # saves after a child's first, and the seconds they took
    seconds_saving: float = 0.0
    bytes_per_save: int = 0
    leftovers_seen: int = 0
    leftovers_cleaned: int = 0
    lost: int = 0
    problems: list[str] = dataclasses.field(default_factory=list)

    @property
    def saves_per_second(self) -> float:
        return self.steady_saves / self.seconds_saving if self.seconds_saving else 0.0


# -- the child -------------------------------------------------------------------------------


def child_main(mode: str, directory: str, log: str, writer: int, saves: int) -> None:
    """Resume, then save ``saves`` times (0: until killed), logging each completed save."""
    workload = Workload(mode, directory, writer=writer)
    start = workload.resume()
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def record(line: str) -> None:
        os.write(fd, f"{line} {os.getpid()} {time.time():.6f}\n".encode())
        os.fsync(fd)

    record(f"ready {start}")
    done = 0
    while saves == 0 or done < saves:
        path = workload.save_next()
        record(f"saved {number_of(path)}")
        done += 1
    workload.sync()
    record(f"exit {workload.counter}")


def spawn(
    mode: str, directory: str, log: str, *, writer: int = 0, saves: int = 0
) -> subprocess.Popen[bytes]:
    """Start :func:`child_main` in a fresh interpreter."""
    command = [sys.executable, str(pathlib.Path(__file__).resolve()), "--child", mode]
    command += [directory, log, str(writer), str(saves)]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def read_log(log: str, pid: int) -> list[tuple[str, int, float]]:
    """``(event, number, time)`` lines that process ``pid`` wrote."""
    events: list[tuple[str, int, float]] = []
    try:
        text = pathlib.Path(log).read_text()
    except FileNotFoundError:
        return events
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 4 and int(parts[2]) == pid:
            events.append((parts[0], int(parts[1]), float(parts[3])))
    return events


# -- the kill loop ----------------------------------------------------------------------------


class KillLoop:
    """Kills children of one mode ``kills`` times in ``directory``; collects :class:`KillStats`."""

    def __init__(self, mode: str, base: str, kills: int, rng: random.Random) -> None:
        self.mode, self.kills, self.rng = mode, kills, rng
        self.directory = os.path.join(base, mode)
        self.log = os.path.join(base, f"{mode}.log")
        os.makedirs(self.directory, exist_ok=True)
        self.stats = KillStats(mode)
        self.returned = 0  # the newest save whose save() returned in some child
        self.latest = 0  # the number latest_checkpoint named after the previous kill
        self.pending_leftovers: set[str] = set()
        self.interval = 0.02  # mean seconds per save, learned from the log
        self.checker = Workload(mode, self.directory, writer=0)

    def run(self) -> KillStats:
        for _ in range(self.kills):
            self.one_kill()
        self.finish()
        return self.stats

    def one_kill(self) -> None:
        """Kill a child: while it starts (sometimes), else after 0 to 3 saves it logged
        and a random part of one more save's time; the first kill waits for a save."""
        child = spawn(self.mode, self.directory, self.log)
        first = self.stats.kills == 0
        if not first and self.rng.random() < 0.15:  # while it starts, restores or cleans
            time.sleep(self.rng.uniform(0.0, 0.3))
        else:
            self.wait_for(child, "ready", 1)
            # An async save is complete once the next one has returned: one more.
            extra = 1 if self.mode == "async" else 0
            self.wait_for(child, "saved", self.rng.randint(1 if first else 0, 3) + extra)
            time.sleep(self.rng.uniform(0.0, self.interval))
        child.send_signal(signal.SIGKILL)
        _, stderr = child.communicate()
        if child.returncode != -signal.SIGKILL:
            self.problem(f"child exited with {child.returncode}: {stderr.decode()[-2000:]}")
        self.stats.kills += 1
        self.account(child.pid)
        self.check_after_kill()
        self.prune()

    def wait_for(self, child: subprocess.Popen[bytes], event: str, count: int) -> None:
        """Until ``child`` logged ``event`` ``count`` times (or died, or took too long)."""
        deadline = time.monotonic() + START_LIMIT
        while count and time.monotonic() < deadline and child.poll() is None:
            if sum(e == event for e, _, _ in read_log(self.log, child.pid)) >= count:
                return
            time.sleep(0.002)

    def account(self, pid: int) -> None:
        events = read_log(self.log, pid)
        saved = [(n, t) for event, n, t in events if event == "saved"]
        ready = [t for event, _, t in events if event == "ready"]
        exited = any(event == "exit" for event, _, _ in events)
        # An async save() returns before its files are written: it is known complete
        # once the next save() returned (it waits for it), or the child exited.
        complete = len(saved) - 1 if self.mode == "async" and not exited and saved else len(saved)
        self.stats.saves += complete
        if len(saved) > 1:
            self.stats.steady_saves += len(saved) - 1
            self.stats.seconds_saving += saved[-1][1] - saved[0][1]
        if ready and saved:
            self.interval = (saved[-1][1] - ready[0]) / len(saved)
        if saved:
            self.returned = max(self.returned, max(n for n, _ in saved))
        if complete:
            # Anything left by earlier kills must be gone once a save completed.
            still = self.pending_leftovers & leftovers(self.directory)
            for name in sorted(still):
                self.problem(f"leftover {name} survived a completed save")
            self.stats.leftovers_cleaned += len(self.pending_leftovers - still)
            self.pending_leftovers = set()

    def check_after_kill(self) -> None:
        found = leftovers(self.directory)
        self.stats.leftovers_seen += len(found - self.pending_leftovers)
        self.pending_leftovers |= found
        # An async save() returns before its files are written; the one before it is done.
        required = self.returned - 1 if self.mode == "async" else self.returned
        required = max(required, self.latest)
        latest = dtckpt.latest_checkpoint(self.directory)
        if latest is None:
            if required:
                self.lost(f"no latest checkpoint; save {required} had completed")
            return
        try:
            _, number = self.checker.check(latest)
        except Exception as exc:  # any failure to verify or restore is a finding
            self.lost(f"{latest} does not restore: {type(exc).__name__}: {exc}")
            return
        if number < required:
            self.lost(f"latest is ckpt-{number}; save {required} had completed")
        self.latest = max(self.latest, number)
        if not self.stats.bytes_per_save:
            self.stats.bytes_per_save = checkpoint_bytes(latest)

    def prune(self) -> None:
        """Between kills, keep plain saves from filling the disk: drop old checkpoints."""
        latest = dtckpt.latest_checkpoint(self.directory)
        if self.mode == "manager" or latest is None:
            return
        for name in os.listdir(self.directory):
            match = re.fullmatch(r"ckpt-(\d+)\.(?:index|data-\d{5}-of-\d{5})", name)
            if match and int(match.group(1)) < number_of(latest) - 2:
                os.remove(os.path.join(self.directory, name))

    def finish(self) -> None:
        """One more child that saves once and exits: it must clean every leftover."""
        child = spawn(self.mode, self.directory, self.log, saves=1)
        _, stderr = child.communicate()
        if child.returncode != 0:
            self.problem(f"final child failed: {stderr.decode()[-2000:]}")
            return
        self.account(child.pid)
        if leftovers(self.directory):
            self.problem(f"temporaries after a clean save: {sorted(leftovers(self.directory))}")
        latest = dtckpt.latest_checkpoint(self.directory)
        if latest is None or self.checker.check(latest)[1] != self.returned:
            self.lost(f"final save {self.returned} is not the latest ({latest})")

    def lost(self, message: str) -> None:
        self.stats.lost += 1
        self.problem(message)

    def problem(self, message: str) -> None:
        self.stats.problems.append(f"{self.mode}: {message}")


def checkpoint_bytes(prefix: str) -> int:
    directory, base = os.path.split(prefix)
    return sum(
        os.path.getsize(os.path.join(directory, name))
        for name in os.listdir(directory)
        if name.startswith(base + ".")
    )


# -- two writers at once ----------------------------------------------------------------------


def concurrent_writers(mode: str, base: str, saves: int) -> list[str]:
    """Two processes save ``saves`` times each into one directory; problems found."""
    directory = os.path.join(base, f"concurrent-{mode}")
    log = os.path.join(base, f"concurrent-{mode}.log")
    os.makedirs(directory, exist_ok=True)
    children = [spawn(mode, directory, log, writer=w, saves=saves) for w in (1, 2)]
    problems = []
    for child in children:
        _, stderr = child.communicate()
        if child.returncode != 0:
            problems.append(f"writer exited with {child.returncode}: {stderr.decode()[-2000:]}")
    checker = Workload(mode, directory)
    writers = set()
    for name in sorted(os.listdir(directory)):
        if name.endswith(".index"):
            prefix = os.path.join(directory, name[: -len(".index")])
            try:
                writers.add(checker.check(prefix)[0])
            except Exception as exc:
                problems.append(f"{prefix}: {type(exc).__name__}: {exc}")
    latest = dtckpt.latest_checkpoint(directory)
    if latest is None:
        problems.append("no latest checkpoint after both writers finished")
    else:
        try:
            checker.check(latest)
        except Exception as exc:
            problems.append(f"latest {latest}: {type(exc).__name__}: {exc}")
    if leftovers(directory):
        problems.append(f"temporaries left: {sorted(leftovers(directory))}")
    if orphan_data_files(directory):
        problems.append(f"data files without an index: {sorted(orphan_data_files(directory))}")
    return problems


# -- the command line -------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=200, help="kills in all, split over modes")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--concurrent-saves", type=int, default=40)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--workdir", default=None, help="default: a new temporary directory")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        mode, directory, log, writer, saves = args.child
        child_main(mode, directory, log, int(writer), int(saves))
        return 0
    seed = args.seed if args.seed is not None else random.randrange(1 << 32)
    rng = random.Random(seed)
    base = args.workdir or tempfile.mkdtemp(prefix="dtckpt-crash-")
    started = time.monotonic()
    per_mode = [args.kills // len(args.modes)] * len(args.modes)
    for i in range(args.kills % len(args.modes)):
        per_mode[i] += 1
    results = [
        KillLoop(mode, base, kills, rng).run()
        for mode, kills in zip(args.modes, per_mode, strict=True)
    ]
    concurrent = {m: concurrent_writers(m, base, args.concurrent_saves) for m in MODES}
    faults = sweep(os.path.join(base, "faults"))
    report(seed, results, concurrent, faults, time.monotonic() - started)
    if not args.keep and not args.workdir:
        shutil.rmtree(base, ignore_errors=True)
    problems = [p for r in results for p in r.problems]
    problems += [p for ps in concurrent.values() for p in ps] + faults.problems
    return 1 if problems else 0


def report(
    seed: int,
    results: list[KillStats],
    concurrent: dict[str, list[str]],
    faults: SweepResult,
    seconds: float,
) -> None:
    print(
        f"crash loop: seed {seed}, {seconds:.0f} s, DTCKPT_DISABLE_NUMBA="
        f"{os.environ.get('DTCKPT_DISABLE_NUMBA', '')!r}"
    )
    print(
        "| mode | kills survived | saves completed | saves/s while saving | bytes per checkpoint "
        "| temporaries left by kills | cleaned by the next save | lost |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r.mode} | {r.kills} | {r.saves} | {r.saves_per_second:.0f} | {r.bytes_per_save} "
            f"| {r.leftovers_seen} | {r.leftovers_cleaned} | {r.lost} |"
        )
    for mode, problems in concurrent.items():
        print(f"two writers, {mode}: {'ok' if not problems else problems}")
    print(
        f"faults injected: {faults.injected} ({faults.describe()}); "
        f"previous checkpoint lost: {faults.lost}"
    )
    for r in results:
        for problem in r.problems:
            print("PROBLEM", problem)
    for problem in faults.problems:
        print("PROBLEM", problem)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Make each step of a save fail in turn; check what the failure leaves (rules S-AT-1, S-CR-1).

For a mode of :mod:`tests.stress.crash_workloads` and one operation (``os.replace``,
``os.fsync`` or a file ``write``), a save is first run with the calls only counted. Then, for
every ``k`` up to that count, a save runs with the ``k``-th call raising ``OSError(ENOSPC)``,
and afterwards:

* the save raised that error (from ``sync()`` for an async save);
* the state file still names a complete checkpoint: the previous one, or the new one when
  the failure came after the state file was replaced; it verifies and restores;
* the previous checkpoint still verifies and restores;
* a following save succeeds, becomes the latest, and leaves no temporaries and no data file
  without its index.
"""

from __future__ import annotations

import dataclasses
import errno
import os

import dtckpt
from tests.stress.crash_workloads import (
    FAULT_OPS,
    MODES,
    Workload,
    inject,
    leftovers,
    number_of,
    orphan_data_files,
)

__all__ = ["SweepResult", "count_calls", "fail_each_call", "sweep"]


@dataclasses.dataclass
class SweepResult:
    injected: int = 0
    lost: int = 0
    per_case: dict[str, int] = dataclasses.field(default_factory=dict)
    problems: list[str] = dataclasses.field(default_factory=list)

    def describe(self) -> str:
        return ", ".join(f"{case} {n}" for case, n in self.per_case.items())


def count_calls(workload: Workload, op: str) -> int:
    """How many calls of ``op`` one save of ``workload`` makes."""
    with inject(op) as counter:
        workload.save_next()
        workload.sync()
    return counter.calls


def fail_each_call(mode: str, op: str, directory: str, result: SweepResult) -> None:
    """Fail call 1, 2, ... of ``op`` in saves of ``mode`` in ``directory``; record findings."""
    workload = Workload(mode, directory, rows=32)
    for _ in range(2):
        workload.save_next()
    workload.sync()
    calls = count_calls(workload, op)
    case = f"{mode}/{op}"
    result.per_case[case] = calls
    for k in range(1, calls + 1):
        result.injected += 1
        for problem in _fail_once(workload, op, k):
            result.problems.append(f"{case} call {k}: {problem}")
            if "previous" in problem or "latest" in problem:
                result.lost += 1


def _fail_once(workload: Workload, op: str, k: int) -> list[str]:
    directory = workload.directory
    previous = dtckpt.latest_checkpoint(directory)
    assert previous is not None
    problems: list[str] = []
    raised = None
    attempted = workload.counter + 1
    with inject(op, k) as counter:
        try:
            workload.save_next()
            workload.sync()
        except OSError as exc:
            raised = exc
    if not counter.fired:
        return [f"only {counter.calls} calls this time"]
    if raised is None or raised.errno != errno.ENOSPC:
        problems.append(f"the save did not raise the injected error ({raised!r})")
    latest = dtckpt.latest_checkpoint(directory)
    if latest is None:
        problems.append("no latest checkpoint")
    else:
        problems += _checked(workload, latest, "latest")
        if number_of(latest) not in (number_of(previous), attempted):
            problems.append(f"latest is {latest}")
    problems += _checked(workload, previous, "previous")
    path = workload.save_next()
    workload.sync()
    if dtckpt.latest_checkpoint(directory) != path:
        problems.append(f"the next save {path} is not the latest")
    problems += _checked(workload, path, "next")
    if leftovers(directory):
        problems.append(f"temporaries after the next save: {sorted(leftovers(directory))}")
    if orphan_data_files(directory):
        problems.append(f"data files without index: {sorted(orphan_data_files(directory))}")
    return problems


def _checked(workload: Workload, prefix: str, what: str) -> list[str]:
    try:
        workload.check(prefix)
    except Exception as exc:  # any failure to verify or restore is a finding
        return [f"{what} checkpoint {prefix} is damaged: {type(exc).__name__}: {exc}"]
    return []


def sweep(
    base: str, modes: tuple[str, ...] = MODES, ops: tuple[str, ...] = FAULT_OPS
) -> SweepResult:
    """Every mode and operation, each in its own directory under ``base``."""
    result = SweepResult()
    for mode in modes:
        for op in ops:
            fail_each_call(mode, op, os.path.join(base, f"{mode}-{op}"), result)
    return result

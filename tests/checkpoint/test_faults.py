"""An ENOSPC at every step of every kind of save leaves the previous checkpoint whole.

Rules S-AT-1, S-ST-1, S-MG-1, S-CR-1. For each kind of save and each of ``os.replace``,
``os.fsync`` and file ``write``, the k-th call fails, for every k a save makes; the checks after
each failure are those of :mod:`tests.stress.fault_sweep`.
"""

from __future__ import annotations

import pathlib

import pytest

from tests.stress.crash_workloads import FAULT_OPS, MODES
from tests.stress.fault_sweep import SweepResult, fail_each_call


@pytest.mark.parametrize("op", FAULT_OPS)
@pytest.mark.parametrize("mode", MODES)
def test_a_failure_at_any_call_loses_nothing(mode: str, op: str, tmp_path: pathlib.Path) -> None:
    result = SweepResult()
    fail_each_call(mode, op, str(tmp_path), result)
    assert result.injected >= 3  # every save renames, fsyncs and writes several files
    assert result.problems == []

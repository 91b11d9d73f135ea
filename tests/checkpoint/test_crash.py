"""Saving processes killed with SIGKILL at random moments lose nothing (rules S-CR-1, S-LK-2).

A short version of ``tests/stress/crash_loop.py``: five kills for each kind of save, each
followed by the checks of :class:`tests.stress.crash_loop.KillLoop` (the newest checkpoint
verifies, restores with ``assert_consumed()``, holds its own values and is not older than the
last completed save; leftovers are cleaned by the next save), then two processes saving into
one directory at once.
"""

from __future__ import annotations

import pathlib
import random

import pytest

from tests.stress.crash_loop import KillLoop, concurrent_writers
from tests.stress.crash_workloads import MODES

KILLS_PER_MODE = 5


@pytest.mark.parametrize("mode", MODES)
def test_sigkill_at_random_moments(mode: str, tmp_path: pathlib.Path) -> None:
    seed = random.randrange(1 << 32)
    stats = KillLoop(mode, str(tmp_path), KILLS_PER_MODE, random.Random(seed)).run()
    assert stats.problems == [], f"seed {seed}"
    assert stats.kills == KILLS_PER_MODE and stats.lost == 0
    assert stats.saves > 1, f"seed {seed}: no save completed before a kill"  # 1: the last


@pytest.mark.parametrize("mode", MODES)
def test_two_processes_saving_into_one_directory(mode: str, tmp_path: pathlib.Path) -> None:
    assert concurrent_writers(mode, str(tmp_path), saves=12) == []

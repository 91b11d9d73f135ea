"""What the memory-budget tests share: the sizes and the traced peak of a call."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from typing import Any

MiB = 1 << 20
GiB = 1 << 30
BUDGET = 64 * MiB
ROWS, COLS = 16384, 16384  # float32: 1 GiB


def traced_peak(call: Callable[[], Any]) -> int:
    """The peak growth of traced memory while ``call`` runs (NumPy reports its arrays)."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        call()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()

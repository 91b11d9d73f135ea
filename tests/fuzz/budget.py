"""The allocation budget of rule H-AL-1, and how the fuzz harnesses measure it.

Decoding ``n`` bytes of hostile input may hold at most ``BASE + PER_BYTE * n`` bytes of memory
at its peak. :class:`TracedPeak` measures a call with ``tracemalloc``, which sees every Python
object and every NumPy buffer (NumPy reports its allocations to it), but not the arrays that
Numba's compiled code allocates: those are bounded by the NumPy twins' (which run on the same
inputs) and by the long run's cap on the address space (``RLIMIT_AS``), under which one huge
allocation fails at once with ``MemoryError`` instead of swapping.
"""

from __future__ import annotations

import tracemalloc
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.fuzz.targets import Target

__all__ = ["BASE", "PER_BYTE", "allowance", "TracedPeak", "OverBudget", "check_input"]

#: Rule H-AL-1: fixed part of the budget. It pays for prefix-compressed keys (at most 64 MiB
#: plus 16 bytes per index byte, rule H-BD-5) held up to three times while a block is decoded.
BASE = 256 << 20
#: Rule H-AL-1: bytes per input byte. A decoded index costs 50 to 110 bytes of Python objects
#: per index byte (measured on TF-shaped indexes of 1e3..1e5 entries); the rest is margin.
PER_BYTE = 256


class OverBudget(AssertionError):
    """A call held more memory than rule H-AL-1 allows for its input."""


def allowance(nbytes: int) -> int:
    return BASE + PER_BYTE * nbytes


class TracedPeak:
    """``with TracedPeak() as t: ...`` leaves in ``t.peak`` the most bytes held above the
    starting point while the block ran (exceptions pass through)."""

    def __init__(self) -> None:
        self.peak = 0
        self._started = False
        self._base = 0

    def __enter__(self) -> TracedPeak:
        self._started = not tracemalloc.is_tracing()
        if self._started:
            tracemalloc.start()
        self._base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        return self

    def __exit__(self, *exc: object) -> None:
        self.peak = tracemalloc.get_traced_memory()[1] - self._base
        if self._started:
            tracemalloc.stop()


def check_input(target: Target, data: bytes) -> None:
    """Run ``target`` on ``data``: fail on a finding not listed in ``known.py``, or when the
    run held more memory than :func:`allowance` grants ``data``."""
    from tests.fuzz.known import known_finding
    from tests.fuzz.targets import run

    with TracedPeak() as traced:
        try:
            run(target, data)
        except Exception as exc:
            if known_finding(target.name, exc) is None:
                raise
    size = target.real_size(data)
    if traced.peak > allowance(size):
        raise OverBudget(f"{traced.peak} bytes held for a {size}-byte input")

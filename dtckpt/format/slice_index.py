"""The stored slices of one partitioned tensor, indexed for box lookups (rules F-RD-5, F-RD-6).

A resharding restore asks for one box per target block, and a tensor saved
from N devices has up to N stored slices: looking each request up by scanning
every slice would cost requests x slices. The index answers

* "is this exact box stored?" with a dict (rule F-RD-5), and
* "which stored boxes overlap this box?" by division when the slices form a
  regular grid (every slice of the same extent along each dimension, starting
  at a multiple of it), as every DTensor checkpoint's slices do; other sets of
  slices, which only hand-made checkpoints have, are scanned.

Both cost the size of the answer for DTensor checkpoints.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Generic, TypeVar

from .slices import intersect

__all__ = ["SliceIndex"]

Box = tuple[tuple[int, int], ...]
_T = TypeVar("_T")


class SliceIndex(Generic[_T]):
    """``SliceIndex([(box, payload), ...])``: stored boxes with what to read for each."""

    def __init__(self, items: list[tuple[Box, _T]]) -> None:
        self.items = items
        self._exact: dict[Box, tuple[Box, _T]] = {}
        for item in items:
            self._exact.setdefault(item[0], item)
        self._extent = _grid_extent(items)
        self._cells: dict[tuple[int, ...], tuple[Box, _T]] = {}
        if self._extent is not None:
            for item in items:
                cell = tuple(s // n for (s, _), n in zip(item[0], self._extent, strict=True))
                self._cells[cell] = item

    def exact(self, box: Box) -> tuple[Box, _T] | None:
        """The stored slice that is exactly ``box``, if any."""
        return self._exact.get(box)

    def overlapping(self, box: Box) -> list[tuple[Box, _T, Box]]:
        """Each stored slice overlapping ``box``, with the overlap."""
        if self._extent is None:
            candidates: list[tuple[Box, _T]] = self.items
        else:
            ranges = []
            for (start, length), n in zip(box, self._extent, strict=True):
                if length <= 0:
                    return []
                ranges.append(range(start // n, (start + length - 1) // n + 1))
            candidates = [
                self._cells[cell] for cell in itertools.product(*ranges) if cell in self._cells
            ]
        out = []
        for stored, payload in candidates:
            overlap = intersect(stored, box)
            if overlap is not None:
                out.append((stored, payload, overlap))
        return out


def _grid_extent(items: Sequence[tuple[Box, object]]) -> tuple[int, ...] | None:
    """The common extent of the slices if they lie on one regular grid, else ``None``."""
    if not items:
        return None
    extent = tuple(n for _, n in items[0][0])
    if any(n <= 0 for n in extent):
        return None
    cells = set()
    for box, _ in items:
        if tuple(n for _, n in box) != extent:
            return None
        starts = [s for s, _ in box]
        if any(s % n for s, n in zip(starts, extent, strict=True)):
            return None
        cells.add(tuple(s // n for s, n in zip(starts, extent, strict=True)))
    # Two slices in one cell would overlap: leave such sets to the scan, whose
    # tiling check reports them.
    return extent if len(cells) == len(items) else None

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
    """``SliceIndex([(box, payload), ...])``: stored boxes (all of one rank, resolved against
    one shape) with what to read for each."""

    def __init__(self, items: list[tuple[Box, _T]]) -> None:
        self.items = items
        self._exact: dict[Box, tuple[Box, _T]] = {}
        for item in items:
            self._exact.setdefault(item[0], item)
        self._cells = _grid_cells(items)
        self._extent = None if self._cells is None else tuple(n for _, n in items[0][0])

    @property
    def disjoint(self) -> bool:
        """Whether no two stored slices can overlap: true of slices on one regular grid,
        each in a cell of its own."""
        return self._cells is not None

    def exact(self, box: Box) -> tuple[Box, _T] | None:
        """The stored slice that is exactly ``box``, if any."""
        return self._exact.get(box)

    def overlapping(self, box: Box) -> list[tuple[Box, _T, Box]]:
        """Each stored slice overlapping ``box``, with the overlap."""
        cells, extent = self._cells, self._extent
        if cells is None or extent is None:
            candidates: list[tuple[Box, _T]] = self.items
        else:
            ranges = []
            for (start, length), n in zip(box, extent, strict=True):
                if length <= 0:
                    return []
                ranges.append(range(start // n, (start + length - 1) // n + 1))
            candidates = [cells[cell] for cell in itertools.product(*ranges) if cell in cells]
        out = []
        for stored, payload in candidates:
            overlap = intersect(stored, box)
            if overlap is not None:
                out.append((stored, payload, overlap))
        return out


def _grid_cells(items: Sequence[tuple[Box, _T]]) -> dict[tuple[int, ...], tuple[Box, _T]] | None:
    """Each slice by its cell of the grid, if the slices lie on one regular grid (one common
    extent, every start a multiple of it, no two in one cell), else ``None``."""
    if not items:
        return None
    first = items[0][0]
    extent = tuple(n for _, n in first)
    if any(n <= 0 for n in extent):
        return None
    cells: dict[tuple[int, ...], tuple[Box, _T]] = {}
    if len(extent) == 1:  # the common shapes get a loop without the general zip
        (n,) = extent
        for item in items:
            ((start, length),) = item[0]
            if length != n or start % n:
                return None
            cells[(start // n,)] = item
    elif len(extent) == 2:
        n0, n1 = extent
        for item in items:
            (s0, l0), (s1, l1) = item[0]
            if l0 != n0 or l1 != n1 or s0 % n0 or s1 % n1:
                return None
            cells[(s0 // n0, s1 // n1)] = item
    else:
        for item in items:
            cell = []
            for (start, length), n in zip(item[0], extent, strict=True):
                if length != n or start % n:
                    return None
                cell.append(start // n)
            cells[tuple(cell)] = item
    # Two slices in one cell would overlap: leave such sets to the scan, whose
    # tiling check reports them.
    return cells if len(cells) == len(items) else None

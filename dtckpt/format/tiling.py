"""Whether boxes cover a region exactly once, in time linear in the number of boxes (rule F-SL-7).

A box is ``((start, length), ...)``, one pair per dimension. Write ``1_B`` for the
function that is 1 on the elements of box ``B`` and 0 elsewhere; the boxes tile the
region ``R`` exactly when ``sum(1_B) == 1_R``. Apply the *mixed difference*
``D = Δ_1 Δ_2 ... Δ_d`` (``Δ_k f(x) = f(x) - f(x - e_k)``) to both sides. ``D`` turns
a box into signed points at its corners::

    D 1_B (p) = prod_k ( +1 if p_k == start_k, -1 if p_k == start_k + length_k, else 0 )

      dim 1 ->    start          end
    dim 0   start  +1 ----------- -1        a 2-D box: four signed corners
      |            |               |
      v     end    -1 ----------- +1

and ``D`` loses nothing (a function that is 0 far away is the running sum of its
mixed difference), so the boxes tile ``R`` exactly if and only if their signed
corners add up to ``R``'s. Summing them in a dict costs ``2**r`` updates a box,
``r`` being the number of dimensions that some box does not span whole: linear in
the boxes for the one or two partitioned dimensions real checkpoints have, exact
on every input, with no pairwise comparison. When ``boxes * 2**r`` would be large
(only a forged index has many boxes cut in many dimensions), the boxes are counted
on the grid of their own boundaries instead, one slab at a time: work bounded by
the region's element count, which the slices' own bytes bound.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

import numpy as np

__all__ = ["box_volume", "tiling_problem", "CORNER_BUDGET"]

Box = tuple[tuple[int, int], ...]

#: Corner updates allowed before the grid count takes over.
CORNER_BUDGET = 1 << 22


def box_volume(box: Sequence[tuple[int, int]]) -> int:
    """The number of elements of a concrete box ``((start, length), ...)``."""
    n = 1
    for _, length in box:
        n *= length
    return n


def tiling_problem(region: Sequence[tuple[int, int]], boxes: Sequence[Box]) -> str | None:
    """``None`` if ``boxes`` cover ``region`` exactly once, else what is wrong.

    ``region`` is itself a box (a whole tensor is ``((0, n0), (0, n1), ...)``); boxes
    are expected inside it. The answer is exact whatever the boxes.
    """
    region = tuple((int(s), int(n)) for s, n in region)
    numel = box_volume(region)
    live = [b for b in boxes if box_volume(b) > 0]
    volume = sum(box_volume(b) for b in live)
    if volume > numel:
        return f"stored slices overlap: they hold {volume} elements, the tensor {numel}"
    if volume < numel:
        return f"stored slices hold {volume} of the tensor's {numel} elements"
    if numel == 0:
        return None
    # Equal volumes: an overlap is now the same as a gap. Dimensions every box spans
    # like the region play no part.
    cut = [k for k in range(len(region)) if any(b[k] != region[k] for b in live)]
    if not cut:  # every box is the whole region
        exact = len(live) == 1
    elif len(live) << len(cut) <= CORNER_BUDGET:
        exact = _corners_match(region, live, cut)
    else:
        exact = _grid_count_matches(region, live, cut)
    if exact:
        return None
    return (
        "stored slices overlap: their volumes add up to the tensor's "
        f"{numel} elements, so some element is stored twice and another not at all"
    )


def _signed_corners(box: Box, cut: list[int]) -> Iterator[tuple[tuple[int, int], ...]]:
    return itertools.product(*(((box[k][0], 1), (box[k][0] + box[k][1], -1)) for k in cut))


def _corners_match(region: Box, boxes: list[Box], cut: list[int]) -> bool:
    total: dict[tuple[int, ...], int] = {}
    for box in [region, *boxes]:
        region_sign = -1 if box is region else 1  # the region's corners are subtracted
        for corner in _signed_corners(box, cut):
            point = tuple(p for p, _ in corner)
            sign = region_sign
            for _, s in corner:
                sign *= s
            value = total.get(point, 0) + sign
            if value:
                total[point] = value
            else:
                total.pop(point, None)
    return not total


def _grid_count_matches(region: Box, boxes: list[Box], cut: list[int]) -> bool:
    """Count coverage on the grid the boxes' boundaries make, one slab of the first cut
    dimension at a time (a slab's cells never exceed the region's elements)."""
    edges = []
    for k in cut:
        start, length = region[k]
        points = {start, start + length}
        for box in boxes:
            points.add(box[k][0])
            points.add(box[k][0] + box[k][1])
        edges.append(np.array(sorted(points), dtype=np.int64))
    # Each box as index ranges on the grid.
    spans = [
        [
            (int(np.searchsorted(e, box[k][0])), int(np.searchsorted(e, box[k][0] + box[k][1])))
            for k, e in zip(cut, edges, strict=True)
        ]
        for box in boxes
    ]
    first, rest = edges[0], edges[1:]
    cross = tuple(len(e) - 1 for e in rest)
    by_start: dict[int, list[int]] = {}
    for i, span in enumerate(spans):
        by_start.setdefault(span[0][0], []).append(i)
    active: list[int] = []
    for slab in range(len(first) - 1):
        active = [i for i in active if spans[i][0][1] > slab] + by_start.get(slab, [])
        counts = np.zeros(cross, dtype=np.uint8)
        for i in active:
            index = tuple(slice(lo, hi) for lo, hi in spans[i][1:])
            counts[index] += 1
            if counts[index].max(initial=0) > 1:
                return False
        if not counts.all():
            return False
    return True

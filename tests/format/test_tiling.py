"""The exact tiling check (rule F-SL-7) against a brute-force count of every element."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dtckpt.format import tiling
from dtckpt.format.tiling import tiling_problem

Box = tuple[tuple[int, int], ...]


def _counted(shape: tuple[int, ...], boxes: list[Box]) -> bool:
    counts = np.zeros(shape, dtype=np.int64)
    for box in boxes:
        counts[tuple(slice(s, s + n) for s, n in box)] += 1
    return bool((counts == 1).all())


@st.composite
def _cases(draw: st.DrawFn) -> tuple[tuple[int, ...], list[Box]]:
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=3)))
    if draw(st.booleans()):  # a real tiling: a grid of cuts, maybe with pieces dropped/doubled
        cuts = [sorted({0, d, *draw(st.lists(st.integers(0, d), max_size=3))}) for d in shape]
        boxes = [
            tuple((a, b - a) for a, b in cell)
            for cell in itertools.product(*(list(zip(c, c[1:])) for c in cuts))
        ]
        if boxes and draw(st.booleans()):
            boxes.pop(draw(st.integers(0, len(boxes) - 1)))
        if boxes and draw(st.booleans()):
            boxes.append(boxes[draw(st.integers(0, len(boxes) - 1))])
        return shape, boxes
    boxes = []
    for _ in range(draw(st.integers(0, 6))):
        box = []
        for d in shape:
            s = draw(st.integers(0, d))
            box.append((s, draw(st.integers(0, d - s))))
        boxes.append(tuple(box))
    return shape, boxes


@settings(max_examples=400, deadline=None)
@given(_cases())
def test_agrees_with_counting(case: tuple[tuple[int, ...], list[Box]]) -> None:
    shape, boxes = case
    region = tuple((0, d) for d in shape)
    assert (tiling_problem(region, boxes) is None) == _counted(shape, boxes)


@settings(max_examples=200, deadline=None)
@given(_cases())
def test_grid_count_agrees_with_counting(case: tuple[tuple[int, ...], list[Box]]) -> None:
    shape, boxes = case
    saved = tiling.CORNER_BUDGET
    tiling.CORNER_BUDGET = 0  # every equal-volume case takes the grid path
    try:
        region = tuple((0, d) for d in shape)
        assert (tiling_problem(region, boxes) is None) == _counted(shape, boxes)
    finally:
        tiling.CORNER_BUDGET = saved


def test_offset_region_and_messages() -> None:
    region = ((10, 4), (0, 2))
    assert tiling_problem(region, [((10, 2), (0, 2)), ((12, 2), (0, 2))]) is None
    assert "hold 4 of the tensor's 8" in (tiling_problem(region, [((10, 2), (0, 2))]) or "")
    doubled = [((10, 2), (0, 2)), ((10, 2), (0, 2)), ((12, 2), (0, 2))]
    assert "overlap" in (tiling_problem(region, doubled) or "")
    shifted = [((10, 3), (0, 2)), ((12, 2), (0, 2))]  # overlap of 2, gap... volume 10 > 8
    assert "overlap" in (tiling_problem(region, shifted) or "")
    swapped = [((10, 3), (0, 1)), ((11, 3), (1, 1)), ((13, 1), (0, 1)), ((10, 1), (1, 1))]
    assert tiling_problem(region, swapped) is None  # a brick pattern, valid
    hole = [((10, 3), (0, 1)), ((11, 3), (1, 1)), ((12, 1), (0, 1)), ((10, 1), (1, 1))]
    assert "stored twice" in (tiling_problem(region, hole) or "")


def test_hundreds_of_thousands_of_slices_are_checked_exactly() -> None:
    n = 200_000
    rows = [((i, 1), (0, 3)) for i in range(n)]
    assert tiling_problem(((0, n), (0, 3)), rows) is None
    rows[n // 2] = ((n // 2 - 1, 1), (0, 3))
    assert tiling_problem(((0, n), (0, 3)), rows) is not None
    # A brick wall: rows of bricks, each row offset by one.
    bricks = []
    for r in range(200):
        edges = [0, *range(1 + r % 2, 400, 2), 400]
        bricks += [((r, 1), (a, b - a)) for a, b in zip(edges, edges[1:]) if b > a]
    assert tiling_problem(((0, 200), (0, 400)), bricks) is None

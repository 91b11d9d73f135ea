"""The stored-slice index answers as a scan of every stored slice would."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from dtckpt.format.slice_index import SliceIndex
from dtckpt.format.slices import intersect

Box = tuple[tuple[int, int], ...]


def _scan(items: list[tuple[Box, int]], box: Box) -> list[tuple[Box, int, Box]]:
    out = []
    for stored, payload in items:
        overlap = intersect(stored, box)
        if overlap is not None:
            out.append((stored, payload, overlap))
    return out


@st.composite
def grids(draw: st.DrawFn) -> tuple[tuple[int, ...], list[tuple[Box, int]]]:
    """The slices of a tensor cut into a regular grid (as a DTensor checkpoint stores it)."""
    rank = draw(st.integers(1, 3))
    blocks = [draw(st.integers(1, 4)) for _ in range(rank)]
    extent = [draw(st.integers(1, 3)) for _ in range(rank)]
    shape = tuple(b * e for b, e in zip(blocks, extent, strict=True))
    items = [
        (tuple((c * e, e) for c, e in zip(cell, extent, strict=True)), i)
        for i, cell in enumerate(itertools.product(*(range(b) for b in blocks)))
    ]
    return shape, draw(st.permutations(items))


@st.composite
def boxes(draw: st.DrawFn, shape: tuple[int, ...]) -> Box:
    out = []
    for size in shape:
        start = draw(st.integers(0, size - 1))
        out.append((start, draw(st.integers(1, size - start))))
    return tuple(out)


@given(grids(), st.data())
def test_grid_lookups_match_a_scan(
    grid: tuple[tuple[int, ...], list[tuple[Box, int]]], data: st.DataObject
) -> None:
    shape, items = grid
    index = SliceIndex(items)
    box = data.draw(boxes(shape))
    assert sorted(index.overlapping(box)) == sorted(_scan(items, box))
    exact = index.exact(box)
    assert exact == next(((b, p) for b, p in items if b == box), None)
    for stored, payload in items:
        assert index.exact(stored) == (stored, payload)


@given(
    st.lists(
        st.tuples(st.integers(0, 6), st.integers(1, 4), st.integers(0, 6), st.integers(1, 4)),
        min_size=1,
        max_size=8,
    ),
    st.tuples(st.integers(0, 6), st.integers(1, 4), st.integers(0, 6), st.integers(1, 4)),
)
def test_any_slices_match_a_scan(
    raw: list[tuple[int, int, int, int]], query: tuple[int, int, int, int]
) -> None:
    # Irregular (even overlapping) slices, as only a hand-made index holds: the
    # index falls back to the scan and reports every overlap the same way.
    items = [(((a, b), (c, d)), i) for i, (a, b, c, d) in enumerate(raw)]
    box = ((query[0], query[1]), (query[2], query[3]))
    assert sorted(SliceIndex(items).overlapping(box)) == sorted(_scan(items, box))


def test_a_dtensor_grid_is_indexed_not_scanned() -> None:
    items = [(((r * 2, 2), (c * 2, 2)), r * 32 + c) for r in range(32) for c in range(32)]
    index = SliceIndex(items)
    index.items = []  # a lookup that scanned would now find nothing
    assert [p for _, p, _ in index.overlapping(((2, 2), (4, 4)))] == [34, 35]
    assert index.exact(((62, 2), (62, 2))) == (((62, 2), (62, 2)), 1023)

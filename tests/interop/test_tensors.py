"""Chunking arithmetic and the source/target plumbing shared by every format."""

from __future__ import annotations

import os
from collections.abc import Iterator
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dtckpt.dtypes import info
from dtckpt.errors import DataLossError, InvalidArgumentError
from dtckpt.interop import tensors
from dtckpt.interop.tensors import (
    TensorSource,
    TensorStream,
    Unsupported,
    atomic_path,
    row_boxes,
    select_tensors,
)


def _boxes(
    shape: tuple[int, ...], itemsize: int, budget: int, cuts: list[int]
) -> list[tuple[tuple[int, int], ...]]:
    saved = tensors.CHUNK_BYTES
    tensors.CHUNK_BYTES = budget
    try:
        return list(row_boxes(shape, itemsize, cuts))
    finally:
        tensors.CHUNK_BYTES = saved


@given(
    st.lists(st.integers(0, 6), max_size=4).map(tuple),
    st.sampled_from([1, 2, 4, 8, 16]),
    st.integers(1, 300),
    st.lists(st.integers(0, 7), max_size=5),
)
def test_row_boxes_tile_the_tensor_in_c_order(
    shape: tuple[int, ...], itemsize: int, budget: int, cuts: list[int]
) -> None:
    boxes = _boxes(shape, itemsize, budget, cuts)
    grid = np.arange(int(np.prod(shape, dtype=np.int64))).reshape(shape)
    pieces = [grid[tuple(slice(s, s + n) for s, n in box)].reshape(-1) for box in boxes]
    order = np.concatenate(pieces) if pieces else np.empty(0, dtype=grid.dtype)
    assert np.array_equal(order, np.arange(grid.size))  # contiguous runs, in order
    for piece in pieces:
        assert piece.size > 0
        if itemsize <= budget:
            assert piece.size * itemsize <= budget


@given(
    st.integers(1, 40),
    st.integers(1, 8),
    st.lists(st.integers(1, 39), max_size=6),
)
def test_row_boxes_end_on_slice_boundaries_when_they_fit(
    rows: int, row_elements: int, cuts: list[int]
) -> None:
    cuts = [c for c in cuts if c < rows]
    points = sorted({0, rows, *cuts})
    widest = max(b - a for a, b in pairwise(points))
    budget = widest * row_elements * 4
    for box in _boxes((rows, row_elements), 4, budget, cuts):
        (start, length), _ = box
        assert start in points and start + length in points  # whole slices, never parts


def test_a_row_larger_than_the_budget_is_split_inside() -> None:
    boxes = _boxes((2, 3, 10), 4, 16, [])
    assert boxes[:3] == [
        ((0, 1), (0, 1), (0, 4)),
        ((0, 1), (0, 1), (4, 4)),
        ((0, 1), (0, 1), (8, 2)),
    ]
    assert len(boxes) == 18
    assert _boxes((), 4, 16, []) == [()]
    assert _boxes((3, 0), 4, 16, []) == []


def _stream(key: str, dtype: str = "float32") -> TensorStream:
    row = info(dtype)

    def chunks() -> Iterator[np.ndarray]:
        yield np.zeros(2, dtype=row.numpy)

    return TensorStream(key, row, (2,), 2 * row.itemsize, chunks)


def test_select_tensors_raises_first_problem_or_skips() -> None:
    bad = Unsupported("v", DataLossError("no", path="f", key="v"))
    source = TensorSource("npz", "f", [_stream("a"), _stream("b")], [bad])

    def check(tensor: TensorStream) -> None:
        if tensor.key == "b":
            raise InvalidArgumentError("not here")

    with pytest.raises(DataLossError):
        select_tensors(source, check, skip_unsupported=False)
    chosen, skipped = select_tensors(source, check, skip_unsupported=True)
    assert [t.key for t in chosen] == ["a"] and skipped == ("b", "v")
    clean = TensorSource("npz", "f", [_stream("a"), _stream("b")])
    with pytest.raises(InvalidArgumentError) as error:
        select_tensors(clean, check, skip_unsupported=False)
    assert error.value.key == "b"


def test_stream_read_and_source_lookup() -> None:
    closed = []
    with TensorSource("npz", "f", [_stream("a")], closers=[lambda: closed.append(1)]) as source:
        assert source.keys() == ["a"]
        assert source["a"].read().tolist() == [0.0, 0.0]
        with pytest.raises(KeyError):
            source["b"]
    assert closed == [1]


def test_atomic_path_renames_on_success_and_cleans_up_on_failure(tmp_path: os.PathLike) -> None:
    target = os.path.join(tmp_path, "sub", "x.bin")
    with atomic_path(target) as temporary:
        with open(temporary, "wb") as f:
            f.write(b"ok")
    assert open(target, "rb").read() == b"ok"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as temporary:
            with open(temporary, "wb") as f:
                f.write(b"half")
            raise RuntimeError
    assert open(target, "rb").read() == b"ok"
    assert os.listdir(os.path.dirname(target)) == ["x.bin"]

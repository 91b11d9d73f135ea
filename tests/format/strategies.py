"""Hypothesis strategies for tensors of every dtype dtckpt stores."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

import dtckpt.dtypes as dt

NUMERIC = [
    "float16",
    "bfloat16",
    "float32",
    "float64",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "bool",
    "complex64",
    "complex128",
    "float8_e5m2",
    "float8_e4m3fn",
    "float8_e4m3fnuz",
    "float8_e4m3b11fnuz",
    "float8_e5m2fnuz",
    "int4",
    "uint4",
]


def shapes(max_rank: int = 3, max_side: int = 5) -> st.SearchStrategy[tuple[int, ...]]:
    return st.lists(st.integers(0, max_side), max_size=max_rank).map(tuple)


@st.composite
def arrays(
    draw: st.DrawFn, dtype: str | None = None, shape: tuple[int, ...] | None = None
) -> np.ndarray:
    """A tensor whose bytes are arbitrary (NaN payloads included) but valid for its dtype."""
    name = dtype or draw(st.sampled_from(NUMERIC + ["string"]))
    shape = shape if shape is not None else draw(shapes())
    numel = int(np.prod(shape, dtype=np.int64))
    if name == "string":
        items = draw(st.lists(st.binary(max_size=200), min_size=numel, max_size=numel))
        out = np.empty(numel, dtype=object)
        out[:] = items
        return out.reshape(shape)
    np_dtype = dt.info(name).numpy
    if name == "bool":
        raw = draw(st.lists(st.booleans(), min_size=numel, max_size=numel))
        return np.array(raw, dtype=bool).reshape(shape)
    if name in ("int4", "uint4"):
        lo, hi = (-8, 7) if name == "int4" else (0, 15)
        vals = draw(st.lists(st.integers(lo, hi), min_size=numel, max_size=numel))
        return np.array(vals, dtype=np.int64).astype(np_dtype).reshape(shape)
    raw = draw(st.binary(min_size=numel * np_dtype.itemsize, max_size=numel * np_dtype.itemsize))
    return np.frombuffer(raw, dtype=np_dtype).reshape(shape).copy()

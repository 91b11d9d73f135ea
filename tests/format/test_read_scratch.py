"""Streamed slice reads (rule R-MB-2): any scratch limit gives the same values, reads the same
ranges (F-RD-8), uses at most the limit (one row at least) and still verifies checksums."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dtckpt
from dtckpt.errors import DataLossError


def _saved(tmp_path: pathlib.Path, value: np.ndarray, rows: int) -> str:
    """``value`` stored as row blocks of ``rows`` rows, every block also cut in two columns."""
    prefix = str(tmp_path / f"v{rows}")
    names, specs, parts = [], [], []
    height, width = value.shape
    half = width // 2
    for start in range(0, height, rows):
        n = min(rows, height - start)
        for c0, c1 in ((0, half), (half, width)):
            names.append("w")
            specs.append(f"{height} {width} {start},{n}:{c0},{c1 - c0}")
            parts.append(value[start : start + n, c0:c1])
    dtckpt.save_v2(prefix, names, specs, parts)
    return prefix


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.integers(1, 7),
    box=st.tuples(st.integers(0, 11), st.integers(1, 12), st.integers(0, 9), st.integers(1, 10)),
    scratch=st.sampled_from([1, 8, 40, 1 << 20]),
    given_out=st.booleans(),
)
def test_any_scratch_reads_the_same(
    tmp_path: pathlib.Path,
    rows: int,
    box: tuple[int, int, int, int],
    scratch: int,
    given_out: bool,
) -> None:
    value = np.arange(12 * 10, dtype=np.float32).reshape(12, 10)
    prefix = _saved(tmp_path, value, rows)
    r0, nr, c0, nc = box
    nr, nc = min(nr, 12 - r0), min(nc, 10 - c0)
    request = ((r0, nr), (c0, nc))
    with dtckpt.BundleReader(prefix) as reader:
        out = np.empty((nr, nc), np.float32) if given_out else None
        got = reader.read_slice("w", request, out=out, scratch=scratch)
        assert np.array_equal(got, value[r0 : r0 + nr, c0 : c0 + nc])
        cost = reader.read_cost("w", request, into=given_out, scratch=scratch)
        assert cost.ranges == reader.read_ranges("w", request)
        assert cost.scratch <= max(scratch, cost.least_scratch)
        assert cost.allocates == (0 if given_out else got.nbytes)


def test_a_streamed_whole_slice_still_verifies_its_checksum(tmp_path: pathlib.Path) -> None:
    value = np.arange(64 * 8, dtype=np.float32).reshape(64, 8)
    prefix = _saved(tmp_path, value, 64)
    data = pathlib.Path(prefix + ".data-00000-of-00001")
    raw = bytearray(data.read_bytes())
    raw[40 * 16 + 3] ^= 0xFF  # a byte in a late row of the first stored slice
    data.write_bytes(bytes(raw))
    with dtckpt.BundleReader(prefix) as reader, pytest.raises(DataLossError, match="Checksum"):
        # columns 0..2 of the left half: every row needed, streamed 16 bytes at a time
        reader.read_slice("w", ((0, 64), (0, 2)), scratch=16)

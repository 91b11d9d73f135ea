"""Small stored slices read in runs (``BundleReader._paste_runs``): the fast path of a read
assembling a tensor from many small slices gives what one read per slice gives, and still
refuses any slice whose bytes were damaged (rule F-RD-3), naming that slice."""

from __future__ import annotations

import itertools
import pathlib
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dtckpt
from dtckpt.errors import DataLossError
from dtckpt.format import bundle_reader, streams
from dtckpt.format.ordered_code import encode_tensor_name_slice
from dtckpt.format.slices import parse_shape_and_slice

SHAPE = (6, 5, 4)


def _save_blocks(prefix: str, value: np.ndarray, steps: tuple[int, ...], seed: int) -> list[str]:
    """``value`` stored as a grid of blocks ``steps`` large, written in a shuffled order."""
    blocks = []
    for starts in itertools.product(*(range(0, d, s) for d, s in zip(value.shape, steps))):
        box = tuple((a, min(s, d - a)) for a, s, d in zip(starts, steps, value.shape))
        blocks.append(box)
    random.Random(seed).shuffle(blocks)
    dims = " ".join(str(d) for d in value.shape)
    specs = [f"{dims} " + ":".join(f"{a},{n}" for a, n in box) for box in blocks]
    parts = [value[tuple(slice(a, a + n) for a, n in box)] for box in blocks]
    dtckpt.save_v2(prefix, ["w"] * len(specs), specs, parts)
    return specs


def _read_both(
    prefix: str, request: tuple[tuple[int, int], ...], given_out: bool, monkeypatch: pytest.MonkeyPatch
) -> tuple[np.ndarray, np.ndarray]:
    shape = tuple(n for _, n in request)
    results = []
    for batched in (True, False):
        with monkeypatch.context() as patch:
            if not batched:  # every slice read on its own, as before the fast path
                patch.setattr(bundle_reader, "_BATCHED_PIECE", -1)
            with dtckpt.BundleReader(prefix) as reader:
                out = np.full(shape, -1, np.float32) if given_out else None
                results.append(reader.read_slice("w", request, out=out))
    return results[0], results[1]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    steps=st.tuples(st.integers(1, 6), st.integers(1, 5), st.integers(1, 4)),
    seed=st.integers(0, 1000),
    corner=st.tuples(st.integers(0, 5), st.integers(0, 4), st.integers(0, 3)),
    extent=st.tuples(st.integers(1, 6), st.integers(1, 5), st.integers(1, 4)),
    given_out=st.booleans(),
    run_bytes=st.sampled_from([1, 16, 64, 1 << 20]),
)
def test_runs_read_what_one_read_per_slice_reads(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    steps: tuple[int, int, int],
    seed: int,
    corner: tuple[int, int, int],
    extent: tuple[int, int, int],
    given_out: bool,
    run_bytes: int,
) -> None:
    value = np.arange(np.prod(SHAPE), dtype=np.float32).reshape(SHAPE)
    prefix = str(tmp_path_factory.mktemp("runs") / "ckpt")
    _save_blocks(prefix, value, steps, seed)
    request = tuple((c, min(e, d - c)) for c, e, d in zip(corner, extent, SHAPE))
    monkeypatch.setattr(bundle_reader, "_RUN_BYTES", run_bytes)
    batched, alone = _read_both(prefix, request, given_out, monkeypatch)
    expected = value[tuple(slice(a, a + n) for a, n in request)]
    assert np.array_equal(batched, expected)
    assert np.array_equal(alone, expected)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    steps=st.tuples(st.integers(1, 3), st.integers(1, 5), st.integers(1, 4)),
    seed=st.integers(0, 1000),
    victim=st.integers(0, 10_000),
)
def test_a_damaged_slice_in_a_run_is_refused_and_named(
    tmp_path_factory: pytest.TempPathFactory, steps: tuple[int, int, int], seed: int, victim: int
) -> None:
    value = np.arange(np.prod(SHAPE), dtype=np.float32).reshape(SHAPE)
    prefix = str(tmp_path_factory.mktemp("damaged") / "ckpt")
    specs = _save_blocks(prefix, value, steps, seed)
    spec = specs[victim % len(specs)]
    parsed = parse_shape_and_slice(spec)
    assert parsed is not None
    key = encode_tensor_name_slice(b"w", parsed[1])
    with dtckpt.BundleReader(prefix) as reader:
        entry = reader.entry(key)
    data = pathlib.Path(prefix + ".data-00000-of-00001")
    raw = bytearray(data.read_bytes())
    raw[entry.offset + victim % entry.size] ^= 0x40
    data.write_bytes(bytes(raw))
    with dtckpt.BundleReader(prefix) as reader, pytest.raises(DataLossError, match="Checksum") as err:
        reader.read("w")
    assert err.value.key == key and err.value.offset == entry.offset


def test_one_tensor_of_many_row_slices_is_read_in_one_call(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    n = 500
    value = np.arange(n * 8, dtype=np.float32).reshape(n, 8)
    prefix = str(tmp_path / "rows")
    dtckpt.save_v2(prefix, ["w"] * n, [f"{n} 8 {i},1:-" for i in range(n)], list(value[:, None]))
    calls = []
    real = streams.LocalFile.read_into

    def counted(self: streams.LocalFile, out: np.ndarray, offset: int) -> None:
        calls.append((offset, out.nbytes))
        real(self, out, offset)

    monkeypatch.setattr(streams.LocalFile, "read_into", counted)
    with dtckpt.BundleReader(prefix) as reader:
        assert np.array_equal(reader.read("w"), value)
    assert calls == [(0, value.nbytes)]

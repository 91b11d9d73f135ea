"""diff_checkpoints: statuses, exact and upcast differences, and chunked reading."""

from __future__ import annotations

import math
import pathlib

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dtckpt
from dtckpt.checkpoint import diff as df
from dtckpt.checkpoint.diff import TensorDiff, diff_checkpoints
from dtckpt.errors import DataLossError
from tests.conftest import Golden
from tests.format.strategies import NUMERIC, arrays
from tests.format.test_verify import Recorder, write_variant_bundle

_FIXTURE = [HealthCheck.function_scoped_fixture]


def _save(prefix: pathlib.Path, tensors: dict[str, np.ndarray]) -> str:
    names = sorted(tensors)
    dtckpt.save_v2(str(prefix), names, [""] * len(names), [tensors[n] for n in names])
    return str(prefix)


def _one(tmp_path: pathlib.Path, a: np.ndarray, b: np.ndarray, **kwargs: int) -> TensorDiff:
    pa = _save(tmp_path / "a" / "ckpt", {"t": a})
    pb = _save(tmp_path / "b" / "ckpt", {"t": b})
    (result,) = diff_checkpoints(pa, pb, **kwargs)
    return result


def test_goldens_equal_themselves(golden: Golden) -> None:
    diffs = diff_checkpoints(golden.prefix, golden.prefix, chunk_bytes=64)
    assert {d.status for d in diffs} == {df.IDENTICAL}
    assert [d.key for d in diffs] == sorted(golden.manifest["expected"])


def test_statuses(tmp_path: pathlib.Path) -> None:
    a = _save(
        tmp_path / "a",
        {
            "gone": np.zeros(2),
            "grown": np.zeros(2),
            "narrowed": np.array([1.0, 2.5], np.float32),
            "text": np.array([b"x", b"y"], dtype=object),
            "kind": np.array([b"1"], dtype=object),
            "same": np.arange(3),
            "signed_zero": np.array([0.0, 1.0]),
            "moved": np.array([1, 2, 3], np.int32),
        },
    )
    b = _save(
        tmp_path / "b",
        {
            "new": np.zeros(2),
            "grown": np.zeros(3),
            "narrowed": np.array([1.0, 2.5], np.float16),
            "text": np.array([b"x", b"z"], dtype=object),
            "kind": np.array([1.0]),
            "same": np.arange(3),
            "signed_zero": np.array([-0.0, 1.0]),
            "moved": np.array([1, 7, 3], np.int32),
        },
    )
    by_key = {d.key: d for d in diff_checkpoints(a, b)}
    assert {k: d.status for k, d in by_key.items()} == {
        "gone": df.ONLY_IN_A,
        "new": df.ONLY_IN_B,
        "grown": df.SHAPE_CHANGED,
        "narrowed": df.DTYPE_CHANGED,
        "text": df.DIFFERENT,
        "kind": df.DTYPE_CHANGED,
        "same": df.IDENTICAL,
        "signed_zero": df.EQUAL,
        "moved": df.DIFFERENT,
    }
    assert by_key["gone"].dtype_b is None and by_key["gone"].shape_a == (2,)
    assert by_key["grown"].shape_b == (3,) and by_key["grown"].differing is None
    assert (by_key["narrowed"].dtype_a, by_key["narrowed"].dtype_b) == ("float32", "float16")
    assert by_key["narrowed"].differing == 0 and by_key["narrowed"].max_abs == 0.0
    assert by_key["text"].differing == 1 and by_key["text"].max_abs is None
    assert by_key["kind"].differing is None
    assert by_key["moved"].max_abs == 5 and isinstance(by_key["moved"].max_abs, int)
    assert by_key["moved"].max_rel == pytest.approx(5 / 7)


def test_relative_difference_survives_overflow(tmp_path: pathlib.Path) -> None:
    big = np.finfo(np.float64).max
    d = _one(tmp_path, np.array([big, 1.0]), np.array([-big, 1.0]))
    assert d.max_abs == math.inf and d.max_rel == 2.0


def test_nan_and_infinity_rules(tmp_path: pathlib.Path) -> None:
    nan_a = np.float32(np.nan)
    nan_b = np.array([0x7FC00001], np.uint32).view(np.float32)[0]  # another payload
    inf = np.inf
    a = np.array([nan_a, nan_a, 1.0, inf, inf, inf, 2.0], np.float32)
    b = np.array([nan_b, 5.0, 1.0, inf, 1.0, -inf, 3.0], np.float32)
    d = _one(tmp_path, a, b)
    assert d.status == df.DIFFERENT
    assert (d.nan_a, d.nan_b, d.inf_a, d.inf_b) == (2, 1, 3, 2)
    assert d.differing == 4  # nan-vs-5, inf-vs-1, inf-vs--inf, 2-vs-3
    assert d.max_abs == math.inf and d.max_rel == 2.0
    same = _one(tmp_path / "2", a[:4], np.array([nan_b, nan_b, 1.0, inf], np.float32))
    assert same.status == df.EQUAL and same.differing == 0


def test_complex_per_component(tmp_path: pathlib.Path) -> None:
    a = np.array([complex(np.inf, 1.0), 3 + 4j], np.complex64)
    b = np.array([complex(np.inf, 2.0), 0j], np.complex64)
    d = _one(tmp_path, a, b)
    assert d.differing == 2 and d.max_abs == 5.0
    assert (d.inf_a, d.inf_b) == (1, 1)
    assert d.max_rel == 1.0  # 3+4j against 0; the infinite pair differs by 1 of infinity: 0


def test_integers_are_exact(tmp_path: pathlib.Path) -> None:
    lo, hi = np.iinfo(np.int64).min, np.iinfo(np.int64).max
    d = _one(tmp_path / "s", np.array([lo, 0], np.int64), np.array([hi, 0], np.int64))
    assert d.max_abs == 2**64 - 1 and d.differing == 1
    top = np.iinfo(np.uint64).max
    u = _one(tmp_path / "u", np.array([top, 1], np.uint64), np.array([0, 1], np.uint64))
    assert u.max_abs == 2**64 - 1
    mixed = _one(tmp_path / "m", np.array([lo], np.int64), np.array([top], np.uint64))
    assert mixed.status == df.DTYPE_CHANGED and mixed.max_abs == 2**64 - 1 + 2**63
    flags = _one(tmp_path / "b", np.array([True, False]), np.array([True, True]))
    assert (flags.differing, flags.max_abs, flags.max_rel) == (1, 1, 1.0)


def test_low_precision_floats_upcast(tmp_path: pathlib.Path) -> None:
    a = np.array([1.0, 2.0, 448.0], ml_dtypes.bfloat16)
    b = np.array([1.0, 2.015625, -448.0], ml_dtypes.bfloat16)
    d = _one(tmp_path, a, b)
    assert d.max_abs == 896.0 and d.max_rel == 2.0 and d.differing == 2
    e = _one(
        tmp_path / "e4",
        np.array([448.0], ml_dtypes.float8_e4m3fn),
        np.array([-448.0], ml_dtypes.float8_e4m3fn),
    )
    assert e.max_abs == 896.0  # would overflow float8 itself


def _reference(a: np.ndarray, b: np.ndarray) -> tuple[int, float, float]:
    """Differing count, max abs and max rel, element by element in Python."""
    differing, max_abs, max_rel = 0, 0.0, 0.0
    for x, y in zip(a.reshape(-1).tolist(), b.reshape(-1).tolist(), strict=True):
        x, y = (complex(x), complex(y)) if isinstance(x, complex) else (float(x), float(y))
        if x == y or (x != x and y != y):
            continue
        differing += 1
        if x != x or y != y:
            continue
        gap = abs(x - y)
        max_abs = max(max_abs, gap)
        max_rel = max(max_rel, gap / max(abs(x), abs(y)))
    return differing, max_abs, max_rel


@settings(max_examples=60, deadline=None, suppress_health_check=_FIXTURE)
@given(data=st.data())
def test_chunked_equals_whole_and_matches_reference(
    tmp_path: pathlib.Path, data: st.DataObject
) -> None:
    """The row-range path gives exactly what one read gives, and both what Python computes."""
    dtype = data.draw(st.sampled_from(NUMERIC))
    a = data.draw(arrays(dtype=dtype))
    b = data.draw(arrays(dtype=dtype, shape=a.shape))
    directory = tmp_path / str(data.draw(st.integers(0, 10**9)))
    whole = _one(directory, a, b)
    chunked = diff_checkpoints(
        str(directory / "a" / "ckpt"), str(directory / "b" / "ckpt"), chunk_bytes=16
    )[0]
    assert chunked == whole
    with np.errstate(invalid="ignore"):  # NaNs of the ml_dtypes types warn when cast
        wide_a, wide_b = a.astype(np.complex128), b.astype(np.complex128)
    if "complex" in dtype or np.isinf(wide_a).any() or np.isinf(wide_b).any():
        return  # infinities: covered by the rule tests above
    differing, max_abs, max_rel = _reference(wide_a, wide_b)
    assert whole.differing == differing
    assert float(whole.max_abs or 0) == pytest.approx(max_abs, rel=1e-12)
    assert float(whole.max_rel or 0) == pytest.approx(max_rel, rel=1e-12)
    assert whole.status in ((df.IDENTICAL, df.EQUAL) if differing == 0 else (df.DIFFERENT,))


def test_large_tensors_are_read_in_bounded_ranges(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(1)
    w = rng.standard_normal((1000, 10)).astype(np.float32)
    a = str(tmp_path / "a" / "ckpt")
    b = str(tmp_path / "b" / "ckpt")
    dtckpt.save_v2(a, ["w", "w"], ["1000 10 0,600:-", "1000 10 600,400:-"], [w[:600], w[600:]])
    v = w.copy()
    v[777, 3] += 1.0
    dtckpt.save_v2(b, ["w"], [""], [v])
    boxes = []
    original = dtckpt.BundleReader.read_slice

    def recording(self, key, tensor_slice, out=None, **options):  # type: ignore[no-untyped-def]
        boxes.append(tensor_slice)
        return original(self, key, tensor_slice, out=out, **options)

    monkeypatch.setattr(dtckpt.BundleReader, "read_slice", recording)
    (d,) = diff_checkpoints(a, b, chunk_bytes=800)
    assert d.status == df.DIFFERENT and d.differing == 1
    assert d.max_abs == pytest.approx(1.0, abs=1e-5)
    # 800 bytes at 8 bytes per compared element: 10 rows of 10 per range, on each side
    assert len(boxes) == 200
    assert all(box[0][1] <= 10 for box in boxes)
    assert diff_checkpoints(a, b) == [d]


def test_strings_and_variants_compare_by_equality(tmp_path: pathlib.Path) -> None:
    s = _one(
        tmp_path,
        np.array([[b"a", b"b"], [b"", b"d"]], dtype=object),
        np.array([[b"a", b"B"], [b"", b"e"]], dtype=object),
        chunk_bytes=1,
    )
    assert (s.status, s.differing, s.max_abs, s.nan_a) == (df.DIFFERENT, 2, None, 0)
    variants = {
        "a": [b"abc", b"d"],
        "b": [b"abc", b"d"],
        "c": [b"abd", b"d"],
        "d": [b"abc", b"de"],
    }
    for name, elements in variants.items():
        (tmp_path / "v" / name).mkdir(parents=True)
        write_variant_bundle(str(tmp_path / "v" / name / "v"), elements)
    results = []
    for other in ("b", "c", "d"):
        progress = Recorder()
        a, b = str(tmp_path / "v" / "a" / "v"), str(tmp_path / "v" / other / "v")
        results += diff_checkpoints(a, b, chunk_bytes=3, progress=progress)
        assert progress.done == progress.total > 0  # an early mismatch still counts it all
    assert [(d.status, d.differing) for d in results] == [
        (df.IDENTICAL, 0),
        (df.DIFFERENT, None),
        (df.DIFFERENT, None),
    ]
    assert results[0].dtype_a == "variant" and results[0].max_abs is None


def test_progress_counts_both_sides(tmp_path: pathlib.Path) -> None:
    strings = np.array([b"ab", b"c"], dtype=object)
    a = _save(
        tmp_path / "a",
        {"x": np.zeros((50, 4), np.float32), "y": np.zeros(3), "s": strings, "g": np.zeros(2)},
    )
    b = _save(
        tmp_path / "b",
        {"x": np.ones((50, 4), np.float32), "z": np.zeros(3), "s": strings, "g": np.zeros(3)},
    )
    progress = Recorder()
    diff_checkpoints(a, b, progress=progress, chunk_bytes=100)
    with dtckpt.BundleReader(a) as ra:
        string_bytes = ra.entry("s").size  # strings count their stored size
    expected = 2 * 800 + 2 * string_bytes + 16 + 24  # "g" changed shape: counted, not read
    assert progress.total == progress.done == expected and progress.finished


def test_open_readers_are_left_open_and_damage_raises(tmp_path: pathlib.Path) -> None:
    a = _save(tmp_path / "a", {"x": np.arange(8.0)})
    with dtckpt.load_checkpoint(a) as ra, dtckpt.load_checkpoint(a) as rb:
        assert diff_checkpoints(ra, rb)[0].status == df.IDENTICAL
        assert ra.get_tensor("x")[3] == 3.0
    data = a + ".data-00000-of-00001"
    raw = bytearray(open(data, "rb").read())
    raw[5] ^= 1
    open(data, "wb").write(bytes(raw))
    with pytest.raises(DataLossError, match="'x'"):
        diff_checkpoints(a, _save(tmp_path / "b", {"x": np.arange(8.0)}))

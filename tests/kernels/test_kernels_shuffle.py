"""Property tests of the byte shuffle: the Numba twin equals the NumPy reference, both equal a
byte-by-byte oracle, and unshuffling undoes shuffling, for every item size and alignment."""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kernel_impls import IMPL_NAMES, load_impl, shuffle_oracle

from dtckpt import kernels

FAST = settings(max_examples=200, deadline=None)


@pytest.fixture(scope="module")
def ref() -> ModuleType:
    return load_impl("reference")


@pytest.fixture(scope="module")
def jit() -> ModuleType:
    return load_impl("jit")


@pytest.fixture(scope="module", params=IMPL_NAMES)
def impl(request: pytest.FixtureRequest) -> ModuleType:
    return load_impl(request.param)


@st.composite
def items(draw: st.DrawFn) -> tuple[np.ndarray, int]:
    """Random items of 1-17 bytes (the widths the archive uses and odd ones), at a random
    misalignment inside a larger buffer and sometimes read-only."""
    itemsize = draw(st.sampled_from([1, 2, 3, 4, 5, 8, 16, 17]))
    n = draw(st.integers(0, 300))
    skew = draw(st.integers(0, 7))
    raw = draw(st.binary(min_size=n * itemsize + skew, max_size=n * itemsize + skew))
    buf = np.frombuffer(raw, dtype=np.uint8)[skew:]
    if draw(st.booleans()):
        buf = buf.copy()
    return buf, itemsize


@FAST
@given(case=items())
def test_shuffle_twins_agree(ref: ModuleType, jit: ModuleType, case: tuple) -> None:
    src, itemsize = case
    a, b = np.full(src.size, 7, np.uint8), np.zeros(src.size, np.uint8)
    ref.shuffle_bytes(src, itemsize, a)
    jit.shuffle_bytes(src, itemsize, b)
    assert a.tobytes() == b.tobytes()
    back_ref, back_jit = np.zeros(src.size, np.uint8), np.ones(src.size, np.uint8)
    ref.unshuffle_bytes(a, itemsize, back_ref)
    jit.unshuffle_bytes(a, itemsize, back_jit)
    assert back_ref.tobytes() == back_jit.tobytes() == src.tobytes()


@FAST
@given(case=items())
def test_shuffle_matches_oracle_and_inverts(impl: ModuleType, case: tuple) -> None:
    src, itemsize = case
    out = np.empty(src.size, np.uint8)
    impl.shuffle_bytes(src, itemsize, out)
    assert out.tobytes() == shuffle_oracle(src.tobytes(), itemsize)
    back = np.empty(src.size, np.uint8)
    impl.unshuffle_bytes(out, itemsize, back)
    assert back.tobytes() == src.tobytes()


@pytest.mark.parametrize("itemsize", [2, 4, 8, 3])
def test_large_buffers_agree(ref: ModuleType, jit: ModuleType, itemsize: int) -> None:
    """Buffers above the small-job threshold, where the archive uses the compiled twin."""
    n = (3 << 20) // itemsize + 5
    src = np.random.default_rng(itemsize).integers(0, 256, n * itemsize, dtype=np.uint8)
    a, b = np.empty_like(src), np.empty_like(src)
    ref.shuffle_bytes(src, itemsize, a)
    jit.shuffle_bytes(src, itemsize, b)
    assert np.array_equal(a, b)
    assert np.array_equal(a[:n], src[::itemsize])  # plane 0 is every item's first byte
    ref.unshuffle_bytes(a, itemsize, b)
    back = np.empty_like(src)
    jit.unshuffle_bytes(a, itemsize, back)
    assert np.array_equal(b, src) and np.array_equal(back, src)


def test_float32_planes() -> None:
    """The planes of little-endian float32 values: low mantissa bytes first, sign and exponent
    last, through the package-level dispatch and the size-picked module alike."""
    values = np.array([1.0, 2.0, -1.0], dtype="<f4")
    raw = values.view(np.uint8)
    want = bytes([0, 0, 0, 0, 0, 0, 0x80, 0, 0x80, 0x3F, 0x40, 0xBF])
    out = np.empty(12, np.uint8)
    kernels.shuffle_bytes(raw, 4, out)
    assert out.tobytes() == want
    back = np.empty(12, np.uint8)
    kernels.sized(out.size).unshuffle_bytes(out, 4, back)
    assert back.tobytes() == raw.tobytes()


@pytest.mark.parametrize("name", ["shuffle_bytes", "unshuffle_bytes"])
def test_shuffle_rejects_bad_arguments(impl: ModuleType, name: str) -> None:
    fn = getattr(impl, name)
    src = np.arange(12, dtype=np.uint8)
    with pytest.raises(ValueError, match="at least 1"):
        fn(src, 0, np.empty(12, np.uint8))
    with pytest.raises(ValueError, match="integer"):
        fn(src, 2.0, np.empty(12, np.uint8))
    with pytest.raises(ValueError, match="integer"):
        fn(src, True, np.empty(12, np.uint8))
    with pytest.raises(ValueError, match="whole number of 5-byte items"):
        fn(src, 5, np.empty(12, np.uint8))
    with pytest.raises(ValueError, match="12 bytes but dst has 11"):
        fn(src, 2, np.empty(11, np.uint8))
    with pytest.raises(ValueError, match="writable"):
        fn(src, 2, np.frombuffer(bytes(12), np.uint8))
    with pytest.raises(ValueError, match="share memory"):
        fn(src, 2, src)
    with pytest.raises(ValueError, match="1-D uint8"):
        fn(src.view(np.int16), 2, np.empty(12, np.uint8))

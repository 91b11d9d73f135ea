"""Property tests: every Numba kernel equals its NumPy twin, and both equal the crc32c package."""

from __future__ import annotations

from types import ModuleType

import crc32c
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kernel_impls import IMPL_NAMES, encode_varint, load_impl

from dtckpt.kernels import _algorithms, _threads

FAST = settings(max_examples=150, deadline=None)


@pytest.fixture(scope="module")
def ref() -> ModuleType:
    return load_impl("reference")


@pytest.fixture(scope="module")
def jit() -> ModuleType:
    return load_impl("jit")


@pytest.fixture(scope="module", params=IMPL_NAMES)
def impl(request: pytest.FixtureRequest) -> ModuleType:
    """Each backend in turn, for properties checked against an independent oracle."""
    return load_impl(request.param)


@st.composite
def boxes(draw: st.DrawFn, max_rank: int = 4) -> dict[str, tuple[int, ...]]:
    """A box inside a source array and a destination array, rank 0-4, zero sizes allowed."""
    rank = draw(st.integers(0, max_rank))
    fields: dict[str, list[int]] = {
        k: [] for k in ("src_shape", "src_origin", "dst_shape", "dst_origin", "extent")
    }
    for _ in range(rank):
        e = draw(st.integers(0, 5))
        s = draw(st.integers(e, e + 3))
        d = draw(st.integers(e, e + 3))
        fields["extent"].append(e)
        fields["src_shape"].append(s)
        fields["dst_shape"].append(d)
        fields["src_origin"].append(draw(st.integers(0, s - e)))
        fields["dst_origin"].append(draw(st.integers(0, d - e)))
    return {k: tuple(v) for k, v in fields.items()}


def _bytes(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8)


@FAST
@given(box=boxes(), seed=st.integers(0, 2**32 - 1), readonly=st.booleans())
def test_copy_box_twins_agree(
    ref: ModuleType, jit: ModuleType, box: dict, seed: int, readonly: bool
) -> None:
    src = _bytes(int(np.prod(box["src_shape"])), seed)
    if readonly:
        src = np.frombuffer(src.tobytes(), dtype=np.uint8)
    start = _bytes(int(np.prod(box["dst_shape"])), seed + 1)
    out_ref, out_jit = start.copy(), start.copy()
    ref.copy_box(
        src,
        box["src_shape"],
        box["src_origin"],
        out_ref,
        box["dst_shape"],
        box["dst_origin"],
        box["extent"],
    )
    jit.copy_box(
        src,
        box["src_shape"],
        box["src_origin"],
        out_jit,
        box["dst_shape"],
        box["dst_origin"],
        box["extent"],
    )
    assert out_ref.tobytes() == out_jit.tobytes()


@FAST
@given(box=boxes(), seed=st.integers(0, 2**32 - 1))
def test_copy_box_matches_slicing(impl: ModuleType, box: dict, seed: int) -> None:
    src = _bytes(int(np.prod(box["src_shape"])), seed)
    dst = _bytes(int(np.prod(box["dst_shape"])), seed + 1)
    want = dst.copy()
    sl_src = tuple(slice(o, o + e) for o, e in zip(box["src_origin"], box["extent"], strict=True))
    sl_dst = tuple(slice(o, o + e) for o, e in zip(box["dst_origin"], box["extent"], strict=True))
    want.reshape(box["dst_shape"])[sl_dst] = src.reshape(box["src_shape"])[sl_src]
    impl.copy_box(
        src,
        box["src_shape"],
        box["src_origin"],
        dst,
        box["dst_shape"],
        box["dst_origin"],
        box["extent"],
    )
    assert dst.tobytes() == want.tobytes()


@FAST
@given(box=boxes(), seed=st.integers(0, 2**32 - 1))
def test_plan_box_describes_the_copy(box: dict, seed: int) -> None:
    """Running the shared plan in plain Python moves exactly the bytes NumPy slicing moves."""
    if 0 in box["extent"]:
        return
    arrays = {k: np.array(v, dtype=np.int64).reshape(len(v)) for k, v in box.items()}
    counts, src_steps, dst_steps, run, src_base, dst_base = _algorithms.plan_box(
        arrays["src_shape"],
        arrays["src_origin"],
        arrays["dst_shape"],
        arrays["dst_origin"],
        arrays["extent"],
    )
    assert run * int(np.prod(counts)) == int(np.prod(box["extent"]))
    src = _bytes(int(np.prod(box["src_shape"])), seed)
    got = np.zeros(int(np.prod(box["dst_shape"])), dtype=np.uint8)
    for index in np.ndindex(*counts):
        s = src_base + int(np.dot(index, src_steps))
        d = dst_base + int(np.dot(index, dst_steps))
        got[d : d + run] = src[s : s + run]
    want = np.zeros_like(got)
    sl_src = tuple(slice(o, o + e) for o, e in zip(box["src_origin"], box["extent"], strict=True))
    sl_dst = tuple(slice(o, o + e) for o, e in zip(box["dst_origin"], box["extent"], strict=True))
    want.reshape(box["dst_shape"])[sl_dst] = src.reshape(box["src_shape"])[sl_src]
    assert got.tobytes() == want.tobytes()


def test_plan_box_merges_full_trailing_axes() -> None:
    a = lambda *v: np.array(v, dtype=np.int64)  # noqa: E731
    counts, _, _, run, src_base, _ = _algorithms.plan_box(
        a(4, 6, 8), a(1, 0, 0), a(2, 6, 8), a(0, 0, 0), a(2, 6, 8)
    )
    assert (counts.tolist(), run, src_base) == ([], 96, 48)
    counts, src_steps, dst_steps, run, _, _ = _algorithms.plan_box(
        a(4, 6, 8), a(0, 0, 2), a(4, 6, 4), a(0, 0, 0), a(4, 6, 4)
    )
    assert (counts.tolist(), src_steps.tolist(), dst_steps.tolist(), run) == ([24], [8], [4], 4)


@pytest.mark.parametrize("block", [24, 100, 4096, None])
@settings(max_examples=60, deadline=None)
@given(box=boxes(), seed=st.integers(0, 2**32 - 1), value=st.integers(0, 2**32 - 1))
def test_copy_box_crc_variants_agree(
    ref: ModuleType, jit: ModuleType, block: int | None, box: dict, seed: int, value: int
) -> None:
    ext = box["extent"]
    # Rows seven times longer reach the three-lane path of the hardware CRC.
    shape = box["src_shape"][:-1] + (box["src_shape"][-1] * 7,) if ext else ()
    origin = box["src_origin"][:-1] + (box["src_origin"][-1] * 7,) if ext else ()
    ext = ext[:-1] + (ext[-1] * 7,) if ext else ()
    src = _bytes(int(np.prod(shape)), seed)
    n = int(np.prod(ext))
    want_dst = np.zeros(n, dtype=np.uint8)
    want = ref.copy_box_crc(src, shape, origin, want_dst, ext, value)
    assert want == crc32c.crc32c(want_dst, value)
    variants = [
        lambda d: jit.copy_box_crc(src, shape, origin, d, ext, value),
        lambda d: jit.copy_box_crc_split(src, shape, origin, d, ext, value),
        lambda d: jit.copy_box_crc_fused(
            src, shape, origin, d, ext, value, hardware=False, block=block
        ),
    ]
    if jit.HAVE_SSE42:
        variants.append(
            lambda d: jit.copy_box_crc_fused(
                src, shape, origin, d, ext, value, hardware=True, block=block
            )
        )
    for run in variants:
        dst = np.full(n, 0x5A, dtype=np.uint8)
        assert run(dst) == want
        assert dst.tobytes() == want_dst.tobytes()


def test_fused_crc_large_block(jit: ModuleType) -> None:
    src = _bytes(1024 * (3 * 1024 + 1), 3)
    shape, origin, ext = (1024, 3 * 1024 + 1), (5, 11), (1000, 3000)
    want_dst = src.reshape(shape)[5:1005, 11:3011].tobytes()
    for hardware in [False] + ([True] if jit.HAVE_SSE42 else []):
        dst = np.empty(len(want_dst), dtype=np.uint8)
        assert jit.copy_box_crc_fused(
            src, shape, origin, dst, ext, hardware=hardware
        ) == crc32c.crc32c(want_dst)
        assert dst.tobytes() == want_dst


@FAST
@given(a=st.binary(max_size=300), b=st.binary(max_size=300))
def test_combine_matches_concatenation(impl: ModuleType, a: bytes, b: bytes) -> None:
    assert impl.crc32c_combine(crc32c.crc32c(a), crc32c.crc32c(b), len(b)) == crc32c.crc32c(a + b)


@FAST
@given(
    crc_a=st.integers(0, 2**32 - 1),
    crc_b=st.integers(0, 2**32 - 1),
    len_b=st.integers(0, 2**63 - 1),
)
def test_combine_twins_agree_on_any_length(
    ref: ModuleType, jit: ModuleType, crc_a: int, crc_b: int, len_b: int
) -> None:
    assert ref.crc32c_combine(crc_a, crc_b, len_b) == jit.crc32c_combine(crc_a, crc_b, len_b)


@settings(max_examples=50, deadline=None)
@given(
    data=st.binary(max_size=5000),
    chunk=st.integers(1, 700),
    workers=st.integers(1, 4),
    value=st.integers(0, 2**32 - 1),
)
def test_parallel_crc_matches_single_call(
    impl: ModuleType, data: bytes, chunk: int, workers: int, value: int
) -> None:
    assert impl.crc32c_parallel(data, chunk, workers, value) == crc32c.crc32c(data, value)


def test_crc32c_value_takes_parallel_path(
    impl: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_threads, "SINGLE_CALL_MAX", 1000)
    data = _bytes(12_345, 9)
    assert impl.crc32c_value(data, 17) == crc32c.crc32c(data, 17)


SPECIAL = [0, 1, 127, 128, 255, 256, 16383, 16384, 2**32 - 1, 2**32, 2**56, 2**62, 2**63 - 1]
lengths = st.lists(
    st.one_of(st.sampled_from(SPECIAL), st.integers(0, 2**63 - 1), st.integers(0, 300)), max_size=40
)


def _decode_outcome(impl: ModuleType, buf: bytes, count: int, offset: int) -> tuple:
    try:
        values, end = impl.decode_varint_lengths(buf, count, offset)
    except ValueError as exc:
        return ("error", str(exc))
    return ("ok", values.tolist(), end)


@FAST
@given(values=lengths, prefix=st.binary(max_size=4))
def test_varint_round_trip(impl: ModuleType, values: list[int], prefix: bytes) -> None:
    encoded = impl.encode_varint_lengths(values).tobytes()
    assert encoded == b"".join(encode_varint(v) for v in values)
    buf = prefix + encoded + b"\x80rest"
    got, end = impl.decode_varint_lengths(buf, len(values), len(prefix))
    assert got.tolist() == values
    assert end == len(prefix) + len(encoded)


@FAST
@given(values=lengths.filter(bool), data=st.data())
def test_truncated_varints_raise_in_both(
    ref: ModuleType, jit: ModuleType, values: list[int], data: st.DataObject
) -> None:
    encoded = ref.encode_varint_lengths(values).tobytes()
    cut = data.draw(st.integers(0, len(encoded) - 1))
    outcomes = {_decode_outcome(impl, encoded[:cut], len(values), 0) for impl in (ref, jit)}
    assert len(outcomes) == 1
    (outcome,) = outcomes
    assert outcome[0] == "error" and "truncated varint" in outcome[1]


@FAST
@given(
    head=lengths,
    bad=st.one_of(
        st.integers(2**63, 2**64 - 1).map(encode_varint),
        st.integers(2**64, 2**80).map(encode_varint),
        st.integers(10, 14).map(lambda n: b"\x80" * n + b"\x00"),
    ),
)
def test_out_of_range_varints_raise_in_both(
    ref: ModuleType, jit: ModuleType, head: list[int], bad: bytes
) -> None:
    buf = ref.encode_varint_lengths(head).tobytes() + bad + b"\x00"
    outcomes = {_decode_outcome(impl, buf, len(head) + 2, 0) for impl in (ref, jit)}
    assert len(outcomes) == 1
    (outcome,) = outcomes
    assert outcome[0] == "error"
    assert f"offset {len(buf) - len(bad) - 1} " in outcome[1]


@settings(max_examples=300, deadline=None)
@given(buf=st.binary(max_size=64), count=st.integers(0, 70), offset=st.integers(0, 64))
def test_decode_arbitrary_bytes_agree(
    ref: ModuleType, jit: ModuleType, buf: bytes, count: int, offset: int
) -> None:
    offset = min(offset, len(buf))
    assert _decode_outcome(ref, buf, count, offset) == _decode_outcome(jit, buf, count, offset)


def test_decode_huge_count_allocates_nothing(impl: ModuleType) -> None:
    with pytest.raises(ValueError, match="truncated varint at byte offset 2"):
        impl.decode_varint_lengths(b"\x01\x02", 2**62)

"""Property tests of the bulk ``.index`` decoders: both twins against the per-entry decoders of
``dtckpt.format`` (``table.decode_block``, ``messages.decode_entry``) and against each
other, on valid, damaged and random bytes."""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kernel_impls import IMPL_NAMES, encode_varint, load_impl

from dtckpt.errors import DataLossError
from dtckpt.format import messages, table
from dtckpt.format.messages import BundleEntry

FAST = settings(max_examples=200, deadline=None)

#: Values on both sides of every limit the decoders check: one-byte varints, shard_id's 2**31,
#: the 5-byte varint32, the int64 columns' 2**63, uint64's 2**64 (a tenth byte of 2).
BOUNDARIES = [127, 128, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**35 - 1, 2**35]
BOUNDARIES += [2**63 - 1, 2**63, 2**64 - 1, 2**64, 2**65 - 1, 2**65]


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


# --- SSTable block entries ----------------------------------------------------------------

# A small alphabet gives keys long shared prefixes; long keys and values need 2-byte varints.
short_keys = st.lists(st.sampled_from([0x00, 0x61, 0x62, 0xFF]), max_size=12).map(bytes)
keys = st.one_of(short_keys, short_keys.map(lambda k: b"p" * 130 + k))
values = st.one_of(st.binary(max_size=20), st.binary(min_size=128, max_size=300))


@st.composite
def blocks(draw: st.DrawFn) -> tuple[bytes, int]:
    """A block as ``encode_block`` writes it, and where its entries end."""
    unique = sorted(set(draw(st.lists(keys, max_size=40))))
    items = [(k, draw(values)) for k in unique]
    block = table.encode_block(items, draw(st.integers(1, 20)))
    num_restarts = int.from_bytes(block[-4:], "little")
    return block, len(block) - 4 - 4 * num_restarts


def _block_outcome(impl: ModuleType, block: bytes | np.ndarray, limit: int) -> tuple:
    data = bytes(block)
    try:
        keys_, key_offsets, value_offsets, value_lengths = impl.decode_block_entries(block, limit)
    except ValueError as exc:
        return ("error", str(exc))
    assert keys_.dtype == np.uint8
    assert key_offsets.dtype == value_offsets.dtype == value_lengths.dtype == np.int64
    assert key_offsets.size == value_offsets.size + 1 == value_lengths.size + 1
    assert key_offsets[-1] == keys_.size
    raw = keys_.tobytes()
    return (
        "ok",
        [
            (raw[a:b], data[o : o + n])
            for a, b, o, n in zip(
                key_offsets[:-1].tolist(),
                key_offsets[1:].tolist(),
                value_offsets.tolist(),
                value_lengths.tolist(),
                strict=True,
            )
        ],
    )


@FAST
@given(case=blocks(), as_array=st.booleans())
def test_block_entries_match_decode_block(
    impl: ModuleType, case: tuple[bytes, int], as_array: bool
) -> None:
    block, limit = case
    arg = np.frombuffer(block, dtype=np.uint8) if as_array else block
    assert _block_outcome(impl, arg, limit) == ("ok", table.decode_block(block))


def _padded_varint(value: int, extra: int) -> bytes:
    """``value`` as a varint with ``extra`` redundant ``0x80``-continued zero groups."""
    plain = bytearray(encode_varint(value))
    if extra:
        plain[-1] |= 0x80
        plain += b"\x80" * (extra - 1) + b"\x00"
    return bytes(plain)


@st.composite
def damaged_blocks(draw: st.DrawFn) -> tuple[bytes, int]:
    """Valid blocks with bytes overwritten, entries with odd varints appended, or a cut limit."""
    block, limit = draw(blocks())
    data = bytearray(block)
    for _ in range(draw(st.integers(0, 3))):
        if limit:
            data[draw(st.integers(0, limit - 1))] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        fields = [
            _padded_varint(
                draw(st.one_of(st.integers(0, 2**35), st.sampled_from(BOUNDARIES[:8]))),
                draw(st.integers(0, 6)),
            )
            for _ in range(3)
        ]
        tail = b"".join(fields) + draw(st.binary(max_size=40))
        data[limit:limit] = tail
        limit += len(tail)
    limit = draw(st.integers(0, limit))
    return bytes(data), limit


@settings(max_examples=400, deadline=None)
@given(case=damaged_blocks())
def test_block_entries_twins_agree_on_damage(
    ref: ModuleType, jit: ModuleType, case: tuple[bytes, int]
) -> None:
    block, limit = case
    assert _block_outcome(ref, block, limit) == _block_outcome(jit, block, limit)


@settings(max_examples=400, deadline=None)
@given(block=st.binary(max_size=120), data=st.data())
def test_block_entries_twins_agree_on_random_bytes(
    ref: ModuleType, jit: ModuleType, block: bytes, data: st.DataObject
) -> None:
    limit = data.draw(st.integers(0, len(block)))
    assert _block_outcome(ref, block, limit) == _block_outcome(jit, block, limit)


@settings(max_examples=300, deadline=None)
@given(case=damaged_blocks())
def test_block_entries_accept_what_decode_block_accepts(
    impl: ModuleType, case: tuple[bytes, int]
) -> None:
    """Up to the varint length (varint32 here, varint64 there) both decoders take the same
    entries. One zero restart point after ``limit`` makes ``decode_block`` stop there too."""
    block, limit = case
    rebuilt = block[:limit] + bytes(4) + (1).to_bytes(4, "little")
    got = _block_outcome(impl, rebuilt, limit)
    try:
        want = ("ok", table.decode_block(rebuilt))
    except DataLossError:
        want = ("error",)
    if got[0] == "error" and "longer than 5 bytes" in got[1]:
        return
    assert got[0] == want[0]
    if want[0] == "ok":
        assert got == want


# --- BundleEntryProto ---------------------------------------------------------------------

int64s = st.one_of(st.integers(0, 300), st.integers(-(2**63), 2**63 - 1))
extents = st.tuples(int64s, st.one_of(st.just(messages.FULL_LENGTH), int64s))
bundle_entries = st.builds(
    BundleEntry,
    dtype=st.one_of(st.integers(0, 30), st.integers(0, 2**64 - 1), st.integers(2**63, 2**64 - 1)),
    shape=st.lists(st.one_of(st.integers(0, 300), int64s), max_size=5).map(tuple),
    shard_id=st.one_of(st.integers(0, 10), st.integers(-(2**31), 2**31 - 1), st.just(2**31)),
    offset=int64s,
    size=int64s,
    crc32c=st.integers(0, 2**32 - 1),
    slices=st.one_of(
        st.just(()), st.lists(st.lists(extents, max_size=3).map(tuple), max_size=2).map(tuple)
    ),
)
encoded_entries = bundle_entries.map(messages.encode_entry)
# Values past 2**64 - 1 and padding past 10 bytes give varints that decode_varint rejects.
wire_varints = st.builds(
    _padded_varint,
    st.one_of(
        st.integers(0, 300),
        st.integers(0, 2**64 - 1),
        st.sampled_from(BOUNDARIES),
        st.integers(2**64, 2**70),
    ),
    st.one_of(st.just(0), st.integers(0, 10)),
)


canonical_varints = st.one_of(st.integers(0, 300), st.sampled_from(BOUNDARIES)).map(encode_varint)


@st.composite
def shape_fields(draw: st.DrawFn, odd: bool) -> bytes:
    """A shape field; ``odd`` ones have bad dim tags, lengths and varints."""
    varints = wire_varints if odd else canonical_varints
    body = b""
    for _ in range(draw(st.integers(0, 4))):
        if draw(st.booleans()):
            body += b"\x12\x00"
            continue
        inner = (draw(st.sampled_from([b"\x08", b"\x10"])) if odd else b"\x08") + draw(varints)
        lengths = st.one_of(st.just(len(inner)), st.integers(0, 12), st.integers(0, 255))
        length = draw(lengths) if odd else len(inner)
        body += b"\x12" + bytes((length,)) + inner
    if odd and draw(st.booleans()):
        body += draw(st.binary(max_size=3))
    near = st.sampled_from([len(body), len(body) + 1, max(len(body) - 1, 0)])
    return b"\x12" + encode_varint(draw(st.one_of(near, st.integers(0, 40)))) + body


SIMPLE_TAGS = [0x08, 0x12, 0x18, 0x20, 0x28, 0x35]


@st.composite
def field_soups(draw: st.DrawFn) -> bytes:
    """Fields in any order and number. Most soups use only the fast decoder's tags and
    canonical varints, so that they are often simple; the rest add any odd encoding."""
    odd = draw(st.integers(0, 3)) == 0
    tags = SIMPLE_TAGS + [0x3A, 0x0D, 0x88] if odd else SIMPLE_TAGS
    out = b""
    for _ in range(draw(st.integers(0, 6))):
        tag = draw(st.sampled_from(tags))
        if tag == 0x12:
            # An odd shape in an otherwise plain entry tests the shape's rules on their own.
            out += draw(shape_fields(odd or draw(st.integers(0, 2)) == 0))
        elif tag == 0x35:
            out += b"\x35" + draw(st.binary(min_size=4, max_size=4))
        else:
            out += bytes((tag,)) + draw(wire_varints if odd else canonical_varints)
    return out


@st.composite
def damaged(draw: st.DrawFn, source: st.SearchStrategy[bytes]) -> bytes:
    data = bytearray(draw(source))
    for _ in range(draw(st.integers(1, 3))):
        if data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data[: draw(st.integers(0, len(data)))])


entry_bytes = st.one_of(
    encoded_entries,
    st.tuples(encoded_entries, encoded_entries).map(b"".join),  # every field twice
    field_soups(),
    damaged(encoded_entries),
    damaged(field_soups()),
    st.binary(max_size=40),
)


def _check_row(row: tuple, entry: bytes) -> None:
    """A simple row must hold what the generic protobuf decoder reads; others hold zeros."""
    if not row[0]:
        assert row == (False, 0, 0, 0, 0, 0, ())
        return
    want = messages.decode_entry(entry)
    assert want.slices == ()
    assert row[1:] == (want.dtype, want.shard_id, want.offset, want.size, want.crc32c, want.shape)


def _rows(columns: tuple, n: int) -> list[tuple]:
    simple, dtype, shard_id, offset, size, crc, dims_offsets, dims = columns
    assert simple.dtype == np.bool_ and simple.shape == (n,)
    for column in (dtype, shard_id, offset, size, crc):
        assert column.dtype == np.int64 and column.shape == (n,)
    assert dims_offsets.dtype == dims.dtype == np.int64
    assert dims_offsets.shape == (n + 1,) and dims_offsets[0] == 0
    assert dims_offsets[-1] == dims.size and (np.diff(dims_offsets) >= 0).all()
    return [
        (
            bool(simple[i]),
            int(dtype[i]),
            int(shard_id[i]),
            int(offset[i]),
            int(size[i]),
            int(crc[i]),
            tuple(dims[dims_offsets[i] : dims_offsets[i + 1]].tolist()),
        )
        for i in range(n)
    ]


@st.composite
def blobs(draw: st.DrawFn) -> tuple[bytes, list[int], list[int], list[bytes]]:
    """Entries laid end to end with junk between them, as a block's values are."""
    entries = draw(st.lists(entry_bytes, max_size=12))
    blob = b""
    starts, ends = [], []
    for entry in entries:
        blob += draw(st.one_of(st.just(b""), st.binary(max_size=4)))
        starts.append(len(blob))
        blob += entry
        ends.append(len(blob))
    return blob + draw(st.binary(max_size=4)), starts, ends, entries


@settings(max_examples=500, deadline=None)
@given(case=blobs(), as_array=st.booleans())
def test_bundle_entries_match_generic_decoder(
    impl: ModuleType, case: tuple, as_array: bool
) -> None:
    blob, starts, ends, entries = case
    arg = np.frombuffer(blob, dtype=np.uint8) if as_array else blob
    rows = _rows(impl.parse_bundle_entries(arg, np.array(starts), np.array(ends)), len(entries))
    for row, entry in zip(rows, entries, strict=True):
        _check_row(row, entry)


@settings(max_examples=300, deadline=None)
@given(case=blobs())
def test_bundle_entries_twins_agree(ref: ModuleType, jit: ModuleType, case: tuple) -> None:
    blob, starts, ends, _ = case
    got_ref = ref.parse_bundle_entries(blob, starts, ends)
    got_jit = jit.parse_bundle_entries(blob, starts, ends)
    assert len(got_ref) == len(got_jit) == 8
    for a, b in zip(got_ref, got_jit, strict=True):
        assert a.dtype == b.dtype
        assert np.array_equal(a, b)


@settings(max_examples=100, deadline=None)
@given(blob=st.binary(max_size=60), data=st.data())
def test_bundle_entries_any_ranges(impl: ModuleType, blob: bytes, data: st.DataObject) -> None:
    """Overlapping and empty ranges anywhere in the blob."""
    bounds = st.integers(0, len(blob))
    pairs = data.draw(st.lists(st.tuples(bounds, bounds).map(sorted), max_size=10))
    starts = [a for a, _ in pairs]
    ends = [b for _, b in pairs]
    rows = _rows(impl.parse_bundle_entries(blob, starts, ends), len(pairs))
    for row, (a, b) in zip(rows, pairs, strict=True):
        _check_row(row, blob[a:b])

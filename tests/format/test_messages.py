"""BundleHeader/BundleEntry/TensorSlice encodings, checked against TF 2.21's bytes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dtckpt.errors import DataLossError
from dtckpt.format.messages import (
    BIG,
    BundleEntry,
    BundleHeader,
    VersionDef,
    decode_entry,
    decode_header,
    encode_entry,
    encode_header,
)


def test_header_bytes() -> None:
    assert encode_header(BundleHeader()).hex(" ") == "08 01 1a 02 08 01"
    assert encode_header(BundleHeader(num_shards=4)).hex(" ") == "08 04 1a 02 08 01"
    assert encode_header(BundleHeader(endianness=BIG)).hex(" ") == "08 01 10 01 1a 02 08 01"


def test_header_round_trip_with_bad_consumers() -> None:
    header = BundleHeader(3, 0, VersionDef(5, 1, (2, 7)))
    assert decode_header(encode_header(header)) == header
    # Packed encoding of repeated int32 is accepted too.
    packed = bytes.fromhex("0803") + bytes.fromhex("1a08") + bytes.fromhex("0805 0801 1a02 0207")
    assert decode_header(packed).version.bad_consumers == (2, 7)


@pytest.mark.parametrize(
    "entry, encoded",
    [
        (
            BundleEntry(1, (2, 3), 0, 237, 24, 0x173DDBC0),
            "08 01 12 08 12 02 08 02 12 02 08 03 20 ed 01 28 18 35 c0 db 3d 17",
        ),
        (BundleEntry(9, (), 0, 0, 8, 0x41DE7501), "08 09 12 00 28 08 35 01 75 de 41"),
        (
            BundleEntry(3, (0, 4), 0, 12, 0, 0xA282EAD8),
            "08 03 12 06 12 00 12 02 08 04 20 0c 35 d8 ea 82 a2",
        ),
        (
            BundleEntry(1, (5, 4), slices=(((0, -1), (0, 1)), ((0, -1), (1, 3)))),
            "08 01 12 08 12 02 08 05 12 02 08 04 3a 06 0a 00 0a 02 10 01 3a 08 0a 00 0a 04 08 01 10 03",
        ),
    ],
)
def test_entry_bytes(entry: BundleEntry, encoded: str) -> None:
    assert encode_entry(entry).hex(" ") == encoded
    assert decode_entry(bytes.fromhex(encoded)) == entry


extents = st.one_of(st.just((0, -1)), st.tuples(st.integers(0, 2**40), st.integers(0, 2**40)))


@given(
    st.integers(0, 33),
    st.lists(st.integers(0, 2**40), max_size=5),
    st.integers(0, 2**31 - 1),
    st.integers(0, 2**62),
    st.integers(0, 2**62),
    st.integers(0, 2**32 - 1),
    st.lists(st.lists(extents, max_size=4).map(tuple), max_size=3),
)
def test_entry_round_trip(dtype, shape, shard, offset, size, crc, slices) -> None:  # type: ignore[no-untyped-def]
    entry = BundleEntry(dtype, tuple(shape), shard, offset, size, crc, tuple(slices))
    assert decode_entry(encode_entry(entry)) == entry


def test_unknown_fields_are_skipped() -> None:
    raw = bytes.fromhex("0801 1200") + bytes.fromhex("4a03616263") + bytes.fromhex("5005")
    assert decode_entry(raw) == BundleEntry(1, ())


def test_unknown_rank_is_rejected() -> None:
    with pytest.raises(DataLossError, match="unknown rank"):
        decode_entry(bytes.fromhex("0801 1202 1801"))


def test_truncated_entry_is_rejected() -> None:
    with pytest.raises(DataLossError):
        decode_entry(bytes.fromhex("0801 1208 1202"))

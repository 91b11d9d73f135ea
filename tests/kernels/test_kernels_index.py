"""Known answers, errors and argument checks of the bulk ``.index`` decoders, in both backends."""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pytest
from kernel_impls import IMPL_NAMES, load_impl

from dtckpt import kernels
from dtckpt.format import messages, table
from dtckpt.format.messages import BundleEntry


@pytest.fixture(scope="module", params=IMPL_NAMES)
def impl(request: pytest.FixtureRequest) -> ModuleType:
    return load_impl(request.param)


# --- SSTable block entries ----------------------------------------------------------------

# apple=1, apricot=22, b="" with one restart point: entries at 0, 9 and 19, restarts at 23.
BLOCK = bytes.fromhex(
    "000501 6170706c65 31"  # shared 0, non_shared 5, value 1: "apple" "1"
    "020502 7269636f74 3232"  # shared 2 ("ap"), non_shared 5: "ricot" "22"
    "000100 62"  # shared 0, non_shared 1, value 0: "b"
    "00000000 01000000"  # restart offsets [0], num_restarts 1
)
BLOCK_LIMIT = 23


def _pairs(block: bytes, out: tuple) -> list[tuple[bytes, bytes]]:
    keys, key_offsets, value_offsets, value_lengths = out
    raw = keys.tobytes()
    return [
        (raw[key_offsets[i] : key_offsets[i + 1]], block[o : o + n])
        for i, (o, n) in enumerate(zip(value_offsets.tolist(), value_lengths.tolist(), strict=True))
    ]


def test_block_literal_is_what_encode_block_writes() -> None:
    items = [(b"apple", b"1"), (b"apricot", b"22"), (b"b", b"")]
    assert table.encode_block(items, 16) == BLOCK


def test_block_entries_literal(impl: ModuleType) -> None:
    keys, key_offsets, value_offsets, value_lengths = impl.decode_block_entries(
        np.frombuffer(BLOCK, dtype=np.uint8), BLOCK_LIMIT
    )
    assert keys.dtype == np.uint8 and keys.tobytes() == b"appleapricotb"
    assert key_offsets.dtype == value_offsets.dtype == value_lengths.dtype == np.int64
    assert key_offsets.tolist() == [0, 5, 12, 13]
    assert value_offsets.tolist() == [8, 17, 23]
    assert value_lengths.tolist() == [1, 2, 0]


def test_block_entries_public_api() -> None:
    out = kernels.decode_block_entries(BLOCK, BLOCK_LIMIT)
    assert _pairs(BLOCK, out) == [(b"apple", b"1"), (b"apricot", b"22"), (b"b", b"")]


def test_block_entries_empty(impl: ModuleType) -> None:
    keys, key_offsets, value_offsets, value_lengths = impl.decode_block_entries(b"\0" * 8, 0)
    assert (keys.size, key_offsets.tolist(), value_offsets.size, value_lengths.size) == (
        0,
        [0],
        0,
        0,
    )


def test_block_entries_multibyte_and_padded_varints(impl: ModuleType) -> None:
    # A 200-byte key and 300-byte value (2-byte varints), then a 5-byte varint32 for 1.
    block = b"\x00\xc8\x01\xac\x02" + b"k" * 200 + b"v" * 300
    block += b"\xc8\x01" + b"\x81\x80\x80\x80\x00" + b"\x00" + b"x"
    assert _pairs(block, impl.decode_block_entries(block, len(block))) == [
        (b"k" * 200, b"v" * 300),
        (b"k" * 200 + b"x", b""),
    ]


@pytest.mark.parametrize(
    ("block", "limit", "message"),
    [
        (BLOCK[:BLOCK_LIMIT] + b"\x00\x80", BLOCK_LIMIT + 2, "23: a varint runs past the end"),
        (BLOCK, 20, "19: a varint runs past the end"),  # the limit cuts the last entry
        (b"\x00\x80\x80\x80\x80\x80\x00\x00", 8, "0: a varint32 is longer than 5 bytes"),
        (b"\x00\x01\x00a" + b"\x02\x00\x00", 7, "4: it shares more bytes than the previous key"),
        (b"\x00\x05\x00abc", 6, "0: its key suffix and value run past the end"),
        (BLOCK, BLOCK_LIMIT - 1, "19: its key suffix and value run past the end"),
        # 2**32 as a 5-byte varint32: LevelDB would wrap it to 0, here it fails the bounds.
        (b"\x00\x80\x80\x80\x80\x10\x00" + b"x" * 9, 16, "0: its key suffix and value run past"),
    ],
)
def test_block_entries_damage(impl: ModuleType, block: bytes, limit: int, message: str) -> None:
    with pytest.raises(ValueError, match=f"^corrupt block entry at byte offset {message}"):
        impl.decode_block_entries(block, limit)


@pytest.mark.parametrize(
    ("block", "limit", "message"),
    [
        (b"abc", 4, "limit 4 is outside the block of 3 bytes"),
        (b"abc", -1, "limit -1 is outside"),
        (np.zeros((2, 2), dtype=np.uint8), 0, "1-D uint8"),
        (np.zeros(4, dtype=np.int32), 0, "1-D uint8"),
        ("text", 0, "bytes-like"),
    ],
)
def test_block_entries_rejects_arguments(
    impl: ModuleType, block: object, limit: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        impl.decode_block_entries(block, limit)


def test_block_entries_full_size_block(impl: ModuleType) -> None:
    """A 256 KiB data block as TF fills it: about 3,500 keys, restart interval 16."""
    items = [
        (f"model/layer_{i // 8:04d}/kernel_{i % 8}/.ATTRIBUTES/VARIABLE_VALUE".encode(), bytes(20))
        for i in range(3_600)
    ]
    block = table.encode_block(items, table.RESTART_INTERVAL)
    limit = len(block) - 4 - 4 * int.from_bytes(block[-4:], "little")
    assert _pairs(block, impl.decode_block_entries(block, limit)) == table.decode_block(block)


# --- BundleEntryProto ---------------------------------------------------------------------

# dtype DT_FLOAT, shape [32], offset 128, size 256, crc32c 0x12345678, as TensorFlow writes it.
TF_ENTRY = bytes.fromhex("0801 1204 12020820 208001 288002 3578563412")
NOT_SIMPLE = (False, 0, 0, 0, 0, 0, ())


def _parse_rows(impl: ModuleType, entries: list[bytes]) -> list[tuple]:
    blob = b"".join(entries)
    ends = np.cumsum([len(e) for e in entries], dtype=np.int64)
    starts = ends - np.array([len(e) for e in entries], dtype=np.int64)
    simple, dtype, shard_id, offset, size, crc, dims_offsets, dims = impl.parse_bundle_entries(
        blob, starts, ends
    )
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
        for i in range(len(entries))
    ]


def _generic_row(entry: bytes) -> tuple:
    """The row the generic protobuf decoder gives, as a simple row would hold it."""
    e = messages.decode_entry(entry)
    assert e.slices == ()
    return (True, e.dtype, e.shard_id, e.offset, e.size, e.crc32c, e.shape)


def test_tf_entry_literal_is_what_encode_entry_writes() -> None:
    assert messages.encode_entry(BundleEntry(1, (32,), 0, 128, 256, 0x12345678)) == TF_ENTRY


@pytest.mark.parametrize(
    ("hex_entry", "row"),
    [
        (TF_ENTRY.hex(), (True, 1, 0, 128, 256, 0x12345678, (32,))),
        ("", (True, 0, 0, 0, 0, 0, ())),  # every field at its default
        ("08131200", (True, 19, 0, 0, 0, 0, ())),  # a DT_STRING scalar
        ("1208 1200 12020803 1200", (True, 0, 0, 0, 0, 0, (0, 3, 0))),  # a zero dim: "12 00"
        ("18ffffffff07", (True, 0, 2**31 - 1, 0, 0, 0, ())),
        ("20" + "ff" * 8 + "7f", (True, 0, 0, 2**63 - 1, 0, 0, ())),
        ("120c120a08" + "ff" * 8 + "7f", (True, 0, 0, 0, 0, 0, (2**63 - 1,))),
        ("35ffffffff", (True, 0, 0, 0, 0, 2**32 - 1, ())),
        ("0880800008020801", (True, 1, 0, 0, 0, 0, ())),  # repeated fields: the last one wins
        ("1204 12020805 1206 12020806 1200", (True, 0, 0, 0, 0, 0, (6, 0))),
    ],
)
def test_bundle_entries_known(impl: ModuleType, hex_entry: str, row: tuple) -> None:
    assert _generic_row(bytes.fromhex(hex_entry)) == row
    assert _parse_rows(impl, [bytes.fromhex(hex_entry)]) == [row]


@pytest.mark.parametrize(
    "hex_entry",
    [
        "0801120012003a020a00",  # slices: a partitioned tensor's full entry
        "188080808008",  # shard_id 2**31 reads as negative int32
        "20" + "80" * 9 + "01",  # offset 2**63 reads as negative int64
        "28" + "ff" * 9 + "01",  # size 2**64 - 1
        "08" + "80" * 9 + "01",  # dtype 2**63: beyond the int64 column
        "120d120b08" + "80" * 9 + "01",  # a dim of 2**63: beyond the int64 column
        "0d ffffffff",  # an unknown fixed32 field
        "0801 08",  # a tag at the very end
        "08" + "80" * 10 + "00",  # an 11-byte varint
        "08" + "ff" * 9 + "02",  # a varint above 2**64 - 1
        "1201 1200",  # the dim runs past the shape's length
        "1203 120208",  # the dim's varint is missing
        "1204 12020901",  # a dim whose field is not size
        "1205 1203 0801 00",  # a dim longer than its varint
        "35 000000",  # a truncated crc32c
        "1202 1200 1202",  # a second shape longer than what is left
        "280a 8000",  # a two-byte tag
    ],
)
def test_bundle_entries_not_simple(impl: ModuleType, hex_entry: str) -> None:
    entry = bytes.fromhex(hex_entry)
    assert _parse_rows(impl, [TF_ENTRY, entry, TF_ENTRY]) == [
        (True, 1, 0, 128, 256, 0x12345678, (32,)),
        NOT_SIMPLE,
        (True, 1, 0, 128, 256, 0x12345678, (32,)),
    ]


def test_bundle_entries_many_dims_grow_the_output(impl: ModuleType) -> None:
    # 60 dims of size 0 take two bytes each, the densest shape there is.
    entry = b"\x08\x01\x12\x78" + b"\x12\x00" * 60
    rows = _parse_rows(impl, [entry] * 50)
    assert rows == [(True, 1, 0, 0, 0, 0, (0,) * 60)] * 50


def test_bundle_entries_public_api() -> None:
    blob = b"junk" + TF_ENTRY + b"\x3a\x00"
    simple, dtype, shard_id, offset, size, crc, dims_offsets, dims = kernels.parse_bundle_entries(
        blob, [4, 4, 4 + len(TF_ENTRY)], [4 + len(TF_ENTRY), 4, len(blob)]
    )
    assert simple.tolist() == [True, True, False]
    assert dtype.tolist() == [1, 0, 0]
    assert (offset.tolist(), size.tolist()) == ([128, 0, 0], [256, 0, 0])
    assert crc.tolist() == [0x12345678, 0, 0]
    assert shard_id.tolist() == [0, 0, 0]
    assert (dims_offsets.tolist(), dims.tolist()) == ([0, 1, 1, 1], [32])


@pytest.mark.parametrize(
    ("starts", "ends", "message"),
    [
        ([0, 3], [2, 2], r"entry 1 spans \[3, 2\)"),
        ([0], [9], r"entry 0 spans \[0, 9\), which is not a range inside the blob of 8 bytes"),
        ([-1], [2], r"entry 0 spans \[-1, 2\)"),
        ([0, 1], [2], "starts has 2 entries but ends has 1"),
        ([[0]], [[1]], "starts must be 1-D"),
        ([0.0], [1.0], "starts must be integers"),
        (np.array([2**63], dtype=np.uint64), np.array([2**63], dtype=np.uint64), "below 2"),
    ],
)
def test_bundle_entries_rejects_ranges(
    impl: ModuleType, starts: object, ends: object, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        impl.parse_bundle_entries(bytes(8), starts, ends)


def test_bundle_entries_empty(impl: ModuleType) -> None:
    out = impl.parse_bundle_entries(b"", [], [])
    assert [a.size for a in out] == [0, 0, 0, 0, 0, 0, 1, 0]
    assert [a.dtype for a in out] == [np.bool_] + [np.int64] * 7


def test_block_key_budget(impl: ModuleType) -> None:
    from dtckpt.format.table import encode_block

    block = encode_block([(b"a" * 50 + bytes((i,)), b"") for i in range(1, 40)], 16)
    limit = len(block) - 4 - 4 * int.from_bytes(block[-4:], "little")
    keys, _, _, _ = impl.decode_block_entries(block, limit, 39 * 51)
    assert keys.size == 39 * 51
    with pytest.raises(ValueError, match="expand past the limit of 1988 bytes"):
        impl.decode_block_entries(block, limit, 39 * 51 - 1)

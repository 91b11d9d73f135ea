"""Each hostile input found by the fuzzer or the audit raises the error its rule names.

The corpus replay only checks that these inputs raise *some* typed error within the budget;
here each one must raise the specific error of the bound it tests (``spec/hostile-input.md``).
"""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

import dtckpt.format.table as table
from dtckpt.errors import DataLossError, InvalidArgumentError, OutOfRangeError
from dtckpt.format.bundle_reader import BundleReader
from dtckpt.format.index import BundleIndex
from dtckpt.format.ordered_code import decode_signed_num_increasing, encode_signed_num_increasing
from dtckpt.format.slices import parse_shape_and_slice, parse_slice
from dtckpt.format.table import decode_block, decode_table, entries_limit
from dtckpt.format.varint import decode_varint32
from dtckpt.kernels import reference
from dtckpt.mesh import Layout, Mesh, create_mesh
from tests.fuzz import crafted
from tests.fuzz.budget import TracedPeak, allowance
from tests.fuzz.shaping import split_bundle_input
from tests.fuzz.targets import jit_kernels


def _bundle(tmp_path: pathlib.Path, data: bytes) -> str:
    index, blob, _ = split_bundle_input(data)
    prefix = str(tmp_path / "ckpt")
    pathlib.Path(prefix + ".index").write_bytes(index)
    pathlib.Path(prefix + ".data-00000-of-00001").write_bytes(blob)
    return prefix


# --- H-BD-3: block handles ---------------------------------------------------------------


def test_repeated_block_handles_are_refused() -> None:
    data = crafted.repeated_handles()
    with pytest.raises(DataLossError, match="overlaps or precedes") as info:
        BundleIndex(data, "x.index")
    assert info.value.path == "x.index"
    assert info.value.offset is not None
    with pytest.raises(DataLossError, match="overlaps or precedes"):
        decode_table(data)


# --- H-BD-5: key expansion ---------------------------------------------------------------


def test_index_block_key_bomb_hits_the_key_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    data = crafted.index_block_key_bomb()
    keys = 200 * 2001 + 2000 * 2001 // 2  # the forged keys grow from 200 to 2200 bytes
    monkeypatch.setattr(table, "KEY_BYTES_BASE", keys // 2)
    monkeypatch.setattr(table, "KEY_BYTES_PER_BYTE", 0)
    with pytest.raises(DataLossError, match="expand past the limit") as info:
        BundleIndex(data, "x.index")
    assert info.value.path == "x.index"
    with pytest.raises(DataLossError, match="expand past the limit"):
        decode_table(data)


def test_decode_table_shares_one_key_budget_across_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = [crafted.raw_block([(0, 100, bytes((65 + i,)) * 100, b"v")]) for i in range(4)]
    data = crafted.raw_table(blocks)
    assert [len(k) for k, _ in decode_table(data)] == [100] * 4
    monkeypatch.setattr(table, "KEY_BYTES_BASE", 350)
    monkeypatch.setattr(table, "KEY_BYTES_PER_BYTE", 0)
    with pytest.raises(DataLossError, match="expand past the limit of 50 bytes"):
        decode_table(data)


def test_key_budget_bounds_memory_at_the_default_limit() -> None:
    data = crafted.index_block_key_bomb()
    with TracedPeak() as traced:
        with pytest.raises(DataLossError):  # the forged index names its data block 2001 times
            BundleIndex(data, "x.index")
    assert traced.peak <= allowance(len(data))


# --- F-IX-2 / H-BD-2: varint32 in blocks ---------------------------------------------------


def test_six_byte_varint_in_a_block_is_refused_like_the_kernels_do() -> None:
    block = crafted.six_byte_varint_block()
    with pytest.raises(DataLossError, match="longer than 5 bytes") as info:
        decode_block(block)
    assert info.value.offset == 0
    twins = [reference] + ([jit_kernels()] if jit_kernels() is not None else [])
    for twin in twins:
        assert twin is not None
        with pytest.raises(ValueError, match="longer than 5 bytes"):
            twin.decode_block_entries(np.frombuffer(block, np.uint8), entries_limit(block))


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (b"\x00", 0),
        (b"\x7f", 127),
        (b"\xff\xff\xff\xff\x0f", 2**32 - 1),
        (b"\xff\xff\xff\xff\x7f", 2**35 - 1),
    ],
)
def test_varint32_keeps_five_bytes_whole(raw: bytes, value: int) -> None:
    assert decode_varint32(raw + b"\x99") == (value, len(raw))


@pytest.mark.parametrize("raw", [b"", b"\x80", b"\x80\x80\x80\x80\x80\x00"])
def test_varint32_refuses_truncated_and_long(raw: bytes) -> None:
    with pytest.raises(DataLossError) as info:
        decode_varint32(b"\x01" + raw, 1)
    assert info.value.offset == 1


# --- H-BD-4 / H-BD-1: sizes against the data file ------------------------------------------


def test_terabyte_shape_is_refused_before_allocation(tmp_path: pathlib.Path) -> None:
    prefix = _bundle(tmp_path, crafted.terabyte_shape())
    with BundleReader(prefix) as reader, TracedPeak() as traced:
        with pytest.raises(OutOfRangeError) as info:
            reader.read("huge")
    assert info.value.key == b"huge"
    assert info.value.path == prefix + ".data-00000-of-00001"
    assert "holds 16 bytes" in str(info.value)
    assert traced.peak < 1 << 20


def test_huge_rank_entry_is_refused_with_a_short_message() -> None:
    index = BundleIndex(crafted.huge_rank_index(), "x.index")
    with pytest.raises(DataLossError, match=r"\(more than 2\*\*63 bytes\)") as info:
        index.entry(b"t")
    assert info.value.path == "x.index" and info.value.key == b"t"
    assert "... (300 dims)" in str(info.value) and len(str(info.value)) < 1000


def test_huge_string_count_is_refused_before_allocation(tmp_path: pathlib.Path) -> None:
    prefix = _bundle(tmp_path, crafted.huge_string_count())
    with BundleReader(prefix) as reader, TracedPeak() as traced:
        with pytest.raises(OutOfRangeError) as info:
            reader.read("s")
    assert info.value.key == b"s"
    assert traced.peak < 1 << 20


# --- H-BD-6: numbers -------------------------------------------------------------------------


def test_ordered_code_signed_numbers_stay_in_int64() -> None:
    with pytest.raises(DataLossError, match="outside int64"):
        decode_signed_num_increasing(crafted.wide_signed_number(), 0)
    for value in (-(2**63), 2**63 - 1):
        code = encode_signed_num_increasing(value)
        assert decode_signed_num_increasing(code, 0) == (value, 10)


@pytest.mark.parametrize("name", sorted(crafted.CRAFTED["mesh"]))
def test_bad_mesh_strings_raise_invalid_argument(name: str) -> None:
    text = crafted.CRAFTED["mesh"][name]().decode("utf-8")
    with pytest.raises(InvalidArgumentError) as info:
        Mesh.from_string(text)
    assert isinstance(info.value, ValueError)


def test_layout_with_a_bad_mesh_raises_invalid_argument() -> None:
    text = crafted.CRAFTED["layout"]["huge-id"]().decode()
    with pytest.raises(InvalidArgumentError, match="bad device id"):
        Layout.from_string(text)


def test_mesh_numbers_keep_their_tf_spellings() -> None:
    mesh = create_mesh([("x", 2), ("y", 2)], device_type="CPU")
    text = mesh.to_string().replace("|0,1,2,3|", "| 0,+1,2 ,3|", 1)
    assert Mesh.from_string(text) == mesh
    big = 2**63 - 2
    edge = f"|x=2|{big},{big + 1}|{big}|CPU:0"
    assert Mesh.from_string(edge).global_device_ids().tolist() == [big, big + 1]


def test_long_slice_numbers_are_typed_errors() -> None:
    with pytest.raises(InvalidArgumentError):
        parse_shape_and_slice(crafted.CRAFTED["slices"]["5000-digits"]().decode())
    assert parse_shape_and_slice(crafted.CRAFTED["slices"]["leading-zeros"]().decode()) == (
        (8,),
        ((0, 1),),
    )
    for text in ("0,9223372036854775808", "-0009223372036854775807,1", "0,1\u0663"):
        with pytest.raises(InvalidArgumentError):
            parse_slice(text)
    assert parse_slice("0,09223372036854775807") == ((0, 2**63 - 1),)

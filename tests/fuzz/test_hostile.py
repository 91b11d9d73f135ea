"""Each hostile input found by the fuzzer or the audit raises the error its rule names.

The corpus replay only checks that these inputs raise *some* typed error within the budget;
here each one must raise the specific error of the bound it tests (``spec/hostile-input.md``).
"""

from __future__ import annotations

import os
import pathlib
import struct

import numpy as np
import pytest

import dtckpt.format.table as table
from dtckpt.errors import DataLossError, InvalidArgumentError, OutOfRangeError, UnimplementedError
from dtckpt.format.bundle_reader import BundleReader
from dtckpt.format.index import MAX_RANK, BundleIndex
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
from tests.fuzz.targets_io import remove_tree


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


# --- round two: H-BD-7, H-BD-8 -------------------------------------------------------------


def _all_shards(tmp_path: pathlib.Path, data: bytes) -> str:
    """The bundle of ``data`` with its data file written once (as shard 0 of however many)."""
    index, blob, _ = split_bundle_input(data)
    prefix = str(tmp_path / "ckpt")
    pathlib.Path(prefix + ".index").write_bytes(index)
    with BundleReader(prefix) as reader:
        name = reader.shard_path(0)
    pathlib.Path(name).write_bytes(blob)
    return prefix


def test_a_slice_entry_that_lists_slices_is_refused_before_allocation(
    tmp_path: pathlib.Path,
) -> None:
    prefix = _bundle(tmp_path, crafted.slice_lists_slices())
    assert os.path.getsize(prefix + ".index") < 200
    with BundleReader(prefix) as reader, TracedPeak() as traced:
        with pytest.raises(DataLossError, match="lists slices of its own") as info:
            reader.read("w")
    assert info.value.path == prefix + ".index" and info.value.key.startswith(b"\x00w")
    assert traced.peak < 1 << 20


def test_a_partitioned_variant_is_refused_before_allocation(tmp_path: pathlib.Path) -> None:
    prefix = _bundle(tmp_path, crafted.partitioned_variant())
    with BundleReader(prefix) as reader, TracedPeak() as traced:
        with pytest.raises(UnimplementedError, match="variant") as info:
            reader.read("v")
        with pytest.raises(UnimplementedError):
            reader.read_slice("v", ((0, 1), (0, 1)))
    assert info.value.key == b"v"
    assert traced.peak < 1 << 20


def test_ranks_up_to_numpys_are_read_and_beyond_refused(tmp_path: pathlib.Path) -> None:
    assert MAX_RANK >= 32
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    prefix = _bundle(tmp_path / "a", crafted.rank_64())
    with BundleReader(prefix) as reader:
        value = reader.read("r")
    assert value.ndim == 64 and value.reshape(-1).tolist() == [0.0, 1.0]
    prefix = _bundle(tmp_path / "b", crafted.rank_65())
    with BundleReader(prefix) as reader:
        assert reader.entry("r").shape == (2,) + (1,) * 64  # listed all the same
        with pytest.raises(UnimplementedError, match="65 dimensions") as info:
            reader.read("r")
    assert info.value.path == prefix + ".index" and info.value.key == b"r"


def test_an_empty_tensor_numpy_cannot_shape_is_a_typed_error(tmp_path: pathlib.Path) -> None:
    prefix = _bundle(tmp_path, crafted.empty_but_huge())
    with BundleReader(prefix) as reader:
        with pytest.raises(UnimplementedError, match="cannot be a NumPy array"):
            reader.read("e")


# --- H-WK-1: numbers in files do not set the work --------------------------------------------


def test_two_billion_shards_cost_one_listing(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from dtckpt.cli import main
    from dtckpt.format.verify import MISSING_SHARD, verify_bundle

    prefix = _all_shards(tmp_path, crafted.two_billion_shards())
    listings = []
    real = os.listdir
    monkeypatch.setattr(os, "listdir", lambda p=".": listings.append(p) or real(p))
    report = verify_bundle(prefix)
    assert [p.kind for p in report.problems] == [MISSING_SHARD]
    assert "2147483646 files" in report.problems[0].message
    assert len(listings) == 1
    assert main(["inspect", "--json", prefix]) == 0
    totals = json.loads(capsys.readouterr().out)["totals"]
    assert totals["missing_shard_count"] == 2**31 - 2
    assert totals["missing_shards"][:2] == [1, 2] and len(totals["missing_shards"]) == 1000
    assert main(["inspect", prefix]) == 0
    assert "(2147483646 in all)" in capsys.readouterr().err
    with BundleReader(prefix) as reader:
        assert reader.read("x").tolist() == [0.0, 1.0, 2.0, 3.0]


def test_archive_members_thousands_of_directories_deep(tmp_path: pathlib.Path) -> None:
    from dtckpt.archive import ArchiveReader, unpack

    path = tmp_path / "deep.dtar"
    path.write_bytes(crafted.deep_members()[1:])
    with ArchiveReader(str(path)) as reader:
        assert len(reader.names()) == 8
    report = unpack(str(path), str(tmp_path / "out"))
    assert report.files == 8
    fd = os.open(tmp_path / "out" / "d7", os.O_RDONLY)
    try:
        for _ in range(1999):
            child = os.open("c", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = child
        with os.fdopen(os.open("x", os.O_RDONLY, dir_fd=fd), "rb") as f:
            assert f.read() == b"deep"
    finally:
        os.close(fd)
    remove_tree(tmp_path / "out")


def test_an_archive_member_under_another_member_is_refused() -> None:
    from dtckpt.archive.layout import decode_toc
    from tests.fuzz.generators import build_archive

    data = build_archive([("a", b"1"), ("a-b/c", b"2"), ("a/b/c", b"3")])
    footer = struct.unpack("<QQII8s", data[-32:])
    with pytest.raises(DataLossError, match="'a/b/c' lies under member 'a'"):
        decode_toc(data[footer[0] : footer[0] + footer[1]], footer[0])


def test_an_archive_member_of_2_63_bytes_is_a_typed_error(tmp_path: pathlib.Path) -> None:
    from dtckpt.archive import ArchiveReader

    path = tmp_path / "big.dtar"
    path.write_bytes(crafted.member_of_2_63_bytes()[1:])
    with pytest.raises(DataLossError, match="exceeds the limit") as info:
        ArchiveReader(str(path))
    assert info.value.path == str(path) and info.value.offset is not None


def test_an_index_of_zeros_is_refused_before_it_is_decoded(tmp_path: pathlib.Path) -> None:
    import dtckpt

    path = tmp_path / "zeros.dtar"
    path.write_bytes(crafted.zeros_index()[1:])
    assert path.stat().st_size < 4096
    with TracedPeak() as traced:
        with pytest.raises(DataLossError, match="decodes to 67108864 bytes"):
            dtckpt.load_checkpoint(str(path))
    assert traced.peak < 1 << 20


def test_an_index_member_is_held_once(tmp_path: pathlib.Path) -> None:
    from dtckpt.archive import ArchiveReader
    from dtckpt.archive.frames import WORKERS
    from dtckpt.archive.members import CHUNK
    from tests.fuzz.generators import build_archive

    member = np.random.default_rng(0).integers(0, 256, 6 << 20, dtype=np.uint8).tobytes()
    path = tmp_path / "big.dtar"
    path.write_bytes(build_archive([("ckpt.index", member)], level=1))
    with ArchiveReader(str(path)) as reader, TracedPeak() as traced:
        view = reader.read_member_view("ckpt.index")
        assert view == member
    # The member once, and the frames being decoded (compressed and raw) on each worker.
    assert traced.peak < len(member) + WORKERS * 2 * CHUNK + (1 << 20)
    assert len(member) > WORKERS * 2 * CHUNK / 6  # so that holding it twice would fail


def test_safetensors_with_200000_dims_is_refused_at_once(tmp_path: pathlib.Path) -> None:
    from dtckpt.interop.safetensors_io import read_safetensors

    path = tmp_path / "dims.safetensors"
    path.write_bytes(crafted.safetensors_many_dims(200_000, 1 << 62)[1:])
    with pytest.raises(DataLossError, match=r"more than 2\*\*63") as info:
        read_safetensors(str(path))
    assert info.value.key == "t" and "(200000 dims)" in str(info.value)
    assert len(str(info.value)) < 1000


def test_interop_ranks_beyond_numpys_are_unsupported(tmp_path: pathlib.Path) -> None:
    from dtckpt.interop.npz_read import read_npz
    from dtckpt.interop.safetensors_io import read_safetensors

    (tmp_path / "a.safetensors").write_bytes(crafted.safetensors_rank_65()[1:])
    (tmp_path / "a.npz").write_bytes(crafted.npz_rank_65()[1:])
    for source in (
        read_safetensors(str(tmp_path / "a.safetensors")),
        read_npz(str(tmp_path / "a.npz")),
    ):
        with source:
            assert source.keys() == []
            [unsupported] = source.unsupported
            assert isinstance(unsupported.error, UnimplementedError)
            assert "65 dimensions" in unsupported.error.message


# --- H-WK-2: object graphs -------------------------------------------------------------------


def test_a_deep_chain_is_drawn_and_listed_in_linear_memory(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    import dtckpt
    from dtckpt.cli import main

    raw = crafted.deep_chain(20_000)
    prefix = str(tmp_path / "ckpt")
    dtckpt.save_v2(prefix, ["_CHECKPOINTABLE_OBJECT_GRAPH"], [""], [np.array(raw, dtype=object)])
    with TracedPeak() as traced:
        assert main(["inspect", "--tree", prefix]) == 0
    out = capsys.readouterr().out
    assert traced.peak < allowance(len(raw))
    assert "19936 more node(s) below" in out and len(out) < 200_000
    assert main(["inspect", "--tree", "--json", prefix]) == 0
    nodes = json.loads(capsys.readouterr().out)["object_graph"]["nodes"]
    assert len(nodes) == 20_001
    assert max(len(n["path"]) for n in nodes) <= 256
    assert nodes[-1]["path"].endswith("/layer/layer") and nodes[-1]["path"].startswith("\u2026")


def test_a_restore_checks_the_entry_before_reading_data(tmp_path: pathlib.Path) -> None:
    """H-BD-8: a stored tensor of the wrong shape is refused from its entry: its data (here
    damaged, which a read would report as a checksum error) is never read."""
    import dtckpt

    saved = dtckpt.Checkpoint(v=dtckpt.Variable(np.zeros((256, 256), np.float32)))
    prefix = saved.write(str(tmp_path / "ckpt"))
    with BundleReader(prefix) as reader:
        entry = reader.entry("v/.ATTRIBUTES/VARIABLE_VALUE")
    with open(prefix + ".data-00000-of-00001", "r+b") as f:
        f.seek(entry.offset + 100)
        f.write(b"\xff")
    target = dtckpt.Checkpoint(v=dtckpt.Variable(np.zeros(3, np.float32)))
    with pytest.raises(InvalidArgumentError, match=r"incompatible tensor with shape \(256, 256\)"):
        target.read(prefix)

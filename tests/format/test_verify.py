"""verify_bundle: every golden passes, and every kind of damage is found and located."""

from __future__ import annotations

import os
import pathlib
import shutil
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dtckpt
from dtckpt.dtypes import DataType
from dtckpt.errors import NotFoundError
from dtckpt.format import verify as vf
from dtckpt.format.bundle_writer import BundleWriter
from dtckpt.format.crc import crc32c, mask
from dtckpt.format.messages import (
    BIG,
    BundleEntry,
    BundleHeader,
    decode_entry,
    encode_entry,
    encode_header,
)
from dtckpt.format.ordered_code import encode_tensor_name_slice
from dtckpt.format.table import decode_table, encode_table
from dtckpt.format.varint import encode_varint
from dtckpt.format.verify import Problem, VerifyReport, verify_bundle
from tests.conftest import GOLDEN, Golden


def _copy(name: str, tmp_path: pathlib.Path) -> str:
    target = tmp_path / name
    shutil.copytree(GOLDEN / name, target)
    prefix = str(target / "ckpt")
    return prefix


def _rewrite_index(prefix: str, change) -> None:  # type: ignore[no-untyped-def]
    path = prefix + ".index"
    with open(path, "rb") as f:
        items = decode_table(f.read())
    with open(path, "wb") as f:
        f.write(encode_table(change(items)))


def _kinds(report: VerifyReport) -> list[str]:
    return [p.kind for p in report.problems]


def _entries(prefix: str) -> dict[bytes, BundleEntry]:
    with dtckpt.BundleReader(prefix) as reader:
        return reader.entries()


class Recorder:
    def __init__(self) -> None:
        self.total = -1
        self.done = 0
        self.finished = False

    def start(self, total: int, label: str = "", unit: str = "B") -> None:
        self.total = total

    def advance(self, amount: int) -> None:
        self.done += amount

    def finish(self) -> None:
        self.finished = True


# -- goldens -----------------------------------------------------------------


def test_every_golden_verifies(golden: Golden) -> None:
    progress = Recorder()
    report = verify_bundle(golden.prefix, progress=progress)
    assert report.ok, [str(p) for p in report.problems]
    entries = _entries(golden.prefix)
    stored = sum(e.size for e in entries.values() if not e.slices)
    assert report.entries == len(entries)
    assert report.bytes_checked == stored
    assert progress.total == stored and progress.done == stored and progress.finished


def test_open_reader_is_accepted_and_left_open() -> None:
    prefix = str(GOLDEN / "multi_shard" / "ckpt")
    with dtckpt.load_checkpoint(prefix) as reader:
        report = verify_bundle(reader.bundle)
        assert report.ok and report.shards == 3
        assert reader.get_tensor("alpha").shape == (3, 3)  # still usable


def test_missing_index_is_an_error(tmp_path: pathlib.Path) -> None:
    with pytest.raises(NotFoundError):
        verify_bundle(str(tmp_path / "nothing"))


# -- data damage -------------------------------------------------------------


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_flipped_data_byte_is_one_checksum_problem(
    tmp_path: pathlib.Path, data: st.DataObject
) -> None:
    """TF packs entries back to back, so each data byte belongs to exactly one entry."""
    name = data.draw(st.sampled_from(["dtypes", "strings", "multi_shard", "partitioned_tf1"]))
    prefix = str(tmp_path / name / "ckpt")
    if not os.path.exists(prefix + ".index"):
        shutil.copytree(GOLDEN / name, tmp_path / name)
    entries = _entries(prefix)
    shards = sorted({e.shard_id for e in entries.values() if not e.slices and e.size})
    shard = data.draw(st.sampled_from(shards))
    path = f"{prefix}.data-{shard:05d}-of-{len(list(tmp_path.glob(name + '/ckpt.data-*'))):05d}"
    size = os.path.getsize(path)
    position = data.draw(st.integers(0, size - 1))
    bit = data.draw(st.integers(0, 7))
    chunk = data.draw(st.sampled_from([vf.CHUNK_BYTES, 1, 7, 64]))
    with open(path, "r+b") as f:
        f.seek(position)
        original = f.read(1)
        f.seek(position)
        f.write(bytes([original[0] ^ (1 << bit)]))
    try:
        report = verify_bundle(prefix, chunk_bytes=chunk)
    finally:
        with open(path, "r+b") as f:
            f.seek(position)
            f.write(original)
    assert _kinds(report) == [vf.CHECKSUM], [str(p) for p in report.problems]
    problem = report.problems[0]
    assert problem.path == path
    assert problem.start is not None and problem.stop is not None
    assert problem.start <= position < problem.stop
    owners = [k for k, e in entries.items() if e.shard_id == shard and e.offset == problem.start]
    assert vf.show_key(owners[0]) == problem.key


@settings(max_examples=25, deadline=None)
@given(chunk=st.integers(1, 300))
def test_chunk_size_does_not_change_the_report(chunk: int) -> None:
    """The streaming pass (entries split over reads) equals one read per shard."""
    for name in ("strings", "dtensor", "sliced_savev2"):
        prefix = str(GOLDEN / name / "ckpt")
        assert verify_bundle(prefix, chunk_bytes=chunk) == verify_bundle(prefix)


def test_truncated_trailing_and_missing_shards_are_all_reported(tmp_path: pathlib.Path) -> None:
    prefix = _copy("multi_shard", tmp_path)
    shard = [f"{prefix}.data-0000{i}-of-00003" for i in range(3)]
    os.remove(shard[0])
    with open(shard[1], "ab") as f:
        f.write(b"\0\0\0")
    size = os.path.getsize(shard[2])
    os.truncate(shard[2], size - 5)
    report = verify_bundle(prefix)
    assert _kinds(report) == [vf.MISSING_SHARD, vf.TRAILING_BYTES, vf.TRUNCATED]
    missing, trailing, truncated = report.problems
    assert missing.path == shard[0] and "2 entries" in missing.message
    assert (trailing.path, trailing.start, trailing.stop) == (shard[1], 50, 53)
    assert truncated.path == shard[2] and truncated.key == "delta"
    assert (truncated.start, truncated.stop) == (36, 68)
    # everything that could still be read was checked: all but shard 0 (52 bytes) and delta
    assert report.bytes_checked == 170 - 52 - 32


def test_an_empty_unused_shard_must_exist(tmp_path: pathlib.Path) -> None:
    prefix = str(tmp_path / "ckpt")
    dtckpt.save_v2(prefix, ["x"], [""], [np.arange(3.0)])
    header = encode_header(BundleHeader(num_shards=2))
    _rewrite_index(prefix, lambda items: [(b"", header)] + items[1:])
    os.rename(prefix + ".data-00000-of-00001", prefix + ".data-00000-of-00002")
    report = verify_bundle(prefix)
    assert _kinds(report) == [vf.MISSING_SHARD]
    assert report.problems[0].path == prefix + ".data-00001-of-00002"
    assert report.problems[0].message == "data file is missing"
    open(prefix + ".data-00001-of-00002", "wb").close()
    assert verify_bundle(prefix).ok


def test_overlapping_entries(tmp_path: pathlib.Path) -> None:
    prefix = str(tmp_path / "ckpt")
    dtckpt.save_v2(prefix, ["a", "b"], ["", ""], [np.arange(4.0), np.arange(4.0)])

    def point_b_into_a(items):  # type: ignore[no-untyped-def]
        out = []
        for key, value in items:
            if key == b"b":
                value = encode_entry(decode_entry(value)._replace(offset=16))
            out.append((key, value))
        return out

    _rewrite_index(prefix, point_b_into_a)
    report = verify_bundle(prefix)
    assert _kinds(report) == [vf.OVERLAP, vf.TRAILING_BYTES, vf.CHECKSUM]
    overlap = report.problems[0]
    assert (overlap.key, overlap.start, overlap.stop) == ("b", 16, 32)
    assert "'a'" in overlap.message


def test_damaged_entry_is_reported_and_the_rest_checked(tmp_path: pathlib.Path) -> None:
    prefix = _copy("dtypes", tmp_path)
    keys = list(_entries(prefix))

    def break_first(items):  # type: ignore[no-untyped-def]
        return [(k, b"\xff" if k == keys[0] else v) for k, v in items]

    lost = _entries(prefix)[keys[0]].size
    _rewrite_index(prefix, break_first)
    report = verify_bundle(prefix)
    assert _kinds(report) == [vf.ENTRY]
    assert report.problems[0].key == keys[0].decode()
    assert report.problems[0].path == prefix + ".index"
    assert "cannot parse BundleEntryProto" in report.problems[0].message
    # its bytes are now a gap between other entries (V-VF-3); every other entry was checked
    total = sum(e.size for e in _entries(str(GOLDEN / "dtypes" / "ckpt")).values())
    assert report.bytes_checked == total - lost


def test_damaged_index_block_is_one_problem(tmp_path: pathlib.Path) -> None:
    prefix = _copy("many_blocks", tmp_path)
    with open(prefix + ".index", "r+b") as f:
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 1]))
    report = verify_bundle(prefix)
    assert _kinds(report) == [vf.INDEX]
    assert report.problems[0].path == prefix + ".index"
    assert report.problems[0].start == 0
    assert not report.ok and report.entries == 0


# -- slices ------------------------------------------------------------------


def test_missing_and_orphan_slices(tmp_path: pathlib.Path) -> None:
    prefix = _copy("partitioned_tf1", tmp_path)
    entries = _entries(prefix)
    full = entries[b"part_var"]
    dropped = encode_tensor_name_slice(b"part_var", full.slices[1])

    def drop_from_full(items):  # type: ignore[no-untyped-def]
        out = []
        for key, value in items:
            if key == b"part_var":
                entry = decode_entry(value)
                value = encode_entry(entry._replace(slices=entry.slices[:1] + entry.slices[2:]))
            out.append((key, value))
        return out

    _rewrite_index(prefix, drop_from_full)
    report = verify_bundle(prefix)
    assert _kinds(report) == [vf.SLICES, vf.SLICES]
    assert "hold 28 of the tensor's 40 elements" in report.problems[0].message
    assert report.problems[1].key == vf.show_key(dropped) == "part_var [4,3:0,4]"
    assert "not listed" in report.problems[1].message

    _rewrite_index(prefix, lambda items: [(k, v) for k, v in items if k != dropped])
    report = verify_bundle(prefix)
    # the slice's bytes are still in the data file, between two listed entries: a gap
    assert _kinds(report) == [vf.SLICES]


def test_overlapping_slices_and_wrong_slice_shape(tmp_path: pathlib.Path) -> None:
    prefix = str(tmp_path / "ckpt")
    w = np.arange(24, dtype=np.float32).reshape(4, 6)
    dtckpt.save_v2(prefix, ["w", "w"], ["4 6 0,2:-", "4 6 2,2:-"], [w[:2], w[2:]])

    def grow_second(items):  # type: ignore[no-untyped-def]
        out = []
        for key, value in items:
            if key == b"w":
                entry = decode_entry(value)
                value = encode_entry(entry._replace(slices=(entry.slices[0], ((1, 3), (0, -1)))))
            out.append((key, value))
        return out

    _rewrite_index(prefix, grow_second)
    report = verify_bundle(prefix)
    messages = [p.message for p in report.problems]
    assert _kinds(report) == [vf.SLICES, vf.SLICES, vf.SLICES], messages
    assert "listed slice has no entry" in messages[0]
    assert "overlap" in messages[1]
    assert "not listed" in messages[2]


def test_tiling_of_many_slices() -> None:
    grid = [((r, 1), (c, 1)) for r in range(40) for c in range(40)]
    assert vf._tiling_problem((40, 40), grid) is None
    assert "hold 1599" in (vf._tiling_problem((40, 40), grid[1:]) or "")
    doubled = grid + [((39, 1), (39, 1))]
    assert "overlap" in (vf._tiling_problem((40, 40), doubled) or "")
    columns = [((0, 4), (c, 1)) for c in range(300)]  # a layout sharded on dim 1 only
    assert vf._tiling_problem((4, 300), columns) is None


# -- strings, variants, big-endian -------------------------------------------


def write_variant_bundle(prefix: str, elements: list[bytes], *, big: bool = False) -> int:
    """A bundle holding one DT_VARIANT vector laid out as TF's WriteVariantTensor writes it."""
    order = ">" if big else "<"
    c = 0
    out = bytearray()
    for element in elements:
        out += encode_varint(len(element))
        c = crc32c(struct.pack(order + "Q", len(element)), c)
        out += element
        c = crc32c(element, c)
        word = struct.pack(order + "I", mask(c))
        out += word
        c = crc32c(word, c)
    with open(prefix + ".data-00000-of-00001", "wb") as f:
        f.write(out)
    entry = BundleEntry(int(DataType.DT_VARIANT), (len(elements),), 0, 0, len(out), mask(c))
    header = BundleHeader(endianness=BIG if big else 0)
    with open(prefix + ".index", "wb") as f:
        f.write(encode_table([(b"", encode_header(header)), (b"v", encode_entry(entry))]))
    return len(out)


@pytest.mark.parametrize("big", [False, True])
def test_variant_checksums(tmp_path: pathlib.Path, big: bool) -> None:
    prefix = str(tmp_path / "ckpt")
    size = write_variant_bundle(prefix, [b"", b"abc", b"x" * 300], big=big)
    assert verify_bundle(prefix).ok
    for position in (0, 2, size - 1):
        with open(prefix + ".data-00000-of-00001", "r+b") as f:
            f.seek(position)
            byte = f.read(1)
            f.seek(position)
            f.write(bytes([byte[0] ^ 0x10]))
        report = verify_bundle(prefix)
        assert _kinds(report) == [vf.CHECKSUM]
        assert (report.problems[0].start, report.problems[0].stop) == (0, size)
        with open(prefix + ".data-00000-of-00001", "r+b") as f:
            f.seek(position)
            f.write(byte)


def test_big_endian_strings_and_numbers(tmp_path: pathlib.Path) -> None:
    prefix = str(tmp_path / "ckpt")
    writer = BundleWriter(prefix, endianness=BIG)
    writer.add("s", np.array([b"ab", b"", b"xyz" * 100], dtype=object))
    writer.add("f", np.arange(5, dtype=np.float64))
    writer.finish()
    assert verify_bundle(prefix).ok
    data = prefix + ".data-00000-of-00001"
    with open(data, "r+b") as f:
        f.seek(2)  # inside the string lengths
        byte = f.read(1)
        f.seek(2)
        f.write(bytes([byte[0] ^ 1]))
    report = verify_bundle(prefix)
    assert [p.key for p in report.problems] == ["s"]


def test_problem_renders_as_one_line() -> None:
    p = Problem(vf.CHECKSUM, "ck.data-00000-of-00001", "w", 96, 192, "checksum does not match")
    assert str(p) == "ck.data-00000-of-00001: key 'w': bytes [96, 192): checksum does not match"
    q = Problem(vf.INDEX, "ck.index", None, 12, None, "block checksum mismatch")
    assert str(q) == "ck.index: byte offset 12: block checksum mismatch"

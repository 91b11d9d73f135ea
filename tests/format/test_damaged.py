"""Damaged bundles: each damage gives a typed error naming the file, key or offset.

The damage is applied to fresh copies of a TF-written golden checkpoint.
"""

from __future__ import annotations

import os
import pathlib
import shutil

import numpy as np
import pytest

import dtckpt
from dtckpt.errors import DataLossError, NotFoundError, OutOfRangeError
from dtckpt.format.messages import BundleHeader, decode_entry, encode_entry, encode_header
from dtckpt.format.table import decode_table, encode_table
from tests.conftest import GOLDEN


def _copy(name: str, tmp_path: pathlib.Path) -> str:
    target = tmp_path / name
    shutil.copytree(GOLDEN / name, target)
    return str(target / "ckpt")


def _rewrite_index(prefix: str, change) -> None:  # type: ignore[no-untyped-def]
    path = prefix + ".index"
    items = decode_table(open(path, "rb").read())
    items = change(items)
    with open(path, "wb") as f:
        f.write(encode_table(items))


def _read_all(prefix: str) -> None:
    reader = dtckpt.load_checkpoint(prefix)
    for key in reader.get_variable_to_shape_map():
        reader.get_tensor(key)


def test_truncated_index(tmp_path: pathlib.Path) -> None:
    prefix = _copy("dtypes", tmp_path)
    data = open(prefix + ".index", "rb").read()
    for size in (0, 10, 47, len(data) - 100, len(data) - 1):
        open(prefix + ".index", "wb").write(data[:size])
        with pytest.raises(DataLossError) as info:
            dtckpt.load_checkpoint(prefix)
        assert info.value.path == prefix + ".index"
        assert prefix + ".index" in str(info.value)


def test_bad_magic(tmp_path: pathlib.Path) -> None:
    prefix = _copy("dtypes", tmp_path)
    data = bytearray(open(prefix + ".index", "rb").read())
    data[-3] ^= 0x40
    open(prefix + ".index", "wb").write(bytes(data))
    with pytest.raises(DataLossError, match="bad magic") as info:
        dtckpt.load_checkpoint(prefix)
    assert info.value.offset == len(data) - 8


@pytest.mark.parametrize("position", [5, 100, 300])
def test_flipped_byte_in_index_block(tmp_path: pathlib.Path, position: int) -> None:
    prefix = _copy("dtypes", tmp_path)
    data = bytearray(open(prefix + ".index", "rb").read())
    data[position] ^= 0x10
    open(prefix + ".index", "wb").write(bytes(data))
    with pytest.raises(DataLossError, match="checksum mismatch") as info:
        dtckpt.load_checkpoint(prefix)
    assert info.value.offset is not None and info.value.offset <= position


def test_flipped_byte_in_data_file(tmp_path: pathlib.Path) -> None:
    prefix = _copy("dtypes", tmp_path)
    reader = dtckpt.load_checkpoint(prefix)
    entry = reader.bundle.entry("zeta_float32")
    path = prefix + ".data-00000-of-00001"
    data = bytearray(open(path, "rb").read())
    data[entry.offset + 3] ^= 0x01
    open(path, "wb").write(bytes(data))
    for mode in (False, True):
        with pytest.raises(DataLossError, match="Checksum does not match") as info:
            dtckpt.load_checkpoint(prefix, mmap=mode).get_tensor("zeta_float32")
        assert info.value.path == path
        assert info.value.key == b"zeta_float32"
        assert info.value.offset == entry.offset
    # Other tensors of the same file are still readable.
    assert dtckpt.load_checkpoint(prefix).get_tensor("int32").shape


def test_flipped_byte_in_string_lengths(tmp_path: pathlib.Path) -> None:
    prefix = _copy("strings", tmp_path)
    reader = dtckpt.load_checkpoint(prefix)
    key = next(k for k, s in reader.get_variable_to_shape_map().items() if s and s[0] > 1)
    entry = reader.bundle.entry(key)
    path = prefix + ".data-00000-of-00001"
    data = bytearray(open(path, "rb").read())
    data[entry.offset] ^= 0x01
    open(path, "wb").write(bytes(data))
    with pytest.raises(DataLossError, match="length checksum") as info:
        dtckpt.load_checkpoint(prefix).get_tensor(key)
    assert info.value.path == path and info.value.offset is not None


def test_missing_data_shard(tmp_path: pathlib.Path) -> None:
    prefix = _copy("multi_shard", tmp_path)
    os.remove(prefix + ".data-00001-of-00003")
    with pytest.raises(NotFoundError, match="data file is missing") as info:
        _read_all(prefix)
    assert info.value.path == prefix + ".data-00001-of-00003"


def test_header_num_shards_disagrees_with_files(tmp_path: pathlib.Path) -> None:
    prefix = _copy("multi_shard", tmp_path)

    def two_shards(items):  # type: ignore[no-untyped-def]
        return [(b"", encode_header(BundleHeader(num_shards=2)))] + items[1:]

    _rewrite_index(prefix, two_shards)
    with pytest.raises(Exception) as info:
        _read_all(prefix)
    # Either an entry's shard id is outside the header's range, or the files
    # named by the header do not exist; both name the problem.
    assert isinstance(info.value, (DataLossError, NotFoundError))
    assert "num_shards" in str(info.value) or "shard" in str(info.value)


def test_missing_data_file_lists_the_ones_found(tmp_path: pathlib.Path) -> None:
    prefix = _copy("dtypes", tmp_path)
    _rewrite_index(
        prefix, lambda items: [(b"", encode_header(BundleHeader(num_shards=2)))] + items[1:]
    )
    with pytest.raises(
        NotFoundError, match=r"num_shards=2.*found instead: ckpt.data-00000-of-00001"
    ):
        dtckpt.load_checkpoint(prefix).get_tensor("zeta_float32")


def _patch_entry(prefix: str, key: bytes, **changes) -> None:  # type: ignore[no-untyped-def]
    def change(items):  # type: ignore[no-untyped-def]
        out = []
        for k, v in items:
            if k == key:
                v = encode_entry(decode_entry(v)._replace(**changes))
            out.append((k, v))
        return out

    _rewrite_index(prefix, change)


def test_entry_size_beyond_file(tmp_path: pathlib.Path) -> None:
    prefix = _copy("dtypes", tmp_path)
    _patch_entry(prefix, b"alpha_float64", offset=10**6)
    with pytest.raises(OutOfRangeError) as info:
        dtckpt.load_checkpoint(prefix).get_tensor("alpha_float64")
    assert info.value.key == b"alpha_float64" and info.value.offset == 10**6


def test_truncated_data_file(tmp_path: pathlib.Path) -> None:
    prefix = _copy("dtypes", tmp_path)
    path = prefix + ".data-00000-of-00001"
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])
    with pytest.raises(OutOfRangeError, match="truncated"):
        _read_all(prefix)


def test_shape_claiming_terabytes_is_refused_without_allocating(tmp_path: pathlib.Path) -> None:
    prefix = _copy("dtypes", tmp_path)
    huge = (1 << 20, 1 << 20, 1 << 10)  # 4 TiB of float32
    _patch_entry(prefix, b"zeta_float32", shape=huge, size=4 * (1 << 50))
    with pytest.raises(OutOfRangeError):
        dtckpt.load_checkpoint(prefix).get_tensor("zeta_float32")
    _patch_entry(prefix, b"zeta_float32", shape=huge, size=24)
    with pytest.raises(DataLossError, match="does not match"):
        dtckpt.load_checkpoint(prefix).get_tensor("zeta_float32")


def test_string_count_claiming_too_much(tmp_path: pathlib.Path) -> None:
    prefix = _copy("strings", tmp_path)
    reader = dtckpt.load_checkpoint(prefix)
    key = next(iter(reader.get_variable_to_shape_map()))
    _patch_entry(prefix, key.encode(), shape=(1 << 40,))
    with pytest.raises(DataLossError, match="cannot fit"):
        dtckpt.load_checkpoint(prefix).get_tensor(key)


def test_partitioned_full_entry_claiming_terabytes(tmp_path: pathlib.Path) -> None:
    prefix = _copy("partitioned_tf1", tmp_path)
    # 70 tiny forged slices of a huge tensor: refused before any big allocation.
    slices = tuple(((i, 1), (0, 1), (0, 1 << 20)) for i in range(70))
    _patch_entry(prefix, b"part_var", shape=(1 << 20, 1 << 20, 1 << 20), slices=slices)
    with pytest.raises(DataLossError):
        dtckpt.load_checkpoint(prefix).get_tensor("part_var")


def test_unknown_dtype_and_bad_shard(tmp_path: pathlib.Path) -> None:
    prefix = _copy("dtypes", tmp_path)
    _patch_entry(prefix, b"int32", dtype=99)
    with pytest.raises(DataLossError, match="unknown dtype"):
        dtckpt.load_checkpoint(prefix).get_tensor("int32")
    _patch_entry(prefix, b"int8", shard_id=7)
    with pytest.raises(DataLossError, match="shard_id 7"):
        dtckpt.load_checkpoint(prefix).get_tensor("int8")


def test_version_checks(tmp_path: pathlib.Path) -> None:
    from dtckpt.format.messages import VersionDef

    prefix = _copy("dtypes", tmp_path)
    for version, message in [
        (VersionDef(producer=1, min_consumer=2), "needs a reader of version 2"),
        (VersionDef(producer=-1), "below the minimum"),
        (VersionDef(producer=1, bad_consumers=(1,)), "disallows readers of version 1"),
    ]:
        _rewrite_index(
            prefix,
            lambda items, v=version: [(b"", encode_header(BundleHeader(version=v)))] + items[1:],
        )
        with pytest.raises(dtckpt.errors.InvalidArgumentError, match=message):
            dtckpt.load_checkpoint(prefix)


def test_missing_header(tmp_path: pathlib.Path) -> None:
    prefix = _copy("dtypes", tmp_path)
    _rewrite_index(prefix, lambda items: items[1:])
    with pytest.raises(DataLossError, match="no bundle header"):
        dtckpt.load_checkpoint(prefix)


def test_missing_checkpoint(tmp_path: pathlib.Path) -> None:
    with pytest.raises(NotFoundError, match="no checkpoint at prefix") as info:
        dtckpt.load_checkpoint(str(tmp_path / "nothing"))
    assert str(tmp_path / "nothing") in str(info.value)
    with pytest.raises(NotFoundError, match="Couldn't find 'checkpoint' file"):
        dtckpt.load_checkpoint(str(tmp_path))


def test_garbage_entry_value(tmp_path: pathlib.Path) -> None:
    prefix = _copy("dtypes", tmp_path)
    _rewrite_index(
        prefix, lambda items: [(k, b"\x12\xff" if k == b"int8" else v) for k, v in items]
    )
    with pytest.raises(DataLossError, match="cannot parse BundleEntryProto") as info:
        dtckpt.load_checkpoint(prefix).get_tensor("int8")
    assert info.value.key == b"int8"
    np.testing.assert_equal(dtckpt.load_checkpoint(prefix).get_tensor("int32").dtype, np.int32)


def _damaged_rows(tmp_path: pathlib.Path) -> str:
    """A [4, 6] tensor stored as two row slices, with a byte of row 0 damaged."""
    prefix = str(tmp_path / "rows")
    value = np.arange(24, dtype=np.float32).reshape(4, 6)
    dtckpt.save_v2(prefix, ["v", "v"], ["4 6 0,2:-", "4 6 2,2:-"], [value[:2], value[2:]])
    path = prefix + ".data-00000-of-00001"
    data = bytearray(open(path, "rb").read())
    data[0] ^= 0x01
    open(path, "wb").write(bytes(data))
    return prefix


def test_read_needing_every_row_of_a_slice_verifies_it(tmp_path: pathlib.Path) -> None:
    prefix = _damaged_rows(tmp_path)
    # Columns 0..2 of all rows: every byte of the damaged slice is read, so it is checked.
    with pytest.raises(DataLossError, match="Checksum does not match"):
        dtckpt.restore_v2(prefix, ["v"], ["4 6 -:0,3"], ["float32"])


def test_read_of_other_rows_skips_the_damage(tmp_path: pathlib.Path) -> None:
    prefix = _damaged_rows(tmp_path)
    # Row 1 alone is read without row 0's bytes (rule F-RD-6): no checksum, correct values.
    (row,) = dtckpt.restore_v2(prefix, ["v"], ["4 6 1,2:-"], ["float32"])
    assert row.tolist() == np.arange(6, 18, dtype=np.float32).reshape(2, 6).tolist()


def test_prefix_compressed_key_bomb_is_refused(tmp_path: pathlib.Path) -> None:
    import struct

    from dtckpt.format import index
    from dtckpt.format.crc import crc32c, mask

    # One entry with a 100 KiB key, then entries that each repeat all of it for 4 bytes.
    header_value = encode_header(BundleHeader())
    body = bytearray(b"\x00\x00" + bytes((len(header_value),)) + header_value)
    first = b"k" * 100_000
    body += (
        b"\x00" + bytes.fromhex("a08d06") + b"\x00" + first
    )  # shared 0, non_shared 100000, value 0
    for i in range(3000):  # shared 100000, non_shared 2, value 0, increasing 2-byte suffixes
        body += bytes.fromhex("a08d06") + b"\x02\x00" + (i + 1).to_bytes(2, "big")
    block = bytes(body) + struct.pack("<II", 0, 1)
    magic = encode_table([(b"", header_value)])[-8:]
    trailer = b"\x00" + struct.pack("<I", mask(crc32c(b"\x00", crc32c(block))))
    # A table around the forged block: the usual empty metaindex, a one-entry index, the footer.
    from dtckpt.format.table import _BlockBuilder, _handle

    out = bytearray(block + trailer)
    handle = _handle(0, len(block))
    meta = _BlockBuilder(16).finish()
    meta_handle = _handle(len(out), len(meta))
    out += meta + b"\x00" + struct.pack("<I", mask(crc32c(b"\x00", crc32c(meta))))
    idx_block = _BlockBuilder(1)
    idx_block.add(b"\xff", handle)
    ib = idx_block.finish()
    idx_handle = _handle(len(out), len(ib))
    out += ib + b"\x00" + struct.pack("<I", mask(crc32c(b"\x00", crc32c(ib))))
    footer = meta_handle + idx_handle
    out += footer + b"\x00" * (40 - len(footer)) + magic
    prefix = str(tmp_path / "bomb")
    open(prefix + ".index", "wb").write(bytes(out))
    old = index.KEY_BYTES_BASE
    index.KEY_BYTES_BASE = 1 << 20  # the real bound is 64 MiB; a small one keeps the test light
    try:
        with pytest.raises(DataLossError, match="expand past the limit") as info:
            dtckpt.load_checkpoint(prefix)
        assert info.value.path == prefix + ".index"
    finally:
        index.KEY_BYTES_BASE = old

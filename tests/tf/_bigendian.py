"""Rewrite a little-endian single-shard bundle as a big-endian host would have written it.

Format notes §1.7 and §1.10: only tensor bytes depend on the writer's byte
order; the index (protos, varints, SSTable) never does. So the rewrite

* swaps every element of each numeric tensor in place (complex numbers as
  two floats; 1-byte types and bool are left alone) and recomputes the
  entry's CRC, which is taken over the bytes as stored;
* for each string tensor, stores the length checksum big-endian; that
  checksum is the CRC of the lengths as big-endian words, and the entry's
  CRC continues over the stored (big-endian) checksum word;
* sets ``endianness: BIG`` in the header and re-encodes the index.

Offsets and sizes do not change.
"""

from __future__ import annotations

import struct

import numpy as np

from dtckpt.dtypes import info
from dtckpt.format.crc import crc32c, mask
from dtckpt.format.messages import (
    BIG,
    LITTLE,
    BundleEntry,
    BundleHeader,
    decode_entry,
    decode_header,
    encode_entry,
    encode_header,
)
from dtckpt.format.naming import data_filename, index_filename
from dtckpt.format.table import decode_table, encode_table
from dtckpt.format.varint import decode_varint

__all__ = ["rewrite_big_endian"]


def rewrite_big_endian(prefix: str) -> None:
    with open(index_filename(prefix), "rb") as f:
        items = decode_table(f.read())
    header = decode_header(items[0][1])
    assert items[0][0] == b"" and header.num_shards == 1 and header.endianness == LITTLE
    data_path = data_filename(prefix, 0, 1)
    with open(data_path, "rb") as f:
        data = bytearray(f.read())
    big = BundleHeader(num_shards=header.num_shards, endianness=BIG, version=header.version)
    out = [(b"", encode_header(big))]
    for key, raw in items[1:]:
        entry = decode_entry(raw)
        if not entry.slices:  # the full entry of a partitioned tensor holds no data
            start, end = entry.offset, entry.offset + entry.size
            row = info(entry.dtype)
            if row.is_string:
                count = int(np.prod(entry.shape, dtype=np.int64))
                data[start:end], crc = _string_to_big(bytes(data[start:end]), count)
            else:
                data[start:end], crc = _numeric_to_big(bytes(data[start:end]), row.numpy)
            entry = BundleEntry(
                dtype=entry.dtype,
                shape=entry.shape,
                shard_id=entry.shard_id,
                offset=entry.offset,
                size=entry.size,
                crc32c=crc,
                slices=entry.slices,
            )
        out.append((key, encode_entry(entry)))
    with open(data_path, "wb") as f:
        f.write(data)
    with open(index_filename(prefix), "wb") as f:
        f.write(encode_table(out))


def _numeric_to_big(chunk: bytes, dtype: np.dtype) -> tuple[bytes, int]:
    width = dtype.itemsize // 2 if dtype.kind == "c" else dtype.itemsize
    if width > 1 and chunk:
        chunk = np.frombuffer(chunk, dtype=np.uint8).reshape(-1, width)[:, ::-1].tobytes()
    return chunk, mask(crc32c(chunk))


def _string_to_big(chunk: bytes, count: int) -> tuple[bytes, int]:
    pos, c = 0, 0
    for _ in range(count):
        length, pos = decode_varint(chunk, pos)
        c = crc32c(struct.pack(">I" if length <= 0xFFFFFFFF else ">Q", length), c)
    word = struct.pack(">I", mask(c))
    c = crc32c(word, c)
    c = crc32c(chunk[pos + 4 :], c)
    return chunk[:pos] + word + chunk[pos + 4 :], mask(c)

"""The ``.index`` file: a LevelDB-format SSTable (rules F-IX-1 .. F-IX-8).

::

    [data block][trailer] ... [metaindex block][trailer] [index block][trailer] [footer]

    block   = entry* restart_offset:fixed32* num_restarts:fixed32
    entry   = shared:varint non_shared:varint value_len:varint key_suffix value
    trailer = compression:u8 masked_crc32c(block + compression):fixed32
    footer  = metaindex_handle index_handle <zero pad to 40> magic:fixed64   (48 bytes)
    handle  = offset:varint64 size:varint64          (size excludes the trailer)

Keys within a block are prefix-compressed against the previous key; every
``restart_interval``-th key is stored whole and its offset recorded, so a
reader can binary-search. The index block maps a separator key (>= every key
of a data block, < every key of the next) to that block's handle.

TensorFlow's tensor bundles use 256 KiB blocks, a restart interval of 16 for
data blocks and 1 for the index block, no compression, and an empty
metaindex block (``tensorflow/core/util/tensor_bundle/tensor_bundle.cc``,
``third_party/xla/xla/tsl/lib/io/table_builder.cc``, ``block_builder.cc``,
``format.cc``). The encoder here reproduces TF's files byte for byte.

The decoders take any bytes (``spec/hostile-input.md``): handles, restart
counts and entry lengths are checked against the bytes present (rules H-BD-1,
H-BD-3), key expansion against a budget (H-BD-5). They are fuzzed (H-FZ-1),
and every input that once broke them is replayed by the tests (H-FZ-2).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

import numpy as np

from ..errors import DataLossError, UnimplementedError
from .crc import crc32c, mask, unmask
from .varint import decode_varint, decode_varint32, encode_varint

__all__ = [
    "MAGIC",
    "FOOTER_SIZE",
    "BLOCK_TRAILER_SIZE",
    "BLOCK_SIZE",
    "RESTART_INTERVAL",
    "NO_COMPRESSION",
    "SNAPPY_COMPRESSION",
    "encode_block",
    "decode_block",
    "encode_table",
    "decode_table",
    "data_blocks",
    "entries_limit",
    "key_budget",
    "KEY_BYTES_BASE",
    "KEY_BYTES_PER_BYTE",
    "find_shortest_separator",
    "find_short_successor",
]

MAGIC = 0xDB4775248B80FB57  # rule F-IX-7
FOOTER_SIZE = 48
BLOCK_TRAILER_SIZE = 5
BLOCK_SIZE = 262144  # rule F-IX-6: TF's TableOptions.block_size
RESTART_INTERVAL = 16
NO_COMPRESSION, SNAPPY_COMPRESSION = 0, 1
_MAX_HANDLE_BYTES = 20
#: Rule H-BD-5: keys are prefix-compressed, so a few bytes can repeat a long key and a block
#: of n bytes can describe about n**2 / 20 key bytes (200 MiB for 64 KiB). Real tables stay
#: far below this bound (a few times their size); a forged one is refused before its keys
#: are materialised.
KEY_BYTES_BASE = 64 << 20
KEY_BYTES_PER_BYTE = 16


def key_budget(table_bytes: int) -> int:
    """The most key bytes a table of ``table_bytes`` bytes may expand to (rule H-BD-5)."""
    return KEY_BYTES_BASE + KEY_BYTES_PER_BYTE * table_bytes


def shared_prefix(a: bytes, b: bytes) -> int:
    """How many leading bytes ``a`` and ``b`` have in common.

    Short keys are compared byte by byte; long ones (the keys of deeply nested
    objects run to kilobytes) as two big integers, whose XOR's highest set bit is
    the first byte that differs: linear work in C instead of a Python loop.
    """
    limit = min(len(a), len(b))
    if limit <= _SHORT_KEY:
        shared = 0
        while shared < limit and a[shared] == b[shared]:
            shared += 1
        return shared
    differ = int.from_bytes(a[:limit], "big") ^ int.from_bytes(b[:limit], "big")
    return limit - (differ.bit_length() + 7) // 8


_SHORT_KEY = 64


class _BlockBuilder:
    """Accumulates sorted key/value pairs into one block (TF's ``BlockBuilder``, rule F-IX-2)."""

    def __init__(self, restart_interval: int) -> None:
        self.restart_interval = restart_interval
        self.buffer = bytearray()
        self.restarts = [0]
        self.counter = 0
        self.last_key = b""

    def add(self, key: bytes, value: bytes) -> None:
        shared = 0
        if self.counter < self.restart_interval:
            shared = shared_prefix(self.last_key, key)
        else:
            self.restarts.append(len(self.buffer))
            self.counter = 0
        buf = self.buffer
        buf += encode_varint(shared)
        buf += encode_varint(len(key) - shared)
        buf += encode_varint(len(value))
        buf += key[shared:]
        buf += value
        self.last_key = key
        self.counter += 1

    def size_estimate(self) -> int:
        return len(self.buffer) + 4 * len(self.restarts) + 4

    def empty(self) -> bool:
        return not self.buffer

    def finish(self) -> bytes:
        tail = struct.pack(f"<{len(self.restarts) + 1}I", *self.restarts, len(self.restarts))
        return bytes(self.buffer) + tail


def encode_block(items: Iterable[tuple[bytes, bytes]], restart_interval: int = 16) -> bytes:
    """One block holding ``items`` (already sorted)."""
    builder = _BlockBuilder(restart_interval)
    for key, value in items:
        builder.add(key, value)
    return builder.finish()


def decode_block(
    block: bytes | memoryview, max_key_bytes: int | None = None
) -> list[tuple[bytes, bytes]]:
    """All key/value pairs of one block (trailer already removed and checked).

    ``max_key_bytes`` bounds the total length of the keys (rule H-BD-5): a block whose keys
    would expand past it raises :class:`DataLossError` before they are built.
    """
    view = memoryview(block)
    limit = entries_limit(view)
    items: list[tuple[bytes, bytes]] = []
    key = b""
    total = 0
    pos = 0
    while pos < limit:
        entry_start = pos
        b0 = view[pos]
        if b0 < 0x80 and pos + 3 <= limit and view[pos + 1] < 0x80 and view[pos + 2] < 0x80:
            shared, non_shared, value_len = b0, view[pos + 1], view[pos + 2]
            pos += 3
        else:  # rule F-IX-2: varint32, at most 5 bytes
            shared, pos = decode_varint32(view[:limit], pos)
            non_shared, pos = decode_varint32(view[:limit], pos)
            value_len, pos = decode_varint32(view[:limit], pos)
        if shared > len(key) or non_shared + value_len > limit - pos:
            raise DataLossError("corrupt block entry", offset=entry_start)
        total += shared + non_shared
        if max_key_bytes is not None and total > max_key_bytes:
            raise DataLossError(
                f"the keys of this block expand past the limit of {max_key_bytes} bytes",
                offset=entry_start,
            )
        key = key[:shared] + bytes(view[pos : pos + non_shared])
        pos += non_shared
        items.append((key, bytes(view[pos : pos + value_len])))
        pos += value_len
    return items


def find_shortest_separator(start: bytes, limit: bytes) -> bytes:
    """A short key k with ``start <= k < limit`` (LevelDB's bytewise comparator; rule F-IX-8)."""
    n = min(len(start), len(limit))
    i = 0
    while i < n and start[i] == limit[i]:
        i += 1
    if i >= n:
        return start  # one is a prefix of the other
    byte = start[i]
    if byte < 0xFF and byte + 1 < limit[i]:
        return start[:i] + bytes((byte + 1,))
    return start


def find_short_successor(key: bytes) -> bytes:
    """A short key >= ``key``: bump its first non-0xff byte and cut after it (rule F-IX-8)."""
    for i, byte in enumerate(key):
        if byte != 0xFF:
            return key[:i] + bytes((byte + 1,))
    return key


def _handle(offset: int, size: int) -> bytes:
    return encode_varint(offset) + encode_varint(size)


def encode_table(
    items: Iterable[tuple[bytes, bytes]],
    *,
    block_size: int = BLOCK_SIZE,
    restart_interval: int = RESTART_INTERVAL,
) -> bytes:
    """Serialize sorted, unique key/value pairs as a whole ``.index`` file.

    Follows ``TableBuilder::Add``/``Flush``/``Finish`` step for step, including
    TF's rule of flushing before an entry of at least twice the block size.
    """
    out = bytearray()
    data = _BlockBuilder(restart_interval)
    index = _BlockBuilder(1)
    pending: bytes | None = None
    last_key: bytes | None = None
    num_entries = 0

    def write_block(block: bytes) -> bytes:  # block + trailer (rules F-IX-5, F-CRC-3)
        handle = _handle(len(out), len(block))
        out.extend(block)
        trailer_type = bytes((NO_COMPRESSION,))
        out.extend(trailer_type)
        out.extend(struct.pack("<I", mask(crc32c(trailer_type, crc32c(block)))))
        return handle

    def flush() -> None:
        nonlocal pending, data
        if data.empty():
            return
        pending = write_block(data.finish())
        data = _BlockBuilder(restart_interval)

    for key, value in items:
        if last_key is not None and key <= last_key:
            raise ValueError(f"table keys must be strictly increasing: {key!r} after {last_key!r}")
        if num_entries > 0 and len(key) + len(value) >= 2 * block_size:
            flush()
        if pending is not None:
            assert last_key is not None
            index.add(find_shortest_separator(last_key, key), pending)
            pending = None
        data.add(key, value)
        last_key = key
        num_entries += 1
        if data.size_estimate() >= block_size:
            flush()

    flush()
    metaindex_handle = write_block(_BlockBuilder(restart_interval).finish())
    if pending is not None:
        assert last_key is not None
        index.add(find_short_successor(last_key), pending)
    index_handle = write_block(index.finish())
    footer = metaindex_handle + index_handle
    footer += b"\x00" * (2 * _MAX_HANDLE_BYTES - len(footer))
    footer += struct.pack("<II", MAGIC & 0xFFFFFFFF, MAGIC >> 32)  # fixed-width LE (F-VI-2)
    out.extend(footer)
    return bytes(out)


def _read_handle(buf: memoryview, pos: int, file_size: int) -> tuple[int, int, int]:
    offset, pos = decode_varint(buf, pos)
    size, pos = decode_varint(buf, pos)
    if offset + size + BLOCK_TRAILER_SIZE > file_size:
        raise DataLossError(
            f"block handle ({offset}, {size}) points past the end of the {file_size}-byte table"
        )
    return offset, size, pos


def _read_block(data: memoryview, offset: int, size: int) -> memoryview:
    """The block at ``offset`` after checking its trailer (rules F-IX-5, F-CRC-3)."""
    block = data[offset : offset + size]
    kind = data[offset + size]
    stored = int.from_bytes(data[offset + size + 1 : offset + size + 5], "little")
    actual = crc32c(data[offset : offset + size + 1])
    if unmask(stored) != actual:
        raise DataLossError("block checksum mismatch", offset=offset)
    if kind == SNAPPY_COMPRESSION:
        raise UnimplementedError(
            "Snappy-compressed table block: TensorFlow has not written these for bundles "
            "since 1.2 and dtckpt does not decompress them",
            offset=offset,
        )
    if kind != NO_COMPRESSION:
        raise DataLossError(f"unknown block compression type {kind}", offset=offset + size)
    return block


def data_blocks(data: bytes | memoryview) -> list[tuple[int, int]]:
    """``(offset, size)`` of every data block, in key order, checksums verified (rule F-RD-1).

    Checks the footer, the magic number and the index block on the way;
    raises :class:`DataLossError` with the byte offset of the damage.
    """
    view = memoryview(data)
    size = len(view)
    if size < FOOTER_SIZE:
        raise DataLossError(
            f"file is {size} bytes, shorter than the {FOOTER_SIZE}-byte table footer "
            "(truncated, or not an sstable)"
        )
    footer_at = size - FOOTER_SIZE
    magic_lo, magic_hi = struct.unpack_from("<II", view, size - 8)
    if (magic_hi << 32) | magic_lo != MAGIC:
        raise DataLossError("not an sstable (bad magic number)", offset=size - 8)
    _, _, pos = _read_handle(view, footer_at, footer_at)
    index_offset, index_size, _ = _read_handle(view, pos, footer_at)
    index_block = _read_block(view, index_offset, index_size)
    try:
        index_entries = decode_block(index_block, key_budget(size))
    except DataLossError as exc:
        raise exc.located(base_offset=index_offset) from None
    blocks = []
    end = 0
    for _, handle in index_entries:
        try:
            block_offset, block_size, _ = _read_handle(memoryview(handle), 0, index_offset)
        except DataLossError as exc:
            raise DataLossError(
                f"bad block handle in index block: {exc.message}", offset=index_offset
            ) from None
        # Rule H-BD-3: writers lay data blocks out one after another, so the handles must
        # follow each other. Without this, many handles naming one large block would make the
        # checksum work grow with the square of the file size.
        if block_offset < end:
            raise DataLossError(
                f"data block at {block_offset} overlaps or precedes the block ending at {end}",
                offset=index_offset,
            )
        _read_block(view, block_offset, block_size)
        blocks.append((block_offset, block_size))
        end = block_offset + block_size + BLOCK_TRAILER_SIZE
    return blocks


def entries_limit(block: bytes | memoryview | np.ndarray) -> int:
    """Where a block's entries end (its restart array starts), after checking the count (F-IX-2,
    H-BD-1)."""
    size = len(block)
    if size < 4:
        raise DataLossError("block too short for its restart count", offset=0)
    num_restarts = int.from_bytes(block[size - 4 :], "little")
    if num_restarts > (size - 4) // 4:
        raise DataLossError(f"block claims {num_restarts} restart points", offset=size - 4)
    return size - 4 - 4 * num_restarts


def decode_table(data: bytes | memoryview) -> list[tuple[bytes, bytes]]:
    """Every key/value pair of an SSTable, in order, with every checksum verified.

    Raises :class:`DataLossError` with the byte offset of the damage, and for a table whose
    keys would expand past :func:`key_budget` of its size (rule H-BD-5).
    """
    view = memoryview(data)
    items: list[tuple[bytes, bytes]] = []
    previous: bytes | None = None
    budget = key_budget(len(view))
    for block_offset, block_size in data_blocks(view):
        try:
            block_items = decode_block(view[block_offset : block_offset + block_size], budget)
        except DataLossError as exc:
            raise exc.located(base_offset=block_offset) from None
        budget -= sum(len(key) for key, _ in block_items)
        for key, value in block_items:
            if previous is not None and key <= previous:
                raise DataLossError("keys out of order", key=key, offset=block_offset)
            previous = key
            items.append((key, value))
    return items

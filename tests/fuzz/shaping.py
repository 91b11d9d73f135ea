"""Turning a fuzzer's bytes into inputs that get past the cheap gates (rule H-FZ-2).

A random change to a ``.index`` file almost always breaks a block checksum, and the reader then
stops at the first trailer. So the targets repair what a fuzzer cannot guess: before decoding,
:func:`fix_table_checksums` rewrites the masked CRC-32C of every block trailer it can find, and
:func:`fix_string_checksums` does the same for the two checksums of a ``DT_STRING`` tensor.
Everything else (lengths, counts, handles, varints, protobuf fields) stays as the fuzzer made it.

Inputs that hold more than one file (a bundle: index plus data) are split by a fixed header::

    u32le word | index bytes | data bytes
      bit 31 of word: open the bundle with mmap=True
      bits 0..30:     length of the index (clipped to what is there)

:func:`mutate` is the structure-blind mutator the hypothesis runs use on valid seeds: byte
flips, interesting values written over varints and fixed-width words, cuts, repeats, splices.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from dtckpt.errors import CheckpointError
from dtckpt.format.crc import crc32c, mask
from dtckpt.format.table import BLOCK_TRAILER_SIZE, FOOTER_SIZE
from dtckpt.format.varint import decode_varint

__all__ = [
    "fix_table_checksums",
    "fix_string_checksums",
    "split_bundle_input",
    "join_bundle_input",
    "mutate",
    "MUTATIONS",
]

_MMAP_BIT = 1 << 31


def _fix_block(out: bytearray, offset: int, size: int, limit: int) -> bool:
    """Rewrite the trailer checksum of the block at ``offset``; False if it is out of range."""
    if offset < 0 or size < 0 or offset + size + BLOCK_TRAILER_SIZE > limit:
        return False
    checksum = mask(crc32c(bytes(out[offset : offset + size + 1])))
    out[offset + size + 1 : offset + size + 5] = struct.pack("<I", checksum)
    return True


def _handle(buf: bytes | bytearray, pos: int) -> tuple[int, int, int]:
    offset, pos = decode_varint(buf, pos)
    size, pos = decode_varint(buf, pos)
    return offset, size, pos


def _block_values(block: bytes) -> list[bytes]:
    """The values of a block's entries, as far as they can be read; keys are skipped, so a
    forged block cannot make the harness itself expand keys."""
    if len(block) < 4:
        return []
    restarts = int.from_bytes(block[-4:], "little")
    limit = len(block) - 4 - 4 * restarts
    values = []
    pos = 0
    try:
        while 0 <= pos < limit:
            _, pos = decode_varint(block, pos)
            non_shared, pos = decode_varint(block, pos)
            value_len, pos = decode_varint(block, pos)
            pos += non_shared
            if pos + value_len > limit:
                break
            values.append(block[pos : pos + value_len])
            pos += value_len
    except CheckpointError:
        pass
    return values


def fix_table_checksums(data: bytes) -> bytes:
    """``data`` with the checksum of every reachable SSTable block recomputed.

    Follows the footer to the metaindex and index blocks and the index block to the data
    blocks, leniently: whatever cannot be followed is left alone for the decoder to reject.
    """
    if len(data) < FOOTER_SIZE:
        return data
    out = bytearray(data)
    footer_at = len(out) - FOOTER_SIZE
    try:
        meta_offset, meta_size, pos = _handle(out, footer_at)
        index_offset, index_size, _ = _handle(out, pos)
    except CheckpointError:
        return data
    _fix_block(out, meta_offset, meta_size, footer_at)
    if not _fix_block(out, index_offset, index_size, footer_at):
        return bytes(out)
    for value in _block_values(bytes(out[index_offset : index_offset + index_size])):
        try:
            offset, size, _ = _handle(value, 0)
        except CheckpointError:
            continue
        _fix_block(out, offset, size, index_offset)
    return bytes(out)


def fix_string_checksums(buf: bytes, count: int, *, big_endian: bool) -> tuple[bytes, int]:
    """Make the length checksum of a string tensor match; return it and its entry ``crc32c``.

    Rule F-ST-2: the word after the ``count`` length varints is the masked CRC of the lengths,
    and the entry's checksum runs over the lengths, that word and the element bytes. Lengths
    that cannot be decoded leave ``buf`` as it is (the decoder must then refuse it).
    """
    from dtckpt.format.strings import string_length_checksum

    lengths = []
    pos = 0
    try:
        for _ in range(min(count, len(buf))):
            n, pos = decode_varint(buf, pos)
            lengths.append(n)
    except CheckpointError:
        return buf, mask(crc32c(buf))
    if len(lengths) != count or pos + 4 > len(buf):
        return buf, mask(crc32c(buf))
    c = string_length_checksum(lengths, big_endian=big_endian)
    word = struct.pack(">I" if big_endian else "<I", mask(c))
    fixed = buf[:pos] + word + buf[pos + 4 :]
    c = crc32c(word, c)
    c = crc32c(fixed[pos + 4 :], c)
    return fixed, mask(c)


def split_bundle_input(data: bytes) -> tuple[bytes, bytes, bool]:
    """``(index, data_file, use_mmap)`` from one fuzzer input (layout in the module docstring)."""
    if len(data) < 4:
        return data, b"", False
    word = int.from_bytes(data[:4], "little")
    rest = data[4:]
    cut = min(word & (_MMAP_BIT - 1), len(rest))
    return rest[:cut], rest[cut:], bool(word & _MMAP_BIT)


def join_bundle_input(index: bytes, data_file: bytes, *, use_mmap: bool = False) -> bytes:
    """The inverse of :func:`split_bundle_input`, to build seeds."""
    word = len(index) | (_MMAP_BIT if use_mmap else 0)
    return struct.pack("<I", word) + index + data_file


# Values that sit on the edges decoders test: varint continuation bits, sign bits, 2**31, 2**63.
_INTERESTING_BYTES = (0x00, 0x01, 0x7F, 0x80, 0xFF, 0x3A, 0x12, 0x08)
_INTERESTING_WORDS = (
    b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",  # 2**64 - 1 as a varint
    b"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01",  # an 11-byte varint
    b"\x80\x80\x80\x80\x80\x00",  # 0 as a 6-byte varint: too long for a varint32
    b"\xff\xff\xff\xff\x0f",  # 2**32 - 1
    b"\x80\x80\x80\x80\x10",  # 2**32
    b"\xff\xff\xff\xff\xff\xff\xff\xff\x7f",  # 2**63 - 1
    b"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01",  # 2**63
    b"\xff\xff\xff\x7f",
    b"\x00\x00\x00\x80",
    b"\xff\xff\xff\xff",
    b"\x00\x00\x00\x00",
)

#: The mutation operators, by name: each takes (buffer, position, argument).
MUTATIONS = ("flip", "set", "word", "cut", "insert", "repeat", "truncate")


def _apply(buf: bytearray, op: str, pos: int, arg: int) -> None:
    if not buf and op not in ("insert", "word"):
        return
    at = pos % (len(buf) + 1)
    if op == "flip" and buf:
        buf[at % len(buf)] ^= 1 << (arg % 8)
    elif op == "set" and buf:
        buf[at % len(buf)] = _INTERESTING_BYTES[arg % len(_INTERESTING_BYTES)]
    elif op == "word":
        word = _INTERESTING_WORDS[arg % len(_INTERESTING_WORDS)]
        buf[at : at + len(word)] = word
    elif op == "cut":
        del buf[at : at + 1 + arg % 16]
    elif op == "insert":
        buf[at:at] = bytes((arg % 256,)) * (1 + arg // 256 % 8)
    elif op == "repeat" and buf:
        chunk = bytes(buf[at : at + 1 + arg % 32])
        buf[at:at] = chunk * (1 + arg // 32 % 4)
    elif op == "truncate":
        del buf[at:]


def mutate(seed: bytes, ops: Sequence[tuple[str, int, int]]) -> bytes:
    """Apply ``ops`` (operator name, position, argument) to ``seed`` in order."""
    buf = bytearray(seed)
    for op, pos, arg in ops:
        _apply(buf, op, pos, arg)
    return bytes(buf)

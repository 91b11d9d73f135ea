"""DT_STRING tensors inside a data file (rule F-ST-1).

An N-element string tensor is stored as::

    varint64 len[0] ... varint64 len[N-1]    lengths, row-major order
    fixed32  mask(c_len)                      checksum of the lengths so far
    bytes    elem[0] ... elem[N-1]            no separators

and its entry's ``crc32c`` is ``mask(c)`` of the running checksum ``c`` (rule F-ST-2):

1. ``c`` starts at 0 and is extended, for each length, with the length as a
   4-byte word (8-byte if it does not fit in 32 bits) *in the writer's byte
   order* -- not with the varint bytes;
2. ``mask(c)`` is written as 4 bytes and ``c`` is extended with those 4 bytes;
3. ``c`` is extended with every element's bytes.

Source: ``tensorflow/core/util/tensor_bundle/tensor_bundle.cc``
(``WriteStringTensor``, ``ReadStringTensor``). The encoder and decoder here
take and return bytes only.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np

from ..errors import DataLossError
from .crc import crc32c, mask, unmask
from .varint import decode_varint, encode_varint

__all__ = ["encode_string_tensor", "decode_string_tensor", "string_length_checksum"]

_U32_MAX = 0xFFFFFFFF


def string_length_checksum(lengths: Sequence[int], *, big_endian: bool = False) -> int:
    """Step 1 of rule F-ST-2: the CRC of the lengths as fixed-width words."""
    order = ">" if big_endian else "<"
    if all(n <= _U32_MAX for n in lengths):
        return crc32c(np.asarray(lengths, dtype=order + "u4").tobytes())
    c = 0
    for n in lengths:
        c = crc32c(struct.pack(order + ("I" if n <= _U32_MAX else "Q"), n), c)
    return c


def encode_string_tensor(
    elements: Sequence[bytes], *, big_endian: bool = False
) -> tuple[list[bytes], int, int]:
    """Encode ``elements`` (row-major); return ``(chunks, masked_crc32c, size)``.

    The chunks are returned separately so that a writer can stream them
    without concatenating large strings. ``big_endian`` produces what a
    big-endian host writes (length words and checksum word big-endian).
    """
    lengths = [len(e) for e in elements]
    header = b"".join(encode_varint(n) for n in lengths)
    c = string_length_checksum(lengths, big_endian=big_endian)
    length_word = struct.pack(">I" if big_endian else "<I", mask(c))
    c = crc32c(length_word, c)
    for element in elements:
        c = crc32c(element, c)
    size = len(header) + 4 + sum(lengths)
    return [header, length_word, *elements], mask(c), size


def decode_string_tensor(
    buf: bytes | memoryview | np.ndarray, count: int, stored_crc: int, *, big_endian: bool = False
) -> np.ndarray:
    """Decode ``count`` strings from an entry's bytes into a 1-D object array.

    Verifies the length checksum, then the whole checksum (both masked), and
    raises :class:`DataLossError` with the offset inside ``buf`` on damage.
    """
    view = buf.data if isinstance(buf, np.ndarray) else memoryview(buf)
    size = len(view)
    # Each length is at least one byte, plus the 4-byte checksum word: this
    # bounds ``count`` by the real size before anything is allocated (rule H-BD-1).
    if count + 4 > size:
        raise DataLossError(f"string tensor of {count} elements cannot fit in {size} bytes")
    lengths = []
    pos = 0
    for _ in range(count):
        n, pos = decode_varint(view, pos)
        lengths.append(n)
    if pos + 4 > size:
        raise DataLossError("string tensor ends inside its length checksum", offset=pos)
    raw_word = view[pos : pos + 4]
    stored_length_crc = int.from_bytes(raw_word, "big" if big_endian else "little")
    c = string_length_checksum(lengths, big_endian=big_endian)
    if unmask(stored_length_crc) != c:
        raise DataLossError("string tensor length checksum does not match", offset=pos)
    c = crc32c(raw_word, c)
    pos += 4
    total = sum(lengths)
    if total != size - pos:
        raise DataLossError(
            f"string lengths add up to {total} bytes but {size - pos} bytes follow", offset=pos
        )
    c = crc32c(view[pos:], c)
    if mask(c) != stored_crc:
        raise DataLossError("string tensor checksum does not match")
    out = np.empty(count, dtype=object)
    data = bytes(view[pos:])
    start = 0
    for i, n in enumerate(lengths):
        out[i] = data[start : start + n]
        start += n
    return out

"""LEB128 variable-length integers, as protobuf, LevelDB and TF's string tensors use them.

::

    value 300 = 0b10_0101100  ->  ac 02
                                  |  '-- high group (0b10), no continuation bit
                                  '----- low 7 bits (0b0101100) | 0x80 continuation

A varint64 is at most 10 bytes (rule F-VI-1), a varint32 at most 5 (F-IX-2).
Decoders never read past the buffer and never accept a byte more: a damaged
length can only produce a typed error, not a huge number that is then used
to allocate (rule H-BD-2).
"""

from __future__ import annotations

from ..errors import DataLossError

__all__ = [
    "MAX_VARINT64_BYTES",
    "MAX_VARINT32_BYTES",
    "encode_varint",
    "decode_varint",
    "decode_varint32",
    "varint_size",
]

MAX_VARINT64_BYTES = 10
#: LevelDB's ``kMaxVarint32Bytes``: block entries (rule F-IX-2) use these shorter varints.
MAX_VARINT32_BYTES = 5
_U64 = (1 << 64) - 1


def encode_varint(value: int) -> bytes:
    """Encode a non-negative integer < 2**64 (callers map negatives to uint64 first)."""
    if 0 <= value < _TABLE_SIZE:
        return _TABLE[value]
    if value < 0 or value > _U64:
        raise ValueError(f"varint value out of range: {value}")
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _encode_small(value: int) -> bytes:
    return bytes((value,)) if value < 0x80 else bytes(((value & 0x7F) | 0x80, value >> 7))


#: Every one- and two-byte varint, made once: tags, lengths and sizes in the messages of
#: a save are nearly all below 2**14, and each would otherwise build its bytes anew.
_TABLE_SIZE = 1 << 14
_TABLE = [_encode_small(v) for v in range(_TABLE_SIZE)]


def varint_size(value: int) -> int:
    """Number of bytes :func:`encode_varint` produces for ``value``."""
    return max(1, (value.bit_length() + 6) // 7)


def decode_varint(buf: bytes | bytearray | memoryview, pos: int = 0) -> tuple[int, int]:
    """Decode one varint64 at ``buf[pos:]``; return ``(value, next_pos)``.

    Raises :class:`DataLossError` (with the offset of the varint) when the
    buffer ends inside it or it is longer than 10 bytes or above 2**64-1.
    """
    start = pos
    end = len(buf)
    if pos < end:
        byte = buf[pos]
        if byte < 0x80:
            return byte, pos + 1
    result, pos = _decode(buf, pos, MAX_VARINT64_BYTES, "varint")
    if result > _U64:
        raise DataLossError("varint exceeds 64 bits", offset=start)
    return result, pos


def decode_varint32(buf: bytes | bytearray | memoryview, pos: int = 0) -> tuple[int, int]:
    """Decode one varint32 (at most 5 bytes, rule F-IX-2) at ``buf[pos:]``.

    The value is kept whole (up to 35 bits), as the block kernels keep it, so that a value
    above 2**32 - 1 fails the caller's bounds checks rather than being silently cut. Raises
    :class:`DataLossError` when the buffer ends inside the varint or a 6th byte would follow.
    """
    return _decode(buf, pos, MAX_VARINT32_BYTES, "varint32")


def _decode(
    buf: bytes | bytearray | memoryview, pos: int, max_bytes: int, name: str
) -> tuple[int, int]:
    """The loop both decoders share: at most ``max_bytes`` bytes, the value kept whole."""
    start = pos
    end = len(buf)
    result = 0
    for shift in range(0, 7 * max_bytes, 7):
        if pos >= end:
            raise DataLossError("truncated varint", offset=start)
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
    raise DataLossError(f"{name} longer than {max_bytes} bytes", offset=start)

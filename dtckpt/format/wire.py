"""A minimal protobuf wire-format codec: just what checkpoint messages need.

A message is a sequence of fields, each a tag varint ``(number << 3) | wire_type``
followed by its payload (rule F-PB-1)::

    wire type 0  VARINT   int32/int64/uint/bool/enum   08 96 01     (field 1 = 150)
    wire type 1  I64      fixed64 / double             11 <8 bytes LE>
    wire type 2  LEN      bytes/string/sub-message     12 03 61 62 63
    wire type 5  I32      fixed32 / float              35 <4 bytes LE>

Encoders follow proto3 as TensorFlow's C++ serializer does: fields in number
order, scalars equal to zero omitted, negative int32/int64 sign-extended to ten
varint bytes. The decoder yields raw fields and skips unknown ones, so newer
writers that add fields stay readable. It is fuzzed with the message decoders
built on it (rule H-FZ-1): whatever the bytes, it yields fields or raises
:class:`DataLossError`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from ..errors import DataLossError
from .varint import decode_varint, encode_varint

__all__ = [
    "VARINT",
    "I64",
    "LEN",
    "I32",
    "tag",
    "field_varint",
    "field_bytes",
    "field_fixed32",
    "field_double",
    "iter_fields",
    "iter_spans",
    "as_int32",
    "as_int64",
]

VARINT, I64, LEN, I32 = 0, 1, 2, 5
_U64 = (1 << 64) - 1


def tag(number: int, wire_type: int) -> bytes:
    return encode_varint((number << 3) | wire_type)


def field_varint(number: int, value: int, *, keep_zero: bool = False) -> bytes:
    """An int/enum/bool field; zero is omitted unless ``keep_zero`` (proto3 presence)."""
    if value == 0 and not keep_zero:
        return b""
    return tag(number, VARINT) + encode_varint(value & _U64)


def field_bytes(number: int, value: bytes, *, keep_empty: bool = False) -> bytes:
    """A string/bytes/sub-message field; empty is omitted unless ``keep_empty``."""
    if not value and not keep_empty:
        return b""
    return tag(number, LEN) + encode_varint(len(value)) + value


def field_fixed32(number: int, value: int, *, keep_zero: bool = False) -> bytes:
    if value == 0 and not keep_zero:
        return b""
    return tag(number, I32) + struct.pack("<I", value)


def field_double(number: int, value: float, *, keep_zero: bool = False) -> bytes:
    if value == 0.0 and not keep_zero:
        return b""
    return tag(number, I64) + struct.pack("<d", value)


def iter_fields(
    buf: bytes | memoryview, start: int = 0, end: int | None = None
) -> Iterator[tuple[int, int, int | memoryview]]:
    """Yield ``(field_number, wire_type, value)`` for each field of a message.

    ``value`` is an ``int`` for VARINT/I64/I32 and a ``memoryview`` slice for LEN.
    Every length is checked against the message end before it is used.
    """
    view = buf if isinstance(buf, memoryview) else memoryview(buf)
    for number, wire_type, value, stop in iter_spans(view, start, end):
        yield number, wire_type, view[value:stop] if wire_type == LEN else value


def iter_spans(
    buf: bytes | memoryview, start: int = 0, end: int | None = None
) -> Iterator[tuple[int, int, int, int]]:
    """Yield ``(field_number, wire_type, value, stop)`` for each field of ``buf[start:end]``.

    For LEN fields ``value`` is the offset of the payload in ``buf`` and ``stop`` its end,
    so callers can keep offsets instead of slices; for the others ``value`` is the number
    and ``stop`` the offset after the field.
    """
    view = buf if isinstance(buf, memoryview) else memoryview(buf)
    if end is not None:
        view = view[:end]  # rule H-BD-1: no varint may run past the message into what follows
    pos = start
    stop = len(view)
    while pos < stop:
        field_start = pos
        key = view[pos]
        if key < 0x80:  # one-byte tags and lengths are the rule: skip the call
            pos += 1
        else:
            key, pos = decode_varint(view, pos)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise DataLossError("protobuf field number 0", offset=field_start)
        if wire_type == VARINT:
            value, pos = decode_varint(view, pos)
            if pos > stop:
                raise DataLossError("protobuf varint runs past message end", offset=field_start)
            yield number, wire_type, value, pos
        elif wire_type == LEN:
            length = view[pos] if pos < stop else 0x80
            if length < 0x80:
                pos += 1
            else:
                length, pos = decode_varint(view, pos)
            if length > stop - pos:
                raise DataLossError(
                    f"protobuf field {number} claims {length} bytes, only {stop - pos} left",
                    offset=field_start,
                )
            yield number, wire_type, pos, pos + length
            pos += length
        elif wire_type == I32:
            if stop - pos < 4:
                raise DataLossError("truncated fixed32 field", offset=field_start)
            yield number, wire_type, int.from_bytes(view[pos : pos + 4], "little"), pos + 4
            pos += 4
        elif wire_type == I64:
            if stop - pos < 8:
                raise DataLossError("truncated fixed64 field", offset=field_start)
            yield number, wire_type, int.from_bytes(view[pos : pos + 8], "little"), pos + 8
            pos += 8
        else:
            raise DataLossError(
                f"unsupported protobuf wire type {wire_type} (field {number})", offset=field_start
            )


def as_int64(value: int) -> int:
    """Reinterpret a decoded uint64 varint as a signed int64."""
    return value - (1 << 64) if value >= 1 << 63 else value


def as_int32(value: int) -> int:
    """Reinterpret a decoded varint as int32 (the low 32 bits, signed), as protobuf does."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value

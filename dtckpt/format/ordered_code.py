"""OrderedCode: the key encoding of slices of partitioned tensors.

A slice of tensor ``K`` is stored under the key (rule F-SL-3)::

    00 | escape(K) 00 01 | num(rank) | snum(start_0) snum(length_0) | ...

    e.g. K="foo", slice "-:0,1" -> 00 | 66 6f 6f 00 01 | 01 02 | 80 7f | 80 81

* ``num(u)`` (``WriteNumIncreasing``): a length byte, then ``u`` big-endian
  without leading zero bytes: 0 -> ``00``, 2 -> ``01 02``, 300 -> ``02 01 2c``.
* ``escape(s)`` (``WriteString``): ``00`` becomes ``00 ff``, ``ff`` becomes
  ``ff 00``; ``00 01`` terminates.
* ``snum(v)`` (``WriteSignedNumIncreasing``): a self-delimiting signed code
  whose first bits say the length, so that byte order equals numeric order.
  A full extent is encoded as start 0, length -1.

Keys starting with ``00`` sort right after the header key and before every
ordinary tensor name. Source: ``tensorflow/core/lib/strings/ordered_code.cc``
and ``tensorflow/core/util/saved_tensor_slice_util.cc``.
"""

from __future__ import annotations

from ..errors import DataLossError

__all__ = [
    "encode_num_increasing",
    "decode_num_increasing",
    "encode_string",
    "decode_string",
    "encode_signed_num_increasing",
    "decode_signed_num_increasing",
    "encode_tensor_name_slice",
    "decode_tensor_name_slice",
]

# Length in bytes of the signed code for each bit length 0..63 of |v| (after ~ for negatives).
_SIGNED_LENGTH = [1] * 7 + [2] * 7 + [3] * 7 + [4] * 7 + [5] * 7 + [6] * 7 + [7] * 7
_SIGNED_LENGTH += [8] * 7 + [9] * 7 + [10]
# XOR masks for the first two bytes of a code of each length (index = length).
_SIGNED_HEADER = [
    (0x00, 0x00),
    (0x80, 0x00),
    (0xC0, 0x00),
    (0xE0, 0x00),
    (0xF0, 0x00),
    (0xF8, 0x00),
    (0xFC, 0x00),
    (0xFE, 0x00),
    (0xFF, 0x00),
    (0xFF, 0x80),
    (0xFF, 0xC0),
]
_MAX_SIGNED_BYTES = 10
# The same masks placed over a code of each length, and the value bits each length keeps.
_SIGNED_HEADER_BITS = [0] + [
    (first << 8 * (n - 1)) | (second << 8 * (n - 2) if n > 1 else 0)
    for n, (first, second) in enumerate(_SIGNED_HEADER[1:], start=1)
]
_SIGNED_MASK = [(1 << 8 * n) - 1 for n in range(_MAX_SIGNED_BYTES + 1)]
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


def encode_num_increasing(value: int) -> bytes:
    """TF's ``WriteNumIncreasing`` (rule F-SL-4)."""
    if value < 0 or value >= 1 << 64:
        raise ValueError(f"unsigned ordered-code value out of range: {value}")
    body = value.to_bytes(8, "big").lstrip(b"\x00")
    return bytes((len(body),)) + body


def decode_num_increasing(buf: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(buf):
        raise DataLossError("truncated ordered-code number", offset=pos)
    length = buf[pos]
    if length > 8 or pos + 1 + length > len(buf):
        raise DataLossError("bad ordered-code number", offset=pos)
    return int.from_bytes(buf[pos + 1 : pos + 1 + length], "big"), pos + 1 + length


def encode_string(value: bytes) -> bytes:
    """Escape ``value`` and terminate it with ``00 01`` (TF's ``WriteString``)."""
    return _escape(value) + b"\x00\x01"


def _escape(value: bytes) -> bytes:
    out = bytearray()
    for byte in value:
        if byte == 0x00:
            out += b"\x00\xff"
        elif byte == 0xFF:
            out += b"\xff\x00"
        else:
            out.append(byte)
    return bytes(out)


def decode_string(buf: bytes, pos: int) -> tuple[bytes, int]:
    out = bytearray()
    end = len(buf)
    start = pos
    while pos < end:
        byte = buf[pos]
        if byte not in (0x00, 0xFF):
            out.append(byte)
            pos += 1
            continue
        if pos + 1 >= end:
            break
        nxt = buf[pos + 1]
        if byte == 0x00 and nxt == 0x01:
            return bytes(out), pos + 2
        if byte == 0x00 and nxt == 0xFF:
            out.append(0x00)
        elif byte == 0xFF and nxt == 0x00:
            out.append(0xFF)
        else:
            raise DataLossError("bad escape in ordered-code string", offset=pos)
        pos += 2
    raise DataLossError("unterminated ordered-code string", offset=start)


def encode_signed_num_increasing(value: int) -> bytes:
    """TF's ``WriteSignedNumIncreasing`` (rule F-SL-4): byte order equals numeric order."""
    if value < -(1 << 63) or value >= 1 << 63:
        raise ValueError(f"signed ordered-code value out of range: {value}")
    x = ~value if value < 0 else value
    if x < 64:
        return bytes(((value & 0xFF) ^ 0x80,))
    length = _SIGNED_LENGTH[x.bit_length()]
    # The value's two's-complement bytes, as many as the code is long, with the header
    # XOR-ed over its first two.
    code = (value & _SIGNED_MASK[length]) ^ _SIGNED_HEADER_BITS[length]
    return code.to_bytes(length, "big")


def decode_signed_num_increasing(buf: bytes, pos: int) -> tuple[int, int]:
    """Decode one :func:`encode_signed_num_increasing` code at ``buf[pos:]``.

    The first bit is the sign (1 = non-negative); the code is as many bytes
    long as the run of leading bits equal to the sign bit. XOR-ing the header
    back off leaves the value's two's-complement bytes.
    """
    if pos >= len(buf):
        raise DataLossError("truncated ordered-code signed number", offset=pos)
    first = buf[pos]
    negative = first < 0x80
    filler = 0xFF if negative else 0x00
    second = buf[pos + 1] if pos + 1 < len(buf) else filler
    word = (first << 8) | second
    if negative:
        word ^= 0xFFFF
    length = 0
    while length < 16 and (word >> (15 - length)) & 1:
        length += 1
    if not 1 <= length <= _MAX_SIGNED_BYTES or pos + length > len(buf):
        raise DataLossError("bad ordered-code signed number", offset=pos)
    code = bytearray(buf[pos : pos + length])
    head_first, head_second = _SIGNED_HEADER[length]
    code[0] ^= head_first
    if length > 1:
        code[1] ^= head_second
    value = int.from_bytes(code, "big", signed=True)
    # A 10-byte code has room for more bits than an int64 holds; TF's ReadSignedNumIncreasing
    # refuses codes above 63 value bits, and no writer can produce such an extent (rule H-BD-6).
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise DataLossError("ordered-code signed number outside int64", offset=pos)
    return value, pos + length


def encode_tensor_name_slice(name: bytes, tensor_slice: tuple[tuple[int, int], ...]) -> bytes:
    """The index key of one stored slice of tensor ``name`` (rule F-SL-3)."""
    parts = [b"\x00", _escape(name), b"\x00\x01", encode_num_increasing(len(tensor_slice))]
    for start, length in tensor_slice:
        parts.append(encode_signed_num_increasing(start))
        parts.append(encode_signed_num_increasing(length))
    return b"".join(parts)


def decode_tensor_name_slice(key: bytes) -> tuple[bytes, tuple[tuple[int, int], ...]]:
    """Inverse of :func:`encode_tensor_name_slice`."""
    if not key.startswith(b"\x00"):
        raise DataLossError("not a slice key", key=key)
    name, pos = decode_string(key, 1)
    rank, pos = decode_num_increasing(key, pos)
    if rank > 64:
        raise DataLossError(f"slice key rank {rank} is implausible", key=key)
    extents = []
    for _ in range(rank):
        start, pos = decode_signed_num_increasing(key, pos)
        length, pos = decode_signed_num_increasing(key, pos)
        extents.append((start, length))
    if pos != len(key):
        raise DataLossError("trailing bytes after slice key", key=key, offset=pos)
    return name, tuple(extents)

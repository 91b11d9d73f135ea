"""The protobuf messages of a tensor bundle, as frozen dataclasses with encode/decode.

Field numbers are those of ``tensorflow/core/protobuf/tensor_bundle.proto``,
``tensor_shape.proto``, ``tensor_slice.proto`` and ``versions.proto`` (rule
F-PB-2)::

    BundleHeaderProto  1 num_shards int32 | 2 endianness enum | 3 version VersionDef
    VersionDef         1 producer int32   | 2 min_consumer int32 | 3 bad_consumers repeated int32
    BundleEntryProto   1 dtype | 2 shape TensorShapeProto | 3 shard_id int32 | 4 offset int64
                       5 size int64 | 6 crc32c fixed32 | 7 slices repeated TensorSliceProto
    TensorShapeProto   2 dim repeated Dim{1 size int64, 2 name string} | 3 unknown_rank bool
    TensorSliceProto   1 extent repeated Extent{1 start int64, 2 length int64 (oneof)}

Encoding matches TensorFlow's serializer byte for byte (rule F-PB-3): ``shape``
and ``version`` are always written (``12 00`` for a scalar), zero scalars are
omitted, an extent covering its whole dimension is the empty message ``0a 00``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from ..errors import DataLossError
from . import wire
from .varint import decode_varint, encode_varint
from .wire import as_int32, as_int64, field_bytes, field_fixed32, field_varint, iter_fields

__all__ = [
    "LITTLE",
    "BIG",
    "FULL_LENGTH",
    "Extent",
    "TensorSlice",
    "VersionDef",
    "BundleHeader",
    "BundleEntry",
    "encode_shape",
    "decode_shape",
    "encode_slice",
    "decode_slice",
    "encode_header",
    "decode_header",
    "encode_entry",
    "decode_entry",
    "decode_entry_generic",
]

LITTLE, BIG = 0, 1
#: ``length`` of an extent that covers the whole dimension (TF's ``kFullExtent``).
FULL_LENGTH = -1

Extent = tuple[int, int]
"""``(start, length)``; ``length == FULL_LENGTH`` means the whole dimension."""
TensorSlice = tuple[Extent, ...]


@dataclass(frozen=True)
class VersionDef:
    producer: int = 1
    min_consumer: int = 0
    bad_consumers: tuple[int, ...] = ()


@dataclass(frozen=True)
class BundleHeader:
    """The record under the empty key (rule F-IX-3)."""

    num_shards: int = 1
    endianness: int = LITTLE
    version: VersionDef = field(default_factory=VersionDef)


class BundleEntry(NamedTuple):
    """Where and how one tensor (or one slice of one) is stored (rule F-IX-4).

    An entry with non-empty ``slices`` is the *full entry* of a partitioned
    tensor: it holds no data itself, its slices are stored under slice keys.
    (A ``NamedTuple`` rather than a frozen dataclass: an index may hold
    hundreds of thousands of entries and this record is built for each.)
    """

    dtype: int
    shape: tuple[int, ...]
    shard_id: int = 0
    offset: int = 0
    size: int = 0
    crc32c: int = 0
    slices: tuple[TensorSlice, ...] = ()


def encode_shape(shape: tuple[int, ...]) -> bytes:
    return b"".join(field_bytes(2, field_varint(1, d), keep_empty=True) for d in shape)


def decode_shape(buf: memoryview) -> tuple[int, ...]:
    dims: list[int] = []
    for number, wire_type, value in iter_fields(buf):
        if number == 2 and wire_type == wire.LEN:
            size = 0
            assert isinstance(value, memoryview)
            for dnum, dwire, dval in iter_fields(value):
                if dnum == 1 and dwire == wire.VARINT:
                    size = as_int64(int(dval))  # type: ignore[arg-type]
            dims.append(size)
        elif number == 3 and wire_type == wire.VARINT and value:
            raise DataLossError("checkpoint shape has unknown rank")
    return tuple(dims)


def encode_slice(tensor_slice: TensorSlice) -> bytes:
    parts = []
    for start, length in tensor_slice:
        body = field_varint(1, start)
        if length != FULL_LENGTH:
            body += field_varint(2, length, keep_zero=True)
        parts.append(field_bytes(1, body, keep_empty=True))
    return b"".join(parts)


def decode_slice(buf: memoryview) -> TensorSlice:
    extents: list[Extent] = []
    for number, wire_type, value in iter_fields(buf):
        if number == 1 and wire_type == wire.LEN:
            start, length = 0, FULL_LENGTH
            assert isinstance(value, memoryview)
            for enum_, ewire, evalue in iter_fields(value):
                if ewire != wire.VARINT:
                    continue
                if enum_ == 1:
                    start = as_int64(int(evalue))  # type: ignore[arg-type]
                elif enum_ == 2:
                    length = as_int64(int(evalue))  # type: ignore[arg-type]
            extents.append((start, length))
    return tuple(extents)


def encode_header(header: BundleHeader) -> bytes:
    version = header.version
    # repeated int32 is packed in proto3, as TF writes it: 1a <len> <varints>
    packed = b"".join(encode_varint(c & 0xFFFFFFFFFFFFFFFF) for c in version.bad_consumers)
    version_bytes = (
        field_varint(1, version.producer)
        + field_varint(2, version.min_consumer)
        + field_bytes(3, packed)
    )
    return (
        field_varint(1, header.num_shards)
        + field_varint(2, header.endianness)
        + field_bytes(3, version_bytes, keep_empty=True)
    )


def decode_header(buf: bytes | memoryview) -> BundleHeader:
    num_shards, endianness = 0, LITTLE
    producer, min_consumer, bad = 0, 0, []
    for number, wire_type, value in iter_fields(buf):
        if number == 1 and wire_type == wire.VARINT:
            num_shards = as_int32(int(value))  # type: ignore[arg-type]
        elif number == 2 and wire_type == wire.VARINT:
            endianness = int(value)  # type: ignore[arg-type]
        elif number == 3 and wire_type == wire.LEN:
            assert isinstance(value, memoryview)
            for vnum, vwire, vval in iter_fields(value):
                if vwire == wire.VARINT:
                    if vnum == 1:
                        producer = as_int32(int(vval))  # type: ignore[arg-type]
                    elif vnum == 2:
                        min_consumer = as_int32(int(vval))  # type: ignore[arg-type]
                    elif vnum == 3:
                        bad.append(as_int32(int(vval)))  # type: ignore[arg-type]
                elif vnum == 3 and vwire == wire.LEN:  # packed repeated int32
                    assert isinstance(vval, memoryview)
                    pos = 0
                    while pos < len(vval):
                        item, pos = decode_varint(vval, pos)
                        bad.append(as_int32(item))
    return BundleHeader(num_shards, endianness, VersionDef(producer, min_consumer, tuple(bad)))


def encode_entry(entry: BundleEntry) -> bytes:
    """Serialize a ``BundleEntryProto`` exactly as TF does (rule F-PB-3)."""
    out = [
        field_varint(1, entry.dtype),
        field_bytes(2, encode_shape(entry.shape), keep_empty=True),
        field_varint(3, entry.shard_id),
        field_varint(4, entry.offset),
        field_varint(5, entry.size),
        field_fixed32(6, entry.crc32c),
    ]
    out.extend(field_bytes(7, encode_slice(s), keep_empty=True) for s in entry.slices)
    return b"".join(out)


def decode_entry(buf: bytes | memoryview) -> BundleEntry:
    """Parse a ``BundleEntryProto``.

    Entries written by TensorFlow use single-byte tags in field order, so a
    straight-line parser handles them without the generic field iterator;
    anything unusual (unknown fields, long varints, damage) is handed to
    :func:`decode_entry_generic`, which has the full checks.
    """
    data = bytes(buf)
    try:
        return _decode_entry_fast(data)
    except (_NotSimple, IndexError, DataLossError):
        return decode_entry_generic(data)


class _NotSimple(Exception):
    """The fast path met something it leaves to the generic decoder."""


def _decode_entry_fast(b: bytes) -> BundleEntry:
    n = len(b)
    pos = 0
    dtype = shard_id = offset = size = crc = 0
    shape: tuple[int, ...] = ()
    slices: tuple[TensorSlice, ...] = ()
    while pos < n:
        tag = b[pos]
        if tag == 0x35:  # crc32c, fixed32
            if pos + 5 > n:
                raise _NotSimple
            crc = b[pos + 1] | b[pos + 2] << 8 | b[pos + 3] << 16 | b[pos + 4] << 24
            pos += 5
            continue
        value, pos = _varint(b, pos + 1)
        if tag == 0x08:
            dtype = value
        elif tag == 0x12:  # shape: repeated Dim{size}, each "12 len 08 size"
            end = pos + value
            if end > n:
                raise _NotSimple
            dims = []
            while pos < end:
                if b[pos] != 0x12:
                    raise _NotSimple
                length = b[pos + 1]
                if length == 0:
                    dims.append(0)
                    pos += 2
                    continue
                if b[pos + 2] != 0x08 or length > 11:
                    raise _NotSimple
                dim, after = _varint(b, pos + 3)
                if after != pos + 2 + length:
                    raise _NotSimple
                dims.append(dim)
                pos = after
            if pos != end:
                raise _NotSimple
            shape = tuple(dims)
        elif tag == 0x18:
            shard_id = value
        elif tag == 0x20:
            offset = value
        elif tag == 0x28:
            size = value
        elif tag == 0x3A:  # slices are rare: reparse the whole entry generically
            raise _NotSimple
        else:
            raise _NotSimple
    # Values the generic decoder reinterprets as negative (and anything that
    # does not fit the int64 columns of the batch parser) take the slow path.
    if (
        offset >= 1 << 63
        or size >= 1 << 63
        or shard_id >= 1 << 31
        or dtype >= 1 << 63
        or any(d >= 1 << 63 for d in shape)
    ):
        raise _NotSimple
    return BundleEntry(dtype, shape, shard_id, offset, size, crc, slices)


def _varint(b: bytes, pos: int) -> tuple[int, int]:
    byte = b[pos]
    if byte < 0x80:
        return byte, pos + 1
    value, end = decode_varint(b, pos)
    if end > len(b):
        raise _NotSimple
    return value, end


def decode_entry_generic(buf: bytes | memoryview) -> BundleEntry:
    """Parse a ``BundleEntryProto`` with the generic wire decoder (full checks)."""
    dtype = 0
    shape: tuple[int, ...] = ()
    shard_id = offset = size = crc = 0
    slices: list[TensorSlice] = []
    for number, wire_type, value in iter_fields(buf):
        if wire_type == wire.VARINT:
            if number == 1:
                dtype = int(value)  # type: ignore[arg-type]
            elif number == 3:
                shard_id = as_int32(int(value))  # type: ignore[arg-type]
            elif number == 4:
                offset = as_int64(int(value))  # type: ignore[arg-type]
            elif number == 5:
                size = as_int64(int(value))  # type: ignore[arg-type]
        elif wire_type == wire.LEN:
            assert isinstance(value, memoryview)
            if number == 2:
                shape = decode_shape(value)
            elif number == 7:
                slices.append(decode_slice(value))
        elif number == 6 and wire_type == wire.I32:
            crc = int(value)  # type: ignore[arg-type]
    return BundleEntry(dtype, shape, shard_id, offset, size, crc, tuple(slices))

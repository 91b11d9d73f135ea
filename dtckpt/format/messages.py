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
                    size = as_int64(int(dval))
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
                    start = as_int64(int(evalue))
                elif enum_ == 2:
                    length = as_int64(int(evalue))
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
            num_shards = as_int32(int(value))
        elif number == 2 and wire_type == wire.VARINT:
            endianness = int(value)
        elif number == 3 and wire_type == wire.LEN:
            assert isinstance(value, memoryview)
            for vnum, vwire, vval in iter_fields(value):
                if vwire == wire.VARINT:
                    if vnum == 1:
                        producer = as_int32(int(vval))
                    elif vnum == 2:
                        min_consumer = as_int32(int(vval))
                    elif vnum == 3:
                        bad.append(as_int32(int(vval)))
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
    """Parse one ``BundleEntryProto`` with the generic wire decoder (full checks).

    Whole indexes are decoded in bulk by ``dtckpt.kernels.parse_bundle_entries``;
    this decoder serves the rows that parser leaves to it and single entries.
    """
    dtype = 0
    shape: tuple[int, ...] = ()
    shard_id = offset = size = crc = 0
    slices: list[TensorSlice] = []
    for number, wire_type, value in iter_fields(buf):
        if wire_type == wire.VARINT:
            if number == 1:
                dtype = int(value)
            elif number == 3:
                shard_id = as_int32(int(value))
            elif number == 4:
                offset = as_int64(int(value))
            elif number == 5:
                size = as_int64(int(value))
        elif wire_type == wire.LEN:
            assert isinstance(value, memoryview)
            if number == 2:
                shape = decode_shape(value)
            elif number == 7:
                slices.append(decode_slice(value))
        elif number == 6 and wire_type == wire.I32:
            crc = int(value)
    return BundleEntry(dtype, shape, shard_id, offset, size, crc, tuple(slices))

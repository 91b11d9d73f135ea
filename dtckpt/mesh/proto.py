"""``MeshProto`` and ``LayoutProto``, byte for byte as TensorFlow serializes them (rule M-PB-1).

Field numbers are those of ``tensorflow/dtensor/proto/layout.proto``::

    MeshDimensionProto  1 name string | 2 size int64
    MeshProto           1 mesh_dimensions repeated MeshDimensionProto
                        2 global_device_ids repeated int64 (packed) | 3 name string
                        4 local_device_ids repeated int64 (packed)
                        5 local_devices repeated string | 6 global_devices repeated string
                        7 use_xla_spmd bool | 8 single_device string
    ShardingSpec        2 sharding_spec string
    LayoutProto         1 sharding_specs repeated ShardingSpec | 2 mesh_config MeshProto
                        3 type enum (UNKNOWN 0, STATIC 1, PARTED 2, SINGLE_DEVICE 3)

Fields go out in number order, proto3 style: empty strings, zeros and false
are omitted, except inside repeated fields, where every element is written
(an empty ``ShardingSpec`` is ``0a 00``). ``mesh_config`` is always written.
The decoders accept the packed and unpacked spellings of the id lists and
skip unknown fields.

The records keep TensorFlow's method names (``SerializeToString``,
``FromString``) so code written against ``layout_pb2`` reads the same.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import DataLossError
from ..format import wire
from ..format.varint import decode_varint, encode_varint
from ..format.wire import as_int64, field_bytes, field_varint, iter_fields

__all__ = [
    "MeshDimensionProto",
    "MeshProto",
    "ShardingSpec",
    "LayoutProto",
    "encode_mesh_proto",
    "decode_mesh_proto",
    "encode_layout_proto",
    "decode_layout_proto",
]

_U64 = (1 << 64) - 1


@dataclass(frozen=True)
class MeshDimensionProto:
    name: str = ""
    size: int = 0


@dataclass(frozen=True)
class MeshProto:
    mesh_dimensions: tuple[MeshDimensionProto, ...] = ()
    global_device_ids: tuple[int, ...] = ()
    name: str = ""
    local_device_ids: tuple[int, ...] = ()
    local_devices: tuple[str, ...] = ()
    global_devices: tuple[str, ...] = ()
    use_xla_spmd: bool = False
    single_device: str = ""

    def SerializeToString(self) -> bytes:  # noqa: N802 - protobuf's name
        return encode_mesh_proto(self)

    @classmethod
    def FromString(cls, data: bytes) -> MeshProto:  # noqa: N802 - protobuf's name
        return decode_mesh_proto(data)


@dataclass(frozen=True)
class ShardingSpec:
    sharding_spec: str = ""


@dataclass(frozen=True)
class LayoutProto:
    sharding_specs: tuple[ShardingSpec, ...] = ()
    mesh_config: MeshProto = MeshProto()
    type: int = 0

    def SerializeToString(self) -> bytes:  # noqa: N802 - protobuf's name
        return encode_layout_proto(self)

    @classmethod
    def FromString(cls, data: bytes) -> LayoutProto:  # noqa: N802 - protobuf's name
        return decode_layout_proto(data)


# -- encoding ---------------------------------------------------------------------------


def _packed(number: int, values: tuple[int, ...]) -> bytes:
    if not values:
        return b""
    return field_bytes(number, b"".join(encode_varint(v & _U64) for v in values))


def _strings(number: int, values: tuple[str, ...]) -> bytes:
    return b"".join(field_bytes(number, v.encode("utf-8"), keep_empty=True) for v in values)


def encode_mesh_proto(proto: MeshProto) -> bytes:
    dims = b"".join(
        field_bytes(
            1,
            field_bytes(1, d.name.encode("utf-8")) + field_varint(2, d.size),
            keep_empty=True,
        )
        for d in proto.mesh_dimensions
    )
    return b"".join(
        [
            dims,
            _packed(2, proto.global_device_ids),
            field_bytes(3, proto.name.encode("utf-8")),
            _packed(4, proto.local_device_ids),
            _strings(5, proto.local_devices),
            _strings(6, proto.global_devices),
            field_varint(7, int(proto.use_xla_spmd)),
            field_bytes(8, proto.single_device.encode("utf-8")),
        ]
    )


def encode_layout_proto(proto: LayoutProto) -> bytes:
    specs = b"".join(
        field_bytes(1, field_bytes(2, s.sharding_spec.encode("utf-8")), keep_empty=True)
        for s in proto.sharding_specs
    )
    mesh = field_bytes(2, encode_mesh_proto(proto.mesh_config), keep_empty=True)
    return specs + mesh + field_varint(3, proto.type)


# -- decoding ---------------------------------------------------------------------------


def _text(value: int | memoryview, what: str) -> str:
    if not isinstance(value, memoryview):
        raise DataLossError(f"{what} is not a length-delimited field")
    try:
        return bytes(value).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataLossError(f"{what} is not UTF-8: {exc}") from None


def _ids(wire_type: int, value: int | memoryview, out: list[int]) -> None:
    if wire_type == wire.VARINT:
        assert isinstance(value, int)
        out.append(as_int64(value))
    elif wire_type == wire.LEN:
        assert isinstance(value, memoryview)
        pos = 0
        while pos < len(value):
            number, pos = decode_varint(value, pos)
            out.append(as_int64(number))
    else:
        raise DataLossError(f"device id list with wire type {wire_type}")


def decode_mesh_proto(data: bytes | memoryview) -> MeshProto:
    """A ``MeshProto`` from its bytes; malformed bytes are a :class:`DataLossError`."""
    dims: list[MeshDimensionProto] = []
    global_ids: list[int] = []
    local_ids: list[int] = []
    local_devices: list[str] = []
    global_devices: list[str] = []
    name = single = ""
    xla = False
    for number, wire_type, value in iter_fields(data):
        if number == 1:
            dim_name, size = "", 0
            if not isinstance(value, memoryview):
                raise DataLossError("mesh dimension is not a message")
            for dnum, dwire, dval in iter_fields(value):
                if dnum == 1:
                    dim_name = _text(dval, "mesh dimension name")
                elif dnum == 2 and dwire == wire.VARINT:
                    assert isinstance(dval, int)
                    size = as_int64(dval)
            dims.append(MeshDimensionProto(dim_name, size))
        elif number == 2:
            _ids(wire_type, value, global_ids)
        elif number == 3:
            name = _text(value, "mesh name")
        elif number == 4:
            _ids(wire_type, value, local_ids)
        elif number == 5:
            local_devices.append(_text(value, "local device"))
        elif number == 6:
            global_devices.append(_text(value, "global device"))
        elif number == 7 and wire_type == wire.VARINT:
            xla = bool(value)
        elif number == 8:
            single = _text(value, "single device")
    return MeshProto(
        tuple(dims),
        tuple(global_ids),
        name,
        tuple(local_ids),
        tuple(local_devices),
        tuple(global_devices),
        xla,
        single,
    )


def decode_layout_proto(data: bytes | memoryview) -> LayoutProto:
    """A ``LayoutProto`` from its bytes; malformed bytes are a :class:`DataLossError`."""
    specs: list[ShardingSpec] = []
    mesh = MeshProto()
    kind = 0
    for number, wire_type, value in iter_fields(data):
        if number == 1:
            spec = ""
            if not isinstance(value, memoryview):
                raise DataLossError("sharding spec is not a message")
            for snum, _swire, sval in iter_fields(value):
                if snum == 2:
                    spec = _text(sval, "sharding spec")
            specs.append(ShardingSpec(spec))
        elif number == 2:
            if not isinstance(value, memoryview):
                raise DataLossError("mesh_config is not a message")
            mesh = decode_mesh_proto(value)
        elif number == 3 and wire_type == wire.VARINT:
            assert isinstance(value, int)
            kind = value
    return LayoutProto(tuple(specs), mesh, kind)

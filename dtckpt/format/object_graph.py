"""The ``TrackableObjectGraph`` message stored under ``_CHECKPOINTABLE_OBJECT_GRAPH`` (rule O-PB-1).

Field numbers (``tensorflow/core/protobuf/trackable_object_graph.proto``)::

    TrackableObjectGraph   1 nodes repeated TrackableObject
    TrackableObject        1 children repeated ObjectReference
                               {1 node_id int32, 2 local_name string}
                           2 attributes repeated SerializedTensor
                               {1 name, 2 full_name, 3 checkpoint_key: string}
                           3 slot_variables repeated SlotVariableReference
                               {1 original_variable_node_id int32, 2 slot_name string,
                                3 slot_variable_node_id int32}
                           4 registered_saver RegisteredSaver {1 name, 2 object_name: string}
                           5 has_checkpoint_values google.protobuf.BoolValue {1 value bool}

As TensorFlow writes it, every node carries ``has_checkpoint_values``: ``2a 02 08 01``
when true and the empty message ``2a 00`` when false; zero ints and empty strings are
omitted. The node's index in ``nodes`` is its id; node 0 is the root.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import CheckpointError, DataLossError
from . import wire
from .wire import as_int32, field_bytes, field_varint, iter_fields

__all__ = [
    "ObjectReference",
    "SerializedTensor",
    "SlotVariableReference",
    "RegisteredSaver",
    "TrackableObject",
    "TrackableObjectGraph",
    "encode_object_graph",
    "decode_object_graph",
]


@dataclass(frozen=True)
class ObjectReference:
    node_id: int
    local_name: str


@dataclass(frozen=True)
class SerializedTensor:
    name: str
    full_name: str
    checkpoint_key: str


@dataclass(frozen=True)
class SlotVariableReference:
    original_variable_node_id: int
    slot_name: str
    slot_variable_node_id: int


@dataclass(frozen=True)
class RegisteredSaver:
    name: str
    object_name: str


@dataclass(frozen=True)
class TrackableObject:
    children: tuple[ObjectReference, ...] = ()
    attributes: tuple[SerializedTensor, ...] = ()
    slot_variables: tuple[SlotVariableReference, ...] = ()
    registered_saver: RegisteredSaver | None = None
    #: ``None`` when the field is absent (checkpoints older than the field).
    has_checkpoint_values: bool | None = None


@dataclass(frozen=True)
class TrackableObjectGraph:
    nodes: tuple[TrackableObject, ...]


def _text(value: str) -> bytes:
    return value.encode("utf-8", errors="surrogateescape")


def _encode_node(node: TrackableObject) -> bytes:
    out = []
    for child in node.children:
        body = field_varint(1, child.node_id) + field_bytes(2, _text(child.local_name))
        out.append(field_bytes(1, body, keep_empty=True))
    for attr in node.attributes:
        body = (
            field_bytes(1, _text(attr.name))
            + field_bytes(2, _text(attr.full_name))
            + field_bytes(3, _text(attr.checkpoint_key))
        )
        out.append(field_bytes(2, body, keep_empty=True))
    for slot in node.slot_variables:
        body = (
            field_varint(1, slot.original_variable_node_id)
            + field_bytes(2, _text(slot.slot_name))
            + field_varint(3, slot.slot_variable_node_id)
        )
        out.append(field_bytes(3, body, keep_empty=True))
    if node.registered_saver is not None:
        saver = node.registered_saver
        body = field_bytes(1, _text(saver.name)) + field_bytes(2, _text(saver.object_name))
        out.append(field_bytes(4, body, keep_empty=True))
    if node.has_checkpoint_values is not None:
        out.append(
            field_bytes(5, field_varint(1, int(node.has_checkpoint_values)), keep_empty=True)
        )
    return b"".join(out)


def encode_object_graph(graph: TrackableObjectGraph) -> bytes:
    """Serialize as TensorFlow does (rule O-PB-1)."""
    return b"".join(field_bytes(1, _encode_node(n), keep_empty=True) for n in graph.nodes)


def _string(value: object) -> str:
    if not isinstance(value, memoryview):
        raise DataLossError("a string field of the object graph has the wrong wire type")
    return bytes(value).decode("utf-8", errors="surrogateescape")


def _decode_node(buf: memoryview) -> TrackableObject:
    children, attributes, slots = [], [], []
    saver: RegisteredSaver | None = None
    has_values: bool | None = None
    for number, wire_type, value in iter_fields(buf):
        if wire_type != wire.LEN:
            continue
        assert isinstance(value, memoryview)
        fields: dict[int, object] = {}
        for inner_number, inner_type, inner in iter_fields(value):
            if inner_type in (wire.VARINT, wire.LEN):
                fields[inner_number] = inner
        if number == 1:
            node_id = as_int32(int(fields.get(1, 0)))  # type: ignore[call-overload]
            children.append(ObjectReference(node_id, _string(fields.get(2, memoryview(b"")))))
        elif number == 2:
            attributes.append(
                SerializedTensor(
                    _string(fields.get(1, memoryview(b""))),
                    _string(fields.get(2, memoryview(b""))),
                    _string(fields.get(3, memoryview(b""))),
                )
            )
        elif number == 3:
            slots.append(
                SlotVariableReference(
                    as_int32(int(fields.get(1, 0))),  # type: ignore[call-overload]
                    _string(fields.get(2, memoryview(b""))),
                    as_int32(int(fields.get(3, 0))),  # type: ignore[call-overload]
                )
            )
        elif number == 4:
            saver = RegisteredSaver(
                _string(fields.get(1, memoryview(b""))), _string(fields.get(2, memoryview(b"")))
            )
        elif number == 5:
            has_values = bool(fields.get(1, 0))
    return TrackableObject(tuple(children), tuple(attributes), tuple(slots), saver, has_values)


def decode_object_graph(buf: bytes) -> TrackableObjectGraph:
    """Parse the object graph; node ids out of range raise :class:`DataLossError` (rule O-PB-2)."""
    try:
        nodes = []
        for number, wire_type, value in iter_fields(buf):
            if number == 1 and wire_type == wire.LEN:
                assert isinstance(value, memoryview)
                nodes.append(_decode_node(value))
    except CheckpointError as exc:
        raise DataLossError(
            f"cannot parse the object graph: {exc.message}", offset=exc.offset
        ) from None
    except (ValueError, TypeError) as exc:  # a field of the wrong wire type
        raise DataLossError(f"cannot parse the object graph: {exc}") from None
    count = len(nodes)
    for index, node in enumerate(nodes):
        ids = [c.node_id for c in node.children]
        ids += [s.original_variable_node_id for s in node.slot_variables]
        ids += [s.slot_variable_node_id for s in node.slot_variables]
        for node_id in ids:
            if not 0 <= node_id < count:
                raise DataLossError(
                    f"object graph node {index} refers to node {node_id}, "
                    f"but the graph has {count} nodes"
                )
    return TrackableObjectGraph(tuple(nodes))

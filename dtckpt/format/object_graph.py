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

from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

from ..errors import CheckpointError, DataLossError
from . import wire
from .wire import as_int32, field_bytes, field_varint, iter_fields, iter_spans

__all__ = [
    "encode_node_fields",
    "encode_nodes",
    "ObjectReference",
    "SerializedTensor",
    "SlotVariableReference",
    "RegisteredSaver",
    "TrackableObject",
    "TrackableObjectGraph",
    "ObjectGraphView",
    "encode_object_graph",
    "decode_object_graph",
]


class ObjectReference(NamedTuple):
    """A child of a node (``TrackableObject.ObjectReference``)."""

    node_id: int
    local_name: str


class SerializedTensor(NamedTuple):
    """A value a node saves (``TrackableObject.SerializedTensor``). Records made per value
    are tuples: a restore of N variables makes N of them, twice."""

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


def encode_node_fields(
    children: Iterable[tuple[int, str]],
    attributes: Iterable[tuple[str, str, str]],
    slot_variables: Iterable[SlotVariableReference] = (),
    registered_saver: RegisteredSaver | None = None,
) -> bytes:
    """Fields 1-4 of one ``TrackableObject`` message: children as ``(node_id, local_name)``,
    attributes as ``(name, full_name, checkpoint_key)`` (the two records are such tuples).
    A save encodes each node as it walks, so that a graph of N objects is never held as
    N records (rule O-PB-1)."""
    out = []
    for node_id, local_name in children:
        body = field_varint(1, node_id) + field_bytes(2, _text(local_name))
        out.append(field_bytes(1, body, keep_empty=True))
    for name, full_name, checkpoint_key in attributes:
        body = (
            field_bytes(1, _text(name))
            + field_bytes(2, _text(full_name))
            + field_bytes(3, _text(checkpoint_key))
        )
        out.append(field_bytes(2, body, keep_empty=True))
    for slot in slot_variables:
        body = (
            field_varint(1, slot.original_variable_node_id)
            + field_bytes(2, _text(slot.slot_name))
            + field_varint(3, slot.slot_variable_node_id)
        )
        out.append(field_bytes(3, body, keep_empty=True))
    if registered_saver is not None:
        saver = registered_saver
        body = field_bytes(1, _text(saver.name)) + field_bytes(2, _text(saver.object_name))
        out.append(field_bytes(4, body, keep_empty=True))
    return b"".join(out)


#: Field 5 of a node (``has_checkpoint_values``), absent, false or true.
_VALUE_FLAG = {
    None: b"",
    False: field_bytes(5, field_varint(1, 0), keep_empty=True),
    True: field_bytes(5, field_varint(1, 1), keep_empty=True),
}


def encode_nodes(fields: Iterable[bytes], has_values: Iterable[bool | None]) -> bytes:
    """The graph message from each node's :func:`encode_node_fields` and value flag."""
    return b"".join(
        field_bytes(1, body + _VALUE_FLAG[flag], keep_empty=True)
        for body, flag in zip(fields, has_values, strict=True)
    )


def encode_object_graph(graph: TrackableObjectGraph) -> bytes:
    """Serialize as TensorFlow does (rule O-PB-1)."""
    nodes = graph.nodes
    return encode_nodes(
        (
            encode_node_fields(n.children, n.attributes, n.slot_variables, n.registered_saver)
            for n in nodes
        ),
        (n.has_checkpoint_values for n in nodes),
    )


def _string(value: object) -> str:
    if not isinstance(value, memoryview):
        raise DataLossError("a string field of the object graph has the wrong wire type")
    return bytes(value).decode("utf-8", errors="surrogateescape")


def _fields(message: memoryview) -> dict[int, object]:
    """A sub-message's VARINT and LEN fields by number, the last occurrence winning."""
    fields: dict[int, object] = {}
    for number, wire_type, value in iter_fields(message):
        if wire_type in (wire.VARINT, wire.LEN):
            fields[number] = value
    return fields


#: The tags of ``SerializedTensor``'s three string fields (numbers 1 to 3, wire type LEN).
_ATTRIBUTE_TAGS = {0x0A: 0, 0x12: 1, 0x1A: 2}


def _decode_attribute(message: memoryview) -> SerializedTensor:
    """A ``SerializedTensor`` message: its three strings, decoded as :func:`_fields` and
    :func:`_string` would (the last occurrence wins, a VARINT where a string belongs is
    an error, other wire types are ignored), without building a dict per message.

    A restore decodes one per value, twice: messages made only of the three strings, each
    shorter than 128 bytes (what every writer produces for keys that short), are read in
    one loop over their bytes; any other message goes through :func:`_decode_any_attribute`.
    """
    data = bytes(message)
    end = len(data)
    strings = [b"", b"", b""]
    pos = 0
    while pos < end:
        slot = _ATTRIBUTE_TAGS.get(data[pos])
        if slot is None or pos + 1 >= end:
            return _decode_any_attribute(message)
        length = data[pos + 1]
        pos += 2
        if length >= 0x80 or pos + length > end:
            return _decode_any_attribute(message)
        strings[slot] = data[pos : pos + length]
        pos += length
    return SerializedTensor(
        strings[0].decode("utf-8", "surrogateescape"),
        strings[1].decode("utf-8", "surrogateescape"),
        strings[2].decode("utf-8", "surrogateescape"),
    )


def _decode_any_attribute(message: memoryview) -> SerializedTensor:
    """:func:`_decode_attribute` for any message, field by field."""
    spans: list[tuple[int, int] | None] = [(0, 0), (0, 0), (0, 0)]
    for number, wire_type, value, stop in iter_spans(message):
        if 1 <= number <= 3:
            if wire_type == wire.LEN:
                spans[number - 1] = (value, stop)
            elif wire_type == wire.VARINT:
                spans[number - 1] = None
    strings = []
    for span in spans:
        if span is None:
            raise DataLossError("a string field of the object graph has the wrong wire type")
        strings.append(bytes(message[span[0] : span[1]]).decode("utf-8", "surrogateescape"))
    return SerializedTensor(strings[0], strings[1], strings[2])


def _decode_slot(fields: dict[int, object]) -> SlotVariableReference:
    return SlotVariableReference(
        as_int32(int(fields.get(1, 0))),  # type: ignore[call-overload]
        _string(fields.get(2, memoryview(b""))),
        as_int32(int(fields.get(3, 0))),  # type: ignore[call-overload]
    )


def _decode_node(buf: memoryview) -> TrackableObject:
    children, attributes, slots = [], [], []
    saver: RegisteredSaver | None = None
    has_values: bool | None = None
    for number, wire_type, value in iter_fields(buf):
        if wire_type != wire.LEN:
            continue
        assert isinstance(value, memoryview)
        if number == 2:
            attributes.append(_decode_attribute(value))
            continue
        fields = _fields(value)
        if number == 1:
            node_id = as_int32(int(fields.get(1, 0)))  # type: ignore[call-overload]
            children.append(ObjectReference(node_id, _string(fields.get(2, memoryview(b"")))))
        elif number == 3:
            slots.append(_decode_slot(fields))
        elif number == 4:
            saver = RegisteredSaver(
                _string(fields.get(1, memoryview(b""))), _string(fields.get(2, memoryview(b"")))
            )
        elif number == 5:
            has_values = bool(fields.get(1, 0))
    return TrackableObject(tuple(children), tuple(attributes), tuple(slots), saver, has_values)


def decode_object_graph(buf: bytes) -> TrackableObjectGraph:
    """Parse the object graph; node ids out of range raise :class:`DataLossError` (rule O-PB-2)."""
    view = ObjectGraphView(buf)
    return TrackableObjectGraph(tuple(view.node(i) for i in range(len(view))))


def _parse_error(exc: BaseException, base: int) -> DataLossError:
    if isinstance(exc, CheckpointError):
        offset = None if exc.offset is None else exc.offset + base
        return DataLossError(f"cannot parse the object graph: {exc.message}", offset=offset)
    return DataLossError(f"cannot parse the object graph: {exc}")  # a field of a wrong type


# Per-node flags kept by ObjectGraphView: has_checkpoint_values absent/false/true, attributes.
_VALUES_FALSE, _VALUES_TRUE, _HAS_ATTRIBUTES = 1, 2, 4


class ObjectGraphView:
    """The nodes of an encoded ``TrackableObjectGraph``, each decoded only when asked for.

    A restore visits every node once, so holding all of them decoded would only
    cost memory (several hundred bytes a node). The constructor skims the message
    once, recording for each node its byte span, whether it has attributes, its
    ``has_checkpoint_values`` and its slot variable references (rare, so decoded
    then); :meth:`node` decodes one node, checking its ids (rule O-PB-2).
    Malformed bytes raise :class:`DataLossError` with the offset in the message.
    """

    def __init__(self, buf: bytes) -> None:
        self._buf = bytes(buf)
        view = memoryview(self._buf)
        self._starts, self._ends = array("q"), array("q")
        flags = bytearray()
        slots: list[tuple[int, SlotVariableReference]] = []
        try:
            for number, wire_type, start, end in iter_spans(view):
                if number == 1 and wire_type == wire.LEN:
                    try:
                        flags.append(self._skim_node(view[start:end], len(flags), slots))
                    except (CheckpointError, ValueError, TypeError) as exc:
                        raise _parse_error(exc, start) from None
                    self._starts.append(start)
                    self._ends.append(end)
        except CheckpointError as exc:
            raise _parse_error(exc, 0) from None
        self._flags = bytes(flags)
        count = len(self._flags)
        for owner, slot in slots:
            for node_id in (slot.original_variable_node_id, slot.slot_variable_node_id):
                if not 0 <= node_id < count:
                    raise _bad_id(owner, node_id, count)
        self.slot_variables: tuple[tuple[int, SlotVariableReference], ...] = tuple(slots)

    @staticmethod
    def _skim_node(
        node: memoryview, node_id: int, slots: list[tuple[int, SlotVariableReference]]
    ) -> int:
        """The node's flags; its slot variable references are added to ``slots``."""
        flags = 0
        for number, wire_type, start, end in iter_spans(node):
            if wire_type != wire.LEN:
                continue
            if number == 2:
                flags |= _HAS_ATTRIBUTES
            elif number == 3:
                slots.append((node_id, _decode_slot(_fields(node[start:end]))))
            elif number == 5:
                value = _fields(node[start:end]).get(1, 0)
                flags = (flags & _HAS_ATTRIBUTES) | (_VALUES_TRUE if value else _VALUES_FALSE)
        return flags

    def __len__(self) -> int:
        return len(self._flags)

    def has_attributes(self, node_id: int) -> bool:
        return bool(self._flags[node_id] & _HAS_ATTRIBUTES)

    def has_checkpoint_values(self, node_id: int) -> bool | None:
        """The node's ``has_checkpoint_values``; ``None`` when the field is absent."""
        flag = self._flags[node_id]
        if flag & _VALUES_TRUE:
            return True
        return False if flag & _VALUES_FALSE else None

    def node(self, node_id: int) -> TrackableObject:
        """Node ``node_id``, decoded; ids out of range raise :class:`DataLossError`."""
        start, end = self._starts[node_id], self._ends[node_id]
        try:
            node = _decode_node(memoryview(self._buf)[start:end])
        except (CheckpointError, ValueError, TypeError) as exc:
            raise _parse_error(exc, start) from None
        count = len(self._flags)
        for child in node.children:
            if not 0 <= child.node_id < count:
                raise _bad_id(node_id, child.node_id, count)
        return node

    def children(self, node_id: int) -> Iterator[ObjectReference]:
        """The node's children one at a time: a node with a million children is never
        held decoded at once."""
        count = len(self._flags)
        for message, start in self._fields_of(node_id, 1):
            try:
                fields = _fields(message)
                child = ObjectReference(
                    as_int32(int(fields.get(1, 0))),  # type: ignore[call-overload]
                    _string(fields.get(2, memoryview(b""))),
                )
            except (CheckpointError, ValueError, TypeError) as exc:
                raise _parse_error(exc, start) from None
            if not 0 <= child.node_id < count:
                raise _bad_id(node_id, child.node_id, count)
            yield child

    def attributes(self, node_id: int) -> list[SerializedTensor]:
        """The node's stored attributes (rule O-RS-4)."""
        out = []
        for message, start in self._fields_of(node_id, 2):
            try:
                out.append(_decode_attribute(message))
            except (CheckpointError, ValueError, TypeError) as exc:
                raise _parse_error(exc, start) from None
        return out

    def _fields_of(self, node_id: int, number: int) -> Iterator[tuple[memoryview, int]]:
        """The node's LEN fields numbered ``number``, with their offsets in the message."""
        view = memoryview(self._buf)
        start, end = self._starts[node_id], self._ends[node_id]
        try:
            for field, wire_type, payload, stop in iter_spans(view, start, end):
                if field == number and wire_type == wire.LEN:
                    yield view[payload:stop], payload
        except CheckpointError as exc:
            raise _parse_error(exc, 0) from None


def _bad_id(index: int, node_id: int, count: int) -> DataLossError:
    return DataLossError(
        f"object graph node {index} refers to node {node_id}, but the graph has {count} nodes"
    )

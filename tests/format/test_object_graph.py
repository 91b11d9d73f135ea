"""The TrackableObjectGraph codec against TF's bytes, round trips and damage."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import dtckpt
from dtckpt.errors import DataLossError
from dtckpt.format.object_graph import (
    ObjectReference,
    RegisteredSaver,
    SerializedTensor,
    SlotVariableReference,
    TrackableObject,
    TrackableObjectGraph,
    decode_object_graph,
    encode_object_graph,
)
from tests.conftest import GOLDEN


def _golden_graph_bytes() -> bytes:
    reader = dtckpt.load_checkpoint(str(GOLDEN / "little_checkpoint" / "ckpt"))
    return reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH").item()


def test_tf_graph_round_trips_byte_for_byte() -> None:
    raw = _golden_graph_bytes()
    graph = decode_object_graph(raw)
    assert graph.nodes[0].children == (ObjectReference(1, "model"),)
    assert graph.nodes[2].attributes[0] == SerializedTensor(
        "VARIABLE_VALUE", "kernel", "model/kernel/.ATTRIBUTES/VARIABLE_VALUE"
    )
    assert all(n.has_checkpoint_values for n in graph.nodes)
    assert encode_object_graph(graph) == raw


def test_literal_node_bytes() -> None:
    node = TrackableObject(children=(ObjectReference(0, "a"),), has_checkpoint_values=False)
    # node_id 0 omitted; has_checkpoint_values false is the empty BoolValue.
    assert encode_object_graph(TrackableObjectGraph((node,))).hex(" ") == (
        "0a 07 0a 03 12 01 61 2a 00"
    )
    true_node = TrackableObject(has_checkpoint_values=True)
    assert encode_object_graph(TrackableObjectGraph((true_node,))).hex(" ") == "0a 04 2a 02 08 01"


names = st.text(max_size=8)


@st.composite
def graphs(draw: st.DrawFn) -> TrackableObjectGraph:
    n = draw(st.integers(1, 5))
    ids = st.integers(0, n - 1)
    nodes = []
    for _ in range(n):
        nodes.append(
            TrackableObject(
                children=tuple(
                    draw(st.lists(st.builds(ObjectReference, ids, names), max_size=3))
                ),
                attributes=tuple(
                    draw(st.lists(st.builds(SerializedTensor, names, names, names), max_size=2))
                ),
                slot_variables=tuple(
                    draw(st.lists(st.builds(SlotVariableReference, ids, names, ids), max_size=2))
                ),
                registered_saver=draw(st.none() | st.builds(RegisteredSaver, names, names)),
                has_checkpoint_values=draw(st.none() | st.booleans()),
            )
        )
    return TrackableObjectGraph(tuple(nodes))


@given(graphs())
def test_round_trip(graph: TrackableObjectGraph) -> None:
    assert decode_object_graph(encode_object_graph(graph)) == graph


def test_out_of_range_node_id() -> None:
    bad = TrackableObjectGraph((TrackableObject(children=(ObjectReference(5, "x"),)),))
    with pytest.raises(DataLossError, match="refers to node 5"):
        decode_object_graph(encode_object_graph(bad))


@given(st.binary(max_size=40))
def test_garbage_is_a_typed_error(raw: bytes) -> None:
    try:
        decode_object_graph(raw)
    except DataLossError:
        pass


def test_wrong_wire_type_is_a_typed_error() -> None:
    # A child whose local_name (field 2) arrives as a varint: 0a 04 | 0a 02 10 05.
    with pytest.raises(DataLossError, match="wrong wire type"):
        decode_object_graph(bytes.fromhex("0a04 0a02 1005"))


def _attribute_by_fields(message: bytes) -> SerializedTensor:
    """The attribute decoded field by field, as every other message of the graph is."""
    from dtckpt.format.object_graph import _fields, _string

    fields = _fields(memoryview(message))
    return SerializedTensor(*(_string(fields.get(n, memoryview(b""))) for n in (1, 2, 3)))


def _outcome(decode: object, message: bytes) -> object:
    try:
        return decode(memoryview(message))  # type: ignore[operator]
    except DataLossError as exc:
        return type(exc)


_strings = st.text(max_size=200) | st.binary(max_size=200).map(
    lambda b: b.decode("utf-8", "surrogateescape")
)


@st.composite
def _attribute_messages(draw: st.DrawFn) -> bytes:
    """SerializedTensor messages: its strings in any order, repeated, beside fields of
    other numbers and wire types, long and short."""
    from dtckpt.format.wire import field_bytes, field_varint, tag

    plain = draw(st.booleans())  # only the three strings: what writers produce
    parts = []
    for _ in range(draw(st.integers(0, 6))):
        number = draw(st.integers(1, 3 if plain else 5))
        kind = "len" if plain else draw(st.sampled_from(["len", "varint", "fixed32"]))
        if kind == "len":
            text = draw(_strings).encode("utf-8", "surrogateescape")
            parts.append(field_bytes(number, text, keep_empty=True))
        elif kind == "varint":
            parts.append(field_varint(number, draw(st.integers(0, 2**40)), keep_zero=True))
        else:
            parts.append(tag(number, 5) + bytes(4))
    return b"".join(parts)


@given(_attribute_messages() | st.binary(max_size=64))
def test_attribute_fast_path_decodes_as_fields_do(message: bytes) -> None:
    # The one-loop decoding of attributes (a restore runs it twice per value) gives what
    # decoding field by field gives, the same error included, on any bytes.
    from dtckpt.format.object_graph import _decode_any_attribute, _decode_attribute

    expected = _outcome(_attribute_by_fields, message)
    assert _outcome(_decode_attribute, message) == expected
    assert _outcome(_decode_any_attribute, message) == expected

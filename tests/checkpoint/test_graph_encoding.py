"""The object graph a save writes, node by node (rules O-GR-1, O-GR-3, O-PB-1): whatever the
shape of the objects (shared children, cycles, objects saving nothing), each node lists its
children and values, and is flagged as having values exactly when it or an object below it
saves one."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import dtckpt
from dtckpt.checkpoint.graph import build_graph
from dtckpt.format.object_graph import (
    TrackableObject,
    TrackableObjectGraph,
    decode_object_graph,
    encode_object_graph,
)


@st.composite
def object_webs(draw: st.DrawFn) -> tuple[dtckpt.Module, int]:
    """A root module over up to 12 modules, each holding up to 3 of the others (cycles and
    shared children allowed) and maybe a variable."""
    count = draw(st.integers(1, 12))
    modules = [dtckpt.Module() for _ in range(count)]
    for i, module in enumerate(modules):
        if draw(st.booleans()):
            module.v = dtckpt.Variable(np.float32(i))
        for j, target in enumerate(draw(st.lists(st.integers(0, count - 1), max_size=3))):
            setattr(module, f"c{j}", modules[target])
    root = dtckpt.Module()
    root.top = modules[0]
    return root, count


def _reference_flags(graph: TrackableObjectGraph) -> list[bool]:
    """Each node's flag worked out by a search from every node on its own."""
    flags = []
    for start in range(len(graph.nodes)):
        seen, stack, found = {start}, [start], False
        while stack and not found:
            node = graph.nodes[stack.pop()]
            found = bool(node.attributes)
            for child in node.children:
                if child.node_id not in seen:
                    seen.add(child.node_id)
                    stack.append(child.node_id)
        flags.append(found)
    return flags


@settings(max_examples=80, deadline=None)
@given(object_webs())
def test_value_flags_follow_every_path_down(web: tuple[dtckpt.Module, int]) -> None:
    root, _ = web
    snapshot = build_graph(root)
    graph = decode_object_graph(snapshot.graph_bytes)
    assert [n.has_checkpoint_values for n in graph.nodes] == _reference_flags(graph)
    # Re-encoding the decoded graph record by record gives the same bytes.
    assert encode_object_graph(graph) == snapshot.graph_bytes
    keys = [a.checkpoint_key for n in graph.nodes for a in n.attributes]
    assert keys == [key for key, _ in snapshot.tensors]


def test_a_node_saving_nothing_below_a_cycle_is_flagged_false() -> None:
    a, b = dtckpt.Module(), dtckpt.Module()
    a.b, b.a = b, a
    root = dtckpt.Module()
    root.a = a
    root.w = dtckpt.Variable(1.0)
    graph = decode_object_graph(build_graph(root).graph_bytes)
    assert [n.has_checkpoint_values for n in graph.nodes] == [True, False, True, False]
    assert graph.nodes[0].children[0].local_name == "a"
    assert isinstance(graph.nodes[1], TrackableObject)

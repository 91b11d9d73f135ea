"""The object graph of a checkpoint as a tree of attribute paths (rule V-IN-3).

::

    (root)
    ├── model
    │   ├── kernel                 VARIABLE_VALUE  float32 [2,3]
    │   │   └── slot m of optimizer  VARIABLE_VALUE  float32 [2,3]
    │   └── shared -> model/kernel
    └── save_counter               VARIABLE_VALUE  int64 []

Paths are those of a breadth-first walk (O-GR-1), as checkpoint keys are made.
Every walk here is iterative, so a forged graph thousands of levels deep
renders without recursion.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..format.bundle_reader import BundleReader
    from ..format.object_graph import TrackableObjectGraph

__all__ = ["OBJECT_GRAPH_KEY", "GraphView", "read_object_graph"]

OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"


@dataclass(frozen=True)
class Attribute:
    name: str
    key: str
    dtype: str | None  # None: the bundle has no entry under ``key``
    shape: tuple[int, ...] | None


def read_object_graph(bundle: BundleReader) -> TrackableObjectGraph | None:
    """The decoded graph, or ``None`` for a checkpoint without one (name-based, TF1)."""
    from ..errors import DataLossError
    from ..format.object_graph import decode_object_graph

    if OBJECT_GRAPH_KEY not in bundle:
        return None
    value = bundle.read(OBJECT_GRAPH_KEY)
    raw = value.item() if value.shape == () else None
    if not isinstance(raw, bytes):
        raise DataLossError(
            f"the object graph entry is not a scalar string ({value.dtype} {list(value.shape)})",
            path=bundle.index_path,
            key=OBJECT_GRAPH_KEY,
        )
    try:
        return decode_object_graph(raw)
    except DataLossError as exc:
        raise exc.located(path=bundle.index_path, key=OBJECT_GRAPH_KEY) from None


class GraphView:
    """Paths, tree edges, slot variables and attributes of one decoded graph."""

    def __init__(self, graph: TrackableObjectGraph, bundle: BundleReader) -> None:
        from ..checkpoint.graph import escape_local_name

        self.graph = graph
        nodes = graph.nodes
        self.paths: dict[int, str] = {0: ""} if nodes else {}
        # child id -> (parent id, position in the parent's children) of its first edge
        self.first_edge: dict[int, tuple[int, int]] = {}
        queue = deque([0] if nodes else [])
        while queue:
            parent = queue.popleft()
            for position, ref in enumerate(nodes[parent].children):
                child = ref.node_id
                if 0 <= child < len(nodes) and child not in self.paths:
                    prefix = self.paths[parent]
                    name = escape_local_name(ref.local_name)
                    self.paths[child] = f"{prefix}/{name}" if prefix else name
                    self.first_edge[child] = (parent, position)
                    queue.append(child)
        self.slots: dict[int, list[tuple[str, int, int]]] = {}
        for optimizer, node in enumerate(nodes):
            for slot in node.slot_variables:
                self.slots.setdefault(slot.original_variable_node_id, []).append(
                    (slot.slot_name, optimizer, slot.slot_variable_node_id)
                )
        slot_nodes = {s for refs in self.slots.values() for _, _, s in refs}
        self.unreachable = [
            i for i in range(len(nodes)) if i not in self.paths and i not in slot_nodes
        ]
        self.attributes = {i: _attributes(node, bundle) for i, node in enumerate(nodes)}

    # -- text ----------------------------------------------------------------
    def render(self) -> list[str]:
        """The tree as lines of text, root first."""
        if not self.graph.nodes:
            return ["(empty object graph)"]
        lines = ["(root)" + self._describe(0)]
        stack: list[tuple[str, str, int | None, str]] = []
        self._push_children(stack, 0, "")
        expanded = {0}  # slot references could otherwise lead round a cycle forever
        while stack:
            indent, label, node, connector = stack.pop()
            if node is None:
                lines.append(f"{indent}{connector}{label}")
            elif node in expanded:
                lines.append(f"{indent}{connector}{label} (node {node}, shown above)")
            else:
                expanded.add(node)
                lines.append(f"{indent}{connector}{label}{self._describe(node)}")
                below = indent + ("    " if connector.startswith("└") else "│   ")
                self._push_children(stack, node, below)
        if self.unreachable:
            lines.append(
                "nodes not reachable from the root: " + ", ".join(map(str, self.unreachable))
            )
        return lines

    def _push_children(
        self, stack: list[tuple[str, str, int | None, str]], node: int, indent: str
    ) -> None:
        rows: list[tuple[str, int | None]] = []
        for position, ref in enumerate(self.graph.nodes[node].children):
            child = ref.node_id
            if self.first_edge.get(child) == (node, position):
                rows.append((ref.local_name, child))
            elif child in self.paths:
                rows.append((f"{ref.local_name} -> {self.paths[child] or '(root)'}", None))
            else:
                rows.append((f"{ref.local_name} -> node {child} (missing)", None))
        for slot_name, optimizer, slot_node in self.slots.get(node, []):
            owner = self.paths.get(optimizer, f"node {optimizer}")
            if 0 <= slot_node < len(self.graph.nodes):
                rows.append((f"slot {slot_name} of {owner}", slot_node))
            else:
                rows.append((f"slot {slot_name} of {owner} -> node {slot_node} (missing)", None))
        for i, (label, target) in reversed(list(enumerate(rows))):
            connector = "└── " if i == len(rows) - 1 else "├── "
            stack.append((indent, label, target, connector))

    def _describe(self, node: int) -> str:
        parts = []
        for attr in self.attributes[node]:
            if attr.dtype is None:
                parts.append(f"{attr.name} missing ({attr.key})")
            else:
                shape = "[" + ",".join(str(d) for d in attr.shape or ()) + "]"
                parts.append(f"{attr.name} {attr.dtype} {shape}")
        return ("  " + "; ".join(parts)) if parts else ""

    # -- JSON ----------------------------------------------------------------
    def as_json(self) -> dict[str, Any]:
        """The flat form of rule V-IN-4."""
        nodes = []
        for i, node in enumerate(self.graph.nodes):
            nodes.append(
                {
                    "node_id": i,
                    "path": self.paths.get(i),
                    "children": [
                        {"name": c.local_name, "node_id": c.node_id} for c in node.children
                    ],
                    "attributes": [
                        {"name": a.name, "key": a.key, "dtype": a.dtype, "shape": a.shape}
                        for a in self.attributes[i]
                    ],
                    "slot_variables": [
                        {
                            "slot_name": s.slot_name,
                            "original_node_id": s.original_variable_node_id,
                            "slot_node_id": s.slot_variable_node_id,
                        }
                        for s in node.slot_variables
                    ],
                }
            )
        return {"nodes": nodes, "unreachable": self.unreachable}


def _attributes(node: Any, bundle: BundleReader) -> list[Attribute]:
    from ..dtypes import info

    out = []
    for attr in node.attributes:
        key = attr.checkpoint_key
        if key in bundle:
            entry = bundle.entry(key)
            out.append(Attribute(attr.name, key, info(entry.dtype).name, entry.shape))
        else:
            out.append(Attribute(attr.name, key, None, None))
    return out

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


#: The longest node path shown (rule H-WK-2): a longer one is shown as ``…`` and its last
#: characters. Paths are built from their parent's, so each costs at most this much.
MAX_PATH_CHARS = 256
#: Levels of the tree drawn below the root (rule H-WK-2); a node at this depth shows how
#: many nodes hang below it instead of drawing them (``--json`` lists every node).
MAX_TREE_DEPTH = 64
ELLIPSIS = "\u2026"


def _capped(path: str) -> str:
    if len(path) <= MAX_PATH_CHARS:
        return path
    return ELLIPSIS + path[len(path) - MAX_PATH_CHARS + 1 :]


class GraphView:
    """Paths, tree edges, slot variables and attributes of one decoded graph.

    Every walk is iterative and every node costs a bounded amount of memory and time, whatever
    the graph's depth (rule H-WK-2): a path is built from its parent's and kept to
    :data:`MAX_PATH_CHARS`, and the drawn tree stops at :data:`MAX_TREE_DEPTH` levels.
    """

    def __init__(self, graph: TrackableObjectGraph, bundle: BundleReader) -> None:
        from ..checkpoint.graph import escape_local_name

        self.graph = graph
        nodes = graph.nodes
        self.paths: dict[int, str] = {0: ""} if nodes else {}
        self.depth: dict[int, int] = {0: 0} if nodes else {}
        # child id -> (parent id, position in the parent's children) of its first edge
        self.first_edge: dict[int, tuple[int, int]] = {}
        order = [0] if nodes else []
        queue = deque(order)
        while queue:
            parent = queue.popleft()
            for position, ref in enumerate(nodes[parent].children):
                child = ref.node_id
                if 0 <= child < len(nodes) and child not in self.paths:
                    prefix = self.paths[parent]
                    name = escape_local_name(ref.local_name)
                    self.paths[child] = _capped(f"{prefix}/{name}" if prefix else name)
                    self.depth[child] = self.depth[parent] + 1
                    self.first_edge[child] = (parent, position)
                    queue.append(child)
                    order.append(child)
        # Nodes below each node along first edges, for the note that replaces a deep subtree.
        self.below = dict.fromkeys(order, 0)
        for child in reversed(order[1:]):
            self.below[self.first_edge[child][0]] += self.below[child] + 1
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
        """The tree as lines of text, root first, at most :data:`MAX_TREE_DEPTH` levels deep."""
        if not self.graph.nodes:
            return ["(empty object graph)"]
        lines = ["(root)" + self._describe(0)]
        stack: list[tuple[str, str, int | None, str, int]] = []
        self._push_children(stack, 0, "", 1)
        expanded = {0}  # slot references could otherwise lead round a cycle forever
        while stack:
            indent, label, node, connector, level = stack.pop()
            if node is None:
                lines.append(f"{indent}{connector}{label}")
            elif node in expanded:
                lines.append(f"{indent}{connector}{label} (node {node}, shown above)")
            else:
                expanded.add(node)
                lines.append(f"{indent}{connector}{label}{self._describe(node)}")
                below = indent + ("    " if connector.startswith("└") else "│   ")
                if level < MAX_TREE_DEPTH:
                    self._push_children(stack, node, below, level + 1)
                elif self.graph.nodes[node].children or node in self.slots:
                    lines.append(
                        f"{below}└── {ELLIPSIS} {self.below.get(node, 0)} more node(s) below, "
                        f"deeper than {MAX_TREE_DEPTH} levels (see --json)"
                    )
        if self.unreachable:
            lines.append(
                "nodes not reachable from the root: " + ", ".join(map(str, self.unreachable))
            )
        return lines

    def _push_children(
        self,
        stack: list[tuple[str, str, int | None, str, int]],
        node: int,
        indent: str,
        level: int,
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
            stack.append((indent, label, target, connector, level))

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

"""From live objects to a ``TrackableObjectGraph`` and the tensors to save (rules O-GR-1..4).

::

    root ──model──> Module ──layers──> ListWrapper ──0──> Module ──kernel──> Variable
      │                                                                  (VARIABLE_VALUE)
      └─save_counter──> Variable

    node ids:  0 root, 1 model, 2 save_counter, 3 layers, 4 layers/0, 5 kernel  (breadth-first)
    keys:      model/layers/0/kernel/.ATTRIBUTES/VARIABLE_VALUE

Source: ``tensorflow/python/checkpoint/graph_view.py``, ``trackable_view.py``,
``save_util.py`` and ``tensorflow/python/trackable/trackable_utils.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..format.object_graph import (
    ObjectReference,
    SerializedTensor,
    TrackableObject,
    TrackableObjectGraph,
)
from .trackable import Trackable
from .variables import Variable

__all__ = [
    "OBJECT_GRAPH_PROTO_KEY",
    "OBJECT_ATTRIBUTES_NAME",
    "escape_local_name",
    "object_path",
    "attribute_key",
    "GraphSnapshot",
    "breadth_first",
    "build_graph",
    "children_of",
]

OBJECT_GRAPH_PROTO_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
OBJECT_ATTRIBUTES_NAME = ".ATTRIBUTES"
_ESCAPE = "."


def escape_local_name(name: str) -> str:
    """Rule O-GR-2: ``.`` becomes ``..`` and then ``/`` becomes ``.S``."""
    return name.replace(_ESCAPE, _ESCAPE + _ESCAPE).replace("/", _ESCAPE + "S")


def object_path(path: Sequence[str]) -> str:
    return "/".join(escape_local_name(name) for name in path)


def attribute_key(path: Sequence[str], attribute: str) -> str:
    """Rule O-GR-2: ``<object path>/.ATTRIBUTES/<escaped attribute name>``."""
    return f"{object_path(path)}/{OBJECT_ATTRIBUTES_NAME}/{escape_local_name(attribute)}"


def children_of(
    obj: Trackable, root: Trackable, attached: dict[str, Trackable]
) -> dict[str, Trackable]:
    """An object's children; the root's are followed by the attached dependencies."""
    children = obj._trackable_children()
    if obj is root:
        for name, child in attached.items():
            children.setdefault(name, child)
    return children


def breadth_first(
    root: Trackable, attached: dict[str, Trackable] | None = None
) -> tuple[list[Trackable], list[tuple[str, ...]]]:
    """Every object reachable from ``root`` once, breadth-first, with its first path (O-GR-1).

    The position of an object in the list is its node id in a saved object graph.
    """
    attached = attached or {}
    objects: list[Trackable] = [root]
    paths: list[tuple[str, ...]] = [()]
    seen = {id(root)}
    head = 0
    while head < len(objects):
        obj, path = objects[head], paths[head]
        head += 1
        for name, child in children_of(obj, root, attached).items():
            if id(child) not in seen:
                seen.add(id(child))
                objects.append(child)
                paths.append(path + (name,))
    return objects, paths


@dataclass
class GraphSnapshot:
    """The object graph of a save, with the tensors in the order they are written."""

    graph: TrackableObjectGraph
    tensors: list[tuple[str, np.ndarray]]


def build_graph(root: Trackable, attached: dict[str, Trackable] | None = None) -> GraphSnapshot:
    """Walk breadth-first from ``root`` (rule O-GR-1) and serialize what it holds."""
    attached = attached or {}
    objects, paths = breadth_first(root, attached)
    ids = {id(obj): node_id for node_id, obj in enumerate(objects)}
    nodes = []
    tensors: list[tuple[str, np.ndarray]] = []
    for obj, path in zip(objects, paths, strict=True):
        children = tuple(
            ObjectReference(ids[id(child)], name)
            for name, child in children_of(obj, root, attached).items()
        )
        attributes = []
        for name, value in obj._serialize_to_tensors().items():
            escaped = escape_local_name(name)
            key = attribute_key(path, escaped)
            full_name = obj.full_name if isinstance(obj, Variable) else ""  # rule O-GR-4
            attributes.append(SerializedTensor(escaped, full_name, key))
            tensors.append((key, value))
        nodes.append(TrackableObject(children=children, attributes=tuple(attributes)))
    return GraphSnapshot(_with_value_flags(nodes), tensors)


def _with_value_flags(nodes: list[TrackableObject]) -> TrackableObjectGraph:
    """Rule O-GR-3: a node has values if it or anything below it saves something."""
    parents: dict[int, set[int]] = {}
    marked = set()
    for node_id, node in enumerate(nodes):
        if node.attributes or node.slot_variables or node.registered_saver is not None:
            marked.add(node_id)
        for child in node.children:
            parents.setdefault(child.node_id, set()).add(node_id)
    pending = list(marked)
    while pending:
        node_id = pending.pop()
        for parent in parents.pop(node_id, ()):
            if parent not in marked:
                marked.add(parent)
                pending.append(parent)
    return TrackableObjectGraph(
        tuple(
            TrackableObject(
                n.children, n.attributes, n.slot_variables, n.registered_saver, i in marked
            )
            for i, n in enumerate(nodes)
        )
    )

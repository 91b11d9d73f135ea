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

import os
import sys
import warnings
from array import array
from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import InvalidArgumentError, UntrackedObjectWarning
from ..format.object_graph import encode_node_fields, encode_nodes
from .trackable import Trackable
from .untracked import untracked_trackables
from .variables import Variable

__all__ = [
    "OBJECT_GRAPH_PROTO_KEY",
    "OBJECT_ATTRIBUTES_NAME",
    "escape_local_name",
    "object_path",
    "attribute_key",
    "GraphSnapshot",
    "Walk",
    "breadth_first",
    "reachable",
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


def attribute_key(object_path: str, attribute: str) -> str:
    """Rule O-GR-2: ``<object path>/.ATTRIBUTES/<escaped attribute name>``."""
    return f"{object_path}/{OBJECT_ATTRIBUTES_NAME}/{escape_local_name(attribute)}"


def children_of(
    obj: Trackable, root: Trackable, attached: dict[str, Trackable]
) -> dict[str, Trackable]:
    """An object's children; the root's are followed by the attached dependencies."""
    children = obj._trackable_children()
    if obj is root:
        for name, child in attached.items():
            children.setdefault(name, child)
    return children


@dataclass
class Walk:
    """Every object reachable from a root once, breadth-first (rule O-GR-1).

    ``objects[i]`` is node ``i`` of a saved object graph; ``children[i]`` its named
    children (when kept); ``parent[i]`` and ``name[i]`` the edge that first reached it. Paths are
    spelled out only for the objects that need one (:meth:`path`), so a deep chain
    costs O(depth), not O(depth²).
    """

    objects: list[Trackable]
    children: list[dict[str, Trackable]]
    parent: list[int]
    name: list[str]

    def path(self, index: int) -> tuple[str, ...]:
        names = []
        while index > 0:
            names.append(self.name[index])
            index = self.parent[index]
        return tuple(reversed(names))

    def key_prefix(self, index: int, known: dict[int, str]) -> str:
        """The escaped object path of node ``index`` (rule O-GR-2), from ``known`` ones.

        The path is built from the nearest ancestor already in ``known`` and stored
        there, so nested containers that each hold a value cost the length of the
        keys they produce, not depth times that (keys are what the index holds anyway).
        """
        names = []
        node = index
        while node > 0 and node not in known:
            names.append(self.name[node])
            node = self.parent[node]
        prefix = known.get(node, "")
        if names:
            tail = "/".join(escape_local_name(name) for name in reversed(names))
            prefix = f"{prefix}/{tail}" if prefix else tail
        known[index] = prefix
        return prefix


def breadth_first(
    root: Trackable, attached: dict[str, Trackable] | None = None, *, keep_children: bool = False
) -> Walk:
    """Walk every object reachable from ``root`` once, breadth-first (rule O-GR-1).

    ``keep_children`` keeps each object's children in the walk (a save needs them
    for its node references; a status check does not).
    """
    attached = attached or {}
    walk = Walk([root], [], [-1], [""])
    seen = {id(root)}
    head = 0
    while head < len(walk.objects):
        try:
            children = children_of(walk.objects[head], root, attached)
        except InvalidArgumentError as exc:  # a container that refuses to be saved (O-TR-7)
            where = ".".join(walk.path(head))
            raise InvalidArgumentError(f"cannot save (root).{where}: {exc.message}") from None
        if keep_children:
            walk.children.append(children)
        for name, child in children.items():
            if id(child) not in seen:
                seen.add(id(child))
                walk.objects.append(child)
                walk.parent.append(head)
                walk.name.append(name)
        head += 1
    return walk


def reachable(root: Trackable, attached: dict[str, Trackable] | None = None) -> list[Trackable]:
    """The objects of :func:`breadth_first`, in its order, without recording paths."""
    attached = attached or {}
    objects = [root]
    seen = {id(root)}
    head = 0
    while head < len(objects):
        obj = objects[head]
        children: Iterable[Trackable] = obj._child_trackables()
        if obj is root:
            children = children_of(obj, root, attached).values()
        for child in children:
            if id(child) not in seen:
                seen.add(id(child))
                objects.append(child)
        head += 1
    return objects


@dataclass
class GraphSnapshot:
    """The object graph of a save, encoded, with the tensors in the order they are written."""

    #: The ``TrackableObjectGraph`` message (rule O-PB-1).
    graph_bytes: bytes
    tensors: list[tuple[str, np.ndarray]]
    #: Per tensor: its object never writes into it afterwards, so a background save may
    #: keep it instead of copying it (rule O-CK-10).
    stable: list[bool] = field(default_factory=list)


def build_graph(root: Trackable, attached: dict[str, Trackable] | None = None) -> GraphSnapshot:
    """Walk breadth-first from ``root`` (rule O-GR-1) and serialize what it holds.

    Each node is encoded as soon as it is reached and only its bytes are kept: a graph of N
    objects held as N records of records would hand the cycle collector several objects per
    variable to walk again and again while the save runs.
    """
    walk = breadth_first(root, attached, keep_children=True)
    ids = {id(obj): node_id for node_id, obj in enumerate(walk.objects)}
    _warn_untracked(walk, ids)
    bodies: list[bytes] = []
    saves = bytearray(len(walk.objects))  # 1 where the node itself saves a value
    edge_child, edge_parent = array("q"), array("q")
    tensors: list[tuple[str, np.ndarray]] = []
    stable: list[bool] = []
    known: dict[int, str] = {}  # escaped paths of the nodes keys were made under
    for node_id, obj in enumerate(walk.objects):
        children = [(ids[id(child)], name) for name, child in walk.children[node_id].items()]
        for child_id, _ in children:
            edge_child.append(child_id)
            edge_parent.append(node_id)
        attributes = []
        values = obj._serialize_to_tensors()
        if values:
            saves[node_id] = 1
            if walk.parent[node_id] > 0:
                walk.key_prefix(walk.parent[node_id], known)  # kept for the siblings' keys
            prefix = walk.key_prefix(node_id, known)
            full_name = obj.full_name if isinstance(obj, Variable) else ""  # rule O-GR-4
            for name, value in values.items():
                escaped = escape_local_name(name)
                key = attribute_key(prefix, escaped)  # escaped twice, as TF does
                attributes.append((escaped, full_name, key))
                tensors.append((key, value))
                stable.append(obj._values_stay_unchanged)
        bodies.append(encode_node_fields(children, attributes))
    flags = _value_flags(saves, edge_child, edge_parent)
    return GraphSnapshot(encode_nodes(bodies, (bool(f) for f in flags)), tensors, stable)


def _warn_untracked(walk: Walk, saved: Container[int]) -> None:
    """Rule O-TR-10: say which trackables held by saved objects this save cannot reach."""
    for node_id, obj in enumerate(walk.objects):
        for where, container, found in untracked_trackables(obj, saved):
            path = ".".join(walk.path(node_id))
            warnings.warn(
                f"(root){'.' if path else ''}{path}{where} is a {type(container).__name__} "
                f"holding {_short(found)}, which this checkpoint does not save: checkpoints "
                "follow tracked attributes, lists, dicts and tuples only (TensorFlow drops it "
                "silently). Keep it in a list, dict, tuple or module attribute, or store the "
                "container as NoDependency(...) if it is not meant to be saved.",
                UntrackedObjectWarning,
                stacklevel=_caller_level(),
            )


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _caller_level() -> int:
    """The ``stacklevel`` that points a warning at the first frame outside dtckpt (the
    program's ``write``, ``save`` or ``manager.save`` call)."""
    frame = sys._getframe(1)
    level = 1
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
        level += 1
    return level


def _short(obj: object) -> str:
    text = repr(obj)
    return text if len(text) <= 120 else text[:117] + "..."


def _value_flags(saves: bytearray, edge_child: array[int], edge_parent: array[int]) -> bytearray:
    """Rule O-GR-3: a node has values if it or anything below it saves something.

    ``saves`` marks the nodes that save a value themselves; the edges run from parent to
    child, cycles and shared children included. The marks spread from child to parent over
    the edges sorted by child (arrays, not a list of parents per node).
    """
    marked = bytearray(saves)
    if not edge_child:
        return marked
    child = np.frombuffer(edge_child, dtype=np.int64)
    order = np.argsort(child, kind="stable")
    parents = np.frombuffer(edge_parent, dtype=np.int64)[order].tolist()
    starts = np.searchsorted(child[order], np.arange(len(saves) + 1)).tolist()
    pending = [node for node, flag in enumerate(saves) if flag]
    while pending:
        node = pending.pop()
        for parent in parents[starts[node] : starts[node + 1]]:
            if not marked[parent]:
                marked[parent] = 1
                pending.append(parent)
    return marked

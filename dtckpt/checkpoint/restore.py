"""Matching a checkpoint's object graph to live objects, and the load statuses (rules O-RS-*).

::

    checkpoint node 0 ── bound to ──> root
        child "model" (node 1)  ── root has .model? ── yes: bind, restore, recurse
                                                    └─ no:  defer under root["model"];
                                                            restored when root.model is set

Every ``restore()`` gets a fresh, increasing ``restore_uid``. An object remembers
the uid of the last restore that assigned it, so a restore never overwrites
values from a newer one. Values are read and checked for a whole set of
objects before any of them is assigned: a failing restore changes nothing.
Source: ``tensorflow/python/checkpoint/restore.py`` and ``checkpoint.py``.
"""

from __future__ import annotations

import itertools
import logging
import weakref
from collections import deque
from typing import Any

import numpy as np

from ..errors import InvalidArgumentError
from ..format.bundle_reader import BundleReader
from ..format.object_graph import TrackableObjectGraph
from .trackable import Trackable

__all__ = [
    "CheckpointPosition",
    "RestoreCoordinator",
    "CheckpointLoadStatus",
    "NameBasedSaverStatus",
    "InitializationOnlyStatus",
]

_LOG = logging.getLogger("dtckpt")
_UIDS = itertools.count(1)


class RestoreCoordinator:
    """The state of one ``restore()``: which checkpoint node is bound to which object."""

    def __init__(
        self,
        reader: BundleReader,
        graph: TrackableObjectGraph,
        save_path: str,
        skip_slot_variables: bool = False,
    ) -> None:
        self.reader = reader
        self.graph = graph
        self.save_path = save_path
        self.restore_uid = next(_UIDS)
        self.object_by_node: dict[int, Trackable] = {}
        self.bound_nodes: set[int] = set()  # ids only: safe to hand to the finalizer
        self.unused_attributes: list[tuple[int, str]] = []
        self.skip_slot_variables = skip_slot_variables
        self.slot_nodes = {s.slot_variable_node_id for n in graph.nodes for s in n.slot_variables}
        # A slot variable is reachable once its optimizer and its variable are bound.
        self.pending_slots: dict[int, list[tuple[int, int, str]]] = {}
        if not skip_slot_variables:
            for node_id, node in enumerate(graph.nodes):
                for slot in node.slot_variables:
                    self.pending_slots.setdefault(slot.original_variable_node_id, []).append(
                        (node_id, slot.slot_variable_node_id, slot.slot_name)
                    )
        self.paths = NodePaths(graph)
        self._value_flags: list[bool] | None = None
        # The checkpoint's root object and its attached dependencies (Checkpoint(root, **kw)).
        self.lookup_root: Trackable | None = None
        self.attached: Any = dict
        self._flags = {"expect_partial": False}
        # The finalizer gets the shared state, never ``self`` (that would keep it alive).
        weakref.finalize(
            self,
            _warn_unused,
            graph,
            self.paths,
            self.bound_nodes,
            self.unused_attributes,
            self._flags,
            self.slot_nodes if skip_slot_variables else set(),
        )

    @property
    def expect_partial(self) -> bool:
        return self._flags["expect_partial"]

    @expect_partial.setter
    def expect_partial(self, value: bool) -> None:
        self._flags["expect_partial"] = value

    def lookup(self, obj: Trackable, name: str) -> Trackable | None:
        child = obj._lookup_dependency(name)
        if child is None and obj is self.lookup_root:
            child = self.attached().get(name)
        return child

    def where(self, node_id: int) -> NodeLocation:
        """``SAVE_PATH: (root).a.b``, spelled out only when printed (O(depth), never per node)."""
        return NodeLocation(self.save_path, self.paths, node_id)

    def has_values(self, node_id: int) -> bool:
        """Whether the node or anything below it holds a value (rule O-GR-3)."""
        flag = self.graph.nodes[node_id].has_checkpoint_values
        if flag is not None:
            return flag
        if self._value_flags is None:  # a graph written without the flags: derive all at once
            self._value_flags = _value_flags(self.graph)
        return self._value_flags[node_id]


def _warn_unused(
    graph: TrackableObjectGraph,
    paths: NodePaths,
    bound_nodes: set[int],
    unused_attributes: list[tuple[int, str]],
    flags: dict[str, bool],
    skipped: set[int],
) -> None:
    """Rule O-RS-9: when a restore is forgotten, say which checkpointed values went unused."""
    if flags["expect_partial"]:
        return
    lines = []
    for node_id, node in enumerate(graph.nodes):
        if node.attributes and node_id not in bound_nodes and node_id not in skipped:
            lines.append(
                "Value in checkpoint could not be found in the restored object: "
                f"(root).{paths.path(node_id)}"
            )
    for node_id, name in unused_attributes:
        lines.append(
            "An attribute in the restored object could not be found in the checkpoint. "
            f"Object: (root).{paths.path(node_id)}, attribute: {name}"
        )
    if lines:
        _LOG.warning(
            "A checkpoint was restored with values that were never used. To silence "
            "these warnings, call status.expect_partial()."
        )
        for line in lines:
            _LOG.warning(line)


class NodePaths:
    """Each node's first parent and local name, breadth-first from the root (node 0).

    A node's dotted path is spelled out on demand by walking up: storing every
    path as a string would cost O(depth) per node, quadratic for a deep chain.
    """

    def __init__(self, graph: TrackableObjectGraph) -> None:
        count = len(graph.nodes)
        self._parent = [-1] * count
        self._name: list[str] = [""] * count
        reached = [False] * count
        if count:
            reached[0] = True
        queue = deque([0] if count else [])
        while queue:
            node_id = queue.popleft()
            for child in graph.nodes[node_id].children:
                if not reached[child.node_id]:
                    reached[child.node_id] = True
                    self._parent[child.node_id] = node_id
                    self._name[child.node_id] = child.local_name
                    queue.append(child.node_id)
        self._reached = reached

    def path(self, node_id: int) -> str:
        """``a.b.c``; empty for the root; ``<node N>`` for a node no edge reaches."""
        if not (0 <= node_id < len(self._parent)) or not self._reached[node_id]:
            return f"<node {node_id}>"
        names = []
        while node_id > 0 and self._parent[node_id] >= 0:
            names.append(self._name[node_id])
            node_id = self._parent[node_id]
        return ".".join(reversed(names))


class NodeLocation:
    """Where a node is, for messages: formats as ``SAVE_PATH: (root).a.b``."""

    __slots__ = ("_save_path", "_paths", "_node_id")

    def __init__(self, save_path: str, paths: NodePaths, node_id: int) -> None:
        self._save_path, self._paths, self._node_id = save_path, paths, node_id

    def __str__(self) -> str:
        return f"{self._save_path}: (root).{self._paths.path(self._node_id)}"

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


def _value_flags(graph: TrackableObjectGraph) -> list[bool]:
    """Rule O-GR-3 for a whole graph: a node has values if it or anything below it saves one."""
    parents: list[list[int]] = [[] for _ in graph.nodes]
    flags = [False] * len(graph.nodes)
    pending = []
    for node_id, node in enumerate(graph.nodes):
        for child in node.children:
            parents[child.node_id].append(node_id)
        if node.attributes or node.slot_variables:
            flags[node_id] = True
            pending.append(node_id)
    while pending:
        for parent in parents[pending.pop()]:
            if not flags[parent]:
                flags[parent] = True
                pending.append(parent)
    return flags


class CheckpointPosition:
    """A node of a checkpoint's object graph, waiting for or bound to an object."""

    def __init__(self, coordinator: RestoreCoordinator, node_id: int) -> None:
        self.coordinator = coordinator
        self.node_id = node_id

    @property
    def restore_uid(self) -> int:
        return self.coordinator.restore_uid

    def restore(self, trackable: Trackable) -> None:
        """Bind ``trackable`` and everything below it; read, check, then assign (rule O-RS-2).

        The walk only collects: bindings, deferred positions, slot variables and
        values are committed after every value has passed its check, so a
        failing restore leaves objects, slots and pending restorations as they
        were (rule O-RS-6).
        """
        coordinator = self.coordinator
        graph = coordinator.graph
        bound: dict[int, Trackable] = {}
        assignments: list[tuple[Trackable, dict[str, np.ndarray], int]] = []
        deferrals: list[tuple[Trackable, str, CheckpointPosition]] = []
        slots: list[tuple[Trackable, str, Trackable]] = []
        unused: list[tuple[int, str]] = []
        queue = deque([(self.node_id, trackable)])
        while queue:
            node_id, obj = queue.popleft()
            current = coordinator.object_by_node.get(node_id, bound.get(node_id))
            if current is not None:
                if current is not obj:
                    _LOG.warning(
                        "Inconsistent references when loading the checkpoint into this object "
                        "graph: %s is already bound to another object.",
                        coordinator.where(node_id),
                    )
                continue
            bound[node_id] = obj
            obj._maybe_initialize_trackable()
            node = graph.nodes[node_id]
            values, ignored = self._read_attributes(node_id, obj)
            assignments.append((obj, values, node_id))
            unused.extend(ignored)
            for child in node.children:
                child_obj = coordinator.lookup(obj, child.local_name)
                if child_obj is not None:
                    queue.append((child.node_id, child_obj))
                elif coordinator.has_values(child.node_id):  # deferred (rule O-RS-3)
                    deferrals.append(
                        (obj, child.local_name, CheckpointPosition(coordinator, child.node_id))
                    )
            for _optimizer_node, slot_node, slot_name in coordinator.pending_slots.get(node_id, []):
                if slot_node in coordinator.object_by_node or slot_node in bound:
                    continue
                slot = _slot_for(coordinator, obj, slot_node)
                if slot is not None:
                    slots.append((obj, slot_name, slot))
                    queue.append((slot_node, slot))
        for obj, tensors, node_id in assignments:
            obj._check_restore(tensors, coordinator.where(node_id))
        # Everything checked: commit.
        coordinator.object_by_node.update(bound)
        coordinator.bound_nodes.update(bound)
        coordinator.unused_attributes.extend(unused)
        for obj, name, position in deferrals:
            obj._defer_restoration(name, position)
        for variable, slot_name, slot in slots:
            variable._slots[slot_name] = slot  # type: ignore[attr-defined]
        for obj, tensors, _ in assignments:
            if obj._self_update_uid > coordinator.restore_uid:
                continue  # a newer restore already set this object (rule O-RS-5)
            obj._restore_from_tensors(tensors)
            object.__setattr__(obj, "_self_update_uid", coordinator.restore_uid)

    def _read_attributes(
        self, node_id: int, obj: Trackable
    ) -> tuple[dict[str, np.ndarray], list[tuple[int, str]]]:
        # The keys stored in the graph, never recomputed ones (rule O-RS-4).
        coordinator = self.coordinator
        node = coordinator.graph.nodes[node_id]
        if not node.attributes:
            return {}, []
        wanted = set(obj._serialize_to_tensors())
        values = {}
        unused = []
        for attribute in node.attributes:
            if attribute.name not in wanted:
                unused.append((node_id, attribute.name))
                continue
            try:
                values[attribute.name] = obj._read_checkpoint_value(
                    coordinator.reader, attribute.name, attribute.checkpoint_key
                )
            except InvalidArgumentError as exc:
                raise InvalidArgumentError(
                    f"cannot restore {coordinator.where(node_id)}: {exc.message}",
                    key=attribute.checkpoint_key,
                ) from None
        return values, unused


def _slot_for(
    coordinator: RestoreCoordinator, variable: Trackable, slot_node: int
) -> Trackable | None:
    """A new variable to restore one of ``variable``'s optimizer slots into (rule O-RS-7).

    dtckpt has no optimizers: when a variable with optimizer slots in the
    checkpoint is bound, each slot is restored into a new :class:`Variable`,
    kept (once the restore commits) in the variable's ``slots`` mapping.
    """
    from .variables import Variable

    if not isinstance(variable, Variable):
        return None
    node = coordinator.graph.nodes[slot_node]
    if not node.attributes:
        return None
    value = coordinator.reader.read(node.attributes[0].checkpoint_key)
    return Variable(
        np.zeros_like(value), name=node.attributes[0].full_name or None, trainable=False
    )


def _objects_with_attributes(objects: list[Trackable]) -> list[Trackable]:
    return [o for o in objects if o._serialize_to_tensors()]


class _Status:
    def expect_partial(self) -> _Status:
        return self

    def run_restore_ops(self, session: Any = None) -> None:
        """Eager only: restores already ran."""

    def initialize_or_restore(self, session: Any = None) -> None:
        """Eager only: restores already ran."""


class CheckpointLoadStatus(_Status):
    """What ``Checkpoint.restore``/``read`` return for an object-based checkpoint."""

    def __init__(self, coordinator: RestoreCoordinator, root: Trackable, attached: Any) -> None:
        self._coordinator = coordinator
        self._root = root
        self._attached = attached

    def _live_objects(self) -> list[Trackable]:
        from .graph import breadth_first

        return breadth_first(self._root, self._attached()).objects

    def assert_consumed(self) -> CheckpointLoadStatus:
        """Every checkpointed value was matched to an object, and every object to a value.

        Rule O-RS-10.
        """
        self.assert_existing_objects_matched()
        coordinator = self._coordinator
        for node_id, node in enumerate(coordinator.graph.nodes):
            if not node.attributes:
                continue
            if coordinator.skip_slot_variables and node_id in coordinator.slot_nodes:
                continue
            if node_id not in coordinator.object_by_node:
                raise AssertionError(
                    f"Unresolved object in checkpoint {coordinator.where(node_id)}: "
                    f"attributes {[a.checkpoint_key for a in node.attributes]}"
                )
        if coordinator.unused_attributes:
            raise AssertionError(
                "Unused attributes in these objects (the checkpoint has values the objects "
                "do not take): "
                + ", ".join(f"{coordinator.where(n)} {a}" for n, a in coordinator.unused_attributes)
            )
        return self

    def assert_existing_objects_matched(self) -> CheckpointLoadStatus:
        """Every object that exists now and saves values was restored (rule O-RS-11)."""
        coordinator = self._coordinator
        for node_id, obj in coordinator.object_by_node.items():
            if obj._self_update_uid < coordinator.restore_uid:
                raise AssertionError(
                    f"Object {coordinator.where(node_id)} not assigned a value from checkpoint."
                )
        bound = {id(o) for o in coordinator.object_by_node.values()}
        unmatched = [
            o for o in _objects_with_attributes(self._live_objects()) if id(o) not in bound
        ]
        if unmatched:
            raise AssertionError(
                "Some Python objects were not bound to checkpointed values, likely due to "
                f"changes in the Python program: {unmatched}"
            )
        return self

    def assert_nontrivial_match(self) -> CheckpointLoadStatus:
        """More than the root object was matched (rule O-RS-12)."""
        coordinator = self._coordinator
        if len(coordinator.object_by_node) <= 1:
            bound = {id(o) for o in coordinator.object_by_node.values()}
            unmatched = [
                o for o in _objects_with_attributes(self._live_objects()) if id(o) not in bound
            ]
            if unmatched:
                raise AssertionError(
                    "Nothing except the root object matched a checkpointed value. Typically "
                    "this means that the checkpoint does not match the Python program. The "
                    f"following objects have no matching checkpointed value: {unmatched}"
                )
            raise AssertionError(
                f"Nothing to load. No dependencies have been added to {self._root} yet."
            )
        return self

    def expect_partial(self) -> CheckpointLoadStatus:
        """Silence the warnings about checkpointed values that were not used (rule O-RS-13)."""
        self._coordinator.expect_partial = True
        return self


class NameBasedSaverStatus(_Status):
    """Status of restoring a name-based (TF1 ``Saver``) checkpoint: every check is consumption."""

    def __init__(self, missing: list[str], unused: list[str]) -> None:
        self._missing = missing
        self._unused = unused

    def assert_consumed(self) -> NameBasedSaverStatus:
        if self._missing:
            raise AssertionError(
                f"Some objects had attributes which were not restored: {self._missing}"
            )
        return self

    def assert_existing_objects_matched(self) -> NameBasedSaverStatus:
        return self.assert_consumed()

    def assert_nontrivial_match(self) -> NameBasedSaverStatus:
        return self.assert_consumed()

    def expect_partial(self) -> NameBasedSaverStatus:
        return self


class InitializationOnlyStatus(_Status):
    """``restore(None)``: nothing was restored, so every assertion fails."""

    def assert_consumed(self) -> InitializationOnlyStatus:
        raise AssertionError("No checkpoint specified (save_path=None); nothing is being restored.")

    def assert_existing_objects_matched(self) -> InitializationOnlyStatus:
        raise AssertionError("No checkpoint specified (save_path=None); nothing is being restored.")

    def assert_nontrivial_match(self) -> InitializationOnlyStatus:
        raise AssertionError("No checkpoint specified (save_path=None); nothing is being restored.")

    def expect_partial(self) -> InitializationOnlyStatus:
        return self

"""Matching a checkpoint's object graph to live objects (rules O-RS-*).

::

    checkpoint node 0 ── bound to ──> root
        child "model" (node 1)  ── root has .model? ── yes: bind, restore, recurse
                                                    └─ no:  defer under root["model"];
                                                            restored when root.model is set

One binding step (an object and everything matched below it) runs in three
phases: *match* walks the graph breadth-first, binding nodes to objects and
checking every stored value's dtype and shape against its object from the
bundle's index alone; *commit* records the bindings, deferred positions and
slot variables; *assign* then reads each object's values and hands them over,
one object at a time, so a restore holds at most one object's new values beyond
what the objects already hold. A check that fails leaves everything as it was.

Every ``restore()`` gets a fresh, increasing ``restore_uid``. An object remembers
the uid of the last restore that assigned it, so a restore never overwrites
values from a newer one.

Lifetimes follow TensorFlow (rule O-RS-14): the coordinator refers to bound objects, the root
and the attached dependencies weakly, so the deferred positions it leaves on
objects create no reference cycle, and it closes the bundle's data files after
each step (deferred restores reopen them).
Source: ``tensorflow/python/checkpoint/restore.py`` and ``checkpoint.py``.
"""

from __future__ import annotations

import itertools
import logging
import weakref
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np

from ..dtypes import info
from ..errors import CheckpointError, InvalidArgumentError
from ..format.bundle_reader import BundleReader
from ..format.object_graph import ObjectGraphView, ObjectReference, SerializedTensor
from .plans import ObjectReads, RestorePlan, ValueRead, schedule
from .trackable import Trackable

__all__ = ["CheckpointPosition", "RestoreCoordinator", "NodePaths"]

_LOG = logging.getLogger("dtckpt")
_UIDS = itertools.count(1)
_LATEST_UID = [0]  # the uid of the newest restore started in this process

#: A bound object: a weak reference where the object allows one, else the object.
_Ref = Callable[[], Trackable | None]


def _reference(obj: Trackable) -> _Ref:
    try:
        return weakref.ref(obj)
    except TypeError:  # e.g. tuple subclasses cannot be weakly referenced
        return lambda: obj


class RestoreCoordinator:
    """The state of one ``restore()``: which checkpoint node is bound to which object."""

    def __init__(
        self,
        reader: BundleReader,
        graph: ObjectGraphView,
        save_path: str,
        *,
        root: Trackable,
        attached: dict[str, Trackable],
        skip_slot_variables: bool = False,
        on_error: Callable[[CheckpointError], CheckpointError] = lambda exc: exc,
        memory_budget: int | None = None,
        clients: int = 1,
    ) -> None:
        self.reader = reader
        self.memory_budget = memory_budget  # rules R-MB-1..3
        self.clients = clients
        self.graph = graph
        self.save_path = save_path
        self.restore_uid = next(_UIDS)
        _LATEST_UID[0] = self.restore_uid
        self._objects: list[_Ref | None] = [None] * len(graph)
        # Node ids only (never objects): shared with the finalizer that warns at the end.
        self.bound = bytearray(len(graph))
        self.unused_attributes: list[tuple[int, str]] = []
        self.skip_slot_variables = skip_slot_variables
        self.slot_nodes = {s.slot_variable_node_id for _, s in graph.slot_variables}
        # A slot variable is reachable once its variable is bound (rule O-RS-7).
        self.pending_slots: dict[int, list[tuple[int, str]]] = {}
        if not skip_slot_variables:
            for _owner, slot in graph.slot_variables:
                self.pending_slots.setdefault(slot.original_variable_node_id, []).append(
                    (slot.slot_variable_node_id, slot.slot_name)
                )
        self.paths = NodePaths(graph)
        self._root = _reference(root)
        self._attached = {name: _reference(obj) for name, obj in attached.items()}
        self._on_error = on_error  # adds the object graph's file and key to parse errors
        self._value_flags: list[bool] | None = None
        self._flags = {"expect_partial": False}
        # The finalizer gets the shared state, never ``self`` (that would keep it alive).
        weakref.finalize(
            self,
            _warn_unused,
            graph,
            self.paths,
            self.bound,
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

    def attributes(self, node_id: int) -> list[SerializedTensor]:
        try:
            return self.graph.attributes(node_id)
        except CheckpointError as exc:
            raise self._on_error(exc) from None

    def children(self, node_id: int) -> Iterator[ObjectReference]:
        try:
            yield from self.graph.children(node_id)
        except CheckpointError as exc:
            raise self._on_error(exc) from None

    def bound_object(self, node_id: int) -> Trackable | None:
        """The live object bound to ``node_id``, if any."""
        ref = self._objects[node_id]
        return None if ref is None else ref()

    def bound_objects(self) -> Iterator[tuple[int, Trackable]]:
        """Every bound node with its object, objects that no longer exist left out."""
        for node_id, ref in enumerate(self._objects):
            obj = None if ref is None else ref()
            if obj is not None:
                yield node_id, obj

    def bind(self, node_id: int, obj: Trackable) -> None:
        self._objects[node_id] = _reference(obj)
        self.bound[node_id] = 1

    def unbind(self, node_id: int) -> None:
        self._objects[node_id] = None
        self.bound[node_id] = 0

    def is_newest(self) -> bool:
        """No restore started after this one: then exactly the objects this restore bound
        carry its uid (rule O-RS-5), and membership needs no table of identities."""
        return _LATEST_UID[0] == self.restore_uid

    def lookup(self, obj: Trackable, name: str) -> Trackable | None:
        child = obj._lookup_dependency(name)
        if child is None and obj is self._root():
            ref = self._attached.get(name)
            child = None if ref is None else ref()
        return child

    def where(self, node_id: int) -> NodeLocation:
        """``SAVE_PATH: (root).a.b``, spelled out only when printed (O(depth), never per node)."""
        return NodeLocation(self.save_path, self.paths, node_id)

    def has_values(self, node_id: int) -> bool:
        """Whether the node or anything below it holds a value (rules O-GR-3, O-RS-3)."""
        flag = self.graph.has_checkpoint_values(node_id)
        if flag is not None:
            return flag
        if self._value_flags is None:  # a graph written without the flags: derive all at once
            self._value_flags = _value_flags(self.graph)
        return self._value_flags[node_id]


def _warn_unused(
    graph: ObjectGraphView,
    paths: NodePaths,
    bound: bytearray,
    unused_attributes: list[tuple[int, str]],
    flags: dict[str, bool],
    skipped: set[int],
) -> None:
    """Rule O-RS-9: when a restore is forgotten, say which checkpointed values went unused."""
    if flags["expect_partial"]:
        return
    lines = []
    for node_id in range(len(graph)):
        if graph.has_attributes(node_id) and not bound[node_id] and node_id not in skipped:
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

    Built on first use (a message needs a path), by one walk over the graph. A
    node's dotted path is then spelled out by walking up: storing every path as
    a string would cost O(depth) per node, quadratic for a deep chain.
    """

    def __init__(self, graph: ObjectGraphView) -> None:
        self._graph = graph
        self._parent: list[int] | None = None
        self._name: list[str] = []

    def _build(self) -> list[int]:
        count = len(self._graph)
        parent = [-1] * count
        self._name = [""] * count
        reached = bytearray(count)
        queue = deque([0] if count else [])
        if count:
            reached[0] = 1
        while queue:
            node_id = queue.popleft()
            for child in self._graph.children(node_id):
                if not reached[child.node_id]:
                    reached[child.node_id] = 1
                    parent[child.node_id] = node_id
                    self._name[child.node_id] = child.local_name
                    queue.append(child.node_id)
        for node_id in range(1, count):
            if not reached[node_id]:
                parent[node_id] = -2  # no edge reaches it
        self._parent = parent
        return parent

    def path(self, node_id: int) -> str:
        """``a.b.c``; empty for the root; ``<node N>`` for a node no edge reaches."""
        try:
            parent = self._parent if self._parent is not None else self._build()
        except CheckpointError:
            return f"<node {node_id}>"  # a damaged graph: the id is all that can be said
        if not 0 <= node_id < len(parent) or parent[node_id] == -2:
            return f"<node {node_id}>"
        names = []
        while node_id > 0:
            names.append(self._name[node_id])
            node_id = parent[node_id]
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


def _value_flags(graph: ObjectGraphView) -> list[bool]:
    """Rule O-GR-3 for a whole graph: a node has values if it or anything below it saves one."""
    parents: list[list[int]] = [[] for _ in range(len(graph))]
    flags = [False] * len(graph)
    pending = []
    slot_owners = {s.slot_variable_node_id for _, s in graph.slot_variables}
    slot_owners |= {owner for owner, _ in graph.slot_variables}
    for node_id in range(len(graph)):
        for child in graph.children(node_id):
            parents[child.node_id].append(node_id)
        if graph.has_attributes(node_id) or node_id in slot_owners:
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

    def restore(
        self, trackable: Trackable, after_match: Callable[[_Step], None] | None = None
    ) -> None:
        """Bind ``trackable`` and everything below it, check, commit, assign (rules O-RS-2, -6).

        ``after_match(step)`` runs once everything is matched and checked, before
        anything is committed or read (a collective restore shares its plan there,
        rule P-RS-1); if it raises, nothing is bound.
        """
        step = _Step(self.coordinator)
        try:
            try:
                step.match(self.node_id, trackable)
                if self.coordinator.memory_budget is not None:
                    step.plan_reads()  # rules R-PL-1, R-MB-1: refused here, nothing changed
                if after_match is not None:
                    after_match(step)
            except BaseException:
                step.unbind()
                raise
            step.commit()
            step.assign()
        finally:
            self.coordinator.reader.close_files()  # reopened by a later deferred restore

    def plan(self, trackable: Trackable, live: Iterable[tuple[str, Trackable]]) -> RestorePlan:
        """The plan :meth:`restore` would run, found by the same match, then undone: no
        object is bound or changed and no value read (rule R-PL-1). ``live`` lists the
        objects that exist, with their paths, to name the ones nothing matches."""
        step = _Step(self.coordinator)
        try:
            step.match(self.node_id, trackable)
            step.plan_reads(named=True)
            return step.describe(live)
        finally:
            step.unbind()
            self.coordinator.reader.close_files()


class _Step:
    """One binding step: the object passed in and everything matched below it.

    Nodes are bound in the coordinator's table as they are matched (undone if a
    check fails), and the step keeps only node ids, in compact arrays: its
    bookkeeping costs a few bytes a node.
    """

    def __init__(self, coordinator: RestoreCoordinator) -> None:
        self.coordinator = coordinator
        self.bound = array("q")  # nodes bound by this step, in walk order
        self.with_values = array("q")  # those with attributes
        self.deferrals: list[tuple[Trackable, str, int]] = []
        self.slots: list[tuple[Trackable, str, Trackable]] = []
        #: A new slot variable's node -> its variable's node and the slot's name.
        self.slot_of: dict[int, tuple[int, str]] = {}
        self.unused: list[tuple[int, str]] = []
        #: What each object of ``with_values`` reads, in order, with the (attribute name,
        #: checkpoint key) pairs it takes (rule R-PL-1); ``None`` until planned, and a
        #: restore without a memory budget records no plan.
        self.planned: list[tuple[int, ObjectReads, list[tuple[str, str]]]] | None = None

    def match(self, node_id: int, trackable: Trackable) -> None:
        """Bind breadth-first and check every stored value against its object (O-RS-2, O-RS-6)."""
        coordinator = self.coordinator
        queue = deque([(node_id, trackable)])
        while queue:
            node_id, obj = queue.popleft()
            if coordinator.bound[node_id]:
                if coordinator.bound_object(node_id) is not obj:
                    _LOG.warning(
                        "Inconsistent references when loading the checkpoint into this object "
                        "graph: %s is already bound to another object.",
                        coordinator.where(node_id),
                    )
                continue
            coordinator.bind(node_id, obj)
            self.bound.append(node_id)
            obj._check_restorable()  # a container a save would refuse (O-TR-7..9)
            if coordinator.graph.has_attributes(node_id):
                self.with_values.append(node_id)
                self._check_values(node_id, coordinator.attributes(node_id), obj)
            for child in coordinator.children(node_id):
                child_obj = coordinator.lookup(obj, child.local_name)
                if child_obj is not None:
                    queue.append((child.node_id, child_obj))
                elif coordinator.has_values(child.node_id):  # deferred (rule O-RS-3)
                    self.deferrals.append((obj, child.local_name, child.node_id))
            for slot_node, slot_name in coordinator.pending_slots.get(node_id, ()):
                if coordinator.bound[slot_node]:
                    continue
                slot = self._new_slot(obj, slot_node)
                if slot is not None:
                    self.slots.append((obj, slot_name, slot))  # keeps the new slot alive
                    self.slot_of[slot_node] = (node_id, slot_name)
                    queue.append((slot_node, slot))

    def planned_reads(self) -> Iterator[tuple[str, object]]:
        """Each checkpoint key this step will read, with the value that will take it."""
        coordinator = self.coordinator
        for node_id in self.with_values:
            obj = coordinator.bound_object(node_id)
            if obj is None:
                continue
            saved = obj._serialize_to_tensors()
            for attribute in coordinator.attributes(node_id):
                if attribute.name in saved:
                    yield attribute.checkpoint_key, saved[attribute.name]

    def unbind(self) -> None:
        """A check failed: forget this step's bindings, leaving the coordinator as it was."""
        for node_id in self.bound:
            self.coordinator.unbind(node_id)

    def _check_values(
        self, node_id: int, attributes: list[SerializedTensor], obj: Trackable
    ) -> None:
        """Check each value ``obj`` takes from the index alone; note the ones it does not."""
        # The keys stored in the graph, never recomputed ones (rule O-RS-4); only the
        # index is consulted here, no value is read.
        reader = self.coordinator.reader
        saved = obj._attribute_names()
        for attribute in attributes:
            if attribute.name not in saved:
                self.unused.append((node_id, attribute.name))
                continue
            entry = reader.entry(attribute.checkpoint_key)
            key = attribute.checkpoint_key
            problem = obj._restore_problem(
                attribute.name, key, info(entry.dtype).name, tuple(entry.shape)
            )
            if problem is not None:
                raise InvalidArgumentError(
                    f"cannot restore {self.coordinator.where(node_id)}: {problem}",
                    key=attribute.checkpoint_key,
                )
            # Its data files opened and its bytes found inside them (rule F-RD-9): held
            # open until the step ends, so that a checkpoint pruned meanwhile still reads.
            # Values are read in the order they are checked: a store reads them ahead
            # (rule S-SI-8), outside a memory budget, which counts no read-ahead.
            reader.check_stored(key, entry, expect=self.coordinator.memory_budget is None)

    def _taken(self, node_id: int, obj: Trackable) -> list[tuple[str, str]]:
        """The (attribute name, checkpoint key) pairs ``obj`` takes, as checked by
        :meth:`_check_values`: decoded again when needed rather than held for every
        object of a restore (a restore's bookkeeping stays a few bytes a node)."""
        saved = obj._attribute_names()
        return [
            (a.name, a.checkpoint_key)
            for a in self.coordinator.attributes(node_id)
            if a.name in saved
        ]

    def _new_slot(self, variable: Trackable, slot_node: int) -> Trackable | None:
        """A new variable to restore one of ``variable``'s optimizer slots into (rule O-RS-7).

        dtckpt has no optimizers: when a variable with optimizer slots in the
        checkpoint is bound, each slot is restored into a new :class:`Variable`,
        kept (once the restore commits) in the variable's ``slots`` mapping.
        """
        from .variables import Variable

        if not isinstance(variable, Variable):
            return None
        attributes = self.coordinator.attributes(slot_node)
        if not attributes:
            return None
        entry = self.coordinator.reader.entry(attributes[0].checkpoint_key)
        row = info(entry.dtype)
        # Zeros that take no memory: the restore reads the slot's value into a new array
        # (rule R-PL-3), and a plan that only looks allocates nothing.
        placeholder = np.broadcast_to(np.zeros((), dtype=row.numpy), tuple(entry.shape))
        return Variable._holding(placeholder, name=attributes[0].full_name or None, trainable=False)

    def commit(self) -> None:
        """Everything checked: record unused values, deferred positions and slots."""
        coordinator = self.coordinator
        coordinator.unused_attributes.extend(self.unused)
        for obj, name, node_id in self.deferrals:
            obj._defer_restoration(name, CheckpointPosition(coordinator, node_id))
        for variable, slot_name, slot in self.slots:
            variable._slots[slot_name] = slot  # type: ignore[attr-defined]

    def plan_reads(self, *, named: bool = False) -> None:
        """What each object will read and the memory it takes, from the index alone, within
        the coordinator's memory budget or refused (rules R-PL-1..3, R-MB-1, R-MB-2).

        ``named``: label each read with its object's path (a plan that is shown); a restore
        that only runs its plan skips spelling out paths.
        """
        coordinator = self.coordinator
        assigned = list(self._assigned())

        def plan(
            item: tuple[int, Trackable, list[tuple[str, str]]], scratch: int, threads: int
        ) -> ObjectReads:
            node_id, obj, taken = item
            target = self._label(node_id) if named else ""
            reads: list[ValueRead] = []
            running = 1
            for name, key in taken:
                planned, at_once = obj._plan_checkpoint_read(
                    coordinator.reader, name, key, target=target, scratch=scratch, threads=threads
                )
                reads.extend(planned)
                running = max(running, at_once)
            return ObjectReads(target, tuple(reads), running)

        planned = schedule(
            assigned,
            plan,
            coordinator.memory_budget,
            what="the restore",
            path=coordinator.save_path,
        )
        self.planned = [
            (node_id, reads, taken)
            for (node_id, _, taken), reads in zip(assigned, planned, strict=True)
        ]

    def _label(self, node_id: int) -> str:
        """``(root).a.b``, or ``(root).a.b.slots['m']`` for a new slot variable."""
        owner = self.slot_of.get(node_id)
        if owner is not None:
            return f"{self._label(owner[0])}.slots[{owner[1]!r}]"
        return f"(root).{self.coordinator.paths.path(node_id)}"

    def _assigned(self) -> Iterator[tuple[int, Trackable, list[tuple[str, str]]]]:
        """The objects :meth:`assign` gives values to, in its order."""
        coordinator = self.coordinator
        uid = coordinator.restore_uid
        for node_id in self.with_values:
            obj = coordinator.bound_object(node_id)
            if obj is None or obj._self_update_uid > uid:
                continue  # a newer restore already set this object (rule O-RS-5)
            yield node_id, obj, self._taken(node_id, obj)

    def describe(self, live: Iterable[tuple[str, Trackable]]) -> RestorePlan:
        """The plan of this step, with what matched nothing (rule R-PL-4)."""
        coordinator = self.coordinator
        graph = coordinator.graph
        bound = {id(coordinator.bound_object(n)) for n in self.bound}
        unmatched = [path for path, obj in live if id(obj) not in bound and obj._attribute_names()]
        waiting = bytearray(len(graph))  # nodes under a deferred position
        queue = deque(node_id for _, _, node_id in self.deferrals)
        for node_id in queue:
            waiting[node_id] = 1
        while queue:
            for child in coordinator.children(queue.popleft()):
                if not waiting[child.node_id] and not coordinator.bound[child.node_id]:
                    waiting[child.node_id] = 1
                    queue.append(child.node_id)
        skipped = coordinator.slot_nodes if coordinator.skip_slot_variables else set()
        unused: list[str] = []
        deferred: list[str] = []
        for node_id in range(len(graph)):
            if coordinator.bound[node_id] or not graph.has_attributes(node_id):
                continue
            if node_id in skipped:
                continue
            keys = [a.checkpoint_key for a in coordinator.attributes(node_id)]
            unused.extend(keys)
            if waiting[node_id]:
                deferred.extend(keys)
        for node_id, name in self.unused:
            for attribute in coordinator.attributes(node_id):
                if attribute.name == name:
                    unused.append(attribute.checkpoint_key)
        assert self.planned is not None  # describe follows plan_reads
        return RestorePlan(
            coordinator.save_path,
            [reads for _, reads, _ in self.planned],
            unmatched=unmatched,
            unused=unused,
            deferred=deferred,
            budget=coordinator.memory_budget,
            clients=coordinator.clients,
        )

    def _runs(self) -> Iterator[tuple[int, ObjectReads | None, list[tuple[str, str]] | None]]:
        """What :meth:`assign` reads: the recorded plan, or, without a budget, each object
        with nothing recorded (its reads then decide as its plan would, rule R-PL-1)."""
        if self.planned is not None:
            yield from self.planned
        else:
            for node_id in self.with_values:
                yield node_id, None, None

    def assign(self) -> None:
        """Read each object's values as planned and hand them over, one object at a time
        (rules O-RS-4, O-RS-5, R-PL-1)."""
        coordinator = self.coordinator
        uid = coordinator.restore_uid
        for node_id, plan, taken in self._runs():
            obj = coordinator.bound_object(node_id)
            if obj is None or obj._self_update_uid > uid:
                continue  # a newer restore already set this object (rule O-RS-5)
            if taken is None:
                taken = self._taken(node_id, obj)
            values = {}
            for name, key in taken:
                if plan is None:
                    reads: Sequence[ValueRead] = ()
                elif len(taken) == 1:
                    reads = plan.reads
                else:
                    reads = [r for r in plan.reads if r.key == key]
                try:
                    values[name] = obj._read_checkpoint_value(coordinator.reader, name, key, reads)
                except InvalidArgumentError as exc:
                    raise InvalidArgumentError(
                        f"cannot restore {coordinator.where(node_id)}: {exc.message}",
                        key=key,
                    ) from None
            obj._restore_from_tensors(values)
        for node_id in self.bound:
            obj = coordinator.bound_object(node_id)
            if obj is not None and obj._self_update_uid < uid:
                object.__setattr__(obj, "_self_update_uid", uid)

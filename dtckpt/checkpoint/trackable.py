"""``Trackable``: objects that own named dependencies and checkpointed values (rule O-TR-1).

Mirrors ``tensorflow/python/trackable/base.py``. A trackable has

* **dependencies**: named children, in the order they were first tracked
  (re-tracking a name keeps its position), visited breadth-first when saving;
* **attributes**: the tensors it saves for itself (a variable saves
  ``VARIABLE_VALUE``), produced by :meth:`_serialize_to_tensors`;
* **deferred restorations**: checkpoint positions waiting for a child that does
  not exist yet. When a child is later tracked under that name, it is restored
  on the spot ("restore on create").

``_track_trackable`` keeps TensorFlow's contract (rule O-TR-5): only trackables,
and a name already taken by another object only with ``overwrite=True``.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from .plans import ValueRead
    from .restore import CheckpointPosition

__all__ = [
    "Trackable",
    "TrackableReference",
    "no_automatic_dependency_tracking",
    "no_automatic_dependency_tracking_scope",
    "no_manual_dependency_tracking_scope",
]

_F = TypeVar("_F", bound=Callable[..., Any])


class TrackableReference:
    """A named dependency: ``(name, ref)`` (``tf.__internal__.tracking.TrackableReference``)."""

    __slots__ = ("_name", "_ref")

    def __init__(self, name: str, ref: Trackable) -> None:
        self._name = name
        self._ref = ref

    @property
    def name(self) -> str:
        return self._name

    @property
    def ref(self) -> Trackable:
        return self._ref

    def __iter__(self) -> Iterator[Any]:
        yield self._name
        yield self._ref

    def __repr__(self) -> str:
        return f"TrackableReference(name={self._name}, ref={self._ref})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, tuple):
            return len(other) == 2 and other[0] == self._name and other[1] is self._ref
        if isinstance(other, TrackableReference):
            return self._name == other._name and self._ref is other._ref
        return False

    __hash__ = None  # type: ignore[assignment]


class Trackable:
    """Base class of everything a checkpoint can hold.

    Subclasses need not call ``__init__``: the bookkeeping is created on first use,
    as in TensorFlow, so that mixing in ``Trackable`` never breaks a constructor.
    An object that has no children and no pending restorations carries none of it.
    """

    # Class-level defaults, replaced per object on first use. (Reading ``self.__dict__``
    # instead would make CPython build a dict for every object it touches.)
    _self_dependencies: dict[str, Trackable] | None = None
    _self_deferred: dict[str, list[CheckpointPosition]] | None = None
    #: The uid of the restore that last assigned this object (rule O-RS-5); set per object.
    _self_update_uid: int = -1
    #: Whether attribute assignment tracks (``AutoTrackable``, rule O-TR-6).
    _self_setattr_tracking: bool = True

    def _maybe_initialize_trackable(self) -> None:
        if self._self_dependencies is None:
            object.__setattr__(self, "_self_dependencies", {})

    # -- dependencies --------------------------------------------------------
    def _trackable_children(self) -> dict[str, Trackable]:
        """Named children, in tracking order (what a checkpoint of this object holds)."""
        dependencies = self._self_dependencies
        return dict(dependencies) if dependencies else {}

    def _child_trackables(self) -> Iterable[Trackable]:
        """The children of :meth:`_trackable_children` without their names (walks that only
        need the objects, e.g. status checks, skip building names)."""
        return self._trackable_children().values()

    def _lookup_dependency(self, name: str) -> Trackable | None:
        """The child ``name``, or None; O(1), since restores look up every child once."""
        dependencies = self._self_dependencies
        return dependencies.get(name) if dependencies else None

    def _check_restorable(self) -> None:
        """Raise if a restore must not bind this object: a container that a save would
        refuse refuses a restore too, as TensorFlow's does (rules O-RS-2, O-TR-7..9)."""

    def _current_dependency(self, name: str) -> Trackable | None:
        """What ``name`` names now, for ``_track_trackable`` (containers skip the checks
        their ``_lookup_dependency`` makes for restores)."""
        return self._lookup_dependency(name)

    def _track_trackable(
        self, trackable: Trackable, name: str, overwrite: bool = False
    ) -> Trackable:
        """Record ``trackable`` as the child ``name`` and restore it if a restore waits for it.

        Rule O-TR-5, as ``Trackable._track_trackable`` in TensorFlow: a non-trackable is a
        ``TypeError``; a name held by another object is a ``ValueError`` unless
        ``overwrite``, which replaces the child in place (restorations waiting for the
        name ran when it was first tracked and do not run again).
        """
        self._maybe_initialize_trackable()
        if not isinstance(trackable, Trackable):
            raise TypeError(
                "Trackable._track_trackable() can only be used to track objects of type "
                f"Trackable. Got type {type(trackable)}."
            )
        if not getattr(self, "_manual_tracking", True):
            return trackable
        dependencies = self._self_dependencies
        assert dependencies is not None
        current = self._current_dependency(name)
        if current is None:
            dependencies[name] = trackable
            self._handle_deferred(name, trackable)
        elif current is not trackable:
            if not overwrite:
                raise ValueError(
                    f"Called Trackable._track_trackable() with name='{name}', but a Trackable "
                    "with this name is already declared as a dependency. Names must be "
                    "unique (or overwrite=True)."
                )
            dependencies[name] = trackable
        return trackable

    def _handle_deferred(self, name: str, trackable: Trackable) -> None:
        deferred = self._self_deferred
        positions = deferred.pop(name, None) if deferred else None
        if positions:
            # Newest restore last, so that it wins (rule O-RS-5).
            for position in sorted(positions, key=lambda p: p.restore_uid):
                position.restore(trackable)

    def _delete_tracking(self, name: str) -> None:
        """Forget the child ``name`` (``del obj.name`` on an ``AutoTrackable``)."""
        dependencies = self._self_dependencies
        if dependencies:
            dependencies.pop(name, None)

    def _defer_restoration(self, name: str, position: CheckpointPosition) -> None:
        deferred = self._self_deferred
        if deferred is None:
            deferred = {}
            object.__setattr__(self, "_self_deferred", deferred)
        deferred.setdefault(name, []).append(position)

    def _no_dependency(self, value: Any) -> Any:
        """``value`` as it should be stored without a dependency (``AutoTrackable`` wraps it)."""
        return value

    # -- TensorFlow's names for the bookkeeping -------------------------------
    @property
    def _unconditional_checkpoint_dependencies(self) -> list[TrackableReference]:
        """The tracked dependencies as ``TrackableReference``s, in tracking order."""
        dependencies = self._self_dependencies or {}
        return [TrackableReference(name, ref) for name, ref in dependencies.items()]

    @property
    def _unconditional_dependency_names(self) -> dict[str, Trackable]:
        return dict(self._self_dependencies or {})

    @property
    def _checkpoint_dependencies(self) -> list[TrackableReference]:
        """Every child (what a save holds), as ``TrackableReference``s."""
        return [TrackableReference(n, c) for n, c in self._trackable_children().items()]

    @property
    def _deferred_dependencies(self) -> dict[str, list[CheckpointPosition]]:
        """Restorations waiting for a child, by child name."""
        if self._self_deferred is None:
            object.__setattr__(self, "_self_deferred", {})
        assert self._self_deferred is not None
        return self._self_deferred

    @property
    def _update_uid(self) -> int:
        return self._self_update_uid

    @property
    def _setattr_tracking(self) -> bool:
        return self._self_setattr_tracking

    @_setattr_tracking.setter
    def _setattr_tracking(self, value: bool) -> None:
        object.__setattr__(self, "_self_setattr_tracking", bool(value))

    # -- checkpointed values -------------------------------------------------
    #: Whether the values :meth:`_serialize_to_tensors` returns are never written into
    #: afterwards (a new value replaces them), so that a background save may keep them
    #: instead of copying them (rule O-CK-10). Off unless a subclass promises it.
    _values_stay_unchanged = False

    def _serialize_to_tensors(self) -> dict[str, Any]:
        """Attribute name -> value to save. Plain trackables save nothing."""
        return {}

    def _attribute_names(self) -> Collection[str]:
        """The names of :meth:`_serialize_to_tensors`, for restores and status checks,
        which need the names only (an object whose values are costly to produce, such as
        Python state, says them without producing the values)."""
        return self._serialize_to_tensors().keys()

    def _restore_problem(
        self, name: str, key: str, dtype: str, shape: tuple[int, ...]
    ) -> str | None:
        """Why the value stored under ``key`` (``dtype``, ``shape``) cannot restore the
        attribute ``name``; ``None`` if it can.

        Asked for every value from the index, before anything is read or assigned
        (rule O-RS-6).
        """
        return None

    def _plan_checkpoint_read(
        self, reader: Any, name: str, key: str, *, target: str, scratch: int, threads: int
    ) -> tuple[list[ValueRead], int]:
        """How :meth:`_read_checkpoint_value` will read ``key``, from the index alone (rule
        R-PL-2): the reads, and how many of them run at once (at most ``threads``).

        By default the value is read whole into a new array that the object keeps.
        """
        from .plans import whole_read

        return [whole_read(reader, key, target, into=False, keeps=True, scratch=scratch)], 1

    def _read_checkpoint_value(
        self, reader: Any, name: str, key: str, planned: Sequence[ValueRead] = ()
    ) -> Any:
        """Read one attribute's value as ``planned`` (rule R-PL-1); sharded objects read
        only the blocks they need."""
        return reader.read(key, scratch=planned[0].scratch_limit) if planned else reader.read(key)

    def _restore_from_tensors(self, tensors: dict[str, Any]) -> None:
        """Take restored values, read after :meth:`_restore_problem` found none."""


def no_automatic_dependency_tracking(method: _F) -> _F:
    """Decorate a method so that attribute assignments in it track nothing (rule O-TR-6).

    As ``tf.__internal__.tracking.no_automatic_dependency_tracking``: lists and dicts
    assigned in the method stay plain, trackables are not dependencies.
    """

    @functools.wraps(method)
    def wrapper(self: Trackable, *args: Any, **kwargs: Any) -> Any:
        previous = self._self_setattr_tracking
        object.__setattr__(self, "_self_setattr_tracking", False)
        try:
            return method(self, *args, **kwargs)
        finally:
            object.__setattr__(self, "_self_setattr_tracking", previous)

    return wrapper  # type: ignore[return-value]


@contextlib.contextmanager
def no_automatic_dependency_tracking_scope(obj: Trackable) -> Iterator[None]:
    """The context-manager form of :func:`no_automatic_dependency_tracking`."""
    previous = obj._self_setattr_tracking
    object.__setattr__(obj, "_self_setattr_tracking", False)
    try:
        yield
    finally:
        object.__setattr__(obj, "_self_setattr_tracking", previous)


@contextlib.contextmanager
def no_manual_dependency_tracking_scope(obj: Trackable) -> Iterator[None]:
    """``_track_trackable`` on ``obj`` does nothing inside this scope (TensorFlow's helper)."""
    previous = getattr(obj, "_manual_tracking", True)
    object.__setattr__(obj, "_manual_tracking", False)
    try:
        yield
    finally:
        object.__setattr__(obj, "_manual_tracking", previous)

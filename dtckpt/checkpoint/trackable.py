"""``Trackable``: objects that own named dependencies and checkpointed values (rule O-TR-1).

Mirrors ``tensorflow/python/trackable/base.py``. A trackable has

* **dependencies**: named children, in the order they were first tracked
  (re-tracking a name keeps its position), visited breadth-first when saving;
* **attributes**: the tensors it saves for itself (a variable saves
  ``VARIABLE_VALUE``), produced by :meth:`_serialize_to_tensors`;
* **deferred restorations**: checkpoint positions waiting for a child that does
  not exist yet. When a child is later tracked under that name, it is restored
  on the spot ("restore on create").
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .restore import CheckpointPosition

__all__ = ["Trackable"]


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

    def _track_trackable(self, trackable: Trackable, name: str) -> Trackable:
        """Record ``trackable`` as the child ``name`` and restore it if a restore waits for it."""
        self._maybe_initialize_trackable()
        assert self._self_dependencies is not None
        self._self_dependencies[name] = trackable
        self._handle_deferred(name, trackable)
        return trackable

    def _handle_deferred(self, name: str, trackable: Trackable) -> None:
        deferred = self._self_deferred
        positions = deferred.pop(name, None) if deferred else None
        if positions:
            # Newest restore last, so that it wins (rule O-RS-5).
            for position in sorted(positions, key=lambda p: p.restore_uid):
                position.restore(trackable)

    def _untrack(self, name: str) -> None:
        dependencies = self._self_dependencies
        if dependencies:
            dependencies.pop(name, None)

    def _defer_restoration(self, name: str, position: CheckpointPosition) -> None:
        deferred = self._self_deferred
        if deferred is None:
            deferred = {}
            object.__setattr__(self, "_self_deferred", deferred)
        deferred.setdefault(name, []).append(position)

    # -- checkpointed values -------------------------------------------------
    def _serialize_to_tensors(self) -> dict[str, Any]:
        """Attribute name -> value to save. Plain trackables save nothing."""
        return {}

    def _restore_problem(
        self, name: str, key: str, dtype: str, shape: tuple[int, ...]
    ) -> str | None:
        """Why the value stored under ``key`` (``dtype``, ``shape``) cannot restore the
        attribute ``name``; ``None`` if it can.

        Asked for every value from the index, before anything is read or assigned
        (rule O-RS-6).
        """
        return None

    def _read_checkpoint_value(self, reader: Any, name: str, key: str) -> Any:
        """Read one attribute's value; sharded objects read only the blocks they need."""
        return reader.read(key)

    def _restore_from_tensors(self, tensors: dict[str, Any]) -> None:
        """Take restored values, read after :meth:`_restore_problem` found none."""

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

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .restore import CheckpointPosition

__all__ = ["Trackable"]


class Trackable:
    """Base class of everything a checkpoint can hold.

    Subclasses need not call ``__init__``: the bookkeeping is created on first use,
    as in TensorFlow, so that mixing in ``Trackable`` never breaks a constructor.
    """

    _self_dependencies: dict[str, Trackable]
    _self_deferred: dict[str, list[CheckpointPosition]]
    _self_update_uid: int

    def _maybe_initialize_trackable(self) -> None:
        if "_self_dependencies" not in self.__dict__:
            object.__setattr__(self, "_self_dependencies", {})
            object.__setattr__(self, "_self_deferred", {})
            object.__setattr__(self, "_self_update_uid", -1)

    # -- dependencies --------------------------------------------------------
    def _trackable_children(self) -> dict[str, Trackable]:
        """Named children, in tracking order (what a checkpoint of this object holds)."""
        self._maybe_initialize_trackable()
        return dict(self._self_dependencies)

    def _lookup_dependency(self, name: str) -> Trackable | None:
        """The child ``name``, or None; O(1), since restores look up every child once."""
        self._maybe_initialize_trackable()
        return self._self_dependencies.get(name)

    def _track_trackable(self, trackable: Trackable, name: str) -> Trackable:
        """Record ``trackable`` as the child ``name`` and restore it if a restore waits for it."""
        self._maybe_initialize_trackable()
        self._self_dependencies[name] = trackable
        self._handle_deferred(name, trackable)
        return trackable

    def _handle_deferred(self, name: str, trackable: Trackable) -> None:
        positions = (
            self._self_deferred.pop(name, None) if "_self_deferred" in self.__dict__ else None
        )
        if positions:
            # Newest restore last, so that it wins (rule O-RS-5).
            for position in sorted(positions, key=lambda p: p.restore_uid):
                position.restore(trackable)

    def _untrack(self, name: str) -> None:
        self._maybe_initialize_trackable()
        self._self_dependencies.pop(name, None)

    def _defer_restoration(self, name: str, position: CheckpointPosition) -> None:
        self._maybe_initialize_trackable()
        self._self_deferred.setdefault(name, []).append(position)

    # -- checkpointed values -------------------------------------------------
    def _serialize_to_tensors(self) -> dict[str, np.ndarray]:
        """Attribute name -> value to save. Plain trackables save nothing."""
        return {}

    def _read_checkpoint_value(self, reader: Any, name: str, key: str) -> Any:
        """Read one attribute's value; sharded objects read only the blocks they need."""
        return reader.read(key)

    def _check_restore(self, tensors: dict[str, np.ndarray], where: object) -> None:
        """Raise if ``tensors`` cannot be restored into this object (before anything changes)."""

    def _restore_from_tensors(self, tensors: dict[str, np.ndarray]) -> None:
        """Take restored values; only called after :meth:`_check_restore` passed."""

"""What ``Checkpoint.restore``/``read`` return: the load statuses (rules O-RS-8, O-RS-10..13).

Source: ``tensorflow/python/checkpoint/checkpoint.py`` (``CheckpointLoadStatus``,
``NameBasedSaverStatus``, ``InitializationOnlyStatus``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from .graph import reachable
from .restore import RestoreCoordinator
from .trackable import Trackable

__all__ = ["CheckpointLoadStatus", "NameBasedSaverStatus", "InitializationOnlyStatus"]


def _objects_with_attributes(objects: list[Trackable]) -> list[Trackable]:
    return [o for o in objects if o._attribute_names()]


class _Status:
    def expect_partial(self) -> _Status:
        return self

    def run_restore_ops(self, session: Any = None) -> None:
        """Eager only: restores already ran."""

    def initialize_or_restore(self, session: Any = None) -> None:
        """Eager only: restores already ran."""


class CheckpointLoadStatus(_Status):
    """What ``Checkpoint.restore``/``read`` return for an object-based checkpoint."""

    def __init__(
        self,
        coordinator: RestoreCoordinator,
        root: Trackable,
        attached: Callable[[], dict[str, Trackable]],
    ) -> None:
        self._coordinator = coordinator
        self._root = root
        self._attached = attached

    def _live_objects(self) -> list[Trackable]:
        return reachable(self._root, self._attached())

    def assert_consumed(self) -> CheckpointLoadStatus:
        """Every checkpointed value was matched to an object, and every object to a value.

        Rule O-RS-10.
        """
        self.assert_existing_objects_matched()
        coordinator = self._coordinator
        graph = coordinator.graph
        for node_id in range(len(graph)):
            if not graph.has_attributes(node_id) or coordinator.bound[node_id]:
                continue
            if coordinator.skip_slot_variables and node_id in coordinator.slot_nodes:
                continue
            keys = [a.checkpoint_key for a in coordinator.attributes(node_id)]
            raise AssertionError(
                f"Unresolved object in checkpoint {coordinator.where(node_id)}: attributes {keys}"
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
        uid = coordinator.restore_uid
        ids = set()
        newest = coordinator.is_newest()
        for node_id, obj in coordinator.bound_objects():
            if obj._self_update_uid < uid:
                raise AssertionError(
                    f"Object {coordinator.where(node_id)} not assigned a value from checkpoint."
                )
            if not newest:
                ids.add(id(obj))
        live = _objects_with_attributes(self._live_objects())
        if newest:
            unmatched = [o for o in live if o._self_update_uid != uid]
        else:
            unmatched = [o for o in live if id(o) not in ids]
        if unmatched:
            raise AssertionError(
                "Some Python objects were not bound to checkpointed values, likely due to "
                f"changes in the Python program: {unmatched}"
            )
        return self

    def assert_nontrivial_match(self) -> CheckpointLoadStatus:
        """More than the root object was matched (rule O-RS-12)."""
        bound = list(itertools.islice(self._coordinator.bound_objects(), 2))
        if len(bound) <= 1:
            ids = {id(obj) for _, obj in bound}
            live = _objects_with_attributes(self._live_objects())
            unmatched = [o for o in live if id(o) not in ids]
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

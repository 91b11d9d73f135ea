"""Tracked containers: lists, dicts and tuples assigned to trackable attributes (rule O-TR-2).

As in ``tensorflow/python/trackable/data_structures.py``, a ``list``, ``dict``
or ``tuple`` stored on a :class:`~dtckpt.Module` (or a
:class:`~dtckpt.Checkpoint`) is replaced by a wrapper that is itself a
trackable node: a list's and a tuple's children are named by their index
(``"0"``, ``"1"``), a dict's by its keys. Nested containers are wrapped
too. The wrappers behave like the built-in types.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from .trackable import Trackable

__all__ = ["ListWrapper", "DictWrapper", "TupleWrapper", "wrap", "TrackableDataStructure"]


class TrackableDataStructure(Trackable):
    """Marker base: containers whose nodes hold only their elements."""

    def _children_from(self, items: Iterable[tuple[str, Any]]) -> dict[str, Trackable]:
        return {name: value for name, value in items if isinstance(value, Trackable)}


def wrap(value: Any) -> Any:
    """The tracked version of a container; anything else unchanged (rule O-TR-2).

    As TensorFlow's ``wrap_or_unwrap``: exactly ``list`` and ``dict`` (not
    subclasses) are wrapped, and a tuple only when something inside it is
    trackable or a list or dict, so tuples of plain values stay tuples.
    """
    if isinstance(value, Trackable):
        return value
    if type(value) is list:
        return ListWrapper(value)
    if type(value) in (dict, OrderedDict):
        return DictWrapper(value)
    if type(value) is tuple and _should_wrap_tuple(value):
        return TupleWrapper(value)
    return value


def _wrap_in_place(container: Any) -> None:
    """Replace the elements of the caller's own list or dict by their wrapped versions.

    TensorFlow's wrappers do this, so a container wrapped twice (assigned to two
    attributes) shares its inner wrappers: the checkpoint then holds one node
    for each inner container, with two parents.
    """
    pairs = enumerate(container) if isinstance(container, list) else list(container.items())
    for key, value in pairs:
        wrapped = wrap(value)
        if wrapped is not value:
            container[key] = wrapped


def _element(items: list[Any] | tuple[Any, ...], name: str) -> Trackable | None:
    """The trackable element a sequence's child ``name`` (its index in decimal) names."""
    canonical = name.isascii() and name.isdigit() and (name == "0" or name[0] != "0")
    if not canonical or len(name) > 19:
        return None
    index = int(name)
    value = items[index] if index < len(items) else None
    return value if isinstance(value, Trackable) else None


def _should_wrap_tuple(items: tuple[Any, ...]) -> bool:
    return any(
        isinstance(v, Trackable)
        or type(v) in (list, dict, OrderedDict)
        or (type(v) is tuple and _should_wrap_tuple(v))
        for v in items
    )


class ListWrapper(TrackableDataStructure, list[Any]):
    """A ``list`` whose trackable elements are checkpoint dependencies named by index."""

    def __init__(self, items: Iterable[Any] = ()) -> None:
        if type(items) is list:
            _wrap_in_place(items)
        list.__init__(self, (wrap(v) for v in items))

    def _trackable_children(self) -> dict[str, Trackable]:
        return self._children_from((str(i), v) for i, v in enumerate(self))

    def _lookup_dependency(self, name: str) -> Trackable | None:
        return _element(self, name)

    def _child_trackables(self) -> Iterable[Trackable]:
        return [v for v in self if isinstance(v, Trackable)]

    def _track_new(self, index: int, value: Any) -> None:
        if isinstance(value, Trackable):
            self._handle_deferred(str(index), value)

    def append(self, value: Any) -> None:
        value = wrap(value)
        list.append(self, value)
        self._track_new(len(self) - 1, value)

    def extend(self, values: Iterable[Any]) -> None:
        for value in values:
            self.append(value)

    def __iadd__(self, values: Iterable[Any]) -> ListWrapper:  # type: ignore[misc]
        self.extend(values)
        return self

    def insert(self, index: Any, value: Any) -> None:
        list.insert(self, index, wrap(value))

    def __setitem__(self, index: Any, value: Any) -> None:
        if isinstance(index, slice):
            list.__setitem__(self, index, [wrap(v) for v in value])
            return
        value = wrap(value)
        list.__setitem__(self, index, value)
        self._track_new(index if index >= 0 else len(self) + index, value)

    def __repr__(self) -> str:
        return f"ListWrapper({list.__repr__(self)})"


class DictWrapper(TrackableDataStructure, dict[Any, Any]):
    """A ``dict`` whose trackable values are checkpoint dependencies named by their keys."""

    def __init__(self, items: Any = ()) -> None:
        dict.__init__(self)
        if type(items) in (dict, OrderedDict):
            _wrap_in_place(items)
        for key, value in dict(items).items():
            dict.__setitem__(self, key, wrap(value))

    def _trackable_children(self) -> dict[str, Trackable]:
        return self._children_from((str(k), v) for k, v in self.items())

    def _lookup_dependency(self, name: str) -> Trackable | None:
        value = self.get(name)
        if value is None and not all(type(k) is str for k in self):
            value = self._trackable_children().get(name)
        return value if isinstance(value, Trackable) else None

    def __setitem__(self, key: Any, value: Any) -> None:
        value = wrap(value)
        dict.__setitem__(self, key, value)
        if isinstance(value, Trackable):
            self._handle_deferred(str(key), value)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def __repr__(self) -> str:
        return f"DictWrapper({dict.__repr__(self)})"


class TupleWrapper(TrackableDataStructure, tuple[Any, ...]):
    """A ``tuple`` whose trackable elements are dependencies named by index."""

    def __new__(cls, items: Iterable[Any] = ()) -> TupleWrapper:
        return tuple.__new__(cls, (wrap(v) for v in items))

    def _trackable_children(self) -> dict[str, Trackable]:
        return self._children_from((str(i), v) for i, v in enumerate(self))

    def _lookup_dependency(self, name: str) -> Trackable | None:
        return _element(self, name)

    def _child_trackables(self) -> Iterable[Trackable]:
        return [v for v in self if isinstance(v, Trackable)]

    def __repr__(self) -> str:
        return f"TupleWrapper({tuple.__repr__(self)})"

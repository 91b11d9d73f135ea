"""``ListWrapper``: a tracked ``list`` that shares the caller's list (rules O-TR-7, O-TR-8).

::

    held = [v0]        m.layers = held         ListWrapper ──"0"──> v0
      │                      │                    (its own list contents: what it last saw)
      └──── the same list ───┘
    held.append(v1)    seen through m.layers, but "modified outside the wrapper":
                       a save or restore refuses, as in TensorFlow

Source: ``tensorflow/python/trackable/data_structures.py`` (``ListWrapper``).
"""

from __future__ import annotations

import copy as _copy
import sys
from collections.abc import Iterable, Iterator
from typing import Any, SupportsIndex

from ..errors import InvalidArgumentError
from .containers import (
    _SHELLS,
    NoDependency,
    TrackableDataStructure,
    _finish,
    _index_of,
    _same,
    _short,
    _wrap_shallow,
    wrap_or_unwrap,
)
from .trackable import Trackable

__all__ = ["ListWrapper"]

_NON_APPEND = (
    "Unable to save the object {obj} (a list wrapper constructed to track trackable "
    "TensorFlow objects). A list element was replaced (__setitem__, __setslice__), deleted "
    "(__delitem__, __delslice__), or moved (sort). In order to support restoration on "
    "object creation, tracking is exclusively for append-only data structures.\n\nIf you "
    "don't need this list checkpointed, wrap it in a non-trackable object; it will be "
    "subsequently ignored."
)
_LIST_EXTERNAL = (
    "Unable to save the object {obj} (a list wrapper constructed to track trackable "
    "TensorFlow objects). The wrapped list was modified outside the wrapper (its final "
    "value was {now}, its value when a checkpoint dependency was added was {then}), which "
    "breaks restoration on object creation.\n\nIf you don't need this list checkpointed, "
    "wrap it in a NoDependency object; it will be subsequently ignored."
)


class ListWrapper(TrackableDataStructure, list[Any]):
    """A ``list`` that tracks its trackable elements by index, sharing the caller's list.

    Every ``list`` method is overridden to work on the shared list (``_storage``);
    the wrapper's own ``list`` contents hold what it last saw (rule O-TR-8).
    While only appends happen, the children are the trackable elements of that
    copy by position. A mutation that could move a trackable switches to names
    recorded as TensorFlow records them, and marks the wrapper unsaveable (O-TR-7).
    """

    _self_names: dict[str, Trackable] | None = None  # recorded names, once positions may lie
    _self_non_append: bool = False
    _self_external: bool = False
    _self_trackables: int = 0  # trackables among the elements, as the wrapper's own edits left them
    _self_then: str | None = None  # what the wrapper had seen, when an outside change was found
    _self_storage: list[Any]

    def __init__(self, wrapped_list: Iterable[Any] | None = None) -> None:
        storage = wrapped_list if type(wrapped_list) is list else list(wrapped_list or ())
        object.__setattr__(self, "_self_storage", storage)
        pending: list[Any] = []
        self._adopt(pending)
        _finish(pending)

    @classmethod
    def _shell(cls, storage: list[Any]) -> ListWrapper:
        """A wrapper of ``storage`` whose elements ``_adopt`` will wrap."""
        shell: ListWrapper = cls.__new__(cls)
        object.__setattr__(shell, "_self_storage", storage)
        return shell

    def _adopt(self, pending: list[Any]) -> None:
        """Wrap and track the shared list's elements in place; nested lists and dicts
        go onto ``pending``."""
        storage = self._storage
        count = 0
        flags: dict[int, bool] = {}
        for index, value in enumerate(storage):
            tracked = self._track_value(value, index, pending=pending, flags=flags)
            if tracked is not value:
                storage[index] = tracked
            count += isinstance(tracked, Trackable)
            list.append(self, tracked)
        object.__setattr__(self, "_self_trackables", count)

    # -- bookkeeping ------------------------------------------------------------------
    @property
    def _storage(self) -> list[Any]:
        storage: list[Any] = self._self_storage
        return storage

    @property
    def _values(self) -> Iterable[Any]:
        return self._storage

    @property
    def _non_append_mutation(self) -> bool:
        return self._self_non_append

    @property
    def _external_modification(self) -> bool:
        return self._self_external

    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)

    def _record_names(self) -> dict[str, Trackable]:
        """Switch from positional children to recorded names (once, O(n))."""
        names = self._self_names
        if names is None:
            names = {
                str(i): v for i, v in enumerate(list.__iter__(self)) if isinstance(v, Trackable)
            }
            self._set("_self_names", names)
        return names

    def _mark_non_append(self) -> None:
        self._record_names()
        self._set("_self_non_append", True)

    def _has_mutation_or_trackable(self) -> bool:
        return self._self_non_append or self._self_trackables > 0

    def _check_external(self) -> None:
        """O(1): a length that differs from what the wrapper saw means an outside change."""
        if not self._self_external and list.__len__(self) != len(self._storage):
            self._flag_external()

    def _check_external_at(self, key: Any) -> None:
        """O(1) for an index, O(k) for a slice of k: the elements an operation is about to
        replace or remove must be what the wrapper saw; otherwise the operation would make
        the two agree again and hide the change made behind its back."""
        self._check_external()
        if self._self_external:
            return
        try:
            ours, seen = self._storage[key], list.__getitem__(self, key)
        except (IndexError, TypeError):
            return  # the operation itself raises
        if isinstance(key, slice):
            same = len(ours) == len(seen) and all(map(_same, ours, seen))
        else:
            same = _same(ours, seen)
        if not same:
            self._flag_external()

    def _check_external_fully(self) -> None:
        """O(n), once per save: any element that is not what the wrapper saw."""
        if self._self_external:
            return
        storage = self._storage
        if list.__len__(self) != len(storage) or not all(map(_same, storage, list.__iter__(self))):
            self._flag_external()

    def _flag_external(self) -> None:
        self._record_names()
        self._set("_self_then", _short(list(list.__iter__(self))))
        self._set("_self_external", True)
        storage = self._storage
        self._set("_self_trackables", sum(isinstance(v, Trackable) for v in storage))
        list.__setitem__(self, slice(None), storage)  # once: the flag never clears

    def _seen(self, op: Any, *args: Any) -> None:
        """Apply ``op`` to what the wrapper has seen. After an outside change the two may
        differ in length, and an index valid for one may not be for the other."""
        try:
            op(self, *args)
        except (IndexError, ValueError):
            if not self._self_external:
                raise

    def _name_child(self, name: str, value: Trackable) -> None:
        names = self._self_names
        if names is None:  # positional: a position past every tracked one
            self._handle_deferred(name, value)
            return
        current = names.get(name)
        names[name] = value
        if current is None:
            self._handle_deferred(name, value)

    def _track_value(
        self,
        value: Any,
        index: int,
        *,
        by_key: bool = False,
        pending: list[Any] | None = None,
        flags: dict[int, bool] | None = None,
    ) -> Any:
        """Wrap ``value`` for position ``index`` and track it there (NoDependency: store only)."""
        if isinstance(value, NoDependency):
            value = value.value
            if isinstance(value, Trackable):
                self._record_names()  # positions no longer spell the children
            return self._stored_untracked(value)
        if pending is None:
            value = wrap_or_unwrap(value)
        else:
            value = _wrap_shallow(value, pending, {} if flags is None else flags)
        if isinstance(value, Trackable):
            if by_key:
                self._record_names()  # TensorFlow names it by the key as given, in this order
            self._name_child(format(index, "d"), value)
        return value

    # -- the checkpoint view ------------------------------------------------------------
    def _trackable_children(self) -> dict[str, Trackable]:
        self._check_restorable()
        names = self._self_names
        if names is not None:
            children = dict(names)
        else:
            children = {
                str(i): v for i, v in enumerate(list.__iter__(self)) if isinstance(v, Trackable)
            }
        return self._with_manual(children)

    def _child_trackables(self) -> Iterable[Trackable]:
        names = self._self_names
        if names is not None:
            children: list[Trackable] = list(names.values())
        else:
            children = [v for v in list.__iter__(self) if isinstance(v, Trackable)]
        return children + list((self._self_dependencies or {}).values())

    def _check_restorable(self) -> None:
        """Raise what a save of this list raises (a restore asks it once per binding, a
        save once per save: O(n) each)."""
        self._check_external_fully()
        if self._self_non_append:
            raise InvalidArgumentError(_NON_APPEND.format(obj=_short(self)))
        if self._self_external:
            raise InvalidArgumentError(
                _LIST_EXTERNAL.format(
                    obj=_short(self), now=_short(self._storage), then=self._self_then
                )
            )

    def _child_named(self, name: str) -> Trackable | None:
        names = self._self_names
        if names is not None:
            child = names.get(name)
        else:
            index = _index_of(name)
            child = None
            if index is not None and index < list.__len__(self):
                value = list.__getitem__(self, index)
                child = value if isinstance(value, Trackable) else None
        return child if child is not None else self._manual_lookup(name)

    # -- appends ----------------------------------------------------------------------
    def append(self, value: Any) -> None:
        self._check_external()
        storage = self._storage
        value = self._track_value(value, len(storage))
        storage.append(value)
        list.append(self, value)
        if isinstance(value, Trackable):
            self._set("_self_trackables", self._self_trackables + 1)

    def extend(self, values: Iterable[Any]) -> None:
        for value in list(values):
            self.append(value)

    def __iadd__(self, values: Iterable[Any]) -> ListWrapper:  # type: ignore[misc]
        self.extend(values)
        return self

    def __imul__(self, times: int) -> ListWrapper:  # type: ignore[override,misc]
        if times > 0:
            storage = self._storage
            count = len(storage)
            for _ in range(times - 1):
                for i in range(count):
                    self.append(storage[i])
            return self
        self._check_external_fully()
        if self._has_mutation_or_trackable():
            self._mark_non_append()
        self._storage.clear()
        self._seen(list.clear)
        return self

    # -- mutations that may move elements ---------------------------------------------
    def __setitem__(self, key: Any, value: Any) -> None:
        self._check_external_at(key)
        storage = self._storage
        if isinstance(key, slice):
            self._set_slice(key, value)
            return
        old = storage[key]
        if isinstance(old, Trackable):
            self._mark_non_append()
        new = self._track_value(value, key, by_key=True)
        storage[key] = new
        self._seen(list.__setitem__, key, new)
        delta = isinstance(new, Trackable) - isinstance(old, Trackable)
        self._set("_self_trackables", self._self_trackables + delta)

    def _set_slice(self, key: slice, value: Iterable[Any]) -> None:
        storage = self._storage
        values = list(value)
        before = len(storage)
        start, stop, step = key.indices(before)
        if step == 1:
            positions: Iterable[int] = range(start, start + len(values))
        else:
            positions = range(start, stop, step)
            if len(positions) != len(values):
                raise ValueError(
                    f"attempt to assign sequence of size {len(values)} to extended slice "
                    f"of size {len(positions)}"
                )
        had = self._has_mutation_or_trackable()
        if had:
            self._mark_non_append()
        tracked = [self._track_value(v, i) for v, i in zip(values, positions, strict=True)]
        storage[key] = tracked
        self._seen(list.__setitem__, key, tracked)
        if had:
            # TensorFlow re-tracks every position whose element changed.
            end = max(before, len(storage))
            for i in range(start + len(values), end):
                if i < len(storage) and isinstance(storage[i], Trackable):
                    self._name_child(format(i, "d"), storage[i])
        else:
            self._set("_self_trackables", sum(isinstance(v, Trackable) for v in tracked))

    def __delitem__(self, key: Any) -> None:
        self._check_external_at(key)
        if self._has_mutation_or_trackable():
            self._mark_non_append()
        del self._storage[key]
        self._seen(list.__delitem__, key)

    def insert(self, index: Any, value: Any) -> None:
        """Stored as given, not wrapped (TensorFlow); a trackable makes the list unsaveable."""
        self._check_external()
        if self._has_mutation_or_trackable() or isinstance(value, Trackable):
            self._mark_non_append()
        self._storage.insert(index, value)
        list.insert(self, index, value)

    def sort(self, *, key: Any = None, reverse: bool = False) -> None:
        self._check_external_fully()
        if self._has_mutation_or_trackable():
            self._mark_non_append()
        storage = self._storage
        storage.sort(key=key, reverse=reverse)
        list.__setitem__(self, slice(None), storage)

    def reverse(self) -> None:
        """Unsaveable when a trackable moves (all but the middle element of an odd length)."""
        self._check_external_fully()
        storage = self._storage
        if not self._self_non_append:
            size = len(storage)
            middle = size // 2 if size % 2 else -1
            if any(isinstance(v, Trackable) for i, v in enumerate(storage) if i != middle):
                self._mark_non_append()
        storage.reverse()
        list.__setitem__(self, slice(None), storage)

    def pop(self, index: SupportsIndex = -1) -> Any:
        value = self._storage[index]
        del self[index]
        return value

    def remove(self, value: Any) -> None:
        del self[self._storage.index(value)]

    def clear(self) -> None:
        if self._storage:
            del self[:]

    # -- reading: the shared list -------------------------------------------------------
    def __getitem__(self, key: Any) -> Any:
        return self._storage[key]

    def __len__(self) -> int:
        return len(self._storage)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._storage)

    def __reversed__(self) -> Iterator[Any]:
        return iter(reversed(self._storage))

    def __contains__(self, value: object) -> bool:
        return value in self._storage

    def index(self, value: Any, *args: Any) -> int:
        return self._storage.index(value, *args)

    def count(self, value: Any) -> int:
        return self._storage.count(value)

    def __eq__(self, other: object) -> bool:
        return self._storage == getattr(other, "_storage", other)

    def __ne__(self, other: object) -> bool:
        return self._storage != getattr(other, "_storage", other)

    def __lt__(self, other: Any) -> bool:
        return self._storage < getattr(other, "_storage", other)  # type: ignore[no-any-return]

    def __le__(self, other: Any) -> bool:
        return self._storage <= getattr(other, "_storage", other)  # type: ignore[no-any-return]

    def __gt__(self, other: Any) -> bool:
        return self._storage > getattr(other, "_storage", other)  # type: ignore[no-any-return]

    def __ge__(self, other: Any) -> bool:
        return self._storage >= getattr(other, "_storage", other)  # type: ignore[no-any-return]

    def __hash__(self) -> int:  # type: ignore[override]
        raise TypeError("unhashable type: 'ListWrapper'")

    def __add__(self, other: Any) -> list[Any]:
        return self._storage + getattr(other, "_storage", other)  # type: ignore[no-any-return]

    def __radd__(self, other: Any) -> list[Any]:
        return other + self._storage  # type: ignore[no-any-return]

    def __mul__(self, times: Any) -> list[Any]:
        return self._storage * times  # type: ignore[no-any-return]

    def __rmul__(self, times: Any) -> list[Any]:
        return self._storage * times  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"ListWrapper({self._storage!r})"

    def __sizeof__(self) -> int:
        return list.__sizeof__(self) + sys.getsizeof(self._storage)

    # -- copies and pickling ----------------------------------------------------------
    def _with_flags_of(self, other: ListWrapper) -> ListWrapper:
        if other._self_non_append:
            self._mark_non_append()
        if other._self_external:
            self._flag_external()
            self._set("_self_then", other._self_then)
        return self

    def copy(self) -> ListWrapper:
        return type(self)(_copy.copy(self._storage))._with_flags_of(self)

    def __copy__(self) -> ListWrapper:
        return self.copy()

    def __deepcopy__(self, memo: dict[int, Any]) -> ListWrapper:
        return type(self)(_copy.deepcopy(self._storage, memo))._with_flags_of(self)

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, ...]:
        return (type(self), (self._storage,))


_SHELLS[list] = ListWrapper._shell

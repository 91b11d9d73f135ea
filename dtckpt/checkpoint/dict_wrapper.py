"""``DictWrapper``: a tracked ``dict`` (or ``OrderedDict``) sharing the caller's (rule O-TR-8).

Children are the trackable values under string keys, in the order their keys
first got one; as in TensorFlow, a child stays until another trackable takes its
key (deleting the key or storing a plain value under it keeps saving the old
one). A non-string key holding a trackable, or a change made to the shared dict
behind the wrapper's back (``pop``, ``popitem``, ``clear``, ``setdefault`` and
``|=`` count as such, as in TensorFlow), makes a save or a restore refuse.
Source: ``tensorflow/python/trackable/data_structures.py`` (``_DictWrapper``).
"""

from __future__ import annotations

import copy as _copy
import sys
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar, cast

from ..errors import InvalidArgumentError
from .containers import (
    _MISSING,
    _SHELLS,
    NoDependency,
    TrackableDataStructure,
    _finish,
    _same,
    _short,
    _wrap_shallow,
    wrap_or_unwrap,
)
from .trackable import Trackable

__all__ = ["DictWrapper", "OrderedDictWrapper"]

_NON_STRING_KEY = (
    "Unable to save the object {obj} (a dictionary wrapper constructed automatically on "
    "attribute assignment). The wrapped dictionary contains a non-string key which maps to "
    "a trackable object or mutable data structure.\n\nIf you don't need this dictionary "
    "checkpointed, wrap it in a non-trackable object; it will be subsequently ignored."
)
_DICT_EXTERNAL = (
    "Unable to save the object {obj} (a dictionary wrapper constructed automatically on "
    "attribute assignment). The wrapped dictionary was modified outside the wrapper (its "
    "final value was {now}, its value when a checkpoint dependency was added was {then}), "
    "which breaks restoration on object creation.\n\nIf you don't need this dictionary "
    "checkpointed, wrap it in a non-trackable object; it will be subsequently ignored."
)


class _DictWrapperBase(TrackableDataStructure):
    """The methods of :class:`DictWrapper` and :class:`OrderedDictWrapper`.

    Reads and writes go to the shared dict (``_storage``); the built-in contents of
    the wrapper hold what it last saw, kept with the base type's own functions
    (``_seen_set``...), never with the overridden methods.
    """

    _dict_base: ClassVar[Any] = dict
    _empty: ClassVar[Any] = dict
    _self_non_string_key: bool = False
    _self_external: bool = False
    _self_untracked: frozenset[str] = frozenset()  # string keys whose value was a NoDependency
    _self_then: str | None = None
    _self_storage: dict[Any, Any]
    _self_names: dict[str, Trackable] | None = None  # recorded children, once they differ

    def __init__(self, wrapped_dict: Any = None) -> None:
        if wrapped_dict is None:
            storage = self._empty()
        elif type(wrapped_dict) in (dict, OrderedDict):
            storage = wrapped_dict
        else:  # another mapping, or a sequence of pairs (TensorFlow allows both)
            storage = dict(wrapped_dict)
        object.__setattr__(self, "_self_storage", storage)
        pending: list[Any] = []
        self._adopt(pending)
        _finish(pending)

    @classmethod
    def _shell(cls, storage: dict[Any, Any]) -> Any:
        """A wrapper of ``storage`` whose values ``_adopt`` will wrap."""
        shell = cls.__new__(cls)
        object.__setattr__(shell, "_self_storage", storage)
        return shell

    def _adopt(self, pending: list[Any]) -> None:
        """Wrap and track the shared dict's values in place; nested lists and dicts go
        onto ``pending``."""
        storage = self._storage
        seen_set = self._dict_base.__setitem__
        flags: dict[int, bool] = {}
        for key, value in list(storage.items()):
            tracked = self._track_value(value, key, pending=pending, flags=flags)
            if tracked is not value:
                storage[key] = tracked
            seen_set(self, key, tracked)

    @property
    def _storage(self) -> dict[Any, Any]:
        storage: dict[Any, Any] = self._self_storage
        return storage

    @property
    def _values(self) -> Iterable[Any]:
        try:
            keys = sorted(self._storage)
        except TypeError:  # keys of mixed types: TensorFlow would raise, the order is moot
            keys = list(self._storage)
        return [self._storage[key] for key in keys]

    @property
    def _dirty(self) -> bool:
        return self._self_external or self._self_non_string_key

    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)

    def _seen_get(self, key: Any) -> Any:
        return dict.get(cast(dict[Any, Any], self), key, _MISSING)

    def _track_value(
        self,
        value: Any,
        key: Any,
        *,
        pending: list[Any] | None = None,
        flags: dict[int, bool] | None = None,
    ) -> Any:
        def wrapped(value: Any) -> Any:
            if pending is None:
                return wrap_or_unwrap(value)
            return _wrap_shallow(value, pending, {} if flags is None else flags)

        if not isinstance(key, str):
            if isinstance(value, NoDependency):
                return self._stored_untracked(value.value)
            value = wrapped(value)
            if isinstance(value, Trackable):
                self._set("_self_non_string_key", True)
            return value
        # TensorFlow names a child when a trackable is stored under its key and keeps the
        # name, with its last trackable, until another trackable takes it: a key deleted
        # or given a plain value still saves the old child, and a key that gets its first
        # trackable goes after the others. While no operation has made that differ from
        # the dict's own order and contents, the children are read off what the wrapper
        # saw; the first one that does records the names (O(n), once).
        untracked = self._self_untracked
        previous = self._seen_get(key)
        is_child = isinstance(previous, Trackable) and key not in untracked
        names = self._self_names
        if isinstance(value, NoDependency):
            value = value.value
            if names is None and is_child:
                self._record_names()
            elif names is None and isinstance(value, Trackable):
                self._set("_self_untracked", untracked | {key})
            return self._stored_untracked(value)
        value = wrapped(value)
        if not isinstance(value, Trackable):
            if names is None and is_child:
                self._record_names()
            elif key in untracked:
                self._set("_self_untracked", untracked - {key})
            return value
        if names is None:
            if previous is _MISSING or is_child:  # a new key at the end, or one replaced in place
                if previous is _MISSING:
                    self._handle_deferred(key, value)
                return value
            names = self._record_names()
        current = names.get(key)
        names[key] = value
        if current is None:
            self._handle_deferred(key, value)
        return value

    def _record_names(self) -> dict[str, Trackable]:
        names = self._self_names
        if names is None:
            names = self._children_seen()
            self._set("_self_names", names)
        return names

    def _check_external(self) -> None:
        if not self._self_external and dict.__len__(self) != len(self._storage):  # type: ignore[arg-type]
            self._flag_external()

    def _check_external_at(self, key: Any) -> None:
        """O(1): the value an operation is about to replace or remove must be what the
        wrapper saw, or the operation would hide a change made behind its back."""
        self._check_external()
        if not self._self_external and not _same(
            self._storage.get(key, _MISSING), self._seen_get(key)
        ):
            self._flag_external()

    def _check_external_fully(self) -> None:
        if self._self_external:
            return
        storage = self._storage
        if dict.__len__(self) != len(storage) or not all(  # type: ignore[arg-type]
            _same(value, self._seen_get(key)) for key, value in storage.items()
        ):
            self._flag_external()

    def _flag_external(self) -> None:
        # What the wrapper saw stays as it was: restores keep finding the children it
        # tracked (as TensorFlow's recorded names do), whatever changed behind its back.
        self._set("_self_then", _short(dict(dict.items(self))))  # type: ignore[arg-type]
        self._set("_self_external", True)

    # -- the checkpoint view ------------------------------------------------------------
    def _check_restorable(self) -> None:
        """Raise what a save of this dict raises (O(n), once per save or binding)."""
        self._check_external_fully()
        if self._self_non_string_key:
            raise InvalidArgumentError(_NON_STRING_KEY.format(obj=_short(self)))
        if self._self_external:
            raise InvalidArgumentError(
                _DICT_EXTERNAL.format(
                    obj=_short(self), now=_short(self._storage), then=self._self_then
                )
            )

    def _trackable_children(self) -> dict[str, Trackable]:
        self._check_restorable()
        return self._children()

    def _child_trackables(self) -> Iterable[Trackable]:
        return list(self._children().values())

    def _children(self) -> dict[str, Trackable]:
        names = self._self_names
        return self._with_manual(dict(names) if names is not None else self._children_seen())

    def _children_seen(self) -> dict[str, Trackable]:
        """The string keys holding trackables, as the wrapper last saw them."""
        untracked = self._self_untracked
        seen: dict[Any, Any] = cast(dict[Any, Any], self)
        children = {
            key: value
            for key, value in dict.items(seen)
            if isinstance(key, str) and isinstance(value, Trackable) and key not in untracked
        }
        return children

    def _child_named(self, name: str) -> Trackable | None:
        names = self._self_names
        if names is not None:
            child = names.get(name)
            return child if child is not None else self._manual_lookup(name)
        if name not in self._self_untracked:
            value = self._seen_get(name)
            if isinstance(value, Trackable):
                return value
        return self._manual_lookup(name)

    # -- writes through the wrapper -----------------------------------------------------
    def __setitem__(self, key: Any, value: Any) -> None:
        self._check_external_at(key)
        value = self._track_value(value, key)
        self._storage[key] = value
        self._dict_base.__setitem__(self, key, value)

    def __delitem__(self, key: Any) -> None:
        self._check_external_at(key)
        seen = self._seen_get(key)
        if self._self_names is None and isinstance(seen, Trackable) and key in self._storage:
            if key not in self._self_untracked:
                self._record_names()  # TensorFlow keeps saving a deleted child
        del self._storage[key]
        if self._seen_get(key) is not _MISSING:
            self._dict_base.__delitem__(self, key)
        if key in self._self_untracked:
            self._set("_self_untracked", self._self_untracked - {key})

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    # TensorFlow's wrapper lets these reach the dict directly; a save then finds the
    # dict changed behind its back and refuses (rule O-TR-8).
    def setdefault(self, key: Any, default: Any = None) -> Any:
        return self._storage.setdefault(key, default)

    def pop(self, key: Any, *default: Any) -> Any:
        return self._storage.pop(key, *default)

    def popitem(self) -> tuple[Any, Any]:
        return self._storage.popitem()

    def clear(self) -> None:
        self._storage.clear()

    def __ior__(self, other: Any) -> Any:
        self._storage.update(getattr(other, "_storage", other))
        return self

    # -- reading: the shared dict -------------------------------------------------------
    def __getitem__(self, key: Any) -> Any:
        return self._storage[key]

    def get(self, key: Any, default: Any = None) -> Any:
        return self._storage.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._storage

    def __iter__(self) -> Iterator[Any]:
        return iter(self._storage)

    def __reversed__(self) -> Iterator[Any]:
        return iter(reversed(self._storage))

    def __len__(self) -> int:
        return len(self._storage)

    def keys(self) -> Any:
        return self._storage.keys()

    def values(self) -> Any:
        return self._storage.values()

    def items(self) -> Any:
        return self._storage.items()

    def __or__(self, other: Any) -> Any:
        return self._storage | getattr(other, "_storage", other)

    def __ror__(self, other: Any) -> Any:
        return getattr(other, "_storage", other) | self._storage

    def __eq__(self, other: object) -> bool:
        return bool(self._storage == getattr(other, "_storage", other))

    def __ne__(self, other: object) -> bool:
        return bool(self._storage != getattr(other, "_storage", other))

    def __hash__(self) -> int:
        raise TypeError("unhashable type: 'DictWrapper'")

    def __repr__(self) -> str:
        return f"DictWrapper({self._storage!r})"

    def __sizeof__(self) -> int:
        return int(self._dict_base.__sizeof__(self)) + sys.getsizeof(self._storage)

    @classmethod
    def fromkeys(cls, iterable: Iterable[Any], value: Any = None) -> Any:
        return cls(dict.fromkeys(iterable, value))

    # -- copies and pickling ----------------------------------------------------------
    def _with_flags_of(self, other: _DictWrapperBase) -> Any:
        self._set("_self_untracked", other._self_untracked)
        if other._self_non_string_key:
            self._set("_self_non_string_key", True)
        if other._self_external:
            self._flag_external()
            self._set("_self_then", other._self_then)
        return self

    def copy(self) -> Any:
        return _copy.copy(self)

    def __copy__(self) -> Any:
        return type(self)(_copy.copy(self._storage))._with_flags_of(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        return type(self)(_copy.deepcopy(self._storage, memo))._with_flags_of(self)

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, ...]:
        return (type(self), (self._storage,))


class DictWrapper(_DictWrapperBase, dict[Any, Any]):  # type: ignore[misc]
    """A ``dict`` that tracks its trackable values by their (string) keys, sharing the
    caller's dict (TensorFlow's ``_DictWrapper``)."""

    _dict_base = dict
    _empty = dict


class OrderedDictWrapper(_DictWrapperBase, OrderedDict[Any, Any]):  # type: ignore[misc]
    """:class:`DictWrapper` for an ``OrderedDict`` (an ``OrderedDict`` itself)."""

    _dict_base = OrderedDict
    _empty = OrderedDict

    def move_to_end(self, key: Any, last: bool = True) -> None:
        self._storage.move_to_end(key, last)  # type: ignore[attr-defined]

    def popitem(self, last: bool = True) -> tuple[Any, Any]:
        return self._storage.popitem(last)  # type: ignore[call-arg]


_SHELLS[dict] = DictWrapper._shell
_SHELLS[OrderedDict] = OrderedDictWrapper._shell

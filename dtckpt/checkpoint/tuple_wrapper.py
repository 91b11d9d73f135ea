"""``TupleWrapper``: tracked tuples, namedtuples and tuple subclasses (rule O-TR-9).

``TupleWrapper(t)`` is an instance of a class derived from both ``TupleWrapper``
and ``type(t)``, made once per type, so a wrapped namedtuple still is one; its
children are its trackable elements by field name, then by index. Nested tuples
are rebuilt innermost first, with an explicit stack.
Source: ``tensorflow/python/trackable/data_structures.py`` (``_TupleWrapper``).
"""

from __future__ import annotations

import copy as _copy
import functools
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar, cast

from ..errors import InvalidArgumentError
from .containers import (
    _MISSING,
    _TUPLES,
    NoDependency,
    TrackableDataStructure,
    _finish,
    _index_of,
    _short,
    _should_wrap_tuple,
    _wrap_shallow,
)
from .trackable import Trackable

__all__ = ["TupleWrapper"]

_NOT_CONSTRUCTABLE = (
    "Unable to save because the namedtuple {value} is not constructable from its _fields "
    "(i.e. __new__ is overridden). Expected keyword arguments {fields}. If you do not need "
    "to save this object, consider wrapping it in a custom object that does not inherit "
    "from tuple."
)


class TupleWrapper(TrackableDataStructure):
    """A tuple whose trackable elements are dependencies (TensorFlow's ``_TupleWrapper``).

    ``TupleWrapper(value)`` wraps any tuple: a plain tuple becomes a
    :class:`_TupleWrapper` (a ``tuple``); a namedtuple or other tuple subclass
    becomes an instance of a class derived from both ``TupleWrapper`` and its own
    type, so ``isinstance``, fields, properties and methods work, and its own
    attributes win over the wrapper's (a field named ``weights`` stays the field).
    (``TupleWrapper`` itself is not a tuple, so it combines with a tuple subclass that
    has an instance ``__dict__`` of its own.) Namedtuples are rebuilt from their fields
    (``type(value)(**fields)``), other subclasses from their elements, as TensorFlow
    does; a namedtuple whose ``__new__`` takes other arguments is kept as given, and
    saving it fails.
    """

    _self_untracked: frozenset[int] = frozenset()
    _self_constructable: bool = True
    _fields_index: ClassVar[dict[str, int]] = {}
    _field_names: ClassVar[tuple[str, ...]] = ()

    def __new__(cls, original: Iterable[Any] = ()) -> TupleWrapper:
        if isinstance(original, TupleWrapper):
            original = original._wrapped
        value: tuple[Any, ...] = original if isinstance(original, tuple) else tuple(original)
        pending: list[Any] = []
        wrapper = _wrap_tuple(value, pending, {})
        _finish(pending)
        return wrapper

    @staticmethod
    def _build(
        original: tuple[Any, ...], elements: list[Any], dependencies: list[bool]
    ) -> TupleWrapper:
        """The wrapper of ``original``, given its elements already wrapped."""
        kind = type(original)
        fields = getattr(original, "_fields", None) if kind is not tuple else None
        constructable = True
        rebuilt: tuple[Any, ...]
        if fields is not None:
            try:
                rebuilt = kind(**dict(zip(fields, elements, strict=False)))
            except TypeError:
                rebuilt, constructable = original, False
        elif kind is tuple:
            rebuilt = tuple(elements)
        else:
            rebuilt = kind(elements)
        klass = _TupleWrapper if type(rebuilt) is tuple else _wrapper_class(type(rebuilt))
        self: TupleWrapper = tuple.__new__(klass, rebuilt)
        object.__setattr__(self, "_self_wrapped", rebuilt)
        if not all(dependencies):
            untracked = frozenset(i for i, dep in enumerate(dependencies) if not dep)
            object.__setattr__(self, "_self_untracked", untracked)
            for index in untracked:
                self._stored_untracked(rebuilt[index])
        if not constructable:
            object.__setattr__(self, "_self_constructable", False)
        return self

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass  # built in __new__; the wrapped type's __init__ must not see these arguments

    @property
    def _wrapped(self) -> Any:
        """The tuple wrapped (rebuilt from the wrapped elements), TensorFlow's ``__wrapped__``."""
        return object.__getattribute__(self, "__dict__")["_self_wrapped"]

    def __getattr__(self, name: str) -> Any:
        # Attributes the wrapped tuple has and the wrapper's class lacks (instance
        # attributes of a tuple subclass, a type that could not be subclassed).
        if name.startswith("_self_") or name == "_wrapped":
            raise AttributeError(name)
        try:
            wrapped = self._wrapped
        except (AttributeError, KeyError):
            raise AttributeError(name) from None
        if name == "__wrapped__":
            return wrapped
        return getattr(wrapped, name)

    @property
    def _values(self) -> Iterable[Any]:
        return tuple(self)

    def _check_restorable(self) -> None:
        if not self._self_constructable:
            wrapped = self._wrapped
            raise InvalidArgumentError(
                _NOT_CONSTRUCTABLE.format(value=_short(wrapped), fields=wrapped._fields)
            )

    def _trackable_children(self) -> dict[str, Trackable]:
        self._check_restorable()
        untracked = self._self_untracked
        children: dict[str, Trackable] = {}
        for name, value in zip(self._field_names, self, strict=False):
            if isinstance(value, Trackable) and self._fields_index[name] not in untracked:
                children[name] = value
        for index, value in enumerate(self):
            if isinstance(value, Trackable) and index not in untracked:
                children[str(index)] = value
        return self._with_manual(children)

    def _child_trackables(self) -> Iterable[Trackable]:
        if not self._self_constructable:
            return list((self._self_dependencies or {}).values())
        untracked = self._self_untracked
        children: list[Trackable] = [
            v for i, v in enumerate(self) if isinstance(v, Trackable) and i not in untracked
        ]
        return children + list((self._self_dependencies or {}).values())

    def _child_named(self, name: str) -> Trackable | None:
        index = self._fields_index.get(name)
        if index is None:
            index = _index_of(name)
        if self._self_constructable and index is not None and index < len(self):
            value = tuple.__getitem__(cast(tuple[Any, ...], self), index)
            if isinstance(value, Trackable) and index not in self._self_untracked:
                return value
        return self._manual_lookup(name)

    def __eq__(self, other: object) -> bool:
        return self._wrapped == other  # type: ignore[no-any-return]

    def __ne__(self, other: object) -> bool:
        return self._wrapped != other  # type: ignore[no-any-return]

    def __hash__(self) -> int:
        return hash(self._wrapped)

    def __repr__(self) -> str:
        return f"_TupleWrapper({self._wrapped!r})"

    def __copy__(self) -> TupleWrapper:
        return TupleWrapper(_copy.copy(self._wrapped))

    def __deepcopy__(self, memo: dict[int, Any]) -> TupleWrapper:
        return TupleWrapper(_copy.deepcopy(self._wrapped, memo))

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, ...]:
        return (TupleWrapper, (self._wrapped,))


class _TupleWrapper(TupleWrapper, tuple[Any, ...]):
    """A wrapped plain ``tuple`` (the name TensorFlow gives its tuple wrapper)."""


def _wrap_tuple(top: tuple[Any, ...], pending: list[Any], flags: dict[int, bool]) -> TupleWrapper:
    """Wrap ``top`` and the tuples inside it that hold something to track, innermost
    first (a tuple is rebuilt from wrapped elements), with an explicit stack; a tuple
    object met twice is wrapped once. Lists and dicts inside go onto ``pending``."""
    done: dict[int, Any] = {}
    Frame = tuple[tuple[Any, ...], Iterator[Any], list[Any], list[bool]]
    stack: list[Frame] = [(top, iter(top), [], [])]
    while True:
        current, items, elements, dependencies = stack[-1]
        value = next(items, _MISSING)
        if value is _MISSING:
            stack.pop()
            result = TupleWrapper._build(current, elements, dependencies)
            done[id(current)] = result
            if not stack:
                return result
            stack[-1][2].append(result)
            stack[-1][3].append(True)
        elif isinstance(value, NoDependency):
            elements.append(value.value)
            dependencies.append(False)
        elif isinstance(value, tuple) and not isinstance(value, Trackable):
            if id(value) in done:
                elements.append(done[id(value)])
                dependencies.append(True)
            elif _should_wrap_tuple(value, flags):
                stack.append((value, iter(value), [], []))
            else:
                elements.append(value)
                dependencies.append(True)
        else:
            elements.append(_wrap_shallow(value, pending, flags))
            dependencies.append(True)


#: The wrapper's own public names, which a wrapped type's attributes of the same name beat.
_WRAPPER_NAMES = frozenset(
    name for name in dir(TupleWrapper) if not name.startswith("_") and name not in dir(tuple)
)


@functools.lru_cache(maxsize=256)
def _wrapper_class(kind: type) -> type:
    """``class _(TupleWrapper, kind)`` for a tuple subclass, made once per type."""
    namespace: dict[str, Any] = {
        "__module__": kind.__module__,
        "__qualname__": kind.__qualname__,
        # Calling the class (``type(self)(...)`` in the type's own methods) makes a
        # plain value of the wrapped type, as calling a method of the wrapped value would.
        "__new__": lambda cls, *args, **kwargs: kind(*args, **kwargs),
    }
    for name in _WRAPPER_NAMES:
        for klass in kind.__mro__:
            if klass in (tuple, object):
                break
            if name in vars(klass):
                namespace[name] = vars(klass)[name]
                break
    fields = getattr(kind, "_fields", None)
    if isinstance(fields, tuple):
        namespace["_field_names"] = fields
        namespace["_fields_index"] = {name: i for i, name in enumerate(fields)}
        make = getattr(kind, "_make", None)
        if make is not None:
            namespace["_make"] = classmethod(lambda cls, iterable: make(iterable))
    try:
        return type(kind.__name__, (TupleWrapper, kind), namespace)
    except TypeError:  # a type that cannot be subclassed: a plain tuple wrapper
        return _TupleWrapper


_TUPLES.append(_wrap_tuple)

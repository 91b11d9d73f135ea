"""What the tracked containers share: ``NoDependency``, wrapping, the base class (O-TR-2, O-TR-6).

The wrappers themselves live in ``list_wrapper``, ``dict_wrapper`` and
``tuple_wrapper`` and register here which built-in types they wrap;
``data_structures`` gathers everything under TensorFlow's module name. Wrapping
is iterative: a new list or dict wrapper is a *shell* whose elements are wrapped
when it is taken off a work list, and nested tuples are rebuilt innermost first
with an explicit stack, so no nesting depth makes Python recurse.
"""

from __future__ import annotations

import copy as _copy
import importlib
import reprlib
import sys
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from collections.abc import Mapping as _AbcMapping
from collections.abc import Sequence as _AbcSequence
from typing import Any

from ..errors import InvalidArgumentError
from .trackable import Trackable

__all__ = [
    "NoDependency",
    "wrap_or_unwrap",
    "sticky_attribute_assignment",
    "TrackableDataStructure",
    "List",
    "Mapping",
]

_MISSING = object()
_SHORT = reprlib.Repr()
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxdict = _SHORT.maxset = 20
_SHORT.maxstring = _SHORT.maxother = 200
_SHORT.maxlevel = 4


def _short(value: Any) -> str:
    """A repr for messages: TensorFlow prints the whole container; long ones are cut."""
    return _SHORT.repr(value)


class NoDependency:
    """Assign a value to a trackable attribute (or put it in a tracked container)
    without making it a checkpoint dependency (``tf`` ``NoDependency``).

    The value is stored unwrapped: ``obj.x = NoDependency([])`` stores a plain list.
    """

    __slots__ = ["value"]

    def __init__(self, value: Any) -> None:
        self.value = value


def _should_wrap_tuple(items: tuple[Any, ...], cache: dict[int, bool] | None = None) -> bool:
    """Whether a tuple holds something to track: a trackable, a list or dict (exactly),
    a ``NoDependency``, or such a tuple.

    Post-order over the nested tuples with an explicit stack; each tuple's answer is
    kept in ``cache`` (by ``id``), so shared sub-tuples are looked at once.
    """
    cache = {} if cache is None else cache
    stack = [(items, iter(items))]
    found = False
    while stack:
        current, elements = stack[-1]
        value = next(elements, _MISSING)
        if value is _MISSING or found:
            stack.pop()
            cache[id(current)] = found
            continue
        if isinstance(value, (Trackable, NoDependency)) or type(value) in _WRAPPED_TYPES:
            found = True
        elif isinstance(value, tuple):
            known = cache.get(id(value))
            if known is None:
                stack.append((value, iter(value)))
            elif known:
                found = True
    # ``found`` is the answer for ``items``; the tuples on the way up share it, and the
    # ones finished before it was found had nothing.
    return cache[id(items)]


_WRAPPED_TYPES = (list, dict, OrderedDict)


def wrap_or_unwrap(value: Any) -> Any:
    """The tracked version of a container; ``NoDependency`` unwrapped; anything else
    unchanged (rule O-TR-2).

    As TensorFlow's ``wrap_or_unwrap``: exactly ``list``, ``dict`` and
    ``OrderedDict`` are wrapped (subclasses such as ``Counter`` are not), and a
    tuple, of any tuple type, only when it holds something to track. Nested
    containers are wrapped with a work list, not by recursion, however deep they are.
    """
    if isinstance(value, NoDependency):
        return value.value
    pending: list[Any] = []
    wrapped = _wrap_shallow(value, pending, {})
    _finish(pending)
    return wrapped


#: Exact type -> the function making a wrapper shell of it (filled by the wrapper modules).
_SHELLS: dict[type, Callable[[Any], Any]] = {}
#: ``_wrap_tuple(value, pending, flags)``, set by ``tuple_wrapper``.
_TUPLES: list[Callable[[tuple[Any, ...], list[Any], dict[int, bool]], Any]] = []


def _wrap_shallow(value: Any, pending: list[Any], flags: dict[int, bool]) -> Any:
    """Wrap ``value`` itself; the elements of a list or dict it makes are wrapped later,
    when ``_finish`` takes the new wrapper off ``pending``."""
    if isinstance(value, Trackable):
        return value
    if not _TUPLES:  # a wrapper module imported on its own: load them all
        importlib.import_module(".data_structures", __package__)
    make = _SHELLS.get(type(value))
    if make is not None:
        shell = make(value)
        pending.append(shell)
        return shell
    if isinstance(value, tuple) and _should_wrap_tuple(value, flags):
        return _TUPLES[0](value, pending, flags)
    return value


def _finish(pending: list[Any]) -> None:
    while pending:
        pending.pop()._adopt(pending)


def sticky_attribute_assignment(trackable: Trackable, name: str, value: Any) -> Any:
    """Wrap ``value`` and track it as ``name`` on ``trackable``, unless it is a
    ``NoDependency``; return what to store (rule O-TR-6).

    Assigning another object to a tracked name replaces the dependency
    (``overwrite=True``), as attribute assignment always could.
    """
    add_dependency = not isinstance(value, NoDependency)
    value = wrap_or_unwrap(value)
    if add_dependency and isinstance(value, Trackable):
        trackable._track_trackable(value, name=name, overwrite=True)
    return value


def _untrackable(value: Any) -> InvalidArgumentError:
    return InvalidArgumentError(
        "Only trackable objects (such as Layers or Optimizers) may be stored in a List "
        f"object. Got {value!r}, which does not inherit from Trackable."
    )


def _same(a: Any, b: Any) -> bool:
    """One element compared with what the wrapper last saw: trackables by identity,
    other values by identity or by an equality that says plainly ``True``."""
    if a is b:
        return True
    if isinstance(a, Trackable) or isinstance(b, Trackable):
        return False
    try:
        return (a == b) is True
    except Exception:  # noqa: BLE001 - an equality that raises means "not the same"
        return False


class TrackableDataStructure(Trackable):
    """Base class of the containers, with ``tf.Module``/Keras-era aggregate properties (O-TR-11).

    ``trainable_variables`` and friends gather the contained objects' variables
    (walked with an explicit stack, however deeply containers nest) followed by
    the variables held directly. Hashing and equality are by identity unless a
    wrapper says otherwise.
    """

    _self_trainable: bool = True
    #: ``id``s of containers stored as ``NoDependency``: a save does not look inside
    #: them for trackables it would miss (rule O-TR-10).
    _self_exempt_ids: frozenset[int] = frozenset()

    @property
    def _values(self) -> Iterable[Any]:
        raise NotImplementedError

    def _stored_untracked(self, value: Any) -> Any:
        """``value`` came as ``NoDependency(value)``: remember that it is left out on purpose."""
        if not isinstance(value, Trackable):
            object.__setattr__(self, "_self_exempt_ids", self._self_exempt_ids | {id(value)})
        return value

    @property
    def trainable(self) -> bool:
        return self._self_trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        object.__setattr__(self, "_self_trainable", bool(value))

    def _gather(self, trainable: bool) -> list[Any]:
        return _gather_variables(self, trainable)

    @property
    def trainable_weights(self) -> list[Any]:
        return self._gather(True)

    @property
    def non_trainable_weights(self) -> list[Any]:
        return self._gather(False)

    @property
    def weights(self) -> list[Any]:
        return self.trainable_weights + self.non_trainable_weights

    @property
    def trainable_variables(self) -> list[Any]:
        return self.trainable_weights

    @property
    def non_trainable_variables(self) -> list[Any]:
        return self.non_trainable_weights

    @property
    def variables(self) -> list[Any]:
        return self.weights

    @property
    def layers(self) -> list[Any]:
        """Keras layers held here (dtckpt has none: objects with Keras' weight properties)."""
        out: list[Any] = []
        stack: list[Iterator[Any]] = [iter(self._values)]
        seen = {id(self)}
        while stack:
            value = next(stack[-1], _MISSING)
            if value is _MISSING:
                stack.pop()
            elif isinstance(value, TrackableDataStructure):
                if id(value) not in seen:
                    seen.add(id(value))
                    stack.append(iter(value._values))
            elif hasattr(type(value), "trainable_weights") and hasattr(
                type(value), "non_trainable_weights"
            ):
                out.append(value)
        return out

    @property
    def updates(self) -> list[Any]:
        return [u for layer in self.layers for u in getattr(layer, "updates", ())]

    @property
    def losses(self) -> list[Any]:
        return [u for layer in self.layers for u in getattr(layer, "losses", ())]

    def __hash__(self) -> int:
        return id(self)

    def __eq__(self, other: object) -> bool:
        return self is other

    def _child_named(self, name: str) -> Trackable | None:
        """The child ``name``, O(1), without the checks of :meth:`_lookup_dependency`."""
        return self._manual_lookup(name)

    def _lookup_dependency(self, name: str) -> Trackable | None:
        return self._child_named(name)

    def _current_dependency(self, name: str) -> Trackable | None:
        return self._child_named(name)

    def _with_manual(self, children: dict[str, Trackable]) -> dict[str, Trackable]:
        """Dependencies tracked by hand with ``_track_trackable`` come after the contents."""
        manual = self._self_dependencies
        if manual:
            for name, child in manual.items():
                children.setdefault(name, child)
        return children

    def _manual_lookup(self, name: str) -> Trackable | None:
        manual = self._self_dependencies
        return manual.get(name) if manual else None


def _gather_variables(root: TrackableDataStructure, trainable: bool) -> list[Any]:
    """TensorFlow's ``trainable_weights``/``non_trainable_weights`` of a container.

    For each contained object in order: a nested container contributes its own
    lists, a module its ``trainable_variables``/``non_trainable_variables``; then
    come the variables held directly. With ``trainable = False`` a container
    reports everything as non-trainable (trainable ones first). Post-order, with an
    explicit stack, so nesting depth costs no recursion.
    """
    from .variables import Variable

    # (container, its contents not yet visited, trainable found, non-trainable found)
    Frame = tuple[TrackableDataStructure, Iterator[Any], list[Any], list[Any]]
    stack: list[Frame] = [(root, iter(list(root._values)), [], [])]
    visiting = {id(root)}
    result: tuple[list[Any], list[Any]] = ([], [])
    while stack:
        container, items, found_t, found_n = stack[-1]
        value = next(items, _MISSING)
        if value is _MISSING:
            stack.pop()
            visiting.discard(id(container))
            direct = [v for v in container._values if isinstance(v, Variable)]
            own_t = [v for v in direct if v.trainable]
            own_n = [v for v in direct if not v.trainable]
            if container._self_trainable:
                result = (found_t + own_t, found_n + own_n)
            else:
                result = ([], found_t + own_t + found_n + own_n)
            if stack:
                stack[-1][2].extend(result[0])
                stack[-1][3].extend(result[1])
        elif isinstance(value, TrackableDataStructure):
            if id(value) not in visiting:  # a container inside itself is not entered again
                visiting.add(id(value))
                stack.append((value, iter(list(value._values)), [], []))
        elif isinstance(value, Trackable) and hasattr(value, "trainable_variables"):
            found_t.extend(value.trainable_variables)
            found_n.extend(getattr(value, "non_trainable_variables", ()))
    return result[0] if trainable else result[1]


# -- List and Mapping: TensorFlow's internal append-only containers ------------------------


class List(TrackableDataStructure, _AbcSequence[Any]):
    """An append-only sequence of trackables, each a dependency named by its index (O-TR-11).

    TensorFlow's internal ``data_structures.List``: only trackables may go in
    (``NoDependency`` ones are stored without a dependency), ``*= n`` appends,
    hashing and equality are by identity, slices are plain lists.
    """

    _self_untracked: frozenset[int] = frozenset()
    _self_storage: list[Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        storage: list[Any] = list(*args, **kwargs)
        object.__setattr__(self, "_self_storage", storage)
        for index, value in enumerate(storage):
            storage[index] = self._track_value(value, index)

    def _track_value(self, value: Any, index: int) -> Any:
        if isinstance(value, NoDependency):
            value = value.value
            if isinstance(value, Trackable):
                object.__setattr__(self, "_self_untracked", self._self_untracked | {index})
                return value
        else:
            value = wrap_or_unwrap(value)
            if isinstance(value, Trackable):
                self._handle_deferred(str(index), value)
                return value
        raise _untrackable(value)

    @property
    def _storage(self) -> list[Any]:
        storage: list[Any] = self._self_storage
        return storage

    @property
    def _values(self) -> Iterable[Any]:
        return self._storage

    def _trackable_children(self) -> dict[str, Trackable]:
        untracked = self._self_untracked
        children = {
            str(i): v
            for i, v in enumerate(self._storage)
            if isinstance(v, Trackable) and i not in untracked
        }
        return self._with_manual(children)

    def _child_trackables(self) -> Iterable[Trackable]:
        untracked = self._self_untracked
        children = [v for i, v in enumerate(self._storage) if i not in untracked]
        return children + list((self._self_dependencies or {}).values())

    def _child_named(self, name: str) -> Trackable | None:
        index = _index_of(name)
        storage = self._storage
        if index is not None and index < len(storage) and index not in self._self_untracked:
            return storage[index]  # type: ignore[no-any-return]
        return self._manual_lookup(name)

    def append(self, value: Any) -> None:
        storage = self._storage
        storage.append(self._track_value(value, len(storage)))

    def extend(self, values: Iterable[Any]) -> None:
        for value in list(values):
            self.append(value)

    def __iadd__(self, values: Iterable[Any]) -> List:  # type: ignore[misc]
        self.extend(values)
        return self

    def __imul__(self, times: int) -> List:
        if times <= 0:
            raise InvalidArgumentError(
                f"List only supports append, multiplying in place by {times} removes elements."
            )
        storage = self._storage
        count = len(storage)
        for _ in range(times - 1):
            for i in range(count):
                self.append(storage[i])
        return self

    def __add__(self, other: Any) -> list[Any]:
        return self._storage + getattr(other, "_storage", other)  # type: ignore[no-any-return]

    def __radd__(self, other: Any) -> list[Any]:
        return other + self._storage  # type: ignore[no-any-return]

    def __mul__(self, times: int) -> list[Any]:
        return self._storage * times

    def __rmul__(self, times: int) -> list[Any]:
        return self._storage * times

    def __getitem__(self, key: Any) -> Any:
        return self._storage[key]

    def __len__(self) -> int:
        return len(self._storage)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._storage)

    def copy(self) -> List:
        return type(self)(_copy.copy(self._storage))

    def __copy__(self) -> List:
        return self.copy()

    def __deepcopy__(self, memo: dict[int, Any]) -> List:
        return type(self)(_copy.deepcopy(self._storage, memo))

    def __repr__(self) -> str:
        return f"List({self._storage!r})"

    def __sizeof__(self) -> int:
        return object.__sizeof__(self) + sys.getsizeof(self._storage)


def _index_of(name: str) -> int | None:
    """The index a child name spells in canonical decimal, or None."""
    canonical = name.isascii() and name.isdigit() and (name == "0" or name[0] != "0")
    if not canonical or len(name) > 19:
        return None
    return int(name)


class Mapping(TrackableDataStructure, _AbcMapping[Any, Any]):
    """An append-only mapping of string keys to trackables (TensorFlow's internal
    ``data_structures.Mapping``): no overwriting, no deleting."""

    _self_untracked: frozenset[str] = frozenset()
    _self_storage: dict[Any, Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        storage = dict(*args, **kwargs)
        object.__setattr__(self, "_self_storage", storage)
        for key, value in list(storage.items()):
            storage[key] = self._track_value(value, self._name_element(key))

    def _name_element(self, key: Any) -> str:
        if not isinstance(key, str):
            raise TypeError(f"Mapping accepts only string keys, but got a key {key!r}.")
        return key

    def _track_value(self, value: Any, name: str) -> Any:
        if isinstance(value, NoDependency):
            value = value.value
            if isinstance(value, Trackable):
                object.__setattr__(self, "_self_untracked", self._self_untracked | {name})
                return value
        else:
            value = wrap_or_unwrap(value)
            if isinstance(value, Trackable):
                if self._child_named(name) is None:
                    self._handle_deferred(name, value)
                return value
        raise _untrackable(value)

    @property
    def _storage(self) -> dict[Any, Any]:
        storage: dict[Any, Any] = self._self_storage
        return storage

    @property
    def _values(self) -> Iterable[Any]:
        return [self._storage[key] for key in sorted(self._storage)]

    def _trackable_children(self) -> dict[str, Trackable]:
        untracked = self._self_untracked
        children = {k: v for k, v in self._storage.items() if k not in untracked}
        return self._with_manual(children)

    def _child_named(self, name: str) -> Trackable | None:
        if name not in self._self_untracked:
            value = self._storage.get(name)
            if isinstance(value, Trackable):
                return value
        return self._manual_lookup(name)

    def __setitem__(self, key: Any, value: Any) -> None:
        name = self._name_element(key)
        current = self._storage.get(key, _MISSING)
        if current is not _MISSING:
            raise InvalidArgumentError(
                "Mappings are an append-only data structure. Tried to overwrite the key "
                f"'{key}' with value {value}, but it already contains {current}"
            )
        self._storage[key] = self._track_value(value, name)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def __getitem__(self, key: Any) -> Any:
        return self._storage[key]

    def __len__(self) -> int:
        return len(self._storage)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._storage)

    def __copy__(self) -> Mapping:
        return type(self)(_copy.copy(self._storage))

    def __deepcopy__(self, memo: dict[int, Any]) -> Mapping:
        return type(self)(_copy.deepcopy(self._storage, memo))

    def __repr__(self) -> str:
        return f"Mapping({self._storage!r})"

"""Trackables a save cannot reach: found, and warned about (rule O-TR-10).

A checkpoint follows dependencies only: attributes of modules, the elements of
tracked lists, dicts and tuples. A trackable kept anywhere else, say in a set,
a ``Counter``, a subclass of ``list``, a dataclass or a ``SimpleNamespace``
held by a module, is not saved. TensorFlow drops it without a word; a dtckpt
save warns (:class:`~dtckpt.errors.UntrackedObjectWarning`), naming where it
is, unless the object is saved anyway through another path, or the container
was stored on purpose without tracking (``NoDependency``,
``no_automatic_dependency_tracking``).

The search looks inside the values that objects of the save hold and that are
not trackable themselves, through containers only (never the attributes of
arbitrary objects), with an explicit stack and each container once: it costs
the number of elements it meets.
"""

from __future__ import annotations

import dataclasses
import itertools
import types
from collections import UserDict, UserList, deque
from collections.abc import Container, Iterable, Iterator
from typing import Any, cast

import numpy as np

from .containers import TrackableDataStructure
from .dict_wrapper import _DictWrapperBase
from .list_wrapper import ListWrapper
from .module import AutoTrackable
from .trackable import Trackable
from .tuple_wrapper import TupleWrapper

__all__ = ["untracked_trackables"]

_CONTAINERS = (set, frozenset, list, tuple, dict, deque, UserList, UserDict, types.SimpleNamespace)


def _is_container(value: Any) -> bool:
    if isinstance(value, _CONTAINERS):
        return True
    if isinstance(value, np.ndarray):
        return bool(value.dtype == object)
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def _contents(value: Any) -> Iterable[Any]:
    if isinstance(value, dict):
        return [*value.keys(), *value.values()]
    if isinstance(value, UserDict):
        return [*value.data.keys(), *value.data.values()]
    if isinstance(value, UserList):
        return value.data
    if isinstance(value, types.SimpleNamespace):
        return list(vars(value).values())
    if isinstance(value, np.ndarray):
        items: list[Any] = value.ravel().tolist()
        return items
    if dataclasses.is_dataclass(value):
        return [getattr(value, f.name, None) for f in dataclasses.fields(value)]
    return value  # type: ignore[no-any-return]


def _inside(value: Any) -> Iterator[Trackable]:
    """Every trackable inside ``value``, through containers (each container once)."""
    stack = [value]
    seen = {id(value)}
    while stack:
        try:
            items = list(_contents(stack.pop()))
        except Exception:  # noqa: BLE001 - a container that cannot be read hides nothing we can see
            continue
        for item in items:
            if isinstance(item, Trackable):
                yield item
            elif _is_container(item) and id(item) not in seen:
                seen.add(id(item))
                stack.append(item)


def _held(obj: Trackable) -> Iterable[tuple[str, Any, Any]]:
    """``(how, key, value)`` for what ``obj`` holds that a save could miss; ``how`` says
    how ``key`` reaches ``value`` ("." attribute, "[" item, "k" a dict key itself)."""
    if isinstance(obj, ListWrapper):
        return (("[", i, v) for i, v in enumerate(obj._storage))
    if isinstance(obj, _DictWrapperBase):
        storage = obj._storage
        return itertools.chain(
            (("[", k, v) for k, v in storage.items()), (("k", k, k) for k in storage)
        )
    if isinstance(obj, TupleWrapper):
        return (("[", i, v) for i, v in enumerate(cast(tuple[Any, ...], obj)))
    if isinstance(obj, AutoTrackable) and not isinstance(obj, TrackableDataStructure):
        exempt = obj._self_untracked_names
        return (
            (".", name, value)
            for name, value in vars(obj).items()
            if not name.startswith("_self_") and name not in exempt
        )
    return ()


def _where(how: str, key: Any) -> str:
    if how == ".":
        return f".{key}"
    if how == "[":
        return f"[{key!r}]"
    return f" (the dict key {key!r})"


def untracked_trackables(
    obj: Trackable, saved: Container[int]
) -> Iterator[tuple[str, Any, Trackable]]:
    """``(where in obj, the container, a trackable in it)`` for each container ``obj``
    holds with a trackable inside whose ``id`` is not in ``saved``."""
    exempt_ids: frozenset[int] = getattr(obj, "_self_exempt_ids", frozenset())
    for how, key, value in _held(obj):
        if isinstance(value, Trackable) or not _is_container(value) or id(value) in exempt_ids:
            continue
        for found in _inside(value):
            if id(found) not in saved:
                yield _where(how, key), value, found
                break

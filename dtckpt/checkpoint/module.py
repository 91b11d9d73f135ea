"""``Module``: ``tf.Module``'s automatic tracking of attributes (rule O-TR-3).

Assigning a trackable (a :class:`Variable`, another module, or a list, dict or
tuple, which are wrapped) to an attribute of a module makes it a checkpoint
dependency under the attribute's name. Re-assigning keeps the dependency's
position; ``del`` removes it. ``variables`` and ``trainable_variables``
follow ``tf.Module``'s order: the module's own attributes sorted by name
(containers flattened in order, dicts by sorted key), then each submodule's,
depth-first, each variable once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .data_structures import NoDependency, sticky_attribute_assignment
from .trackable import Trackable
from .variables import Variable

__all__ = ["AutoTrackable", "Module"]


class AutoTrackable(Trackable):
    """Tracks every trackable assigned to an attribute (rules O-TR-3, O-TR-6).

    As TensorFlow's ``AutoTrackable``: lists, dicts and tuples are wrapped, a
    trackable becomes the dependency named after the attribute (replacing what the
    name held), ``NoDependency(value)`` stores ``value`` untracked, and
    ``no_automatic_dependency_tracking`` turns all of it off for a method.
    Attribute names that start with ``_self_`` are dtckpt's bookkeeping: never tracked.
    """

    #: Attributes knowingly stored without a dependency (NoDependency, tracking off):
    #: a save does not warn about trackables inside them (rule O-TR-10).
    _self_untracked_names: frozenset[str] = frozenset()

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_self_"):
            object.__setattr__(self, name, value)
            return
        try:
            if getattr(self, name) is value:
                return
        except AttributeError:
            pass
        untracked = self._self_untracked_names
        if self._self_setattr_tracking and not isinstance(value, NoDependency):
            if name in untracked:
                object.__setattr__(self, "_self_untracked_names", untracked - {name})
            value = sticky_attribute_assignment(self, name, value)
        else:
            if name not in untracked:
                object.__setattr__(self, "_self_untracked_names", untracked | {name})
            if isinstance(value, NoDependency):
                value = value.value
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        self._delete_tracking(name)
        object.__delattr__(self, name)

    def _no_dependency(self, value: Any) -> Any:
        return NoDependency(value)


class Module(AutoTrackable):
    """A named container of variables and submodules, like ``tf.Module``."""

    def __init__(self, name: str | None = None) -> None:
        self._name = name if name is not None else _snake(type(self).__name__)

    @property
    def name(self) -> str:
        return self._name

    @property
    def variables(self) -> tuple[Variable, ...]:
        """Every variable of this module and its submodules, in ``tf.Module``'s order (O-TR-4)."""
        return tuple(v for v in _flatten_module(self) if isinstance(v, Variable))

    @property
    def trainable_variables(self) -> tuple[Variable, ...]:
        return tuple(v for v in self.variables if v.trainable)

    @property
    def non_trainable_variables(self) -> tuple[Variable, ...]:
        return tuple(v for v in self.variables if not v.trainable)

    @property
    def submodules(self) -> tuple[Module, ...]:
        return tuple(m for m in _flatten_module(self) if isinstance(m, Module))

    def __repr__(self) -> str:
        return f"<dtckpt.Module {self._name!r}>"


def _snake(name: str) -> str:
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i and not name[i - 1].isupper():
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


def _leaves(value: Any) -> Iterator[Any]:
    """``tf.nest.flatten`` order: lists/tuples in order, dicts by sorted key (no recursion)."""
    stack: list[Iterator[Any]] = [iter((value,))]
    while stack:
        item = next(stack[-1], _DONE)
        if item is _DONE:
            stack.pop()
        elif isinstance(item, dict):
            stack.append(iter([item[key] for key in sorted(item, key=str)]))
        elif isinstance(item, (list, tuple)):
            stack.append(iter(item))
        else:
            yield item


_DONE = object()


def _flatten_module(module: Module) -> Iterator[Any]:
    """Each module's own leaves, then its submodules' depth-first, each leaf once.

    An explicit stack, so a chain of nested modules of any depth works.
    """
    seen = {id(module)}

    def own_leaves(mod: Module, submodules: list[Module]) -> Iterator[Any]:
        for key in sorted(vars(mod)):
            if key.startswith("_self_"):
                continue
            for leaf in _leaves(vars(mod)[key]):
                if id(leaf) not in seen:
                    seen.add(id(leaf))
                    yield leaf
                    if isinstance(leaf, Module):
                        submodules.append(leaf)

    first: list[Module] = []
    yield from own_leaves(module, first)
    pending = [iter(first)]
    while pending:
        sub = next(pending[-1], None)
        if sub is None:
            pending.pop()
            continue
        found: list[Module] = []
        yield from own_leaves(sub, found)
        pending.append(iter(found))

"""Tracked lists, dicts and tuples assigned to trackable attributes (O-TR-2, O-TR-6..9, O-TR-11).

As in ``tensorflow/python/trackable/data_structures.py``, a ``list``, ``dict``
or ``tuple`` stored on a :class:`~dtckpt.Module` (or a
:class:`~dtckpt.Checkpoint`) is replaced by a wrapper that is itself a
trackable node::

    held = [v0]            m.layers = held         ListWrapper ──"0"──> v0
      │                          │                   │  (what the wrapper last saw:
      └────── the same list ─────┘                   │   its own list contents)
    held.append(v1)   <- seen through m.layers, but "modified outside the wrapper":
                         saving refuses, as in TensorFlow

* ``ListWrapper`` and ``DictWrapper`` share the caller's own list or dict: they
  read and write it, so changes made either way are seen either way. What the
  wrapper last saw is kept as its own built-in contents (``list``/``dict``
  storage of the subclass), which is what the children and restore lookups
  use, and what a save compares with the shared container, so a change made
  behind the wrapper's back makes the save fail instead of being saved under
  shifted names (rule O-TR-8).
* A list's children are named by position; any mutation that could move a
  trackable (delete, insert, sort, reverse, replacing a trackable, slice
  assignment, ``*=`` by 0 or less) makes saving fail with TensorFlow's message
  (rule O-TR-7). A dict's children are its string keys; a non-string key
  holding a trackable makes saving fail.
* A tuple is wrapped when something in it is trackable, a list or a dict;
  namedtuples and tuple subclasses keep their type (``isinstance`` holds) and
  namedtuples are tracked by field name and by index (rule O-TR-9).
* :class:`NoDependency` stores a value without tracking it.

Every operation costs what the built-in operation costs plus O(1) bookkeeping,
except where the built-in one is already O(n) (slices, sort, reverse); a save
compares each wrapper with its shared container once, O(n).
"""

from __future__ import annotations

from .containers import (
    List,
    Mapping,
    NoDependency,
    TrackableDataStructure,
    sticky_attribute_assignment,
    wrap_or_unwrap,
)
from .dict_wrapper import DictWrapper, OrderedDictWrapper
from .list_wrapper import ListWrapper
from .tuple_wrapper import TupleWrapper

__all__ = [
    "NoDependency",
    "wrap_or_unwrap",
    "wrap",
    "sticky_attribute_assignment",
    "TrackableDataStructure",
    "List",
    "ListWrapper",
    "Mapping",
    "DictWrapper",
    "OrderedDictWrapper",
    "TupleWrapper",
]

wrap = wrap_or_unwrap
#: TensorFlow's name for the dict wrapper (``_TupleWrapper`` is the plain-tuple wrapper's class).
_DictWrapper = DictWrapper

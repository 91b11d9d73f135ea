"""Whether an array may be written in place: nothing but its owner refers to it (rule O-RS-15).

A variable never writes into its array (``assign`` replaces it), so that a view
handed out, a ``read_value()`` or a background save can keep the array without
copying it. A restore may still read straight into a variable's array, saving a
second copy of the value, when nothing else refers to that array: then nobody can
see it change. CPython's reference count says so exactly; the count an unshared
array has is measured once, below, with the same calls the checks make.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

__all__ = ["attribute_unshared", "item_unshared", "owned_bytes", "writable_in_place"]


def _attribute_count(obj: Any, name: str) -> int:
    return sys.getrefcount(getattr(obj, name))


def _item_count(container: Any, index: Any) -> int:
    return sys.getrefcount(container[index])


class _Holder:
    def __init__(self) -> None:
        self.value = np.empty(0)


_ATTRIBUTE_ALONE = _attribute_count(_Holder(), "value")
_ITEM_ALONE = _item_count([np.empty(0)], 0)


def attribute_unshared(obj: Any, name: str) -> bool:
    """Whether only ``obj.<name>`` refers to the object it holds."""
    return _attribute_count(obj, name) <= _ATTRIBUTE_ALONE


def item_unshared(container: Any, index: Any) -> bool:
    """Whether only ``container[index]`` refers to the object it holds."""
    return _item_count(container, index) <= _ITEM_ALONE


def writable_in_place(array: Any) -> bool:
    """A writeable, C-contiguous array that owns its memory (views and maps excluded)."""
    return (
        isinstance(array, np.ndarray)
        and array.base is None
        and array.flags.c_contiguous
        and array.flags.writeable
        and array.dtype != object
    )


def owned_bytes(array: Any) -> int:
    """The bytes dropping ``array`` can free: those of the array owning its memory (0 for
    memory NumPy does not own, such as a map or a ``bytes`` object)."""
    while isinstance(array, np.ndarray) and isinstance(array.base, np.ndarray):
        array = array.base
    if not isinstance(array, np.ndarray) or array.base is not None:
        return 0
    return int(array.nbytes)

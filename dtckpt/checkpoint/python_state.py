"""``PythonState``: Python values in an object-based checkpoint (rule O-PS-1).

::

    class NumpyWrapper(PythonState):                 Checkpoint(numpy=NumpyWrapper(a))
        def serialize(self): -> bytes                 numpy/.ATTRIBUTES/py_state -> string []
        def deserialize(self, value: bytes): ...

A subclass saves one string scalar, its ``serialize()`` (``str`` is encoded as
UTF-8), under the attribute ``py_state``; a restore hands the stored ``bytes``
to ``deserialize``. As ``tf.train.experimental.PythonState``
(``tensorflow/python/trackable/python_state.py``); a restore asks
``serialize()`` nothing, it only checks from the index that the stored value is
a string scalar.
"""

from __future__ import annotations

import abc
from typing import Any

import numpy as np

from .trackable import Trackable

__all__ = ["PythonState", "PYTHON_STATE"]

PYTHON_STATE = "py_state"
_ATTRIBUTES = (PYTHON_STATE,)


class PythonState(Trackable, metaclass=abc.ABCMeta):
    """A mixin for putting Python state in an object-based checkpoint."""

    @abc.abstractmethod
    def serialize(self) -> bytes | str:
        """The state to save, as ``bytes`` (or ``str``, saved as UTF-8)."""

    @abc.abstractmethod
    def deserialize(self, string_value: bytes) -> None:
        """Take back the state ``serialize`` returned (as ``bytes``)."""

    def _serialize_to_tensors(self) -> dict[str, Any]:
        value = self.serialize()
        if isinstance(value, str):
            value = value.encode("utf-8")
        return {PYTHON_STATE: np.array(bytes(value), dtype=object)}

    def _attribute_names(self) -> tuple[str, ...]:
        return _ATTRIBUTES

    def _restore_problem(
        self, name: str, key: str, dtype: str, shape: tuple[int, ...]
    ) -> str | None:
        if name == PYTHON_STATE and (dtype != "string" or shape != ()):
            return (
                f"Python state {key} must be a string scalar, but the checkpoint holds "
                f"{dtype} {list(shape)}"
            )
        return None

    def _restore_from_tensors(self, tensors: dict[str, Any]) -> None:
        value = tensors.get(PYTHON_STATE)
        if value is not None:
            self.deserialize(np.asarray(value, dtype=object).item())

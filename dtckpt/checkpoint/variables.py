"""``Variable``: a NumPy-backed ``tf.Variable`` (rule O-VA-1).

Its checkpointed attribute is ``VARIABLE_VALUE``; the object graph records its
``full_name``, the variable's name without TensorFlow's ``:0`` output suffix
(``"Variable"`` unless a name was given, exactly as TF's eager variables).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..dtypes import info, type_string
from ..errors import CheckpointError, InvalidArgumentError
from ..format.bundle_reader import READ_SCRATCH
from ..format.bundle_writer import as_tensor
from .ownership import attribute_unshared, owned_bytes, writable_in_place
from .plans import ValueRead, whole_read
from .trackable import Trackable

__all__ = ["Variable", "VariableRef", "VARIABLE_VALUE_KEY"]

VARIABLE_VALUE_KEY = "VARIABLE_VALUE"
_VARIABLE_ATTRIBUTES = (VARIABLE_VALUE_KEY,)


class Variable(Trackable):
    """A mutable tensor, held as a NumPy array.

    ``Variable(initial_value, name=None, dtype=None, trainable=True)`` as in
    TensorFlow; ``initial_value`` may be a callable. Python floats become
    ``float32`` and ints ``int32``, TensorFlow's defaults.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Variable:
        # A value may name the Variable class that holds it: TensorFlow's
        # tf.Variable of a DTensor is a DTensor variable, and Variable(dtensor)
        # is likewise a DVariable (the class comes from the value's own layer).
        initial = args[0] if args else kwargs.get("initial_value")
        holder = getattr(type(initial), "_variable_class", None)
        if cls is Variable and holder is not None:
            instance: Variable = super().__new__(holder())
            return instance
        made: Variable = super().__new__(cls)
        return made

    def __init__(
        self,
        initial_value: Any,
        name: str | None = None,
        dtype: Any = None,
        trainable: bool = True,
    ) -> None:
        if callable(initial_value):
            initial_value = initial_value()
        if dtype is None and _is_python_number(initial_value):
            dtype = np.float32 if _has_float(initial_value) else np.int32
        array, row = as_tensor(initial_value, dtype)
        self._value = np.array(array, dtype=row.numpy, copy=True)
        self._shared_name = "Variable" if name is None else str(name).split(":")[0]
        self._trainable = bool(trainable)
        self._slots: dict[str, Variable] = {}

    @classmethod
    def _holding(cls, array: np.ndarray, *, name: str | None, trainable: bool) -> Variable:
        """A variable holding ``array`` itself, not a copy (a restore's new slot variable,
        whose placeholder takes no memory; rule R-PL-3)."""
        made: Variable = object.__new__(cls)
        made._value = array
        made._shared_name = "Variable" if name is None else str(name).split(":")[0]
        made._trainable = bool(trainable)
        made._slots = {}
        return made

    # -- tf.Variable surface -----------------------------------------------------
    @property
    def name(self) -> str:
        """TF's variable name: ``"<name>:0"``."""
        return f"{self._shared_name}:0"

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._value.shape)

    @property
    def dtype(self) -> np.dtype[Any]:
        return self._value.dtype

    @property
    def trainable(self) -> bool:
        return self._trainable

    @property
    def slots(self) -> dict[str, Variable]:
        """Optimizer slot variables restored along with this variable, by slot name."""
        return dict(self._slots)

    def numpy(self) -> np.ndarray:
        """A copy of the current value."""
        out: np.ndarray = self._value.copy()
        return out

    def read_value(self) -> np.ndarray:
        return self.numpy()

    def value(self) -> np.ndarray:
        return self.numpy()

    def assign(self, value: Any) -> Variable:
        """Replace the value; the shape and dtype must stay the same."""
        new = self._coerce(value, f"assign to {self.name}")
        self._value = new
        return self

    def assign_add(self, delta: Any) -> Variable:
        return self.assign(self._value + self._coerce(delta, f"assign_add to {self.name}"))

    def assign_sub(self, delta: Any) -> Variable:
        return self.assign(self._value - self._coerce(delta, f"assign_sub to {self.name}"))

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        out: np.ndarray = self._value.astype(dtype) if dtype is not None else self._value.copy()
        return out

    def __repr__(self) -> str:
        return f"<dtckpt.Variable {self.name!r} shape={self.shape} dtype={self.dtype}>"

    # -- identity: TensorFlow 2's variables are unhashable; ``ref()`` is the key (O-VA-2)
    def __hash__(self) -> int:
        raise TypeError(
            f"Variable is unhashable. Instead, use variable.ref() as the key. (Variable: {self!r})"
        )

    def ref(self) -> VariableRef:
        """A hashable reference to this variable (``tf.Variable.ref()``); ``deref()`` gives
        the variable back. Two references to one variable are equal."""
        return VariableRef(self)

    def experimental_ref(self) -> VariableRef:
        return self.ref()

    # -- arithmetic: NumPy arrays of the current value (TensorFlow returns tensors) ---
    def __add__(self, other: Any) -> Any:
        return np.add(self._value, _operand(other))

    def __radd__(self, other: Any) -> Any:
        return np.add(_operand(other), self._value)

    def __sub__(self, other: Any) -> Any:
        return np.subtract(self._value, _operand(other))

    def __rsub__(self, other: Any) -> Any:
        return np.subtract(_operand(other), self._value)

    def __mul__(self, other: Any) -> Any:
        return np.multiply(self._value, _operand(other))

    def __rmul__(self, other: Any) -> Any:
        return np.multiply(_operand(other), self._value)

    def __truediv__(self, other: Any) -> Any:
        return np.true_divide(self._value, _operand(other))

    def __rtruediv__(self, other: Any) -> Any:
        return np.true_divide(_operand(other), self._value)

    def __floordiv__(self, other: Any) -> Any:
        return np.floor_divide(self._value, _operand(other))

    def __rfloordiv__(self, other: Any) -> Any:
        return np.floor_divide(_operand(other), self._value)

    def __mod__(self, other: Any) -> Any:
        return np.mod(self._value, _operand(other))

    def __rmod__(self, other: Any) -> Any:
        return np.mod(_operand(other), self._value)

    def __pow__(self, other: Any) -> Any:
        return np.power(self._value, _operand(other))

    def __rpow__(self, other: Any) -> Any:
        return np.power(_operand(other), self._value)

    def __matmul__(self, other: Any) -> Any:
        return np.matmul(self._value, _operand(other))

    def __rmatmul__(self, other: Any) -> Any:
        return np.matmul(_operand(other), self._value)

    def __neg__(self) -> Any:
        return np.negative(self._value)

    def __pos__(self) -> Any:
        return np.positive(self._value)

    def __abs__(self) -> Any:
        return np.abs(self._value)

    def __lt__(self, other: Any) -> Any:
        return np.less(self._value, _operand(other))

    def __le__(self, other: Any) -> Any:
        return np.less_equal(self._value, _operand(other))

    def __gt__(self, other: Any) -> Any:
        return np.greater(self._value, _operand(other))

    def __ge__(self, other: Any) -> Any:
        return np.greater_equal(self._value, _operand(other))

    def __getitem__(self, key: Any) -> Any:
        return self.numpy()[key]

    def __bool__(self) -> bool:
        return bool(self._value)

    def __float__(self) -> float:
        return float(self._value)

    def __int__(self) -> int:
        return int(self._value)

    def _coerce(self, value: Any, what: str) -> np.ndarray:
        array = np.asarray(value)
        if self._value.dtype == object:
            array, _ = as_tensor(value, "string")
        elif array.dtype != self._value.dtype:
            if not np.can_cast(array.dtype, self._value.dtype, casting="same_kind") and not (
                _is_python_number(value)
            ):
                raise InvalidArgumentError(
                    f"{what}: value of dtype {array.dtype} does not match the variable's "
                    f"dtype {self._value.dtype}"
                )
            array = array.astype(self._value.dtype)
        if array.shape != self._value.shape:
            raise InvalidArgumentError(
                f"{what}: value of shape {list(array.shape)} does not match the variable's "
                f"shape {list(self._value.shape)}"
            )
        return np.array(array, copy=True)

    # -- checkpointing ----------------------------------------------------------
    @property
    def full_name(self) -> str:
        """The name recorded in the object graph (``SerializedTensor.full_name``)."""
        return self._shared_name

    # A variable's array is replaced, never written into, except by a restore that first
    # makes sure nothing else refers to it (rules O-CK-10, O-RS-15).
    _values_stay_unchanged = True

    def _serialize_to_tensors(self) -> dict[str, np.ndarray]:
        return {VARIABLE_VALUE_KEY: self._value}

    def _attribute_names(self) -> tuple[str, ...]:
        return _VARIABLE_ATTRIBUTES

    def _restore_problem(
        self, name: str, key: str, dtype: str, shape: tuple[int, ...]
    ) -> str | None:
        """TensorFlow's messages: ``RestoreV2``'s for a dtype, the variable's for a shape."""
        ours = info(self.dtype).name
        if name != VARIABLE_VALUE_KEY:
            return None
        if dtype != ours:
            return (
                f"tensor_name = {key}; expected dtype {type_string(ours)} does not equal "
                f"original dtype {type_string(dtype)}"
            )
        if shape != self.shape:
            return (
                f"Received incompatible tensor with shape {shape} when attempting to restore "
                f"variable with shape {self.shape} and name {self.name}."
            )
        return None

    def _plan_checkpoint_read(
        self, reader: Any, name: str, key: str, *, target: str, scratch: int, threads: int
    ) -> tuple[list[ValueRead], int]:
        """Into the variable's own array when nothing else refers to it (rule O-RS-15);
        else into a new array, which stays allocated when the old one is held elsewhere
        (rule R-PL-3)."""
        unshared = attribute_unshared(self, "_value")
        into = name == VARIABLE_VALUE_KEY and unshared and writable_in_place(self._value)
        keeps = not unshared or owned_bytes(self._value) < self._value.nbytes
        return [whole_read(reader, key, target, into=into, keeps=keeps, scratch=scratch)], 1

    def _read_checkpoint_value(
        self, reader: Any, name: str, key: str, planned: Sequence[ValueRead] = ()
    ) -> Any:
        """Read straight into the variable's array when nothing else refers to it (rule
        O-RS-15), as ``planned`` says: a restore then needs no second copy of the value."""
        scratch = planned[0].scratch_limit if planned else READ_SCRATCH
        in_place = planned[0].in_place if planned else True
        if (
            in_place
            and name == VARIABLE_VALUE_KEY
            and writable_in_place(self._value)
            and attribute_unshared(self, "_value")
        ):
            try:
                return reader.read(key, out=self._value, scratch=scratch)
            except CheckpointError as exc:
                raise type(exc)(
                    f"{exc.message} (read in place: {self.name} now holds what was read "
                    "before the error)",
                    path=exc.path,
                    key=exc.key,
                    offset=exc.offset,
                    client=exc.client,
                ) from None
        return reader.read(key, scratch=scratch)

    def _restore_from_tensors(self, tensors: dict[str, np.ndarray]) -> None:
        value = tensors.get(VARIABLE_VALUE_KEY)
        if value is not None and value is not self._value:
            # The reader hands over a new array, and a variable never changes its
            # array in place (assign replaces it): adopt it rather than copy it.
            self._value = np.asarray(value, dtype=self._value.dtype)


class VariableRef:
    """What ``Variable.ref()`` returns: hashable and compared by the variable's identity."""

    __slots__ = ("_variable",)

    def __init__(self, variable: Variable) -> None:
        self._variable = variable

    def deref(self) -> Variable:
        return self._variable

    def __hash__(self) -> int:
        return id(self._variable)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VariableRef) and other._variable is self._variable

    def __repr__(self) -> str:
        return f"<Reference wrapping {self._variable!r}>"


def _operand(value: Any) -> Any:
    return value._value if isinstance(value, Variable) and type(value) is Variable else value


def _is_python_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    if isinstance(value, (list, tuple)):
        return bool(value) and all(_is_python_number(v) for v in value)
    return False


def _has_float(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return any(_has_float(v) for v in value)
    return isinstance(value, float)

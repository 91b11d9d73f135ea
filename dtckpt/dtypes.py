"""TensorFlow's ``DataType`` enum and its NumPy counterparts.

The enum values are those of ``tensorflow/core/framework/types.proto``
(spec rule F-DT-1). Each stored dtype maps to one NumPy dtype; the types NumPy
lacks (bfloat16, the float8 family, int4/uint4) come from ``ml_dtypes``, the
package TensorFlow and JAX themselves use for them. ``DT_STRING`` maps to
NumPy ``object`` arrays holding ``bytes``.

``ml_dtypes`` takes longer to import than everything else ``dtckpt inspect``
needs, so it is imported the first time one of its dtypes is asked for as a
NumPy dtype: listing, inspecting or verifying a checkpoint of float32 tensors
never loads it.

The table also records which dtypes TensorFlow's ``BundleReader`` can cut and
paste when a request does not match a stored slice exactly (spec rule
F-SL-6): dtckpt can re-slice every fixed-width dtype, but a writer that wants
TensorFlow to read its files should not rely on the others being re-sliced.
"""

from __future__ import annotations

import enum
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import InvalidArgumentError

__all__ = [
    "DataType",
    "DTypeInfo",
    "info",
    "from_numpy",
]


class DataType(enum.IntEnum):
    """``tensorflow.DataType`` values that can appear in a bundle entry."""

    DT_INVALID = 0
    DT_FLOAT = 1
    DT_DOUBLE = 2
    DT_INT32 = 3
    DT_UINT8 = 4
    DT_INT16 = 5
    DT_INT8 = 6
    DT_STRING = 7
    DT_COMPLEX64 = 8
    DT_INT64 = 9
    DT_BOOL = 10
    DT_QINT8 = 11
    DT_QUINT8 = 12
    DT_QINT32 = 13
    DT_BFLOAT16 = 14
    DT_QINT16 = 15
    DT_QUINT16 = 16
    DT_UINT16 = 17
    DT_COMPLEX128 = 18
    DT_HALF = 19
    DT_RESOURCE = 20
    DT_VARIANT = 21
    DT_UINT32 = 22
    DT_UINT64 = 23
    DT_FLOAT8_E5M2 = 24
    DT_FLOAT8_E4M3FN = 25
    DT_FLOAT8_E4M3FNUZ = 26
    DT_FLOAT8_E4M3B11FNUZ = 27
    DT_FLOAT8_E5M2FNUZ = 28
    DT_INT4 = 29
    DT_UINT4 = 30
    DT_INT2 = 31
    DT_UINT2 = 32
    DT_FLOAT4_E2M1FN = 33


@dataclass(frozen=True)
class DTypeInfo:
    """What dtckpt knows about one TensorFlow dtype.

    ``name`` is TensorFlow's ``tf.DType.name``; ``numpy`` is the NumPy dtype of
    the arrays dtckpt returns (``object`` for strings); ``swap_width`` is the
    unit that is byte-swapped when reading a big-endian bundle (0 = never);
    ``itemsize`` the bytes of one element on disk (0 for strings and variants).
    """

    enum: DataType
    name: str
    #: A NumPy dtype, or the name of an ``ml_dtypes`` type, resolved on first use.
    dtype_source: Any = field(repr=False)
    swap_width: int
    tf_reslices: bool
    width: int = field(repr=False)

    @property
    def numpy(self) -> np.dtype[Any]:
        source = self.dtype_source
        if isinstance(source, np.dtype):
            return source
        resolved: np.dtype[Any] = np.dtype(getattr(_ml_dtypes(), source))
        object.__setattr__(self, "dtype_source", resolved)
        return resolved

    @property
    def is_string(self) -> bool:
        return self.enum == DataType.DT_STRING

    @property
    def is_variable_width(self) -> bool:
        """Strings and variants: elements of varying size, no fixed itemsize."""
        return self.enum in (DataType.DT_STRING, DataType.DT_VARIANT)

    @property
    def itemsize(self) -> int:
        return 0 if self.is_variable_width else self.width


def _ml_dtypes() -> Any:
    import ml_dtypes

    _index_ml_dtypes()
    return ml_dtypes


def _row(dt: DataType, name: str, np_dtype: Any, swap: int, reslice: bool) -> DTypeInfo:
    """A row; ``np_dtype`` may be the name of an ``ml_dtypes`` type (all are one byte
    wide but bfloat16)."""
    if isinstance(np_dtype, str):
        return DTypeInfo(dt, name, np_dtype, swap, reslice, 2 if np_dtype == "bfloat16" else 1)
    resolved = np.dtype(np_dtype)
    return DTypeInfo(dt, name, resolved, swap, reslice, resolved.itemsize)


# Rule F-DT-2: element widths on disk; rule F-SL-6: what TF re-slices.
_TABLE: tuple[DTypeInfo, ...] = (
    _row(DataType.DT_FLOAT, "float32", np.float32, 4, True),
    _row(DataType.DT_DOUBLE, "float64", np.float64, 8, True),
    _row(DataType.DT_INT32, "int32", np.int32, 4, True),
    _row(DataType.DT_UINT8, "uint8", np.uint8, 0, True),
    _row(DataType.DT_INT16, "int16", np.int16, 2, True),
    _row(DataType.DT_INT8, "int8", np.int8, 0, True),
    _row(DataType.DT_STRING, "string", object, 0, False),
    _row(DataType.DT_COMPLEX64, "complex64", np.complex64, 4, True),
    _row(DataType.DT_INT64, "int64", np.int64, 8, True),
    _row(DataType.DT_BOOL, "bool", np.bool_, 0, True),
    _row(DataType.DT_QINT8, "qint8", np.int8, 0, True),
    _row(DataType.DT_QUINT8, "quint8", np.uint8, 0, True),
    _row(DataType.DT_QINT32, "qint32", np.int32, 4, True),
    _row(DataType.DT_BFLOAT16, "bfloat16", "bfloat16", 2, True),
    _row(DataType.DT_QINT16, "qint16", np.int16, 2, False),
    _row(DataType.DT_QUINT16, "quint16", np.uint16, 2, False),
    _row(DataType.DT_UINT16, "uint16", np.uint16, 2, False),
    _row(DataType.DT_COMPLEX128, "complex128", np.complex128, 8, True),
    _row(DataType.DT_HALF, "float16", np.float16, 2, False),
    # Variant tensors (tf.data iterator state...) are listed but never decoded.
    _row(DataType.DT_VARIANT, "variant", object, 0, False),
    _row(DataType.DT_UINT32, "uint32", np.uint32, 4, False),
    _row(DataType.DT_UINT64, "uint64", np.uint64, 8, False),
    _row(DataType.DT_FLOAT8_E5M2, "float8_e5m2", "float8_e5m2", 0, False),
    _row(DataType.DT_FLOAT8_E4M3FN, "float8_e4m3fn", "float8_e4m3fn", 0, False),
    _row(DataType.DT_FLOAT8_E4M3FNUZ, "float8_e4m3fnuz", "float8_e4m3fnuz", 0, False),
    _row(
        DataType.DT_FLOAT8_E4M3B11FNUZ,
        "float8_e4m3b11fnuz",
        "float8_e4m3b11fnuz",
        0,
        False,
    ),
    _row(DataType.DT_FLOAT8_E5M2FNUZ, "float8_e5m2fnuz", "float8_e5m2fnuz", 0, False),
    _row(DataType.DT_INT4, "int4", "int4", 0, True),
    _row(DataType.DT_UINT4, "uint4", "uint4", 0, True),
    _row(DataType.DT_INT2, "int2", "int2", 0, False),
    _row(DataType.DT_UINT2, "uint2", "uint2", 0, False),
    _row(DataType.DT_FLOAT4_E2M1FN, "float4_e2m1fn", "float4_e2m1fn", 0, False),
)

_BY_ENUM: dict[int, DTypeInfo] = {row.enum: row for row in _TABLE}
_BY_NAME: dict[str, DTypeInfo] = {row.name: row for row in _TABLE}
# When a NumPy dtype is shared (int8 is also qint8), the plain type wins. The
# ml_dtypes types join once ml_dtypes is imported (_index_ml_dtypes).
_BY_NUMPY: dict[np.dtype[Any], DTypeInfo] = {}


def _index_numpy(rows: tuple[DTypeInfo, ...]) -> None:
    for row in rows:
        if row.name.startswith("q") or row.name == "variant":
            continue
        _BY_NUMPY.setdefault(row.numpy, row)


def _index_ml_dtypes() -> None:
    if not _ML_INDEXED:
        _ML_INDEXED.append(True)
        _index_numpy(tuple(r for r in _TABLE if not isinstance(r.dtype_source, np.dtype)))


_ML_INDEXED: list[bool] = []
_index_numpy(tuple(r for r in _TABLE if isinstance(r.dtype_source, np.dtype)))
_ALIASES = {"half": "float16", "float": "float32", "double": "float64", "bytes": "string"}


#: TensorFlow's C++ ``DataTypeString`` where it differs from dtckpt's name.
_TYPE_STRINGS = {"float32": "float", "float64": "double", "float16": "half"}


def type_string(name: str) -> str:
    """The name TensorFlow's C++ messages give a dtype (``DataTypeString``): ``float``..."""
    return _TYPE_STRINGS.get(name, name)


def info(dtype: int | str | DataType | np.dtype[Any] | type) -> DTypeInfo:
    """Look up a dtype given as a ``DataType`` value, a TF name or a NumPy dtype."""
    if isinstance(dtype, (int, DataType)) and not isinstance(dtype, bool):
        row = _BY_ENUM.get(int(dtype))
        if row is None:
            raise InvalidArgumentError(f"DataType {int(dtype)} cannot be stored in a checkpoint")
        return row
    if isinstance(dtype, str):
        name = dtype[3:].lower() if dtype.startswith("DT_") else dtype
        name = _ALIASES.get(name, name)
        if name in _BY_NAME:
            return _BY_NAME[name]
        if dtype.startswith("DT_") and dtype in DataType.__members__:
            return info(DataType[dtype])
    return from_numpy(dtype)


def _lookup_numpy(np_dtype: np.dtype[Any]) -> DTypeInfo | None:
    row = _BY_NUMPY.get(np_dtype.newbyteorder("=")) if np_dtype.byteorder in "<>" else None
    return row or _BY_NUMPY.get(np_dtype)


def from_numpy(dtype: Any) -> DTypeInfo:
    """The TF dtype of a NumPy dtype; bytes/str/object arrays are ``DT_STRING``."""
    try:
        np_dtype = np.dtype(dtype)
    except TypeError as exc:
        if not isinstance(dtype, str) or _ML_INDEXED:
            raise InvalidArgumentError(f"not a dtype: {dtype!r}") from exc
        _ml_dtypes()  # its names ("bfloat16") mean something to NumPy once it is imported
        return from_numpy(dtype)
    if np_dtype.kind in ("O", "S", "U"):  # object arrays are strings, never variants
        return _BY_ENUM[DataType.DT_STRING]
    row = _lookup_numpy(np_dtype)
    if row is None and not _ML_INDEXED and "ml_dtypes" in sys.modules:
        _ml_dtypes()  # a dtype of ml_dtypes' can only come from an imported ml_dtypes
        row = _lookup_numpy(np_dtype)
    if row is None:
        raise InvalidArgumentError(f"NumPy dtype {np_dtype} has no TensorFlow counterpart")
    return row

"""Hypothesis strategies for ``SaveV2`` calls, and the TensorFlow side of the cross-checks.

A drawn :class:`SaveCall` is one ``SaveV2`` call: each :class:`Tensor` in it
is stored whole (spec ``""``, or a spec that spells out the whole tensor,
which TF stores as a plain entry too) or cut into 2-4 slices, and the pieces
of all tensors are passed in a shuffled order, which is the data-file order.
Values are random bit patterns compared as bytes, so NaN payloads, ``-0``
and subnormals have to survive; sub-byte types (bool, int4, float4...) only
get bit patterns with their unused high bits clear.

This module imports TensorFlow; test modules import it only after
``pytest.importorskip("tensorflow")``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
from hypothesis import strategies as st

import dtckpt
from dtckpt.dtypes import info
from tests.conftest import assert_same_array

# Every dtype tf.raw_ops.SaveV2 accepts in TF 2.21 (all of them dtckpt writes too).
SAVE_DTYPES = (
    "float16", "bfloat16", "float32", "float64",
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "bool", "complex64", "complex128", "string",
    "float8_e5m2", "float8_e4m3fn", "float8_e4m3fnuz", "float8_e4m3b11fnuz", "float8_e5m2fnuz",
    "float4_e2m1fn", "int4", "uint4", "int2", "uint2",
    "qint8", "quint8", "qint16", "quint16", "qint32",
)  # fmt: skip

# The dtypes TF 2.21's BundleReader can cut and paste, so the only ones a
# partitioned tensor may use if TF is to read it back (test_tf_reslice_set
# checks this list against TF itself).
TF_RESLICES = frozenset({
    "float32", "float64", "int32", "uint8", "int16", "int8", "complex64", "complex128",
    "int64", "bool", "bfloat16", "qint8", "quint8", "qint32", "int4", "uint4",
})  # fmt: skip

# Types narrower than their byte: only these low bits are meaningful.
_VALUE_BITS = {"bool": 1, "int4": 4, "uint4": 4, "float4_e2m1fn": 4, "int2": 2, "uint2": 2}

Box = tuple[tuple[int, int], ...]
"""Concrete ``(start, length)`` per dimension."""


@dataclass(frozen=True)
class Tensor:
    """One named tensor of a ``SaveV2`` call, stored whole or as slices."""

    name: str
    dtype: str
    value: np.ndarray
    specs: tuple[str, ...]  # one shape_and_slice per stored piece
    boxes: tuple[Box, ...]  # the box each piece covers
    request: Box | None  # a sub-slice to restore (None for scalars)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.value.shape)

    def piece(self, i: int) -> np.ndarray:
        return cut(self.value, self.boxes[i])

    @property
    def request_spec(self) -> str:
        assert self.request is not None
        return shape_and_slice(self.shape, self.request)

    @property
    def expected_request(self) -> np.ndarray:
        assert self.request is not None
        return cut(self.value, self.request)

    @property
    def tf_can_reslice(self) -> bool:
        return self.dtype in TF_RESLICES


@dataclass(frozen=True)
class SaveCall:
    """The arguments of one ``SaveV2`` call, pieces in data-file order."""

    tensors: tuple[Tensor, ...]
    order: tuple[tuple[int, int], ...]  # (tensor index, piece index)

    @property
    def names(self) -> list[str]:
        return [self.tensors[t].name for t, _ in self.order]

    @property
    def specs(self) -> list[str]:
        return [self.tensors[t].specs[p] for t, p in self.order]

    @property
    def values(self) -> list[np.ndarray]:
        return [self.tensors[t].piece(p) for t, p in self.order]

    @property
    def dtypes(self) -> list[str]:
        return [self.tensors[t].dtype for t, _ in self.order]


def cut(value: np.ndarray, box: Box) -> np.ndarray:
    return value[tuple(slice(s, s + n) for s, n in box)]


def shape_and_slice(shape: Sequence[int], box: Box, *, spell_full: Sequence[bool] = ()) -> str:
    """``"6 4 0,3:-"``: full extents as ``-`` unless ``spell_full`` asks for ``0,dim``.

    A zero-sized dimension is always ``-``: TF rejects a zero length.
    """
    items = []
    for i, ((start, length), dim) in enumerate(zip(box, shape)):
        whole = start == 0 and length == dim
        spell = i < len(spell_full) and spell_full[i]
        items.append("-" if whole and (dim == 0 or not spell) else f"{start},{length}")
    return " ".join(str(d) for d in shape) + " " + ":".join(items)


# -- strategies ---------------------------------------------------------------
_NAME_CHARS = st.one_of(
    st.sampled_from("/._- "),
    st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")),
)
tensor_names = st.text(_NAME_CHARS, min_size=1, max_size=16)


def _random_bytes(length: int, seed: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, length, dtype=np.uint8).tobytes()


@st.composite
def values(draw: st.DrawFn, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    """Random bit patterns (or one pattern repeated) of ``dtype``, as dtckpt returns them."""
    row = info(dtype)
    count = math.prod(shape)
    if row.is_string:
        element = st.one_of(
            st.binary(max_size=6),
            st.binary(min_size=125, max_size=130),  # lengths around the 1-2 byte varint edge
            st.builds(_random_bytes, st.integers(16380, 16390), st.integers(0, 2**32 - 1)),
        )
        items = draw(st.lists(element, min_size=count, max_size=count))
        out = np.empty(count, dtype=object)
        out[:] = items
        return out.reshape(shape)
    itemsize = row.numpy.itemsize
    if draw(st.booleans()):
        seed = draw(st.integers(0, 2**32 - 1))
        raw = np.random.default_rng(seed).integers(0, 256, count * itemsize, dtype=np.uint8)
    else:
        word = draw(st.binary(min_size=itemsize, max_size=itemsize))
        raw = np.frombuffer(word * count, dtype=np.uint8).copy()
    bits = _VALUE_BITS.get(dtype)
    if bits:
        raw &= (1 << bits) - 1
    return raw.view(row.numpy).reshape(shape)


@st.composite
def shapes(draw: st.DrawFn, *, min_rank: int, max_dim: int) -> tuple[int, ...]:
    return tuple(draw(st.lists(st.integers(0, max_dim), min_size=min_rank, max_size=4)))


@st.composite
def partitions(draw: st.DrawFn, shape: tuple[int, ...]) -> list[Box]:
    """2-4 disjoint boxes covering ``shape``, made by repeatedly cutting one box in two."""
    boxes: list[Box] = [tuple((0, d) for d in shape)]
    target = draw(st.integers(2, 4))
    while len(boxes) < target:
        cuttable = [(i, a) for i, box in enumerate(boxes) for a, (_, n) in enumerate(box) if n >= 2]
        if not cuttable:
            break
        i, axis = draw(st.sampled_from(cuttable))
        box = boxes.pop(i)
        start, length = box[axis]
        at = draw(st.integers(1, length - 1))
        left = box[:axis] + ((start, at),) + box[axis + 1 :]
        right = box[:axis] + ((start + at, length - at),) + box[axis + 1 :]
        boxes[i:i] = [left, right]
    return boxes


@st.composite
def sub_boxes(draw: st.DrawFn, shape: tuple[int, ...]) -> Box:
    box = []
    for dim in shape:
        if dim == 0 or draw(st.booleans()):
            box.append((0, dim))
        else:
            start = draw(st.integers(0, dim - 1))
            box.append((start, draw(st.integers(1, dim - start))))
    return tuple(box)


@st.composite
def tensors(
    draw: st.DrawFn, name: str, *, dtypes: Sequence[str] = SAVE_DTYPES, sliced: bool | None = None
) -> Tensor:
    dtype = draw(st.sampled_from(list(dtypes)))
    if sliced is None:
        sliced = dtype in TF_RESLICES and draw(st.booleans())
    max_dim = 3 if dtype == "string" else 4
    if sliced:
        shape = list(draw(shapes(min_rank=1, max_dim=max_dim)))
        axis = draw(st.integers(0, len(shape) - 1))
        shape[axis] = draw(st.integers(2, max_dim))  # something to cut along
        shape = tuple(shape)
        boxes = draw(partitions(shape))
    else:
        shape = draw(shapes(min_rank=0, max_dim=max_dim))
        boxes = [tuple((0, d) for d in shape)]
    value = draw(values(dtype, shape))
    rank = len(shape)
    specs = []
    for box in boxes:
        if not sliced and (rank == 0 or draw(st.booleans())):
            specs.append("")
        else:
            spell = draw(st.lists(st.booleans(), min_size=rank, max_size=rank))
            specs.append(shape_and_slice(shape, box, spell_full=spell))
    request = draw(sub_boxes(shape)) if rank else None
    return Tensor(name, dtype, value, tuple(specs), tuple(boxes), request)


@st.composite
def save_calls(draw: st.DrawFn, *, max_tensors: int = 5) -> SaveCall:
    names = draw(st.lists(tensor_names, min_size=1, max_size=max_tensors, unique=True))
    drawn = tuple(draw(tensors(name)) for name in names)
    pieces = [(t, p) for t, tensor in enumerate(drawn) for p in range(len(tensor.specs))]
    return SaveCall(drawn, tuple(draw(st.permutations(pieces))))


# -- TensorFlow adapters --------------------------------------------------------
def to_tf(value: np.ndarray, dtype: str) -> tf.Tensor:
    """A TF tensor with exactly ``value``'s bytes (quantized types included)."""
    tf_dtype = tf.dtypes.as_dtype(dtype)
    if dtype == "string":
        return tf.constant(value, dtype=tf.string)
    raw = np.ascontiguousarray(value).tobytes()
    array = np.frombuffer(raw, dtype=tf_dtype.as_numpy_dtype).reshape(value.shape)
    return tf.constant(array, dtype=tf_dtype)


def tf_save(prefix: str, call: SaveCall) -> None:
    tf.raw_ops.SaveV2(
        prefix=prefix,
        tensor_names=call.names,
        shape_and_slices=call.specs,
        tensors=[to_tf(v, d) for v, d in zip(call.values, call.dtypes)],
    )


def dtckpt_save(prefix: str, call: SaveCall) -> None:
    dtckpt.save_v2(prefix, call.names, call.specs, call.values, dtypes=call.dtypes)


def tf_restore(
    prefix: str, names: list[str], specs: list[str], dtypes: list[str]
) -> list[np.ndarray]:
    out = tf.raw_ops.RestoreV2(
        prefix=prefix,
        tensor_names=names,
        shape_and_slices=specs,
        dtypes=[tf.dtypes.as_dtype(d) for d in dtypes],
    )
    return [t.numpy() for t in out]


def assert_tf_value(actual: object, expected: np.ndarray, what: str) -> None:
    """What TF hands back equals ``expected``: same shape, same bytes.

    TF returns plain integer arrays for the quantized types and ``bytes``
    for a scalar string, so only the element size is compared, not the dtype.
    """
    if isinstance(actual, bytes):
        actual = np.array(actual, dtype=object)
    array = np.asarray(actual)
    assert array.shape == expected.shape, f"{what}: shape {array.shape} != {expected.shape}"
    if expected.dtype == object:
        got = [bytes(x) for x in array.reshape(-1)]
        assert got == list(expected.reshape(-1)), what
    else:
        assert array.dtype.itemsize == expected.dtype.itemsize, f"{what}: {array.dtype}"
        assert np.ascontiguousarray(array).tobytes() == expected.tobytes(), what


def assert_dtckpt_value(actual: np.ndarray, expected: np.ndarray, what: str) -> None:
    """What dtckpt hands back equals ``expected``, dtype included."""
    assert_same_array(actual, expected, what)


def files_under(root: str) -> dict[str, bytes]:
    """Every file below ``root`` by relative path, with its bytes."""
    out = {}
    for directory, _, names in os.walk(root):
        for name in names:
            path = os.path.join(directory, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = f.read()
    return out

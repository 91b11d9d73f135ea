"""Slices of tensors: the ``shape_and_slice`` text syntax and box arithmetic.

A slice names one box of a tensor, one extent per dimension (rule F-SL-1)::

    "5 4 -:1,3"     shape [5, 4]; dim 0 whole ("-"), dim 1 from 1, length 3
    ""              the whole tensor, unsliced

In memory a slice is a tuple of ``(start, length)`` pairs where a length of
``FULL_LENGTH`` (-1) means "the whole dimension", exactly as TensorFlow's
``TensorSlice`` keeps it. :func:`resolve` turns such a slice into concrete
extents against a shape. Source: ``tensorflow/core/framework/tensor_slice.cc``
and ``tensorflow/core/util/saved_tensor_slice_util.cc`` (``ParseShapeAndSlice``).
"""

from __future__ import annotations

import re

from ..errors import InvalidArgumentError
from .messages import FULL_LENGTH, TensorSlice

__all__ = [
    "parse_slice",
    "format_slice",
    "parse_shape_and_slice",
    "format_shape_and_slice",
    "resolve",
    "is_full",
    "intersect",
    "full_slice",
]


# TF reads numbers with ``safe_strto64``: optional sign, ASCII digits, ASCII
# whitespace around; ``int()`` would also take "1_0" and non-ASCII digits.
_INT = re.compile(r"[ \t\n\v\f\r]*([+-]?[0-9]+)[ \t\n\v\f\r]*", re.ASCII)
_INT64_MAX = (1 << 63) - 1
_INT64_DIGITS = len(str(_INT64_MAX))


def _parse_int(text: str) -> int | None:
    match = _INT.fullmatch(text)
    if match is None:
        return None
    number = match.group(1)
    digits = number.lstrip("+-").lstrip("0") or "0"
    if len(digits) > _INT64_DIGITS:  # rule H-BD-6: out of range, and too long for int()
        return None
    value = -int(digits) if number.startswith("-") else int(digits)
    return value if -_INT64_MAX - 1 <= value <= _INT64_MAX else None


def parse_slice(text: str, rank: int | None = None) -> TensorSlice:
    """Parse ``"-:0,2"`` into ``((0, -1), (0, 2))`` (TF's ``TensorSlice::Parse``).

    As in TF, empty items (``"0,2:"``, ``"0,2,"``) are skipped.
    """
    extents = []
    for item in (i for i in text.split(":") if i):
        if item == "-":
            extents.append((0, FULL_LENGTH))
            continue
        parts = [p for p in item.split(",") if p]
        numbers = [_parse_int(p) for p in parts]
        if len(parts) != 2 or numbers[0] is None or numbers[1] is None:
            raise InvalidArgumentError(
                f"slice item {item!r} in {text!r} is neither '-' nor 'start,length'"
            )
        start, length = numbers[0], numbers[1]
        if start < 0 or length <= 0:
            raise InvalidArgumentError(
                f"slice item {item!r} in {text!r} needs start >= 0 and length > 0"
            )
        extents.append((start, length))
    if rank is not None and len(extents) != rank:
        raise InvalidArgumentError(f"slice {text!r} has rank {len(extents)}, expected {rank}")
    return tuple(extents)


def format_slice(tensor_slice: TensorSlice) -> str:
    return ":".join(
        "-" if length == FULL_LENGTH else f"{start},{length}" for start, length in tensor_slice
    )


def parse_shape_and_slice(text: str) -> tuple[tuple[int, ...], TensorSlice] | None:
    """Parse a ``SaveV2``/``RestoreV2`` spec; ``None`` for ``""`` (whole tensor).

    The slice is checked to lie inside the shape.
    """
    if text == "":
        return None
    tokens = text.split(" ")
    if len(tokens) < 2:
        raise InvalidArgumentError(
            f"shape_and_slice {text!r}: expected 'dim0 dim1 ... slice' (at least one space)"
        )
    dims = [_parse_int(t) for t in tokens[:-1]]
    if any(d is None for d in dims):
        raise InvalidArgumentError(f"Non numerical dimension in shape_and_slice: {text}")
    shape = tuple(d for d in dims if d is not None)
    if any(d < 0 for d in shape):
        raise InvalidArgumentError(f"shape_and_slice {text!r}: negative dimension")
    tensor_slice = parse_slice(tokens[-1], len(shape))
    resolve(tensor_slice, shape, what=f"shape_and_slice {text!r}")
    return shape, tensor_slice


def format_shape_and_slice(shape: tuple[int, ...], tensor_slice: TensorSlice) -> str:
    return " ".join(str(d) for d in shape) + " " + format_slice(tensor_slice)


def full_slice(rank: int) -> TensorSlice:
    return ((0, FULL_LENGTH),) * rank


def resolve(
    tensor_slice: TensorSlice, shape: tuple[int, ...], *, what: str = "slice"
) -> tuple[tuple[int, int], ...]:
    """Concrete ``(start, length)`` per dimension; raises if it leaves the shape."""
    if len(tensor_slice) != len(shape):
        raise InvalidArgumentError(
            f"{what}: rank {len(tensor_slice)} does not match shape {list(shape)}"
        )
    out = []
    for dim, ((start, length), size) in enumerate(zip(tensor_slice, shape, strict=True)):
        if length == FULL_LENGTH:
            if start != 0:
                raise InvalidArgumentError(f"{what}: full extent with start {start} in dim {dim}")
            out.append((0, size))
            continue
        if start < 0 or length < 0 or start + length > size:
            raise InvalidArgumentError(
                f"{what}: extent {start},{length} of dim {dim} exceeds size {size}"
            )
        out.append((start, length))
    return tuple(out)


def is_full(tensor_slice: TensorSlice, shape: tuple[int, ...]) -> bool:
    """True when the slice covers the whole tensor, however it is spelled."""
    return all(
        length == FULL_LENGTH or (start == 0 and length == size)
        for (start, length), size in zip(tensor_slice, shape, strict=True)
    )


def intersect(
    a: tuple[tuple[int, int], ...], b: tuple[tuple[int, int], ...]
) -> tuple[tuple[int, int], ...] | None:
    """The overlap of two concrete boxes, or ``None`` if they share no element."""
    out = []
    for (sa, la), (sb, lb) in zip(a, b, strict=True):
        lo = max(sa, sb)
        hi = min(sa + la, sb + lb)
        if hi <= lo:
            return None
        out.append((lo, hi - lo))
    return tuple(out)

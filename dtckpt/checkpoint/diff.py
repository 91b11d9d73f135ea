"""Comparing two checkpoints tensor by tensor: :func:`diff_checkpoints` (rules V-DF-*).

::

    A: load_checkpoint(a)        B: load_checkpoint(b)
         keys  ─────────┬─────────  keys
                        v
       only_in_a | only_in_b | shape_changed | dtype_changed | identical | equal | different
                        │
         same shape:    v  rows [0, r) [r, 2r) ... of dim 0, <= 64 MiB per side at a time
                     upcast (float64 / complex128 / exact integers), then
                     differing, max_abs, max_rel, NaN and Inf counts

Each tensor is read whole when it is small and by ranges of rows when it is
large, so that two 4 GiB tensors are compared in a few hundred MiB of memory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..dtypes import DataType, info
from ..format.bundle_reader import BundleReader
from ..format.messages import FULL_LENGTH
from ..format.naming import key_str
from ..progress import NULL_PROGRESS, Progress
from .reader import CheckpointReader, load_checkpoint

__all__ = [
    "TensorDiff",
    "diff_checkpoints",
    "CHUNK_BYTES",
    "ONLY_IN_A",
    "ONLY_IN_B",
    "SHAPE_CHANGED",
    "DTYPE_CHANGED",
    "IDENTICAL",
    "EQUAL",
    "DIFFERENT",
    "SAME",
]

#: Bytes of one side's values, at compared width, read and compared at a time (rule V-DF-3).
CHUNK_BYTES = 64 << 20

# Statuses (rule V-DF-1).
ONLY_IN_A = "only_in_a"
ONLY_IN_B = "only_in_b"
SHAPE_CHANGED = "shape_changed"
DTYPE_CHANGED = "dtype_changed"
IDENTICAL = "identical"
EQUAL = "equal"
DIFFERENT = "different"
#: Statuses under which two checkpoints count as holding the same values.
SAME = frozenset({IDENTICAL, EQUAL})


@dataclass(frozen=True)
class TensorDiff:
    """How one tensor key compares between checkpoints A and B (rules V-DF-1, V-DF-2).

    ``dtype_*``/``shape_*`` are ``None`` on the side that lacks the key. The
    value fields are ``None`` when values were not compared; ``max_abs`` is an
    ``int`` for boolean and integer tensors, and ``max_abs``/``max_rel`` stay
    ``None`` for strings and variants, which compare by equality only (a variant's
    ``differing`` is ``None`` when its stored bytes differ: its elements are not decoded).
    """

    key: str
    status: str
    dtype_a: str | None
    dtype_b: str | None
    shape_a: tuple[int, ...] | None
    shape_b: tuple[int, ...] | None
    differing: int | None = None
    max_abs: int | float | None = None
    max_rel: float | None = None
    nan_a: int | None = None
    nan_b: int | None = None
    inf_a: int | None = None
    inf_b: int | None = None


def diff_checkpoints(
    a: str | os.PathLike[str] | CheckpointReader,
    b: str | os.PathLike[str] | CheckpointReader,
    *,
    progress: Progress | None = None,
    chunk_bytes: int = CHUNK_BYTES,
) -> list[TensorDiff]:
    """One :class:`TensorDiff` per key of either checkpoint, in key order.

    ``a`` and ``b`` are anything :func:`load_checkpoint` opens, or open readers
    (left open). Damaged tensors raise the reader's errors. ``progress`` counts
    the bytes of values read on both sides.
    """
    reader_a = a if isinstance(a, CheckpointReader) else load_checkpoint(os.fspath(a))
    try:
        reader_b = b if isinstance(b, CheckpointReader) else load_checkpoint(os.fspath(b))
        try:
            return _Differ(reader_a.bundle, reader_b.bundle, progress, chunk_bytes).run()
        finally:
            if reader_b is not b:
                reader_b.close()
    finally:
        if reader_a is not a:
            reader_a.close()


class _Differ:
    def __init__(
        self, a: BundleReader, b: BundleReader, progress: Progress | None, chunk_bytes: int
    ) -> None:
        self.a, self.b = a, b
        self.progress = progress or NULL_PROGRESS
        self.chunk_bytes = max(1, chunk_bytes)
        self.advanced = 0  # bytes reported for the tensor being compared

    def run(self) -> list[TensorDiff]:
        shapes_a, shapes_b = self.a.index.shape_map(), self.b.index.shape_map()
        dtypes_a, dtypes_b = self.a.index.dtype_map(), self.b.index.dtype_map()
        keys = sorted(set(shapes_a) | set(shapes_b))
        common = [k for k in keys if k in shapes_a and k in shapes_b]
        expected = {k: self.stored_bytes(self.a, k) + self.stored_bytes(self.b, k) for k in common}
        self.progress.start(sum(expected.values()), "diff", "B")
        out = []
        try:
            for key in keys:
                sa = tuple(shapes_a[key]) if key in shapes_a else None
                sb = tuple(shapes_b[key]) if key in shapes_b else None
                self.advanced = 0
                out.append(self.compare(key, dtypes_a.get(key), dtypes_b.get(key), sa, sb))
                # Tensors not read (other shapes...) or not read by the byte (strings)
                # count as done once compared.
                rest = expected.get(key, 0) - self.advanced
                if rest > 0:
                    self.progress.advance(rest)
        finally:
            self.progress.finish()
        return out

    def advance(self, amount: int) -> None:
        self.advanced += amount
        self.progress.advance(amount)

    @staticmethod
    def stored_bytes(bundle: BundleReader, key: bytes) -> int:
        entry = bundle.entry(key)
        row = info(entry.dtype)
        if row.is_variable_width:
            return entry.size
        return _numel(entry.shape) * row.itemsize

    def compare(
        self,
        key: bytes,
        dtype_a: int | None,
        dtype_b: int | None,
        shape_a: tuple[int, ...] | None,
        shape_b: tuple[int, ...] | None,
    ) -> TensorDiff:
        name_a = None if dtype_a is None else info(dtype_a).name
        name_b = None if dtype_b is None else info(dtype_b).name
        head = (key_str(key), name_a, name_b, shape_a, shape_b)
        if dtype_a is None or shape_a is None:
            return TensorDiff(key_str(key), ONLY_IN_B, *head[1:])
        if dtype_b is None or shape_b is None:
            return TensorDiff(key_str(key), ONLY_IN_A, *head[1:])
        if shape_a != shape_b:
            return TensorDiff(key_str(key), SHAPE_CHANGED, *head[1:])
        domain = _domain(dtype_a, dtype_b)
        if domain is None:  # strings against numbers, variants against anything else
            return TensorDiff(key_str(key), DTYPE_CHANGED, *head[1:])
        if domain == "variant":
            same = self.same_stored_bytes(key)
            status, differing = (IDENTICAL, 0) if same else (DIFFERENT, None)
            return TensorDiff(key_str(key), status, *head[1:], differing, None, None, 0, 0, 0, 0)
        stats = _Stats()
        for chunk_a, chunk_b in self.chunk_pairs(key, shape_a, domain, dtype_a, dtype_b):
            stats.add(chunk_a, chunk_b, domain, same_dtype=dtype_a == dtype_b)
            if domain != "string":  # object arrays' nbytes count pointers, not stored bytes
                self.advance(chunk_a.nbytes + chunk_b.nbytes)
        if dtype_a != dtype_b:
            status = DTYPE_CHANGED
        elif stats.bits_equal:
            status = IDENTICAL
        else:
            status = EQUAL if stats.differing == 0 else DIFFERENT
        return TensorDiff(key_str(key), status, *head[1:], **stats.fields(domain))

    def same_stored_bytes(self, key: bytes) -> bool:
        """Whether two entries hold the same bytes, compared a chunk at a time, unverified:
        how variants compare, since dtckpt does not decode them (rule V-DF-2)."""
        a, b = self.a.entry(key), self.b.entry(key)
        if a.slices or b.slices or a.size != b.size:
            return False
        n = min(self.chunk_bytes, max(a.size, 1))
        piece_a, piece_b = np.empty(n, dtype=np.uint8), np.empty(n, dtype=np.uint8)
        for done in range(0, a.size, n):
            m = min(n, a.size - done)
            self.a.read_shard_into(a.shard_id, a.offset + done, piece_a[:m])
            self.b.read_shard_into(b.shard_id, b.offset + done, piece_b[:m])
            self.advance(2 * m)
            if not np.array_equal(piece_a[:m], piece_b[:m]):
                return False
        return True

    def chunk_pairs(
        self, key: bytes, shape: tuple[int, ...], domain: str, dtype_a: int, dtype_b: int
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Matching pieces of both sides, bounded by ``chunk_bytes`` (rule V-DF-3)."""
        width = max(info(dtype_a).itemsize, info(dtype_b).itemsize, _WIDTH.get(domain, 1))
        numel = _numel(shape)
        if domain == "string" or not shape or numel * width <= self.chunk_bytes:
            yield self.a.read(key), self.b.read(key)
            return
        row_width = _numel(shape[1:]) * width
        rows = max(1, self.chunk_bytes // max(row_width, 1))
        rest = ((0, FULL_LENGTH),) * (len(shape) - 1)
        for start in range(0, shape[0], rows):
            box = ((start, min(rows, shape[0] - start)),) + rest
            yield self.a.read_slice(key, box), self.b.read_slice(key, box)


#: Bytes per element of the compared values, by domain.
_WIDTH = {"complex": 16, "float": 8, "int": 8}


def _numel(shape: tuple[int, ...] | list[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _kind(dtype: int) -> str:
    name = info(dtype).name
    if dtype == DataType.DT_STRING:
        return "string"
    if dtype == DataType.DT_VARIANT:
        return "variant"
    if name.startswith("complex"):
        return "complex"
    if name.startswith(("float", "bfloat")):
        return "float"
    return "int"  # bool, int*, uint*, and the quantized types


def _domain(dtype_a: int, dtype_b: int) -> str | None:
    """Where two dtypes' values are compared (rule V-DF-2), or ``None`` if they cannot be."""
    kinds = {_kind(dtype_a), _kind(dtype_b)}
    if kinds & {"string", "variant"}:
        return kinds.pop() if len(kinds) == 1 else None
    for domain in ("complex", "float"):
        if domain in kinds:
            return domain
    return "int"


class _Stats:
    """Running totals over the chunks of one tensor (rule V-DF-2)."""

    def __init__(self) -> None:
        self.bits_equal = True
        self.differing = 0
        self.max_abs: int | float = 0
        self.max_rel = 0.0
        self.nan = [0, 0]
        self.inf = [0, 0]

    def fields(self, domain: str) -> dict[str, Any]:
        magnitudes = domain != "string"
        max_abs = self.max_abs if domain == "int" else float(self.max_abs)
        return {
            "differing": self.differing,
            "max_abs": max_abs if magnitudes else None,
            "max_rel": self.max_rel if magnitudes else None,
            "nan_a": self.nan[0],
            "nan_b": self.nan[1],
            "inf_a": self.inf[0],
            "inf_b": self.inf[1],
        }

    def add(self, a: np.ndarray, b: np.ndarray, domain: str, *, same_dtype: bool) -> None:
        if domain == "string":
            self.add_equality(a, b)
            return
        if same_dtype and self.bits_equal:
            self.bits_equal = _same_bytes(a, b)
            if self.bits_equal:
                self.count_special(a, b, domain)
                return
        self.bits_equal = False
        if domain == "int":
            self.add_integers(a, b)
        else:
            self.add_inexact(a, b, domain)

    def add_equality(self, a: np.ndarray, b: np.ndarray) -> None:
        differ = int(np.count_nonzero(a.reshape(-1) != b.reshape(-1)))
        self.differing += differ
        self.bits_equal = self.bits_equal and differ == 0

    def count_special(self, a: np.ndarray, b: np.ndarray, domain: str) -> None:
        if domain == "int":
            return
        for side, values in enumerate((a, b)):
            wide = _widen(values, domain)
            self.nan[side] += int(np.count_nonzero(np.isnan(wide)))
            self.inf[side] += int(np.count_nonzero(np.isinf(wide)))

    def add_integers(self, a: np.ndarray, b: np.ndarray) -> None:
        diff, magnitude = _exact_difference(a.reshape(-1), b.reshape(-1))
        if diff.size == 0:
            return
        self.differing += int(np.count_nonzero(diff))
        self.max_abs = max(int(self.max_abs), int(diff.max()))
        nonzero = diff != 0
        if nonzero.any():
            rel = diff[nonzero].astype(np.float64) / magnitude[nonzero]
            self.max_rel = max(self.max_rel, float(rel.max()))

    def add_inexact(self, a: np.ndarray, b: np.ndarray, domain: str) -> None:
        x = _widen(a.reshape(-1), domain)
        y = _widen(b.reshape(-1), domain)
        nan_x, nan_y = np.isnan(x), np.isnan(y)
        self.nan[0] += int(np.count_nonzero(nan_x))
        self.nan[1] += int(np.count_nonzero(nan_y))
        self.inf[0] += int(np.count_nonzero(np.isinf(x)))
        self.inf[1] += int(np.count_nonzero(np.isinf(y)))
        equal = (x == y) | (nan_x & nan_y)
        self.differing += int(x.size - np.count_nonzero(equal))
        valid = ~equal & ~nan_x & ~nan_y
        if not valid.any():
            return
        x, y = x[valid], y[valid]
        with np.errstate(invalid="ignore", over="ignore"):
            diff = _gap(x, y, domain)
            scale = np.maximum(np.abs(x), np.abs(y))
            finite = np.isfinite(scale)
            unit = np.where(finite, scale, 1.0)
            # Scaled first, so that 1e308 against -1e308 gives 2, not inf / 1e308.
            rel = _gap(x / unit, y / unit, domain)
        # An infinite side: a finite gap between infinite values counts 0 (complex values
        # with one equal infinite component), an infinity against a finite value 1, two
        # infinities 2: the limits of the formula.
        both = np.isinf(x) & np.isinf(y)
        rel = np.where(finite, rel, np.where(np.isinf(diff), np.where(both, 2.0, 1.0), 0.0))
        self.max_abs = max(float(self.max_abs), float(diff.max()))
        self.max_rel = max(self.max_rel, float(rel.max()))


def _widen(values: np.ndarray, domain: str) -> np.ndarray:
    """float64 or complex128 values (rule V-DF-2); NaNs of the float8 types cast quietly."""
    with np.errstate(invalid="ignore"):
        return values.astype(np.complex128 if domain == "complex" else np.float64)


def _gap(x: np.ndarray, y: np.ndarray, domain: str) -> np.ndarray:
    """``|x - y|``; for complex values per component, so that an equal infinite
    component contributes 0 instead of ``inf - inf``."""
    if domain != "complex":
        gap: np.ndarray = np.abs(x - y)
        return gap
    real = np.where(x.real == y.real, 0.0, x.real - y.real)
    imag = np.where(x.imag == y.imag, 0.0, x.imag - y.imag)
    hyp: np.ndarray = np.hypot(real, imag)
    return hyp


def _same_bytes(a: np.ndarray, b: np.ndarray) -> bool:
    x = np.ascontiguousarray(a).reshape(-1).view(np.uint8)
    y = np.ascontiguousarray(b).reshape(-1).view(np.uint8)
    return bool(np.array_equal(x, y))


def _exact_difference(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``|a - b|`` as exact unsigned integers, and ``max(|a|, |b|)`` as float64 (rule V-DF-2).

    Two's-complement subtraction of the larger minus the smaller, done in
    uint64, is exact for any two 64-bit integers of one signedness: their
    distance is below 2**64. A uint64 side against a signed one goes through
    Python ints (an object array), where nothing can overflow.
    """
    unsigned = a.dtype == np.uint64 or b.dtype == np.uint64
    if unsigned and a.dtype != b.dtype:
        x, y = _python_ints(a), _python_ints(b)
        return np.abs(x - y), np.maximum(np.abs(x), np.abs(y)).astype(np.float64)
    if unsigned:
        x, y = a.astype(np.uint64), b.astype(np.uint64)
        diff = np.where(x >= y, x - y, y - x)
    else:
        x, y = a.astype(np.int64), b.astype(np.int64)
        ux, uy = x.view(np.uint64), y.view(np.uint64)
        diff = np.where(x >= y, ux - uy, uy - ux)
    scale = np.maximum(np.abs(x.astype(np.float64)), np.abs(y.astype(np.float64)))
    return diff, scale


def _python_ints(values: np.ndarray) -> np.ndarray:
    wide = values if values.dtype == np.uint64 else values.astype(np.int64)
    return wide.astype(object)

"""Tensors on their way between formats: streams of C-order chunks (rules I-CV-3, I-CV-4).

::

    read_checkpoint / read_npz / read_safetensors          write_checkpoint / write_npz / ...
        TensorSource  ──tensors──>  TensorStream(key, dtype, shape, nbytes)
                                        .chunks(): [ chunk 0 ][ chunk 1 ] ... [ chunk k ]
                                                   1-D arrays of the TF dtype, C order,
                                                   each at most CHUNK_BYTES

A reader never loads a fixed-width tensor whole: it hands out a
:class:`TensorStream` whose :meth:`~TensorStream.chunks` reads the next piece
only when asked, and a writer copies piece by piece, so converting a
checkpoint larger than memory holds at most a few chunks at a time. String
tensors have no fixed row size and arrive as one chunk (an object array of
``bytes``).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from ..dtypes import DTypeInfo
from ..errors import CheckpointError
from ..progress import NULL_PROGRESS, Progress
from ..storage.staging import output_any
from ..storage.urls import is_url

__all__ = [
    "CHUNK_BYTES",
    "OBJECT_GRAPH_KEY",
    "TensorStream",
    "TensorSource",
    "ConvertReport",
    "Unsupported",
    "select_tensors",
    "counted",
    "value_bytes",
    "chunk_elements",
    "row_boxes",
    "atomic_path",
]

#: Rule I-CV-4: the most bytes of one tensor a reader hands out at once.
#: Read at call time, so tests can make it small to exercise many chunks.
CHUNK_BYTES = 8 << 20
#: The object graph of a ``tf.train.Checkpoint`` (a ``DT_STRING`` scalar).
OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"


def chunk_elements(itemsize: int) -> int:
    """How many elements of ``itemsize`` bytes make one chunk (at least one)."""
    return max(1, CHUNK_BYTES // max(itemsize, 1))


def row_boxes(
    shape: tuple[int, ...], itemsize: int, cuts: Iterable[int] = ()
) -> Iterator[tuple[tuple[int, int], ...]]:
    """Boxes that tile ``shape`` in C order, each one contiguous run of the tensor.

    Each box is ``(start, length)`` per dimension. It takes as many rows of
    dimension 0 as fit in :data:`CHUNK_BYTES`; when one row alone is larger,
    it takes a single index of the leading dimensions and a range of the
    first dimension whose sub-block fits. Along dimension 0 the boxes end at
    the ``cuts`` (the slices' row boundaries) where the budget allows, so that
    stored slices are read whole (rule I-TF-2). A tensor without elements
    gives no box.
    """
    if any(d == 0 for d in shape):
        return
    if not shape:
        yield ()
        return
    budget = CHUNK_BYTES
    k = 0
    inner = _volume(shape[1:]) * itemsize
    while k < len(shape) - 1 and inner > budget:
        k += 1
        inner = _volume(shape[k + 1 :]) * itemsize
    rows = max(1, budget // max(inner, 1))
    tail = tuple((0, d) for d in shape[k + 1 :])
    for prefix in itertools.product(*(range(d) for d in shape[:k])):
        head = tuple((i, 1) for i in prefix)
        for extent in _ranges(shape[k], rows, cuts if k == 0 else ()):
            yield head + (extent,) + tail


def _volume(shape: tuple[int, ...]) -> int:
    out = 1
    for d in shape:
        out *= d
    return out


def _ranges(size: int, rows: int, cuts: Iterable[int]) -> Iterator[tuple[int, int]]:
    """``[0, size)`` in ranges of at most ``rows``, ending on cut points where possible."""
    points = sorted({0, size, *(c for c in cuts if 0 < c < size)})
    start = 0
    i = 1
    while start < size:
        end = start
        while i < len(points) and points[i] - start <= rows:
            end = points[i]
            i += 1
        if end == start:  # the next cut is too far: split the run between cuts
            end = start + rows
        yield (start, end - start)
        start = end


@dataclass(frozen=True)
class TensorStream:
    """One tensor of a source: what it is, and a way to read it piece by piece.

    ``dtype`` is the TensorFlow dtype the tensor has (or will have in a
    checkpoint); ``nbytes`` the size of its values (elements times item size,
    or the total length of the elements of a string tensor, which a source
    may only estimate before reading).
    """

    key: str
    dtype: DTypeInfo
    shape: tuple[int, ...]
    nbytes: int
    open_chunks: Callable[[], Iterator[np.ndarray]] = field(repr=False, compare=False)

    @property
    def numel(self) -> int:
        out = 1
        for d in self.shape:
            out *= d
        return out

    def chunks(self) -> Iterator[np.ndarray]:
        """1-D arrays of ``dtype.numpy``, in C order; together they are the tensor."""
        return self.open_chunks()

    def read(self) -> np.ndarray:
        """The whole tensor in memory (for small tensors, tests and strings)."""
        pieces = list(self.chunks())
        if not pieces:
            return np.empty(self.shape, dtype=self.dtype.numpy)
        return np.concatenate(pieces).reshape(self.shape)


@dataclass(frozen=True)
class Unsupported:
    """A tensor the source cannot hand out, with the error that says why."""

    key: str
    error: CheckpointError


class TensorSource:
    """The tensors of one file or checkpoint, opened for streaming.

    ``tensors`` lists what can be read; ``unsupported`` what cannot (a
    variant tensor, a pickled object array...), kept apart so that a writer
    can refuse or skip them before it writes anything (rule I-CV-3).
    Close the source (or use it as a context manager) to release its files.
    """

    def __init__(
        self,
        format: str,
        path: str,
        tensors: Iterable[TensorStream],
        unsupported: Iterable[Unsupported] = (),
        closers: Iterable[Callable[[], None]] = (),
    ) -> None:
        self.format = format
        self.path = path
        self.tensors: tuple[TensorStream, ...] = tuple(tensors)
        self.unsupported: tuple[Unsupported, ...] = tuple(unsupported)
        self._closers = list(closers)

    def keys(self) -> list[str]:
        return [t.key for t in self.tensors]

    def __getitem__(self, key: str) -> TensorStream:
        for tensor in self.tensors:
            if tensor.key == key:
                return tensor
        raise KeyError(key)

    def close(self) -> None:
        while self._closers:
            self._closers.pop()()

    def __enter__(self) -> TensorSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class ConvertReport:
    """What a conversion did (rule I-CV-5).

    ``tensors`` counts the tensors carried over (the object graph included,
    wherever the target keeps it); ``bytes`` is the size of their values
    (elements times item size; for strings the total length of the
    elements), the same in both directions of a round trip; ``skipped``
    lists the keys left out because ``skip_unsupported`` was given.
    """

    tensors: int
    bytes: int
    source_format: str
    target_format: str
    skipped: tuple[str, ...] = ()


def select_tensors(
    source: TensorSource,
    check: Callable[[TensorStream], None],
    *,
    skip_unsupported: bool,
) -> tuple[list[TensorStream], tuple[str, ...]]:
    """The tensors a writer will write, and the keys it leaves out (rule I-CV-3).

    ``check`` raises a :class:`CheckpointError` for a tensor the target cannot
    hold. Without ``skip_unsupported`` the first such error (or the first
    tensor the source could not read) is raised, before anything is written.
    """
    skipped = [u.key for u in source.unsupported]
    if source.unsupported and not skip_unsupported:
        raise source.unsupported[0].error
    chosen = []
    for tensor in source.tensors:
        try:
            check(tensor)
        except CheckpointError as exc:
            if not skip_unsupported:
                raise exc.located(key=tensor.key) from None
            skipped.append(tensor.key)
            continue
        chosen.append(tensor)
    return chosen, tuple(sorted(skipped))


def counted(chunks: Iterable[np.ndarray], progress: Progress | None) -> Iterator[np.ndarray]:
    """Pass chunks through, telling ``progress`` how many bytes went by."""
    sink = progress or NULL_PROGRESS
    for chunk in chunks:
        yield chunk
        sink.advance(int(chunk.nbytes) if chunk.dtype != object else _string_bytes(chunk))


def _string_bytes(chunk: np.ndarray) -> int:
    return sum(len(item) for item in chunk.reshape(-1))


def value_bytes(tensor: TensorStream, value: np.ndarray | None = None) -> int:
    """The ``bytes`` a report counts for ``tensor`` (exact for strings once read)."""
    if value is not None and value.dtype == object:
        return _string_bytes(value)
    return tensor.nbytes


@contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """A temporary name next to ``path``, renamed onto it when the block succeeds.

    On an exception the temporary file is removed and ``path`` is untouched,
    so a failed conversion never leaves a half-written file (rule I-CV-3); the
    temporaries a killed conversion left are removed by the next one (rule S-TP-5).
    """
    if not is_url(path):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with output_any(path) as temporary:  # a URL: uploaded whole on success (S-SI-7)
        yield temporary

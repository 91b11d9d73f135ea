"""``DVariable``: a :class:`~dtckpt.Variable` valued by a :class:`DTensor` (rules D-VA-1, D-VA-2).

It behaves as TensorFlow's ``dtensor.DVariable``: ``read_value()`` and
``value()`` are DTensors with the variable's layout, ``assign``,
``assign_add`` and ``assign_sub`` keep that layout, and ``numpy()`` (or
``np.asarray``) assembles the whole value.

Saving writes one slice entry per distinct block, each by the lowest-numbered
device holding it (a replicated value is written whole, by device 0).
Restoring reads, for each distinct block of the variable's *own* layout, only
that block from the checkpoint, whatever layout or mesh wrote it.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..checkpoint.ownership import (
    attribute_unshared,
    item_unshared,
    owned_bytes,
    writable_in_place,
)
from ..checkpoint.plans import ValueRead, box_read
from ..checkpoint.variables import VARIABLE_VALUE_KEY, Variable
from ..dtypes import info, type_string
from ..errors import InvalidArgumentError
from ..format.bundle_reader import READ_SCRATCH, BundleReader
from ..mesh import Layout, device_box, local_offsets
from ..pools import io_threads, pool
from . import config
from .api import relayout
from .tensor import DTensor, as_array, to_dtensor

__all__ = ["DVariable", "plan_dtensor_reads", "read_dtensor"]

Box = tuple[tuple[int, int], ...]


class DVariable(Variable):
    """``DVariable(initial_value, name=None, dtype=None, trainable=True, *, layout=None)``.

    ``initial_value`` (or what it returns, when callable) is a DTensor, or any
    value together with ``layout``; a DTensor with another ``layout`` is an
    error, as in TensorFlow.
    """

    def __init__(
        self,
        initial_value: Any,
        name: str | None = None,
        dtype: Any = None,
        trainable: bool = True,
        *,
        layout: Layout | None = None,
        shape: Any = None,
    ) -> None:
        del shape  # TensorFlow uses it only to restore on creation
        if callable(initial_value):
            initial_value = initial_value()
        value = to_dtensor(initial_value)
        if value is not None:
            if dtype is not None and np.dtype(info(dtype).numpy) != value.dtype:
                raise InvalidArgumentError(
                    f"Tensor conversion requested dtype {info(dtype).name} for Tensor with dtype "
                    f"{info(value.dtype).name}"
                )
            if layout is not None and layout != value.layout:
                raise InvalidArgumentError(
                    "Conflicting layout are provided for initial value layout "
                    f"({value.layout}) and variable ({layout})."
                )
            value = _copy(value)
        elif layout is not None:
            value = relayout(as_array(initial_value, dtype), layout)
        else:
            raise InvalidArgumentError("Neither layout nor DTensor initial value are provided.")
        self._dvalue = value
        self._shared_name = "Variable" if name is None else str(name).split(":")[0]
        self._trainable = bool(trainable)
        self._slots = {}
        # Variable's own array is unused: every Variable method that reads it is overridden.
        self._value = np.empty((0,), dtype=value.dtype)

    @property
    def layout(self) -> Layout:
        return self._dvalue.layout

    @property
    def shape(self) -> tuple[int, ...]:
        return self._dvalue.shape

    @property
    def dtype(self) -> np.dtype[Any]:
        return self._dvalue.dtype

    # -- reading -----------------------------------------------------------------
    # A DVariable's value is a DTensor, not an array: TensorFlow's read_value() of a
    # DVariable is a DTensor too, so these overrides narrow nothing a caller relies on.
    def read_value(self) -> DTensor:  # type: ignore[override]
        """The current value as a DTensor with the variable's layout.

        Its components are read-only views: the variable's value never changes
        through them, and no data is copied.
        """
        return _frozen(self._dvalue)

    def value(self) -> DTensor:  # type: ignore[override]
        return self.read_value()

    def _read_dtensor(self) -> DTensor:
        return self.read_value()

    def numpy(self) -> np.ndarray:
        """The whole value, assembled from the devices' blocks."""
        return self._dvalue.numpy()

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        value = self._dvalue.numpy()
        return value.astype(dtype, copy=False) if dtype is not None else value

    # -- writing -----------------------------------------------------------------
    def assign(self, value: Any, use_locking: Any = None, name: Any = None) -> DVariable:
        """Replace the value, keeping the layout; the shape and dtype must stay the same."""
        del use_locking, name
        self._dvalue = self._coerce_value(value, copy=True)
        return self

    def assign_add(self, delta: Any, use_locking: Any = None, name: Any = None) -> DVariable:
        del use_locking, name
        return self._update(delta, operator.add)

    def assign_sub(self, delta: Any, use_locking: Any = None, name: Any = None) -> DVariable:
        del use_locking, name
        return self._update(delta, operator.sub)

    def _update(self, delta: Any, op: Callable[[Any, Any], Any]) -> DVariable:
        other = self._coerce_value(delta, copy=False)
        parts = [
            np.asarray(op(a, b), dtype=self.dtype)
            for a, b in zip(self._dvalue.components, other.components, strict=True)
        ]
        self._dvalue = DTensor(parts, self.layout, self.shape)
        return self

    def _coerce_value(self, value: Any, *, copy: bool) -> DTensor:
        """``value`` as a DTensor with this variable's layout, shape and dtype."""
        given = to_dtensor(value)
        if given is None:
            array = as_array(value)
            _check_dtype(array.dtype, self.dtype, self.name)
            self._check_shape(array.shape)
            return relayout(array.astype(self.dtype, copy=False), self.layout)
        self._check_shape(given.shape)
        _check_dtype(given.dtype, self.dtype, self.name)
        if given.layout == self.layout:
            moved = _copy(given) if copy else given
        else:
            moved = relayout(given, self.layout)
        if moved.dtype != self.dtype:
            moved = DTensor(
                [c.astype(self.dtype) for c in moved.components], moved.layout, moved.shape
            )
        return moved

    def _check_shape(self, shape: tuple[int, ...]) -> None:
        if tuple(shape) != self.shape:
            raise InvalidArgumentError(
                f"Cannot assign value to variable ' {self.name}': Shape mismatch."
                f"The variable shape {self.shape}, and the assigned value shape {tuple(shape)} "
                "are incompatible."
            )

    def __repr__(self) -> str:
        return (
            f"<dtckpt.dtensor.DVariable {self.name!r} shape={self.shape} dtype={self.dtype} "
            f'layout="{self.layout.to_string()}">'
        )

    # -- arithmetic: on the value, as TensorFlow's variables ---------------------------
    def __add__(self, other: Any) -> DTensor:
        return self.read_value().__add__(other)

    def __radd__(self, other: Any) -> DTensor:
        return self.read_value().__radd__(other)

    def __sub__(self, other: Any) -> DTensor:
        return self.read_value().__sub__(other)

    def __rsub__(self, other: Any) -> DTensor:
        return self.read_value().__rsub__(other)

    def __mul__(self, other: Any) -> DTensor:
        return self.read_value().__mul__(other)

    def __rmul__(self, other: Any) -> DTensor:
        return self.read_value().__rmul__(other)

    def __truediv__(self, other: Any) -> DTensor:
        return self.read_value().__truediv__(other)

    def __rtruediv__(self, other: Any) -> DTensor:
        return self.read_value().__rtruediv__(other)

    def __neg__(self) -> DTensor:
        return -self.read_value()

    # -- checkpointing ----------------------------------------------------------
    def _serialize_to_tensors(self) -> dict[str, Any]:
        return {VARIABLE_VALUE_KEY: self._dvalue}

    def _restore_problem(
        self, name: str, key: str, dtype: str, shape: tuple[int, ...]
    ) -> str | None:
        """TensorFlow's ``RestoreV2`` messages: each block is read with a slice spec."""
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
                f"tensor_name = {key}; shape in shape_and_slice spec {_shape(self.shape)} does "
                f"not match the shape stored in checkpoint: {_shape(shape)}"
            )
        return None

    def _plan_checkpoint_read(
        self, reader: Any, name: str, key: str, *, target: str, scratch: int, threads: int
    ) -> tuple[list[ValueRead], int]:
        """Each distinct block of this client's devices, and the replicas copied from it
        (rules D-VA-1, R-PL-2), in place where :meth:`_read_checkpoint_value` will be."""
        into = self._dvalue if attribute_unshared(self, "_dvalue") else None
        return plan_dtensor_reads(
            reader,
            key,
            self.layout,
            self.shape,
            target=target,
            into=into,
            scratch=scratch,
            threads=threads,
        )

    def _read_checkpoint_value(
        self, reader: BundleReader, name: str, key: str, planned: Sequence[ValueRead] = ()
    ) -> Any:
        """Read only the blocks this client's devices need under this variable's layout
        (rules D-VA-1, P-RS-1), into the variable's own arrays where nothing else refers
        to them (rule O-RS-15), as ``planned`` (rule R-PL-1)."""
        into = self._dvalue if attribute_unshared(self, "_dvalue") else None
        return read_dtensor(reader, key, self.layout, self.shape, into=into, planned=planned)

    def _restore_from_tensors(self, tensors: dict[str, Any]) -> None:
        value = tensors.get(VARIABLE_VALUE_KEY)
        if value is None:
            return
        if not isinstance(value, DTensor):
            value = relayout(np.asarray(value, dtype=self.dtype), self.layout)
        self._dvalue = value


def read_dtensor(
    reader: BundleReader,
    key: str,
    layout: Layout,
    shape: tuple[int, ...],
    into: DTensor | None = None,
    planned: Sequence[ValueRead] = (),
) -> DTensor:
    """Tensor ``key`` of a checkpoint as a DTensor with ``layout``: each distinct block of
    this client's devices read once, whatever layout or mesh wrote it (rule D-VA-1).

    With ``into`` (a DTensor of the same layout, held by nothing else), a component that
    nothing else refers to is read into in place (rule O-RS-15); ``into`` itself is
    returned when every one was. ``planned`` (from :func:`plan_dtensor_reads`) sets which
    blocks go in place, the scratch limit and the threads (rules R-PL-1, R-MB-2).
    """
    devices = local_offsets(layout.mesh)
    wanted = [device_box(layout, shape, device) for device in devices]
    reusable = _reusable_components(into, layout, len(wanted))
    by_device = {r.device: r for r in planned if r.ranges or r.box is not None}
    threads = max((r.threads for r in planned), default=io_threads())
    first: dict[Box, int] = {}
    for index, box in enumerate(wanted):
        first.setdefault(box, index)
    jobs = []
    for box, index in first.items():
        plan = by_device.get(devices[index])
        out = reusable[index] if plan is None or plan.in_place else None
        jobs.append((box, out, READ_SCRATCH if plan is None else plan.scratch_limit))

    def run(job: tuple[Box, np.ndarray | None, int]) -> np.ndarray:
        return reader.read_slice(key, job[0], out=job[1], scratch=job[2])

    # Blocks are read on several threads: file reads and checksums release the
    # GIL, so the devices' reads overlap as they would on real hardware.
    read = pool("io").map(run, jobs) if threads > 1 and len(jobs) > 1 else map(run, jobs)
    blocks = dict(zip(first, read, strict=True))
    components = []
    for index, box in enumerate(wanted):
        block, own = blocks[box], reusable[index]
        if first[box] == index:
            components.append(block)
        elif own is not None:
            # Replicas keep arrays of their own: writing into one never changes another.
            np.copyto(own, block)
            components.append(own)
        else:
            components.append(block.copy())
    if into is not None and all(a is b for a, b in zip(components, into.components, strict=True)):
        return into
    return DTensor(components, layout, shape)


def plan_dtensor_reads(
    reader: BundleReader,
    key: str,
    layout: Layout,
    shape: tuple[int, ...],
    *,
    target: str,
    into: DTensor | None = None,
    scratch: int = READ_SCRATCH,
    threads: int | None = None,
    devices: Sequence[int] | None = None,
    client_of: Callable[[int], int] | None = None,
    in_place: bool = False,
) -> tuple[list[ValueRead], int]:
    """What :func:`read_dtensor` will read for each device, from the index alone (rules
    R-PL-2, R-MB-2): one read per distinct block, at its first device, and a copy for each
    replica; and how many reads run at once. ``devices`` defaults to this client's; a plan
    for a whole mesh passes them all, with ``client_of`` saying whose each is and
    ``in_place`` whether the devices' arrays exist to be read into (R-PL-5)."""
    local = devices is None
    chosen = tuple(local_offsets(layout.mesh)) if devices is None else tuple(devices)
    owner = client_of or (lambda _: config.client_id())
    if local:
        owned = [c is not None for c in _reusable_components(into, layout, len(chosen))]
    else:
        owned = [in_place] * len(chosen)
    old = into.components if local and into is not None else None
    itemsize = reader.dtype_info(key).itemsize
    first: dict[Box, int] = {}
    reads: list[ValueRead] = []
    for index, device in enumerate(chosen):
        box = device_box(layout, shape, device)
        into_own = owned[index]
        # A new block stays allocated when the old one is held elsewhere (rule R-PL-3).
        keeps = old is None or owned_bytes(old[index]) < old[index].nbytes
        if old is not None and not into_own and not item_unshared(old, index):
            keeps = True
        if box not in first:
            first[box] = index
            reads.append(
                box_read(
                    reader,
                    key,
                    target,
                    box,
                    device=device,
                    client=owner(device),
                    into=into_own,
                    keeps=keeps,
                    scratch=scratch,
                )
            )
            continue
        numel = 1
        for _, length in box:
            numel *= length
        source = chosen[first[box]]
        reads.append(
            ValueRead(
                key=key,
                target=f"{target} (replica of device {source})",
                device=device,
                client=owner(device),
                box=box,
                needed=numel * itemsize,
                ranges=(),
                files=(),
                in_place=into_own,
                allocates=0 if into_own else numel * itemsize,
                scratch=0,
                scratch_limit=scratch,
                least_scratch=0,
                keeps=keeps and not into_own,
            )
        )
    at_once = min(io_threads() if threads is None else threads, max(1, len(first)))
    return [r if r.threads == at_once else _with_threads(r, at_once) for r in reads], at_once


def _with_threads(read: ValueRead, threads: int) -> ValueRead:
    return read._replace(threads=threads)


def _reusable_components(
    into: DTensor | None, layout: Layout, count: int
) -> list[np.ndarray | None]:
    """For each local device, its current array if a read may go straight into it."""
    if into is None or into.layout != layout or len(into.components) != count:
        return [None] * count
    parts = into.components
    return [
        parts[i] if writable_in_place(parts[i]) and item_unshared(parts, i) else None
        for i in range(count)
    ]


def _shape(shape: tuple[int, ...]) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def _check_dtype(given: np.dtype[Any], dtype: np.dtype[Any], name: str) -> None:
    """A value is cast to the variable's dtype only within its kind (as :class:`Variable`)."""
    if given != dtype and not np.can_cast(given, dtype, casting="same_kind"):
        raise InvalidArgumentError(
            f"assign to {name}: value of dtype {given} does not match the variable's dtype {dtype}"
        )


def _copy(value: DTensor) -> DTensor:
    return DTensor([c.copy() for c in value.components], value.layout, value.shape)


def _frozen(value: DTensor) -> DTensor:
    views = []
    for component in value.components:
        view = component.view()
        view.flags.writeable = False
        views.append(view)
    return DTensor(views, value.layout, value.shape)

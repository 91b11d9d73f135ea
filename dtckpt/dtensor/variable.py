"""``DVariable``: a :class:`~dtckpt.Variable` whose value is a :class:`DTensor` (rule D-VA-1).

Saving writes one slice entry per distinct block, each by the lowest-numbered
device holding it (a replicated value is written whole, by device 0).
Restoring reads, for each distinct block of the variable's *own* layout, only
that block from the checkpoint, whatever layout or mesh wrote it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..checkpoint.variables import VARIABLE_VALUE_KEY, Variable
from ..dtypes import info
from ..errors import InvalidArgumentError
from ..format.bundle_reader import BundleReader
from ..mesh import device_box, unique_shards
from ..pools import pool
from .tensor import DTensor, copy_to_mesh, relayout

__all__ = ["DVariable"]


class DVariable(Variable):
    """``DVariable(initial_value, name=None, dtype=None, trainable=True)``, valued by a DTensor."""

    def __init__(
        self, initial_value: Any, name: str | None = None, dtype: Any = None, trainable: bool = True
    ) -> None:
        if callable(initial_value):
            initial_value = initial_value()
        if not isinstance(initial_value, DTensor):
            raise InvalidArgumentError(
                "DVariable needs a DTensor initial value (use dtckpt.dtensor.copy_to_mesh or "
                "call_with_layout)"
            )
        if dtype is not None and np.dtype(info(dtype).numpy) != initial_value.dtype:
            raise InvalidArgumentError(
                f"dtype {dtype} does not match the DTensor's {initial_value.dtype}"
            )
        self._dvalue = initial_value
        self._shared_name = "Variable" if name is None else str(name).split(":")[0]
        self._trainable = bool(trainable)
        self._slots = {}
        self._value = np.empty((0,), dtype=initial_value.dtype)  # unused; the DTensor is the value

    @property
    def layout(self) -> Any:
        return self._dvalue.layout

    @property
    def shape(self) -> tuple[int, ...]:
        return self._dvalue.shape

    @property
    def dtype(self) -> np.dtype[Any]:
        return self._dvalue.dtype

    def read_value(self) -> np.ndarray:
        return self.numpy()

    def value(self) -> np.ndarray:
        return self.numpy()

    def numpy(self) -> np.ndarray:
        """The whole value, assembled from the devices' blocks."""
        return self._dvalue.numpy()

    def dtensor(self) -> DTensor:
        """The value as a DTensor (not a copy)."""
        return self._dvalue

    def assign(self, value: Any) -> DVariable:
        if isinstance(value, DTensor):
            new = value if value.layout == self.layout else relayout(value, self.layout)
        else:
            new = copy_to_mesh(np.asarray(value, dtype=self.dtype), self.layout)
        if new.shape != self.shape or new.dtype != self.dtype:
            raise InvalidArgumentError(
                f"assign to {self.name}: value {new.dtype} {list(new.shape)} does not match "
                f"{self.dtype} {list(self.shape)}"
            )
        self._dvalue = new
        return self

    def __repr__(self) -> str:
        specs = self.layout.sharding_specs
        return f"<dtckpt.dtensor.DVariable {self.name!r} shape={self.shape} layout={specs}>"

    # -- checkpointing ----------------------------------------------------------
    def _serialize_to_tensors(self) -> dict[str, Any]:
        return {VARIABLE_VALUE_KEY: self._dvalue}

    def _read_checkpoint_value(self, reader: BundleReader, name: str, key: str) -> Any:
        """Read only the blocks this variable's layout needs (rule D-VA-1)."""
        entry = reader.entry(key)
        stored = info(entry.dtype)
        if tuple(entry.shape) != self.shape or stored.numpy != self.dtype:
            raise InvalidArgumentError(
                f"the checkpoint holds {stored.name} {list(entry.shape)}, the variable "
                f"{self.name} is {info(self.dtype).name} {list(self.shape)}",
                key=key,
            )
        boxes = [box for box, _ in unique_shards(self.layout, self.shape)]
        # Blocks are read on several threads: file reads and checksums release the
        # GIL, so the devices' reads overlap as they would on real hardware.
        read = pool("io").map(lambda box: reader.read_slice(key, box), boxes)
        blocks = dict(zip(boxes, read, strict=True))
        components, handed_out = [], set()
        for device in range(self.layout.mesh.size):
            box = device_box(self.layout, self.shape, device)
            # Replicas get their own copies: writing into one never changes another.
            components.append(blocks[box].copy() if box in handed_out else blocks[box])
            handed_out.add(box)
        return DTensor(components, self.layout, self.shape)

    def _check_restore(self, tensors: dict[str, Any], where: object) -> None:
        value = tensors.get(VARIABLE_VALUE_KEY)
        if value is None:
            return
        if tuple(value.shape) != self.shape or value.dtype != self.dtype:
            raise InvalidArgumentError(
                f"cannot restore {where}: the checkpoint holds {value.dtype} "
                f"{list(value.shape)}, the variable {self.name} is {self.dtype} {list(self.shape)}"
            )

    def _restore_from_tensors(self, tensors: dict[str, Any]) -> None:
        value = tensors.get(VARIABLE_VALUE_KEY)
        if value is None:
            return
        if not isinstance(value, DTensor):
            value = copy_to_mesh(np.asarray(value, dtype=self.dtype), self.layout)
        self._dvalue = value

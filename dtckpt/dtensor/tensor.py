"""DTensors on a simulated mesh: one NumPy array per device (rules D-TE-1, D-TE-2).

A DTensor has a global (logical) shape, a dtype and a :class:`Layout`; device
``d`` of the layout's mesh holds the block :func:`device_box` gives it. Replicas
hold equal but separate arrays, so writing into one never changes another.
``relayout`` moves data between layouts block by block: each target block is
pasted from the source blocks it overlaps, without building the whole tensor.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .. import kernels
from ..errors import InvalidArgumentError
from ..format.bundle_writer import as_tensor
from ..format.slices import intersect
from ..mesh import Layout, device_box, unique_shards

__all__ = [
    "DTensor",
    "pack",
    "unpack",
    "relayout",
    "fetch_layout",
    "copy_to_mesh",
    "call_with_layout",
]

Box = tuple[tuple[int, int], ...]


class DTensor:
    """A tensor sharded over a mesh: ``shape`` is global, ``components`` are per device."""

    def __init__(self, components: Sequence[np.ndarray], layout: Layout, shape: Sequence[int]):
        self._layout = layout
        self._shape = tuple(int(d) for d in shape)
        self._components = list(components)

    @property
    def layout(self) -> Layout:
        return self._layout

    @property
    def shape(self) -> tuple[int, ...]:
        return self._shape

    @property
    def dtype(self) -> np.dtype[Any]:
        return self._components[0].dtype

    @property
    def components(self) -> list[np.ndarray]:
        """The per-device arrays (not copies), in mesh device order."""
        return self._components

    def numpy(self) -> np.ndarray:
        """The whole tensor, assembled from one replica of each block."""
        out = np.empty(self._shape, dtype=self.dtype)
        for box, device in unique_shards(self._layout, self._shape):
            out[tuple(slice(s, s + n) for s, n in box)] = self._components[device]
        return out

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        value = self.numpy()
        return value.astype(dtype) if dtype is not None else value

    def __repr__(self) -> str:
        specs = self._layout.sharding_specs
        return f"DTensor(shape={list(self._shape)}, dtype={self.dtype}, layout={specs})"


def _check_devices(layout: Layout, count: int) -> None:
    if count != layout.mesh.size:
        raise InvalidArgumentError(
            f"a mesh of {layout.mesh.size} devices needs {layout.mesh.size} components, got {count}"
        )


def pack(tensors: Sequence[Any], layout: Layout) -> DTensor:
    """A DTensor from one array per device (TF's ``dtensor.pack``), each of the local shape."""
    _check_devices(layout, len(tensors))
    arrays = [np.array(as_tensor(t)[0], copy=True) for t in tensors]
    local = tuple(arrays[0].shape)
    if len(local) != layout.rank:
        raise InvalidArgumentError(
            f"components of rank {len(local)} cannot use a layout of rank {layout.rank}"
        )
    shape = layout.global_shape_from_local_shape(local)
    for device, array in enumerate(arrays):
        if tuple(array.shape) != local or array.dtype != arrays[0].dtype:
            raise InvalidArgumentError(
                f"component {device} is {array.dtype} {list(array.shape)}, component 0 is "
                f"{arrays[0].dtype} {list(local)}"
            )
    return DTensor(arrays, layout, shape)


def unpack(tensor: DTensor) -> list[np.ndarray]:
    """Copies of the per-device arrays (TF's ``dtensor.unpack``)."""
    return [c.copy() for c in tensor.components]


def fetch_layout(tensor: DTensor) -> Layout:
    return tensor.layout


def _blocks(value: np.ndarray, layout: Layout) -> list[np.ndarray]:
    shape = tuple(value.shape)
    layout.local_shape_from_global_shape(shape)  # rank and divisibility checks
    return [
        np.array(value[tuple(slice(s, s + n) for s, n in device_box(layout, shape, d))], copy=True)
        for d in range(layout.mesh.size)
    ]


def copy_to_mesh(tensor: Any, layout: Layout) -> DTensor:
    """Place a whole (non-DTensor) value on the mesh with ``layout``."""
    value = as_tensor(tensor)[0]
    value = np.asarray(value)
    return DTensor(_blocks(value, layout), layout, value.shape)


def call_with_layout(fn: Callable[..., Any], layout: Layout, *args: Any, **kwargs: Any) -> DTensor:
    """Call an array constructor (``np.zeros``, ``np.ones``...) and lay its result out."""
    return copy_to_mesh(fn(*args, **kwargs), layout)


def relayout(tensor: DTensor, layout: Layout) -> DTensor:
    """The same values under another layout of the same mesh size or another mesh.

    Each target block is assembled from the unique source blocks it overlaps
    (rule D-TE-2), with the ``copy_box`` kernel; the whole tensor is never built
    unless a target block is the whole tensor.
    """
    shape = tensor.shape
    layout.local_shape_from_global_shape(shape)
    sources = unique_shards(tensor.layout, shape)
    itemsize = tensor.dtype.itemsize
    out: list[np.ndarray] = []
    built: dict[Box, np.ndarray] = {}
    for device in range(layout.mesh.size):
        box = device_box(layout, shape, device)
        if box in built:
            out.append(built[box].copy())
            continue
        local = np.empty(tuple(n for _, n in box), dtype=tensor.dtype)
        for source_box, source_device in sources:
            overlap = intersect(source_box, box)
            if overlap is None:
                continue
            src = tensor.components[source_device]
            src_origin = tuple(o - s for (o, _), (s, _) in zip(overlap, source_box, strict=True))
            dst_origin = tuple(o - b for (o, _), (b, _) in zip(overlap, box, strict=True))
            extent = tuple(n for _, n in overlap)
            if tensor.dtype == object or local.ndim == 0:
                local[tuple(slice(d, d + e) for d, e in zip(dst_origin, extent, strict=True))] = (
                    src[tuple(slice(s, s + e) for s, e in zip(src_origin, extent, strict=True))]
                )
                continue
            source = np.ascontiguousarray(src)
            kernels.sized(source.nbytes).copy_box(
                source.reshape(-1).view(np.uint8),
                _bytes(source.shape, itemsize),
                _bytes(src_origin, itemsize),
                local.reshape(-1).view(np.uint8),
                _bytes(local.shape, itemsize),
                _bytes(dst_origin, itemsize),
                _bytes(extent, itemsize),
            )
        built[box] = local
        out.append(local)
    return DTensor(out, layout, shape)


def _bytes(shape: Sequence[int], itemsize: int) -> tuple[int, ...]:
    shape = tuple(shape)
    return shape[:-1] + (shape[-1] * itemsize,) if shape else ()

"""Converting between whole NumPy arrays and DTensors (rule D-NU-1).

The authority is TensorFlow's ``tensorflow/dtensor/python/numpy_util.py``.

``pack_numpy`` cuts an array into a layout's blocks and packs them;
``unpack`` only cuts; ``unpacked_to_numpy`` and ``to_numpy`` put blocks back
together. Every block is placed by arithmetic on the layout's block grid, one
step per device (rule M-GE-2).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import InvalidArgumentError
from ..mesh import Layout, unique_shards
from .api import dtensor_of
from .tensor import DTensor, as_array, blocks_of

__all__ = ["to_numpy", "unpacked_to_numpy", "unpack", "pack_numpy"]


def to_numpy(tensor: Any) -> np.ndarray:
    """The whole value of a DTensor (or DVariable) as one array."""
    return dtensor_of(tensor).numpy()


def unpacked_to_numpy(unpacked: Sequence[Any], layout: Layout) -> np.ndarray:
    """The whole array from one component per device (mesh order) laid out by ``layout``.

    Components of a lower rank than the layout's stand for arrays with leading
    dimensions of size 1, which the layout must leave unsharded, and the result
    has the components' rank (TensorFlow assembles with ``np.block``, which
    reads them that way).
    """
    if len(unpacked) != layout.mesh.size:
        raise InvalidArgumentError("Wrong number of component Tensors.")
    arrays = [np.asarray(u) for u in unpacked]
    extra = layout.rank - arrays[0].ndim
    if extra > 0:
        if any(layout.num_shards(i) != 1 for i in range(extra)):
            raise InvalidArgumentError(
                f"components of rank {arrays[0].ndim} cannot fill a layout of rank "
                f"{layout.rank} that shards its leading dimensions: {layout.sharding_specs}"
            )
        lifted = [a.reshape((1,) * extra + a.shape) for a in arrays]
        return unpacked_to_numpy(lifted, layout).reshape(
            layout.global_shape_from_local_shape(lifted[0].shape)[extra:]
        )
    shape = layout.global_shape_from_local_shape(arrays[0].shape)
    out = np.empty(shape, dtype=arrays[0].dtype)
    for box, device in unique_shards(layout, shape):
        block = arrays[device]
        if tuple(block.shape) != tuple(n for _, n in box):
            raise InvalidArgumentError(
                f"component {device} has shape {list(block.shape)}, the layout's blocks are "
                f"{[n for _, n in box]}"
            )
        out[tuple(slice(s, s + n) for s, n in box)] = block
    return out


def unpack(value: Any, layout: Layout) -> list[np.ndarray]:
    """``value`` cut into ``layout``'s blocks, one (copied) array per device, for :func:`pack`."""
    return blocks_of(as_array(value), layout)


def pack_numpy(value: Any, layout: Layout) -> DTensor:
    """``value`` as a DTensor with ``layout``, as :func:`unpack` then :func:`~dtckpt.dtensor.pack`
    (without copying the blocks twice)."""
    array = as_array(value)
    return DTensor(blocks_of(array, layout), layout, array.shape)

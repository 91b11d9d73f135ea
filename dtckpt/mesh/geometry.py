"""Which block of a tensor each device holds, and the slice spec it saves (rules M-GE-1, M-GE-2).

For a layout and a global shape, the device at offset ``d`` holds along tensor
dimension ``i`` the extent ``(c * n, n)`` with ``n = size_i // shards_i`` and
``c`` the device's coordinate on the mesh dimension that shards ``i`` (or the
whole dimension when ``i`` is unsharded). Devices with the same block are
replicas; when saving, only the lowest-numbered one writes it (TensorFlow's
``SliceSpecOnDevice`` and the SPMD expansion of ``SaveV2``).

The blocks form a regular grid, so everything here is arithmetic on it: the
lowest device holding a block is the one whose coordinates on the mesh
dimensions that shard nothing are all zero, and the blocks a box overlaps are
found per dimension by division. Nothing scans the devices or the blocks to
answer a question about one of them (rule M-GE-2).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator, Sequence

from ..errors import InvalidArgumentError
from ..format.slices import format_shape_and_slice
from .layout import MATCH, UNSHARDED, Layout
from .mesh import Mesh

__all__ = [
    "shard_coordinates",
    "device_box",
    "unique_shards",
    "slice_spec",
    "block_device",
    "overlapping_blocks",
    "local_offsets",
]

Box = tuple[tuple[int, int], ...]


def _axes(layout: Layout) -> list[int]:
    """The mesh axis sharding each tensor dimension, ``-1`` for an unsharded one."""
    names = layout.mesh.dim_names
    return [-1 if s in (UNSHARDED, MATCH) else names.index(s) for s in layout.sharding_specs]


def shard_coordinates(layout: Layout, device: int) -> tuple[int, ...]:
    """The device's shard index along each tensor dimension (``device`` is a mesh offset)."""
    coords = layout.mesh.device_location(device)
    return tuple(0 if a < 0 else coords[a] for a in _axes(layout))


def device_box(layout: Layout, global_shape: Sequence[int], device: int) -> Box:
    """``(start, length)`` per dimension of the block the device at offset ``device`` holds."""
    local = layout.local_shape_from_global_shape(global_shape)
    return tuple((c * n, n) for c, n in zip(shard_coordinates(layout, device), local, strict=True))


def block_device(layout: Layout, shard: Sequence[int]) -> int:
    """The lowest device offset holding the block with shard indices ``shard``."""
    strides = layout.mesh.strides
    return sum(int(c) * strides[a] for c, a in zip(shard, _axes(layout), strict=True) if a >= 0)


def unique_shards(layout: Layout, global_shape: Sequence[int]) -> list[tuple[Box, int]]:
    """Each distinct block with the lowest device holding it, in device order.

    Costs one step per block, not per device: a replicated layout on 1024
    devices has one block.
    """
    local = layout.local_shape_from_global_shape(global_shape)
    # Along an empty dimension every shard is the same empty extent: one block.
    counts = [layout.num_shards(i) if n else 1 for i, n in enumerate(local)]
    blocks = [
        (tuple((c * n, n) for c, n in zip(shard, local, strict=True)), block_device(layout, shard))
        for shard in itertools.product(*(range(k) for k in counts))
    ]
    blocks.sort(key=lambda item: item[1])
    return blocks


def overlapping_blocks(
    layout: Layout, global_shape: Sequence[int], box: Box
) -> Iterator[tuple[Box, int]]:
    """The blocks of ``layout`` that overlap ``box``, each with the lowest device holding it.

    Found per dimension by division, so the cost is the number of blocks
    returned, whatever the number of devices or blocks.
    """
    local = layout.local_shape_from_global_shape(global_shape)
    ranges = []
    for (start, length), n in zip(box, local, strict=True):
        if length <= 0 or n <= 0:
            return
        ranges.append(range(start // n, (start + length - 1) // n + 1))
    for shard in itertools.product(*ranges):
        yield (
            tuple((c * n, n) for c, n in zip(shard, local, strict=True)),
            block_device(layout, shard),
        )


def slice_spec(layout: Layout, global_shape: Sequence[int], device: int) -> str:
    """The ``shape_and_slice`` a device saves: ``""`` when replicated, else ``"4 8 0,2:-"``."""
    if layout.is_fully_replicated():
        return ""
    shape = tuple(int(d) for d in global_shape)
    box = device_box(layout, shape, device)
    extents = tuple(
        (0, -1) if spec in (UNSHARDED, MATCH) else extent
        for spec, extent in zip(layout.sharding_specs, box, strict=True)
    )
    return format_shape_and_slice(shape, extents)


@functools.lru_cache(maxsize=64)
def local_offsets(mesh: Mesh) -> tuple[int, ...]:
    """The mesh offsets of this client's devices, in the order of ``local_device_ids``.

    An offset is a device's position in the mesh's row-major order: a local
    device id minus the mesh's smallest id, as TensorFlow's
    ``local_device_locations`` computes it. A single-client mesh has them all.
    """
    ids = mesh.local_device_ids()
    if not ids:
        return ()
    first = mesh.min_global_device_id()
    offsets = tuple(i - first for i in ids)
    for offset in offsets:
        if not 0 <= offset < mesh.size:
            raise InvalidArgumentError(
                f"local device id {offset + first} is outside the mesh {mesh.to_string()}"
            )
    return offsets

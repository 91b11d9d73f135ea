"""Which block of a tensor each device holds, and the slice spec it saves (rule M-GE-1).

For a layout and a global shape, device ``d`` holds along tensor dimension ``i``
the extent ``(c * n, n)`` with ``n = size_i // shards_i`` and ``c`` the device's
coordinate on the mesh dimension that shards ``i`` (or the whole dimension when
``i`` is unsharded). Devices with the same block are replicas; when saving,
only the lowest-numbered one writes it (TensorFlow's ``SliceSpecOnDevice`` and
the SPMD expansion of ``SaveV2``).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..format.slices import format_shape_and_slice
from .layout import MATCH, UNSHARDED, Layout

__all__ = ["shard_coordinates", "device_box", "unique_shards", "slice_spec"]

Box = tuple[tuple[int, int], ...]


def shard_coordinates(layout: Layout, device_id: int) -> tuple[int, ...]:
    """The device's shard index along each tensor dimension."""
    names = layout.mesh.dim_names
    coords = layout.mesh.device_location(device_id)
    return tuple(
        0 if s in (UNSHARDED, MATCH) else coords[names.index(s)] for s in layout.sharding_specs
    )


def device_box(layout: Layout, global_shape: Sequence[int], device_id: int) -> Box:
    """``(start, length)`` per dimension of the block device ``device_id`` holds."""
    local = layout.local_shape_from_global_shape(global_shape)
    return tuple(
        (c * n, n) for c, n in zip(shard_coordinates(layout, device_id), local, strict=True)
    )


def unique_shards(layout: Layout, global_shape: Sequence[int]) -> list[tuple[Box, int]]:
    """Each distinct block with the lowest device id holding it, in device order."""
    seen: dict[Box, int] = {}
    for device_id in layout.mesh.global_device_ids().reshape(-1).tolist():
        box = device_box(layout, global_shape, int(device_id))
        seen.setdefault(box, int(device_id))
    return list(seen.items())


def slice_spec(layout: Layout, global_shape: Sequence[int], device_id: int) -> str:
    """The ``shape_and_slice`` a device saves: ``""`` when replicated, else ``"4 8 0,2:-"``."""
    if layout.is_fully_replicated():
        return ""
    shape = tuple(int(d) for d in global_shape)
    box = device_box(layout, shape, device_id)
    extents = tuple(
        (0, -1) if spec in (UNSHARDED, MATCH) else extent
        for spec, extent in zip(layout.sharding_specs, box, strict=True)
    )
    return format_shape_and_slice(shape, extents)

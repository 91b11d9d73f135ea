"""DTensor's device mesh model: meshes, layouts, shard geometry (pure arithmetic, no I/O)."""

from .device import DeviceSpec
from .geometry import (
    block_device,
    device_box,
    local_offsets,
    overlapping_blocks,
    shard_coordinates,
    slice_spec,
    unique_shards,
)
from .layout import MATCH, UNSHARDED, Layout, LayoutType
from .mesh import Mesh, MeshDimension, create_mesh
from .proto import LayoutProto, MeshDimensionProto, MeshProto, ShardingSpec

__all__ = [
    "MATCH",
    "UNSHARDED",
    "DeviceSpec",
    "Layout",
    "LayoutProto",
    "LayoutType",
    "Mesh",
    "MeshDimension",
    "MeshDimensionProto",
    "MeshProto",
    "ShardingSpec",
    "block_device",
    "create_mesh",
    "device_box",
    "local_offsets",
    "overlapping_blocks",
    "shard_coordinates",
    "slice_spec",
    "unique_shards",
]

"""DTensor's device mesh model: meshes, layouts, shard geometry (pure arithmetic, no I/O)."""

from .geometry import device_box, shard_coordinates, slice_spec, unique_shards
from .layout import MATCH, UNSHARDED, Layout
from .mesh import Mesh, create_mesh

__all__ = [
    "MATCH",
    "UNSHARDED",
    "Layout",
    "Mesh",
    "create_mesh",
    "device_box",
    "shard_coordinates",
    "slice_spec",
    "unique_shards",
]

"""DTensor on a simulated device mesh, with TensorFlow's names (``tf.experimental.dtensor``).

::

    mesh = dtensor.create_mesh([("x", 2), ("y", 4)], device_type="CPU")
    w = dtensor.DVariable(dtensor.call_with_layout(np.zeros, dtensor.Layout(["x", "y"], mesh),
                                                   shape=(4, 8), dtype=np.float32))
    dtensor.DTensorCheckpoint(mesh, w=w).save("/tmp/ckpt")   # one bundle per device, merged

A checkpoint restores into any mesh and layout: each device reads only the
blocks that overlap its own.
"""

from ..mesh import MATCH, UNSHARDED, Layout, Mesh, create_mesh
from .checkpoint import DTensorCheckpoint, write_sharded
from .tensor import DTensor, call_with_layout, copy_to_mesh, fetch_layout, pack, relayout, unpack
from .variable import DVariable

__all__ = [
    "MATCH",
    "UNSHARDED",
    "DTensor",
    "DTensorCheckpoint",
    "DVariable",
    "Layout",
    "Mesh",
    "call_with_layout",
    "copy_to_mesh",
    "create_mesh",
    "fetch_layout",
    "pack",
    "relayout",
    "unpack",
    "write_sharded",
]

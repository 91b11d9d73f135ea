"""DTensor with TensorFlow's names (``tf.experimental.dtensor``): on a simulated mesh in one
process, or on a mesh shared by several processes (``mpiexec``, spec/multiclient.md).

::

    mesh = dtensor.create_mesh([("x", 2), ("y", 4)], device_type="CPU")
    w = dtensor.DVariable(np.zeros((4, 8), np.float32), layout=dtensor.Layout(["x", "y"], mesh))
    w.assign_add(dtensor.copy_to_mesh(np.ones((4, 8), np.float32), w.layout))
    dtensor.DTensorCheckpoint(mesh, w=w).save("/tmp/ckpt")   # one bundle per device, merged

A checkpoint restores into any mesh and layout: each device reads only the
blocks that overlap its own.
"""

from ..mesh import (
    MATCH,
    UNSHARDED,
    DeviceSpec,
    Layout,
    LayoutProto,
    LayoutType,
    Mesh,
    MeshDimension,
    MeshProto,
)
from . import numpy_util
from .accelerator import (
    initialize_accelerator_system,
    initialize_multi_client,
    initialize_tpu_system,
    shutdown_accelerator_system,
    shutdown_tpu_system,
)
from .api import (
    call_with_layout,
    check_layout,
    copy_to_mesh,
    default_mesh,
    device_name,
    fetch_layout,
    get_default_mesh,
    is_dtensor,
    pack,
    relayout,
    relayout_like,
    run_on,
    unpack,
)
from .checkpoint import DTensorCheckpoint, write_sharded
from .config import (
    client_id,
    full_job_name,
    job_name,
    jobs,
    local_devices,
    num_clients,
    num_global_devices,
    num_local_devices,
    preferred_device_type,
    set_num_local_devices,
)
from .mesh_util import barrier, create_distributed_mesh, create_mesh
from .save_restore import (
    name_based_restore,
    name_based_save,
    plan_checkpoint_restore,
    sharded_save,
)
from .tensor import DTensor
from .variable import DVariable

__all__ = [
    "MATCH",
    "UNSHARDED",
    "DTensor",
    "DTensorCheckpoint",
    "DVariable",
    "DeviceSpec",
    "Layout",
    "LayoutProto",
    "LayoutType",
    "Mesh",
    "MeshDimension",
    "MeshProto",
    "barrier",
    "call_with_layout",
    "check_layout",
    "client_id",
    "copy_to_mesh",
    "create_distributed_mesh",
    "create_mesh",
    "default_mesh",
    "device_name",
    "fetch_layout",
    "full_job_name",
    "get_default_mesh",
    "initialize_accelerator_system",
    "initialize_multi_client",
    "initialize_tpu_system",
    "is_dtensor",
    "job_name",
    "jobs",
    "local_devices",
    "name_based_restore",
    "name_based_save",
    "num_clients",
    "num_global_devices",
    "num_local_devices",
    "numpy_util",
    "pack",
    "plan_checkpoint_restore",
    "preferred_device_type",
    "relayout",
    "relayout_like",
    "run_on",
    "set_num_local_devices",
    "sharded_save",
    "shutdown_accelerator_system",
    "shutdown_tpu_system",
    "unpack",
    "write_sharded",
]

"""Building meshes for this client (rule D-MU-1; ``tensorflow/dtensor/python/mesh_util.py``).

``create_mesh`` lays a mesh over this client's devices (or over as many
simulated devices as the dimensions ask for); ``create_distributed_mesh``
spreads one over every client, each contributing its
:func:`~dtckpt.dtensor.config.num_local_devices` (or the ``local_devices``
given); ``barrier`` waits for every client, which with one client returns at
once (rule D-MU-1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..comm import DAY, world
from ..comm.agree import run_on_root
from ..errors import DeadlineExceededError, InvalidArgumentError
from ..mesh import DeviceSpec, Layout, Mesh
from ..mesh import create_mesh as _create_mesh
from ..mesh.mesh import parse_devices
from . import config

__all__ = ["create_mesh", "create_distributed_mesh", "barrier"]

MeshDims = Sequence[tuple[str, int]] | dict[str, int]


def create_mesh(
    mesh_dims: MeshDims | None = None,
    mesh_name: str = "",
    devices: Sequence[str | DeviceSpec] | None = None,
    device_type: str | None = None,
    use_xla_spmd: bool = False,
) -> Mesh:
    """A single-client mesh, as ``dtensor.create_mesh`` (rule M-ME-4).

    Without ``mesh_dims``: one dimension ``x`` over all this client's devices
    of ``device_type`` (CPU by default); a single dimension of size ``-1`` also
    means all of them. With explicit sizes and no ``devices``, the mesh gets
    simulated devices ``<TYPE>:0`` ... as many as the sizes multiply to.
    """
    kind = (device_type or "CPU").upper()
    return _create_mesh(
        mesh_dims,
        mesh_name,
        devices,
        device_type,
        use_xla_spmd,
        available=config.num_local_devices(kind),
        job=config.job_name(),
    )


def create_distributed_mesh(
    mesh_dims: MeshDims,
    mesh_name: str = "",
    local_devices: Sequence[str | DeviceSpec] | None = None,
    device_type: str | None = None,
    use_xla_spmd: bool = False,
) -> Mesh:
    """A mesh spread evenly over every client, as ``dtensor.create_distributed_mesh``.

    Each client brings ``local_devices`` (default: all its devices of
    ``device_type``); their count times the number of clients must equal the
    mesh's size. This client's devices get the ids
    ``[client_id * n, (client_id + 1) * n)``.
    """
    items = list(mesh_dims.items()) if isinstance(mesh_dims, dict) else list(mesh_dims)
    names = [str(n) for n, _ in items]
    shape = [int(s) for _, s in items]
    kind = device_type.upper() if device_type else None
    if kind == "TPU" and local_devices is not None:
        raise InvalidArgumentError(
            "Do not specify devices for TPU meshes. Using a partial list of devices for TPU "
            "is not supported."
        )
    if local_devices is None:
        specs = config.local_devices(kind or "CPU")
        if not specs:
            raise InvalidArgumentError(f"this client has no {kind or 'CPU'} devices for a mesh")
    else:
        specs, _ = parse_devices(local_devices, device_type)
    clients = config.num_clients()
    count = len(specs) * clients
    if math.prod(shape) != count:
        raise InvalidArgumentError(
            f"Global number of devices ({len(specs)} per client * {clients} clients = {count}) "
            f"must be equal to total size of the mesh of shape {shape}"
        )
    task = DeviceSpec(job=config.job_name(), replica=0, task=config.client_id())
    full = [task.make_merged_spec(s).to_string() for s in specs]
    start = len(specs) * config.client_id()
    return Mesh(
        names,
        np.arange(count, dtype=np.int64).reshape(shape),
        list(range(start, start + len(specs))),
        full,
        mesh_name=mesh_name,
        use_xla_spmd=use_xla_spmd,
    )


def barrier(mesh: Mesh, barrier_name: str | None = None, timeout_in_ms: int | None = None) -> None:
    """Wait until every client reaches this barrier, at most ``timeout_in_ms`` (default a day).

    The mesh is checked as TensorFlow's barrier uses it: a fully sharded
    layout over its dimensions must be valid. Every client must pass the same
    ``barrier_name`` (``InvalidArgumentError`` naming the first that differs),
    and a client that does not arrive in time is ``DeadlineExceededError`` on
    every client. With one client there is no one to wait for.
    """
    if not isinstance(mesh, Mesh):
        raise InvalidArgumentError(f"barrier needs a Mesh, got {type(mesh)}")
    Layout(mesh.dim_names, mesh)
    comm = world()
    if comm.size == 1:
        return
    name = "(barrier)" if barrier_name is None else str(barrier_name)
    timeout = DAY if timeout_in_ms is None else int(timeout_in_ms) / 1000
    names: list[object] | None = None
    late: DeadlineExceededError | None = None
    try:
        names = comm.gather(name, timeout=timeout, what=f"barrier {name}")
    except DeadlineExceededError as exc:
        if comm.rank != 0:
            raise
        late = exc  # told to every client below, naming the late one

    def check() -> None:
        if late is not None:
            raise late
        assert names is not None
        for client, other in enumerate(names):
            if other != name:
                raise InvalidArgumentError(
                    f"client {client} reached barrier {other!r} while client 0 is at {name!r}"
                )

    # The verdict comes after the root's own wait for the last client: wait twice as long
    # for it, so that a late client is named to everyone (as a save's outcome, P-SV-2).
    run_on_root(comm, check, timeout=2 * timeout, what=f"barrier {name}")

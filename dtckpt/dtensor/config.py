"""Who this client is and which devices it has (rule D-CF-1).

The authority is TensorFlow's ``tensorflow/dtensor/python/config.py``.

dtckpt runs DTensor in one process today: one client (id 0 of 1, job
``localhost``) whose simulated devices are named
``/job:localhost/replica:0/task:0/device:<TYPE>:<i>``. Every answer below
comes from :func:`_client`, the one place that will ask a communicator once
several processes share a mesh.

How many devices of a type a client has is :func:`num_local_devices`: one CPU
and no accelerators, as TensorFlow without configured logical devices, until
:func:`set_num_local_devices` says otherwise. (A mesh built with explicit
dimensions by :func:`~dtckpt.dtensor.create_mesh` simulates the devices it
needs whatever this count is; see rule M-ME-4.)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import InvalidArgumentError
from ..mesh.device import DeviceSpec

__all__ = [
    "DEVICE_TYPES",
    "client_id",
    "num_clients",
    "job_name",
    "full_job_name",
    "jobs",
    "local_devices",
    "num_local_devices",
    "num_global_devices",
    "preferred_device_type",
    "set_num_local_devices",
]

#: The device types a DTensor mesh may be built from (TensorFlow's list).
DEVICE_TYPES = ("CPU", "GPU", "TPU")


@dataclass
class _Client:
    """This process's place in the cluster."""

    client_id: int = 0
    num_clients: int = 1
    job_name: str = "localhost"
    jobs: list[str] = field(default_factory=list)
    device_counts: dict[str, int] = field(default_factory=lambda: {"CPU": 1, "GPU": 0, "TPU": 0})


_LOCAL = _Client()


def _client() -> _Client:
    """The client answering the questions of this module (one process: always the local one)."""
    return _LOCAL


def client_id() -> int:
    """This client's id, ``0`` with one client."""
    return _client().client_id


def num_clients() -> int:
    """How many clients share the meshes, ``1`` with one process."""
    return _client().num_clients


def job_name() -> str:
    """The job name every client uses: ``localhost`` with one client."""
    return _client().job_name


def full_job_name(task_id: int | None = None) -> str:
    """``<job>/replica:0/task:<task_id>`` for this client or another one."""
    task = client_id() if task_id is None else int(task_id)
    if num_clients() == 1 and task != 0:
        raise InvalidArgumentError(f"Unexpected task ID {task} in local runs")
    return f"{job_name()}/replica:0/task:{task}"


def jobs() -> list[str]:
    """The job names of all clients; empty when running locally, as TensorFlow."""
    return list(_client().jobs)


def _device_type(device_type: str) -> str:
    kind = str(device_type).upper()
    if kind not in DEVICE_TYPES:
        raise InvalidArgumentError(f"Device type {device_type} is not CPU, GPU, or TPU.")
    return kind


def num_local_devices(device_type: str) -> int:
    """How many devices of ``device_type`` this client has (``0`` for an unknown type)."""
    return _client().device_counts.get(str(device_type).upper(), 0)


def num_global_devices(device_type: str) -> int:
    """How many devices of ``device_type`` all clients have together."""
    return num_local_devices(device_type) * num_clients()


def local_devices(device_type: str, for_client_id: int | None = None) -> list[DeviceSpec]:
    """The devices of ``device_type`` on this client (or on client ``for_client_id``)."""
    kind = _device_type(device_type)
    task = client_id() if for_client_id is None else int(for_client_id)
    return [
        DeviceSpec(job=job_name(), replica=0, task=task, device_type=kind, device_index=i)
        for i in range(num_local_devices(kind))
    ]


def set_num_local_devices(device_type: str, count: int) -> None:
    """Give this client ``count`` simulated devices of ``device_type``.

    dtckpt's counterpart of configuring TensorFlow's logical devices
    (``tf.config.set_logical_device_configuration``) before building meshes
    with :func:`~dtckpt.dtensor.create_mesh` defaults or
    :func:`~dtckpt.dtensor.create_distributed_mesh`.
    """
    kind = _device_type(device_type)
    if int(count) < 0:
        raise InvalidArgumentError(f"a client cannot have {count} {kind} devices")
    _client().device_counts[kind] = int(count)


def preferred_device_type() -> str:
    """The first of TPU, GPU, CPU this client has devices of."""
    for kind in ("TPU", "GPU"):
        if num_local_devices(kind):
            return kind
    return "CPU"

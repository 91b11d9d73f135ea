"""Who this client is and which devices it has (rules D-CF-1, D-CF-2).

The authority is TensorFlow's ``tensorflow/dtensor/python/config.py``.

Every answer comes from :func:`_client`, which asks the communicator of this
program (:func:`dtckpt.comm.world`): a process alone is client 0 of 1 with job
``localhost``, as before; under ``mpiexec -n N`` each process is the client
numbered by its MPI rank, one of ``N``, with job ``worker``. TensorFlow's
environment variables are honoured and checked against the communicator
(rule D-CF-2): ``DTENSOR_JOBS`` (one ``host:port`` per client), ``DTENSOR_CLIENT_ID``,
``DTENSOR_NUM_CLIENTS`` (deprecated by TensorFlow) and ``DTENSOR_JOB_NAME``; a
mismatch is :class:`InvalidArgumentError` naming both values.

How many devices of a type a client has is :func:`num_local_devices`: one CPU
and no accelerators, as TensorFlow without configured logical devices, until
:func:`set_num_local_devices` (or ``initialize_accelerator_system(...,
num_logical_cpu_devices=n)``) says otherwise. (A mesh built with explicit
dimensions by :func:`~dtckpt.dtensor.create_mesh` simulates the devices it
needs whatever this count is; see rule M-ME-4.)
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..comm import world
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
    "check_environment",
]

#: The device types a DTensor mesh may be built from (TensorFlow's list).
DEVICE_TYPES = ("CPU", "GPU", "TPU")

# TensorFlow's environment variables (rule D-CF-2).
DT_JOBS = "DTENSOR_JOBS"
DT_CLIENT_ID = "DTENSOR_CLIENT_ID"
DT_NUM_CLIENTS = "DTENSOR_NUM_CLIENTS"
DT_JOB_NAME = "DTENSOR_JOB_NAME"

_DEVICE_COUNTS: dict[str, int] = {"CPU": 1, "GPU": 0, "TPU": 0}


@dataclass
class _Client:
    """This process's place in the cluster."""

    client_id: int
    num_clients: int
    job_name: str
    jobs: list[str]
    device_counts: dict[str, int]


def _client() -> _Client:
    """The client answering the questions of this module, from the communicator (D-CF-1)."""
    comm = world()
    jobs = check_environment(comm.rank, comm.size)
    default = "localhost" if comm.size == 1 else "worker"
    name = os.environ.get(DT_JOB_NAME) or default
    return _Client(comm.rank, comm.size, name, jobs, _DEVICE_COUNTS)


def check_environment(rank: int, size: int) -> list[str]:
    """TensorFlow's ``DTENSOR_*`` variables checked against the communicator; the jobs.

    Rule D-CF-2: ``DTENSOR_JOBS`` must name as many clients as there are
    processes, ``DTENSOR_NUM_CLIENTS`` (if set) be that count and
    ``DTENSOR_CLIENT_ID`` (if set) this process's rank.
    """
    text = os.environ.get(DT_JOBS)
    jobs = text.split(",") if text else []
    how = "MPI rank" if size > 1 else "a single process, rank"
    if jobs and len(jobs) != size:
        alone = (
            ": launch the clients with mpiexec (or give initialize_accelerator_system a "
            "communicator)"
            if size == 1
            else ""
        )
        raise InvalidArgumentError(
            f"{DT_JOBS} names {len(jobs)} clients but this program has {size} "
            f"process{'es' if size > 1 else ''}{alone}"
        )
    count = _int_env(DT_NUM_CLIENTS)
    if count is not None and count != size:
        raise InvalidArgumentError(
            f"{DT_NUM_CLIENTS}={count} but this program has {size} "
            f"process{'es' if size > 1 else ''} ({how} {rank} of {size})"
        )
    given = _int_env(DT_CLIENT_ID)
    if given is not None and given != rank:
        raise InvalidArgumentError(
            f"{DT_CLIENT_ID}={given} but this process is {how} {rank} of {size}"
        )
    return jobs


def _int_env(name: str) -> int | None:
    text = os.environ.get(name)
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        raise InvalidArgumentError(
            f"Environment variable {name}={text!r} is not an integer"
        ) from None


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

"""``initialize_accelerator_system`` and ``shutdown_accelerator_system`` (rule D-CF-2).

The authority is TensorFlow's ``tensorflow/dtensor/python/accelerator_util.py``.
Where TensorFlow starts its coordination service (client 0 the leader) and
configures logical devices, dtckpt installs the communicator of the clients
(:func:`dtckpt.comm.world`: MPI's world under ``mpiexec``, or the one given),
checks TensorFlow's ``DTENSOR_*`` variables against it, and sets the client's
device count. Also exported as ``initialize_multi_client`` and
``initialize_tpu_system`` / ``shutdown_tpu_system``, as in TensorFlow.
"""

from __future__ import annotations

from ..comm import Communicator, set_world, world
from ..errors import InvalidArgumentError
from . import config

__all__ = [
    "initialize_accelerator_system",
    "initialize_multi_client",
    "initialize_tpu_system",
    "is_initialized",
    "shutdown_accelerator_system",
    "shutdown_tpu_system",
]

_INITIALIZED: list[str] = []  # the device type, once initialized


def is_initialized() -> bool:
    """Whether :func:`initialize_accelerator_system` has run (and not been shut down)."""
    return bool(_INITIALIZED)


def initialize_accelerator_system(
    device_type: str | None = None,
    enable_coordination_service: bool | None = True,
    num_logical_cpu_devices: int | None = None,
    experimental_reset_context: bool | None = False,
    experimental_enable_megcore: bool | None = False,
    *,
    communicator: Communicator | None = None,
) -> str:
    """Set this client up for DTensor; returns the device type (``CPU`` by default).

    ``communicator`` (dtckpt's own argument) is the group of clients to use;
    without it, MPI's world when launched by ``mpiexec``, else this process
    alone. ``num_logical_cpu_devices`` gives each client that many CPU devices
    (:func:`~dtckpt.dtensor.set_num_local_devices`). The coordination service,
    context reset and megacore arguments have no meaning here and are accepted.
    """
    del enable_coordination_service, experimental_reset_context, experimental_enable_megcore
    if _INITIALIZED:
        raise InvalidArgumentError(
            "Accelerator system has already been initialized. "
            "Call tf.experimental.dtensor.shutdown_accelerator_system() first."
        )
    kind = (device_type or config.preferred_device_type()).upper()
    if kind not in config.DEVICE_TYPES:
        raise InvalidArgumentError(
            f"Unknown device_type {kind}. Allowed values are CPU, GPU, or TPU"
        )
    if kind in ("GPU", "TPU") and num_logical_cpu_devices is not None:
        accelerators = config.num_local_devices(kind)
        if num_logical_cpu_devices < accelerators:
            raise InvalidArgumentError(
                f"If set, `num_logical_cpu_devices` (={num_logical_cpu_devices}) must be greater "
                f"than or equal to the number of local {kind} devices (={accelerators})"
            )
    if num_logical_cpu_devices is not None and int(num_logical_cpu_devices) < 1:
        raise InvalidArgumentError(
            f"num_logical_cpu_devices must be positive, got {num_logical_cpu_devices}"
        )
    comm = communicator if communicator is not None else world()
    config.check_environment(comm.rank, comm.size)
    if communicator is not None:
        set_world(communicator)
    if num_logical_cpu_devices is not None:
        config.set_num_local_devices("CPU", int(num_logical_cpu_devices))
    _INITIALIZED.append(kind)
    return kind


initialize_multi_client = initialize_accelerator_system
initialize_tpu_system = initialize_accelerator_system


def shutdown_accelerator_system() -> None:
    """Forget the initialization; refused with several clients, as in TensorFlow."""
    if not _INITIALIZED:
        raise InvalidArgumentError(
            "Accelerator system is not initialized. Call "
            "tf.experimental.dtensor.initialize_accelerator_system first."
        )
    if config.num_clients() > 1:
        raise InvalidArgumentError(
            "Shutting down accelerator system under multi-client mode is not supported."
        )
    _INITIALIZED.clear()


shutdown_tpu_system = shutdown_accelerator_system

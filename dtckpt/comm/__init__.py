"""Communicators: the processes (clients) that save and restore one checkpoint together.

::

    from dtckpt import comm
    comm.world()                      # SingleProcess, or MPI's world under mpiexec
    comm.set_world(MyCommunicator())  # e.g. over torch.distributed or jax.distributed

The contract is in :mod:`dtckpt.comm.base`; :mod:`dtckpt.comm.agree` turns a
failure on one client into the same typed error on all (rules P-CM-*, P-ER-*).
This package knows nothing of tensors or checkpoints; it depends only on
:mod:`dtckpt.errors`. mpi4py is imported only when MPI is used.
"""

from .agree import ErrorRecord, Reply, as_checkpoint_error, run_on_root, scatter_from_root
from .base import DAY, CollectiveStats, Communicator, Deadline
from .single import SingleProcess
from .world import COMMUNICATOR_ENV, launcher_size, set_world, world

__all__ = [
    "COMMUNICATOR_ENV",
    "DAY",
    "CollectiveStats",
    "Communicator",
    "Deadline",
    "ErrorRecord",
    "MPICommunicator",
    "Reply",
    "SingleProcess",
    "as_checkpoint_error",
    "launcher_size",
    "run_on_root",
    "scatter_from_root",
    "set_world",
    "world",
]


def __getattr__(name: str) -> object:
    if name == "MPICommunicator":  # imported on demand: mpi4py is optional
        from .mpi import MPICommunicator

        return MPICommunicator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

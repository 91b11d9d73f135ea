"""The process-wide communicator that checkpoints use (rule P-CM-4).

Chosen once, on first use, unless :func:`set_world` installed one:

1. ``DTCKPT_COMMUNICATOR=single`` or ``=mpi`` forces one;
2. otherwise a process started by an MPI launcher (``mpiexec``, ``srun``:
   ``PMI_SIZE``, ``OMPI_COMM_WORLD_SIZE`` or ``PMIX_SIZE`` in the environment)
   with more than one process gets MPI's world;
3. otherwise the process is alone (:class:`~dtckpt.comm.single.SingleProcess`),
   and everything works as it always has.
"""

from __future__ import annotations

import os
import threading

from ..errors import InvalidArgumentError
from .base import Communicator
from .single import SingleProcess

__all__ = ["world", "set_world", "launcher_size", "COMMUNICATOR_ENV"]

#: Environment variable forcing the communicator: ``single``, ``mpi`` or ``auto`` (the default).
COMMUNICATOR_ENV = "DTCKPT_COMMUNICATOR"
_LAUNCHER_SIZES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE")

_WORLD: Communicator | None = None
_LOCK = threading.Lock()


def launcher_size() -> int | None:
    """How many processes an MPI launcher started, from its environment; ``None`` if none."""
    for name in _LAUNCHER_SIZES:
        text = os.environ.get(name)
        if text is not None:
            try:
                return int(text)
            except ValueError:
                raise InvalidArgumentError(f"{name}={text!r} is not a process count") from None
    return None


def world() -> Communicator:
    """The communicator of every client of this program (chosen on first use)."""
    current = _WORLD
    if current is not None:
        return current
    with _LOCK:
        if _WORLD is None:
            _install(_detect())
        assert _WORLD is not None
        return _WORLD


def set_world(communicator: Communicator | None) -> None:
    """Make ``communicator`` the world; ``None`` forgets it (chosen again on next use)."""
    if communicator is not None and not isinstance(communicator, Communicator):
        raise InvalidArgumentError(
            f"a communicator must subclass dtckpt.comm.Communicator, got {communicator!r}"
        )
    with _LOCK:
        _install(communicator)


def _install(communicator: Communicator | None) -> None:
    global _WORLD
    _WORLD = communicator


def _detect() -> Communicator:
    choice = os.environ.get(COMMUNICATOR_ENV, "auto").strip().lower()
    if choice not in ("auto", "single", "mpi"):
        raise InvalidArgumentError(
            f"{COMMUNICATOR_ENV}={choice!r}: expected 'auto', 'single' or 'mpi'"
        )
    if choice == "single":
        return SingleProcess()
    if choice == "mpi" or (launcher_size() or 1) > 1:
        from .mpi import MPICommunicator

        return MPICommunicator()
    return SingleProcess()

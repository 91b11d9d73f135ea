"""MPI through mpi4py: the communicator of a program started by ``mpiexec`` (rule P-CM-3).

::

    gather to root r          bcast / scatter from root r
    every rank --isend--> r   r --isend--> every rank
    r polls improbe(tag)      every rank polls improbe(source=r, tag)

Collectives are built from point-to-point messages, so that each can give up
at its deadline: MPI's own collectives block with no timeout. Messages are
pickled Python objects. Each collective takes the next *tag* (a counter every
member advances in step), so a message sent late for a collective that
already failed stays unmatched instead of being taken for a later one's
(rule P-CM-2). Waiting polls, yielding the CPU for the first hundred polls and
then pausing longer each time (50 us up to 1 ms), so that a quick answer is
taken at once and a long wait leaves the CPU to the ranks still writing.

mpi4py is an optional dependency (``pip install dtckpt[mpi]`` installs it
with MPICH's wheel); it is imported only when an :class:`MPICommunicator` is
made. Background saves use MPI from a second thread, which needs
``MPI_THREAD_MULTIPLE`` (mpi4py asks for it by default).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from ..errors import FailedPreconditionError, MissingDependencyError
from .base import DAY, Communicator, Deadline

__all__ = ["MPICommunicator", "import_mpi"]

#: The install command named when mpi4py is missing (rule P-CM-3).
MPI_EXTRA = "pip install dtckpt[mpi]"

_YIELDS = 100  # polls that only yield the CPU before the first real pause
_FIRST_PAUSE = 50e-6
_LONGEST_PAUSE = 1e-3


def import_mpi() -> Any:
    """``mpi4py.MPI``, or :class:`MissingDependencyError` naming the extra that installs it."""
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise MissingDependencyError(
            f"MPI needs mpi4py and an MPI library, which are not installed: {MPI_EXTRA} ({exc})"
        ) from None
    return MPI


class _Pause:
    """Yields the CPU a few times, then sleeps a little longer each time, up to a bound."""

    __slots__ = ("polls", "seconds")

    def __init__(self) -> None:
        self.polls = 0
        self.seconds = _FIRST_PAUSE

    def __call__(self) -> None:
        self.polls += 1
        if self.polls <= _YIELDS:
            time.sleep(0)  # a peer about to answer answers within microseconds
            return
        time.sleep(self.seconds)
        self.seconds = min(_LONGEST_PAUSE, self.seconds * 2)


class MPICommunicator(Communicator):
    """An mpi4py communicator (``MPI.COMM_WORLD`` by default) as a dtckpt communicator."""

    def __init__(self, comm: Any = None) -> None:
        super().__init__()
        self._mpi = import_mpi()
        self._base = self._mpi.COMM_WORLD if comm is None else comm
        self._rank = int(self._base.Get_rank())
        self._size = int(self._base.Get_size())
        # dtckpt's messages travel on a private duplicate of ``comm``, made at the first
        # collective (which every member reaches together), so that they never meet the
        # program's own messages on ``comm``; asking for the rank alone stays local.
        self._private: Any = None
        self._opening: tuple[Any, Any] | None = None
        # Set once a collective gave up: late messages may still arrive for it.
        self._failed = False
        self._tags = 1
        self._sequence = 0
        # Sends given up at a deadline: kept alive (with their buffers) until they finish.
        self._abandoned: list[Any] = []

    @property
    def rank(self) -> int:
        return self._rank

    @property
    def size(self) -> int:
        return self._size

    @property
    def mpi_comm(self) -> Any:
        """The ``mpi4py.MPI.Comm`` this communicator was made from."""
        return self._base

    @property
    def _comm(self) -> Any:
        assert self._private is not None  # opened by the first collective's _next_tag
        return self._private

    def _open(self, deadline: Deadline) -> None:
        """Make the private duplicate: collective, non-blocking, within ``deadline``.

        If the deadline passes first, the same duplication is waited for again by
        the next collective (every member started exactly one).
        """
        if self._opening is None:
            self._opening = self._base.Idup()
        private, request = self._opening
        pause = _Pause()
        while not request.Test():
            if deadline.passed():
                self._failed = True
                raise deadline.exceeded([])  # which members are missing is unknown here
            pause()
        self._opening = None
        upper = private.Get_attr(self._mpi.TAG_UB)
        self._tags = max(1, min(int(upper) if upper else 32767, 1 << 30))
        self._private = private

    def _next_tag(self, deadline: Deadline) -> int:
        # The tag is taken first: a member whose collective fails still moves on in step.
        self._sequence += 1
        if self._private is None:
            self._open(deadline)
        self._abandoned = [r for r in self._abandoned if not r.Test()]
        return self._sequence % self._tags

    # -- point to point, with deadlines -------------------------------------------------
    def _send_all(self, messages: list[tuple[int, Any]], tag: int, deadline: Deadline) -> None:
        comm = self._comm
        pending = {dest: comm.isend(value, dest=dest, tag=tag) for dest, value in messages}
        pause = _Pause()
        while pending:
            for dest in [d for d, request in pending.items() if request.Test()]:
                del pending[dest]
            if not pending:
                return
            if deadline.passed():
                self._failed = True
                self._abandoned.extend(pending.values())
                raise deadline.exceeded(list(pending))
            pause()

    def _receive(self, source: int, tag: int, deadline: Deadline) -> Any:
        pause = _Pause()
        while True:
            message = self._comm.improbe(source=source, tag=tag)
            if message is not None:
                return message.recv()
            if deadline.passed():
                self._failed = True
                raise deadline.exceeded([source])
            pause()

    # -- collectives ------------------------------------------------------------------
    def _gather(self, value: Any, root: int, deadline: Deadline) -> list[Any] | None:
        tag = self._next_tag(deadline)
        if self._rank != root:
            self._send_all([(root, value)], tag, deadline)
            return None
        out: list[Any] = [None] * self._size
        out[root] = value
        missing = set(range(self._size)) - {root}
        status = self._mpi.Status()
        pause = _Pause()
        while missing:
            message = self._comm.improbe(source=self._mpi.ANY_SOURCE, tag=tag, status=status)
            if message is not None:
                source = int(status.Get_source())
                out[source] = message.recv()
                missing.discard(source)
                pause = _Pause()
                continue
            if deadline.passed():
                self._failed = True
                raise deadline.exceeded(sorted(missing))
            pause()
        return out

    def _bcast(self, value: Any, root: int, deadline: Deadline) -> Any:
        tag = self._next_tag(deadline)
        if self._rank == root:
            self._send_all([(r, value) for r in range(self._size) if r != root], tag, deadline)
            return value
        return self._receive(root, tag, deadline)

    def _scatter(self, values: Sequence[Any] | None, root: int, deadline: Deadline) -> Any:
        tag = self._next_tag(deadline)
        if self._rank == root:
            assert values is not None  # checked by Communicator.scatter
            messages = [(r, values[r]) for r in range(self._size) if r != root]
            self._send_all(messages, tag, deadline)
            return values[root]
        return self._receive(root, tag, deadline)

    # -- duplicates ---------------------------------------------------------------------
    def dup(self, *, timeout: float = DAY) -> MPICommunicator:
        if self._mpi.Query_thread() != self._mpi.THREAD_MULTIPLE:
            raise FailedPreconditionError(
                "background collectives need MPI_THREAD_MULTIPLE; this MPI was initialized "
                "with less (mpi4py.rc.thread_level)"
            )
        deadline = Deadline(timeout, "dup")
        if self._private is None:
            self._open(deadline)
        twin = MPICommunicator(self._comm)
        twin._open(deadline)  # now, on the calling thread, where every member calls it
        return twin

    def close(self) -> None:
        """Free the private duplicate, unless a collective on it ever gave up.

        MPI reuses the context of a freed communicator, and a message sent late
        for a failed collective would then reach whatever communicator gets it
        next; such a duplicate is kept instead (rule P-CM-2).
        """
        super().close()
        if self._private is not None and not self._failed and not self._abandoned:
            self._private.Free()
        self._private = None

"""The contract of a communicator: the processes that save and restore one checkpoint together.

::

    rank 0 (the root)          rank 1                    rank 2
    gather(a) -> [a, b, c]     gather(b) -> None         gather(c) -> None
    bcast(v)  -> v             bcast(None) -> v          bcast(None) -> v
    scatter([p, q, r]) -> p    scatter(None) -> q        scatter(None) -> r
    barrier()                  barrier()                 barrier()

Every implementation keeps these promises (rule P-CM-1), and passes the
shared conformance tests (``tests/comm/conformance.py``):

* Every member calls the same collectives in the same order (SPMD), with the
  same ``root``; values are Python objects that pickle.
* Every call has a deadline: ``timeout`` seconds after it starts, a member
  still waiting for a peer raises :class:`~dtckpt.errors.DeadlineExceededError`
  whose ``client`` is the first peer it waited for (the message lists them
  all). Nothing waits longer (rule P-CM-2).
* After a collective failed on some member, the communicator stays usable:
  what a late member sends for the failed collective is never taken for a
  later one's.
* One thread at a time uses a communicator. :meth:`dup` (itself collective)
  gives a communicator over the same members whose messages never mix with
  this one's, for another thread: an asynchronous save runs its collectives
  on :meth:`background`.

Implementations: :class:`~dtckpt.comm.single.SingleProcess` (one member) and
:class:`~dtckpt.comm.mpi.MPICommunicator` (mpi4py). A program launched by
``torch.distributed`` or ``jax.distributed`` can bring its own by subclassing
:class:`Communicator` and implementing ``rank``, ``size``, ``_gather``,
``_bcast``, ``_scatter`` and ``dup``.
"""

from __future__ import annotations

import abc
import math
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ..errors import DeadlineExceededError, InvalidArgumentError

__all__ = ["Communicator", "CollectiveStats", "Deadline", "DAY"]

#: TensorFlow's default barrier timeout (its coordination service waits a day).
DAY = 24 * 3600.0


@dataclass
class CollectiveStats:
    """How many collectives a communicator ran, and the seconds spent inside them."""

    count: int = 0
    seconds: float = 0.0

    def reset(self) -> None:
        self.count, self.seconds = 0, 0.0


class Deadline:
    """The moment a collective gives up, and the message it gives up with."""

    __slots__ = ("timeout", "at", "what")

    def __init__(self, timeout: float, what: str) -> None:
        timeout = float(timeout)
        if not timeout > 0 or math.isnan(timeout):
            raise InvalidArgumentError(f"a collective timeout must be positive, got {timeout}")
        self.timeout = timeout
        self.at = time.monotonic() + timeout
        self.what = what

    def passed(self) -> bool:
        return time.monotonic() >= self.at

    def exceeded(self, missing: Sequence[int]) -> DeadlineExceededError:
        """The error of a collective still waiting for ``missing`` (all of them, if unknown)."""
        peers = sorted(missing)
        if not peers:
            return DeadlineExceededError(
                f"{self.what}: not every client arrived within {self.timeout:g} s"
            )
        return DeadlineExceededError(
            f"{self.what}: no word from client{'s' if len(peers) > 1 else ''} "
            f"{', '.join(map(str, peers))} within {self.timeout:g} s",
            client=peers[0] if peers else None,
        )


class Communicator(abc.ABC):
    """The members of a group of processes and the collectives dtckpt runs among them."""

    def __init__(self) -> None:
        self.stats = CollectiveStats()
        self._background: Communicator | None = None
        self._background_lock = threading.Lock()

    # -- identity ------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def rank(self) -> int:
        """This member's number, ``0 <= rank < size``; rank 0 is the root of checkpoints."""

    @property
    @abc.abstractmethod
    def size(self) -> int:
        """How many members there are."""

    # -- collectives -----------------------------------------------------------------
    def gather(
        self, value: Any, *, root: int = 0, timeout: float, what: str = "gather"
    ) -> list[Any] | None:
        """Every member's ``value``, in rank order, on ``root``; ``None`` elsewhere."""
        self._check_root(root)
        with self._timed():
            return self._gather(value, root, Deadline(timeout, what))

    def bcast(self, value: Any, *, root: int = 0, timeout: float, what: str = "bcast") -> Any:
        """``root``'s ``value`` on every member (others pass anything, e.g. ``None``)."""
        self._check_root(root)
        with self._timed():
            return self._bcast(value, root, Deadline(timeout, what))

    def scatter(
        self,
        values: Sequence[Any] | None,
        *,
        root: int = 0,
        timeout: float,
        what: str = "scatter",
    ) -> Any:
        """Member ``r`` gets ``values[r]`` of ``root``'s ``values`` (``size`` of them)."""
        self._check_root(root)
        if self.rank == root and (values is None or len(values) != self.size):
            count = "None" if values is None else str(len(values))
            raise InvalidArgumentError(f"scatter needs {self.size} values on its root, got {count}")
        with self._timed():
            return self._scatter(values, root, Deadline(timeout, what))

    def barrier(self, *, timeout: float, what: str = "barrier") -> None:
        """Return once every member has entered the barrier."""
        with self._timed():
            self._barrier(Deadline(timeout, what))

    @abc.abstractmethod
    def _gather(self, value: Any, root: int, deadline: Deadline) -> list[Any] | None: ...

    @abc.abstractmethod
    def _bcast(self, value: Any, root: int, deadline: Deadline) -> Any: ...

    @abc.abstractmethod
    def _scatter(self, values: Sequence[Any] | None, root: int, deadline: Deadline) -> Any: ...

    def _barrier(self, deadline: Deadline) -> None:
        # Everyone checks in with rank 0, which then lets everyone go.
        self._gather(None, 0, deadline)
        self._bcast(None, 0, deadline)

    # -- sub-communicators -----------------------------------------------------------
    @abc.abstractmethod
    def dup(self, *, timeout: float = DAY) -> Communicator:
        """A communicator over the same members whose messages never mix with this one's.

        Collective: every member calls it at the same point of the program.
        """

    def background(self, *, timeout: float = DAY) -> Communicator:
        """The duplicate that background (asynchronous) saves use; made on first use.

        Collective the first time: every member must ask for it at the same
        point of the program (the first asynchronous save does).
        """
        with self._background_lock:
            if self._background is None:
                self._background = self.dup(timeout=timeout)
            return self._background

    def close(self) -> None:
        """Release what the communicator holds (its background duplicate included)."""
        if self._background is not None:
            self._background.close()
            self._background = None

    # -- helpers -----------------------------------------------------------------------
    def _check_root(self, root: int) -> None:
        if not 0 <= int(root) < self.size:
            raise InvalidArgumentError(f"root {root} is not a rank of a group of {self.size}")

    @contextmanager
    def _timed(self) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.stats.count += 1
            self.stats.seconds += time.perf_counter() - start

    def __repr__(self) -> str:
        return f"<{type(self).__name__} rank {self.rank} of {self.size}>"

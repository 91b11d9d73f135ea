"""One process alone: the communicator of every program not launched as several (rule P-CM-1).

Each collective returns at once with what one member would get: ``gather``
a one-element list, ``bcast`` the value, ``scatter`` the only value. A
single-process save is the one-client case of the multi-client protocol, so
these calls are the whole of its "communication".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .base import DAY, Communicator, Deadline

__all__ = ["SingleProcess"]


class SingleProcess(Communicator):
    """The communicator of a group of one: rank 0 of 1."""

    @property
    def rank(self) -> int:
        return 0

    @property
    def size(self) -> int:
        return 1

    def _gather(self, value: Any, root: int, deadline: Deadline) -> list[Any]:
        return [value]

    def _bcast(self, value: Any, root: int, deadline: Deadline) -> Any:
        return value

    def _scatter(self, values: Sequence[Any] | None, root: int, deadline: Deadline) -> Any:
        assert values is not None  # checked by Communicator.scatter
        return values[0]

    def _barrier(self, deadline: Deadline) -> None:
        return None

    def dup(self, *, timeout: float = DAY) -> SingleProcess:
        return SingleProcess()

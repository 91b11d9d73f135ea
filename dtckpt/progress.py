"""Progress reporting for long library calls.

Library functions that may run for a while (verifying, converting, packing)
take an optional ``progress`` argument: any object with the three methods of
:class:`Progress`. The library calls ``start`` once per phase with the total
amount of work (bytes, or items when ``unit`` says so), ``advance`` as work is
done, and ``finish`` at the end of the phase. It never prints anything
itself: the command line passes a terminal progress bar, other callers pass
their own object or nothing.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["Progress", "NullProgress", "NULL_PROGRESS"]


class Progress(Protocol):
    def start(self, total: int, label: str = "", unit: str = "B") -> None: ...

    def advance(self, amount: int) -> None: ...

    def finish(self) -> None: ...


class NullProgress:
    """Reports nothing: the default when no ``progress`` is given."""

    def start(self, total: int, label: str = "", unit: str = "B") -> None:
        pass

    def advance(self, amount: int) -> None:
        pass

    def finish(self) -> None:
        pass


NULL_PROGRESS = NullProgress()

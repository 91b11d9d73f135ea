"""``CheckpointOptions``: TensorFlow's fields, with the ones dtckpt acts on (rule O-OP-1).

``enable_async`` (or its older alias ``experimental_enable_async_checkpoint``)
writes in the background; ``experimental_write_callbacks`` run after each
write; ``experimental_skip_slot_variables`` ignores optimizer slots on restore.
``experimental_io_device`` has no meaning without devices and is kept for
signature compatibility; ``experimental_sharding_callback`` is accepted and
must be ``None`` (one data shard is written).

``experimental_fsync`` is dtckpt's own field, not TensorFlow's: with its
default ``True`` every ``Checkpoint``-level save fsyncs its files, the state
file and the directory, so that a completed save survives a power loss
(rules S-AT-2, S-AT-3). ``False`` skips the fsyncs, as TensorFlow's writers
do; saves stay atomic either way.

Two more fields are dtckpt's own, for saves and restores shared by several
clients (spec/multiclient.md): ``experimental_writers`` picks who writes a
replicated block, ``"lowest"`` (TensorFlow's rule, the default) or
``"balanced"`` (rule P-WR-1); ``experimental_collective_timeout`` is the
deadline of each collective step in seconds (rule P-CM-2), 1800 by default.

Two more (spec/plans.md): ``experimental_memory_budget`` bounds, in bytes, the
memory a save or restore may allocate beyond what the objects hold (rules
R-MB-1..4): the work is streamed within it, or refused before anything is read
or written with a :class:`~dtckpt.errors.MemoryBudgetError` naming the smallest
budget that works. ``experimental_dry_run=True`` makes ``read``/``restore``
return the :class:`~dtckpt.checkpoint.plans.RestorePlan` the restore would run,
reading no tensor and changing no object (rule R-PL-1).
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import InvalidArgumentError

__all__ = ["CheckpointOptions", "COLLECTIVE_TIMEOUT", "WRITERS"]

#: Seconds a collective step of a save or restore waits for the slowest client (P-CM-2).
COLLECTIVE_TIMEOUT = 1800.0
#: Who writes a block that several devices hold (rule P-WR-1).
WRITERS = ("lowest", "balanced")


class CheckpointOptions:
    """Options for ``Checkpoint.save``/``write``/``read``/``restore``, as in TensorFlow."""

    __slots__ = (
        "experimental_io_device",
        "experimental_enable_async_checkpoint",
        "experimental_write_callbacks",
        "enable_async",
        "experimental_skip_slot_variables",
        "experimental_sharding_callback",
        "experimental_fsync",
        "experimental_writers",
        "experimental_collective_timeout",
        "experimental_memory_budget",
        "experimental_dry_run",
    )

    def __init__(
        self,
        experimental_io_device: str | None = None,
        experimental_enable_async_checkpoint: bool = False,
        experimental_write_callbacks: Sequence[Callable[..., Any]] | None = None,
        enable_async: bool = False,
        experimental_skip_slot_variables: bool = False,
        experimental_sharding_callback: Any = None,
        experimental_fsync: bool = True,
        experimental_writers: str = "lowest",
        experimental_collective_timeout: float = COLLECTIVE_TIMEOUT,
        experimental_memory_budget: int | None = None,
        experimental_dry_run: bool = False,
    ) -> None:
        self.experimental_io_device = experimental_io_device
        self.enable_async = bool(experimental_enable_async_checkpoint or enable_async)
        self.experimental_enable_async_checkpoint = self.enable_async
        for callback in experimental_write_callbacks or ():
            if not callable(callback):
                raise InvalidArgumentError(f"write callback {callback!r} is not callable")
            if len(inspect.signature(callback).parameters) > 1:
                raise InvalidArgumentError(
                    f"write callback {callback!r} must take 0 or 1 argument (the save path)"
                )
        self.experimental_write_callbacks = list(experimental_write_callbacks or [])
        self.experimental_skip_slot_variables = bool(experimental_skip_slot_variables)
        if experimental_sharding_callback is not None:
            raise InvalidArgumentError(
                "experimental_sharding_callback is not supported: dtckpt writes one data shard"
            )
        self.experimental_sharding_callback = None
        self.experimental_fsync = bool(experimental_fsync)
        if experimental_writers not in WRITERS:
            raise InvalidArgumentError(
                f"experimental_writers must be one of {WRITERS}, not {experimental_writers!r}"
            )
        self.experimental_writers = experimental_writers
        timeout = float(experimental_collective_timeout)
        if not timeout > 0:
            raise InvalidArgumentError(
                f"experimental_collective_timeout must be positive seconds, not {timeout}"
            )
        self.experimental_collective_timeout = timeout
        budget = experimental_memory_budget
        if budget is not None:
            if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)):
                raise InvalidArgumentError(
                    f"experimental_memory_budget must be a number of bytes, not {budget!r}"
                )
            budget = int(budget)
            if budget < 0:
                raise InvalidArgumentError(
                    f"experimental_memory_budget must be at least 0 bytes, not {budget}"
                )
        self.experimental_memory_budget: int | None = budget
        self.experimental_dry_run = bool(experimental_dry_run)

    def __copy__(self) -> CheckpointOptions:
        new = CheckpointOptions.__new__(CheckpointOptions)
        for name in self.__slots__:
            setattr(new, name, copy.copy(getattr(self, name)))
        return new

    def __repr__(self) -> str:
        fields = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__)
        return f"CheckpointOptions({fields})"

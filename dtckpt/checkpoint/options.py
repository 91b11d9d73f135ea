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
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Sequence
from typing import Any

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

    def __copy__(self) -> CheckpointOptions:
        new = CheckpointOptions.__new__(CheckpointOptions)
        for name in self.__slots__:
            setattr(new, name, copy.copy(getattr(self, name)))
        return new

    def __repr__(self) -> str:
        fields = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__)
        return f"CheckpointOptions({fields})"

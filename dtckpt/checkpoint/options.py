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
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import InvalidArgumentError

__all__ = ["CheckpointOptions"]


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

    def __copy__(self) -> CheckpointOptions:
        new = CheckpointOptions.__new__(CheckpointOptions)
        for name in self.__slots__:
            setattr(new, name, copy.copy(getattr(self, name)))
        return new

    def __repr__(self) -> str:
        fields = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__)
        return f"CheckpointOptions({fields})"

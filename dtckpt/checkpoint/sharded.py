"""Values spread over devices, as the checkpoint layer sees them, and who writes what (P-SV-1).

::

    tensors (breadth-first)        parts, in data-file order (rules D-CK-1, D-CK-2)
    w  DTensor [x, y] on 2x4  -->  k=0  device 0: w[0:2,0:2], save_counter, ...   client 0
    save_counter  (regular)        k=1  regular part (tf.train.Checkpoint only)    client 0
    k  DTensor [-, y]               k=2  device 1: w[0:2,2:4], k[:,2:4]             client 0
                                    ...
                                    k=8  device 7: w[2:4,6:8]                       client 3

The checkpoint layer does not know DTensors: a value that is spread over
devices implements :class:`ShardedValue` (``dtckpt.dtensor.DTensor`` does), and
its mesh implements :class:`Placement`. From their metadata alone every client
computes the same *plan*: which device writes each distinct block, the list of
parts (one data file each) in TensorFlow's merge order, and so each file's
number ``k`` of ``K``. No data is needed to plan, so no client waits for another
to learn its file names.

Writers (rule P-WR-1): ``"lowest"`` (the default) is TensorFlow's rule, the
lowest device holding a block writes it; ``"balanced"`` spreads each group of
replicated blocks over their replicas by bytes, so that no client writes far
more than its share.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..errors import InvalidArgumentError
from ..format.messages import FULL_LENGTH, TensorSlice
from .options import WRITERS

__all__ = [
    "Block",
    "Box",
    "Item",
    "Part",
    "Placement",
    "ShardedValue",
    "WRITERS",
    "is_sharded",
    "plan_parts",
]

Box = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Block:
    """One distinct block of a sharded value, as a checkpoint stores it."""

    #: TensorFlow's slice of the block: ``(start, length)`` per dimension, length ``-1``
    #: (``FULL_LENGTH``) along a dimension the layout leaves whole; ``None`` for a value
    #: stored whole (a replicated layout).
    box: TensorSlice | None
    #: The lowest device holding it: TensorFlow's writer.
    holder: int
    #: How many devices hold it.
    replicas: int
    #: Blocks of one group have their replicas at the same relative places.
    group: Hashable


class Placement(Protocol):
    """The devices a sharded value lives on, and which client owns each (a mesh)."""

    @property
    def num_devices(self) -> int: ...

    @property
    def num_clients(self) -> int: ...

    @property
    def local_devices(self) -> Sequence[int]:
        """This client's devices, ascending."""

    def client_of(self, device: int) -> int: ...


@runtime_checkable
class ShardedValue(Protocol):
    """A tensor whose blocks live on the devices of a :class:`Placement`."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    @property
    def dtype(self) -> np.dtype[Any]: ...

    @property
    def placement(self) -> Placement: ...

    def stored_blocks(self) -> Iterable[Block]:
        """Each distinct block once, ascending by holder (metadata only)."""

    def replica_device(self, block: Block, index: int) -> int:
        """The device holding replica ``index`` of ``block`` (``0`` is its holder)."""

    def local_block(self, device: int) -> np.ndarray:
        """The array of a block held by this client's ``device``."""

    def client_boxes(self, client: int) -> list[Box]:
        """The distinct boxes the devices of ``client`` hold (to plan a restore)."""

    def copied(self) -> ShardedValue:
        """A copy of the local blocks, for a save that writes later."""

    def shallow(self) -> ShardedValue:
        """The same local block arrays in new containers, for a save that writes later
        from blocks that are never written into (rule O-CK-10)."""


def is_sharded(value: Any) -> bool:
    """Whether ``value`` is a :class:`ShardedValue`.

    Arrays, the common case, are answered at once: a structural ``isinstance``
    against the protocol looks up each of its members, which a save of many
    variables would pay once per value.
    """
    if isinstance(value, (np.ndarray, np.generic)):
        return False
    return isinstance(value, ShardedValue)


#: One entry of a part, ``(key, value, block)``: a whole value (``block`` None) or one block of
#: a sharded value. A plain tuple: a save of N variables holds N of them while it writes, and
#: the cycle collector stops walking a tuple of a string, an array and ``None`` (it does not
#: for a class's instances or a named tuple).
Item = tuple[str, Any, "Block | None"]


@dataclass
class Part:
    """One bundle of a save: one data file, written by one client."""

    #: The device writing it; ``None`` for the regular part of ``tf.train.Checkpoint``.
    device: int | None
    client: int
    items: list[Item] = field(default_factory=list)
    #: The data file's number among the save's files.
    number: int = 0


def plan_parts(
    tensors: Sequence[tuple[str, Any]],
    *,
    regular_on_device_zero: bool,
    writers: str = "lowest",
) -> list[Part]:
    """The parts of a save, in data-file order, each with its writing client (P-SV-1).

    Regular values (and the object graph, which the caller appends last)
    go to device 0's part when ``regular_on_device_zero`` (``DTensorCheckpoint``),
    else to a regular part numbered right after device 0's, or before it when the
    first value is regular (rule D-CK-1). Without any sharded value the save is
    one part: an ordinary single-shard bundle, written by client 0.
    """
    if writers not in WRITERS:
        raise InvalidArgumentError(f"writers must be one of {WRITERS}, not {writers!r}")
    placements = {id(v.placement): v.placement for _, v in tensors if is_sharded(v)}
    if not placements:
        return [Part(None, 0, [(key, value, None) for key, value in tensors])]
    placement = _one_placement(list(placements.values()))
    chooser = _balanced(tensors) if writers == "balanced" else None
    per_device: dict[int, list[Item]] = {}
    regular: list[Item] = []
    for key, value in tensors:
        if is_sharded(value):
            for block in value.stored_blocks():
                device = block.holder if chooser is None else chooser(value, block)
                per_device.setdefault(device, []).append((key, value, block))
        elif regular_on_device_zero:
            per_device.setdefault(0, []).append((key, value, None))
        else:
            regular.append((key, value, None))
    sharded_first = is_sharded(tensors[0][1])
    parts: list[Part] = []
    for device in sorted(per_device):
        here = [Part(device, placement.client_of(device), per_device[device])]
        if device == 0 and regular:
            extra = Part(None, placement.client_of(0), regular)
            here = here + [extra] if sharded_first else [extra] + here
        parts.extend(here)
    if regular and 0 not in per_device:  # balanced writers may leave device 0 idle
        parts.insert(0, Part(None, placement.client_of(0), regular))
    for number, part in enumerate(parts):
        part.number = number
    return parts


def _one_placement(placements: list[Placement]) -> Placement:
    first = placements[0]
    if any(p != first for p in placements[1:]):
        raise InvalidArgumentError(
            "a DTensor checkpoint needs all DTensors on one mesh, found "
            f"{len({repr(p) for p in placements})} meshes"
        )
    return first


def _balanced(tensors: Sequence[tuple[str, Any]]) -> Any:
    """Rule P-WR-1, ``balanced``: each group's blocks cut into ``replicas`` runs of equal bytes.

    Within a group (blocks whose replicas sit at the same relative places),
    blocks are laid end to end in save order; a block whose middle byte falls
    in the ``r``-th of ``replicas`` equal stretches is written by replica ``r``.
    Two passes over the blocks, one step each: O(blocks), whatever the number
    of devices.
    """
    totals: dict[Hashable, int] = {}
    for _, value in tensors:
        if is_sharded(value):
            for block in value.stored_blocks():
                totals[block.group] = totals.get(block.group, 0) + _block_bytes(value, block)
    done: dict[Hashable, int] = {}

    def choose(value: ShardedValue, block: Block) -> int:
        size = _block_bytes(value, block)
        start = done.get(block.group, 0)
        done[block.group] = start + size
        total = totals[block.group]
        if block.replicas <= 1 or total <= 0:
            return block.holder
        index = min(block.replicas - 1, (2 * start + size) * block.replicas // (2 * total))
        return value.replica_device(block, index)

    return choose


def _block_bytes(value: ShardedValue, block: Block) -> int:
    count = 1
    extents = block.box if block.box is not None else tuple((0, d) for d in value.shape)
    for (_, length), dim in zip(extents, value.shape, strict=True):
        count *= dim if length == FULL_LENGTH else length
    return max(1, count * max(1, np.dtype(value.dtype).itemsize))

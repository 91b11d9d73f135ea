"""Restore plans: what a restore will read and how much memory it will use (rules R-PL-*, R-MB-*).

::

    match (index only) --> ValueRead per (value, device): ranges, in place?, new bytes, scratch
                       --> ObjectReads per object, in the order the restore assigns them
                       --> RestorePlan: files and ranges per device and client, bytes needed
                           and read, peak extra memory; matched, unmatched and unused values
    commit, assign     --> each object reads exactly its ObjectReads (in place or not, the
                           same boxes, scratch limit and threads)

A plan is built by the match phase of a restore (:mod:`dtckpt.checkpoint.restore`), the
same code whether the restore then runs or is only planned (``experimental_dry_run``).
Memory is the growth of the process's allocations during the restore, the index and the
object graph aside: new arrays (a value that cannot be read into the object's own array,
a new slot variable) and temporary buffers. Objects are assigned one at a time, so the
peak is found by walking the objects in order: the new arrays an object keeps accumulate,
its scratch and the arrays it replaces come and go (rule R-PL-3).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

import numpy as np

from ..errors import MemoryBudgetError
from ..format.bundle_reader import READ_SCRATCH, ByteRange
from ..format.messages import TensorSlice
from ..pools import io_threads

_T = TypeVar("_T")

__all__ = [
    "ObjectReads",
    "RestorePlan",
    "ValueRead",
    "check_budget",
    "box_read",
    "whole_read",
    "format_bytes",
    "peak_of",
    "save_memory",
    "schedule",
]


class ValueRead(NamedTuple):
    """One value (or one block of it) reaching one device: what is read and what it costs."""

    #: The checkpoint key read.
    key: str
    #: Who takes it: ``(root).a.b`` for an object's attribute, the name for a name-based read.
    target: str
    #: The mesh device it is for; ``None`` for a value that is not spread over devices.
    device: int | None
    #: The client owning ``device`` (0 for a value that is not spread over devices).
    client: int
    #: The box read, ``None`` for the whole value.
    box: TensorSlice | None
    #: Bytes of the value this read delivers.
    needed: int
    #: Byte ranges of the data files read (empty: a replica copied from another device).
    ranges: tuple[ByteRange, ...]
    #: The data files of ``ranges``, in the same order.
    files: tuple[str, ...]
    #: Read into the object's own array (rule O-RS-15): no new array.
    in_place: bool
    #: Bytes of the new array the read makes (0 in place).
    allocates: int
    #: Peak bytes of the temporary buffers it uses (rule R-MB-2).
    scratch: int
    #: The scratch limit the read runs under (rule R-MB-2).
    scratch_limit: int
    #: The least scratch limit under which it could run.
    least_scratch: int
    #: The new array stays allocated after the restore (the object's old array is held
    #: elsewhere, or the object is new); otherwise it replaces an array that is freed.
    keeps: bool = False
    #: How many reads of its object run at once (a DVariable's blocks; rule R-MB-2).
    threads: int = 1

    @property
    def bytes_read(self) -> int:
        return sum(r.length for r in self.ranges)


class ObjectReads(NamedTuple):
    """Everything one object reads, as its restore step will run it."""

    target: str
    reads: tuple[ValueRead, ...]
    #: Threads reading this object's blocks at once (a DVariable's devices; else 1).
    threads: int = 1

    @property
    def keeps(self) -> int:
        return sum(r.allocates for r in self.reads if r.keeps)

    def peak(self) -> int:
        """Peak growth while this object reads: its new arrays, and the scratch of as many
        reads as run at once (the largest ones, a bound)."""
        scratches = sorted((r.scratch for r in self.reads), reverse=True)
        return sum(r.allocates for r in self.reads) + sum(scratches[: max(1, self.threads)])


def whole_read(
    reader: Any, key: str, target: str, *, into: bool, keeps: bool, scratch: int
) -> ValueRead:
    """The plan of ``reader.read(key)``: the whole value, into the object's array or not."""
    cost = reader.read_cost(key, into=into, scratch=scratch)
    ranges = tuple(cost.ranges)
    return ValueRead(
        key,
        target,
        None,
        0,
        None,
        sum(r.length for r in ranges),
        ranges,
        tuple(reader.shard_path(r.shard_id) for r in ranges),
        into,
        cost.allocates,
        cost.scratch,
        scratch,
        cost.least_scratch,
        keeps and not into,
    )


def box_read(
    reader: Any,
    key: str,
    target: str,
    box: tuple[tuple[int, int], ...],
    *,
    device: int,
    client: int,
    into: bool,
    keeps: bool,
    scratch: int,
) -> ValueRead:
    """The plan of ``reader.read_slice(key, box)`` for one device."""
    cost = reader.read_cost(key, box, into=into, scratch=scratch)
    numel = 1
    for _, length in box:
        numel *= length
    return ValueRead(
        key=key,
        target=target,
        device=device,
        client=client,
        box=box,
        needed=numel * reader.dtype_info(key).itemsize,
        ranges=tuple(cost.ranges),
        files=tuple(reader.shard_path(r.shard_id) for r in cost.ranges),
        in_place=into,
        allocates=cost.allocates,
        scratch=cost.scratch,
        scratch_limit=scratch,
        least_scratch=cost.least_scratch,
        keeps=keeps and not into,
    )


def peak_of(objects: Iterable[ObjectReads]) -> int:
    """The peak growth of assigning ``objects`` in order (rule R-PL-3): the arrays each keeps
    accumulate; the arrays it replaces are freed once it has its new values."""
    kept = peak = 0
    for obj in objects:
        peak = max(peak, kept + obj.peak())
        kept += obj.keeps
    return peak


def schedule(
    items: Sequence[_T],
    plan: Callable[[_T, int, int], ObjectReads],
    budget: int | None,
    *,
    what: str,
    path: str,
) -> list[ObjectReads]:
    """Plan each item's reads (``plan(item, scratch, threads)``) in the order they run,
    fitted to ``budget`` or refused before anything is read (rules R-MB-1, R-MB-2).

    Under a budget the scratch limit starts at an eighth of it; an item that would not fit
    the room the arrays kept so far leave runs on one thread with its scratch cut to that
    room. When even that does not fit, the smallest budget is the peak with one thread
    and one-row chunks everywhere.
    """
    scratch = READ_SCRATCH if budget is None else min(READ_SCRATCH, max(1, budget // 8))
    planned: list[ObjectReads] = []
    kept = 0
    for item in items:
        reads = plan(item, scratch, io_threads())
        if budget is not None and kept + reads.peak() > budget:
            allocates = sum(r.allocates for r in reads.reads)
            reads = plan(item, max(1, min(READ_SCRATCH, budget - kept - allocates)), 1)
        planned.append(reads)
        kept += reads.keeps
    if budget is not None and peak_of(planned) > budget:
        least = peak_of(plan(item, 1, 1) for item in items)
        check_budget(
            least,
            budget,
            what,
            path=path,
            hint="dtckpt explain or experimental_dry_run=True shows what each value takes",
        )
    return planned


def save_memory(
    tensors: Sequence[tuple[str, Any]], stable: Sequence[bool], *, copies: bool, writers: int
) -> int:
    """The extra memory of saving ``tensors`` (rule R-MB-3), from their metadata.

    ``copies``: an asynchronous save, which copies the values that are not ``stable``
    (O-CK-10). Writing adds a staging buffer per value that is not contiguous (at most
    ``WRITE_CHUNK``), one per data file written at once (``writers``), and the encoding
    of string tensors, one at a time.
    """
    from ..format.streams import WRITE_CHUNK
    from .sharded import is_sharded

    copied = 0
    staging: list[int] = []
    for (_, value), keeps in zip(tensors, stable, strict=True):
        arrays = _local_arrays(value) if is_sharded(value) else [value]
        for array in arrays:
            if not isinstance(array, np.ndarray):
                array = np.asarray(array)
            size = _encoded_bytes(array) if array.dtype == object else array.nbytes
            if copies and not keeps:
                copied += size
            if array.dtype == object:
                staging.append(size)
            elif array.dtype.byteorder == ">":
                staging.append(size)  # turned little-endian whole (F-WR-6)
            elif not array.flags.c_contiguous and array.ndim and array.size:
                row = size // array.shape[0]
                staging.append(min(max(1, WRITE_CHUNK // row), array.shape[0]) * row)
    staging.sort(reverse=True)
    return copied + sum(staging[: max(1, writers)])


def _local_arrays(value: Any) -> list[Any]:
    return [value.local_block(device) for device in value.placement.local_devices]


def _encoded_bytes(array: np.ndarray) -> int:
    """Bytes of a string tensor's encoding: its elements and a length varint each."""
    total = 0
    for item in array.reshape(-1):
        total += len(item) + 10 if isinstance(item, (bytes, str)) else 10
    return total


def check_budget(
    needed: int, budget: int | None, what: str, *, path: str | None = None, hint: str = ""
) -> None:
    """Rule R-MB-1: refuse, before any byte is read or written, work that needs more than
    ``budget`` bytes, naming the smallest budget that would do."""
    if budget is None or needed <= budget:
        return
    raise MemoryBudgetError(
        f"{what} needs {format_bytes(needed)} ({needed} bytes) of memory beyond what the "
        f"objects hold, more than the budget of {format_bytes(budget)} ({budget} bytes); "
        f"the smallest budget that works is experimental_memory_budget={needed}"
        + (f" ({hint})" if hint else ""),
        needed=needed,
        budget=budget,
        path=path,
    )


@dataclass
class RestorePlan:
    """What a restore of ``save_path`` reads and what memory it takes (rules R-PL-1..4).

    ``objects`` in the order they are assigned; ``matched`` pairs each checkpoint key with
    its target; ``unmatched`` names live objects with values no checkpoint value reaches;
    ``unused`` the checkpoint values this restore assigns to nothing, of which the
    ``deferred`` ones wait for an object that does not exist yet (they are restored when
    it is created, rule O-RS-3). ``peak_bytes`` is the peak extra memory of the
    values' reads; ``budget`` the budget it was planned under, if any.
    """

    save_path: str
    objects: list[ObjectReads] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)
    budget: int | None = None
    clients: int = 1

    # -- figures -------------------------------------------------------------------------
    @property
    def reads(self) -> Iterator[ValueRead]:
        for obj in self.objects:
            yield from obj.reads

    @property
    def matched(self) -> list[tuple[str, str]]:
        seen: dict[tuple[str, str], None] = {}
        for read in self.reads:
            seen.setdefault((read.key, read.target), None)
        return list(seen)

    @property
    def bytes_needed(self) -> int:
        return sum(r.needed for r in self.reads)

    @property
    def bytes_read(self) -> int:
        return sum(r.bytes_read for r in self.reads)

    @property
    def read_amplification(self) -> float:
        """Bytes read per byte needed (1.0: nothing read that is not used)."""
        needed = self.bytes_needed
        return self.bytes_read / needed if needed else 1.0

    @property
    def peak_bytes(self) -> int:
        return peak_of(self.objects)

    def files(self) -> dict[str, int]:
        """Bytes read from each data file."""
        out: dict[str, int] = {}
        for read in self.reads:
            for path, byte_range in zip(read.files, read.ranges, strict=True):
                out[path] = out.get(path, 0) + byte_range.length
        return dict(sorted(out.items()))

    def by_device(self) -> dict[tuple[int, int | None], list[ValueRead]]:
        """The reads of each ``(client, device)``; ``device`` None for whole values."""
        out: dict[tuple[int, int | None], list[ValueRead]] = {}
        for read in self.reads:
            out.setdefault((read.client, read.device), []).append(read)
        return dict(sorted(out.items(), key=lambda item: (item[0][0], _device_order(item[0][1]))))

    # -- output --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (``dtckpt explain --json``)."""
        devices = []
        for (client, device), reads in self.by_device().items():
            devices.append(
                {
                    "client": client,
                    "device": device,
                    "bytes_needed": sum(r.needed for r in reads),
                    "bytes_read": sum(r.bytes_read for r in reads),
                    "reads": [_read_dict(r) for r in reads],
                }
            )
        return {
            "save_path": self.save_path,
            "clients": self.clients,
            "bytes_needed": self.bytes_needed,
            "bytes_read": self.bytes_read,
            "read_amplification": round(self.read_amplification, 6),
            "peak_extra_bytes": self.peak_bytes,
            "memory_budget": self.budget,
            "files": [{"path": p, "bytes_read": n} for p, n in self.files().items()],
            "devices": devices,
            "matched": [{"key": k, "target": t} for k, t in self.matched],
            "unmatched": list(self.unmatched),
            "unused": list(self.unused),
            "deferred": list(self.deferred),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def format(self, *, ranges: bool = True) -> str:
        """The plan as text: totals, files, then each device's reads."""
        lines = [
            f"restore plan of {self.save_path}",
            f"  bytes needed {format_bytes(self.bytes_needed)}, read "
            f"{format_bytes(self.bytes_read)} (read amplification "
            f"{self.read_amplification:.2f}x)",
            f"  peak extra memory {format_bytes(self.peak_bytes)}"
            + (f" (budget {format_bytes(self.budget)})" if self.budget is not None else ""),
        ]
        files = self.files()
        lines.append(f"  files read: {len(files)}")
        lines.extend(f"    {path}  {format_bytes(n)}" for path, n in files.items())
        for (client, device), reads in self.by_device().items():
            who = "whole values" if device is None else f"device {device}"
            if self.clients > 1:
                who = f"client {client}, {who}"
            read = sum(r.bytes_read for r in reads)
            needed = sum(r.needed for r in reads)
            # A replica's block is read once, by its first device, and copied to the others.
            copied = sum(r.needed for r in reads if r.device is not None and not r.ranges)
            line = f"  {who}: needs {format_bytes(needed)}, reads {format_bytes(read)}"
            if copied:
                line += f" (and copies {format_bytes(copied)} another device reads)"
            lines.append(line)
            for r in reads:
                lines.append("    " + _describe(r))
                if ranges:
                    for path, byte_range in zip(r.files, r.ranges, strict=True):
                        lines.append(
                            f"      {_basename(path)} [{byte_range.offset}, "
                            f"{byte_range.offset + byte_range.length}) {_key(byte_range.key)}"
                        )
        for title, names in (
            ("unmatched objects (no value in the checkpoint)", self.unmatched),
            ("unused checkpoint values", self.unused),
            ("of which deferred (restored when their object is created)", self.deferred),
        ):
            if names:
                lines.append(f"  {title}: {len(names)}")
                lines.extend(f"    {name}" for name in names)
        return "\n".join(lines)


def _device_order(device: int | None) -> int:
    return -1 if device is None else device


def _read_dict(read: ValueRead) -> dict[str, Any]:
    return {
        "key": read.key,
        "target": read.target,
        "box": None if read.box is None else [list(e) for e in read.box],
        "bytes_needed": read.needed,
        "bytes_read": read.bytes_read,
        "in_place": read.in_place,
        "allocates": read.allocates,
        "scratch": read.scratch,
        "ranges": [
            {"file": path, "offset": r.offset, "length": r.length, "entry": _key(r.key)}
            for path, r in zip(read.files, read.ranges, strict=True)
        ],
    }


def _describe(read: ValueRead) -> str:
    box = "" if read.box is None else " [" + ", ".join(_extent(e) for e in read.box) + "]"
    how = "in place" if read.in_place else f"new array {format_bytes(read.allocates)}"
    if not read.ranges:
        how += ", copied from a replica"
    if read.scratch:
        how += f", scratch {format_bytes(read.scratch)}"
    return f"{read.key}{box} -> {read.target}: {format_bytes(read.needed)}, {how}"


def _extent(extent: Sequence[int]) -> str:
    start, length = extent
    return ":" if length < 0 else f"{start}:{start + length}"


def _key(key: bytes) -> str:
    """An entry's key as text: a slice key as ``NAME[start:stop,...]`` (its stored slice)."""
    from ..format.ordered_code import decode_tensor_name_slice
    from ..format.slices import format_slice

    if key[:1] == b"\x00":
        try:
            name, stored = decode_tensor_name_slice(key)
        except Exception:  # noqa: BLE001 - a key the index accepted but that is no slice key
            return key.decode("utf-8", "backslashreplace")
        return f"{name.decode('utf-8', 'backslashreplace')}[{format_slice(stored)}]"
    return key.decode("utf-8", "backslashreplace")


def _basename(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def format_bytes(count: int) -> str:
    """``1.5 MiB``-style sizes for messages and plans."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover - the loop returns at GiB

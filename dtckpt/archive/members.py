"""What ``pack`` puts in an archive, and where it cuts each file into frames (A-PK-1, A-PK-2).

Three kinds of input (rule A-PK-1)::

    PATH is a prefix           PATH.index + PATH.data-*-of-*          names: basename(PATH).*
    PATH is a directory        every file under it (a training dir    names: relative to PATH,
      (state file, SavedModel, with its 'checkpoint' state file, a     '/'-separated
       or any .index in it)    SavedModel with variables/...)

Frames are cut on tensor boundaries (rule A-PK-2): the ``.index`` of each packed bundle
says where every tensor of its data shards starts and ends, so a frame holds whole small
tensors or one piece of a large one, and the filter suits the tensors' dtype (A-FR-4).
Nothing here needs the checkpoint to be valid: a file whose index cannot be read is cut
into plain chunks, and unpacking gives its bytes back all the same.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass

from ..dtypes import DataType
from ..errors import CheckpointError, DataLossError, InvalidArgumentError, NotFoundError
from ..format.index import BundleIndex
from ..format.naming import DATA_SUFFIX_RE, data_filename
from ..storage.durable import (
    SHARDED_TEMP_SUFFIX,
    is_output_temporary_name,
    is_sharded_part_name,
    is_temporary_name,
)
from ..storage.inputs import file_kind, read_input
from .layout import FILTER_NONE, FILTER_SHUFFLE, MAX_NAME_BYTES, check_member_name

__all__ = [
    "CHUNK",
    "SMALL_REGION",
    "Member",
    "PlannedFrame",
    "collect_members",
    "element_size",
    "plan_frames",
    "plan_member_frames",
]

#: Raw bytes per frame at most (rule A-PK-2): memory stays a few frames' worth while packing,
#: unpacking or reading, and a 16-byte multiple, so large tensors split on item boundaries.
CHUNK = 4 << 20
#: Regions at least this long are worth a frame of their own when the filter changes.
SMALL_REGION = 64 << 10

#: Rule A-FR-4: the element size the byte-shuffle uses for each float dtype (complex numbers
#: as their float parts). Other dtypes are stored unfiltered.
_SHUFFLE_WIDTH = {
    int(DataType.DT_FLOAT): 4,
    int(DataType.DT_DOUBLE): 8,
    int(DataType.DT_HALF): 2,
    int(DataType.DT_BFLOAT16): 2,
    int(DataType.DT_COMPLEX64): 4,
    int(DataType.DT_COMPLEX128): 8,
}


def element_size(dtype: int) -> int:
    """The shuffle element size for a ``DataType`` value, 0 for no filter (rule A-FR-4)."""
    return _SHUFFLE_WIDTH.get(int(dtype), 0)


@dataclass(frozen=True)
class Member:
    """A file to pack: its name in the archive and where it is now."""

    name: str
    path: str


@dataclass(frozen=True)
class PlannedFrame:
    offset: int
    length: int
    filter_id: int
    element_size: int


# --- what to pack -------------------------------------------------------------------------


def collect_members(path: str, exclude: Iterable[str] = ()) -> list[Member]:
    """The files ``pack(path, ...)`` packs, sorted by name (rule A-PK-1).

    ``exclude`` lists files never to pack (the archive being written, when it lies inside
    the packed directory). Raises :class:`NotFoundError` when ``path`` holds no checkpoint.
    """
    path = os.fspath(path)
    skip = {os.path.realpath(p) for p in exclude}
    if os.path.isdir(path):
        return _directory_members(path, skip)
    if os.path.isfile(path + ".index"):
        return _prefix_members(path, skip)
    raise NotFoundError(
        "no checkpoint here: not a directory, and no prefix with a .index file", path=path
    )


def _is_temporary(directory: str, name: str) -> bool:
    """Rule S-TP-5: temporaries (of saves, packs, conversions) are never packed."""
    if is_temporary_name(name) or is_output_temporary_name(name):
        return True
    return directory.endswith(SHARDED_TEMP_SUFFIX) and is_sharded_part_name(name)


def _regular(full: str) -> None:
    """Rule H-SP-1: only regular files (or links to them) are packed; a FIFO, a device or
    a dangling link under a checkpoint's name is an error, never an empty member."""
    try:
        mode = os.stat(full).st_mode
    except OSError:
        raise InvalidArgumentError(
            "cannot pack this file: it cannot be read (a link to nothing?)", path=full
        ) from None
    if not stat.S_ISREG(mode):
        raise InvalidArgumentError(
            f"cannot pack this file: it is {file_kind(mode)}, not a regular file", path=full
        )


def _directory_members(root: str, skip: set[str]) -> list[Member]:
    members = []
    for directory, subdirs, files in os.walk(root):
        subdirs.sort()
        for name in files:
            full = os.path.join(directory, name)
            if _is_temporary(directory, name) or os.path.realpath(full) in skip:
                continue
            _regular(full)
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            members.append(Member(_checked_name(rel, full), full))
    members.sort(key=lambda m: m.name)
    names = {m.name for m in members}
    has_checkpoint = (
        "checkpoint" in names
        or "saved_model.pb" in names
        or "saved_model.pbtxt" in names
        or any(n.endswith(".index") for n in names)
    )
    if not has_checkpoint:
        raise NotFoundError(
            "no checkpoint in this directory (no 'checkpoint' state file, no SavedModel, "
            "no .index file)",
            path=root,
        )
    return members


def _prefix_members(prefix: str, skip: set[str]) -> list[Member]:
    directory = os.path.dirname(prefix) or "."
    base = os.path.basename(prefix)
    found = [base + ".index"]
    for name in sorted(os.listdir(directory)):
        match = DATA_SUFFIX_RE.search(name)
        if match and name[: match.start()] == base:
            found.append(name)
    num_shards = _num_shards(prefix + ".index")
    if num_shards is not None:
        _check_shards(prefix, num_shards, set(found))
    members = []
    for name in sorted(found):
        full = os.path.join(directory, name)
        if os.path.realpath(full) not in skip:
            _regular(full)
            members.append(Member(_checked_name(name, full), full))
    return members


def _check_shards(prefix: str, num_shards: int, found: set[str]) -> None:
    """Every data file the index names must be there; the first missing one is named.

    Only the names found are looked at, so a header claiming two billion shards costs the
    files present, not a loop over its shard ids (rule H-WK-1).
    """
    present = []
    for name in found:
        match = DATA_SUFFIX_RE.search(name)
        if match is not None and int(match.group(2)) == num_shards:
            shard = int(match.group(1))
            if name == os.path.basename(data_filename(prefix, shard, num_shards)):
                present.append(shard)
    missing = 0
    for shard in sorted(set(present)):
        if shard != missing:
            break
        missing += 1
    if missing < num_shards:
        name = os.path.basename(data_filename(prefix, missing, num_shards))
        raise NotFoundError(
            f"data file {name} is missing (the index says num_shards={num_shards})",
            path=os.path.join(os.path.dirname(prefix) or ".", name),
        )


def _num_shards(index_path: str) -> int | None:
    try:
        return BundleIndex(read_input(index_path), index_path).header.num_shards
    except CheckpointError:
        return None


def _checked_name(name: str, full: str) -> str:
    try:
        check_member_name(name)
    except DataLossError as exc:
        raise InvalidArgumentError(f"cannot pack this file: {exc.message}", path=full) from None
    if len(name.encode("utf-8", errors="surrogateescape")) > MAX_NAME_BYTES:
        raise InvalidArgumentError(
            f"cannot pack this file: its name is longer than {MAX_NAME_BYTES} bytes", path=full
        )
    return name


# --- where to cut ---------------------------------------------------------------------------


def plan_member_frames(
    members: list[Member], sizes: list[int], *, shuffle: bool = True
) -> list[list[PlannedFrame]]:
    """Frames for every member, cut on tensor boundaries where an index says where they are;
    ``shuffle=False`` cuts them the same way but leaves every frame unfiltered."""
    regions = _tensor_regions(members)
    plans = [
        plan_frames(size, regions.get(member.name, []))
        for member, size in zip(members, sizes, strict=True)
    ]
    if not shuffle:
        plans = [[PlannedFrame(f.offset, f.length, FILTER_NONE, 0) for f in p] for p in plans]
    return plans


def _tensor_regions(members: list[Member]) -> dict[str, list[tuple[int, int, int]]]:
    """``{data member name: [(offset, size, element_size), ...]}`` from each packed index."""
    names = {m.name: m for m in members}
    regions: dict[str, list[tuple[int, int, int]]] = {}
    for member in members:
        if not member.name.endswith(".index"):
            continue
        prefix = member.name[: -len(".index")]
        try:
            index = BundleIndex(read_input(member.path), member.path)
        except (CheckpointError, OSError):
            continue  # not a bundle index after all, or damaged: plain chunks
        shard_names = {
            shard: data_filename(prefix, shard, index.header.num_shards)
            for shard in range(max(index.header.num_shards, 0))
        }
        for key in index.keys:
            try:
                entry = index.entry(key)
            except CheckpointError:
                continue
            name = shard_names.get(entry.shard_id)
            if entry.slices or name not in names or entry.size <= 0:
                continue
            regions.setdefault(name, []).append(
                (entry.offset, entry.size, element_size(entry.dtype))
            )
    return regions


def plan_frames(
    size: int, regions: list[tuple[int, int, int]], chunk: int | None = None
) -> list[PlannedFrame]:
    """Cut a file of ``size`` bytes into frames (rule A-PK-2).

    ``regions`` are ``(offset, length, element_size)`` tensors in the file, in any order;
    overlapping or out-of-file ones are ignored, and the bytes between them are regions of
    their own with no filter. Regions of ``chunk`` bytes or more get frames of their own,
    cut every ``chunk`` bytes; smaller ones share frames of at most ``chunk`` bytes, and a
    change of element size starts a new frame when both sides are :data:`SMALL_REGION` or
    more. Each frame shuffles by the element size that covers most of its bytes.
    ``chunk`` defaults to :data:`CHUNK`.
    """
    chunk = CHUNK if chunk is None else chunk
    frames: list[PlannedFrame] = []
    run: list[tuple[int, int, int]] = []
    run_bytes = 0
    for offset, length, width in _tile(size, regions):
        if length >= chunk:
            _flush(run, frames)
            run, run_bytes = [], 0
            for start in range(offset, offset + length, chunk):
                piece = min(chunk, offset + length - start)
                frames.append(_frame([(start, piece, width)]))
            continue
        if run and _cut_before(run, run_bytes, length, width, chunk):
            _flush(run, frames)
            run, run_bytes = [], 0
        run.append((offset, length, width))
        run_bytes += length
    _flush(run, frames)
    return frames


def _cut_before(
    run: list[tuple[int, int, int]], run_bytes: int, length: int, width: int, chunk: int
) -> bool:
    """Whether a region must start a new frame rather than join the current run."""
    if run_bytes + length > chunk:
        return True
    if length < SMALL_REGION:
        return False  # small regions ride along whatever the filter
    # A sizeable region gets its own frame if it would sit off its item grid, or if its
    # filter differs from that of a sizeable run.
    misaligned = width > 1 and run_bytes % width != 0
    return misaligned or (width != run[-1][2] and run_bytes >= SMALL_REGION)


def _tile(size: int, regions: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """Sorted, non-overlapping regions covering ``[0, size)`` exactly, gaps unfiltered."""
    out = []
    pos = 0
    for offset, length, width in sorted(regions):
        if offset < pos or length <= 0 or offset + length > size:
            continue
        if offset > pos:
            out.append((pos, offset - pos, 0))
        out.append((offset, length, width))
        pos = offset + length
    if pos < size:
        out.append((pos, size - pos, 0))
    return out


def _flush(run: list[tuple[int, int, int]], frames: list[PlannedFrame]) -> None:
    if run:
        frames.append(_frame(run))


def _frame(run: list[tuple[int, int, int]]) -> PlannedFrame:
    offset = run[0][0]
    length = run[-1][0] + run[-1][1] - offset
    weight: dict[int, int] = {}
    for _, n, width in run:
        weight[width] = weight.get(width, 0) + n
    width = max(weight, key=lambda w: (weight[w], w))
    if width >= 2:
        return PlannedFrame(offset, length, FILTER_SHUFFLE, width)
    return PlannedFrame(offset, length, FILTER_NONE, 0)

"""Structure-aware generators: fuzzer bytes in, hostile files out (rule H-FZ-1).

Byte flips rarely build a partitioned tensor whose slice entry lists slices of its own, an
object graph 50,000 levels deep or an archive member 2,000 directories down. The generators
here read *choices* from the fuzzer's bytes (:class:`Draw`) and build such files on purpose:
every choice is a few bytes, so a coverage-guided fuzzer that changes a byte changes one
decision (a rank, a count, a spelling, which file becomes a FIFO), and the files stay
well-formed enough to reach the code under test. Each generator is deterministic in its
input; the same bytes always build the same files.

    Draw(data).int(lo, hi)      next 4 bytes, folded into [lo, hi] (zeros once exhausted)
    bundle_case(draw)           a bundle input (``shaping.join_bundle_input`` layout)
    graph_case(draw)            the bytes of a TrackableObjectGraph: deep, wide, cyclic
    archive_case(draw)          the bytes of a .dtar archive
    safetensors_case(draw)      the bytes of a .safetensors file
    npz_case(draw)              the bytes of an .npz (zip) file
    state_case(draw)            a manager scenario: checkpoints on disk and a state file
    special_case(draw)          which file of a checkpoint becomes a FIFO, device, directory...
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from dtckpt.format.crc import crc32c, mask
from dtckpt.format.messages import BundleEntry, BundleHeader, encode_entry, encode_header
from dtckpt.format.object_graph import (
    ObjectReference,
    SerializedTensor,
    SlotVariableReference,
    TrackableObject,
    TrackableObjectGraph,
    encode_object_graph,
)
from dtckpt.format.ordered_code import encode_tensor_name_slice
from dtckpt.format.table import encode_table
from tests.fuzz.shaping import join_bundle_input

__all__ = [
    "Draw",
    "bundle_case",
    "graph_case",
    "archive_case",
    "build_archive",
    "safetensors_case",
    "npz_case",
    "StateCase",
    "state_case",
    "SpecialCase",
    "special_case",
    "SPECIAL_KINDS",
    "SPECIAL_FILES",
]

_T = TypeVar("_T")

# Dimensions a generator likes: edges of int32/int64 and of NumPy's rank, small sizes.
_DIMS = (0, 1, 2, 3, 7, 64, 1 << 20, (1 << 31) - 1, 1 << 32, (1 << 62), (1 << 63) - 1)
_SHARDS = (1, 2, 3, 4, 7, 1 << 16, (1 << 31) - 1)


class Draw:
    """Choices taken from the front of ``data``; once it is used up every choice is the
    smallest, so short inputs build small files."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def word(self) -> int:
        chunk = self.data[self.pos : self.pos + 4]
        self.pos += 4
        return int.from_bytes(chunk.ljust(4, b"\0"), "little")

    def int(self, lo: int, hi: int) -> int:
        if hi <= lo:
            return lo
        return lo + self.word() % (hi - lo + 1)

    def bool(self, percent: int = 50) -> bool:
        return self.word() % 100 < percent

    def pick(self, options: Sequence[_T]) -> _T:
        return options[self.int(0, len(options) - 1)]

    def blob(self, most: int) -> bytes:
        n = self.int(0, most)
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out.ljust(n, b"\0")


# --- bundles -----------------------------------------------------------------------------


def _dim(draw: Draw) -> int:
    return draw.pick(_DIMS) if draw.bool(30) else draw.int(0, 6)


def _shape(draw: Draw) -> tuple[int, ...]:
    rank = draw.pick((0, 1, 2, 3, 4, 33, 64, 65, 200, 254, 255))
    if draw.bool(70):
        rank = draw.int(0, 4)
    if rank > 8:  # long shapes of ones, sometimes one huge dim among them
        dims = [1] * rank
        if draw.bool():
            dims[draw.int(0, rank - 1)] = _dim(draw)
        return tuple(dims)
    return tuple(_dim(draw) for _ in range(rank))


def _numel(shape: tuple[int, ...]) -> int:
    out = 1
    for d in shape:
        out *= d
        if out > 1 << 40:
            return 1 << 40
    return out


def bundle_case(draw: Draw) -> bytes:
    """A bundle: entries of any rank and dtype, plain or partitioned (slices that list
    slices, variants, slices stored twice), over a header claiming any number of shards."""
    num_shards = draw.pick(_SHARDS) if draw.bool(40) else 1
    items: dict[bytes, bytes] = {b"": encode_header(BundleHeader(num_shards=num_shards))}
    data = bytearray()
    for i in range(draw.int(1, 6)):
        key = b"t%d" % i
        dtype = draw.pick((1, 1, 1, 3, 7, 21, 9))  # float, int32, string, variant, int64
        shape = _shape(draw)
        if draw.bool(35) and shape:
            _partitioned(draw, items, data, key, dtype, shape, num_shards)
        else:
            items[key] = encode_entry(_stored(draw, data, dtype, shape, num_shards))
    return join_bundle_input(encode_table(sorted(items.items())), bytes(data), use_mmap=draw.bool())


def _stored(
    draw: Draw, data: bytearray, dtype: int, shape: tuple[int, ...], num_shards: int
) -> BundleEntry:
    """An entry with bytes in ``data``: sized right for small shapes, else as drawn."""
    itemsize = {1: 4, 3: 4, 9: 8}.get(dtype, 1)
    numel = _numel(shape)
    size = numel * itemsize if numel * itemsize <= 4096 else draw.int(0, 64)
    if draw.bool(20):
        size = draw.pick((0, 1, size + 1, 1 << 40, (1 << 63) - 1))
    offset = len(data)
    payload = bytes(draw.blob(min(size, 4096))) if size <= 4096 else b""
    data += payload
    crc = mask(crc32c(payload)) if draw.bool(80) else draw.word()
    if draw.bool(15):
        offset = draw.pick((0, 1 << 40, (1 << 63) - 1))
    shard = 0 if draw.bool(80) else draw.int(0, max(0, min(num_shards, 8)))
    return BundleEntry(dtype, shape, shard, offset, size, crc)


def _partitioned(
    draw: Draw,
    items: dict[bytes, bytes],
    data: bytearray,
    key: bytes,
    dtype: int,
    shape: tuple[int, ...],
    num_shards: int,
) -> None:
    """A full entry and its slices: row blocks of dim 0, sometimes overlapping, listing
    slices of their own (rule H-BD-8), or of another dtype or shape."""
    rows = shape[0]
    pieces = draw.int(1, 4)
    slices = []
    for p in range(pieces):
        start = min(rows, (rows * p) // pieces) if rows < 1 << 40 else p
        length = max(1, (rows * (p + 1)) // pieces - start) if rows < 1 << 40 else rows
        if draw.bool(15):
            start, length = 0, -1
        extent = ((start, length),) + tuple((0, -1) for _ in shape[1:])
        slices.append(extent)
    items[key] = encode_entry(BundleEntry(dtype, shape, slices=tuple(slices)))
    for extent in slices:
        part = tuple(
            (d if length == -1 else length) for d, (_, length) in zip(shape, extent, strict=True)
        )
        nested: tuple[tuple[tuple[int, int], ...], ...] = ()
        if draw.bool(25):  # a slice entry that lists slices: never size-checked (H-BD-8)
            nested = (tuple((0, -1) for _ in part),)
            part = shape if draw.bool() else part
        entry = _stored(draw, data, dtype if draw.bool(90) else 1, part, num_shards)
        if nested:
            entry = entry._replace(slices=nested)
        items[encode_tensor_name_slice(key, extent)] = encode_entry(entry)


# --- object graphs -------------------------------------------------------------------------


def graph_case(draw: Draw) -> bytes:
    """An object graph: a deep chain, a wide fan, a long-named path, cross edges back up the
    chain, slot variables pointing anywhere, unreachable nodes (rule H-WK-2)."""
    shape = draw.pick(("chain", "fan", "tree", "mixed"))
    count = draw.pick((1, 2, 3, 10, 50, 300))
    if draw.bool(8):  # now and then a big one: deep chains are what H-WK-2 is about
        count = draw.pick((2000, 20_000))
    name_length = draw.pick((0, 1, 1, 3, 40, 300))
    name = ("n" * name_length).replace("n", "a/b.", 1) if draw.bool(20) else "n" * name_length
    if name_length >= 40:
        count = min(count, 2000)  # long names: a deep chain of them is big enough at 2,000
    children: list[list[ObjectReference]] = [[] for _ in range(count)]
    for node in range(1, count):
        if shape == "chain":
            parent = node - 1
        elif shape == "fan":
            parent = 0
        elif shape == "tree":
            parent = (node - 1) // 2
        else:
            parent = node - 1 if node % 3 else 0
        children[parent].append(ObjectReference(node, name))
    for _ in range(draw.int(0, 8)):  # edges to nodes seen before: shown as references
        a, b = draw.int(0, count - 1), draw.int(0, count - 1)
        children[a].append(ObjectReference(b, "back"))
    slots: list[list[SlotVariableReference]] = [[] for _ in range(count)]
    for _ in range(draw.int(0, 4)):
        owner, original, slot = (draw.int(0, count + 1) for _ in range(3))
        if owner < count:
            slots[owner].append(SlotVariableReference(original, "m", slot))
    unreachable = draw.int(0, 3)
    nodes = [
        TrackableObject(
            tuple(children[i]),
            (SerializedTensor("VARIABLE_VALUE", "", f"k{i}"),) if i % 7 == 3 else (),
            tuple(slots[i]),
        )
        for i in range(count)
    ]
    nodes += [TrackableObject() for _ in range(unreachable)]
    return encode_object_graph(TrackableObjectGraph(tuple(nodes)))


# --- archives --------------------------------------------------------------------------------


def build_archive(
    members: list[tuple[str, bytes]],
    *,
    sizes: dict[str, int] | None = None,
    level: int = 3,
) -> bytes:
    """An archive of ``members`` in the order given (unchecked: names may be hostile);
    ``sizes`` overrides the size a file record claims."""
    from dtckpt.archive.frames import encode_frame
    from dtckpt.archive.layout import (
        FRAME_DTYPE,
        FileRecord,
        Footer,
        encode_footer,
        encode_header,
        encode_toc,
    )

    out = bytearray(encode_header())
    frames = []
    files = []
    for i, (name, data) in enumerate(members):
        raw = np.frombuffer(data, np.uint8)
        for start in range(0, len(data), 4 << 20):
            chunk = raw[start : start + (4 << 20)]
            frame = encode_frame(chunk, 0, 0, level)
            frames.append((i, start, len(chunk), len(out), len(frame), crc32c(chunk), 0, 0))
            out += frame
        size = (sizes or {}).get(name, len(data))
        files.append(FileRecord(name, size, crc32c(raw)))
    toc = encode_toc(files, np.array(frames, dtype=FRAME_DTYPE))
    offset = len(out)
    out += toc + encode_footer(Footer(offset, len(toc), crc32c(toc)))
    return bytes(out)


def archive_case(draw: Draw) -> bytes:
    """An archive: a small checkpoint, plus members whose names have thousands of components,
    lie under other members, whose sizes are 2**63 or more, or an index of zeros that
    decodes to far more than its compressed bytes (rules H-WK-1, H-AL-2, A-TC-2)."""
    index = encode_table([(b"", encode_header(BundleHeader()))])
    members: list[tuple[str, bytes]] = []
    sizes: dict[str, int] = {}
    prefix = draw.pick(("ckpt", "sub/ckpt", "a/" * 50 + "ckpt"))
    if draw.bool(70):
        members.append((prefix + ".index", index))
        members.append((prefix + ".data-00000-of-00001", draw.blob(64)))
    for i in range(draw.int(0, 4)):
        depth = draw.pick((1, 2, 3, 100, 2000)) if draw.bool(30) else draw.int(1, 4)
        parts = [f"d{i}"] + ["c"] * (depth - 1)
        members.append(("/".join(parts) + "x", draw.blob(16)))
    if draw.bool(20) and members:
        members.append((members[0][0] + "/under", b"x"))
    if draw.bool(20):
        zeros = draw.pick((1 << 20, 8 << 20, 20 << 20))
        members.append(("z.index", bytes(zeros)))
    if draw.bool(15) and members:
        sizes[members[-1][0]] = draw.pick(((1 << 63), (1 << 64) - 1, (1 << 62) + 1))
    members.sort(key=lambda m: m[0])
    return build_archive(members, sizes=sizes, level=1)


# --- safetensors and npz ----------------------------------------------------------------------


def safetensors_case(draw: Draw) -> bytes:
    """A ``.safetensors`` file: shapes of up to 200,000 dims, huge or zero dims, ranks past
    NumPy's 64, offsets that do or do not match (rules H-WK-1, H-BD-7)."""
    header: dict[str, object] = {}
    buffer = bytearray()
    for i in range(draw.int(0, 3)):
        rank = draw.pick((0, 1, 2, 63, 64, 65, 1000, 200_000))
        dims = [1] * rank
        if rank and draw.bool():
            dims[draw.int(0, rank - 1)] = draw.pick(_DIMS)
        dtype = draw.pick(("F32", "U8", "F64", "BF16", "I64"))
        width = {"F32": 4, "U8": 1, "F64": 8, "BF16": 2, "I64": 8}[dtype]
        numel = _numel(tuple(dims))
        length = numel * width if numel * width <= 4096 else draw.int(0, 64)
        begin = len(buffer)
        buffer += draw.blob(min(length, 4096)).ljust(length, b"\0")[:length]
        end = len(buffer) if draw.bool(90) else draw.int(0, 1 << 20)
        header[f"t{i}"] = {"dtype": dtype, "shape": dims, "data_offsets": [begin, end]}
    if draw.bool(20):
        header["__metadata__"] = {"dtckpt.dtypes": json.dumps({"t0": "complex128"})}
    body = json.dumps(header, separators=(",", ":")).encode()
    body += b" " * (-len(body) % 8)
    return struct.pack("<Q", len(body)) + body + bytes(buffer)


def _npy(descr: str, shape: tuple[int, ...], payload: bytes) -> bytes:
    text = f"{{'descr': {descr!r}, 'fortran_order': False, 'shape': {shape!r}, }}"
    body = text.encode("latin-1")
    version = 1 if len(body) < 60000 else 2
    fixed = 10 if version == 1 else 12
    length = len(body) + 1 + (-(fixed + len(body) + 1) % 64)
    word = struct.pack("<H" if version == 1 else "<I", length)
    return b"\x93NUMPY" + bytes((version, 0)) + word + body.ljust(length - 1) + b"\n" + payload


def npz_case(draw: Draw) -> bytes:
    """An ``.npz``: members whose ``.npy`` headers claim huge shapes, ranks past 64, shapes of
    thousands of dims, or sizes that disagree with their bytes."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for i in range(draw.int(0, 3)):
            rank = draw.pick((0, 1, 2, 64, 65, 3000))
            dims = [1] * rank
            if rank and draw.bool():
                dims[draw.int(0, rank - 1)] = draw.pick(_DIMS)
            descr = draw.pick(("<f4", "|u1", "<f8", "|S3"))
            numel = _numel(tuple(dims))
            width = int(descr[2:])
            length = numel * width if numel * width <= 4096 else draw.int(0, 64)
            if draw.bool(15):
                length = draw.int(0, 64)
            archive.writestr(f"t{i}.npy", _npy(descr, tuple(dims), draw.blob(length)[:length]))
    return out.getvalue()


# --- the manager's state file ----------------------------------------------------------------


@dataclass(frozen=True)
class StateCase:
    """Checkpoints ``ckpt-N`` present on disk, the state file's lines, and the manager's
    ``max_to_keep``; ``spellings`` maps each listed path to the checkpoint it means (or
    ``None`` for one outside the directory)."""

    present: tuple[int, ...]
    listed: tuple[str, ...]
    max_to_keep: int
    save_number: int


_SPELLINGS = ("{}", "./{}", "sub/../{}", "alias/{}", "{dir}/{}", "../outside/{}", "sub/{}")


def state_case(draw: Draw) -> StateCase:
    """A state file listing checkpoints under many spellings (rule S-MG-3), some outside the
    directory (S-MG-2), some listed twice, and a save that may re-use a listed number."""
    present = tuple(sorted({draw.int(1, 6) for _ in range(draw.int(0, 4))}))
    listed = []
    for _ in range(draw.int(0, 6)):
        name = f"ckpt-{draw.int(1, 6)}"
        listed.append(draw.pick(_SPELLINGS).replace("{}", name, 1))
    return StateCase(present, tuple(listed), draw.int(1, 3), draw.int(1, 7))


# --- special files ----------------------------------------------------------------------------

#: What a file of a checkpoint may be replaced with (rule H-SP-1).
SPECIAL_KINDS = ("fifo", "dev-zero", "directory", "dangling-link", "socket")
#: Which file: the index, a data file, the state file, an archive, an npz or safetensors file.
SPECIAL_FILES = ("index", "data", "state", "archive", "npz", "safetensors")


@dataclass(frozen=True)
class SpecialCase:
    kind: str
    file: str
    #: Which entry point reads it (an index into ``targets._SPECIAL_READERS``).
    reader: int


def special_case(draw: Draw) -> SpecialCase:
    return SpecialCase(draw.pick(SPECIAL_KINDS), draw.pick(SPECIAL_FILES), draw.int(0, 7))

"""Valid inputs for every fuzz target, built from the TF-written goldens in ``spec/golden``.

A fuzzer that starts from real files reaches deep code at once: a mutated golden index already
has a footer, blocks and entries, so its mutations exercise the entry and shape checks instead
of dying at the magic number. Each builder returns a list of ``bytes`` in the input layout of
its target (``tests/fuzz/targets.py``).
"""

from __future__ import annotations

import functools
import os
import pathlib
import random
import tempfile

from dtckpt.checkpoint.state import CheckpointState, format_checkpoint_state
from dtckpt.format.bundle_reader import BundleReader
from dtckpt.format.messages import encode_slice
from dtckpt.format.ordered_code import encode_tensor_name_slice
from dtckpt.format.strings import encode_string_tensor
from dtckpt.format.table import data_blocks, decode_table
from dtckpt.format.varint import encode_varint
from dtckpt.mesh import Layout, create_mesh
from tests.fuzz.shaping import join_bundle_input

__all__ = ["SEEDS", "seeds"]

GOLDEN = pathlib.Path(__file__).resolve().parent.parent.parent / "spec" / "golden"
#: Files above this size make slow seeds; the large golden is reached by the kernel checks.
_MAX_SEED_BYTES = 64 << 10
OBJECT_GRAPH_KEY = b"_CHECKPOINTABLE_OBJECT_GRAPH"


@functools.cache
def _index_files() -> tuple[pathlib.Path, ...]:
    found = sorted(GOLDEN.glob("**/*.index"))
    return tuple(p for p in found if p.stat().st_size <= _MAX_SEED_BYTES)


def _indexes() -> list[bytes]:
    return [p.read_bytes() for p in _index_files()]


def _bundles() -> list[bytes]:
    out: list[bytes] = []
    for path in _index_files():
        shards = sorted(path.parent.glob(path.name[: -len(".index")] + ".data-00000-of-*"))
        blob = shards[0].read_bytes() if shards else b""
        if len(blob) <= _MAX_SEED_BYTES:
            out.append(join_bundle_input(path.read_bytes(), blob, use_mmap=len(out) % 2 == 1))
    return out


def _values() -> list[bytes]:
    """Every value stored in the golden indexes: headers and ``BundleEntryProto`` records."""
    values: set[bytes] = set()
    for data in _indexes():
        values.update(value for _, value in decode_table(data))
    return sorted(values)


def _blocks() -> list[bytes]:
    out: list[bytes] = []
    for data in _indexes():
        out.extend(data[offset : offset + size] for offset, size in data_blocks(data))
        footer = len(data) - 48
        out.append(data[:footer])  # the metaindex and index blocks end just before the footer
    return out


def _object_graphs() -> list[bytes]:
    out = []
    for path in _index_files():
        prefix = str(path)[: -len(".index")]
        with BundleReader(prefix) as reader:
            if OBJECT_GRAPH_KEY in reader:
                value = reader.read(OBJECT_GRAPH_KEY)
                out.append(bytes(value.reshape(-1)[0]))
    return out


def _states() -> list[bytes]:
    out = [p.read_bytes() for p in sorted(GOLDEN.glob("**/checkpoint"))]
    state = CheckpointState(
        'dir/ckpt-"9"\\\n',
        ["ckpt-1", "caf\u00e9/ckpt-2", "raw\udcff"],
        [1.5, 1e20, -2.25e-5],
        1795502766.4627256,
    )
    out.append(format_checkpoint_state(state).encode("utf-8", errors="surrogateescape"))
    out.append(b"# a comment\nmodel_checkpoint_path: 'ckpt-\\101\\x41'\n")
    return out


def _strings() -> list[bytes]:
    out = []
    for big_endian in (False, True):
        for elements in ([b""], [b"a", b"bc", b"\x00" * 200], [b"x" * 130, b"", b"\xff"]):
            chunks, _, _ = encode_string_tensor(elements, big_endian=big_endian)
            flags = int(big_endian) | 2  # bit 1: repair the checksums
            out.append(bytes((flags,)) + encode_varint(len(elements)) + b"".join(chunks))
    return out


_SPECS = [
    "4 6 0,2:-",
    "4 6 -:1,3",
    "10 -",
    "2 3 4 1,1:-:0,4",
    "9223372036854775807 0,9223372036854775807",
    "+3\t 0,1",
    "5 0 -:-",
]


def _slice_texts() -> list[bytes]:
    return [s.encode() for s in _SPECS]


def _slice_keys() -> list[bytes]:
    return [
        encode_tensor_name_slice(b"w", ((0, 2), (0, -1))),
        encode_tensor_name_slice(b"a\x00b\xffc", ((5, 300), (1 << 40, 7), (-(1 << 62), 1))),
        encode_tensor_name_slice(b"", ()),
    ]


def _meshes() -> list[bytes]:
    meshes = [
        create_mesh([("x", 2), ("y", 4)], device_type="CPU"),
        create_mesh([("batch", 1)], mesh_name="m", device_type="GPU"),
        create_mesh([("a", 2), ("b", 1), ("c", 2)], device_type="TPU", use_xla_spmd=True),
    ]
    return [m.to_string().encode() for m in meshes]


def _layouts() -> list[bytes]:
    mesh = create_mesh([("x", 2), ("y", 4)], device_type="CPU")
    layouts = [
        Layout(["x", "unsharded"], mesh),
        Layout([], mesh),
        Layout(["unsharded", "y", "match"], mesh),
    ]
    return [layout.to_string().encode() for layout in layouts]


def _wire() -> list[bytes]:
    return _values()[:32] + _object_graphs()[:4] + [encode_slice(((0, 2), (3, -1)))]


def _random(count: int, size: int, salt: int) -> list[bytes]:
    """Choices for a generator: fixed pseudo-random bytes, so seeds never change."""
    return [random.Random(salt * 1000 + i).randbytes(size) for i in range(count)]


def _golden_prefix() -> str:
    return str(GOLDEN / "dtypes" / "ckpt")


@functools.cache
def _converted() -> dict[str, bytes]:
    """The golden ``dtypes`` checkpoint as an archive, an .npz and a .safetensors file."""
    from dtckpt.archive import pack
    from dtckpt.interop.convert import convert

    out = {}
    with tempfile.TemporaryDirectory() as directory:
        for suffix in (".dtar", ".npz", ".safetensors"):
            target = os.path.join(directory, "x" + suffix)
            if suffix == ".dtar":
                pack(_golden_prefix(), target)
            else:
                convert(_golden_prefix(), target, skip_unsupported=True)
            out[suffix] = pathlib.Path(target).read_bytes()
    return out


def _file_seeds(suffix: str, salt: int) -> list[bytes]:
    """Mode 0: a real file to flip bytes in; mode 1: choices for the generator."""
    raw = [b"\x00" + _converted()[suffix]]
    return raw + [b"\x01" + r for r in _random(6, 96, salt)]


def _special() -> list[bytes]:
    import struct

    from tests.fuzz.generators import SPECIAL_FILES, SPECIAL_KINDS

    out = []
    for kind in range(len(SPECIAL_KINDS)):
        for file in range(len(SPECIAL_FILES)):
            out.append(struct.pack("<III", kind, file, (kind + file) % 8))
    return out


SEEDS = {
    "table": _indexes,
    "index": _indexes,
    "block": _blocks,
    "entry": _values,
    "bundle": _bundles,
    "strings": _strings,
    "object_graph": _object_graphs,
    "state": _states,
    "slices": _slice_texts,
    "ordered_code": _slice_keys,
    "mesh": _meshes,
    "layout": _layouts,
    "wire": _wire,
    "bundle_gen": lambda: _random(12, 160, 1),
    "graph_gen": lambda: _random(8, 64, 2),
    "archive": lambda: _file_seeds(".dtar", 3),
    "safetensors": lambda: _file_seeds(".safetensors", 4),
    "npz": lambda: _file_seeds(".npz", 5),
    "manager": lambda: _random(8, 64, 6),
    "special": _special,
}


@functools.cache
def seeds(target: str) -> tuple[bytes, ...]:
    """The seeds of ``target`` (never empty: the empty input is always one)."""
    return (b"", *SEEDS[target]())

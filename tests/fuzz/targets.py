"""Fuzz targets: one function per decoder, each taking the fuzzer's bytes (rule H-FZ-1).

A target builds its input from ``data``, calls the API, and checks what the API promises:

* only the exception types in :data:`ALLOWED` escape (dtckpt's typed errors; ``Mesh`` and
  ``Layout`` parsing promise :class:`InvalidArgumentError`, which is also a ``ValueError``);
  any other exception, or an ``AssertionError`` from a check below, is a *finding*;
* errors about files name the file (``path``), as rule H-ER-1 asks;
* what decodes re-encodes to the same value (round trips), and where two implementations
  exist they agree: the Numba kernels against their NumPy twins, the bulk index decoder against
  the generic table and protobuf decoders.

The harnesses (``test_fuzz.py``, ``test_corpus.py``, ``tests/stress/fuzz_long.py``) add the
allocation budget of rule H-AL-1 and the per-input time limit.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import pathlib
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

import dtckpt.format.index as index_module
import dtckpt.kernels
from dtckpt.checkpoint.state import format_checkpoint_state, parse_checkpoint_state
from dtckpt.cli._tree import MAX_PATH_CHARS, MAX_TREE_DEPTH, GraphView
from dtckpt.cli.inspect import MAX_LISTED_MISSING, describe
from dtckpt.errors import CheckpointError, InvalidArgumentError
from dtckpt.format import wire
from dtckpt.format.bundle_reader import BundleReader
from dtckpt.format.index import BundleIndex, check_header, validate_entry
from dtckpt.format.messages import (
    BundleEntry,
    decode_entry,
    decode_header,
    decode_shape,
    decode_slice,
)
from dtckpt.format.naming import data_filename
from dtckpt.format.object_graph import decode_object_graph, encode_object_graph
from dtckpt.format.ordered_code import (
    decode_num_increasing,
    decode_signed_num_increasing,
    decode_string,
    decode_tensor_name_slice,
    encode_num_increasing,
    encode_signed_num_increasing,
    encode_string,
    encode_tensor_name_slice,
)
from dtckpt.format.slices import (
    format_shape_and_slice,
    format_slice,
    parse_shape_and_slice,
    parse_slice,
)
from dtckpt.format.strings import decode_string_tensor, encode_string_tensor
from dtckpt.format.table import decode_block, decode_table, entries_limit
from dtckpt.format.varint import decode_varint
from dtckpt.format.verify import verify_bundle
from dtckpt.kernels import reference
from dtckpt.mesh import Layout, Mesh
from tests.fuzz.shaping import fix_string_checksums, fix_table_checksums, split_bundle_input
from tests.fuzz.targets_io import IO_TARGETS, real_size

__all__ = ["TARGETS", "ALLOWED", "Target", "run", "jit_kernels"]

INDEX_PATH = "fuzz.index"


@dataclass(frozen=True)
class Target:
    name: str
    run: Callable[[bytes], None]
    allowed: tuple[type[BaseException], ...]
    #: What the target feeds, for the long run's report.
    covers: str

    def real_size(self, data: bytes) -> int:
        """The input bytes the allocation budget counts (rule H-AL-1): ``data``, or the
        files a generator builds from it."""
        return real_size(self.name, data)


def run(target: Target, data: bytes) -> BaseException | None:
    """Run ``target`` on ``data``; return the allowed error it raised, if any.

    Anything else propagates: that is a finding.
    """
    try:
        target.run(data)
    except target.allowed as exc:
        return exc
    return None


@functools.cache
def jit_kernels() -> ModuleType | None:
    """The Numba twins, unless Numba is disabled or missing (then only NumPy runs)."""
    if os.environ.get("DTCKPT_DISABLE_NUMBA", "") not in ("", "0"):
        return None
    try:
        from dtckpt.kernels import jit
    except ImportError:
        return None
    # Load the backend now: until it is loaded, dtckpt.kernels.sized keeps jobs under
    # COLD_START_BYTES on the twins, which would make the bulk path below a second NumPy run.
    if dtckpt.kernels.backend() != "numba":
        return None
    return jit


def _outcome(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``, or the typed error it raised (compared by type and message)."""
    try:
        return fn(*args)
    except CheckpointError as exc:
        return exc


def _failed(value: object) -> bool:
    return isinstance(value, CheckpointError)


def _same(what: str, a: object, b: object) -> None:
    if _normal(a) != _normal(b):
        raise AssertionError(f"{what} disagree:\n  {a!r}\n  {b!r}")


def _normal(value: object) -> object:
    if isinstance(value, CheckpointError):
        return (type(value).__name__, str(value))
    if isinstance(value, np.ndarray):
        flat = value.reshape(-1).tolist() if value.dtype == object else value.tobytes()
        return ("ndarray", value.dtype.str, value.shape, flat)
    if isinstance(value, (tuple, list)) and not hasattr(value, "_fields"):
        return type(value)(_normal(v) for v in value)
    return value


def _located(exc: CheckpointError, path: str) -> None:
    """Rule H-ER-1: an error about a file names that file."""
    if exc.path is None or not exc.path.startswith(path):
        raise AssertionError(f"{type(exc).__name__} does not name the file: {path!r}: {exc}")


# --- table.py and the .index file -----------------------------------------------------------


def table_target(data: bytes) -> None:
    """``decode_table`` on the raw bytes (checksums as given) and on repaired checksums."""
    _outcome(decode_table, data)
    decode_table(fix_table_checksums(data))


@contextlib.contextmanager
def _batch_threshold(threshold: int) -> Iterator[None]:
    """Make ``BundleIndex`` pick the bulk kernels for indexes from ``threshold`` bytes on."""
    saved = index_module.BATCH_THRESHOLD
    index_module.BATCH_THRESHOLD = threshold
    try:
        yield
    finally:
        index_module.BATCH_THRESHOLD = saved


@contextlib.contextmanager
def _columns_always() -> Iterator[None]:
    """Make ``BundleIndex`` decode even a few entries into columns (not one by one)."""
    saved = index_module._FEW_ENTRIES
    index_module._FEW_ENTRIES = -1
    try:
        yield
    finally:
        index_module._FEW_ENTRIES = saved


def _located_outcome(fn: Callable[..., Any], *args: Any) -> Any:
    value = _outcome(fn, *args)
    if _failed(value):
        _located(value, INDEX_PATH)
    return value


def _index_view(data: bytes) -> tuple[Any, ...]:
    """Everything a ``BundleIndex`` of ``data`` says, errors included, for comparison."""
    index = BundleIndex(data, INDEX_PATH)
    entries = [_located_outcome(index.entry, key) for key in index.keys]
    listing = _located_outcome(lambda: (index.visible_keys(), index.shape_map(), index.dtype_map()))
    return (index.header, list(index.keys), entries, listing)


def index_target(data: bytes) -> None:
    """``BundleIndex`` on the repaired bytes, every entry and listing, four ways.

    The small-index path (NumPy twins) is the one atheris instruments; an index of a few
    entries is also decoded into columns, as bigger ones are, and must say the same; the bulk
    path (Numba, normally used from 64 KiB on) runs on the same bytes and must say the same;
    and where the index decodes, the generic table and protobuf decoders must read the same
    keys and entries.
    """
    fixed = fix_table_checksums(data)
    view = _located_outcome(_index_view, fixed)
    with _columns_always():
        columns = _located_outcome(_index_view, fixed)
    _same("an index of a few entries decoded one by one and into columns", view, columns)
    if jit_kernels() is not None:
        with _batch_threshold(0):
            bulk = _outcome(_index_view, fixed)
        _same("index decoded by the NumPy twins and by the Numba kernels", view, bulk)
    if _failed(view):
        raise view
    _, keys, entries, _ = view
    items = decode_table(fixed)
    _same("index keys and table keys", [b""] + keys, [k for k, _ in items])
    for (_, value), entry in zip(items[1:], entries, strict=True):
        if not _failed(entry):
            _same("bulk entry and decode_entry", entry, decode_entry(value))


def block_target(data: bytes) -> None:
    """One SSTable block: ``decode_block`` and both ``decode_block_entries`` twins agree."""
    limit = entries_limit(data)
    budget = 64 << 10  # key bytes: a forged block may describe far more (rule H-BD-5)
    python = _outcome(decode_block, data, budget)
    twins = [reference] + ([jit_kernels()] if jit_kernels() is not None else [])
    for twin in twins:
        assert twin is not None
        try:
            keys, key_offsets, value_offsets, value_lengths = twin.decode_block_entries(
                np.frombuffer(data, np.uint8), limit, budget
            )
        except ValueError as exc:
            if not _failed(python):
                message = f"{twin.__name__} refuses a block decode_block reads: {exc}"
                raise AssertionError(message) from None
            continue
        joined = keys.tobytes()
        bounds = key_offsets.tolist()
        decoded = [
            (joined[bounds[i] : bounds[i + 1]], data[v : v + n])
            for i, (v, n) in enumerate(
                zip(value_offsets.tolist(), value_lengths.tolist(), strict=True)
            )
        ]
        _same(f"decode_block and {twin.__name__}.decode_block_entries", python, decoded)


# --- protobuf messages ---------------------------------------------------------------------


def entry_target(data: bytes) -> None:
    """``BundleEntryProto``/``BundleHeaderProto`` decoders, entry validation, and the bulk
    ``parse_bundle_entries`` twins, which must read simple entries as ``decode_entry`` does."""
    entry = _outcome(decode_entry, data)
    if not _failed(entry):
        for num_shards in (1, 3):
            _outcome(validate_entry, b"k", entry, num_shards, INDEX_PATH)
    header = _outcome(decode_header, data)
    if not _failed(header):
        _outcome(check_header, header, INDEX_PATH)
    view = memoryview(data)
    _outcome(decode_shape, view)
    _outcome(decode_slice, view)
    blob = np.frombuffer(data, np.uint8)
    starts, ends = np.array([0], np.int64), np.array([len(data)], np.int64)
    twins = [reference] + ([jit_kernels()] if jit_kernels() is not None else [])
    columns = [twin.parse_bundle_entries(blob, starts, ends) for twin in twins if twin]
    for other in columns[1:]:
        _same("parse_bundle_entries twins", columns[0], other)
    simple, dtype, shard, offset, size, crc, _, dims = columns[0]
    if simple[0]:
        bulk = BundleEntry(
            int(dtype[0]),
            tuple(dims.tolist()),
            int(shard[0]),
            int(offset[0]),
            int(size[0]),
            int(crc[0]),
        )
        _same("parse_bundle_entries and decode_entry", bulk, entry)


def wire_target(data: bytes) -> None:
    """The raw protobuf field iterator, three levels of nested messages deep."""
    _fields(memoryview(data), depth=3)


def _fields(view: memoryview, depth: int) -> None:
    for _, wire_type, value in wire.iter_fields(view):
        if wire_type == wire.LEN and depth > 0:
            assert isinstance(value, memoryview)
            _outcome(_fields, value, depth - 1)
        elif wire_type != wire.LEN and not 0 <= int(value) < 1 << 64:
            raise AssertionError(f"field value {value} is not a uint64")


def object_graph_target(data: bytes) -> None:
    """``decode_object_graph``; what it returns re-encodes to the same graph, and ``inspect``
    draws and lists it with bounded paths, depth and lines (rule H-WK-2)."""
    graph = decode_object_graph(data)
    _same("object graph round trip", graph, decode_object_graph(encode_object_graph(graph)))
    view = GraphView(graph, _NoEntries())
    lines = view.render()
    listed = view.as_json()["nodes"]
    longest_name = max(
        (len(ref.local_name) for node in graph.nodes for ref in node.children), default=0
    )
    slot_names = max(
        (len(s.slot_name) for node in graph.nodes for s in node.slot_variables), default=0
    )
    limit = 4 * MAX_TREE_DEPTH + 2 * MAX_PATH_CHARS + longest_name + slot_names + 200
    for line in lines:
        if len(line) > limit and not line.startswith("nodes not reachable"):
            raise AssertionError(f"a tree line of {len(line)} characters (limit {limit})")
    edges = sum(len(n.children) + len(n.slot_variables) for n in graph.nodes)
    if len(lines) > 2 + edges + len(graph.nodes):  # a line per edge, a note per deep node
        raise AssertionError(f"{len(lines)} tree lines for {len(graph.nodes)} nodes")
    for node in listed:
        if node["path"] is not None and len(node["path"]) > MAX_PATH_CHARS:
            raise AssertionError(f"a path of {len(node['path'])} characters")


class _NoEntries:
    """A bundle without any tensor, for drawing a graph alone."""

    def __contains__(self, key: object) -> bool:
        return False

    def entry(self, key: str) -> BundleEntry:
        raise AssertionError("no entries")


# --- the bundle reader --------------------------------------------------------------------


@functools.cache
def _scratch() -> pathlib.Path:
    """One directory reused by every execution (a fresh one per process, removed at exit)."""
    path = tempfile.mkdtemp(prefix="dtckpt-fuzz-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return pathlib.Path(path)


def _write_bundle(index: bytes) -> str:
    directory = _scratch()
    for name in os.listdir(directory):
        os.unlink(directory / name)
    prefix = str(directory / "ckpt")
    (directory / "ckpt.index").write_bytes(index)
    return prefix


def bundle_target(data: bytes) -> None:
    """``BundleReader`` over a fuzzed index and data file: read every key, whole and a half.

    The data bytes are written as every shard the header names (up to four), so that shard
    ids, offsets, sizes and shapes from the index meet a real file.
    """
    index, blob, use_mmap = split_bundle_input(data)
    prefix = _write_bundle(fix_table_checksums(index))
    try:
        reader = BundleReader(prefix, mmap=use_mmap)
    except CheckpointError as exc:
        _located(exc, prefix)
        raise
    with reader:
        shards = min(max(reader.num_shards, 0), 4)
        for shard in range(shards):
            pathlib.Path(data_filename(prefix, shard, reader.num_shards)).write_bytes(blob)
        for key in reader.raw_keys():
            _read_key(reader, key, prefix, shards * len(blob))
        _outcome(reader.keys)
        _verify_and_list(reader, shards)


def _verify_and_list(reader: BundleReader, shards: int) -> None:
    """``verify`` and ``inspect`` of the bundle: their work and output follow the entries and
    the files present, whatever ``num_shards`` claims (rule H-WK-1)."""
    report = verify_bundle(reader)
    entries = len(reader.raw_keys())
    if len(report.problems) > 4 * entries + 2 * shards + 4:
        raise AssertionError(f"{len(report.problems)} problems for {entries} entries")
    checkpoint = _Listing(reader)
    try:
        listing = describe(checkpoint)  # type: ignore[arg-type]
    except CheckpointError:
        return
    missing = listing["totals"]["missing_shards"]
    if len(missing) > MAX_LISTED_MISSING:
        raise AssertionError(f"{len(missing)} missing shards listed")
    expected = max(reader.num_shards, 0) - shards
    if listing["totals"]["missing_shard_count"] != expected:
        raise AssertionError(f"missing shards counted {listing['totals']['missing_shard_count']}")


class _Listing:
    """What ``inspect``'s ``describe`` needs of a ``CheckpointReader``."""

    def __init__(self, bundle: BundleReader) -> None:
        self.bundle = bundle
        self.prefix = bundle.prefix


def _read_key(reader: BundleReader, key: bytes, prefix: str, data_bytes: int) -> None:
    try:
        entry = reader.entry(key)
        value = reader.read(key)
        if value.size > data_bytes:  # every element takes a byte of its own at least (H-AL-1)
            raise AssertionError(
                f"more elements than data bytes: {value.size} elements from {data_bytes} bytes"
            )
        if entry.shape and entry.shape[0] >= 2:
            box = ((0, entry.shape[0] // 2),) + ((0, -1),) * (len(entry.shape) - 1)
            part = reader.read_slice(key, box)
            _same("read_slice and read", part, value[: entry.shape[0] // 2])
    except CheckpointError as exc:
        _located(exc, prefix)


# --- strings, slices, ordered code ----------------------------------------------------------


def strings_target(data: bytes) -> None:
    """``decode_string_tensor``. Layout: flags byte (bit 0 big-endian, bit 1 repair the
    checksums), a varint element count, then the tensor bytes."""
    if not data:
        return
    flags = data[0]
    count, pos = decode_varint(data, 1)
    buf = data[pos:]
    big = bool(flags & 1)
    crc = int.from_bytes(buf[-4:].rjust(4, b"\0"), "little")
    if flags & 2:
        buf, crc = fix_string_checksums(buf, count, big_endian=big)
    values = decode_string_tensor(buf, count, crc, big_endian=big)
    if len(values) != count:
        raise AssertionError(f"{len(values)} strings decoded, {count} asked for")
    chunks, again, _ = encode_string_tensor(list(values), big_endian=big)
    _same(
        "string tensor round trip",
        list(values),
        list(decode_string_tensor(b"".join(chunks), count, again, big_endian=big)),
    )


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="surrogateescape")


def slices_target(data: bytes) -> None:
    """``parse_shape_and_slice``/``parse_slice``; parsed specs format, re-parse and become slice
    keys that decode back to the same extents."""
    text = _text(data)
    tensor_slice = _outcome(parse_slice, text)
    if not _failed(tensor_slice):
        _same("slice round trip", tensor_slice, parse_slice(format_slice(tensor_slice)))
    parsed = parse_shape_and_slice(text)
    if parsed is None:
        return
    shape, extents = parsed
    _same(
        "shape_and_slice round trip",
        parsed,
        parse_shape_and_slice(format_shape_and_slice(shape, extents)),
    )
    key = encode_tensor_name_slice(b"t", extents)
    _same("slice key round trip", (b"t", extents), decode_tensor_name_slice(key))


def ordered_code_target(data: bytes) -> None:
    """Slice keys and the three OrderedCode primitives; decoded values re-encode and decode
    back to themselves."""
    for decode, encode in (
        (decode_num_increasing, encode_num_increasing),
        (decode_signed_num_increasing, encode_signed_num_increasing),
        (decode_string, encode_string),
    ):
        got = _outcome(decode, data, 0)
        if not _failed(got):
            value = got[0]
            _same(f"{decode.__name__} round trip", value, decode(encode(value), 0)[0])
    name, extents = decode_tensor_name_slice(data)
    _same(
        "slice key round trip",
        (name, extents),
        decode_tensor_name_slice(encode_tensor_name_slice(name, extents)),
    )


# --- text formats ---------------------------------------------------------------------------


def state_target(data: bytes) -> None:
    """``parse_checkpoint_state``; a parsed state formats and re-parses to itself."""
    state = parse_checkpoint_state(_text(data))
    _same(
        "state round trip",
        repr(state),
        repr(parse_checkpoint_state(format_checkpoint_state(state))),
    )


def mesh_target(data: bytes) -> None:
    """``Mesh.from_string``; a parsed mesh round-trips through ``to_string``."""
    mesh = Mesh.from_string(_text(data))
    _same("mesh round trip", mesh.to_string(), Mesh.from_string(mesh.to_string()).to_string())


def layout_target(data: bytes) -> None:
    """``Layout.from_string``; a parsed layout round-trips through ``to_string``."""
    layout = Layout.from_string(_text(data))
    again = Layout.from_string(layout.to_string())
    _same("layout round trip", layout.to_string(), again.to_string())


def _io_targets() -> list[Target]:
    return [Target(name, run, ALLOWED, covers) for name, (run, covers) in IO_TARGETS.items()]


ALLOWED: tuple[type[BaseException], ...] = (CheckpointError,)
_TEXT_ALLOWED: tuple[type[BaseException], ...] = (InvalidArgumentError,)

TARGETS = {
    t.name: t
    for t in (
        Target("table", table_target, ALLOWED, "table.py decode_table, decode_block, handles"),
        Target("index", index_target, ALLOWED, "index.py BundleIndex, both kernel backends"),
        Target("block", block_target, ALLOWED, "table.py decode_block vs kernels twins"),
        Target("entry", entry_target, ALLOWED, "messages.py, index.validate_entry, kernels"),
        Target("wire", wire_target, ALLOWED, "wire.py iter_fields, varint.py"),
        Target("bundle", bundle_target, ALLOWED, "bundle_reader.py BundleReader"),
        Target("strings", strings_target, ALLOWED, "strings.py decode_string_tensor"),
        Target("object_graph", object_graph_target, ALLOWED, "object_graph.py"),
        Target("state", state_target, ALLOWED, "checkpoint/state.py parse_checkpoint_state"),
        Target("slices", slices_target, ALLOWED, "slices.py parse_shape_and_slice"),
        Target("ordered_code", ordered_code_target, ALLOWED, "ordered_code.py slice keys"),
        Target("mesh", mesh_target, _TEXT_ALLOWED, "mesh.py Mesh.from_string"),
        Target("layout", layout_target, _TEXT_ALLOWED, "layout.py Layout.from_string"),
        *_io_targets(),
    )
}

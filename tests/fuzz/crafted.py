"""Hand-made hostile inputs: the findings of the fuzz runs and of the decoder audit, minimized.

Each builder returns the input in its target's layout (``tests/fuzz/targets.py``). The corpus
files under ``tests/fuzz/corpus/<target>/`` that start with ``crafted-`` are written from here::

    python -m tests.fuzz.crafted        # rewrite them

and ``tests/fuzz/test_hostile.py`` checks the specific error each one must now raise.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import numpy as np

from dtckpt.format.crc import crc32c, mask
from dtckpt.format.messages import BundleEntry, BundleHeader, encode_entry, encode_header
from dtckpt.format.ordered_code import encode_tensor_name_slice
from dtckpt.format.table import MAGIC, encode_table
from dtckpt.format.varint import encode_varint
from tests.fuzz.shaping import join_bundle_input
from tests.fuzz.strategies import CORPUS

__all__ = ["CRAFTED", "raw_block", "raw_table", "write_corpus"]

HEADER = encode_header(BundleHeader())
FLOAT = 1  # DT_FLOAT


def raw_block(entries: list[tuple[int, int, bytes, bytes]]) -> bytes:
    """A block of ``(shared, non_shared, key_suffix, value)`` entries, one restart at 0.

    Unlike the table encoder it writes whatever it is given, so callers can forge blocks.
    """
    body = bytearray()
    for shared, non_shared, suffix, value in entries:
        body += encode_varint(shared) + encode_varint(non_shared) + encode_varint(len(value))
        body += suffix + value
    return bytes(body) + struct.pack("<II", 0, 1)


def _trailer(block: bytes) -> bytes:
    return b"\x00" + struct.pack("<I", mask(crc32c(b"\x00", crc32c(block))))


def _handle(offset: int, size: int) -> bytes:
    return encode_varint(offset) + encode_varint(size)


def raw_table(
    data_blocks: list[bytes],
    index_values: list[bytes] | None = None,
    index_block: bytes | None = None,
) -> bytes:
    """A table of the given data blocks. Its index block maps ``k00000, k00001, ...`` to their
    handles,
    or to ``index_values`` (forged handles), or is ``index_block`` itself."""
    out = bytearray()
    handles = []
    for block in data_blocks:
        handles.append(_handle(len(out), len(block)))
        out += block + _trailer(block)
    meta = raw_block([])
    meta_handle = _handle(len(out), len(meta))
    out += meta + _trailer(meta)
    values = handles if index_values is None else index_values
    if index_block is None:
        keys = [b"k%05d" % i for i in range(len(values))]
        index_block = raw_block([(0, len(k), k, v) for k, v in zip(keys, values, strict=True)])
    index_handle = _handle(len(out), len(index_block))
    out += index_block + _trailer(index_block)
    footer = meta_handle + index_handle
    out += footer + b"\x00" * (40 - len(footer))
    out += struct.pack("<II", MAGIC & 0xFFFFFFFF, MAGIC >> 32)
    return bytes(out)


# --- tables and indexes --------------------------------------------------------------------


def repeated_handles() -> bytes:
    """H-BD-3: an index block naming one data block many times (quadratic checksum work)."""
    block = raw_block([(0, 0, b"", HEADER)])
    handle = _handle(0, len(block))
    return raw_table([block], [handle] * 64)


def index_block_key_bomb() -> bytes:
    """H-BD-5: index-block keys that grow by one byte per 4-byte entry (quadratic key bytes)."""
    block = raw_block([(0, 0, b"", HEADER)])
    handle = _handle(0, len(block))
    entries = [(0, 200, b"a" * 200, handle)]
    entries += [(200 + i, 1, b"b", handle) for i in range(2000)]
    return raw_table([block], index_block=raw_block(entries))


def six_byte_varint_block() -> bytes:
    """F-IX-2: a block entry whose ``shared`` is a 6-byte varint (0 written long): LevelDB and
    the kernels refuse it, and ``decode_block`` used to read it."""
    body = b"\x80\x80\x80\x80\x80\x00" + b"\x01\x00" + b"a"
    return body + struct.pack("<II", 0, 1)


def terabyte_shape() -> bytes:
    """H-BD-4: a float32 entry of shape [2**20, 2**20, 4] (16 TiB) over a 16-byte data file."""
    numel = (1 << 20) * (1 << 20) * 4
    entry = BundleEntry(FLOAT, (1 << 20, 1 << 20, 4), 0, 0, numel * 4, 0)
    index = encode_table([(b"", HEADER), (b"huge", encode_entry(entry))])
    return join_bundle_input(index, bytes(16))


def huge_string_count() -> bytes:
    """H-BD-1: a string entry of 2**40 elements claiming 2**40 + 4 bytes of a 16-byte file."""
    entry = BundleEntry(7, (1 << 40,), 0, 0, (1 << 40) + 4, 0)  # DT_STRING
    index = encode_table([(b"", HEADER), (b"s", encode_entry(entry))])
    return join_bundle_input(index, bytes(16))


def huge_rank_entry() -> bytes:
    """H-BD-4: a float32 entry of 300 dims of 2**62: its element count has over 5000 decimal
    digits, too many for ``str``, and its exact product costs time quadratic in the rank."""
    return encode_entry(BundleEntry(FLOAT, (1 << 62,) * 300, 0, 0, 4, 0))


def huge_rank_index() -> bytes:
    """:func:`huge_rank_entry` in an index."""
    return encode_table([(b"", HEADER), (b"t", huge_rank_entry())])


def variant_entry() -> bytes:
    """H-ER-1: a DT_VARIANT scalar, which the reader refuses to decode (the error must name the
    file)."""
    entry = BundleEntry(21, (), 0, 0, 0, 0)  # DT_VARIANT
    return join_bundle_input(encode_table([(b"", HEADER), (b"v", encode_entry(entry))]), b"")


def aliased_slices() -> bytes:
    """H-AL-1: 100 row slices of a [100, 4] float32 tensor all stored at
    offset 0 of one 16-byte data file."""
    data = np.arange(4, dtype=np.float32).tobytes()
    crc = mask(crc32c(data))
    slices = tuple(((i, 1), (0, -1)) for i in range(100))
    items = [(b"", HEADER), (b"w", encode_entry(BundleEntry(FLOAT, (100, 4), slices=slices)))]
    for s in slices:
        slice_entry = BundleEntry(FLOAT, (1, 4), 0, 0, len(data), crc)
        items.append((encode_tensor_name_slice(b"w", s), encode_entry(slice_entry)))
    return join_bundle_input(encode_table(sorted(items)), data)


# --- round two: sizes never checked, ranks, shard counts (H-BD-7, H-BD-8, H-WK-1) ------------

_WHOLE = ((0, -1), (0, -1))


def slice_lists_slices() -> bytes:
    """H-BD-8: a [2**20, 2**20] float32 tensor whose one slice entry lists slices of its own,
    so its size is never checked: the read used to allocate 4 TiB from a 187-byte index."""
    shape = (1 << 20, 1 << 20)
    full = BundleEntry(FLOAT, shape, slices=(_WHOLE,))
    items = [(b"", HEADER), (b"w", encode_entry(full))]
    items.append((encode_tensor_name_slice(b"w", _WHOLE), encode_entry(full)))
    return join_bundle_input(encode_table(sorted(items)), b"")


def partitioned_variant() -> bytes:
    """H-BD-8: a DT_VARIANT tensor of [2**20, 2**20] in two row slices: refused before the
    request (8 TiB of object pointers) is allocated."""
    shape = (1 << 20, 1 << 20)
    halves = (((0, 1 << 19), (0, -1)), ((1 << 19, 1 << 19), (0, -1)))
    items = [(b"", HEADER), (b"v", encode_entry(BundleEntry(21, shape, slices=halves)))]
    for half in halves:
        part = BundleEntry(21, (1 << 19, 1 << 20), 0, 0, 0, 0)
        items.append((encode_tensor_name_slice(b"v", half), encode_entry(part)))
    return join_bundle_input(encode_table(sorted(items)), b"")


def _ranked(rank: int) -> bytes:
    data = np.arange(2, dtype=np.float32).tobytes()
    entry = BundleEntry(FLOAT, (2,) + (1,) * (rank - 1), 0, 0, 8, mask(crc32c(data)))
    return join_bundle_input(encode_table([(b"", HEADER), (b"r", encode_entry(entry))]), data)


def rank_65() -> bytes:
    """H-BD-7: a float32 tensor of 65 dimensions (TensorFlow writes up to 254; NumPy holds 64)."""
    return _ranked(65)


def rank_64() -> bytes:
    """H-BD-7: 64 dimensions, which NumPy holds: read like any tensor."""
    return _ranked(64)


def empty_but_huge() -> bytes:
    """H-BD-7: float32 [0, 2**40, 2**40]: no elements, but NumPy cannot shape it."""
    entry = BundleEntry(FLOAT, (0, 1 << 40, 1 << 40), 0, 0, 0, mask(crc32c(b"")))
    return join_bundle_input(encode_table([(b"", HEADER), (b"e", encode_entry(entry))]), b"")


def two_billion_shards() -> bytes:
    """H-WK-1: a header of num_shards 2**31 - 1 and one tensor in shard 0: inspect and verify
    used to look for every shard (a directory listing each)."""
    data = np.arange(4, dtype=np.float32).tobytes()
    header = encode_header(BundleHeader(num_shards=(1 << 31) - 1))
    entry = BundleEntry(FLOAT, (4,), 0, 0, 16, mask(crc32c(data)))
    return join_bundle_input(encode_table([(b"", header), (b"x", encode_entry(entry))]), data)


def deep_chain(depth: int = 20_000) -> bytes:
    """H-WK-2: an object graph of ``depth`` nodes in one chain (paths used to cost O(depth**2))."""
    from dtckpt.format.object_graph import (
        ObjectReference,
        TrackableObject,
        TrackableObjectGraph,
        encode_object_graph,
    )

    nodes = [TrackableObject(children=(ObjectReference(i + 1, "layer"),)) for i in range(depth)]
    return encode_object_graph(TrackableObjectGraph((*nodes, TrackableObject())))


def deep_members() -> bytes:
    """H-WK-1: archive members 2,000 directories deep (unpack used to hit RecursionError), and
    each name's components used to be joined one by one."""
    from tests.fuzz.generators import build_archive

    members = [(f"d{i}/" + "c/" * 1999 + "x", b"deep") for i in range(8)]
    return b"\x00" + build_archive(members, level=1)


def member_of_2_63_bytes() -> bytes:
    """A-TC-2: a file record of 2**63 bytes (it used to overflow an int64 column)."""
    from tests.fuzz.generators import build_archive

    return b"\x00" + build_archive([("ckpt.index", b"x")], sizes={"ckpt.index": 1 << 63})


def zeros_index() -> bytes:
    """H-AL-2: an index member of 64 MiB of zeros in a few kilobytes of archive."""
    from tests.fuzz.generators import build_archive

    return b"\x00" + build_archive([("ckpt.index", bytes(64 << 20))], level=1)


def _safetensors(dims: list[int], payload: bytes = b"") -> bytes:
    import json

    header = {"t": {"dtype": "U8", "shape": dims, "data_offsets": [0, len(payload)]}}
    body = json.dumps(header, separators=(",", ":")).encode()
    body += b" " * (-len(body) % 8)
    return b"\x00" + struct.pack("<Q", len(body)) + body + payload


def safetensors_many_dims(count: int = 100_000, dim: int = 3) -> bytes:
    """H-WK-1: a safetensors shape of ``count`` dims (200,000 dims of 2**62 used to take over
    a minute to multiply out, then fail with a bare ValueError)."""
    return _safetensors([dim] * count)


def safetensors_rank_65() -> bytes:
    """H-BD-7: a safetensors tensor of 65 dimensions."""
    return _safetensors([1] * 65, b"\x07")


def npz_rank_65() -> bytes:
    """H-BD-7: an .npy member of 65 dimensions."""
    import io
    import zipfile

    from tests.fuzz.generators import _npy

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("t.npy", _npy("|u1", (1,) * 65, b"\x07"))
    return b"\x00" + out.getvalue()


# --- text and slice keys ---------------------------------------------------------------------


def wide_signed_number() -> bytes:
    """H-BD-6: a 10-byte OrderedCode signed number of 2**63 (above int64)."""
    return bytes((0xFF, 0xC0, 0x80)) + bytes(7)


CRAFTED: dict[str, dict[str, Callable[[], bytes]]] = {
    "table": {"repeated-handles": repeated_handles, "index-key-bomb": index_block_key_bomb},
    "index": {"repeated-handles": repeated_handles, "huge-rank": huge_rank_index},
    "entry": {"huge-rank": huge_rank_entry},
    "block": {"six-byte-varint": six_byte_varint_block},
    "bundle": {"terabyte-shape": terabyte_shape, "huge-string-count": huge_string_count},
    "ordered_code": {"wide-signed": wide_signed_number},
    "mesh": {
        "huge-id": lambda: b"|x=1|99999999999999999999|0|CPU:0",
        "unicode-size": lambda: "|x=\u00b2|0|0|CPU:0".encode(),
        "zero-by-huge": lambda: b"|x=0,y=99999999999999999999||0|",
        "rank-40": lambda: b"|" + b",".join(b"d%d=1" % i for i in range(40)) + b"|0|0|a",
        "wrapping-ids": lambda: (
            b"|x=2|9223372036854775807,-9223372036854775808|-9223372036854775808|a"
        ),
        "long-id": lambda: b"|x=1|" + b"7" * 5000 + b"|0|a",
    },
    "layout": {"huge-id": lambda: b"sharding_specs:x, mesh:|x=1|99999999999999999999|0|CPU:0"},
    "slices": {
        "5000-digits": lambda: b"1 0," + b"9" * 5000,
        "leading-zeros": lambda: b"8 0," + b"0" * 5000 + b"1",
    },
}

# Findings in code outside the fuzzed modules, fixed there by its owners.
CRAFTED["bundle"]["aliased-slices"] = aliased_slices
CRAFTED["bundle"]["variant-without-path"] = variant_entry
CRAFTED["bundle"].update(
    {
        "slice-lists-slices": slice_lists_slices,
        "partitioned-variant": partitioned_variant,
        "rank-65": rank_65,
        "rank-64": rank_64,
        "empty-but-huge": empty_but_huge,
        "two-billion-shards": two_billion_shards,
    }
)
CRAFTED["object_graph"] = {"chain-5000": lambda: deep_chain(5000)}
CRAFTED["archive"] = {
    "deep-members": deep_members,
    "member-of-2-63-bytes": member_of_2_63_bytes,
    "zeros-index": zeros_index,
}
CRAFTED["safetensors"] = {
    "100000-dims": safetensors_many_dims,
    "rank-65": safetensors_rank_65,
}
CRAFTED["npz"] = {"rank-65": npz_rank_65}
CRAFTED["state"] = {
    "inf-suffix": lambda: b"last_preserved_timestamp: inf\n",
    "bare-dot": lambda: b"last_preserved_timestamp: .\n",
    "raw-byte": lambda: b'model_checkpoint_path: "ckpt-\xff"\n',
}


def write_corpus() -> list[str]:
    written = []
    for target, builders in CRAFTED.items():
        for name, build in builders.items():
            written.append(_write(target, f"crafted-{name}.bin", build()))
    return written


def _write(target: str, name: str, data: bytes) -> str:
    directory = CORPUS / target
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_bytes(data)
    return f"{target}/{name} ({len(data)} bytes)"


if __name__ == "__main__":
    for line in write_corpus():
        print(line)

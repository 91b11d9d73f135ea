"""``dtckpt inspect PATH``: the header, every tensor, the totals, and the object graph.

Only the index is read (and, with ``--tree``, the object-graph entry), so
inspecting is quick whatever the size of the data files. Rules V-IN-1 to V-IN-4.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from ._term import HelpFormatter, Terminal, format_shape, format_size, paused_gc, to_json

if TYPE_CHECKING:
    from ..checkpoint.reader import CheckpointReader
    from ..format.bundle_reader import BundleReader
    from ..format.messages import BundleEntry

__all__ = ["register", "run", "describe", "print_listing", "MAX_LISTED_MISSING"]

#: Missing data shards listed by id in ``--json`` at most; ``missing_shard_count`` counts
#: them all (a forged header may claim two billion shards, rule H-WK-1).
MAX_LISTED_MISSING = 1000
#: Missing shard ids named in the warning.
_WARNED_SHARDS = 16

#: Rule V-FH-7: archives are named; the examples run after the demo (V-FH-1).
EPILOG = """\
PATH is a checkpoint prefix (PATH.index + PATH.data-*), a directory with a
'checkpoint' file (its latest checkpoint), a SavedModel directory, or an
archive written by 'dtckpt pack' (read in place, without unpacking it).

Pictures: --layout draws each partitioned tensor as its grid of blocks,
labelled with the data file holding each block (fN). --mesh adds the mesh:
each tensor's layout on it (found from its blocks and files, or given with
--layout VAR=SPEC), the device that writes each block (dN), and the devices
labelled with the block each holds, * where it writes it. A mesh is
NAME=SIZE,...; a SPEC one mesh dimension or 'unsharded' per tensor dimension.

examples (after 'dtckpt demo /tmp/dtckpt-demo'):
  dtckpt inspect /tmp/dtckpt-demo
  dtckpt inspect --slices --tree /tmp/dtckpt-demo/ckpt-1
  dtckpt inspect --layout --mesh x=2,y=4 /tmp/dtckpt-demo
  dtckpt inspect /tmp/dtckpt-demo --mesh a=4,b=2 --layout kernel=b,a --svg /tmp/demo.svg
  dtckpt inspect --json /tmp/dtckpt-demo > listing.json
"""


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "inspect",
        parents=[common],
        help="list the tensors of a checkpoint, its header and its object graph",
        description="List every tensor of a checkpoint (key, dtype, shape, slices, bytes, "
        "data shard), the header and the totals; with --tree, the object graph.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "path",
        nargs="?",
        help="checkpoint prefix, checkpoint directory, SavedModel directory or archive",
    )
    p.add_argument("--tree", action="store_true", help="also show the object graph as a tree")
    p.add_argument("--slices", action="store_true", help="also list each stored slice")
    p.add_argument("--json", action="store_true", help="write one JSON document instead")
    pictures = p.add_argument_group(
        "pictures of the mesh",
        "Draw, instead of the listing, each partitioned tensor as its grid of blocks; with "
        "--mesh, the mesh's devices and which block each holds and writes.",
    )
    pictures.add_argument(
        "--layout",
        metavar="VAR=SPEC",
        nargs="?",
        const="",
        action="append",
        help="draw the pictures; with VAR=SPEC (repeatable), lay tensor VAR out on --mesh "
        "with one sharding spec per dimension (a mesh dimension or 'unsharded')",
    )
    pictures.add_argument(
        "--mesh",
        metavar="MESH",
        help="the mesh to draw on, as NAME=SIZE,... (x=2,y=4) or TensorFlow's mesh string",
    )
    pictures.add_argument(
        "--svg", metavar="FILE", help="also write the pictures as a standalone SVG file"
    )
    p.set_defaults(run=run)


def _picture_arguments(args: argparse.Namespace) -> tuple[bool, list[str]]:
    """Whether pictures are asked for, and the VAR=SPEC items; a bare ``--layout`` may have
    taken the checkpoint path as its value (``dtckpt inspect --layout CKPT``)."""
    items = list(args.layout or [])
    if args.path is None:
        plain = [i for i in items if i and "=" not in i]
        if len(plain) == 1:
            args.path = plain[0]
            items.remove(plain[0])
    if args.path is None:
        raise SystemExit(_usage_error("the following arguments are required: path"))
    wanted = args.layout is not None or args.mesh is not None or args.svg is not None
    return wanted, [i for i in items if i]


def _usage_error(message: str) -> int:
    import sys

    print(f"dtckpt inspect: error: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace, term: Terminal) -> int:
    pictures, items = _picture_arguments(args)
    with paused_gc():  # rule V-CL-4: the listing's many small objects hold no cycles
        if pictures:
            return _run_pictures(args, term, items)
        return _run_listing(args, term)


def _run_listing(args: argparse.Namespace, term: Terminal) -> int:
    from ._open import open_checkpoint

    with open_checkpoint(args.path) as reader:
        listing = describe(reader)
        view = None
        if args.tree:
            from ._tree import GraphView, read_object_graph

            graph = read_object_graph(reader.bundle)
            view = None if graph is None else GraphView(graph, reader.bundle)
    missing = listing["totals"]["missing_shards"]
    if missing:
        names = ", ".join(str(i) for i in missing[:_WARNED_SHARDS])
        count = listing["totals"]["missing_shard_count"]
        if count > _WARNED_SHARDS:
            names += f", ... ({count} in all)"
        term.warn(f"data shard(s) {names} of {listing['prefix']} missing (see dtckpt verify)")
    if args.json:
        listing["object_graph"] = None if view is None else view.as_json()
        term.print(to_json(listing))
        return 0
    print_listing(term, listing, show_slices=args.slices)
    if args.tree:
        term.print()
        if view is None:
            term.print(
                "object graph: none. This is a name-based checkpoint (as TF1's Saver writes): "
                "its keys are the variable names listed above."
            )
        else:
            term.print(f"object graph: {len(view.graph.nodes)} nodes")
            for line in view.render():
                term.print(line)
    return 0


def _run_pictures(args: argparse.Namespace, term: Terminal, items: list[str]) -> int:
    """Rules V-LY-1 to V-LY-6: the pictures instead of the listing."""
    from ._mesh import parse_layouts, parse_mesh
    from ._open import open_checkpoint
    from ._picture import build_picture, picture_json, render_text

    mesh = None if args.mesh is None else parse_mesh(args.mesh)
    layouts = parse_layouts(items, mesh)
    with open_checkpoint(args.path) as reader:
        picture = build_picture(reader.bundle, reader.prefix, mesh, layouts)
    if args.svg is not None:
        from ._svg import write_svg

        write_svg(picture, args.svg)
    if args.json:
        term.print(to_json(picture_json(picture)))
    else:
        term.print(f"checkpoint {picture.prefix}")
        term.print("\n".join(render_text(picture)))
    if args.svg is not None:
        term.info(f"wrote {args.svg}")
    return 0


def describe(reader: CheckpointReader) -> dict[str, Any]:
    """The listing of rule V-IN-4 (without ``object_graph``)."""
    from ..dtypes import info
    from ..format.naming import key_str

    bundle = reader.bundle
    header = bundle.header
    names: dict[int, str] = {}  # dtype enum -> name, looked up once per dtype
    tensors = []
    for key, entry in bundle.index.visible_entries():  # in order: no search per key
        dtype = names.get(entry.dtype)
        if dtype is None:
            dtype = names[entry.dtype] = info(entry.dtype).name
        if entry.slices:
            tensors.append(_tensor(bundle, key, entry, key_str(key), dtype))
        else:  # the common case: a 10,000-tensor listing is this loop
            tensors.append(_whole_tensor(key_str(key), dtype, entry))
    sizes, missing, missing_count = _shard_sizes(bundle)
    return {
        "prefix": reader.prefix,
        "header": {
            "num_shards": header.num_shards,
            "endianness": "little" if header.endianness == 0 else "big",
            "version": {
                "producer": header.version.producer,
                "min_consumer": header.version.min_consumer,
                "bad_consumers": list(header.version.bad_consumers),
            },
        },
        "has_object_graph": "_CHECKPOINTABLE_OBJECT_GRAPH" in bundle,
        "tensors": tensors,
        "totals": {
            "tensors": len(tensors),
            "entries": len(bundle.raw_keys()),
            "bytes": sum(t["bytes"] for t in tensors),
            "data_files_bytes": sum(sizes),
            "missing_shards": missing,
            "missing_shard_count": missing_count,
        },
        "object_graph": None,
    }


def _whole_tensor(name: str, dtype: str, entry: BundleEntry) -> dict[str, Any]:
    """The listing of a tensor stored as one entry."""
    return {
        "key": name,
        "dtype": dtype,
        "shape": list(entry.shape),
        "bytes": entry.size,
        "shards": [entry.shard_id],
        "slices": [],
        "shard": entry.shard_id,
        "offset": entry.offset,
    }


def _tensor(
    bundle: BundleReader, key: bytes, entry: BundleEntry, name: str, dtype: str
) -> dict[str, Any]:
    if not entry.slices:
        return _whole_tensor(name, dtype, entry)
    slices = [_slice(bundle, key, entry.shape, s) for s in entry.slices]
    return {
        "key": name,
        "dtype": dtype,
        "shape": list(entry.shape),
        "bytes": sum(s["bytes"] or 0 for s in slices),
        "shards": sorted({s["shard"] for s in slices if s["shard"] is not None}),
        "slices": slices,
        "shard": None,
        "offset": None,
    }


def _slice(
    bundle: BundleReader, key: bytes, shape: tuple[int, ...], tensor_slice: Any
) -> dict[str, Any]:
    from ..format.ordered_code import encode_tensor_name_slice
    from ..format.slices import format_slice, resolve

    slice_key = encode_tensor_name_slice(key, tensor_slice)
    row: dict[str, Any] = {
        "slice": format_slice(tensor_slice),
        "shape": [n for _, n in resolve(tensor_slice, shape)],
    }
    if slice_key in bundle:
        entry = bundle.entry(slice_key)
        row.update(bytes=entry.size, shard=entry.shard_id, offset=entry.offset)
    else:  # damage that verify reports; the listing still shows the tensor
        row.update(bytes=None, shard=None, offset=None)
    return row


def _shard_sizes(bundle: BundleReader) -> tuple[list[int], list[int], int]:
    """Sizes of the data shards present; the first missing ids, and how many are missing.

    The directory is listed once and only the shards found there are opened, so a header
    claiming billions of shards costs what the files present cost (rule H-WK-1).
    """
    from ..errors import NotFoundError

    sizes: list[int] = []
    missing: list[int] = []
    count = 0
    opened = set()
    for shard in bundle.present_shards():
        try:
            sizes.append(bundle.shard_size(shard))
            opened.add(shard)
        except NotFoundError:
            pass
    for start, stop in _gaps(sorted(opened), bundle.num_shards):
        count += stop - start
        missing.extend(range(start, min(stop, start + MAX_LISTED_MISSING - len(missing))))
    return sizes, missing, count


def _gaps(present: list[int], total: int) -> list[tuple[int, int]]:
    """The runs ``[start, stop)`` of ``range(total)`` not in the sorted list ``present``."""
    out = []
    start = 0
    for stop in [*present, total]:
        if stop > start:
            out.append((start, stop))
        start = max(start, stop + 1)
    return out


def _printable(key: str) -> str:
    """A key for the terminal: bytes that are not UTF-8 as ``\\xNN`` escapes."""
    return key.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def print_listing(term: Terminal, listing: dict[str, Any], *, show_slices: bool) -> None:
    header = listing["header"]
    version = header["version"]
    # Rule V-IN-2: the header entry's fields; rule V-IN-1: the table and totals below.
    bad = f", bad_consumers {version['bad_consumers']}" if version["bad_consumers"] else ""
    term.print(f"checkpoint {listing['prefix']}")
    term.print(
        f"header: {header['num_shards']} data shard(s), {header['endianness']}-endian, "
        f"version producer {version['producer']}, min_consumer {version['min_consumer']}{bad}"
    )
    rows = [("key", "dtype", "shape", "slices", "bytes", "shard")]
    append = rows.append
    for t in listing["tensors"]:
        key = t["key"]
        if not key.isascii():
            key = _printable(key)
        slices = t["slices"]
        shards = t["shards"]
        append(
            (
                key,
                t["dtype"],
                format_shape(t["shape"]),
                str(len(slices)) if slices else "-",
                format_size(t["bytes"]),
                str(shards[0]) if len(shards) == 1 else ",".join(map(str, shards)),
            )
        )
        if show_slices:
            for s in slices:
                stored = "missing" if s["bytes"] is None else format_size(s["bytes"])
                where = "-" if s["shard"] is None else f"{s['shard']} @ {s['offset']}"
                append((f"  [{s['slice']}]", "", format_shape(s["shape"]), "", stored, where))
    widths = [max(map(len, column)) for column in zip(*rows, strict=True)]
    line = "  ".join(f"{{:{'>' if i == 4 else '<'}{w}}}" for i, w in enumerate(widths))
    term.print("\n".join(line.format(*r).rstrip() for r in rows))  # one write, not 10,000
    totals = listing["totals"]
    partitioned = [t for t in listing["tensors"] if t["slices"]]
    split = (
        f" ({len(partitioned)} partitioned into {sum(len(t['slices']) for t in partitioned)} "
        "slices)"
        if partitioned
        else ""
    )
    term.info(
        f"{totals['tensors']} tensors{split}, {totals['entries']} index entries, "
        f"{format_size(totals['bytes'])} of tensor data; data files "
        f"{format_size(totals['data_files_bytes'])} in {header['num_shards']} shard(s)"
    )

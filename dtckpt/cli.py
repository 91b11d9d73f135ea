"""The ``dtckpt`` command line (also ``python -m dtckpt``).

Commands:

* ``dtckpt inspect PATH`` -- the header and a table of every stored entry.
* ``dtckpt demo DIR`` -- saves DVariables sharded over a simulated 2x4 mesh
  with ``DTensorCheckpoint`` (one bundle per device, then a merge), inspects
  the checkpoint, restores it into a 4x2 mesh with other layouts, and checks
  every value.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence

import numpy as np

from .errors import CheckpointError

__all__ = ["main"]


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _shape(shape: Sequence[int]) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def inspect(path: str, out=sys.stdout) -> int:  # type: ignore[no-untyped-def]
    from .checkpoint.reader import load_checkpoint
    from .dtypes import info
    from .format.ordered_code import decode_tensor_name_slice
    from .format.slices import format_slice

    with load_checkpoint(path) as reader:
        bundle = reader.bundle
        header = bundle.header
        endian = "little" if header.endianness == 0 else "big"
        print(f"checkpoint {reader.prefix}", file=out)
        print(
            f"header: num_shards={header.num_shards} endianness={endian} "
            f"version=(producer {header.version.producer}, min_consumer "
            f"{header.version.min_consumer})",
            file=out,
        )
        rows = []
        total = 0
        for key in bundle.raw_keys():
            entry = bundle.entry(key)
            dtype = info(entry.dtype).name
            if key.startswith(b"\x00"):
                name, tensor_slice = decode_tensor_name_slice(key)
                shown = f"  {name.decode('utf-8', 'replace')} [{format_slice(tensor_slice)}]"
            else:
                shown = key.decode("utf-8", "replace")
            if entry.slices:
                where = f"{len(entry.slices)} slices"
                size = ""
            else:
                where = f"shard {entry.shard_id} @ {entry.offset}"
                size = _human(entry.size)
                total += entry.size
            rows.append((shown, dtype, _shape(entry.shape), size, where))
        widths = [
            max(len(r[i]) for r in rows + [("key", "dtype", "shape", "bytes", "stored")])
            for i in range(5)
        ]
        line = "  ".join(f"{{:{w}}}" for w in widths)
        print(line.format("key", "dtype", "shape", "bytes", "stored"), file=out)
        for row in rows:
            print(line.format(*row), file=out)
        tensors = len(reader.get_variable_to_shape_map())
        print(f"{tensors} tensors, {len(rows)} entries, {_human(total)} of tensor data", file=out)
    return 0


def demo(directory: str, out=sys.stdout) -> int:  # type: ignore[no-untyped-def]
    """Save DVariables from a 2x4 mesh, inspect the checkpoint, restore on a 4x2 mesh."""
    import ml_dtypes

    from . import dtensor as dd
    from .checkpoint.module import Module
    from .checkpoint.reader import load_checkpoint

    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(0)
    values = {
        "embedding": rng.standard_normal((64, 32)).astype(ml_dtypes.bfloat16),
        "kernel": rng.standard_normal((1024, 512), dtype=np.float32),
        "bias": rng.standard_normal(512, dtype=np.float32),
        "step": np.array(4242, dtype=np.int64),
    }
    mesh = dd.create_mesh([("x", 2), ("y", 4)], device_type="CPU")
    layouts = {
        "embedding": ["y", dd.UNSHARDED],  # rows over y, replicated over x
        "kernel": ["x", "y"],  # a 2x4 grid of blocks
        "bias": ["y"],
        "step": [],  # replicated scalar
    }
    model = Module(name="model")
    for name, value in values.items():
        layout = dd.Layout(layouts[name], mesh)
        setattr(model, name, dd.DVariable(dd.copy_to_mesh(value, layout), name=name))
    print("mesh 2x4 (x, y), 8 simulated CPU devices; layouts:", file=out)
    for name, specs in layouts.items():
        print(f"  {name:9} {list(values[name].shape)!s:11} [{', '.join(specs)}]", file=out)

    t0 = time.perf_counter()
    path = dd.DTensorCheckpoint(mesh, model=model).save(os.path.join(directory, "ckpt"))
    t_save = time.perf_counter() - t0
    print(
        f"\nsaved {path}: each device wrote its own blocks, merged, in {t_save * 1000:.1f} ms\n",
        file=out,
    )
    inspect(path, out)

    other = dd.create_mesh([("a", 4), ("b", 2)], device_type="CPU")
    target = {"embedding": [dd.UNSHARDED, "b"], "kernel": ["b", "a"], "bias": ["a"], "step": []}
    fresh = Module(name="model")
    for name, value in values.items():
        layout = dd.Layout(target[name], other)
        setattr(fresh, name, dd.DVariable(dd.copy_to_mesh(np.zeros_like(value), layout), name=name))
    t0 = time.perf_counter()
    ckpt = dd.DTensorCheckpoint(other, model=fresh)
    ckpt.restore(path).assert_consumed()
    t_restore = time.perf_counter() - t0
    ok = all(
        getattr(fresh, name).numpy().tobytes() == value.tobytes() for name, value in values.items()
    )
    with load_checkpoint(path) as reader:
        ok = ok and reader.get_tensor("model/kernel/.ATTRIBUTES/VARIABLE_VALUE").tobytes() == (
            values["kernel"].tobytes()
        )
    print(
        f"\nrestored into a 4x2 mesh (a, b) with other layouts ({target['kernel']} for the "
        f"kernel) in {t_restore * 1000:.1f} ms; save_counter = {int(ckpt.save_counter.numpy())}",
        file=out,
    )
    print("values match: " + ("yes" if ok else "NO"), file=out)
    return 0 if ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dtckpt", description=__doc__.split("\n\n")[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    p_inspect = sub.add_parser(
        "inspect",
        help="list the entries of a checkpoint",
        epilog="example: dtckpt inspect spec/golden/partitioned_tf1/ckpt",
    )
    p_inspect.add_argument(
        "path", help="checkpoint prefix, or a directory with a 'checkpoint' file"
    )
    p_demo = sub.add_parser(
        "demo",
        help="write, inspect and read back a sharded checkpoint",
        epilog="example: dtckpt demo /tmp/dtckpt-demo",
    )
    p_demo.add_argument("directory")
    args = parser.parse_args(argv)
    try:
        if args.command == "inspect":
            return inspect(args.path)
        return demo(args.directory)
    except (CheckpointError, OSError) as exc:
        if args.debug:
            raise
        print(f"dtckpt: error: {exc}", file=sys.stderr)
        return 1

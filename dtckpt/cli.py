"""The ``dtckpt`` command line (also ``python -m dtckpt``).

Commands:

* ``dtckpt inspect PATH`` -- the header and a table of every stored entry.
* ``dtckpt demo DIR`` -- writes a sharded checkpoint the way a mesh of
  devices would (one bundle per device, then a merge), inspects it, reads it
  back whole and in slices, and checks every value.
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
    import ml_dtypes

    from .checkpoint.raw_ops import merge_v2_checkpoints, restore_v2, save_v2
    from .checkpoint.reader import load_checkpoint

    os.makedirs(directory, exist_ok=True)
    prefix = os.path.join(directory, "ckpt")
    rng = np.random.default_rng(0)
    # A [1024, 512] float32 weight sharded 2 x 4 over 8 "devices", a bfloat16
    # row-sharded embedding, and replicated values written once, by device 0.
    weight = rng.standard_normal((1024, 512), dtype=np.float32)
    embedding = rng.standard_normal((64, 32)).astype(ml_dtypes.bfloat16)
    step = np.int64(4242)
    vocab = np.array([b"hello", "wörld".encode(), b"\x00\xff", b""], dtype=object)

    t0 = time.perf_counter()
    parts = []
    for device in range(8):
        x, y = divmod(device, 4)
        names, specs, tensors = [], [], []
        rows, cols = slice(x * 512, (x + 1) * 512), slice(y * 128, (y + 1) * 128)
        names.append("model/weight")
        specs.append(f"1024 512 {x * 512},512:{y * 128},128")
        tensors.append(weight[rows, cols])
        if device < 4:  # the embedding is sharded 4 ways on rows, replicated on x
            names.append("model/embedding")
            specs.append(f"64 32 {device * 16},16:-")
            tensors.append(embedding[device * 16 : (device + 1) * 16])
        if device == 0:
            names += ["step", "vocab"]
            specs += ["", ""]
            tensors += [step, vocab]
        part = os.path.join(directory, f"ckpt_temp/part_dev-{device}-of-8")
        save_v2(part, names, specs, tensors)
        parts.append(part)
    merge_v2_checkpoints(parts, prefix)
    t_save = time.perf_counter() - t0
    print(
        f"saved 8 device bundles and merged them into {prefix} in {t_save * 1000:.1f} ms\n",
        file=out,
    )

    inspect(prefix, out)

    t0 = time.perf_counter()
    with load_checkpoint(prefix) as reader:
        got = {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()}
    t_read = time.perf_counter() - t0
    ok = (
        np.array_equal(got["model/weight"], weight)
        and got["model/embedding"].tobytes() == embedding.tobytes()
        and got["step"] == step
        and list(got["vocab"]) == list(vocab)
    )
    # A different "mesh": read the weight as 4 column blocks spanning both row shards.
    t0 = time.perf_counter()
    for j in range(4):
        (block,) = restore_v2(prefix, ["model/weight"], [f"1024 512 -:{j * 128},128"], ["float32"])
        ok = ok and np.array_equal(block, weight[:, j * 128 : (j + 1) * 128])
    t_reshard = time.perf_counter() - t0
    print(
        f"\nread every tensor back in {t_read * 1000:.1f} ms; re-sliced the weight into "
        f"4 column blocks in {t_reshard * 1000:.1f} ms",
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

"""Checkpoints on S3: dtckpt's save and load against s3fs and boto3 moving the same bytes.

Run from anywhere::

    python bench/object_store.py           # 256 MiB checkpoint, 3 rounds (about two minutes)
    python bench/object_store.py --quick   # 8 MiB, 1 round (CI smoke test)
    python bench/object_store.py --json bench/results/object_store.json

The S3 server is moto in server mode on 127.0.0.1, started here (``moto[server]``): real
HTTP requests over the loopback interface, objects held in the server's memory. It measures
what the client side costs (requests, checksums, copies), not a cloud network.

1. **save**: ``Checkpoint.write("s3://...")`` of 16 float32 variables (256 MiB in all)
   against uploading a file of the same bytes (the data file of a local save of the same
   checkpoint) with s3fs ``put_file`` and with boto3 ``upload_file`` (its multithreaded
   transfer manager).
2. **load**: ``Checkpoint.read`` of that checkpoint into the variables (every checksum
   verified) against s3fs ``cat_file`` and boto3 ``download_fileobj`` of the data object.
3. **many small values**: ``Checkpoint.read`` of 4,000 variables of 4 KiB each (1,000 in
   ``--quick``) against s3fs ``cat_file`` of their data object, with the ranged requests each
   sends: the restore reads its small values ahead, adjacent ones in one request (rule
   S-SI-8), so it costs a few requests, not one per variable.
4. **resharding restore**: a DTensor variable saved on a 2x4 mesh as ``[x, y]`` and restored
   on a 4x2 mesh as ``[b, a]``: the bytes fetched from the server against the bytes the
   restore needs (the tensor, whose blocks the 8 devices split between them), and the bytes
   ``BundleReader.read_ranges`` plans for the same blocks (rule F-RD-8). The ratio must stay
   at most 1.1.
"""

from __future__ import annotations

import io
import itertools
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(HERE)
for _path in (HERE, REPO_ROOT):  # the checkout's dtckpt and bench/_common, however started
    if _path not in sys.path:
        sys.path.insert(0, _path)

from _common import (  # noqa: E402
    MiB,
    Variant,
    base_parser,
    fmt_seconds,
    header,
    interleaved,
    machine_facts,
    repeats_from,
    table,
    write_json,
)

import dtckpt  # noqa: E402
from dtckpt import dtensor as dd  # noqa: E402
from dtckpt.storage.urls import resolve  # noqa: E402

_NAMES = itertools.count()


@dataclass(frozen=True)
class Config:
    label: str
    variables: int
    variable_bytes: int
    reshard_side: int  # the resharded tensor is float32 [side, side]
    repeats: int
    small: int  # variables of SMALL_BYTES each in the many-small-values checkpoint


FULL = Config("full", 16, 16 * MiB, 4096, 3, 4000)
QUICK = Config("quick", 4, 2 * MiB, 256, 1, 1000)
SMALL_BYTES = 4096


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def start_server() -> Any:
    """moto's S3 server on a free port of 127.0.0.1; every S3 client of this process uses it."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(
        AWS_ENDPOINT_URL=f"http://{host}:{port}",
        AWS_ACCESS_KEY_ID="benchmark",
        AWS_SECRET_ACCESS_KEY="benchmark",
        AWS_DEFAULT_REGION="us-east-1",
    )
    return server


def _model(cfg: Config, seed: int) -> tuple[dtckpt.Checkpoint, list[dtckpt.Variable]]:
    rng = np.random.default_rng(seed)
    side = int(np.sqrt(cfg.variable_bytes // 4))
    values = [rng.standard_normal((side, side), dtype=np.float32) for _ in range(cfg.variables)]
    variables = [dtckpt.Variable(v) for v in values]
    return dtckpt.Checkpoint(**{f"v{i}": v for i, v in enumerate(variables)}), variables


def save_and_load(cfg: Config, repeats: int, work: str) -> dict[str, Any]:
    import boto3
    import fsspec

    fs = fsspec.filesystem("s3")
    client = boto3.client("s3")
    bucket = "bench-save-load"
    fs.mkdir(bucket)
    ckpt, variables = _model(cfg, 0)
    local = ckpt.write(os.path.join(work, "local", "ckpt"))
    data_file = local + ".data-00000-of-00001"
    nbytes = os.path.getsize(data_file)

    def fresh() -> str:
        return f"s3://{bucket}/save-{next(_NAMES)}/ckpt"

    def remove(prefix: str) -> None:
        fs.rm(prefix[5:].rpartition("/")[0], recursive=True)

    # -- saves ----------------------------------------------------------------------------
    targets: dict[str, str] = {}
    saves = [
        Variant(
            "dtckpt Checkpoint.write",
            lambda: ckpt.write(targets["dtckpt"]),
            before=lambda: targets.__setitem__("dtckpt", fresh()),
            after=remove,
        ),
        Variant(
            "s3fs put_file (same bytes)",
            lambda: fs.put_file(data_file, targets["s3fs"][5:] + ".data") or targets["s3fs"],
            before=lambda: targets.__setitem__("s3fs", fresh()),
            after=remove,
        ),
        Variant(
            "boto3 upload_file (same bytes)",
            lambda: _boto3_upload(client, data_file, targets["boto3"]),
            before=lambda: targets.__setitem__("boto3", fresh()),
            after=remove,
        ),
    ]
    log("saving ...")
    interleaved(saves, repeats)

    # -- loads ----------------------------------------------------------------------------
    saved = ckpt.write(f"s3://{bucket}/loaded/ckpt")
    store, key = resolve(saved)
    data_key = f"{bucket}/loaded/ckpt.data-00000-of-00001"
    expected = [v.numpy().copy() for v in variables]

    def zero() -> None:
        for v in variables:
            v.assign(np.zeros_like(v.numpy()))

    def check(_: Any) -> None:
        for v, e in zip(variables, expected, strict=True):
            assert np.array_equal(v.numpy(), e)

    loads = [
        Variant("dtckpt Checkpoint.read", lambda: ckpt.read(saved), before=zero, after=check),
        Variant("s3fs cat_file (same bytes)", lambda: fs.cat_file(data_key)),
        Variant(
            "boto3 download_fileobj (same bytes)",
            lambda: _boto3_download(client, bucket, "loaded/ckpt.data-00000-of-00001"),
        ),
    ]
    log("loading ...")
    interleaved(loads, repeats)
    store.delete(key + ".index")
    comparisons = [
        {"what": what, "ours": group[0].name, "vs": other.name,
         "ratio": other.best / group[0].best}
        for what, group in (("save", saves), ("load", loads))
        for other in group[1:]
    ]  # fmt: skip
    return {
        "bytes": nbytes,
        "save": {v.name: v.best for v in saves},
        "load": {v.name: v.best for v in loads},
        "times": {v.name: v.times for v in saves + loads},
        "comparisons": comparisons,
    }


def _boto3_upload(client: Any, path: str, prefix: str) -> str:
    bucket, _, key = prefix[5:].partition("/")
    client.upload_file(path, bucket, key + ".data")
    return prefix


def _boto3_download(client: Any, bucket: str, key: str) -> bytes:
    out = io.BytesIO()
    client.download_fileobj(bucket, key, out)
    return out.getvalue()


def small_values(cfg: Config, repeats: int) -> dict[str, Any]:
    """Restore of many small variables from S3 against fetching their data object whole."""
    import fsspec

    fs = fsspec.filesystem("s3")
    fs.mkdir("bench-small")
    rng = np.random.default_rng(2)
    values = [rng.standard_normal(SMALL_BYTES // 4).astype(np.float32) for _ in range(cfg.small)]
    root = dtckpt.Module()
    root.layers = [dtckpt.Variable(v) for v in values]
    ckpt = dtckpt.Checkpoint(model=root)
    saved = ckpt.write("s3://bench-small/many/ckpt")
    store, _ = resolve(saved)
    data_key = "bench-small/many/ckpt.data-00000-of-00001"
    nbytes = fs.info(data_key)["size"]

    def zero() -> None:
        for v in root.layers:
            v.assign(np.zeros_like(v.numpy()))

    def check(_: Any) -> None:
        for v, e in zip(root.layers, values, strict=True):
            assert np.array_equal(v.numpy(), e)

    before = store.reads
    ckpt.read(saved).assert_consumed()
    requests = store.reads - before
    loads = [
        Variant("dtckpt Checkpoint.read", lambda: ckpt.read(saved), before=zero, after=check),
        Variant("s3fs cat_file (same bytes)", lambda: fs.cat_file(data_key)),
    ]
    log("loading many small values ...")
    interleaved(loads, repeats)
    return {
        "variables": cfg.small,
        "bytes": nbytes,
        "requests": requests,
        "load": {v.name: v.best for v in loads},
        "times": {v.name: v.times for v in loads},
        "comparisons": [
            {"what": "load small", "ours": loads[0].name, "vs": loads[1].name,
             "ratio": loads[1].best / loads[0].best}
        ],  # fmt: skip
    }


def resharding(cfg: Config) -> dict[str, Any]:
    import fsspec

    fsspec.filesystem("s3").mkdir("bench-reshard")
    side = cfg.reshard_side
    value = np.random.default_rng(1).standard_normal((side, side), dtype=np.float32)
    mesh = dd.create_mesh([("x", 2), ("y", 4)])
    w = dd.DVariable(dd.copy_to_mesh(value, dd.Layout(["x", "y"], mesh)))
    path = dd.DTensorCheckpoint(mesh, w=w).save("s3://bench-reshard/dt/ckpt")
    other = dd.create_mesh([("a", 4), ("b", 2)])
    layout = dd.Layout(["b", "a"], other)
    fresh = dd.DVariable(dd.copy_to_mesh(np.zeros_like(value), layout))
    store, _ = resolve(path)
    before = store.bytes_read
    started = time.perf_counter()
    dd.DTensorCheckpoint(other, w=fresh).restore(path).assert_consumed()
    elapsed = time.perf_counter() - started
    read = store.bytes_read - before
    assert np.array_equal(fresh.numpy(), value)
    key = "w/.ATTRIBUTES/VARIABLE_VALUE"
    planned = 0
    with dtckpt.BundleReader(path) as reader:
        index_bytes = len(store.read(resolve(path + ".index")[1]))
        graph_bytes = sum(r.length for r in reader.read_ranges("_CHECKPOINTABLE_OBJECT_GRAPH"))
        counter_key = "save_counter/.ATTRIBUTES/VARIABLE_VALUE"
        counter = sum(r.length for r in reader.read_ranges(counter_key))
        boxes = set()
        for device in range(8):
            boxes.add(tuple(tuple(b) for b in _block_box(layout, value.shape, device)))
        for box in boxes:  # a (start, length) box is a TensorSlice
            planned += sum(r.length for r in reader.read_ranges(key, box))
    needed = value.nbytes
    return {
        "tensor_bytes": needed,
        "bytes_read": read,
        "index_bytes": index_bytes,
        "graph_and_counter_bytes": graph_bytes + counter,
        "planned_by_read_ranges": planned,
        "ratio": read / needed,
        "seconds": elapsed,
    }


def _block_box(layout: dd.Layout, shape: tuple[int, ...], device: int) -> list[tuple[int, int]]:
    """``[(start, length), ...]`` of the block ``device`` holds under ``layout``."""
    mesh = layout.mesh
    where = mesh.unravel_index()[device]
    box = []
    for spec, n in zip(layout.sharding_specs, shape, strict=True):
        if spec == dd.UNSHARDED:
            box.append((0, n))
            continue
        parts = mesh.dim_size(spec)
        box.append((where[spec] * n // parts, n // parts))
    return box


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0], "8 MiB and one round (smoke test)", 3)
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    repeats = repeats_from(parser, args.repeats, 1 if args.quick else cfg.repeats)
    wall = time.perf_counter()
    server = start_server()
    try:
        with tempfile.TemporaryDirectory(dir=args.dir) as work:
            facts = machine_facts(work, REPO_ROOT, None)
            moved = save_and_load(cfg, repeats, work)
            small = small_values(cfg, repeats)
            reshard = resharding(cfg)
    finally:
        server.stop()
    wall = time.perf_counter() - wall
    print(header("dtckpt object-store benchmark (moto S3 server on 127.0.0.1)", facts,
                 cfg.label, repeats, "not used"))  # fmt: skip
    nbytes = moved["bytes"]
    print(f"\ncheckpoint: {cfg.variables} float32 variables, {nbytes / MiB:.1f} MiB of data\n")
    rows = []
    for what in ("save", "load"):
        for name, best in moved[what].items():
            rows.append([what, name, fmt_seconds(best), f"{nbytes / best / MiB:.0f} MiB/s"])
    print(table(["", "variant", "best", "rate"], rows, right=(2, 3)))
    print("\nRatios: time theirs / ours (> 1 means dtckpt is faster)")
    comparisons = moved["comparisons"] + small["comparisons"]
    ratio_rows = [[c["what"], c["vs"], f"{c['ratio']:.2f}x"] for c in comparisons]
    print(table(["", "against", "ratio"], ratio_rows, right=(2,)))
    load = small["load"]
    print(
        f"\nmany small values: {small['variables']:,} variables of {SMALL_BYTES} B "
        f"({small['bytes'] / MiB:.1f} MiB): Checkpoint.read "
        f"{fmt_seconds(load['dtckpt Checkpoint.read'])} in {small['requests']} ranged requests"
        f" of the data object; s3fs cat_file {fmt_seconds(load['s3fs cat_file (same bytes)'])}"
    )
    print(
        f"\nresharding restore 2x4 [x, y] -> 4x2 [b, a] of a {reshard['tensor_bytes'] / MiB:.1f}"
        f" MiB tensor: {reshard['bytes_read'] / MiB:.2f} MiB read from the server "
        f"(index {reshard['index_bytes']} B), read_ranges plans "
        f"{reshard['planned_by_read_ranges'] / MiB:.2f} MiB: ratio read / needed = "
        f"{reshard['ratio']:.4f} in {fmt_seconds(reshard['seconds'])}"
    )
    if reshard["ratio"] > 1.1:
        print("FAILED: the resharding restore read more than 1.1x the bytes it needs")
        return 1
    if args.json:
        write_json(args.json, facts, {"label": cfg.label, "repeats": repeats}, wall,
                   save_load=moved, small_values=small, resharding=reshard,
                   comparisons=comparisons)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

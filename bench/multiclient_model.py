"""A paper model of multi-client saves at 64-1024 clients (spec/multiclient.md, P-SV-2).

Run from anywhere::

    python bench/multiclient_model.py           # the table, with this machine's constants
    python bench/multiclient_model.py --json bench/results/model.json

Nothing here runs on 1024 machines. The model combines a few constants measured on
this machine with dtckpt's own encoders (the exact bytes of an index entry, the CPU
time of merging entries and of cutting an index for a restore) and stated assumptions
about the cluster (network, disk). It answers, for a 1 TiB checkpoint:

* how big the index is, and what the root gathers (entries, never data);
* how long the root's commit takes (merge, encode, write, fsync);
* what the save's three collectives (and a restore's one) cost, as dtckpt sends them
  (the root talks to each client in turn) and as a tree would;
* how long the writes take when the lowest device of each block writes it (TensorFlow's
  rule) and when replicated blocks are spread over their holders ("balanced").

Assumptions (change them with the options): every client has 8 devices and writes at
2 GB/s to shared storage; one message costs the root 10 us and its link carries 10 GB/s;
the root writes the index at 2 GB/s and an fsync costs 5 ms; the checkpoint is 1 TiB of
float32 in 2048 tensors of 512 MiB, laid out either data-parallel x 8-way tensor-parallel
(mesh dp=C, tp=8, every tensor ``[unsharded, tp]``: 8 distinct blocks, each held by C
devices) or fully sharded (every tensor cut over all 8C devices, no replicas).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(HERE)
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from dtckpt.format.merge import merge_split, split_for_merge  # noqa: E402
from dtckpt.format.messages import BundleEntry, encode_entry  # noqa: E402
from dtckpt.format.ordered_code import encode_tensor_name_slice  # noqa: E402
from dtckpt.format.table import encode_table  # noqa: E402

TiB = 1 << 40
GB = 1e9
CLIENTS = (64, 128, 256, 512, 1024)


@dataclass(frozen=True)
class Assumptions:
    devices_per_client: int = 8
    client_write_gbps: float = 2.0
    message_s: float = 10e-6
    root_link_gbps: float = 10.0
    index_write_gbps: float = 2.0
    fsync_s: float = 5e-3
    total_bytes: int = TiB
    tensors: int = 2048
    itemsize: int = 4


@dataclass(frozen=True)
class Measured:
    """Constants of this machine and of dtckpt's encoders."""

    split_s_per_entry: float  # a client encoding its entries (all clients at once)
    merge_s_per_entry: float  # the root merging them into the index
    cut_s_per_entry: float  # the root cutting an index for a restore
    pickle_bytes_per_entry: float


def _tensor_entries(
    name: str, rows: int, cols: int, slices: int, shard: int
) -> list[tuple[bytes, BundleEntry]]:
    """One tensor's index items: its full entry and ``slices`` slice entries (column blocks)."""
    key = name.encode()
    width = cols // slices
    cuts = tuple(((0, -1), (s * width, width)) for s in range(slices))
    full = BundleEntry(dtype=1, shape=(rows, cols), shard_id=shard, slices=cuts)
    items = [(key, full)]
    for s, cut in enumerate(cuts):
        part = BundleEntry(
            dtype=1,
            shape=(rows, width),
            shard_id=s,
            offset=s * 4096,
            size=rows * width * 4,
            crc32c=0x12345678,
        )
        items.append((encode_tensor_name_slice(key, cut), part))
    return items


def index_bytes(a: Assumptions, slices: int) -> int:
    """The exact size of the index of ``a.tensors`` tensors of ``slices`` stored slices each."""
    rows = int(math.isqrt(a.total_bytes // a.tensors // a.itemsize))
    sample = 4  # encode a few tensors exactly; the rest differ only in their names' digits
    items = []
    for t in range(sample):
        items += [
            (k, encode_entry(e))
            for k, e in _tensor_entries(
                f"model/layer_{t:05d}/w/.ATTRIBUTES/VARIABLE_VALUE", rows, rows, slices, 0
            )
        ]
    return int(len(encode_table(sorted(items))) * a.tensors / sample)


def measure() -> Measured:
    """Time dtckpt's merge and index cut per entry, and pickle size per entry, on this machine."""
    parts: list[dict[bytes, BundleEntry]] = []
    for p in range(64):
        entries = {}
        for t in range(200):
            key = f"model/layer_{t:05d}/w/.ATTRIBUTES/VARIABLE_VALUE".encode()
            cut = ((0, -1), (p * 64, 64))
            entries[key] = BundleEntry(dtype=1, shape=(4096, 4096), shard_id=p, slices=(cut,))
            entries[encode_tensor_name_slice(key, cut)] = BundleEntry(
                dtype=1, shape=(4096, 64), shard_id=p, offset=t * 1 << 20, size=1 << 20, crc32c=t
            )
        parts.append(entries)
    count = sum(len(p) for p in parts)
    start = time.perf_counter()
    split = [split_for_merge(p) for p in parts]
    splitting = (time.perf_counter() - start) / count
    start = time.perf_counter()
    merge_split(split, len(parts))
    merge = (time.perf_counter() - start) / count
    pickled = len(pickle.dumps(split[0], protocol=pickle.HIGHEST_PROTOCOL)) / len(parts[0])
    # Cutting an index for a restore re-encodes each entry a client gets: one encode per entry.
    start = time.perf_counter()
    for entries in parts:
        for key in sorted(entries):
            encode_entry(entries[key])
    cut = (time.perf_counter() - start) / count
    return Measured(splitting, merge, cut, pickled)


def model(a: Assumptions, m: Measured, clients: int) -> dict[str, Any]:
    devices = clients * a.devices_per_client
    tp = a.devices_per_client
    # Index sizes: data-parallel x tensor-parallel has 8 slices a tensor; fully sharded, one
    # per device.
    index_dp_tp = index_bytes(a, tp)
    index_fsdp = index_bytes(a, devices)
    entries_fsdp = a.tensors * (devices + 1)
    entries_dp_tp = a.tensors * (tp + 1)
    # What the root gathers: every client's entries, pickled.
    gathered_fsdp = entries_fsdp * m.pickle_bytes_per_entry
    link = a.root_link_gbps * GB

    def collective_linear(bytes_total: float) -> float:
        return clients * a.message_s + bytes_total / link

    def collective_tree(bytes_total: float) -> float:
        return math.ceil(math.log2(clients)) * a.message_s + bytes_total / link

    small = 64 * clients  # a start or outcome message: tens of bytes each
    collectives_linear = (
        collective_linear(small) + collective_linear(gathered_fsdp) + collective_linear(small)
    )
    collectives_tree = (
        collective_tree(small) + collective_linear(gathered_fsdp) + collective_tree(small)
    )
    # Each client encodes its own entries (in parallel), then the root merges them all.
    commit_fsdp = (
        entries_fsdp / clients * m.split_s_per_entry
        + entries_fsdp * m.merge_s_per_entry
        + index_fsdp / (a.index_write_gbps * GB)
        + 2 * a.fsync_s
    )
    # Write concentration, data-parallel x tensor-parallel: with the lowest-device rule the
    # dp=0 row (one client) writes every block; balanced, each row writes 1/C of the bytes.
    per_client = a.client_write_gbps * GB
    lowest_max = a.total_bytes
    balanced_max = a.total_bytes / clients
    # A restore: the root cuts the index once per client (common entries + its own slices).
    restore_cut_fsdp = (entries_fsdp + clients * a.tensors) * m.cut_s_per_entry
    restore_scatter = collective_linear(index_fsdp + clients * a.tensors * 40)
    return {
        "clients": clients,
        "devices": devices,
        "index_dp_tp_bytes": index_dp_tp,
        "index_fsdp_bytes": index_fsdp,
        "entries_dp_tp": entries_dp_tp,
        "entries_fsdp": entries_fsdp,
        "gathered_fsdp_bytes": gathered_fsdp,
        "commit_fsdp_s": commit_fsdp,
        "collectives_linear_s": collectives_linear,
        "collectives_tree_s": collectives_tree,
        "write_lowest_s": lowest_max / per_client,
        "write_balanced_s": balanced_max / per_client,
        "lowest_share_of_busiest": lowest_max / a.total_bytes,
        "balanced_share_of_busiest": balanced_max / a.total_bytes,
        "restore_cut_fsdp_s": restore_cut_fsdp,
        "restore_scatter_s": restore_scatter,
    }


def _mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def _s(t: float) -> str:
    return f"{t:.3f} s" if t < 10 else f"{t:.0f} s"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", metavar="PATH", help="also write the table as JSON to PATH")
    p.add_argument("--client-write-gbps", type=float, default=Assumptions.client_write_gbps)
    p.add_argument("--message-us", type=float, default=Assumptions.message_s * 1e6)
    p.add_argument("--root-link-gbps", type=float, default=Assumptions.root_link_gbps)
    args = p.parse_args(argv)
    a = Assumptions(
        client_write_gbps=args.client_write_gbps,
        message_s=args.message_us * 1e-6,
        root_link_gbps=args.root_link_gbps,
    )
    m = measure()
    rows = [model(a, m, c) for c in CLIENTS]
    print("Paper model of a 1 TiB multi-client save (assumptions in --help and below)")
    print(
        f"measured here: client encode {m.split_s_per_entry * 1e6:.2f} us/entry, root merge "
        f"{m.merge_s_per_entry * 1e6:.2f} us/entry, index cut "
        f"{m.cut_s_per_entry * 1e6:.2f} us/entry, {m.pickle_bytes_per_entry:.0f} pickled "
        "bytes/entry gathered"
    )
    print(
        f"assumed: {a.devices_per_client} devices and {a.client_write_gbps} GB/s per client; "
        f"{a.message_s * 1e6:.0f} us a message and {a.root_link_gbps} GB/s at the root; index "
        f"written at {a.index_write_gbps} GB/s, fsync {a.fsync_s * 1e3:.0f} ms; "
        f"{a.tensors} float32 tensors"
    )
    print()
    head = [
        "clients",
        "index dpxtp",
        "index fsdp",
        "root gathers",
        "commit",
        "3 coll. linear",
        "3 coll. tree",
        "write lowest",
        "write balanced",
        "restore cut",
    ]
    print(" | ".join(head))
    print(" | ".join("-" * len(h) for h in head))
    for r in rows:
        print(
            " | ".join(
                [
                    f"{r['clients']}",
                    _mb(r["index_dp_tp_bytes"]),
                    _mb(r["index_fsdp_bytes"]),
                    _mb(r["gathered_fsdp_bytes"]),
                    _s(r["commit_fsdp_s"]),
                    _s(r["collectives_linear_s"]),
                    _s(r["collectives_tree_s"]),
                    _s(r["write_lowest_s"]),
                    _s(r["write_balanced_s"]),
                    _s(r["restore_cut_fsdp_s"] + r["restore_scatter_s"]),
                ]
            )
        )
    print()
    print(
        "index dpxtp/fsdp: the index's bytes (exact, dtckpt's encoder) for data-parallel x "
        "8-way tensor-parallel and for fully sharded tensors; root gathers / commit / "
        "collectives / restore cut: the fully sharded case, the worst for the root. "
        "write lowest/balanced: the data-parallel x tensor-parallel case, the busiest "
        "client's writing time (one client writes all of it under TensorFlow's rule)."
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"assumptions": asdict(a), "measured": asdict(m), "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Compression ratio and speed of ``dtckpt pack``/``unpack`` on model weights, beside plain
zstd on the same bytes and a raw file copy, and reading one tensor from an archive.

Run from anywhere::

    python bench/archive.py             # full run, a few minutes
    python bench/archive.py --quick     # small and fast (CI smoke test)
    python bench/archive.py --repeats 7 --json bench/results/archive.json --dir /data/tmp

Real trained weights are not available offline, so the weights are made here (see
bench/README.md, "archive.py"): a small MLP trained with NumPy and Adam on a synthetic task
(its weights and optimizer slots, as a training checkpoint holds them), and a larger model
of Glorot-initialized layers; each in float32 and cast to bfloat16. Every figure is the best
of several interleaved runs; ratios are throughputs ours / theirs.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Any

import ml_dtypes
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(HERE)
for _path in (HERE, REPO_ROOT):  # the checkout's dtckpt and bench/_common, however started
    if _path not in sys.path:
        sys.path.insert(0, _path)

from _common import (  # noqa: E402
    GB,
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
from dtckpt.archive import pack, unpack  # noqa: E402


@dataclass(frozen=True)
class Config:
    label: str
    mlp_layers: tuple[int, ...]  # widths of the trained MLP, input first
    mlp_steps: int  # Adam steps
    batch: int
    glorot_bytes: int  # float32 bytes of the Glorot-initialized model
    glorot_width: int  # its layers are [w, 4w] and [4w, w] kernels
    repeats: int


FULL = Config("full", (512, 1024, 1024, 1024, 10), 300, 128, 256 * MiB, 1024, 5)
QUICK = Config("quick", (256, 512, 512, 10), 60, 128, 24 * MiB, 512, 3)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- the weights ----------------------------------------------------------------------------


def glorot(rng: np.random.Generator, fan_in: int, fan_out: int) -> np.ndarray:
    """Keras's default kernel initializer: uniform in +-sqrt(6 / (fan_in + fan_out))."""
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, (fan_in, fan_out)).astype(np.float32)


def train_mlp(cfg: Config, seed: int = 0) -> tuple[dict[str, np.ndarray], float, float]:
    """A ReLU MLP trained with Adam (lr 1e-3) for ``cfg.mlp_steps`` steps to imitate a fixed
    random teacher network on Gaussian inputs (10 classes, cross-entropy).

    Returns the checkpoint's tensors (kernels, biases, Adam's m and v, the step counter, under
    Keras-style keys) and the loss of the first and last step.
    """
    rng = np.random.default_rng(seed)
    sizes = cfg.mlp_layers
    teacher = [glorot(rng, a, b) * 2 for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
    params: list[np.ndarray] = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        params += [glorot(rng, a, b), np.zeros(b, np.float32)]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    b1, b2, lr, eps = 0.9, 0.999, 1e-3, 1e-7
    first = last = 0.0
    for step in range(1, cfg.mlp_steps + 1):
        x = rng.standard_normal((cfg.batch, sizes[0])).astype(np.float32)
        h = x
        for w in teacher[:-1]:
            h = np.maximum(h @ w, 0)
        labels = np.argmax(h @ teacher[-1], axis=1)
        loss, grads = _loss_and_grads(params, x, labels)
        first = loss if step == 1 else first
        last = loss
        for i, g in enumerate(grads):
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            m_hat = m[i] / (1 - b1**step)
            v_hat = v[i] / (1 - b2**step)
            params[i] = (params[i] - lr * m_hat / (np.sqrt(v_hat) + eps)).astype(np.float32)
    tensors: dict[str, np.ndarray] = {}
    for i, p in enumerate(params):
        kind = "kernel" if i % 2 == 0 else "bias"
        base = f"model/layer_with_weights-{i // 2}/{kind}"
        tensors[f"{base}/.ATTRIBUTES/VARIABLE_VALUE"] = p
        for slot, values in (("m", m[i]), ("v", v[i])):
            key = f"{base}/.OPTIMIZER_SLOT/optimizer/{slot}/.ATTRIBUTES/VARIABLE_VALUE"
            tensors[key] = values.astype(np.float32)
    tensors["optimizer/iter/.ATTRIBUTES/VARIABLE_VALUE"] = np.int64(cfg.mlp_steps)
    return tensors, first, last


def _loss_and_grads(
    params: list[np.ndarray], x: np.ndarray, labels: np.ndarray
) -> tuple[float, list[np.ndarray]]:
    acts = [x]
    for i in range(0, len(params) - 2, 2):
        acts.append(np.maximum(acts[-1] @ params[i] + params[i + 1], 0))
    logits = acts[-1] @ params[-2] + params[-1]
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    n = x.shape[0]
    loss = float(-np.log(probs[np.arange(n), labels] + 1e-12).mean())
    delta = probs
    delta[np.arange(n), labels] -= 1
    delta /= n
    grads: list[np.ndarray] = [np.empty(0)] * len(params)
    for layer in range(len(params) // 2 - 1, -1, -1):
        grads[2 * layer] = acts[layer].T @ delta
        grads[2 * layer + 1] = delta.sum(axis=0)
        if layer:
            delta = (delta @ params[2 * layer].T) * (acts[layer] > 0)
    return loss, grads


def glorot_model(cfg: Config, seed: int = 1) -> dict[str, np.ndarray]:
    """Transformer-sized dense blocks, freshly initialized: Glorot kernels [w, 4w] and [4w, w],
    zero biases, layer-norm scales of ones and offsets of zeros, until ``glorot_bytes``."""
    rng = np.random.default_rng(seed)
    w = cfg.glorot_width
    tensors: dict[str, np.ndarray] = {}
    block, total = 0, 0
    while total < cfg.glorot_bytes:
        base = f"model/blocks/{block}"
        layer = {
            "up/kernel": glorot(rng, w, 4 * w),
            "up/bias": np.zeros(4 * w, np.float32),
            "down/kernel": glorot(rng, 4 * w, w),
            "down/bias": np.zeros(w, np.float32),
            "norm/gamma": np.ones(w, np.float32),
            "norm/beta": np.zeros(w, np.float32),
        }
        for name, value in layer.items():
            tensors[f"{base}/{name}/.ATTRIBUTES/VARIABLE_VALUE"] = value
            total += value.nbytes
        block += 1
    return tensors


def as_bfloat16(tensors: dict[str, np.ndarray], weights_only: bool) -> dict[str, np.ndarray]:
    out = {}
    for key, value in tensors.items():
        if weights_only and "OPTIMIZER_SLOT" in key:
            continue
        out[key] = value.astype(ml_dtypes.bfloat16) if value.dtype == np.float32 else value
    return out


def save(prefix: str, tensors: dict[str, np.ndarray]) -> list[str]:
    dtckpt.save_v2(prefix, list(tensors), [""] * len(tensors), list(tensors.values()))
    directory, base = os.path.split(prefix)
    return sorted(os.path.join(directory, n) for n in os.listdir(directory) if n.startswith(base))


# --- helpers --------------------------------------------------------------------------------


def digest(paths: list[str]) -> dict[str, str]:
    out = {}
    for path in paths:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(8 << 20), b""):
                h.update(block)
        out[os.path.basename(path)] = h.hexdigest()
    return out


def clear(*paths: str) -> None:
    """Remove earlier outputs and flush dirty pages, untimed, before a timed write."""
    for path in paths:
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)
    os.sync()


def zstd_cli() -> str | None:
    return shutil.which("zstd")


def zstd_pack(files: list[str], out_dir: str, level: int) -> int:
    """Plain zstd on the same files, one compressed file each, on every core (-T0)."""
    os.makedirs(out_dir, exist_ok=True)
    total = 0
    for path in files:
        target = os.path.join(out_dir, os.path.basename(path) + ".zst")
        subprocess.run(["zstd", f"-{level}", "-T0", "-q", "-f", path, "-o", target], check=True)
        total += os.path.getsize(target)
    return total


def zstd_unpack(zst_dir: str, out_dir: str) -> None:
    os.makedirs(out_dir, exist_ok=True)
    for name in sorted(os.listdir(zst_dir)):
        subprocess.run(
            [
                "zstd",
                "-d",
                "-q",
                "-f",
                os.path.join(zst_dir, name),
                "-o",
                os.path.join(out_dir, name[: -len(".zst")]),
            ],
            check=True,
        )


def copy_files(files: list[str], out_dir: str) -> None:
    os.makedirs(out_dir, exist_ok=True)
    for path in files:
        shutil.copyfile(path, os.path.join(out_dir, os.path.basename(path)))


# --- report ---------------------------------------------------------------------------------


class Report:
    def __init__(self) -> None:
        self.sections: list[tuple[str, list[tuple[Variant, int]]]] = []
        self.sizes: list[dict[str, Any]] = []
        self.comparisons: list[dict[str, Any]] = []
        self.notes: list[str] = []

    def section(self, title: str, variants: list[tuple[Variant, int]]) -> None:
        self.sections.append((title, variants))

    def compare(self, what: str, ours: Variant, theirs: Variant) -> None:
        self.comparisons.append(
            {
                "what": what,
                "ours": ours.name,
                "vs": theirs.name,
                "ratio": theirs.best / ours.best,
                "target": None,
                "status": "-",
            }
        )

    def timing_table(self) -> str:
        rows = []
        for title, variants in self.sections:
            rows.append([title, "", "", ""])
            for v, nbytes in variants:
                med = sorted(v.times)[len(v.times) // 2]
                rate = f"{nbytes / v.best / GB:.2f} GB/s"
                rows.append(["  " + v.name, fmt_seconds(v.best), fmt_seconds(med), rate])
        return table(["variant", "best", "median", "throughput"], rows, right=(1, 2, 3))

    def size_table(self) -> str:
        rows = [
            [
                s["name"],
                f"{s['raw'] / MiB:.1f} MiB",
                f"{s['shuffle']:.3f}",
                f"{s['no_shuffle']:.3f}",
                "-" if s["zstd"] is None else f"{s['zstd']:.3f}",
                f"{s['shuffle'] / s['no_shuffle']:.3f}x",
            ]
            for s in self.sizes
        ]
        return table(
            ["checkpoint", "raw", "dtckpt pack", "pack, no shuffle", "zstd -3", "shuffle gain"],
            rows,
            right=(1, 2, 3, 4, 5),
        )

    def ratio_table(self) -> str:
        rows = [[c["what"], c["vs"], f"{c['ratio']:.2f}x"] for c in self.comparisons]
        return table(["measurement (dtckpt)", "vs", "ratio"], rows, right=(2,))

    def as_json(self) -> dict[str, Any]:
        return {
            "sections": [
                {
                    "title": title,
                    "variants": [
                        {
                            "name": v.name,
                            "times_s": v.times,
                            "best_s": v.best,
                            "bytes": n,
                            "gb_per_s": n / v.best / GB,
                        }
                        for v, n in variants
                    ],
                }
                for title, variants in self.sections
            ],
            "sizes": self.sizes,
            "comparisons": self.comparisons,
            "notes": self.notes,
        }


# --- the benchmark --------------------------------------------------------------------------


def bench_checkpoint(
    name: str, files: list[str], prefix: str, work: str, rep: Report, repeats: int
) -> None:
    raw = sum(os.path.getsize(f) for f in files)
    original = digest(files)
    shuffled, plain = os.path.join(work, "s.dtar"), os.path.join(work, "p.dtar")
    zst_dir, copy_dir = os.path.join(work, "zst"), os.path.join(work, "copy")
    outs = {k: os.path.join(work, f"out-{k}") for k in ("s", "p", "zstd", "copy")}
    have_zstd = zstd_cli() is not None
    log(f"  {name}: pack ({raw / MiB:.1f} MiB)")

    def check_archive(archive: str) -> Any:
        done: list[bool] = []

        def check(_: Any) -> None:
            """Once, after the first timed pack: unpacking gives back the same files."""
            if done:
                return
            done.append(True)
            target = os.path.join(work, "check")
            clear(target)
            unpack(archive, target)
            got = digest([os.path.join(target, n) for n in sorted(os.listdir(target))])
            if got != original:
                raise SystemExit(f"{name}: unpacked files differ from the originals")
            clear(target)

        return check

    packs = [
        Variant("raw file copy", lambda: copy_files(files, copy_dir), lambda: clear(copy_dir)),
        Variant(
            "dtckpt pack (shuffle)",
            lambda: pack(prefix, shuffled),
            lambda: clear(shuffled),
            check_archive(shuffled),
        ),
        Variant(
            "dtckpt pack, no shuffle",
            lambda: pack(prefix, plain, shuffle=False),
            lambda: clear(plain),
            check_archive(plain),
        ),
    ]
    if have_zstd:
        packs.insert(
            1,
            Variant(
                "zstd -3 -T0 (CLI)", lambda: zstd_pack(files, zst_dir, 3), lambda: clear(zst_dir)
            ),
        )
    interleaved(packs, repeats)
    rep.section(f"pack {name}", [(v, raw) for v in packs])
    zstd_bytes = (
        sum(os.path.getsize(os.path.join(zst_dir, n)) for n in os.listdir(zst_dir))
        if have_zstd
        else None
    )
    rep.sizes.append(
        {
            "name": name,
            "raw": raw,
            "shuffle": raw / os.path.getsize(shuffled),
            "no_shuffle": raw / os.path.getsize(plain),
            "zstd": None if zstd_bytes is None else raw / zstd_bytes,
        }
    )
    by = {v.name: v for v in packs}
    rep.compare(f"pack {name}", by["dtckpt pack (shuffle)"], by["raw file copy"])
    if have_zstd:
        rep.compare(f"pack {name}", by["dtckpt pack (shuffle)"], by["zstd -3 -T0 (CLI)"])

    log(f"  {name}: unpack")
    unpacks = [
        Variant(
            "raw file copy", lambda: copy_files(files, outs["copy"]), lambda: clear(outs["copy"])
        ),
        Variant(
            "dtckpt unpack (shuffle)", lambda: unpack(shuffled, outs["s"]), lambda: clear(outs["s"])
        ),
        Variant(
            "dtckpt unpack, no shuffle", lambda: unpack(plain, outs["p"]), lambda: clear(outs["p"])
        ),
    ]
    if have_zstd:
        unpacks.insert(
            1,
            Variant(
                "zstd -d (CLI)",
                lambda: zstd_unpack(zst_dir, outs["zstd"]),
                lambda: clear(outs["zstd"]),
            ),
        )
    interleaved(unpacks, repeats)
    rep.section(f"unpack {name}", [(v, raw) for v in unpacks])
    by = {v.name: v for v in unpacks}
    rep.compare(f"unpack {name}", by["dtckpt unpack (shuffle)"], by["raw file copy"])
    if have_zstd:
        rep.compare(f"unpack {name}", by["dtckpt unpack (shuffle)"], by["zstd -d (CLI)"])
    clear(*outs.values(), zst_dir, copy_dir, plain)


def bench_read(name: str, prefix: str, archive: str, rep: Report, repeats: int) -> None:
    """One tensor, the largest and then a small one, read by a fresh reader each time (the
    archive's reader decodes its table and index on open, as the files' reader its index)."""
    with dtckpt.load_checkpoint(prefix) as reader:
        shapes = reader.get_variable_to_shape_map()
        sizes = {k: reader.get_tensor(k).nbytes for k in shapes}
    large = max(sizes, key=lambda k: (sizes[k], k))
    small = min((k for k in sizes if sizes[k] > 0), key=lambda k: (sizes[k], k))
    for label, key in (("largest", large), ("smallest", small)):
        expected = dtckpt.load_checkpoint(prefix).get_tensor(key)

        def read(path: str, key: str = key) -> np.ndarray:
            with dtckpt.load_checkpoint(path) as r:
                return r.get_tensor(key)

        def check(value: np.ndarray, expected: np.ndarray = expected, key: str = key) -> None:
            if value.tobytes() != expected.tobytes():
                raise SystemExit(f"{key}: the archive's value differs from the files'")

        files_v = Variant("files: load_checkpoint + get_tensor", lambda: read(prefix), after=check)
        archive_v = Variant(
            "archive: load_checkpoint + get_tensor", lambda: read(archive), after=check
        )
        interleaved([files_v, archive_v], repeats)
        nbytes = sizes[key]
        shown = f"{nbytes / MiB:.1f} MiB" if nbytes >= MiB else f"{nbytes:,} bytes"
        rep.section(
            f"read the {label} tensor of {name} ({shown})",
            [(files_v, nbytes), (archive_v, nbytes)],
        )
        rep.compare(f"read {label} tensor, {name}", archive_v, files_v)


def main(argv: list[str] | None = None) -> int:
    p = base_parser(
        __doc__.split("\n\n")[0],
        "small, fast run (a 2 MiB trained MLP, 24 MiB of Glorot weights) for smoke tests",
        FULL.repeats,
    )
    args = p.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    repeats = repeats_from(p, args.repeats, cfg.repeats)
    started = time.perf_counter()
    if args.dir:
        os.makedirs(args.dir, exist_ok=True)
    work = tempfile.mkdtemp(prefix="dtckpt-bench-archive-", dir=args.dir)
    rep = Report()
    try:
        facts = machine_facts(work, REPO_ROOT, None)
        log(f"training the MLP {list(cfg.mlp_layers)} for {cfg.mlp_steps} Adam steps")
        tick = time.perf_counter()
        trained, first, last = train_mlp(cfg)
        rep.notes.append(
            f"trained MLP {list(cfg.mlp_layers)}: {cfg.mlp_steps} Adam steps, batch {cfg.batch}, "
            f"cross-entropy {first:.3f} -> {last:.3f} ({time.perf_counter() - tick:.0f} s)"
        )
        models = {
            "trained MLP + Adam slots, float32": trained,
            "trained MLP weights, bfloat16": as_bfloat16(trained, weights_only=True),
        }
        init = glorot_model(cfg)
        models["Glorot-initialized, float32"] = init
        models["Glorot-initialized, bfloat16"] = as_bfloat16(init, weights_only=False)
        for i, (name, tensors) in enumerate(models.items()):
            directory = os.path.join(work, f"model{i}")
            os.makedirs(directory)
            prefix = os.path.join(directory, "ckpt")
            files = save(prefix, tensors)
            rep.notes.append(
                f"{name}: {len(tensors)} tensors, "
                f"{sum(os.path.getsize(f) for f in files):,} bytes in {len(files)} files"
            )
            bench_checkpoint(name, files, prefix, os.path.join(work, f"run{i}"), rep, repeats)
            if name.startswith("Glorot-initialized, float32") or name.startswith("trained MLP +"):
                archive = os.path.join(work, f"read{i}.dtar")
                pack(prefix, archive)
                bench_read(name, prefix, archive, rep, repeats)
        if zstd_cli() is None:
            rep.notes.append("zstd command not found: the zstd rows are missing")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    wall = time.perf_counter() - started

    print(header("dtckpt archive benchmark", facts, cfg.label, repeats, "not used"))
    print()
    print("Compression ratio: raw bytes / compressed bytes (zstd level 3 throughout)")
    print(rep.size_table())
    print()
    print("Timings (GB = 1e9 bytes of the checkpoint's files)")
    print(rep.timing_table())
    print()
    print("Ratios: throughput ours / theirs (> 1 means dtckpt is faster)")
    print(rep.ratio_table())
    print()
    print("Notes")
    for note in rep.notes:
        print(f"  {note}")
    print(f"\nWall time {wall:.0f} s.")
    if args.json:
        write_json(
            args.json,
            facts,
            asdict(cfg) | {"repeats": repeats},
            wall,
            **rep.as_json(),
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

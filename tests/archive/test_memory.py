"""Memory stays bounded: packing and unpacking a 256 MiB checkpoint in a fresh process grows
its peak resident memory by less than 64 MiB (rules A-PK-3, A-UP-2, A-RD-1)."""

from __future__ import annotations

import filecmp
import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
LIMIT = 64 << 20
TENSOR = 32 << 20
TENSORS = 8

CHILD = r"""
import json, os, resource, sys
import numpy as np
import dtckpt
from dtckpt.archive import pack, unpack

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

def hwm():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024

mode, work = sys.argv[1], sys.argv[2]
if mode == "make":
    rng = np.random.default_rng(0)
    with dtckpt.BundleWriter(os.path.join(work, "big", "ckpt")) as writer:
        for i in range(int(sys.argv[3])):
            value = (rng.standard_normal(int(sys.argv[4]) // 4, dtype=np.float32) * 0.02)
            if i % 2:
                import ml_dtypes  # dtckpt imports it only when it needs it

                value = value.astype(ml_dtypes.bfloat16)
            writer.add(f"layer{i}/kernel", value)
            del value
    sys.exit(0)
# Warm up: load zstd, Numba and the compiled kernels on a small checkpoint first.
dtckpt.save_v2(os.path.join(work, "warm", "ckpt"), ["w"], [""], [np.ones(1 << 20, np.float32)])
pack(os.path.join(work, "warm", "ckpt"), os.path.join(work, "warm.dtar"))
unpack(os.path.join(work, "warm.dtar"), os.path.join(work, "warm-out"), overwrite=True)
dtckpt.load_checkpoint(os.path.join(work, "warm.dtar")).get_tensor("w")
before = rss()
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
if mode == "pack":
    pack(os.path.join(work, "big", "ckpt"), os.path.join(work, "big.dtar"))
elif mode == "unpack":
    unpack(os.path.join(work, "big.dtar"), os.path.join(work, "out"))
else:
    value = dtckpt.load_checkpoint(os.path.join(work, "big.dtar")).get_tensor("layer0/kernel")
print(json.dumps({"growth": hwm() - before, "before": before,
                  "maxrss_growth": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
                  - maxrss_before}))
"""


def _child(*args: str) -> dict[str, int]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    run = subprocess.run(
        [sys.executable, "-c", CHILD, *args], capture_output=True, text=True, env=env, timeout=600
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout) if run.stdout.strip() else {}


def _can_measure() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _can_measure(), reason="needs Linux /proc to reset and read peak RSS")
def test_pack_unpack_and_read_memory(tmp_path: pathlib.Path) -> None:
    _child("make", str(tmp_path), str(TENSORS), str(TENSOR))
    packed = _child("pack", str(tmp_path))
    assert packed["growth"] < LIMIT, packed
    unpacked = _child("unpack", str(tmp_path))
    assert unpacked["growth"] < LIMIT, unpacked
    for name in ("ckpt.index", "ckpt.data-00000-of-00001"):
        assert filecmp.cmp(tmp_path / "out" / name, tmp_path / "big" / name, shallow=False)
    read = _child("read", str(tmp_path))
    assert read["growth"] < TENSOR + LIMIT, read

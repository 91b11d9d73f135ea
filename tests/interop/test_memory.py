"""Converting a 256 MiB checkpoint keeps memory bounded, in each direction.

Each conversion runs in a child process that first converts a tiny file the
same way (so imports and first-use costs are paid), then forks and reads the
fork's peak resident size (``ru_maxrss``) before and after the big
conversion. The peak may grow by at most 64 MiB, a quarter of the data.
"""

from __future__ import annotations

import hashlib
import pathlib
import subprocess
import sys

import ml_dtypes
import numpy as np

from dtckpt.format.bundle_writer import BundleWriter
from dtckpt.interop import read_tensors
from tests.conftest import ROOT

MiB = 1 << 20
LIMIT_KIB = 64 * 1024
CHILD = r"""
import os, resource, sys, traceback
from dtckpt.interop import convert

src, dst, warm_src, warm_dst = sys.argv[1:5]
convert(warm_src, warm_dst)
# A new process starts with its parent's peak resident size (it survives fork+exec), so
# the conversion is measured in a fork of this small process, whose peak starts at its size.
read_end, write_end = os.pipe()
pid = os.fork()
if pid == 0:
    try:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        report = convert(src, dst)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        os.write(write_end, f"{before} {after} {report.bytes}".encode())
        os._exit(0)
    except BaseException:
        traceback.print_exc()
        os._exit(1)
os.close(write_end)
result = os.read(read_end, 200).decode()
_, status = os.waitpid(pid, 0)
print(result)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def _rows(dtype: np.dtype, rows: int, width: int, seed: int):  # type: ignore[no-untyped-def]
    """``rows x width`` values, 4 MiB at a time, never the whole tensor."""
    step = max(1, (4 * MiB) // (width * dtype.itemsize))
    for start in range(0, rows, step):
        n = min(step, rows - start)
        yield (np.arange(n * width, dtype=np.int64) * 7 + start * width + seed).astype(dtype)


def _write(prefix: str, scale: int) -> None:
    """256 MiB / ``scale``: float32 (64 MiB), bfloat16 and int64 (32 MiB each), and two
    float32 tensors of 64 MiB, one partitioned by rows, one into a 2x2 grid of slices."""
    with BundleWriter(prefix) as writer:
        for key, dtype, size, seed in [
            ("f32", np.float32, 64, 1),
            ("bf16", ml_dtypes.bfloat16, 32, 2),
            ("i64", np.int64, 32, 3),
        ]:
            dt = np.dtype(dtype)
            rows = (size * MiB // scale) // (1024 * dt.itemsize)
            writer.add_chunks(f"model/{key}", dt, (rows, 1024), _rows(dt, rows, 1024, seed))
        rows = (16 * MiB // scale) // 4096
        for i, (key, box) in enumerate(
            [("rows", ((0, 2 * rows), (0, -1))), ("rows", ((2 * rows, 2 * rows), (0, -1)))]
            + [("grid", ((r * 2 * rows, 2 * rows), (c * 512, 512))) for r in (0, 1) for c in (0, 1)]
        ):
            shape = (box[0][1], 1024 if box[1][1] == -1 else box[1][1])
            part = np.concatenate(list(_rows(np.dtype(np.float32), shape[0], shape[1], 10 + i)))
            writer.add_slice(f"model/{key}", (4 * rows, 1024), box, part.reshape(shape))


def _digests(path: str) -> dict[str, str]:
    out = {}
    with read_tensors(path) as source:
        for stream in source.tensors:
            digest = hashlib.sha256(str(stream.dtype.name).encode())
            for chunk in stream.chunks():
                digest.update(chunk.tobytes())
            out[stream.key] = digest.hexdigest()
    return out


def _convert_in_child(src: str, dst: str, warm_src: str, warm_dst: str) -> tuple[int, int]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, src, dst, warm_src, warm_dst],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    before, after, converted = (int(n) for n in done.stdout.split())
    assert converted == 256 * MiB
    return before, after


def test_peak_memory_stays_bounded_in_each_direction(tmp_path: pathlib.Path) -> None:
    big, small = str(tmp_path / "big" / "ckpt"), str(tmp_path / "small" / "ckpt")
    _write(big, 1)
    _write(small, 1024)
    growth = {}
    for suffix in ("npz", "safetensors"):
        there, warm_there = str(tmp_path / f"big.{suffix}"), str(tmp_path / f"small.{suffix}")
        back, warm_back = str(tmp_path / f"back_{suffix}" / "ckpt"), str(tmp_path / "w" / suffix)
        before, after = _convert_in_child(big, there, small, warm_there)
        growth[f"checkpoint -> {suffix}"] = after - before
        before, after = _convert_in_child(there, back, warm_there, warm_back)
        growth[f"{suffix} -> checkpoint"] = after - before
        assert _digests(back) == _digests(big)
    assert all(kib < LIMIT_KIB for kib in growth.values()), growth

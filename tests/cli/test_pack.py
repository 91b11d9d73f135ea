"""``dtckpt pack`` / ``dtckpt unpack`` end to end, and ``inspect``/``verify`` of an archive,
run as the command line is (a subprocess of ``python -m dtckpt``)."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import numpy as np

import dtckpt

ROOT = pathlib.Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "spec" / "golden"


def _dtckpt(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "dtckpt", *args], capture_output=True, text=True, env=env
    )


def _files(root: pathlib.Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_pack_unpack_directory(tmp_path: pathlib.Path) -> None:
    archive = tmp_path / "manager.dtar"
    packed = _dtckpt("pack", str(GOLDEN / "og_manager"), str(archive))
    assert packed.returncode == 0, packed.stderr
    assert archive.is_file() and "Traceback" not in packed.stderr
    out = tmp_path / "out"
    unpacked = _dtckpt("unpack", str(archive), str(out))
    assert unpacked.returncode == 0, unpacked.stderr
    assert _files(out) == _files(GOLDEN / "og_manager")


def test_pack_prefix_with_level_and_inspect(tmp_path: pathlib.Path) -> None:
    prefix = str(tmp_path / "ck" / "model")
    values = np.linspace(0, 1, 4096, dtype=np.float32).reshape(64, 64)
    dtckpt.save_v2(prefix, ["dense/kernel", "step"], ["", ""], [values, np.int64(3)])
    archive = tmp_path / "model.dtar"
    packed = _dtckpt("pack", "--level", "9", prefix, str(archive))
    assert packed.returncode == 0, packed.stderr
    shown = _dtckpt("inspect", str(archive))
    assert shown.returncode == 0, shown.stderr
    assert "dense/kernel" in shown.stdout and "step" in shown.stdout
    assert "[64,64]" in shown.stdout.replace(" ", "") or "64" in shown.stdout


def test_verify_archive_good_and_damaged(tmp_path: pathlib.Path) -> None:
    archive = tmp_path / "multi.dtar"
    assert _dtckpt("pack", str(GOLDEN / "multi_shard" / "ckpt"), str(archive)).returncode == 0
    good = _dtckpt("verify", str(archive))
    assert good.returncode == 0, good.stdout + good.stderr
    data = bytearray(archive.read_bytes())
    data[20] ^= 0xFF  # inside the first frame
    archive.write_bytes(bytes(data))
    bad = _dtckpt("verify", str(archive))
    assert bad.returncode == 1
    assert "Traceback" not in bad.stderr and str(archive) in bad.stdout + bad.stderr


def test_unpack_refuses_to_overwrite(tmp_path: pathlib.Path) -> None:
    archive = tmp_path / "a.dtar"
    assert _dtckpt("pack", str(GOLDEN / "dtypes" / "ckpt"), str(archive)).returncode == 0
    out = tmp_path / "out"
    out.mkdir()
    (out / "ckpt.index").write_bytes(b"mine")
    refused = _dtckpt("unpack", str(archive), str(out))
    assert refused.returncode == 1
    assert "exists" in refused.stderr and "Traceback" not in refused.stderr
    assert (out / "ckpt.index").read_bytes() == b"mine"


def test_pack_errors(tmp_path: pathlib.Path) -> None:
    missing = _dtckpt("pack", str(tmp_path / "nope"), str(tmp_path / "a.dtar"))
    assert missing.returncode == 1
    assert "nope" in missing.stderr and "Traceback" not in missing.stderr
    not_archive = tmp_path / "x.dtar"
    not_archive.write_bytes(b"hello, world: not an archive at all, and long enough")
    bad = _dtckpt("unpack", str(not_archive), str(tmp_path / "out"))
    assert bad.returncode == 1 and "not a dtckpt archive" in bad.stderr

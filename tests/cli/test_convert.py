"""``dtckpt convert SRC DST`` as a user runs it: ``python -m dtckpt convert`` in a fresh process.

The conversions themselves are tested in tests/interop; these few runs check
the command's wiring: exit codes, the summary line, one-line errors.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys

import numpy as np

import dtckpt
from tests.conftest import GOLDEN, assert_same_array, load_golden


def dtckpt_run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dtckpt", *args], capture_output=True, text=True, timeout=120
    )


def test_checkpoint_to_npz_and_back(tmp_path: pathlib.Path) -> None:
    golden = load_golden("dtypes")
    npz = str(tmp_path / "dtypes.npz")
    there = dtckpt_run("convert", golden.prefix, npz)
    assert there.returncode == 0, there.stderr
    assert "converted 31 tensors" in there.stdout and "checkpoint to npz" in there.stdout
    with np.load(npz) as archive:
        assert sorted(archive.files) == sorted([*golden.expected(), "__dtckpt__.json"])
    back = dtckpt_run("--quiet", "convert", npz, str(tmp_path / "back" / "ckpt"))
    assert back.returncode == 0 and back.stdout == "", back.stderr
    with dtckpt.load_checkpoint(str(tmp_path / "back" / "ckpt")) as reader:
        for key, value in golden.expected().items():
            assert_same_array(reader.get_tensor(key), value, key)


def test_object_checkpoint_directory_to_safetensors_and_back(tmp_path: pathlib.Path) -> None:
    st = str(tmp_path / "saves.safetensors")
    there = dtckpt_run("convert", str(GOLDEN / "og_saves"), st)
    assert there.returncode == 0, there.stderr
    assert "from checkpoint to safetensors" in there.stdout
    back = dtckpt_run("convert", st, str(tmp_path / "back"))
    assert back.returncode == 0, back.stderr
    with dtckpt.load_checkpoint(str(tmp_path / "back")) as reader:
        expected = load_golden("og_saves").expected()
        assert sorted(reader.get_variable_to_shape_map()) == sorted(expected)


def test_unsupported_and_damaged_inputs_give_one_line_errors(tmp_path: pathlib.Path) -> None:
    refused = dtckpt_run(
        "convert", str(GOLDEN / "strings" / "ckpt"), str(tmp_path / "s.safetensors")
    )
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert refused.stderr.startswith("dtckpt: error: key '") and "string" in refused.stderr
    assert refused.stderr.count("\n") == 1
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\xff" * 16)
    damaged = dtckpt_run("convert", str(bad), str(tmp_path / "ckpt"))
    assert damaged.returncode == 1 and "Traceback" not in damaged.stderr
    assert str(bad) in damaged.stderr and "exceeds" in damaged.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.safetensors"]

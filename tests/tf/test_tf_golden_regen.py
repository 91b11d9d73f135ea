"""The committed goldens are TensorFlow's real, deterministic output.

``spec/golden/generate.py`` is run again for a few cheap goldens and every
regenerated file, manifest included, must equal the committed one byte for
byte. ``dtensor`` is left out: its per-device writers make the order of the
tensors in each data file change from run to run.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

pytest.importorskip("tensorflow")

from tests.conftest import GOLDEN, load_golden  # noqa: E402

GENERATE = GOLDEN / "generate.py"

# One SaveV2 call with every dtype; strings; explicit slice specs; three parts
# merged; a graph-mode sharded Saver. About two seconds each.
CHEAP = ["dtypes", "strings", "sliced_savev2", "multi_shard", "partitioned_tf1"]


def _files(directory: pathlib.Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("name", CHEAP)
def test_regenerated_golden_is_byte_identical(name: str, tmp_path: pathlib.Path) -> None:
    assert load_golden(name).manifest["byte_identical"]
    out = tmp_path / "out"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [sys.executable, str(GENERATE), "--out", str(out), "--only", name],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    regenerated = _files(out / name)
    committed = _files(GOLDEN / name)
    assert sorted(regenerated) == sorted(committed)
    for file_name, data in committed.items():
        assert regenerated[file_name] == data, f"{name}/{file_name} differs from the committed file"

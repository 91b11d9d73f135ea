"""Every benchmark under ``bench/`` still runs end to end, its own result checks included.

Only that they run is tested here: speed is judged by reading the benchmarks'
output, never by a timed test.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
from typing import Any

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _check_dtensor(result: dict[str, Any]) -> None:
    assert set(result["reads"]) >= {
        "aligned: 2x4 [x, y] -> 2x4 [x, y]",
        "resharding: 2x4 [x, y] -> 4x2 [b, a]",
    }


def _check_multiclient(result: dict[str, Any]) -> None:
    assert set(result["runs"]) == {"1", "2", "4"}
    for run in result["runs"].values():
        assert run["collectives_per_save"] == [3]


def _check_object_store(result: dict[str, Any]) -> None:
    assert set(result["save_load"]["save"]) == {
        "dtckpt Checkpoint.write",
        "s3fs put_file (same bytes)",
        "boto3 upload_file (same bytes)",
    }
    assert result["resharding"]["ratio"] <= 1.1
    small = result["small_values"]
    assert 1 <= small["requests"] <= 4, small  # read ahead (S-SI-8), not one request each


def _check_plans(result: dict[str, Any]) -> None:
    assert set(result["plans"]) == {"object plan", "name plan", "block plan"}
    for scenario in result["plans"].values():
        assert len(scenario["runs"]) == 3 and scenario["exponent"] is not None


@pytest.mark.parametrize(
    "script, check",
    [
        ("multiclient.py", _check_multiclient),
        ("bundle_io.py", None),
        ("object_graph.py", None),
        ("dtensor_io.py", _check_dtensor),
        ("cli_startup.py", None),
        ("archive.py", None),
        ("scaling.py", None),
        ("object_store.py", _check_object_store),
        ("plans.py", _check_plans),
    ],
)
def test_benchmark_quick_run(script: str, check: Any, tmp_path: pathlib.Path) -> None:
    out = tmp_path / "result.json"
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / script),
            "--quick",
            "--repeats",
            "1",
            "--dir",
            str(tmp_path),
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Ratios" in run.stdout
    result = json.loads(out.read_text())
    assert result["comparisons"]
    assert result["config"]["label"] == "quick"
    if check is not None:
        check(result)


def test_multiclient_model_runs(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "model.json"
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "multiclient_model.py"), "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert [r["clients"] for r in rows] == [64, 128, 256, 512, 1024]
    # TensorFlow's rule has one client write the whole data-parallel checkpoint.
    assert all(r["lowest_share_of_busiest"] == 1.0 for r in rows)


def test_memory_benchmark_runs(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "memory.json"
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "memory.py"), "--quick", "--dir", str(tmp_path),
         "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(out.read_text())["results"]
    for question in ("restore", "save", "async"):
        assert f"dtckpt-{question}" in results
    assert results["dtckpt-restore"]["correct"] and results["dtckpt-async"]["correct"]
    for peer, title in (("torch-dcp", "PyTorch DCP"), ("orbax", "Orbax")):
        present = [f"{peer}-{question}" in results for question in ("restore", "save", "async")]
        # A peer that imports has all its rows; one that does not is named as missing.
        assert all(present) or (not any(present) and f"{title} not installed" in run.stdout)

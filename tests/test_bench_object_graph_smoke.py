"""``bench/object_graph.py`` still runs end to end (its own result checks included).

Only that it runs is tested here: speed is judged by reading the benchmark's
output, never by a timed test.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_object_graph_quick_run(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "result.json"
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "object_graph.py"),
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

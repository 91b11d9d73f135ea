"""The public surface: names mirror TensorFlow's and importing is cheap."""

from __future__ import annotations

import subprocess
import sys

import dtckpt


def test_public_names() -> None:
    for name in [
        "load_checkpoint",
        "list_variables",
        "latest_checkpoint",
        "save_v2",
        "restore_v2",
        "merge_v2_checkpoints",
        "CheckpointReader",
        "errors",
    ]:
        assert hasattr(dtckpt, name), name
    assert set(dtckpt.__all__) <= set(dir(dtckpt))


def test_import_does_not_load_numba_or_tensorflow() -> None:
    code = "import sys, dtckpt; print('numba' in sys.modules, 'tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_error_classes_are_builtin_subclasses() -> None:
    e = dtckpt.errors
    assert issubclass(e.NotFoundError, FileNotFoundError)
    assert issubclass(e.TensorNotFoundError, KeyError)
    assert issubclass(e.DataLossError, OSError)
    assert issubclass(e.OutOfRangeError, e.DataLossError)
    assert issubclass(e.InvalidArgumentError, ValueError)
    assert issubclass(e.UnimplementedError, NotImplementedError)
    err = e.DataLossError("bad", path="f", key=b"k", offset=3)
    assert str(err) == "f: key 'k': byte offset 3: bad"
    assert str(e.TensorNotFoundError("gone", key="x")) == "key 'x': gone"


def test_cli_demo_and_inspect(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = subprocess.run(
        [sys.executable, "-m", "dtckpt", "demo", str(tmp_path)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert "values match: yes" in out.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "dtckpt", "inspect", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and "Traceback" not in bad.stderr and "nope" in bad.stderr

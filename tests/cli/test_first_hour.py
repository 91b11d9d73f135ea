"""What a new user meets first: hints for wrong paths, JSON errors, convert's formats, help."""

from __future__ import annotations

import json
import pathlib
import shutil

import numpy as np
import pytest

import dtckpt
from dtckpt.cli import main
from dtckpt.cli._hints import MAX_NAMED, hint_for
from tests.conftest import GOLDEN


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 1
    captured = capsys.readouterr()
    (line,) = captured.err.splitlines()
    assert line.startswith("dtckpt: error: ") and "Errno" not in line
    return line


def test_paths_that_are_not_checkpoints_get_hints(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    for step in (1, 2):
        dtckpt.save_v2(str(run / f"ckpt-{step}"), ["w"], [""], [np.zeros(2, np.float32)])
    line = _error(capsys, ["inspect", str(run)])
    assert f"The checkpoint prefixes there: {run}/ckpt-1, {run}/ckpt-2" in line
    line = _error(capsys, ["verify", str(run / "ckpt-1.index")])
    assert f"name the checkpoint by its prefix, {run}/ckpt-1" in line
    line = _error(capsys, ["inspect", str(run / "ckpt-1.data-00000-of-00001")])
    assert f"prefix, {run}/ckpt-1" in line
    line = _error(capsys, ["diff", str(run / "ckpt-1"), str(run / "ckpt")])
    assert f"The checkpoint prefixes in {run}: {run}/ckpt-1, {run}/ckpt-2" in line
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no *.index file there either" in _error(capsys, ["inspect", str(empty)])
    (tmp_path / "w.safetensors").write_bytes(b"")
    line = _error(capsys, ["inspect", str(tmp_path / "w.safetensors")])
    assert "is a safetensors file, not a TensorFlow checkpoint: 'dtckpt convert" in line
    many = tmp_path / "many"
    many.mkdir()
    for i in range(MAX_NAMED + 3):
        (many / f"ckpt-{i}.index").write_bytes(b"")
    hint = hint_for(str(many))
    assert hint is not None and f"({MAX_NAMED + 3} in all)" in hint
    assert hint_for("s3://bucket/ckpt") is None


def test_json_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["inspect", "--json", "--no-such-option", "x"])
    assert info.value.code == 2
    captured = capsys.readouterr()
    assert "unrecognized arguments: --no-such-option" in captured.err
    error = json.loads(captured.out)["error"]
    assert error["type"] == "UsageError" and set(error) == {
        "type",
        "message",
        "path",
        "key",
        "offset",
    }
    with pytest.raises(SystemExit):  # without --json, argparse's words alone
        main(["inspect", "--no-such-option", "x"])
    assert capsys.readouterr().out == ""


def test_json_errors(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "nothing")
    for argv in (
        ["inspect", "--json", missing],
        ["verify", "--json", missing],
        ["diff", "--json", missing, missing],
        ["inspect", "--json", "--mesh", "x=0", missing],
    ):
        assert main(argv) == 1
        captured = capsys.readouterr()
        assert captured.err.startswith("dtckpt: error: ")
        error = json.loads(captured.out)["error"]
        assert error["message"] == captured.err.removeprefix("dtckpt: error: ").rstrip("\n")
        assert error["type"] in ("NotFoundError", "InvalidArgumentError")
        assert set(error) == {"type", "message", "path", "key", "offset"}
    # A damaged index names the file and offset in the JSON too.
    prefix = tmp_path / "bad"
    shutil.copy(GOLDEN / "multi_shard" / "ckpt.index", str(prefix) + ".index")
    data = bytearray(pathlib.Path(str(prefix) + ".index").read_bytes())
    data[-48:] = bytes(48)  # the footer
    pathlib.Path(str(prefix) + ".index").write_bytes(bytes(data))
    assert main(["inspect", "--json", str(prefix)]) == 1
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["type"] == "DataLossError" and error["path"].endswith("bad.index")


def test_convert_refuses_extensions_that_name_no_format(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = str(GOLDEN / "og_keras_slots" / "ckpt")
    typo = tmp_path / "model.safetensor"
    line = _error(capsys, ["convert", src, str(typo)])
    assert "did you mean .safetensors?" in line and "--to" in line
    assert list(tmp_path.iterdir()) == []  # nothing written, not even a checkpoint
    assert "names no format" in _error(capsys, ["convert", src, str(tmp_path / "w.pt")])
    assert main(["-q", "convert", "--to", "checkpoint", src, str(typo)]) == 0
    assert dtckpt.list_variables(str(typo)) == dtckpt.list_variables(src)
    for prefix in ("model.ckpt", "model.ckpt-1000", "ckpt-3"):  # TF's own prefixes still work
        assert main(["-q", "convert", src, str(tmp_path / prefix)]) == 0
    assert main(["-q", "convert", "--to", "npz", src, str(tmp_path / "weights.bin")]) == 0
    assert np.load(tmp_path / "weights.bin").files
    # Strings cannot go to safetensors: refused, or left out by name when asked.
    strings = str(GOLDEN / "strings" / "ckpt")
    assert "--skip-unsupported" in _error(
        capsys, ["convert", strings, str(tmp_path / "s.safetensors")]
    )
    assert main(["convert", "--skip-unsupported", strings, str(tmp_path / "s.safetensors")]) == 0
    assert "warning: left out" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("command", "words"),
    [
        ("diff", ["differing", "max abs", "max rel", "NaN, Inf", "only_in_a", "identical"]),
        ("inspect", ["archive written by 'dtckpt pack'", "--layout", "--mesh", "--svg"]),
        ("verify", ["archive written by 'dtckpt pack'"]),
        ("convert", ["--to", "--skip-unsupported", ".safetensor)"]),
        ("demo", ["previous demo"]),
    ],
)
def test_help_explains(command: str, words: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for word in words:
        assert word in text, word

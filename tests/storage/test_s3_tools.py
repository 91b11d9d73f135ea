"""The command line, archives and conversions over ``s3://`` (rules S-SI-5, S-SI-7)."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

import dtckpt
from dtckpt.archive import pack, unpack
from dtckpt.cli import main
from dtckpt.interop import convert

from ..s3server import object_names, s3_filesystem


def _saved(bucket: str) -> tuple[str, str, np.ndarray]:
    value = np.arange(24, dtype=np.float32).reshape(4, 6)
    v = dtckpt.Variable(value)
    ckpt = dtckpt.Checkpoint(v=v)
    first = ckpt.save(f"{bucket}/run/ckpt")
    v.assign(value * 2)
    second = ckpt.save(f"{bucket}/run/ckpt")
    return first, second, value


def _said(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    return captured.out + captured.err


def test_cli_commands_take_urls(
    s3_bucket: str, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second, _ = _saved(s3_bucket)
    assert main(["inspect", "--json", f"{s3_bucket}/run"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert "v/.ATTRIBUTES/VARIABLE_VALUE" in [t["key"] for t in listing["tensors"]]
    assert main(["verify", first]) == 0
    assert "OK" in _said(capsys)
    assert main(["diff", first, second]) == 1
    assert "different" in _said(capsys)
    assert main(["convert", first, f"{s3_bucket}/out/model.safetensors"]) == 0
    assert main(["convert", f"{s3_bucket}/out/model.safetensors", str(tmp_path / "m.npz")]) == 0
    assert main(["convert", str(tmp_path / "m.npz"), f"{s3_bucket}/out/back"]) == 0
    capsys.readouterr()
    assert object_names(f"{s3_bucket}/out") == [
        "back.data-00000-of-00001",
        "back.index",
        "model.safetensors",
    ]
    with dtckpt.load_checkpoint(f"{s3_bucket}/out/back") as a, dtckpt.load_checkpoint(first) as b:
        key = "v/.ATTRIBUTES/VARIABLE_VALUE"
        assert np.array_equal(a.get_tensor(key), b.get_tensor(key))
    assert main(["pack", f"{s3_bucket}/run", f"{s3_bucket}/run.dtar"]) == 0
    assert main(["inspect", f"{s3_bucket}/run.dtar"]) == 0
    assert "ckpt-2" in _said(capsys)
    assert main(["unpack", f"{s3_bucket}/run.dtar", f"{s3_bucket}/again"]) == 0
    assert object_names(f"{s3_bucket}/again") == object_names(f"{s3_bucket}/run")
    assert main(["demo", f"{s3_bucket}/demo"]) == 0
    assert "values match: yes" in _said(capsys)
    assert not pathlib.Path("s3:").exists()  # nothing was written to a local "s3:" directory


def test_archive_and_convert_round_trip(s3_bucket: str, tmp_path: pathlib.Path) -> None:
    first, second, value = _saved(s3_bucket)
    report = pack(first, f"{s3_bucket}/one.dtar")
    assert report.files == 2
    key = "v/.ATTRIBUTES/VARIABLE_VALUE"
    with dtckpt.load_checkpoint(f"{s3_bucket}/one.dtar") as reader:
        assert np.array_equal(reader.get_tensor(key), value)
    unpacked = unpack(f"{s3_bucket}/one.dtar", str(tmp_path / "local"))
    assert unpacked.files == 2
    convert(second, f"{s3_bucket}/c/values.npz")
    with np.load(s3_filesystem().open(f"{s3_bucket[5:]}/c/values.npz", "rb")) as loaded:
        assert np.array_equal(loaded[key], value * 2)
    with pytest.raises(dtckpt.errors.InvalidArgumentError, match="same checkpoint"):
        convert(second, second)

"""``dtckpt explain`` (rule R-PL-5): the plan of a restore, per device and client, and that the
plan is what a restore by name then reads."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

import dtckpt
from dtckpt import dtensor
from dtckpt.checkpoint.plans import format_bytes
from dtckpt.cli import main
from dtckpt.format import streams
from tests.conftest import GOLDEN

DTENSOR = str(GOLDEN / "dtensor" / "ckpt")
W = "model/w/.ATTRIBUTES/VARIABLE_VALUE"


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:  # type: ignore[type-arg]
    assert main(["explain", "--json", *argv]) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def test_whole_values_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    plan = _json(capsys, DTENSOR)
    with dtckpt.BundleReader(DTENSOR) as reader:
        sizes = {k.decode(): reader.entry(k).size for k in reader.keys()}
        slices = {k.decode(): len(reader.entry(k).slices) for k in reader.keys()}
    values = {k: n for k, n in sizes.items() if k != "_CHECKPOINTABLE_OBJECT_GRAPH"}
    stored = sum(
        r["length"] for d in plan["devices"] for read in d["reads"] for r in read["ranges"]
    )
    assert plan["bytes_read"] == stored == plan["bytes_needed"]
    assert plan["bytes_needed"] == 4 * 8 * 4 + 3 * 8 * 4 + 5 * 4  # w, k, r
    assert [m["key"] for m in plan["matched"]] == sorted(values)
    (whole,) = plan["devices"]
    assert whole["device"] is None
    w = next(r for r in whole["reads"] if r["key"] == W)
    assert len(w["ranges"]) == slices[W] == 8 and w["in_place"]
    assert plan["read_amplification"] == 1.0


def test_a_target_mesh_with_clients(capsys: pytest.CaptureFixture[str]) -> None:
    plan = _json(capsys, DTENSOR, "--mesh", "a=4,b=2", "--layout", "model.w=b,a", "--clients", "2")
    devices = {(d["client"], d["device"]): d for d in plan["devices"]}
    assert {c for c, _ in devices} == {0, 1}
    assert [d for c, d in devices if d is not None] == list(range(8))
    assert all(c == (d // 4) for c, d in devices if d is not None)
    for device in range(8):
        (read,) = devices[(device // 4, device)]["reads"]
        assert read["bytes_needed"] == 4 * 8 * 4 // 8
    assert plan["bytes_needed"] == plan["bytes_read"]
    text_run = main(["explain", DTENSOR, "--mesh", "a=4,b=2", "--layout", "model.w=b,a"])
    out = capsys.readouterr().out
    assert text_run == 0 and "device 7:" in out and "read amplification 1.00x" in out


def test_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", DTENSOR, "--layout", "model/w=x,y"]) == 1
    assert "--layout needs --mesh" in capsys.readouterr().err
    assert main(["explain", DTENSOR, "--mesh", "x=2", "--layout", "nothing=x"]) == 1
    assert "'nothing', which is not a tensor" in capsys.readouterr().err
    assert main(["explain", DTENSOR, "--mesh", "x=2", "--layout", "model/w=x"]) == 1
    assert "rank" in capsys.readouterr().err
    assert main(["explain", DTENSOR, "--mesh", "x=two"]) == 1
    assert "NAME=SIZE" in capsys.readouterr().err


def test_a_budget_too_small_names_the_smallest(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "--json", "--new", "--budget", "100", DTENSOR]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["budget"] == 100 and report["needed"] > 100
    assert main(["explain", "--json", "--new", "--budget", str(report["needed"]), DTENSOR]) == 0
    assert json.loads(capsys.readouterr().out)["peak_extra_bytes"] <= report["needed"]


def test_the_plan_is_what_a_restore_by_name_reads(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mesh = dtensor.create_mesh([("x", 2), ("y", 4)], device_type="CPU")
    value = np.arange(64 * 48, dtype=np.float32).reshape(64, 48)
    prefix = str(tmp_path / "named")
    dtensor.name_based_save(
        mesh, prefix, {"w": dtensor.copy_to_mesh(value, dtensor.Layout(["x", "y"], mesh))}
    )
    target = dtensor.Layout([dtensor.UNSHARDED, "x"], mesh)  # each y-replica reads once
    plan = dtensor.plan_checkpoint_restore(prefix, {"w": target}, in_place=False)
    seen: list[tuple[str, int, int]] = []
    plain, checked = streams.LocalFile.read_into, streams.LocalFile.read_into_with_crc32c

    def read_into(self: streams.LocalFile, out: np.ndarray, offset: int) -> None:
        seen.append((self.path, offset, out.nbytes))
        plain(self, out, offset)

    def read_into_with_crc32c(self: streams.LocalFile, out: np.ndarray, offset: int) -> int:
        seen.append((self.path, offset, out.nbytes))
        return checked(self, out, offset)

    monkeypatch.setattr(streams.LocalFile, "read_into", read_into)
    monkeypatch.setattr(streams.LocalFile, "read_into_with_crc32c", read_into_with_crc32c)
    zeros = dtensor.copy_to_mesh(np.zeros_like(value), target)
    got = dtensor.name_based_restore(mesh, prefix, {"w": zeros})["w"]
    assert np.array_equal(got.numpy(), value)
    planned = sorted(
        (path, r.offset, r.length) for read in plan.reads for path, r in zip(read.files, read.ranges)
    )
    assert sorted(seen) == planned
    assert sum(n for _, _, n in seen) == plan.bytes_read == value.nbytes
    assert plan.bytes_needed == 4 * value.nbytes  # 8 devices, each half of the tensor
    # Devices 1..3 of each x-row hold a replica of device 0's half: they read nothing and
    # copy all of it, and their lines say so.
    half = value.nbytes // 2
    lines = [line for line in plan.format(ranges=False).splitlines() if ": needs" in line]
    assert len(lines) == 8
    copies = [line for line in lines if f"(and copies {format_bytes(half)} another" in line]
    assert len(copies) == 6, lines


def test_the_help_examples_run(capsys: pytest.CaptureFixture[str]) -> None:
    import shlex

    from dtckpt.cli.explain import EPILOG

    examples = [line.strip() for line in EPILOG.splitlines() if line.strip().startswith("dtckpt ")]
    assert len(examples) == 3
    for example in examples:
        argv = [a.replace("spec/golden", str(GOLDEN)) for a in shlex.split(example)[1:]]
        assert main(argv) == 0, example
    capsys.readouterr()


def test_a_checkpoint_in_an_archive(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dtckpt.archive import pack

    archive = str(tmp_path / "dt.dtar")
    pack(DTENSOR, archive)
    plan = _json(capsys, archive, "--mesh", "a=4,b=2", "--layout", "model/w=b,a")
    assert plan["bytes_needed"] == plan["bytes_read"] == 244
    assert all(f["path"].startswith(archive + "::") for f in plan["files"])

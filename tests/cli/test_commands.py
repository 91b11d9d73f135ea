"""The ``dtckpt`` commands as a user runs them: ``python -m dtckpt ...`` in a fresh process.

Each subprocess costs a few tenths of a second, so each run here checks as much as it can;
the cheaper in-process checks are in ``test_main.py``.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np

import dtckpt
from tests.conftest import GOLDEN


def dtckpt_run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dtckpt", *args], capture_output=True, text=True, timeout=120
    )


def test_inspect_json_tree_matches_the_reader() -> None:
    prefix = str(GOLDEN / "og_v1_slots" / "ckpt")
    run = dtckpt_run("inspect", "--json", "--tree", prefix)
    assert run.returncode == 0, run.stderr
    listing = json.loads(run.stdout)
    with dtckpt.load_checkpoint(prefix) as reader:
        shapes = reader.get_variable_to_shape_map()
        dtypes = reader.get_variable_to_dtype_map()
        sizes = {k: reader.bundle.entry(k).size for k in shapes}
    assert [t["key"] for t in listing["tensors"]] == sorted(shapes)
    for t in listing["tensors"]:
        assert t["shape"] == shapes[t["key"]]
        assert np.dtype(dtypes[t["key"]]).name == t["dtype"] or t["dtype"] == "string"
        assert t["bytes"] == sizes[t["key"]] and t["shards"] == [0] and t["slices"] == []
    assert listing["totals"]["tensors"] == len(shapes) == 9
    assert listing["totals"]["bytes"] == sum(sizes.values())
    assert listing["header"] == {
        "num_shards": 1,
        "endianness": "little",
        "version": {"producer": 1, "min_consumer": 0, "bad_consumers": []},
    }
    nodes = {n["node_id"]: n for n in listing["object_graph"]["nodes"]}
    assert nodes[3]["path"] == "model/kernel"
    assert nodes[3]["attributes"][0]["key"] == "model/kernel/.ATTRIBUTES/VARIABLE_VALUE"
    assert nodes[3]["attributes"][0]["shape"] == [2, 3]
    assert {"slot_name": "m", "original_node_id": 3, "slot_node_id": 7} in nodes[2][
        "slot_variables"
    ]


def test_inspect_text_partitioned_savedmodel_and_name_based(tmp_path: pathlib.Path) -> None:
    run = dtckpt_run("inspect", "--slices", str(GOLDEN / "multi_shard" / "ckpt"))
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[1].startswith("header: 3 data shard(s), little-endian")
    m = next(line for line in lines if line.startswith("m "))
    assert m.split()[1:] == ["float32", "[6,2]", "3", "48", "B", "0,1,2"]
    assert any(line.strip().startswith("[0,2:-]") for line in lines)
    assert "6 tensors (2 partitioned into 5 slices), 11 index entries" in run.stdout

    saved = dtckpt_run("--quiet", "inspect", "--tree", str(GOLDEN / "og_savedmodel" / "saved"))
    assert saved.returncode == 0, saved.stderr
    assert "saved/variables/variables" in saved.stdout
    assert "├── w  VARIABLE_VALUE float32 [2]" in saved.stdout
    assert "tensors," not in saved.stdout  # --quiet drops the totals line

    tf1 = dtckpt_run("inspect", "--tree", str(GOLDEN / "og_name_based" / "ckpt"))
    assert tf1.returncode == 0 and "object graph: none" in tf1.stdout
    assert "name-based checkpoint" in tf1.stdout


def _damaged_copy(tmp_path: pathlib.Path) -> tuple[str, list[str]]:
    """multi_shard with shard 0 deleted, a flipped byte in shard 1, shard 2 truncated."""
    shutil.copytree(GOLDEN / "multi_shard", tmp_path / "ck")
    prefix = str(tmp_path / "ck" / "ckpt")
    shards = [f"{prefix}.data-0000{i}-of-00003" for i in range(3)]
    os.remove(shards[0])
    with open(shards[1], "r+b") as f:
        f.seek(20)
        byte = f.read(1)
        f.seek(20)
        f.write(bytes([byte[0] ^ 0x80]))
    os.truncate(shards[2], os.path.getsize(shards[2]) - 1)
    return prefix, shards


def test_verify_finds_every_problem(tmp_path: pathlib.Path) -> None:
    good = dtckpt_run("verify", str(GOLDEN / "multi_shard" / "ckpt"))
    assert good.returncode == 0, good.stderr
    assert ": OK (11 entries, 3 data shard(s), 170 B checked" in good.stdout

    prefix, shards = _damaged_copy(tmp_path)
    text = dtckpt_run("verify", prefix)
    assert text.returncode == 1
    lines = text.stdout.splitlines()
    assert lines[0] == (
        f"missing-shard: {shards[0]}: data file is missing; 2 entries are stored in it"
    )
    assert lines[1].startswith(f"checksum: {shards[1]}: key 'beta': bytes [16, 30): ")
    assert "checksum does not match" in lines[1]
    assert lines[2] == (
        f"truncated: {shards[2]}: key 'delta': bytes [36, 68): entry needs bytes up to 68 "
        "but the data file holds 67 bytes"
    )
    assert "3 problem(s)" in lines[3]
    assert "Traceback" not in text.stderr

    report = json.loads(dtckpt_run("verify", "--json", prefix).stdout)
    assert report["ok"] is False and report["entries"] == 11
    assert [(p["kind"], p["key"], p["start"], p["stop"]) for p in report["problems"]] == [
        ("missing-shard", None, None, None),
        ("checksum", "beta", 16, 30),
        ("truncated", "delta", 36, 68),
    ]


def test_damaged_index_and_bad_paths_give_one_line(tmp_path: pathlib.Path) -> None:
    shutil.copytree(GOLDEN / "dtypes", tmp_path / "ck")
    prefix = str(tmp_path / "ck" / "ckpt")
    with open(prefix + ".index", "r+b") as f:
        f.seek(30)
        byte = f.read(1)
        f.seek(30)
        f.write(bytes([byte[0] ^ 1]))
    verify = dtckpt_run("verify", prefix)
    assert verify.returncode == 1
    assert verify.stdout.startswith(f"index: {prefix}.index: byte offset 0: block checksum")
    inspect = dtckpt_run("inspect", prefix)
    assert inspect.returncode == 1 and inspect.stdout == ""
    assert (
        inspect.stderr == f"dtckpt: error: {prefix}.index: byte offset 0: block checksum mismatch\n"
    )

    missing = str(tmp_path / "nope")
    for command in ("inspect", "verify"):
        bad = dtckpt_run(command, missing)
        assert bad.returncode == 1
        assert bad.stderr.count("\n") == 1 and bad.stderr.startswith("dtckpt: error: ")
        assert missing in bad.stderr and "Traceback" not in bad.stderr
    debug = dtckpt_run("inspect", missing, "--debug")
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr and "NotFoundError" in debug.stderr
    usage = dtckpt_run("verify")
    assert usage.returncode == 2 and "usage: dtckpt verify" in usage.stderr


def test_diff(tmp_path: pathlib.Path) -> None:
    a = str(GOLDEN / "og_saves" / "ckpt-1")
    b = str(GOLDEN / "og_saves" / "ckpt-3")
    run = dtckpt_run("diff", "--json", a, b)
    assert run.returncode == 1, run.stderr
    document = json.loads(run.stdout)
    assert document["same"] is False
    rows = {t["key"]: t for t in document["tensors"]}
    key = "m/w/.ATTRIBUTES/VARIABLE_VALUE"
    with dtckpt.load_checkpoint(a) as ra, dtckpt.load_checkpoint(b) as rb:
        x = ra.get_tensor(key).astype(np.float64)
        y = rb.get_tensor(key).astype(np.float64)
    assert rows[key]["status"] == "different"
    assert rows[key]["max_abs"] == np.abs(x - y).max()
    assert rows[key]["differing"] == int((x != y).sum())
    assert rows["_CHECKPOINTABLE_OBJECT_GRAPH"]["status"] == "identical"

    text = dtckpt_run("diff", a, b)
    assert text.returncode == 1
    assert text.stdout.splitlines()[0].split()[:2] == ["key", "status"]
    assert "_CHECKPOINTABLE_OBJECT_GRAPH" not in text.stdout  # identical rows need --all
    assert text.stdout.rstrip().endswith("4 different, 1 identical; they differ")
    same = dtckpt_run("diff", "-q", str(GOLDEN / "og_saves"), b)  # directory: its latest
    assert same.returncode == 0 and same.stdout == ""


HEAVY = (
    "numba",
    "zstandard",
    "dtckpt.dtensor",
    "dtckpt.mesh",
    "dtckpt.checkpoint.checkpoint",
    "dtckpt.checkpoint.state",
    "importlib.metadata",
)


def test_inspect_and_verify_start_light() -> None:
    """Rule V-CL-4: no Numba, zstandard, DTensor or object-graph machinery for these."""
    code = (
        "import sys\n"
        "from dtckpt.cli import main\n"
        f"for argv in (['inspect', '--json', {str(GOLDEN / 'dtypes' / 'ckpt')!r}],\n"
        f"             ['verify', {str(GOLDEN / 'dtypes' / 'ckpt')!r}]):\n"
        "    assert main(argv) == 0\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stderr.strip().splitlines()[-1] == "[]"


def test_a_closed_pipe_ends_quietly() -> None:
    """``dtckpt inspect ... | head -1``: no BrokenPipeError noise."""
    with subprocess.Popen(
        [sys.executable, "-m", "dtckpt", "inspect", str(GOLDEN / "many_blocks" / "ckpt")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline().startswith(b"checkpoint ")
        proc.stdout.close()
        err = proc.stderr.read()
        status = proc.wait(timeout=120)
    assert err == b""
    assert status == 141

"""The command line in process: options, help, quiet, errors, progress, and the object tree."""

from __future__ import annotations

import io
import json
import pathlib
import sys

import pytest

import dtckpt
from dtckpt.cli import main
from dtckpt.cli._term import (
    ProgressBar,
    Terminal,
    format_shape,
    format_size,
    json_number,
    to_json,
)
from dtckpt.cli._tree import MAX_PATH_CHARS, MAX_TREE_DEPTH, GraphView
from dtckpt.format.object_graph import (
    ObjectReference,
    SerializedTensor,
    SlotVariableReference,
    TrackableObject,
    TrackableObjectGraph,
)
from tests.conftest import GOLDEN

MULTI = str(GOLDEN / "multi_shard" / "ckpt")
COMMANDS = ["inspect", "verify", "diff", "explain", "convert", "pack", "unpack", "demo"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert f"usage: dtckpt {command}" in text
    assert "example" in text and f"dtckpt {command} " in text.split("example")[1]
    assert "--debug" in text and "--quiet" in text


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in ([], ["frobnicate"], ["diff", MULTI], ["inspect", MULTI, "--bogus"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
    assert "usage: dtckpt" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [["--quiet", "verify", MULTI], ["verify", "--quiet", MULTI], ["verify", MULTI, "-q"]],
)
def test_quiet_before_or_after_the_command(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 0
    assert capsys.readouterr() == ("", "")


def test_debug_before_the_command_reraises(tmp_path: pathlib.Path) -> None:
    with pytest.raises(dtckpt.errors.NotFoundError):
        main(["--debug", "verify", str(tmp_path / "none")])
    with pytest.raises(dtckpt.errors.NotFoundError):
        main(["--debug", "-q", "diff", MULTI, str(tmp_path / "none")])


def test_internal_errors_are_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import dtckpt.cli.inspect as command

    def broken(*args: object) -> int:
        raise ZeroDivisionError("oops")

    monkeypatch.setattr(command, "describe", broken)
    assert main(["inspect", MULTI]) == 1
    err = capsys.readouterr().err
    assert err == (
        "dtckpt: error: internal error: ZeroDivisionError: oops "
        "(run with --debug for the traceback)\n"
    )
    with pytest.raises(ZeroDivisionError):
        main(["inspect", MULTI, "--debug"])


@pytest.mark.parametrize(
    "module, argv",
    [
        ("dtckpt.interop", ["convert", MULTI, "out.npz"]),
        ("dtckpt.archive", ["pack", MULTI, "out.dtckpt"]),
        ("dtckpt.archive", ["unpack", "in.dtckpt", "out"]),
    ],
)
def test_missing_libraries_fail_cleanly(
    module: str,
    argv: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # makes the import fail
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("dtckpt: error: ") and "not available" in err
    assert err.count("\n") == 1
    assert main(["-q", "verify", MULTI]) == 0  # the other commands still work


def test_inspect_json_of_a_partitioned_checkpoint(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", "--json", MULTI]) == 0
    listing = json.loads(capsys.readouterr().out)
    m = next(t for t in listing["tensors"] if t["key"] == "m")
    assert m["shards"] == [0, 1, 2] and m["shard"] is None and m["offset"] is None
    assert [s["slice"] for s in m["slices"]] == ["0,2:-", "2,2:-", "4,2:-"]
    assert [s["shape"] for s in m["slices"]] == [[2, 2]] * 3
    assert sum(s["bytes"] for s in m["slices"]) == m["bytes"] == 48
    assert listing["totals"] == {
        "tensors": 6,
        "entries": 11,
        "bytes": 170,
        "data_files_bytes": 170,
        "missing_shards": [],
        "missing_shard_count": 0,
    }
    assert listing["object_graph"] is None and listing["has_object_graph"] is False


def test_inspect_tree_shows_shared_nodes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", "--tree", str(GOLDEN / "og_nested" / "ckpt")]) == 0
    out = capsys.readouterr().out
    assert "kernel -> model/shared" in out
    assert "│   │   │   └── 0  VARIABLE_VALUE float32 [4]" not in out
    assert "    ├── table\n    │   ├── plain  VARIABLE_VALUE bfloat16 [3]" in out


def test_inspect_warns_about_missing_shards(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = str(tmp_path / "ck")
    dtckpt.save_v2(prefix, ["x"], [""], [b"abc"])
    (tmp_path / "ck.data-00000-of-00001").unlink()
    assert main(["inspect", prefix]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[3].split() == ["x", "string", "[]", "-", "8", "B", "0"]
    assert (
        captured.err
        == f"dtckpt: warning: data shard(s) 0 of {prefix} missing (see dtckpt verify)\n"
    )


def test_demo(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "values match: yes\nverify: OK\n" in out
    assert "model/kernel/.ATTRIBUTES/VARIABLE_VALUE" in out and "no problems" in out
    assert main(["-q", "demo", str(tmp_path / "again")]) == 0
    assert capsys.readouterr().out == "values match: yes\nverify: OK\n"


# -- terminal ----------------------------------------------------------------


def test_sizes_shapes_and_json() -> None:
    assert [format_size(n) for n in (0, 1023, 1024, 1536, 5 << 20, 3 << 40, 5 << 50)] == [
        "0 B",
        "1023 B",
        "1.0 KiB",
        "1.5 KiB",
        "5.0 MiB",
        "3.0 TiB",
        "5120.0 TiB",
    ]
    assert (format_shape(()), format_shape([2, 3]), format_shape(None)) == ("[]", "[2,3]", "-")
    values = [json_number(x) for x in (1, 0.5, float("inf"), float("nan"), -float("inf"), None)]
    assert json.loads(to_json({"a": (1, values)})) == {
        "a": [1, [1, 0.5, "inf", "nan", "-inf", None]]
    }
    with pytest.raises(ValueError):
        to_json([float("nan")])


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_draws_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ProgressBar, "INTERVAL", 0.0)
    tty = _Tty()
    bar = Terminal(err=tty).progress()
    bar.start(2048, "verify")
    bar.advance(1024)
    bar.advance(1024)
    bar.finish()
    drawn = tty.getvalue()
    assert "\rverify [" in drawn and " 50% 1.0 KiB / 2.0 KiB" in drawn and "100%" in drawn
    assert drawn.endswith("\r\x1b[K")
    for term in (Terminal(err=io.StringIO()), Terminal(err=_Tty(), quiet=True)):
        silent = term.progress()
        silent.start(10)
        silent.advance(10)
        silent.finish()
        assert term.err.getvalue() == ""  # type: ignore[attr-defined]


# -- object tree -------------------------------------------------------------


def _node(
    *children: tuple[int, str], slots: tuple[SlotVariableReference, ...] = (), key: str = ""
) -> TrackableObject:
    attributes = (SerializedTensor("VARIABLE_VALUE", "", key),) if key else ()
    return TrackableObject(
        children=tuple(ObjectReference(i, name) for i, name in children),
        attributes=attributes,
        slot_variables=slots,
    )


def test_tree_of_a_deep_chain_and_a_slot_cycle() -> None:
    depth = 3000
    chain = [_node((i + 1, f"n{i}")) for i in range(depth)] + [_node(key="nowhere")]
    with dtckpt.BundleReader(MULTI) as bundle:
        deep = GraphView(TrackableObjectGraph(tuple(chain)), bundle)
        lines = deep.render()
        # Rule H-WK-2: 64 levels drawn, then one line for the 2936 nodes below.
        assert len(lines) == 1 + MAX_TREE_DEPTH + 1
        assert lines[-2].endswith(f"└── n{MAX_TREE_DEPTH - 1}")
        assert f"{depth - MAX_TREE_DEPTH} more node(s) below" in lines[-1]
        assert max(len(line) for line in lines) < 8 * MAX_TREE_DEPTH
        nodes = deep.as_json()["nodes"]
        assert nodes[-1]["path"].startswith("\u2026") and nodes[-1]["path"].endswith("/n2999")
        assert max(len(n["path"]) for n in nodes) == MAX_PATH_CHARS
        cycle = (
            _node((1, "a"), (2, "b"), (4, "a/b.c")),
            _node(slots=(SlotVariableReference(2, "m", 1),), key="alpha"),
            _node(slots=(SlotVariableReference(1, "m", 2),)),
            _node(),  # reached by nothing
            _node(),
        )
        view = GraphView(TrackableObjectGraph(cycle), bundle)
        text = "\n".join(view.render())
    assert "├── a  VARIABLE_VALUE float32 [3,3]" in text
    assert "shown above" in text
    assert text.endswith("nodes not reachable from the root: 3")
    assert view.paths[4] == "a.Sb..c"  # escaped as in checkpoint keys
    assert view.as_json()["nodes"][4]["path"] == "a.Sb..c"


def test_diff_json_writes_infinities_as_strings(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import numpy as np

    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    dtckpt.save_v2(a, ["x", "y"], ["", ""], [np.array([np.inf, 1.0]), np.arange(3)])
    dtckpt.save_v2(b, ["x", "y"], ["", ""], [np.array([1.0, 1.0]), np.arange(3)])
    assert main(["diff", "--json", a, b]) == 1
    document = json.loads(capsys.readouterr().out)
    x, y = document["tensors"]
    assert (x["status"], x["max_abs"], x["max_rel"], x["inf_a"]) == ("different", "inf", 1.0, 1)
    assert (y["status"], y["max_abs"], y["shape_a"]) == ("identical", 0, [3])
    assert main(["diff", "--all", a, b]) == 1
    lines = capsys.readouterr().out.splitlines()
    # no NaN on either side: that column stays empty
    assert lines[1].split() == ["x", "different", "float64", "[2]", "1", "inf", "1", "1/0"]

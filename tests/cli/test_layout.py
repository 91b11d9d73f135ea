"""Pictures of the mesh: ``dtckpt inspect --layout`` / ``--mesh`` / ``--svg`` and their model."""

from __future__ import annotations

import itertools
import json
import pathlib
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import dtckpt
from dtckpt.cli import main
from dtckpt.cli._mesh import MAX_DEVICES, match_variables, parse_layouts, parse_mesh
from dtckpt.cli._picture import MAX_COLUMNS, MAX_ROWS, build_picture, held_cell, render_text
from dtckpt.errors import InvalidArgumentError
from dtckpt.mesh import Layout
from tests.conftest import GOLDEN

DT = str(GOLDEN / "dt_2x4_save" / "ckpt-1")
MANIFEST = json.loads((GOLDEN / "dt_2x4_save" / "manifest.json").read_text())
SVG = "{http://www.w3.org/2000/svg}"


def _picture(prefix: str, mesh: str | None, layouts: tuple[str, ...] = ()) -> object:
    parsed = None if mesh is None else parse_mesh(mesh)
    with dtckpt.load_checkpoint(prefix) as reader:
        return build_picture(reader.bundle, reader.prefix, parsed, parse_layouts(layouts, parsed))


def test_the_saved_layouts_are_found_from_the_slices_and_files() -> None:
    picture = _picture(DT, "x=2,y=4")
    found = {v.key.split("/")[1]: list(v.specs or ()) for v in picture.variables}  # type: ignore[attr-defined]
    expected = {
        v["name"]: [s for s in v["layout"]]
        for v in MANIFEST["dtensor"]["variables"]
        if any(s != "unsharded" for s in v["layout"])
    }
    assert found == expected
    assert all(v.origin == "saved" for v in picture.variables)  # type: ignore[attr-defined]


def test_another_mesh_does_not_explain_the_files() -> None:
    # h [unsharded, y] alone would fit [unsharded, a] on a 4x2 mesh, but the save as a whole
    # does not: t's blocks are in no writer order of that mesh, so nothing is claimed.
    picture = _picture(DT, "a=4,b=2", ("model/w=b,a",))
    views = {v.key.split("/")[1]: v for v in picture.variables}  # type: ignore[attr-defined]
    assert views["w"].origin == "given" and views["w"].specs == ("b", "a")
    for name in ("c", "h", "t"):
        assert views[name].specs is None and views[name].note
    text = "\n".join(render_text(picture))  # type: ignore[arg-type]
    assert "(as saved)" not in text and "f7" in text


def test_without_a_mesh_each_block_shows_its_data_file() -> None:
    picture = _picture(DT, None)
    with dtckpt.load_checkpoint(DT) as reader:
        for view in picture.variables:  # type: ignore[attr-defined]
            entry = reader.bundle.entry(view.key)
            shards = sorted(
                reader.bundle.entry(_slice_key(view.key, s)).shard_id for s in entry.slices
            )
            assert sorted(f for f in view.files.values()) == shards
    lines = render_text(picture)  # type: ignore[arg-type]
    t = lines.index("model/t/.ATTRIBUTES/VARIABLE_VALUE  int32 [8,4]")
    assert lines[t + 3 : t + 8] == [
        "         0:2  2:4",
        "    0:2   f0   f4",
        "    2:4   f1   f5",
        "    4:6   f2   f6",
        "    6:8   f3   f7",
    ]


def _slice_key(key: str, tensor_slice: object) -> bytes:
    from dtckpt.format.ordered_code import encode_tensor_name_slice

    return encode_tensor_name_slice(key.encode(), tensor_slice)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("mesh", "specs", "shape"),
    [
        ("x=2,y=4", ["x", "y"], (4, 8)),
        ("x=2,y=4", ["unsharded", "y"], (3, 8)),
        ("a=2,b=3,c=2", ["c", "unsharded", "a"], (4, 5, 6)),
        ("a=2,b=3,c=2", ["unsharded", "unsharded", "unsharded"], (4, 5, 6)),
        ("x=6", ["x"], (12,)),
    ],
)
def test_holders_and_writers_match_every_device(
    tmp_path: pathlib.Path, mesh: str, specs: list[str], shape: tuple[int, ...]
) -> None:
    prefix = str(tmp_path / "ckpt")
    dtckpt.save_v2(prefix, ["v"], [""], [np.zeros(shape, np.float32)])
    picture = _picture(prefix, mesh, (f"v={','.join(specs)}",))
    (view,) = picture.variables  # type: ignore[attr-defined]
    layout = Layout(specs, parse_mesh(mesh))
    shards = layout.offset_to_shard()  # TF's per-device shard index, device by device
    lowest: dict[tuple[int, ...], int] = {}
    for device, shard in enumerate(shards):
        lowest.setdefault(shard, device)
        cell = held_cell(view, device)
        assert cell.block == shard
        assert cell.writes == (lowest[shard] == device)
        assert view.writer(shard) == lowest[shard]
    assert view.replicas(picture.mesh) == len(shards) // len(lowest)  # type: ignore[attr-defined]


def test_wide_meshes_are_capped_and_summarised(tmp_path: pathlib.Path) -> None:
    prefix = str(tmp_path / "ckpt")
    dtckpt.save_v2(prefix, ["v"], [""], [np.zeros((64, 64), np.float32)])
    picture = _picture(prefix, "x=64,y=32", ("v=x,y",))
    lines = render_text(picture)  # type: ignore[arg-type]
    assert len(lines) < 5 * MAX_ROWS + 20
    # The mesh, the 64x32 grid of blocks and the devices: 16 of 64 rows, 8 of 32 columns each.
    assert sum(line.strip() == "... and 48 more rows" for line in lines) == 3
    assert sum(line.rstrip().endswith("... +24") for line in lines) == 3
    assert all(len(line) < 120 for line in lines)


def test_arguments_are_checked() -> None:
    mesh = parse_mesh("x=2,y=4")
    assert mesh.dim_names == ["x", "y"] and mesh.size == 8
    assert parse_mesh(mesh.to_string()) == mesh
    for bad in ("x", "x=0", "x=2,x=2", "x=2;y=4", "2=x"):
        with pytest.raises(InvalidArgumentError, match="--mesh"):
            parse_mesh(bad)
    with pytest.raises(InvalidArgumentError, match="pictures are drawn for at most"):
        parse_mesh(f"x={MAX_DEVICES},y=2")
    assert parse_layouts(["k=x,unsharded", "s=", "a=b=-,y"], mesh) == {
        "k": ["x", "unsharded"],
        "s": [],
        "a=b": ["unsharded", "y"],
    }
    with pytest.raises(InvalidArgumentError, match="needs --mesh"):
        parse_layouts(["k=x"], None)
    with pytest.raises(InvalidArgumentError, match="neither 'unsharded' nor"):
        parse_layouts(["k=z"], mesh)
    keys = ["a/kernel/.ATTRIBUTES/VARIABLE_VALUE", "b/kernel/.ATTRIBUTES/VARIABLE_VALUE", "b/bias"]
    assert match_variables(["a/kernel", "bias", keys[1]], keys) == {
        "a/kernel": keys[0],
        "bias": "b/bias",
        keys[1]: keys[1],
    }
    with pytest.raises(InvalidArgumentError, match="fits several keys"):
        match_variables(["kernel"], keys)
    with pytest.raises(InvalidArgumentError, match="not a tensor of the checkpoint"):
        match_variables(["nothing"], keys)


def test_inspect_layout_command(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A bare --layout before the path must not swallow it.
    assert main(["inspect", "--layout", DT]) == 0
    out = capsys.readouterr().out
    assert "no mesh given" in out and "f7" in out
    assert main(["inspect", DT, "--mesh", "x=2,y=4", "--layout", "w=y,x"]) == 0
    out = capsys.readouterr().out
    assert "layout [y, x] (given)" in out and "layout [y, x] (as saved)" in out
    assert main(["inspect", "--json", "--mesh", "x=2,y=4", DT]) == 0
    doc = json.loads(capsys.readouterr().out)
    w = next(v for v in doc["variables"] if v["key"].startswith("model/w/"))
    assert w["layout"] == ["x", "y"] and w["replicas"] == 1 and len(w["blocks"]) == 8
    assert [b["writer"] for b in w["blocks"]] == [0, 1, 2, 3, 4, 5, 6, 7]
    assert [b["file"] for b in w["blocks"]] == [0, 1, 2, 3, 4, 5, 6, 7]
    assert main(["inspect", DT, "--layout", "w=x,y"]) == 1
    assert "needs --mesh" in capsys.readouterr().err
    assert main(["inspect", DT, "--mesh", "x=3", "--layout", "w=x,unsharded"]) == 1
    assert "cannot be split evenly" in capsys.readouterr().err


def test_svg_is_standalone_escaped_and_drawn_cell_by_cell(tmp_path: pathlib.Path) -> None:
    prefix = str(tmp_path / "ckpt")
    name = "a<b>&\"c'/kernel"
    dtckpt.save_v2(
        prefix,
        [name, name, "plain"],
        ["4 6 0,2:-", "4 6 2,2:-", ""],
        [np.zeros((2, 6), np.float32), np.ones((2, 6), np.float32), np.int64(1)],
    )
    svg = tmp_path / "out.svg"
    layout = f"{name}=x,unsharded"
    assert (
        main(["-q", "inspect", "--mesh", "x=2,y=2", "--layout", layout, "--svg", str(svg), prefix])
        == 0
    )
    root = ET.parse(svg).getroot()  # well-formed XML, or this raises
    assert root.tag == f"{SVG}svg"
    assert not list(root.iter(f"{SVG}script")) and "href" not in svg.read_text()
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert any(t and t.startswith(name) for t in texts)  # escaped in the file, whole when parsed
    # The mesh (4 devices), the tensor's 2 blocks and the 4 devices holding them.
    rects = [r for r in root.iter(f"{SVG}rect")][1:]  # the first is the background
    assert len(rects) == 4 + 2 + 4
    outlined = [r for r in rects if r.get("stroke-width") == "2.5"]
    assert len(outlined) == 2  # devices 0 and 2 write the two row blocks of [x, unsharded]
    fills = {r.get("fill") for r in rects[4:6]}
    assert len(fills) == 2 and {r.get("fill") for r in rects[6:]} == fills


def test_pictures_cost_the_cells_shown(tmp_path: pathlib.Path) -> None:
    """A 65,536-device mesh and 4,096 blocks: the picture is drawn from a capped number of
    cells (the geometry is asked about each shown cell only)."""
    from dtckpt.cli import _picture

    prefix = str(tmp_path / "ckpt")
    dtckpt.save_v2(prefix, ["v"], [""], [np.zeros((64, 64), np.float32)])
    picture = _picture_of(prefix, "x=64,y=64,z=16", ("v=x,y",))
    calls = itertools.count()
    original = _picture.VariableView.held_by

    def counting(self: object, device: int) -> tuple[int, ...]:
        next(calls)
        return original(self, device)  # type: ignore[arg-type]

    _picture.VariableView.held_by = counting  # type: ignore[method-assign]
    try:
        render_text(picture)  # type: ignore[arg-type]
    finally:
        _picture.VariableView.held_by = original  # type: ignore[method-assign]
    assert next(calls) <= MAX_ROWS * MAX_COLUMNS


def _picture_of(prefix: str, mesh: str, layouts: tuple[str, ...]) -> object:
    return _picture(prefix, mesh, layouts)


def test_demo_draws_both_meshes_and_keeps_other_files(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "demo"
    assert main(["demo", str(target)]) == 0
    out = capsys.readouterr().out
    assert out.count("(as saved)") == 3 and out.count("(given)") == 4
    assert "mesh x=2, y=4: 8 devices" in out and "mesh a=4, b=2: 8 devices" in out
    assert "its data files do not fit" not in out
    for name in ("saved-layouts.svg", "restored-layouts.svg"):
        assert (target / name).read_text().startswith("<?xml")
    assert main(["-q", "demo", str(target)]) == 0  # a previous demo's files are replaced
    assert capsys.readouterr().out == "values match: yes\nverify: OK\n"
    (target / "notes.txt").write_text("mine")
    assert main(["demo", str(target)]) == 1
    assert "already holds other files (notes.txt)" in capsys.readouterr().err
    assert (target / "notes.txt").read_text() == "mine"
    assert main(["demo", str(target / "notes.txt")]) == 1
    err = capsys.readouterr().err
    assert "exists and is not a directory" in err and "Errno" not in err


def test_pictures_without_a_mesh_import_no_mesh_arithmetic() -> None:
    """Rule V-CL-4: ``dtckpt.mesh`` (and DTensor) only when a mesh is given."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from dtckpt.cli import main\n"
        f"assert main(['-q', 'inspect', '--layout', {DT!r}]) == 0\n"
        "print(sorted(m for m in ('dtckpt.mesh', 'dtckpt.dtensor', 'numba') if m in sys.modules),"
        " file=sys.stderr)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stderr.strip().splitlines()[-1] == "[]"

"""Pictures of a DTensor checkpoint: the mesh, and who holds and writes each block (V-LY-1..6).

::

    mesh x=2, y=4: 8 devices
            y=0  y=1  y=2  y=3
      x=0     0    1    2    3
      x=1     4    5    6    7

    model/embedding/.ATTRIBUTES/VARIABLE_VALUE  bfloat16 [64,32]
      layout [y, unsharded] (as saved): 4 blocks of [16,32], each held by 2 devices
      blocks, by the device that writes each:      devices, by the block each holds (* writes):
                 0:32                                        y=0  y=1  y=2  y=3
        0:16     d0                                  x=0      0*   1*   2*   3*
        ...                                          x=1      0    1    2    3

(the two grids are printed one under the other). Everything here is
arithmetic on the layout's regular grid of blocks (rule M-GE-2): a picture
costs the cells it shows plus one pass over the stored slices, never a walk
over every device for every block.

Without a mesh the stored slices alone are drawn: each block labelled with the
data file holding it (``f3``). A DTensor save writes one data file per writing
device, numbered in device order (D-CK-1), so the files are the writers, but
which device a file belongs to needs the mesh.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._mesh import match_variables

if TYPE_CHECKING:
    from ..format.bundle_reader import BundleReader
    from ..mesh import Layout, Mesh

__all__ = [
    "MAX_ROWS",
    "MAX_COLUMNS",
    "MAX_WHOLE_NAMED",
    "MeshView",
    "VariableView",
    "Picture",
    "build_picture",
    "render_text",
]

#: Rule V-LY-4: rows and columns of a grid drawn at most; the rest is summarised.
MAX_ROWS = 16
MAX_COLUMNS = 8
#: Tensors stored whole named in the summary line at most.
MAX_WHOLE_NAMED = 8
#: Assignments of mesh dimensions to tensor dimensions tried when inferring a layout.
_MAX_CANDIDATES = 256

Index = tuple[int, ...]


@dataclass(frozen=True)
class MeshView:
    names: tuple[str, ...]
    sizes: tuple[int, ...]

    @property
    def devices(self) -> int:
        return math.prod(self.sizes)

    def describe(self) -> str:
        dims = ", ".join(f"{n}={s}" for n, s in zip(self.names, self.sizes, strict=True))
        return f"mesh {dims}: {self.devices} device{'s' if self.devices != 1 else ''}"


@dataclass
class VariableView:
    """One tensor as a grid of blocks, and (with a layout) the devices holding them."""

    key: str
    dtype: str
    shape: tuple[int, ...]
    #: Blocks per tensor dimension.
    counts: tuple[int, ...]
    #: Per dimension, where each block starts, then the dimension's size.
    bounds: tuple[tuple[int, ...], ...]
    #: The layout's sharding specs on the mesh; ``None`` when there is no mesh or none fits.
    specs: tuple[str, ...] | None = None
    #: ``given`` (--layout), ``saved`` (inferred from the stored slices) or ``whole``.
    origin: str = "saved"
    #: Block index -> data file, for blocks read from the checkpoint.
    files: dict[Index, int | None] = field(default_factory=dict)
    #: Why no layout is shown, when a mesh was given but none fits.
    note: str = ""
    layout: Layout | None = None

    @property
    def blocks(self) -> int:
        return math.prod(self.counts)

    def block_shape(self) -> tuple[int, ...]:
        return tuple(b[1] - b[0] for b in self.bounds)

    def replicas(self, mesh: MeshView) -> int:
        used = set(self.specs or ())
        return math.prod(s for n, s in zip(mesh.names, mesh.sizes, strict=True) if n not in used)

    def writer(self, index: Index) -> int:
        from ..mesh import block_device

        assert self.layout is not None
        return block_device(self.layout, index)

    def held_by(self, device: int) -> Index:
        from ..mesh import shard_coordinates

        assert self.layout is not None
        return shard_coordinates(self.layout, device)


@dataclass
class Picture:
    prefix: str
    mesh: MeshView | None
    variables: list[VariableView]
    #: Keys of tensors stored whole that no --layout names (replicated, or not DTensors).
    whole: list[str]


def build_picture(
    bundle: BundleReader,
    prefix: str,
    mesh: Mesh | None,
    layouts: dict[str, list[str]],
) -> Picture:
    """The picture of rule V-LY-1: every partitioned tensor, and those ``layouts`` names.

    One pass over the keys; each partitioned tensor costs its slices.
    """
    from ..dtypes import info
    from ..format.naming import key_str

    raw = [k for k in bundle.keys() if k != b"_CHECKPOINTABLE_OBJECT_GRAPH"]
    names = [key_str(k) for k in raw]
    given = {key: layouts[name] for name, key in match_variables(list(layouts), names).items()}
    view_mesh = None if mesh is None else MeshView(tuple(mesh.dim_names), tuple(mesh.shape()))
    variables: list[VariableView] = []
    whole: list[str] = []
    saved: list[VariableView] = []
    for key, name in zip(raw, names, strict=True):
        entry = bundle.entry(key)
        shape = tuple(int(d) for d in entry.shape)
        dtype = info(entry.dtype).name
        if entry.slices:
            view = _stored(bundle, key, name, dtype, shape, entry.slices)
            if mesh is not None and not view.note:
                _infer(view, mesh)
            saved.append(view)
            if name not in given:
                variables.append(view)
        elif name not in given:
            whole.append(name)
        if name in given:
            assert mesh is not None
            variables.append(_given(name, dtype, shape, given[name], mesh))
    if mesh is not None:
        _check_files(saved, len(saved) < len(bundle.keys()), bundle.num_shards)
    return Picture(prefix, view_mesh, variables, whole)


def _given(name: str, dtype: str, shape: tuple[int, ...], specs: list[str], mesh: Mesh) -> Any:
    from ..mesh import Layout

    layout = Layout(specs, mesh)
    local = layout.local_shape_from_global_shape(shape)  # refuses uneven splits, with TF's words
    counts = tuple(layout.num_shards(i) if n else 1 for i, n in enumerate(local))
    bounds = tuple(
        tuple(c * n for c in range(k)) + (d,) for k, n, d in zip(counts, local, shape, strict=True)
    )
    return VariableView(name, dtype, shape, counts, bounds, tuple(specs), "given", layout=layout)


def _stored(
    bundle: BundleReader,
    key: bytes,
    name: str,
    dtype: str,
    shape: tuple[int, ...],
    slices: Sequence[Any],
) -> VariableView:
    """The grid the stored slices form (one sort per dimension), with each block's file."""
    from ..format.ordered_code import encode_tensor_name_slice
    from ..format.slices import resolve

    boxes = [resolve(s, shape) for s in slices]
    starts = [sorted({box[i][0] for box in boxes}) for i in range(len(shape))]
    counts = tuple(len(s) for s in starts)
    bounds = tuple((*s, d) for s, d in zip(starts, shape, strict=True))
    view = VariableView(name, dtype, shape, counts, bounds)
    position = [{start: i for i, start in enumerate(s)} for s in starts]
    for tensor_slice, box in zip(slices, boxes, strict=True):
        index = tuple(position[i][start] for i, (start, _) in enumerate(box))
        fits = all(
            start + length == bounds[i][index[i] + 1] for i, (start, length) in enumerate(box)
        )
        if not fits or index in view.files:
            view.note = "its slices do not form a grid of blocks: see dtckpt inspect --slices"
            view.files.clear()
            return view
        slice_key = encode_tensor_name_slice(key, tensor_slice)
        view.files[index] = bundle.entry(slice_key).shard_id if slice_key in bundle else None
    if len(view.files) != view.blocks:
        view.note = "its slices do not cover the tensor: see dtckpt verify"
    return view


def _infer(view: VariableView, mesh: Mesh) -> None:
    """The layout on ``mesh`` that stored these blocks, if exactly one fits (rule V-LY-3).

    A dimension cut into ``k`` equal blocks is sharded over a mesh dimension of size
    ``k``; among the assignments that fit, the writers must come in the order of the
    data files (a save numbers its files by writing device, D-CK-1).
    """
    from ..errors import InvalidArgumentError
    from ..mesh import Layout, block_device

    sizes = dict(zip(mesh.dim_names, mesh.shape(), strict=True))
    options: list[list[str]] = []
    for count, starts in zip(view.counts, view.bounds, strict=True):
        size = starts[-1]
        if count == 1:
            options.append(["unsharded"])
            continue
        step = size // count
        regular = size % count == 0 and all(s == i * step for i, s in enumerate(starts[:-1]))
        fitting = [n for n, s in sizes.items() if s == count] if regular else []
        if not fitting:
            view.note = f"no layout on this mesh cuts it into {'x'.join(map(str, view.counts))}"
            return
        options.append(fitting)
    fits: list[tuple[str, ...]] = []
    for specs in itertools.islice(itertools.product(*options), _MAX_CANDIDATES):
        sharded = [s for s in specs if s != "unsharded"]
        if len(set(sharded)) != len(sharded):
            continue
        try:
            layout = Layout(list(specs), mesh)
        except InvalidArgumentError:
            continue
        if _files_in_writer_order(view, lambda i, layout=layout: block_device(layout, i)):
            fits.append(specs)
    if len(fits) != 1:
        view.note = (
            "no layout on this mesh stores its blocks in these data files"
            if not fits
            else f"{len(fits)} layouts on this mesh fit: name one with --layout"
        )
        return
    view.specs = fits[0]
    view.layout = Layout(list(fits[0]), mesh)


def _check_files(saved: list[VariableView], device_zero: bool, num_shards: int) -> None:
    """Rule V-LY-3: data file ``k`` must be the ``k``-th writing device of the whole save.

    A layout inferred for one tensor only shows that its own blocks are in writer
    order. The mesh explains the checkpoint when every partitioned tensor has a
    layout on it, the writers of all their blocks (and device 0, which writes the
    tensors stored whole) are ``num_shards`` devices, and the ``k``-th of them
    wrote file ``k``. Otherwise every inferred layout is withdrawn: the checkpoint
    was saved from another mesh, or by writers other than the lowest holders (P-WR-1).
    """
    writers = {0} if device_zero else set()
    failed = next((v for v in saved if v.specs is None), None)
    for view in saved:
        if view.specs is not None:
            writers.update(view.writer(i) for i in view.files)
    rank = {device: k for k, device in enumerate(sorted(writers))}
    fits = (
        failed is None
        and len(writers) == num_shards
        and all(
            f is None or rank[view.writer(i)] == f for view in saved for i, f in view.files.items()
        )
    )
    if fits:
        return
    why = (
        f"no layout on it explains how {failed.key} was stored"
        if failed is not None
        else f"{len(writers)} devices would write, in other files than the {num_shards} found"
    )
    for view in saved:
        if view.specs is not None:
            view.specs = view.layout = None
            view.note = (
                f"the checkpoint's data files do not fit this mesh ({why}): it was saved from "
                "another mesh, or by writers other than the lowest holders"
            )


def _files_in_writer_order(view: VariableView, writer: Any) -> bool:
    known = [(writer(i), f) for i, f in view.files.items() if f is not None]
    known.sort()
    return all(a[1] < b[1] for a, b in itertools.pairwise(known))


# -- text ----------------------------------------------------------------------------------------


def render_text(picture: Picture) -> list[str]:
    """The picture as plain lines (rule V-LY-4): no colour, no characters beyond ASCII."""
    lines: list[str] = []
    mesh = picture.mesh
    if mesh is not None:
        lines.append(mesh.describe())
        lines.extend("  " + row for row in _table(mesh_grid(mesh, lambda d: Cell(str(d)))))
    else:
        lines.append(
            "no mesh given: blocks are labelled by the data file holding them (fN); a DTensor "
            "save writes one file per writing device, in device order (give --mesh to see which)"
        )
    for view in picture.variables:
        lines.append("")
        lines.extend(_variable_lines(view, mesh))
    if picture.whole:
        lines.append("")
        named = ", ".join(picture.whole[:MAX_WHOLE_NAMED])
        if len(picture.whole) > MAX_WHOLE_NAMED:
            named += f", ... ({len(picture.whole) - MAX_WHOLE_NAMED} more)"
        where = (
            "held whole by every device, written by device 0"
            if mesh is not None
            else "replicated, or not DTensors"
        )
        lines.append(f"{len(picture.whole)} tensor(s) stored whole ({where}): {named}")
    if not picture.variables:
        lines.append("")
        lines.append(
            f"{picture.prefix} has no partitioned tensors: nothing was split into blocks "
            "(use --mesh and --layout VAR=SPEC to see how a mesh would hold its tensors)"
        )
    return lines


def describe_variable(view: VariableView, mesh: MeshView | None) -> list[str]:
    """The title line of a tensor's picture and the line saying what is drawn."""
    from ._term import format_shape

    lines = [f"{view.key}  {view.dtype} {format_shape(view.shape)}"]
    if view.note and not view.files and view.specs is None:
        lines.append(f"not drawn: {view.note}")
        return lines
    plural = "s" if view.blocks != 1 else ""
    what = f"{view.blocks} block{plural} of {format_shape(view.block_shape())}"
    if view.specs is not None and mesh is not None:
        replicas = view.replicas(mesh)
        origin = {"given": "given", "saved": "as saved"}[view.origin]
        lines.append(
            f"layout [{', '.join(view.specs)}] ({origin}): {what}, each held by "
            f"{replicas} device{'s' if replicas != 1 else ''}"
        )
    else:
        lines.append(what + (f"; {view.note}" if view.note else ""))
    return lines


def _variable_lines(view: VariableView, mesh: MeshView | None) -> list[str]:
    title, *details = describe_variable(view, mesh)
    lines = [title, *("  " + d for d in details)]
    if view.specs is not None and mesh is not None:
        lines.append(f"  blocks ({_axes_text(view)}), by the device that writes each:")
        grid = block_grid(view, lambda i: f"d{view.writer(i)}")
        lines.extend("    " + row for row in _table(grid))
        lines.append("  devices, by the block each holds (its place above; * where it writes it):")
        lines.extend("    " + row for row in _table(mesh_grid(mesh, lambda d: held_cell(view, d))))
    elif view.files:
        lines.append(f"  blocks ({_axes_text(view)}), by the data file holding each:")
        grid = block_grid(view, lambda i: file_label(view, i))
        lines.extend("    " + row for row in _table(grid))
    return lines


def file_label(view: VariableView, index: Index) -> str:
    file = view.files.get(index)
    return "missing" if file is None else f"f{file}"


def _block_label(view: VariableView, index: Index) -> str:
    parts = [str(c) for c, k in zip(index, view.counts, strict=True) if k > 1]
    return ",".join(parts) if parts else "all"


def held_cell(view: VariableView, device: int) -> Cell:
    """The block ``device`` holds, starred where it writes it."""
    index = view.held_by(device)
    writes = view.writer(index) == device
    return Cell(_block_label(view, index) + ("*" if writes else ""), index, writes)


def _grid_axes(view: VariableView) -> tuple[list[int], list[int]]:
    """Tensor dimensions along the rows (the first, if cut) and the columns (the others cut)."""
    cut = [i for i, k in enumerate(view.counts) if k > 1]
    if cut and cut[0] == 0 and len(view.shape) > 1:
        return [0], cut[1:]
    return [], cut


def _axes_text(view: VariableView) -> str:
    rows, cols = _grid_axes(view)
    across = ", ".join(f"dim {d}" for d in cols) or "whole"
    return f"dim 0 down, {across} across" if rows else f"{across} across"


def _extent(view: VariableView, dim: int, c: int) -> str:
    return f"{view.bounds[dim][c]}:{view.bounds[dim][c + 1]}"


@dataclass(frozen=True)
class Cell:
    text: str
    #: The block this cell shows (for its colour), ``None`` for a plain device number.
    block: Index | None = None
    #: Whether the device writes the block it holds.
    writes: bool = False


@dataclass(frozen=True)
class Grid:
    """A capped table (rule V-LY-4): the first rows and columns, and how many more there are."""

    row_heads: list[str]
    col_heads: list[str]
    cells: list[list[Cell]]
    more_rows: int
    more_cols: int


def block_grid(view: VariableView, label: Any) -> Grid:
    """The tensor's blocks: ``label(index)`` for each, the first ``MAX_ROWS x MAX_COLUMNS``."""
    row_dims, col_dims = _grid_axes(view)
    rows = list(
        itertools.islice(itertools.product(*(range(view.counts[d]) for d in row_dims)), MAX_ROWS)
    )
    cols = list(
        itertools.islice(itertools.product(*(range(view.counts[d]) for d in col_dims)), MAX_COLUMNS)
    )

    def index(r: Index, c: Index) -> Index:
        out = [0] * len(view.counts)
        for d, v in zip(row_dims, r, strict=True):
            out[d] = v
        for d, v in zip(col_dims, c, strict=True):
            out[d] = v
        return tuple(out)

    def heads(dims: list[int], items: list[Index]) -> list[str]:
        return [",".join(_extent(view, d, v) for d, v in zip(dims, i, strict=True)) for i in items]

    return Grid(
        heads(row_dims, rows),
        [h or "whole" for h in heads(col_dims, cols)],
        [[Cell(label(index(r, c)), index(r, c)) for c in cols] for r in rows],
        math.prod(view.counts[d] for d in row_dims) - len(rows),
        math.prod(view.counts[d] for d in col_dims) - len(cols),
    )


def mesh_grid(mesh: MeshView, cell: Any) -> Grid:
    """Devices in rows (every mesh dimension but the last) and columns (the last): ``cell(d)``."""
    if not mesh.sizes:
        return Grid([""], [""], [[cell(0)]], 0, 0)
    *outer, last = range(len(mesh.sizes))
    rows = list(
        itertools.islice(itertools.product(*(range(mesh.sizes[a]) for a in outer)), MAX_ROWS)
    )
    width = min(mesh.sizes[last], MAX_COLUMNS)
    cells = []
    for r in rows:
        base = 0
        for a, v in zip(outer, r, strict=True):
            base = base * mesh.sizes[a] + v
        cells.append([cell(base * mesh.sizes[last] + c) for c in range(width)])
    return Grid(
        [",".join(f"{mesh.names[a]}={v}" for a, v in zip(outer, r, strict=True)) for r in rows],
        [f"{mesh.names[last]}={c}" for c in range(width)],
        cells,
        math.prod(mesh.sizes[a] for a in outer) - len(rows),
        mesh.sizes[last] - width,
    )


def _table(grid: Grid) -> list[str]:
    col_heads = list(grid.col_heads)
    cells = [[c.text for c in row] for row in grid.cells]
    if grid.more_cols > 0:
        col_heads.append(f"... +{grid.more_cols}")
        cells = [[*row, "..."] for row in cells]
    head_width = max([len(h) for h in grid.row_heads] + [0])
    widths = [max([len(col_heads[j])] + [len(r[j]) for r in cells]) for j in range(len(col_heads))]

    def line(head: str, items: list[str]) -> str:
        body = "  ".join(c.rjust(w) for c, w in zip(items, widths, strict=True))
        return f"{head.ljust(head_width)}  {body}".rstrip()

    lines = [line("", col_heads)]
    lines.extend(line(h, r) for h, r in zip(grid.row_heads, cells, strict=True))
    if grid.more_rows > 0:
        lines.append(f"... and {grid.more_rows} more rows")
    return lines


# -- JSON ----------------------------------------------------------------------------------------


def picture_json(picture: Picture) -> dict[str, Any]:
    """Rule V-LY-5: the picture as data; one row per block, none per device."""
    mesh = picture.mesh
    return {
        "prefix": picture.prefix,
        "mesh": None
        if mesh is None
        else {
            "dims": [{"name": n, "size": s} for n, s in zip(mesh.names, mesh.sizes, strict=True)]
        },
        "variables": [_variable_json(v, mesh) for v in picture.variables],
        "whole": picture.whole,
    }


def _variable_json(view: VariableView, mesh: MeshView | None) -> dict[str, Any]:
    drawn = view.specs is not None and mesh is not None
    blocks = []
    if drawn or view.files:
        for index in itertools.product(*(range(k) for k in view.counts)):
            box = [
                [view.bounds[d][c], view.bounds[d][c + 1] - view.bounds[d][c]]
                for d, c in enumerate(index)
            ]
            row: dict[str, Any] = {"index": list(index), "box": box}
            if view.files:
                row["file"] = view.files.get(index)
            if drawn:
                row["writer"] = view.writer(index)
            blocks.append(row)
    return {
        "key": view.key,
        "dtype": view.dtype,
        "shape": list(view.shape),
        "counts": list(view.counts),
        "layout": None if view.specs is None else list(view.specs),
        "origin": view.origin if view.specs is not None else None,
        "replicas": view.replicas(mesh) if drawn and mesh is not None else None,
        "note": view.note or None,
        "blocks": blocks,
    }

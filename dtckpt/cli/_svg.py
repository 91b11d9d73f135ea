"""The pictures of :mod:`._picture` as one standalone SVG file (rule V-LY-6).

::

    <svg xmlns=... width=W height=H>       one document, no scripts, no external references
      <text>mesh x=2, y=4: 8 devices</text>
      <g> the mesh: one numbered square per device </g>
      per tensor:
      <text>key  dtype [shape]  layout ...</text>
      <g> its blocks, each coloured and labelled with its writer (dN) or data file (fN) </g>
      <g> the devices, each in the colour of the block it holds, writers outlined and starred </g>

Written by hand with the standard library only; every text taken from the
checkpoint or the command line is XML-escaped. The grids are the capped grids
the terminal shows (V-LY-4), so the file grows with the cells drawn, not with
the devices or blocks.
"""

from __future__ import annotations

import math
from typing import Any

from ._picture import (
    Cell,
    Grid,
    MeshView,
    Picture,
    VariableView,
    block_grid,
    file_label,
    held_cell,
    mesh_grid,
)

__all__ = ["escape", "render_svg", "write_svg"]

_CHAR = 7.2  # width of one character of the 12 px monospace font, near enough
_LINE = 18
_CELL_H = 24
_PAD = 16
_GAP = 40
_FONT = 'font-family="DejaVu Sans Mono, Menlo, Consolas, monospace" font-size="12"'


def write_svg(picture: Picture, path: str) -> None:
    """Write the SVG through a temporary file renamed into place."""
    import os

    text = render_svg(picture)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def escape(text: str) -> str:
    """Text for XML content and attribute values; bytes that were not UTF-8 as ``\\xNN``."""
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    # Control characters other than tab and newline are not allowed in XML 1.0 at all.
    text = "".join(c if c >= " " or c in "\t\n" else f"\\x{ord(c):02x}" for c in text)
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&apos;")
    )


def _colour(view: VariableView, index: tuple[int, ...] | None) -> str:
    if index is None:
        return "#f2f2f2"
    flat = 0
    for c, k in zip(index, view.counts, strict=True):
        flat = flat * k + c
    hue = (flat * 137.508) % 360  # the golden angle: neighbouring blocks far apart in hue
    return f"hsl({hue:.0f},65%,80%)"


class _Canvas:
    def __init__(self) -> None:
        self.parts: list[str] = []
        self.width = 0.0
        self.y = float(_PAD)

    def text(
        self, x: float, y: float, text: str, *, anchor: str = "start", bold: bool = False
    ) -> None:
        weight = ' font-weight="bold"' if bold else ""
        self.parts.append(
            f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{weight}>{escape(text)}</text>'
        )
        self.width = max(self.width, x + (len(text) * _CHAR if anchor == "start" else 0))

    def line(self, text: str, *, bold: bool = False) -> None:
        self.y += _LINE
        self.text(_PAD, self.y - 5, text, bold=bold)

    def grid(self, x: float, y: float, grid: Grid, colour: Any) -> tuple[float, float]:
        """Draw ``grid`` with its top-left corner at ``(x, y)``; return its width and height."""
        texts = [c.text for row in grid.cells for c in row] + grid.col_heads
        cell_w = max(40.0, max((len(t) for t in texts), default=1) * _CHAR + 12)
        head_w = max((len(h) for h in grid.row_heads), default=0) * _CHAR + 10
        top = y + _CELL_H  # the column heads take the first row
        for j, head in enumerate(grid.col_heads):
            self.text(x + head_w + (j + 0.5) * cell_w, y + _CELL_H - 8, head, anchor="middle")
        if grid.more_cols > 0:
            self.text(
                x + head_w + len(grid.col_heads) * cell_w + 6,
                y + _CELL_H - 8,
                f"... +{grid.more_cols}",
            )
        for i, (head, row) in enumerate(zip(grid.row_heads, grid.cells, strict=True)):
            cy = top + i * _CELL_H
            self.text(x + head_w - 8, cy + _CELL_H - 8, head, anchor="end")
            for j, cell in enumerate(row):
                self._cell(x + head_w + j * cell_w, cy, cell_w, cell, colour(cell))
        rows = len(grid.cells)
        height = _CELL_H * (rows + 1)
        if grid.more_rows > 0:
            self.text(x + head_w, top + rows * _CELL_H + 14, f"... and {grid.more_rows} more rows")
            height += _LINE
        width = head_w + cell_w * len(grid.col_heads) + (90 if grid.more_cols > 0 else 0)
        self.width = max(self.width, x + width)
        return width, height

    def _cell(self, x: float, y: float, w: float, cell: Cell, fill: str) -> None:
        stroke = (
            'stroke="#000" stroke-width="2.5"' if cell.writes else 'stroke="#888" stroke-width="1"'
        )
        self.parts.append(
            f'<rect x="{x + 1:.1f}" y="{y + 1:.1f}" width="{w - 2:.1f}" height="{_CELL_H - 2}" '
            f'fill="{fill}" {stroke}/>'
        )
        self.text(x + w / 2, y + _CELL_H - 8, cell.text, anchor="middle", bold=cell.writes)


def render_svg(picture: Picture) -> str:
    """The whole picture as an SVG document (a ``str``)."""
    from ._picture import MAX_WHOLE_NAMED, describe_variable

    canvas = _Canvas()
    canvas.line(f"checkpoint {picture.prefix}", bold=True)
    mesh = picture.mesh
    if mesh is not None:
        canvas.line(mesh.describe())
        _, h = canvas.grid(
            _PAD, canvas.y + 4, mesh_grid(mesh, lambda d: Cell(str(d))), lambda c: "#f2f2f2"
        )
        canvas.y += h + 12
    else:
        canvas.line("no mesh given: each block is labelled with the data file holding it (fN)")
    for view in picture.variables:
        canvas.y += 12
        title, *details = describe_variable(view, mesh)
        canvas.line(title, bold=True)
        for detail in details:
            canvas.line(detail)
        _draw_variable(canvas, view, mesh)
    if picture.whole:
        canvas.y += 12
        named = ", ".join(picture.whole[:MAX_WHOLE_NAMED])
        more = len(picture.whole) - MAX_WHOLE_NAMED
        canvas.line(
            f"{len(picture.whole)} tensor(s) stored whole: {named}"
            + (f", ... ({more} more)" if more > 0 else "")
        )
    width = math.ceil(canvas.width + _PAD)
    height = math.ceil(canvas.y + _PAD)
    return "\n".join(
        [
            '<?xml version="1.0" encoding="UTF-8"?>',
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" {_FONT}>',
            f'<rect x="0" y="0" width="{width}" height="{height}" fill="#fff"/>',
            *canvas.parts,
            "</svg>",
            "",
        ]
    )


def _draw_variable(canvas: _Canvas, view: VariableView, mesh: MeshView | None) -> None:
    """The tensor's blocks and, with a layout, the devices beside them."""
    drawn = view.specs is not None and mesh is not None
    if not drawn and not view.files:
        return

    def colour(cell: Cell) -> str:
        return _colour(view, cell.block)

    if drawn:
        blocks = block_grid(view, lambda i: f"d{view.writer(i)}")
    else:
        blocks = block_grid(view, lambda i: file_label(view, i))
    top = canvas.y + 4
    caption = "blocks, by " + ("writing device" if drawn else "data file")
    canvas.text(_PAD, top + 12, caption)
    w, h = canvas.grid(_PAD, top + 16, blocks, colour)
    height = h + 16
    if drawn:
        assert mesh is not None
        x = _PAD + max(w, len(caption) * _CHAR) + _GAP
        canvas.text(x, top + 12, "devices, by the block each holds (outlined, *: writes it)")
        devices = mesh_grid(mesh, lambda d: held_cell(view, d))
        _, h2 = canvas.grid(x, top + 16, devices, colour)
        height = max(height, h2 + 16)
    canvas.y = top + height + 4

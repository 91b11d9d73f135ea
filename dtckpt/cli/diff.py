"""``dtckpt diff A B``: tensor by tensor, what changed between two checkpoints.

Exits 0 when every tensor of either checkpoint is in the other with the same
dtype, shape and values, 1 otherwise (rules V-DF-1 to V-DF-3, V-CL-2).
"""

from __future__ import annotations

import argparse
from typing import Any

from ._term import HelpFormatter, Terminal, format_shape, json_number, to_json

__all__ = ["register", "run"]

#: Rule V-FH-7: the columns explained; every example runs as written (V-FH-1).
EPILOG = """\
Columns:
  key        the tensor's checkpoint key
  status     only_in_a, only_in_b, shape_changed, dtype_changed, identical
             (same bytes), equal (same values, other bytes: -0.0 and 0.0, NaN
             payloads) or different
  dtype      its dtype, 'A -> B' when it changed; shape likewise
  differing  how many elements differ
  max abs    the largest |a - b|
  max rel    the largest |a - b| / max(|a|, |b|) (0 where both are 0)
  NaN, Inf   how many elements are NaN, infinite, in A/B (when any are)
Only tensors that are not identical or equal are listed, unless --all. Floats
are compared in float64, integers exactly. Large tensors are compared a range
of rows at a time, in bounded memory. Exit status 0 when every tensor is
identical or equal, 1 otherwise.

examples (after 'dtckpt demo /tmp/dtckpt-demo'):
  dtckpt convert /tmp/dtckpt-demo /tmp/demo-diff.npz
  dtckpt convert /tmp/demo-diff.npz /tmp/demo-diff/ckpt
  dtckpt diff --all /tmp/dtckpt-demo /tmp/demo-diff/ckpt
  dtckpt diff --json /tmp/dtckpt-demo /tmp/demo-diff/ckpt > diff.json
"""

_COLUMNS = ("key", "status", "dtype", "shape", "differing", "max abs", "max rel", "NaN", "Inf")


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "diff",
        parents=[common],
        help="compare two checkpoints tensor by tensor",
        description="Compare the tensors of checkpoints A and B: keys only in one, dtype "
        "or shape changes, and for the rest the number of differing elements, the largest "
        "absolute and relative differences and the NaN and Inf counts.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    p.add_argument("a", metavar="A", help="the first checkpoint (prefix or directory)")
    p.add_argument("b", metavar="B", help="the second checkpoint (prefix or directory)")
    p.add_argument(
        "--all", action="store_true", help="also list the tensors that are identical or equal"
    )
    p.add_argument("--json", action="store_true", help="write one JSON document instead")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, term: Terminal) -> int:
    from dataclasses import asdict

    from ..checkpoint.diff import SAME, diff_checkpoints
    from ._open import open_checkpoint

    with open_checkpoint(args.a) as a, open_checkpoint(args.b) as b:
        diffs = diff_checkpoints(a, b, progress=term.progress())
        prefixes = (a.prefix, b.prefix)
    same = all(d.status in SAME for d in diffs)
    if args.json:
        document = {
            "a": prefixes[0],
            "b": prefixes[1],
            "same": same,
            "tensors": [_json_row(asdict(d)) for d in diffs],
        }
        term.print(to_json(document))
        return 0 if same else 1
    shown = [d for d in diffs if args.all or d.status not in SAME]
    if shown:
        _print_table(term, [_row(d) for d in shown])
    counts: dict[str, int] = {}
    for d in diffs:
        counts[d.status] = counts.get(d.status, 0) + 1
    tally = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    verdict = "same values" if same else "they differ"
    term.info(f"{len(diffs)} tensors: {tally or 'none'}; {verdict}")
    return 0 if same else 1


def _json_row(row: dict[str, Any]) -> dict[str, Any]:
    row["max_abs"] = json_number(row["max_abs"])
    row["max_rel"] = json_number(row["max_rel"])
    return row


def _row(d: Any) -> tuple[str, ...]:
    if d.dtype_a == d.dtype_b:
        dtype = d.dtype_a or "-"
    else:
        dtype = f"{d.dtype_a or '-'} -> {d.dtype_b or '-'}"
    if d.shape_a == d.shape_b:
        shape = format_shape(d.shape_a)
    else:
        shape = f"{format_shape(d.shape_a)} -> {format_shape(d.shape_b)}"
    differing = "" if d.differing is None else str(d.differing)
    nan = "" if d.nan_a is None or not (d.nan_a or d.nan_b) else f"{d.nan_a}/{d.nan_b}"
    inf = "" if d.inf_a is None or not (d.inf_a or d.inf_b) else f"{d.inf_a}/{d.inf_b}"
    key = d.key.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return (
        key,
        d.status,
        dtype,
        shape,
        differing,
        _number(d.max_abs),
        _number(d.max_rel),
        nan,
        inf,
    )


def _number(value: int | float | None) -> str:
    if value is None:
        return ""
    if isinstance(value, int):
        return str(value)
    return f"{value:.6g}"


def _print_table(term: Terminal, rows: list[tuple[str, ...]]) -> None:
    table = [_COLUMNS, *rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(_COLUMNS))]
    for r in table:
        cells = [
            c.rjust(w) if i >= 4 else c.ljust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        term.print("  ".join(cells).rstrip())

"""``dtckpt explain PATH``: what a restore will read and the memory it takes (R-PL-5, V-CL-5).

Works from the index alone: no tensor is read. Without ``--mesh`` every tensor is planned as
a whole value; with ``--mesh`` and ``--layout VAR=SPEC`` the named tensors are planned block
by block for every device of the mesh, resharded from however they were saved.
"""

from __future__ import annotations

import argparse
from typing import Any

from ._term import HelpFormatter, Terminal, to_json

__all__ = ["register", "run"]

EPILOG = """\
The plan is the one a restore runs: for each device (and client, with --clients) the data
files and byte ranges it reads, the bytes it needs against the bytes it reads (read
amplification), and the peak extra memory. By default the values go into arrays that
exist (a restore into variables, read in place); --new plans new arrays, as a restore
into fresh tensors makes. --budget plans under a memory budget and exits 1, naming the
smallest budget that works, when none fits.

A mesh is NAME=SIZE,... (simulated CPU devices). A layout spec lists, per dimension of
the tensor, a mesh dimension or 'unsharded' ('-' for short). VAR is a tensor key, the key
without /.ATTRIBUTES/VARIABLE_VALUE (model/kernel), or its last part when only one key has
it (kernel), as for inspect; model.kernel means model/kernel.

examples (after 'dtckpt demo /tmp/dtckpt-demo'):
  dtckpt explain /tmp/dtckpt-demo
  dtckpt explain /tmp/dtckpt-demo --mesh a=4,b=2 --layout kernel=b,a --layout bias=a --clients 2
  dtckpt explain /tmp/dtckpt-demo --json --new --budget 4194304
"""


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "explain",
        parents=[common],
        help="show what a restore reads, per device, and the memory it takes",
        description="Plan a restore of a checkpoint from its index alone: the files and byte "
        "ranges each device reads, bytes needed and read, and the peak extra memory.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    p.add_argument("path", help="checkpoint prefix, checkpoint directory or SavedModel directory")
    p.add_argument("--mesh", help="the target mesh, e.g. x=2,y=4")
    p.add_argument(
        "--layout",
        action="append",
        default=[],
        metavar="VAR=SPEC",
        help="the layout of one tensor on --mesh, e.g. model/kernel=x,unsharded (repeatable)",
    )
    p.add_argument(
        "--clients", type=int, default=1, help="processes sharing the mesh's devices evenly"
    )
    p.add_argument("--new", action="store_true", help="plan reads into new arrays")
    p.add_argument("--budget", type=int, metavar="BYTES", help="plan under this memory budget")
    p.add_argument("--ranges", action="store_true", help="list every byte range read")
    p.add_argument("--json", action="store_true", help="write the plan as one JSON document")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, term: Terminal) -> int:
    from ..checkpoint.plans import format_bytes
    from ..checkpoint.reader import list_variables, resolve_checkpoint_path
    from ..dtensor import Layout
    from ..dtensor.save_restore import plan_checkpoint_restore
    from ..errors import InvalidArgumentError, MemoryBudgetError
    from ._mesh import parse_layouts, parse_mesh
    from ._open import resolve_path

    if args.layout and not args.mesh:
        raise InvalidArgumentError("--layout needs --mesh")
    path = resolve_checkpoint_path(resolve_path(args.path))
    layouts = {}
    if args.mesh:
        mesh = parse_mesh(args.mesh)
        specs = parse_layouts(args.layout, mesh)
        keys = _keys_of(list(specs), [name for name, _ in list_variables(path)])
        layouts = {keys[name]: Layout(spec, mesh) for name, spec in specs.items()}
    try:
        plan = plan_checkpoint_restore(
            path,
            layouts,
            clients=args.clients,
            in_place=not args.new,
            memory_budget=args.budget,
        )
    except MemoryBudgetError as exc:
        if args.json:
            term.print(to_json({"error": str(exc), "needed": exc.needed, "budget": exc.budget}))
            return 1
        raise
    if args.json:
        term.print(to_json(plan.to_dict()))
        return 0
    term.print(plan.format(ranges=args.ranges))
    if plan.budget is None:
        term.info(f"(no budget; any budget from {format_bytes(plan.peak_bytes)} up fits)")
    return 0


def _keys_of(names: list[str], keys: list[str]) -> dict[str, str]:
    """Each ``--layout`` name -> its key, as inspect matches them (V-LY-2); a name written
    with dots (``model.kernel``, the Python attribute path) also means ``model/kernel``."""
    from ..errors import InvalidArgumentError
    from ._mesh import match_variables

    try:
        return match_variables(names, keys)
    except InvalidArgumentError:
        slashed = {n: n.replace(".", "/") if "/" not in n else n for n in names}
        found = match_variables(list(dict.fromkeys(slashed.values())), keys)
        return {n: found[s] for n, s in slashed.items()}

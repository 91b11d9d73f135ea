"""``dtckpt demo DIR``: save a sharded model, inspect and verify it, restore it resharded.

DVariables of several layouts on a simulated 2x4 mesh are saved with
``DTensorCheckpoint`` (each device writes its own blocks, then the bundles are
merged), the checkpoint is listed and verified, and it is restored into a 4x2
mesh with other layouts; every value is compared with what was saved. The exit
status is 0 only if every value matches and verification finds no problem.
"""

from __future__ import annotations

import argparse
import os
import re
import time
from typing import TYPE_CHECKING, Any

from ._term import HelpFormatter, Terminal, format_seconds, format_size

if TYPE_CHECKING:
    import numpy as np

__all__ = ["register", "run"]

DESCRIPTION = """\
Save DVariables of several layouts on a simulated 2x4 mesh with DTensorCheckpoint
(each device writes its own blocks, then the bundles are merged), list and verify
the checkpoint, restore it into a 4x2 mesh with other layouts, and compare every
value. Exit status 0 only if every value matches and verify finds no problem.
"""

EPILOG = """\
DIR is created; if it exists it must be empty or hold a previous demo's files
(which are replaced). The other commands' help texts show it in use.

example:
  dtckpt demo /tmp/dtckpt-demo
"""

#: name -> sharding spec on the 2x4 mesh (x, y) it is saved from
SAVE_LAYOUTS = {
    "embedding": ["y", "unsharded"],  # rows over y, replicated over x
    "kernel": ["x", "y"],  # a 2x4 grid of blocks
    "bias": ["y"],
    "step": [],  # a replicated scalar
}
#: name -> sharding spec on the 4x2 mesh (a, b) it is restored into
RESTORE_LAYOUTS = {
    "embedding": ["unsharded", "b"],
    "kernel": ["b", "a"],
    "bias": ["a"],
    "step": [],
}


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "demo",
        parents=[common],
        help="save, inspect, verify and reshard-restore a DTensor checkpoint",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    p.add_argument("directory", metavar="DIR", help="where to write the checkpoint")
    p.set_defaults(run=run)


def _values() -> dict[str, np.ndarray]:
    import ml_dtypes
    import numpy as np

    rng = np.random.default_rng(0)
    return {
        "embedding": rng.standard_normal((64, 32)).astype(ml_dtypes.bfloat16),
        "kernel": rng.standard_normal((1024, 512), dtype=np.float32),
        "bias": rng.standard_normal(512, dtype=np.float32),
        "step": np.array(4242, dtype=np.int64),
    }


def _model(dd: Any, mesh: Any, layouts: dict[str, list[str]], values: dict[str, Any]) -> Any:
    from ..checkpoint.module import Module

    model = Module(name="model")
    for name, value in values.items():
        specs = [dd.UNSHARDED if s == "unsharded" else s for s in layouts[name]]
        layout = dd.Layout(specs, mesh)
        setattr(model, name, dd.DVariable(dd.copy_to_mesh(value, layout), name=name))
    return model


#: What a previous run leaves in DIR; a directory holding anything else is not touched.
_OWN_FILES = re.compile(
    r"checkpoint|ckpt-[0-9]+\.(index|data-[0-9]{5}-of-[0-9]{5})|(saved|restored)-layouts\.svg"
)


def prepare_directory(path: str) -> None:
    """Rule V-FH-5: DIR is created, or empty, or a previous demo's (whose files are replaced)."""
    from ..errors import AlreadyExistsError

    if "://" in path:  # object storage has no directories to make or to list here
        return
    if os.path.exists(path) and not os.path.isdir(path):
        raise AlreadyExistsError(
            f"{path} exists and is not a directory: give demo a directory to create"
        )
    os.makedirs(path, exist_ok=True)
    names = os.listdir(path)
    strangers = sorted(n for n in names if not _OWN_FILES.fullmatch(n))
    if strangers:
        shown = ", ".join(strangers[:3]) + (", ..." if len(strangers) > 3 else "")
        raise AlreadyExistsError(
            f"{path} already holds other files ({shown}): give demo a new or empty directory, "
            "so that nothing of yours is overwritten"
        )
    for name in names:  # a previous demo's checkpoint: start again from nothing
        os.unlink(os.path.join(path, name))


def _layout_arguments(mesh_dims: str, layouts: dict[str, list[str]]) -> list[str]:
    """The ``--mesh ... --layout VAR=SPEC ...`` words that describe a mesh and its layouts."""
    words = ["--mesh", mesh_dims]
    for name, specs in layouts.items():
        words += ["--layout", f"model/{name}={','.join(specs)}"]
    return words


def _draw(
    term: Terminal, path: str, mesh: Any, layouts: dict[str, list[str]], svg: str | None
) -> None:
    """The pictures of ``dtckpt inspect --layout`` (rule V-LY-1), on the demo's meshes."""
    from ..checkpoint.reader import load_checkpoint
    from ._mesh import match_variables
    from ._picture import build_picture, render_text

    with load_checkpoint(path) as reader:
        keys = reader.bundle.keys()
        given = {f"model/{n}": specs for n, specs in layouts.items()}
        match_variables(list(given), [k.decode() for k in keys])  # every name is a tensor
        picture = build_picture(reader.bundle, reader.prefix, mesh, given)
    for line in render_text(picture):
        term.info("  " + line if line else "")
    if svg is not None:
        from ._svg import write_svg

        write_svg(picture, svg)
        term.info(f"  (also drawn in {svg})")


def _print_restore_plan(term: Terminal, ckpt: Any, path: str, arguments: list[str]) -> None:
    """Rule V-FH-6: the plan of the restore about to run, between the picture of the target
    layouts and the restore itself (a dry run of that very restore: nothing is read)."""
    from ..checkpoint.options import CheckpointOptions

    term.info(f"  the same on the command line: dtckpt inspect {path} {' '.join(arguments)}")
    plan = ckpt.restore(path, options=CheckpointOptions(experimental_dry_run=True))
    term.info("\n  its plan, from the index alone (dtckpt explain shows every byte range):")
    for line in plan.format().splitlines()[1:]:
        if line.startswith(("  bytes", "  peak", "  files", "  device")):
            term.info("  " + line)


def run(args: argparse.Namespace, term: Terminal) -> int:
    import numpy as np

    from .. import dtensor as dd
    from ..checkpoint.reader import load_checkpoint
    from ..format.verify import verify_bundle
    from .inspect import describe, print_listing

    prepare_directory(args.directory)
    values = _values()
    mesh = dd.create_mesh([("x", 2), ("y", 4)], device_type="CPU")
    model = _model(dd, mesh, SAVE_LAYOUTS, values)
    term.info("1. a model of DVariables on a 2x4 mesh (x, y) of 8 simulated CPU devices:")
    for name, specs in SAVE_LAYOUTS.items():
        term.info(f"  {name:9} {list(values[name].shape)!s:11} [{', '.join(specs)}]")

    started = time.perf_counter()
    path = dd.DTensorCheckpoint(mesh, model=model).save(os.path.join(args.directory, "ckpt"))
    saved = time.perf_counter() - started
    term.info(
        f"\n2. saved {path} in {format_seconds(saved)}: each device wrote the blocks it is the "
        "lowest holder of (one data file per writing device), then the bundles were merged. "
        "The checkpoint, drawn on the mesh it was saved from:\n"
    )
    local = "://" not in args.directory
    svg = os.path.join(args.directory, "saved-layouts.svg") if local else None
    _draw(term, path, mesh, {}, svg)

    with load_checkpoint(path) as reader:
        if not term.quiet:
            term.info(
                "\n3. the listing (dtckpt inspect) and the check of every byte (dtckpt verify):"
            )
            print_listing(term, describe(reader), show_slices=False)
        started = time.perf_counter()
        report = verify_bundle(reader.bundle, progress=term.progress())
        checked = time.perf_counter() - started
        kernel = reader.get_tensor("model/kernel/.ATTRIBUTES/VARIABLE_VALUE")
    for problem in report.problems:
        term.print(f"{problem.kind}: {problem}")
    term.info(
        f"verified {report.entries} entries, {format_size(report.bytes_checked)} of "
        f"checksummed data, in {format_seconds(checked)}: "
        + ("no problems" if report.ok else f"{len(report.problems)} problem(s)")
    )

    other = dd.create_mesh([("a", 4), ("b", 2)], device_type="CPU")
    term.info(
        "\n4. restore into a 4x2 mesh (a, b) with other layouts: each device reads the parts "
        "of the saved blocks that overlap the block it will hold:\n"
    )
    svg = os.path.join(args.directory, "restored-layouts.svg") if local else None
    _draw(term, path, other, RESTORE_LAYOUTS, svg)
    zeros = {name: np.zeros_like(value) for name, value in values.items()}
    fresh = _model(dd, other, RESTORE_LAYOUTS, zeros)
    ckpt = dd.DTensorCheckpoint(other, model=fresh)
    _print_restore_plan(term, ckpt, path, _layout_arguments("a=4,b=2", RESTORE_LAYOUTS))
    started = time.perf_counter()
    ckpt.restore(path).assert_consumed()
    restored = time.perf_counter() - started
    match = kernel.tobytes() == values["kernel"].tobytes() and all(
        getattr(fresh, name).numpy().tobytes() == value.tobytes() for name, value in values.items()
    )
    term.info(
        f"\nrestored into the 4x2 mesh in {format_seconds(restored)}; "
        f"save_counter = {int(ckpt.save_counter.numpy())}"
    )
    term.print("values match: " + ("yes" if match else "NO"))
    term.print("verify: " + ("OK" if report.ok else "PROBLEMS"))
    return 0 if match and report.ok else 1

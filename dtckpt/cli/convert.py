"""``dtckpt convert SRC DST``: a checkpoint to or from ``.npz`` and ``.safetensors``.

The conversion itself is :func:`dtckpt.interop.convert`; this module only
parses the arguments and reports (rules V-CL-2, V-CL-4).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from ._term import HelpFormatter, Terminal, format_seconds, format_size

__all__ = ["register", "run"]

#: Rules V-FH-1 (examples run as written) and V-FH-3 (formats).
EPILOG = """\
The format of each side follows its name: .npz (NumPy), .safetensors, and a
name without an extension (or ending in .ckpt) a TensorFlow checkpoint prefix;
SRC may also be a checkpoint directory, a SavedModel directory or an archive.
Any other extension of DST is refused, so that a typo (.safetensor) does not
write a checkpoint: name the format with --to. safetensors cannot hold string
tensors: such a conversion is refused before anything is written, unless
--skip-unsupported leaves them out (each one named on stderr).

examples (after 'dtckpt demo /tmp/dtckpt-demo'):
  dtckpt convert /tmp/dtckpt-demo /tmp/demo.safetensors
  dtckpt convert /tmp/demo.safetensors /tmp/demo-back/ckpt
  dtckpt convert /tmp/dtckpt-demo /tmp/demo.npz
  dtckpt convert --to checkpoint /tmp/demo.npz /tmp/demo-back/model.v2
"""


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "convert",
        parents=[common],
        help="convert between TF checkpoints, .npz and .safetensors",
        description="Convert a checkpoint to or from .npz or .safetensors, keeping "
        "every tensor's key, dtype, shape and bytes.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    p.add_argument("src", metavar="SRC", help="what to convert")
    p.add_argument("dst", metavar="DST", help="where to write it")
    p.add_argument(
        "--to",
        choices=["checkpoint", "npz", "safetensors"],
        help="the format of DST, whatever its name (default: from its extension)",
    )
    p.add_argument(
        "--skip-unsupported",
        action="store_true",
        help="leave out tensors the target format cannot hold (string tensors in .safetensors) "
        "instead of refusing the conversion; each one left out is named on stderr",
    )
    p.set_defaults(run=run)


#: Extensions a checkpoint prefix may end with: TF1's Saver names them ``model.ckpt``.
_PREFIX_EXTENSIONS = ("ckpt",)
_FORMAT_EXTENSIONS = ("npz", "safetensors")


def check_extension(dst: str) -> None:
    """Rule V-FH-3: a DST extension that names no format is refused, not taken for a prefix."""
    import difflib
    import os
    import re

    from ..errors import InvalidArgumentError

    name = os.path.basename(dst.rstrip("/"))
    stem, dot, extension = name.rpartition(".")
    extension = extension.lower()
    if not dot or not stem or not re.fullmatch(r"[a-z][a-z0-9_]*", extension):
        return  # no extension: a prefix (ckpt-3, model.ckpt-1000 end in a number)
    if extension in _FORMAT_EXTENSIONS or extension in _PREFIX_EXTENSIONS:
        return
    close = difflib.get_close_matches(extension, _FORMAT_EXTENSIONS, n=1, cutoff=0.6)
    meant = f" (did you mean .{close[0]}?)" if close else ""
    raise InvalidArgumentError(
        f"{dst} ends in '.{extension}', which names no format{meant}: write .npz or "
        ".safetensors, or give --to checkpoint to write a TensorFlow checkpoint with this "
        "prefix"
    )


def run(args: argparse.Namespace, term: Terminal) -> int:
    try:
        from ..interop import convert
    except ImportError as exc:
        term.error(f"convert is not available in this installation ({exc})")
        return 1
    from ..errors import NotFoundError
    from ._open import resolve_path

    if args.to is None:
        check_extension(args.dst)
    started = time.perf_counter()
    try:
        report = convert(
            resolve_path(args.src),
            args.dst,
            skip_unsupported=args.skip_unsupported,
            progress=term.progress(),
            to=args.to,
        )
    except NotFoundError as exc:
        from ._hints import with_hint

        raise with_hint(exc, args.src) from None
    elapsed = time.perf_counter() - started
    for key in report.skipped:
        term.warn(f"left out {key}: {report.target_format} cannot hold it")
    term.info(
        f"converted {report.tensors} tensors ({format_size(report.bytes)}) from "
        f"{report.source_format} to {report.target_format}: {args.dst} "
        f"in {format_seconds(elapsed)}"
    )
    return 0

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

EPILOG = """\
The format of each side follows its extension: .npz (NumPy), .safetensors,
anything else a TensorFlow checkpoint prefix (or a checkpoint or SavedModel
directory for SRC).

examples:
  dtckpt convert spec/golden/dtypes/ckpt /tmp/dtypes.safetensors
  dtckpt convert /tmp/weights.npz /tmp/ckpt/model
  dtckpt convert --skip-unsupported spec/golden/strings/ckpt /tmp/no-strings.safetensors
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
        "--skip-unsupported",
        action="store_true",
        help="leave out tensors the target format cannot hold (string tensors in .safetensors) "
        "instead of refusing the conversion; each one left out is named on stderr",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace, term: Terminal) -> int:
    try:
        from ..interop import convert
    except ImportError as exc:
        term.error(f"convert is not available in this installation ({exc})")
        return 1
    from ._open import resolve_path

    started = time.perf_counter()
    report = convert(
        resolve_path(args.src),
        args.dst,
        skip_unsupported=args.skip_unsupported,
        progress=term.progress(),
    )
    elapsed = time.perf_counter() - started
    for key in report.skipped:
        term.warn(f"left out {key}: {report.target_format} cannot hold it")
    term.info(
        f"converted {report.tensors} tensors ({format_size(report.bytes)}) from "
        f"{report.source_format} to {report.target_format}: {args.dst} "
        f"in {format_seconds(elapsed)}"
    )
    return 0

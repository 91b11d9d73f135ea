"""``dtckpt pack PATH ARCHIVE`` and ``dtckpt unpack ARCHIVE DIR``.

The archive format and its reading and writing are :mod:`dtckpt.archive`'s;
this module only parses the arguments and reports (rules V-CL-2, V-CL-4).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from ._term import HelpFormatter, Terminal, format_seconds, format_size

__all__ = ["register", "run_pack", "run_unpack"]

PACK_EPILOG = """\
PATH is a checkpoint prefix or a directory (a training directory with its
'checkpoint' file, or a SavedModel); the archive holds every file of it,
compressed with zstandard. dtckpt inspect and dtckpt verify read archives
directly.

examples (after 'dtckpt demo /tmp/dtckpt-demo'):
  dtckpt pack /tmp/dtckpt-demo /tmp/demo.dtckpt
  dtckpt pack --level 9 /tmp/dtckpt-demo/ckpt-1 /tmp/demo-ckpt-1.dtckpt
"""

UNPACK_EPILOG = """\
examples (after 'dtckpt pack /tmp/dtckpt-demo /tmp/demo.dtckpt'):
  dtckpt unpack /tmp/demo.dtckpt /tmp/demo-unpacked
  dtckpt inspect /tmp/demo-unpacked
"""


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "pack",
        parents=[common],
        help="pack a checkpoint into one compressed archive",
        description="Pack the files of a checkpoint into one compressed archive.",
        epilog=PACK_EPILOG,
        formatter_class=HelpFormatter,
    )
    p.add_argument("path", metavar="PATH", help="checkpoint prefix or directory")
    p.add_argument("archive", metavar="ARCHIVE", help="the archive file to write")
    p.add_argument("--level", type=int, default=3, help="zstandard compression level (default: 3)")
    p.set_defaults(run=run_pack)
    u = sub.add_parser(
        "unpack",
        parents=[common],
        help="unpack an archive made by dtckpt pack",
        description="Write the files of an archive made by 'dtckpt pack' into DIR.",
        epilog=UNPACK_EPILOG,
        formatter_class=HelpFormatter,
    )
    u.add_argument("archive", metavar="ARCHIVE", help="the archive to read")
    u.add_argument("directory", metavar="DIR", help="where to write its files")
    u.add_argument(
        "--overwrite",
        action="store_true",
        help="replace files that already exist in DIR (by default unpack refuses)",
    )
    u.set_defaults(run=run_unpack)


def _library(term: Terminal) -> Any:
    """The module ``dtckpt.archive``, or ``None`` (after saying so) where it is missing."""
    try:
        from .. import archive
        from ..archive import pack, unpack  # noqa: F401 - both must exist
    except ImportError as exc:
        term.error(f"pack and unpack are not available in this installation ({exc})")
        return None
    return archive


def run_pack(args: argparse.Namespace, term: Terminal) -> int:
    archive = _library(term)
    if archive is None:
        return 1
    started = time.perf_counter()
    report = archive.pack(args.path, args.archive, level=args.level, progress=term.progress())
    elapsed = time.perf_counter() - started
    term.info(
        f"packed {report.files} files, {format_size(report.raw_bytes)} into "
        f"{format_size(report.packed_bytes)} (ratio {report.ratio:.2f}): {args.archive} "
        f"in {format_seconds(elapsed)}"
    )
    return 0


def run_unpack(args: argparse.Namespace, term: Terminal) -> int:
    archive = _library(term)
    if archive is None:
        return 1
    started = time.perf_counter()
    report = archive.unpack(
        args.archive, args.directory, overwrite=args.overwrite, progress=term.progress()
    )
    elapsed = time.perf_counter() - started
    term.info(
        f"unpacked {report.files} files, {format_size(report.bytes)} into {args.directory} "
        f"in {format_seconds(elapsed)}; checkpoint prefix {report.prefix}"
    )
    return 0

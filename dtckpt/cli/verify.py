"""``dtckpt verify PATH``: every index block, entry, slice, data shard and checksum.

Prints each problem on one line (file, key, byte range, what is wrong) and
exits 1 if there was any (rules V-VF-1 to V-VF-7, V-CL-2).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from ._term import HelpFormatter, Terminal, format_seconds, format_size, to_json

__all__ = ["register", "run"]

EPILOG = """\
PATH is a checkpoint prefix, a directory with a 'checkpoint' file, a
SavedModel directory, or an archive written by 'dtckpt pack' (checked in
place: every checksum of the checkpoint inside). Each data shard is read
once, front to back, and every entry's checksum is computed from those reads.
Exit status: 0 when nothing is wrong, 1 when a problem was found (all of them
are listed) or PATH cannot be opened.

examples (after 'dtckpt demo /tmp/dtckpt-demo'):
  dtckpt verify /tmp/dtckpt-demo
  dtckpt pack /tmp/dtckpt-demo /tmp/demo-verify.dtckpt && dtckpt verify /tmp/demo-verify.dtckpt
  dtckpt verify --json /tmp/dtckpt-demo/ckpt-1 > report.json
"""


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "verify",
        parents=[common],
        help="check every checksum, data shard and slice of a checkpoint",
        description="Check a checkpoint's index blocks, entries, slices, data shards and "
        "every tensor checksum; report every problem found.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    p.add_argument("path", help="checkpoint prefix or directory, SavedModel directory or archive")
    p.add_argument("--json", action="store_true", help="write the report as one JSON document")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, term: Terminal) -> int:
    from ..errors import CheckpointError, NotFoundError
    from ..format.verify import INDEX, Problem, VerifyReport, verify_bundle
    from ._open import open_checkpoint

    started = time.perf_counter()
    try:
        reader = open_checkpoint(args.path)
    except NotFoundError:
        raise
    except CheckpointError as exc:  # rule V-VF-1: the index itself is damaged
        problem = Problem(INDEX, exc.path or args.path, None, exc.offset, None, exc.message)
        report = VerifyReport(args.path, (problem,), 0, 0, 0)
    else:
        with reader:
            report = verify_bundle(reader.bundle, progress=term.progress())
    elapsed = time.perf_counter() - started
    if args.json:
        term.print(to_json(_as_json(report, elapsed)))
        return 0 if report.ok else 1
    for problem in report.problems:
        term.print(f"{problem.kind}: {problem}")
    summary = (
        f"{report.entries} entries, {report.shards} data shard(s), "
        f"{format_size(report.bytes_checked)} checked in {format_seconds(elapsed)}"
    )
    if report.ok:
        term.info(f"{report.prefix}: OK ({summary})")
    else:
        term.info(f"{report.prefix}: {len(report.problems)} problem(s) ({summary})")
    return 0 if report.ok else 1


def _as_json(report: Any, elapsed: float) -> dict[str, Any]:
    from dataclasses import asdict

    return {
        "prefix": report.prefix,
        "ok": report.ok,
        "entries": report.entries,
        "shards": report.shards,
        "bytes_checked": report.bytes_checked,
        "seconds": elapsed,
        "problems": [asdict(p) for p in report.problems],
    }

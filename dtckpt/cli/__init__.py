"""The ``dtckpt`` command line (also ``python -m dtckpt``).

::

    dtckpt inspect PATH          the header, every tensor, the totals; --tree the object graph
    dtckpt verify PATH           every checksum, data shard and slice; exit 1 on any problem
    dtckpt diff A B              tensor by tensor: what is only in one, what changed, by how much
    dtckpt explain PATH          what a restore reads per device, and the memory it takes
    dtckpt convert SRC DST       to and from .npz and .safetensors
    dtckpt pack PATH ARCHIVE     a checkpoint in one compressed file; unpack ARCHIVE DIR
    dtckpt demo DIR              save, inspect, verify and reshard-restore a DTensor checkpoint

Each command lives in its own module, which imports its libraries only when
it runs (rule V-CL-4): building the parser costs argparse and nothing else.
Errors become one line on stderr and exit status 1, with the traceback only
under ``--debug`` (rule V-CL-2).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from . import archive, convert, demo, diff, explain, inspect, verify
from ._term import Terminal

__all__ = ["main"]

_COMMANDS = (inspect, verify, diff, explain, convert, archive, demo)


def _common_options(*, top_level: bool) -> argparse.ArgumentParser:
    """``--debug`` and ``--quiet``, accepted before and after the command name.

    The copy given to each command has no defaults of its own, so that an
    option given before the command name is not reset by the command's parser.
    """
    default: object = False if top_level else argparse.SUPPRESS
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument(
        "--debug", action="store_true", default=default, help="show the traceback of an error"
    )
    options.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=default,
        help="print only results and errors: no progress bar, summaries or timings",
    )
    return options


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="dtckpt",
        description="TensorFlow checkpoints without TensorFlow: inspect, verify, compare, "
        "convert and pack them.",
        epilog="Start with 'dtckpt demo /tmp/dtckpt-demo'; run 'dtckpt COMMAND --help' for a "
        "command's options and examples.",
        parents=[_common_options(top_level=True)],
    )
    parser.add_argument("--version", action="version", version=f"dtckpt {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common = _common_options(top_level=False)
    for command in _COMMANDS:
        command.register(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit status (0 ok, 1 problems or errors, 2 usage)."""
    parser = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(words)
    except SystemExit as exc:
        if exc.code == 2 and "--json" in words:  # rule V-FH-4: a usage error, said in JSON too
            from ._term import to_json

            message = "usage error (the line above says what; dtckpt COMMAND --help shows how)"
            print(to_json({"error": {"type": "UsageError", "message": message, "path": None,
                                     "key": None, "offset": None}}))  # fmt: skip
        raise
    term = Terminal(quiet=args.quiet)
    try:
        status: int = args.run(args, term)
    except KeyboardInterrupt:
        if args.debug:
            raise
        term.error("interrupted")
        return 130
    except BrokenPipeError:
        # The reader of our output went away (``dtckpt inspect ... | head``): stop quietly,
        # and keep Python from complaining again when it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except Exception as exc:
        if args.debug:
            raise
        term.error(_describe(exc))
        if getattr(args, "json", False):  # rule V-FH-4: a JSON reader gets JSON here too
            from ._term import error_json, to_json

            term.print(to_json(error_json(exc, _describe(exc))))
        return 1
    return status


def _describe(exc: Exception) -> str:
    from ..errors import CheckpointError

    if isinstance(exc, (CheckpointError, OSError)):
        return str(exc)
    # Anything else is a bug in dtckpt, not bad input: say what it was.
    return f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)"

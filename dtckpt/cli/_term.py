"""What the commands share about the terminal: output streams, sizes, progress, errors.

Results go to stdout, everything else to stderr (rule V-CL-3). The progress bar
draws itself only when stderr is a terminal and ``--quiet`` is off, so that
logs and pipes never collect carriage returns; elsewhere it is a silent
:class:`~dtckpt.progress.Progress`.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import math
import sys
import time
from collections.abc import Iterator
from typing import Any, TextIO

__all__ = [
    "Terminal",
    "ProgressBar",
    "HelpFormatter",
    "format_size",
    "format_shape",
    "format_seconds",
    "json_number",
    "to_json",
    "error_json",
    "paused_gc",
]

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def format_size(n: int) -> str:
    """``1536`` -> ``'1.5 KiB'``: powers of 1024, one decimal above bytes."""
    size = float(n)
    for unit in _UNITS:
        if abs(size) < 1024 or unit == _UNITS[-1]:
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")  # the loop returns on its last unit


def format_shape(shape: tuple[int, ...] | list[int] | None) -> str:
    """``(3, 4)`` -> ``'[3,4]'``, a scalar ``'[]'``; ``None`` (no such tensor) ``'-'``."""
    if shape is None:
        return "-"
    return "[" + ",".join(str(d) for d in shape) + "]"


def format_seconds(t: float) -> str:
    if t >= 1:
        return f"{t:.2f} s"
    return f"{t * 1000:.1f} ms"


def json_number(value: int | float | None) -> int | float | str | None:
    """A number for JSON: NaN and the infinities as ``"nan"``, ``"inf"``, ``"-inf"`` (V-CL-3)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def to_json(value: Any) -> str:
    """One JSON document on one line (the C encoder: a 10,000-tensor listing in a few ms).

    Non-finite floats must already be strings (:func:`json_number`); one left in raises.
    """
    import json

    return json.dumps(value, allow_nan=False)


def error_json(exc: BaseException, message: str) -> dict[str, Any]:
    """Rule V-FH-4: ``{"error": {type, message, path, key, offset}}`` for a failed command."""
    key = getattr(exc, "key", None)
    if isinstance(key, bytes):
        key = key.decode("utf-8", "surrogateescape")
    path = getattr(exc, "path", None)
    if path is None:
        path = getattr(exc, "filename", None)
    offset = getattr(exc, "offset", None)
    return {
        "error": {
            "type": type(exc).__name__,
            "message": message,
            "path": None if path is None else str(path),
            "key": key,
            "offset": offset if isinstance(offset, int) else None,
        }
    }


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """The cycle collector off while a listing is built (rule V-CL-4).

    A listing of 10,000 tensors is some 50,000 new dicts, lists and tuples, none in a cycle;
    each few hundred of them would start a collection that walks the young objects again,
    which took more time than building them. Reference counting still frees everything, and
    the collector is switched back on (if it was on) however the block ends.
    """
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Wraps one-line descriptions to the terminal; keeps texts laid out by hand (the
    examples of an epilog) as they are written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text.strip("\n"):
            return super()._fill_text(text, width, indent)
        return argparse.HelpFormatter._fill_text(self, text, width, indent)


class Terminal:
    """The streams of one command run, and whether to be quiet."""

    def __init__(
        self, *, quiet: bool = False, out: TextIO | None = None, err: TextIO | None = None
    ) -> None:
        self.quiet = quiet
        self.out = out if out is not None else sys.stdout
        self.err = err if err is not None else sys.stderr

    def print(self, text: str = "") -> None:
        """A line of the result: always printed."""
        print(text, file=self.out)

    def info(self, text: str = "") -> None:
        """A line beside the result (summaries, timings): dropped by ``--quiet``."""
        if not self.quiet:
            print(text, file=self.out)

    def warn(self, text: str) -> None:
        print(f"dtckpt: warning: {text}", file=self.err)

    def error(self, text: str) -> None:
        """The one-line error of rule V-CL-2."""
        print(f"dtckpt: error: {text}", file=self.err)

    def progress(self) -> ProgressBar:
        draw = not self.quiet and _isatty(self.err)
        return ProgressBar(self.err if draw else None)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class ProgressBar:
    """A one-line bar on a terminal (a :class:`~dtckpt.progress.Progress`); silent without one."""

    WIDTH = 28
    INTERVAL = 0.1  # seconds between redraws

    def __init__(self, stream: TextIO | None) -> None:
        self.stream = stream
        self.total = 0
        self.done = 0
        self.label = ""
        self.unit = "B"
        self.started = 0.0
        self.drawn = 0.0

    def start(self, total: int, label: str = "", unit: str = "B") -> None:
        self.total, self.done, self.label, self.unit = max(total, 0), 0, label, unit
        self.started = self.drawn = time.monotonic()

    def advance(self, amount: int) -> None:
        self.done += amount
        now = time.monotonic()
        if self.stream is not None and now - self.drawn >= self.INTERVAL:
            self.drawn = now
            self._draw(now)

    def finish(self) -> None:
        if self.stream is not None and self.drawn > self.started:  # something was drawn
            self.stream.write("\r\x1b[K")
            self.stream.flush()

    def _amount(self, n: float) -> str:
        return format_size(int(n)) if self.unit == "B" else f"{int(n):,} {self.unit}"

    def _draw(self, now: float) -> None:
        assert self.stream is not None
        fraction = min(self.done / self.total, 1.0) if self.total else 1.0
        filled = int(fraction * self.WIDTH)
        rate = self.done / max(now - self.started, 1e-9)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        self.stream.write(
            f"\r{self.label} [{bar}] {fraction:4.0%} {self._amount(self.done)} / "
            f"{self._amount(self.total)}, {self._amount(rate)}/s\x1b[K"
        )
        self.stream.flush()

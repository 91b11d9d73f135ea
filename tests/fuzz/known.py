"""Findings whose fix is pending in code outside the fuzzed modules (rule H-FZ-2).

Each entry names the finding's signature (as :func:`signature` computes it), the file and
function that need the fix, and the fix. The hypothesis runs count an input that hits a listed
signature as known instead of failing; the corpus replay expects the listed files to fail
(``xfail(strict=True)``), so that a fix makes the test fail until the entry is removed here.
"""

from __future__ import annotations

import pathlib
import traceback
from dataclasses import dataclass

__all__ = ["Known", "KNOWN", "signature", "known_finding"]


@dataclass(frozen=True)
class Known:
    target: str
    #: A prefix of :func:`signature` of the exception.
    signature: str
    #: Where the fix belongs, and what it is.
    where: str
    fix: str
    #: Corpus files (under ``tests/fuzz/corpus/<target>/``) that reproduce it.
    corpus: tuple[str, ...]


def signature(exc: BaseException) -> str:
    """What makes two findings the same bug: the type, the innermost dtckpt frame, and for a
    failed check the first words of its message."""
    frames = traceback.extract_tb(exc.__traceback__)
    mine = [f for f in frames if "/dtckpt/" in f.filename] or frames[-1:]
    where = f"{pathlib.Path(mine[-1].filename).name}:{mine[-1].name}" if mine else "?"
    text = str(exc).split(":")[0][:60] if isinstance(exc, AssertionError) else ""
    return f"{type(exc).__name__} at {where} {text}".strip()


#: Empty while every finding is fixed. The findings first listed here (in
#: ``dtckpt/checkpoint/state.py`` and ``dtckpt/format/bundle_reader.py``) were fixed by their
#: owners; their inputs are now ordinary corpus files (``crafted.py``).
KNOWN: tuple[Known, ...] = ()


def known_finding(target: str, exc: BaseException) -> Known | None:
    """The entry of :data:`KNOWN` that ``exc`` (raised by ``target``) matches, if any."""
    sig = signature(exc)
    for known in KNOWN:
        if known.target == target and sig.startswith(known.signature):
            return known
    return None

"""Hypothesis strategies for the fuzz targets: random bytes, and mutated seeds.

Most of the value is in the mutated seeds (``tests/fuzz/seeds.py`` and the corpus under
``tests/fuzz/corpus/<target>/``): a few structure-blind edits to a valid file reach the
decoders' length, count and offset checks. Text targets also get text drawn from the
characters their grammar uses, so that numbers, separators and names collide often.
"""

from __future__ import annotations

import pathlib

from hypothesis import strategies as st

from tests.fuzz.seeds import seeds
from tests.fuzz.shaping import MUTATIONS, mutate

__all__ = ["inputs", "corpus_files", "CORPUS"]

CORPUS = pathlib.Path(__file__).resolve().parent / "corpus"

_ALPHABETS = {
    "slices": "0123456789 ,:-+\t",
    "mesh": "|,=xyz0123456789:/_CPUGjobtaskdevice ",
    "layout": "sharding_specs: mesh|,=xyunshardedmatch0123456789/:",
    "state": "model_checkpoint_path: \"all_timestamps\\0123456789.e+-#\n'x",
}


def corpus_files(target: str) -> list[pathlib.Path]:
    """The regression inputs kept for ``target``, sorted."""
    directory = CORPUS / target
    return sorted(p for p in directory.iterdir() if p.is_file()) if directory.is_dir() else []


def _ops() -> st.SearchStrategy[list[tuple[str, int, int]]]:
    op = st.tuples(st.sampled_from(MUTATIONS), st.integers(0, 1 << 16), st.integers(0, 1 << 12))
    return st.lists(op, min_size=1, max_size=6)


def inputs(target: str) -> st.SearchStrategy[bytes]:
    """Inputs for ``target``: mostly mutated seeds and corpus files, some raw bytes."""
    starts = list(seeds(target)) + [p.read_bytes() for p in corpus_files(target)]
    mutated = st.builds(mutate, st.sampled_from(starts), _ops())
    choices: list[st.SearchStrategy[bytes]] = [mutated, mutated, mutated, st.binary(max_size=256)]
    alphabet = _ALPHABETS.get(target)
    if alphabet is not None:
        text = st.text(alphabet=alphabet, max_size=120).map(str.encode)
        choices.append(text)
        choices.append(st.builds(lambda a, b: a + b, st.sampled_from(starts), text))
    return st.one_of(choices)

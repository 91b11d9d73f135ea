"""Replay every input that once broke a target, and every seed (rule H-FZ-2).

Each file under ``tests/fuzz/corpus/<target>/`` must decode or raise only a typed error, pass
the target's checks and stay within the allocation budget (H-AL-1). Files of findings whose fix
is pending elsewhere (``known.py``) are expected to fail, strictly: once the fix lands, the test
fails until the entry is removed.
"""

from __future__ import annotations

import pathlib

import pytest

from tests.fuzz.budget import TracedPeak, allowance
from tests.fuzz.known import KNOWN
from tests.fuzz.seeds import seeds
from tests.fuzz.strategies import CORPUS, corpus_files
from tests.fuzz.targets import TARGETS, run

CASES = [(name, path) for name in sorted(TARGETS) for path in corpus_files(name)]


def _replay(name: str, data: bytes) -> BaseException | None:
    size = TARGETS[name].real_size(data)
    with TracedPeak() as traced:
        outcome = run(TARGETS[name], data)
    assert traced.peak <= allowance(size), f"{traced.peak} bytes for {size} input bytes"
    return outcome


@pytest.mark.parametrize(("name", "path"), CASES, ids=[f"{n}/{p.name}" for n, p in CASES])
def test_corpus_file(name: str, path: pathlib.Path, request: pytest.FixtureRequest) -> None:
    for known in KNOWN:
        if known.target == name and path.name in known.corpus:
            reason = f"fix pending in {known.where}: {known.fix}"
            request.applymarker(pytest.mark.xfail(strict=True, reason=reason))
    _replay(name, path.read_bytes())


def test_every_target_has_a_corpus_directory_or_none_needed() -> None:
    names = {p.name for p in CORPUS.iterdir() if p.is_dir()}
    assert names <= set(TARGETS), names - set(TARGETS)
    for known in KNOWN:
        for file in known.corpus:
            assert (CORPUS / known.target / file).is_file(), f"{known.target}/{file}"


#: Seeds that are not whole valid inputs of their target (they exist to be mutated).
_INVALID_SEEDS = {"block", "bundle_gen", "graph_gen", "archive", "safetensors", "npz", "special"}


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_seeds_decode_cleanly(name: str) -> None:
    """The golden seeds are valid files: each decodes without any error, so the fuzzer starts
    from inputs that reach the deepest code."""
    outcomes = [_replay(name, seed) for seed in seeds(name)[1:]]
    assert outcomes, name
    if name not in _INVALID_SEEDS:
        assert [o for o in outcomes if o is not None] == []

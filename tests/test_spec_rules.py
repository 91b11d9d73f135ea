"""The spec files and the code agree on rule ids: each rule is defined once and cited.

Rules are defined in every ``spec/*.md`` as a bold ``**ID.`` at the start of a line (``F-IX-3``
and ``C-ST-1`` in ``format.md``, ``O-GR-2`` in ``object-graph.md``, ...) and cited anywhere in
``dtckpt/``. An id is one capital letter, an area in capitals and a number. A citation of a whole
area (``O-RS-*``) names no rule and is not checked.
"""

from __future__ import annotations

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "spec").glob("*.md"))
_ID = r"[A-Z]-[A-Z]+-\d+"
RULE = re.compile(rf"\b({_ID})\b")
DEFINITION = re.compile(rf"^\*\*({_ID})\.", re.M)


def _defined() -> list[str]:
    return [m for spec in SPECS for m in DEFINITION.findall(spec.read_text())]


def _cited() -> set[str]:
    return {m for p in (ROOT / "dtckpt").rglob("*.py") for m in RULE.findall(p.read_text())}


def test_both_specs_define_rules() -> None:
    names = {spec.name for spec in SPECS}
    assert {"format.md", "object-graph.md"} <= names
    for spec in SPECS:
        if spec.name in ("format.md", "object-graph.md"):
            assert DEFINITION.findall(spec.read_text()), spec.name


def test_rules_defined_once() -> None:
    defined = _defined()
    duplicates = sorted({d for d in defined if defined.count(d) > 1})
    assert defined and duplicates == []


def test_every_cited_rule_is_defined() -> None:
    assert sorted(_cited() - set(_defined())) == []


def test_every_rule_is_cited() -> None:
    assert sorted(set(_defined()) - _cited()) == []

"""``spec/format.md`` and the code agree on rule ids: each rule is defined once and cited."""

from __future__ import annotations

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
RULE = re.compile(r"\b([FC]-[A-Z]+-\d+)\b")


def _defined() -> list[str]:
    return re.findall(r"^\*\*([FC]-[A-Z]+-\d+)\.", (ROOT / "spec" / "format.md").read_text(), re.M)


def _cited() -> set[str]:
    return {m for p in (ROOT / "dtckpt").rglob("*.py") for m in RULE.findall(p.read_text())}


def test_rules_defined_once() -> None:
    defined = _defined()
    assert defined and len(defined) == len(set(defined))


def test_every_cited_rule_is_defined() -> None:
    assert _cited() <= set(_defined())


def test_every_rule_is_cited() -> None:
    assert set(_defined()) - _cited() == set()

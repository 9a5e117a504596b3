"""Every packaged rule's own examples, one test per example, named by rule id.

``examples.match`` values must fire the rule (transforms, then operator) and
``examples.nomatch`` values must not, so each rule is testable on its own:
``pytest tests/test_rule_examples.py -k 942100``.
"""

from __future__ import annotations

import pytest

from devsecmw.engine.rules import Rule, load_packaged

RULES = load_packaged()
CASES = [
    pytest.param(r, kind, value, id=f"{r.id}-{kind}-{i}")
    for r in RULES
    for kind, values in (("match", r.examples_match), ("nomatch", r.examples_nomatch))
    for i, value in enumerate(values)
]


@pytest.mark.parametrize(("rule", "kind", "value"), CASES)
def test_rule_example(rule: Rule, kind: str, value: str) -> None:
    span = rule.matches_value(value)
    if kind == "match":
        assert span is not None, f"{rule.id} ({rule.name}) should match {value!r}"
    else:
        assert span is None, f"{rule.id} ({rule.name}) should not match {value!r} (matched {span})"


def test_every_rule_has_a_match_example() -> None:
    # invalid_utf8 looks at the bytes a value was decoded from, not at text: no text example.
    missing = [r.id for r in RULES if not r.examples_match and r.operator_name != "invalid_utf8"]
    assert not missing, f"rules without a match example: {missing}"

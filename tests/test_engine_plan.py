"""Planning (``devsecmw.engine.plan``): prefilters rewritten for joined scans, through the one
pattern walker (``matcher.walk_pattern``) that ``loosen`` uses too, and compiled sets shared by
the engines of identical rules."""

from __future__ import annotations

import pytest
from engine_helpers import rule

from devsecmw.engine import Engine
from devsecmw.engine.engine import join_texts, joined_pattern
from devsecmw.engine.matcher import compile_pattern, loosen


@pytest.mark.parametrize(
    ("pattern", "values", "expected"),
    [
        (r"^abc$", ["x", "abc", "y"], True),
        (r"^abc$", ["xabc", "abcx"], False),
        (r"\Aabc\z", ["q", "abc"], True),
        (r"[\^$]x", ["a^x"], True),  # "^" and "$" inside a class are literals
        (r"\$\{x", ["${x"], True),
        (r"a{2,300}b", ["c", "aab"], True),
        (r"[^a-z]", ["abc", "\uffff"], True),  # a value holding the separator itself
        (r"^[^x]{3}$", ["ab\uffff"], True),
        (r"a.c", ["a\uffffc"], True),
    ],
)
def test_joined_pattern_matches_where_the_pattern_does(
    pattern: str, values: list[str], expected: bool
) -> None:
    joined = compile_pattern(joined_pattern(pattern))
    plain = compile_pattern(pattern)
    assert any(plain.search(v) for v in values) == expected
    # Whenever some value matches alone, the joined text matches (a superset).
    if expected:
        assert joined.search(join_texts(values)) is not None


@pytest.mark.parametrize(
    ("pattern", "values"),
    [
        (r"[^A-Za-z]", ["GET", "abc"]),
        (r"^.{5,}$", ["abc", "de"]),
        (r"a\S+b", ["a", "b"]),
        (r"a\W", ["a", "b"]),
        (r"[^]a-]x", ["a", "x"]),
    ],
)
def test_joined_pattern_never_spans_values(pattern: str, values: list[str]) -> None:
    # Negated classes, "." and \S/\W/\D stop at the separator: no candidate out of thin air.
    assert not any(compile_pattern(pattern).search(v) for v in values)
    assert compile_pattern(joined_pattern(pattern)).search(join_texts(values)) is None


@pytest.mark.parametrize(
    ("pattern", "joined"),
    [
        ("[^]a]", "[^\uffff\\]a]"),  # a leading "]" or "-" stays a member after the separator
        ("[^-a]", "[^\uffff\\-a]"),
        ("[]^$.]", "[]^$.]"),  # inside a class nothing is rewritten
        ("\\^\\.\\$", "\\^\\.\\$"),  # nor are escaped metacharacters
        ("\\Aa\\S\\W\\Db\\z", "(?:^|\uffff)a[^\\s\uffff][^\\w\uffff][^\\d\uffff]b(?:$|\uffff)"),
    ],
)
def test_joined_pattern_rewrites_only_outside_classes(pattern: str, joined: str) -> None:
    assert joined_pattern(pattern) == joined


def test_loosen_and_joined_pattern_share_the_walker() -> None:
    # A bound inside a class after a POSIX class is literal text, not a repeat: left alone.
    assert loosen("[[:alpha:]{0,99}]") == "[[:alpha:]{0,99}]"
    assert loosen("[[:alpha:]]{0,99}") == "[[:alpha:]]{0,}"
    assert joined_pattern("^[^[:alpha:]^]{0,99}$") == "(?:^|\uffff)[^\uffff[:alpha:]^]{0,}(?:$|\uffff)"


def test_engines_with_the_same_rules_share_compiled_sets() -> None:
    rules = [rule("900018", "x", ["args"])]
    a, b = Engine(rules=rules), Engine(rules=[rule("900018", "x", ["args"])])
    assert a._phases is b._phases
    assert a.clean_values is not b.clean_values  # per-engine state stays per engine
    c = Engine(rules=[rule("900018", "y", ["args"])])
    assert c._phases is not a._phases

"""The linear-time matcher: RE2 on encoded text, sets split by size, the ``re`` fallback."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devsecmw.engine import matcher
from devsecmw.engine.matcher import (
    HAVE_RE2,
    _ReSet,
    char_span,
    compile_pattern,
    compile_set,
    encode,
    loosen,
    walk_pattern,
)


def test_re2_is_the_engine_here() -> None:
    assert HAVE_RE2  # a dev/CI install without RE2 would silently test the fallback


@pytest.mark.parametrize(
    ("pattern", "text", "span"),
    [
        ("b+", "abbbc", (1, 4)),
        ("(?i)select", "1 SeLeCt 2", (2, 8)),
        ("é+", "aééb", (1, 3)),  # character offsets, not UTF-8 byte offsets
        ("x", "\ud800x", (1, 2)),  # a lone surrogate is scanned, never an error
        ("^z$", "az", None),
    ],
)
def test_pattern_search_gives_character_spans(pattern: str, text: str, span: tuple[int, int] | None) -> None:
    assert compile_pattern(pattern).search(text) == span


def test_search_encoded_from_a_position_keeps_context() -> None:
    p = compile_pattern(r"\bab")
    data = encode("xab ab")
    assert p.search_encoded(data) == (4, 6)  # "xab" is no word start
    assert p.search_encoded(data, 2) == (4, 6)  # the "x" before pos 1 is still context


def test_char_span_round_trip() -> None:
    text = "ä€𝄞x"
    data = encode(text)
    assert len(data) > len(text)
    start = data.index(b"x")
    assert char_span(text, data, (start, start + 1)) == (3, 4)


def test_invalid_pattern_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="invalid pattern '\\(a'"):
        compile_pattern("(a")
    with pytest.raises(ValueError):
        compile_set(["ok", "(?<=lookbehind)x"])


def test_set_reports_every_pattern_that_occurs() -> None:
    s = compile_set(["cat", "(?i)DOG", "^bird", "fish$"])
    assert sorted(s.match("a dog and a cat")) == [0, 1]
    assert sorted(s.match(encode("bird fish"))) == [2, 3]
    assert s.match("nothing") == []


def test_set_split_across_several_re2_sets_keeps_indexes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(matcher, "SET_PROGRAM_SIZE", 30)  # a few patterns per set
    patterns = [f"word{i}[a-z]{{2}}" for i in range(40)]
    s = compile_set(patterns)
    assert len(s._matches) > 3  # type: ignore[attr-defined]
    assert sorted(s.match("word3ab word17xy word39zz")) == [3, 17, 39]


@pytest.mark.parametrize(
    ("pattern", "loosened"),
    [
        (r"[^}]{0,256}x", r"[^}]{0,}x"),
        (r".{21,}", r".{21,}"),  # lower bounds stay
        (r"a{2,5}", r"a{2,5}"),  # small counts stay
        (r"[{]{0,99}", r"[{]{0,}"),
        (r"\{0,99\}", r"\{0,99\}"),  # escaped braces are literals
        (r"[a{0,99}]", r"[a{0,99}]"),  # inside a class: literals
        (r"\x{80}", r"\x{80}"),
    ],
)
def test_loosen(pattern: str, loosened: str) -> None:
    assert loosen(pattern) == loosened


def test_loosen_reads_posix_classes_as_members() -> None:
    # ``{0,99}`` inside ``[[:alpha:]...]`` is four members of the class, not a repeat.
    assert loosen("[[:alpha:]{0,99}]") == "[[:alpha:]{0,99}]"
    assert loosen("[[:alpha:]]{0,99}") == "[[:alpha:]]{0,}"


def test_walk_pattern_tells_the_pieces_apart() -> None:
    pieces = list(walk_pattern(r"a(?=[^]\s)])\({2,30}[[:digit:]x]"))
    assert [(p.text, p.kind, p.in_class) for p in pieces] == [
        ("a", "char", False),
        ("(", "group", False),
        ("?", "char", False),
        ("=", "char", False),
        ("[^", "class", False),
        ("]", "char", True),  # a leading "]" is a member
        ("\\s", "escape", True),
        (")", "char", True),
        ("]", "end", False),
        (")", "close", False),
        ("\\(", "escape", False),
        ("{2,30}", "repeat", False),
        ("[", "class", False),
        ("[:digit:]", "posix", True),
        ("x", "char", True),
        ("]", "end", False),
    ]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=list("[]^\\(){},:?=!<a1s-"), max_size=40))
def test_walk_pattern_pieces_cover_the_pattern_in_order(pattern: str) -> None:
    pieces = list(walk_pattern(pattern))
    assert "".join(p.text for p in pieces) == pattern
    assert [p.start for p in pieces] == [sum(len(q.text) for q in pieces[:i]) for i in range(len(pieces))]


@pytest.mark.parametrize("text", ["{{" + "a" * 300 + "__class__", "{{ x.__class__ }}", "{{ nothing }}"])
def test_loosened_pattern_matches_wherever_the_original_does(text: str) -> None:
    pattern = r"\{\{[^}]{0,256}__class__"
    if compile_pattern(pattern).search(text):
        assert compile_pattern(loosen(pattern)).search(text)


def test_re_fallback_set_agrees_with_re2() -> None:
    patterns = ["(?i)union\\s+select", "cat", "^x"]
    fallback = _ReSet(patterns)
    for text in ["1 UNION  select 2", "a cat", "x", "y x", "none"]:
        assert fallback.match(text) == sorted(compile_set(patterns).match(text))

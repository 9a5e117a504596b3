"""How RE2 sets are sized (issue 10): from the program of the pattern compiled alone, when it was."""

from __future__ import annotations

import pytest

from devsecmw.engine import matcher
from devsecmw.engine.matcher import compile_pattern, compile_set

pytestmark = pytest.mark.skipif(not matcher.HAVE_RE2, reason="google-re2 is not installed")


def test_lone_pattern_records_the_size_a_set_would_measure() -> None:
    pattern = r"(?i)(sizing)-(probe)[0-9]{2,4}"
    compile_pattern(pattern)
    assert matcher._re2 is not None
    measured = matcher._re2.RE2(pattern.encode(), matcher._SET_OPTS).ProgramSize()
    assert matcher._SIZES[pattern] == measured
    assert matcher._program_size(pattern) == measured


def test_sets_sized_from_known_programs_split_and_match_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    patterns = [f"(reuse{i})-[a-z]{{3}}" for i in range(30)]
    for p in patterns[::2]:  # half known from a lone compilation, half measured by the set
        compile_pattern(p)
    monkeypatch.setattr(matcher, "SET_PROGRAM_SIZE", 40)
    s = compile_set(patterns)
    assert len(s._matches) > 3  # type: ignore[attr-defined]
    assert sorted(s.match("reuse0-abc reuse7-xyz reuse29-qqq reuse5-ab")) == [0, 7, 29]


def test_sizes_kept_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(matcher, "_SIZES", {})
    monkeypatch.setattr(matcher, "_MAX_SIZES", 2)
    for i in range(5):
        compile_pattern(f"bounded{i}x")
    assert len(matcher._SIZES) == 2


def test_long_texts_scanned_by_bigger_sets_with_the_same_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Texts of LONG_SET_FROM bytes or more go to sets of LONG_SET_PROGRAM_SIZE, built on the first
    long text; the answers are those of the small sets."""
    patterns = [f"(long{i})-[a-z]{{3}}" for i in range(40)]
    monkeypatch.setattr(matcher, "SET_PROGRAM_SIZE", 40)
    monkeypatch.setattr(matcher, "LONG_SET_PROGRAM_SIZE", 400)
    s = compile_set(patterns)
    small = len(s._matches)  # type: ignore[attr-defined]
    assert small > 5
    assert s._long is None  # type: ignore[attr-defined]
    short = "long3-abc long17-xyz long39-qqq long5-ab"
    pad = " ." * matcher.LONG_SET_FROM
    assert len(short.encode()) < matcher.LONG_SET_FROM
    assert sorted(s.match(short)) == [3, 17, 39]
    assert s._long is None  # type: ignore[attr-defined]
    assert sorted(s.match(short + pad)) == [3, 17, 39]
    assert sorted(s.match(pad + "long0-abc long21-def" + pad)) == [0, 21]
    big = s._long  # type: ignore[attr-defined]
    assert big is not None and 1 <= len(big._matches) < small
    assert s.match(pad) == []
    assert s._long is big  # type: ignore[attr-defined]  # built once


def test_long_texts_answer_as_short_ones_on_the_packaged_groups() -> None:
    from devsecmw.engine.plan import phases_for
    from devsecmw.engine.rules import load_packaged

    rules = load_packaged()
    texts = [ex for r in rules for ex in (*r.examples_match, *r.examples_nomatch)][:600]
    joined = "\uffff".join(texts).encode("utf-8", "surrogatepass")
    assert len(joined) >= matcher.LONG_SET_FROM
    checked = 0
    for phase in phases_for(rules).values():
        for group in phase.groups:
            m = getattr(group.matcher, "_re2", group.matcher)  # the RE2 sets behind a Hyperscan gate
            if not isinstance(m, matcher._Re2Set) or m._patterns is None:
                continue
            short = sorted({h for t in texts for h in m.match(t.encode("utf-8", "surrogatepass"))})
            assert sorted(m.match(joined)) == short
            checked += 1
    assert checked

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

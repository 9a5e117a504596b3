"""Hyperscan as the set-scan gate (engine/hsscan.py): a superset of RE2's answer on every text,
RE2 for what Hyperscan must not see, the database built off the request path and cached."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devsecmw.engine import hsscan
from devsecmw.engine.matcher import compile_pattern, compile_set, encode
from devsecmw.engine.plan import SEP, Phase, joined_pattern
from devsecmw.engine.rules import load_packaged

pytestmark = pytest.mark.skipif(
    not hsscan.HAVE_HYPERSCAN, reason="hyperscan is not installed (devsecmw[hyperscan])"
)

RULES = load_packaged()


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("hs-cache")


def _group_sets() -> list[tuple[list[str], object]]:
    """Every group's prefilters (joined form) with its RE2 set, both phases."""
    out = []
    for phase in ("head", "body"):
        for group in Phase(RULES, phase).groups:
            if group.matcher is not None:
                out.append(([joined_pattern(c.op.prefilter or "") for c in group.scanned], group.matcher))
    return out


@pytest.fixture(scope="module")
def accelerated(cache: Path) -> list[hsscan.HsSet]:
    sets = _group_sets()
    matchers, db = hsscan.accelerate(sets, directory=str(cache))  # type: ignore[arg-type]
    assert db is not None and db.wait(300), "the Hyperscan database was not built"
    assert db.source in ("compiled", "cache")
    return matchers  # type: ignore[return-value]


# -- pattern rewriting -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "text"),
    [
        (r"a\Sb", "a\x0bb"),  # RE2's \S holds \v; Hyperscan's does not
        (r"a[^\s]b", "a\x0bb"),
        (r"a[\S]b", "a\x0bb"),
        (r"a\vb", "a\x0bb"),
        (r"a[^\v]b", "a\nb"),  # Hyperscan's \v is every vertical space: [^\v] would refuse \n
        (r"x(?:$|;)y?", "x"),  # an end anchor with more pattern after it: refused by Hyperscan
        (r"(?i)script", "\u017fcript"),  # Unicode case folding, as RE2 does
        (r"(?i)k", "\u212a"),
    ],
)
def test_rewritten_pattern_matches_where_re2_does(pattern: str, text: str) -> None:
    assert compile_pattern(pattern).search(text) is not None  # RE2's answer
    rewritten = hsscan.hs_pattern(pattern)
    assert rewritten is not None
    db = hsscan.Database._compile_some([pattern], {pattern: rewritten})
    found: list[int] = []
    db.scan(text.encode(), match_event_handler=hsscan._hit, context=found)
    assert found == [0]


@pytest.mark.parametrize("pattern", [r"(?U)a+b", r"\pL+x", r"(?P<name>a)b", r"\Qa\E"])
def test_patterns_hyperscan_cannot_vouch_for_stay_on_re2(pattern: str) -> None:
    assert hsscan.hs_pattern(pattern) is None


def test_plain_patterns_are_unchanged() -> None:
    for p in (r"(?i)union\s+select", r"[;|&`]\s*id\b", r"\.\./"):
        assert hsscan.hs_pattern(p) == p


# -- the gate is a superset of RE2's answer ---------------------------------------------

FRAGMENTS = sorted({e for r in RULES for e in (*r.examples_match, *r.examples_nomatch) if e})[:400]
ALPHABET = "aA0 _-'\"<>=;|&$/\\.%()\t\n\x0b\r\u017f\u212a\u00e9\u4e2d"
PIECES = st.one_of(
    st.sampled_from(FRAGMENTS),
    st.text(alphabet=st.sampled_from(list(ALPHABET)), max_size=12),
    st.text(max_size=6),  # any code point, lone surrogates included
)
TEXTS = st.lists(PIECES, min_size=1, max_size=6).map("".join)


@given(values=st.lists(TEXTS, min_size=1, max_size=4))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_hyperscan_answer_holds_re2s(accelerated: list[hsscan.HsSet], values: list[str]) -> None:
    data = encode(SEP.join(values))
    for hs_set in accelerated:
        want = set(hs_set._re2.match(data))
        got = set(hs_set.match(data))
        assert want <= got, [hs_set._patterns[i][:80] for i in want - got]


def test_rule_examples_are_candidates(accelerated: list[hsscan.HsSet]) -> None:
    """Every packaged rule's matching examples reach the rule's confirmation through Hyperscan."""
    checked = 0
    for hs_set in accelerated:
        assert hs_set._db is not None  # answered by Hyperscan, not RE2
        for example in FRAGMENTS:
            data = encode(example)
            if data.isascii():
                want = set(hs_set._re2.match(data))
                assert want <= set(hs_set.match(data))
                checked += len(want)
    assert checked > 100


def test_invalid_utf8_goes_to_re2(accelerated: list[hsscan.HsSet]) -> None:
    # js_decode of "\ud800" gives a lone surrogate: encoded with surrogatepass, not UTF-8.
    data = encode("\ud800' or 1=1--")
    assert not hsscan._valid_utf8(data)
    for hs_set in accelerated:
        assert sorted(hs_set.match(data)) == sorted(hs_set._re2.match(data))


def test_shared_prefilter_reports_every_rule() -> None:
    """Two rules with the same prefilter: one pattern in the database, both indexes answered."""
    sets = [(["abc", "x+y", "abc"], compile_set(["abc", "x+y", "abc"]))]
    (hs_set,), db = hsscan.accelerate(sets)  # type: ignore[arg-type]
    assert db is not None and db.wait(60)
    assert hs_set.match(b"--abc--") == [0, 2]
    assert hs_set.match("no") == []  # a str: RE2 answers (the engine always passes bytes)


# -- building: off the request path, cached, shared --------------------------------------


def test_database_is_cached_and_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    patterns = [r"(?i)union\s+select", r"\.\./", r"a\Sb(?:$|\uffff)c"]
    first = hsscan.Database(patterns, tmp_path)
    first.start()
    assert first.wait(60) and first.source == "compiled"
    files = list(tmp_path.glob("hs-*.db"))
    assert len(files) == 1
    second = hsscan.Database(reversed(patterns), tmp_path)  # same patterns, same key
    second.start()
    assert second.wait(60) and second.source == "cache"
    assert second.ids == first.ids
    # A corrupt file is compiled again (and replaced).
    files[0].write_bytes(b"0,1\nnot a database")
    third = hsscan.Database(patterns, tmp_path)
    third.start()
    assert third.wait(60) and third.source == "compiled"


def test_no_cache_directory() -> None:
    assert hsscan.cache_dir("off") is None and hsscan.cache_dir(" OFF ") is None
    db = hsscan.Database([r"\.\./"], hsscan.cache_dir("off"))
    db.start()
    assert db.wait(60) and db.source == "compiled"


def test_cache_directory_option(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert hsscan.cache_dir("") == tmp_path / "devsecmw"
    assert hsscan.cache_dir(str(tmp_path / "x")) == tmp_path / "x"


def test_disabled_keeps_re2() -> None:
    re2_set = compile_set(["abc"])
    matchers, db = hsscan.accelerate([(["abc"], re2_set)], hyperscan=False)
    assert db is None and matchers == [re2_set]


def test_re2_answers_until_ready(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hsscan.Database, "start", lambda self: None)  # never built
    (hs_set,), db = hsscan.accelerate([(["abc"], compile_set(["abc"]))], directory="off")  # type: ignore[arg-type]
    assert db is not None and not db.ready.is_set()
    assert hs_set.match(b"xabc") == [0]


def test_long_text_goes_to_re2(accelerated: list[hsscan.HsSet], monkeypatch: pytest.MonkeyPatch) -> None:
    """Past LONG_TEXT bytes RE2 answers (its warm sets beat Hyperscan on long hostile text)."""
    data = encode("'/*<a \"||(select ../ ${jndi: %2e%2e <svg on " * 200)
    assert len(data) > hsscan.LONG_TEXT
    calls: list[int] = []
    monkeypatch.setattr(hsscan.Database, "scan", lambda self, d: calls.append(len(d)) or [])
    for hs_set in accelerated:
        assert sorted(hs_set.match(data)) == sorted(hs_set._re2.match(data))
    assert calls == []


def test_cache_directory_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hsscan, "CACHE_FILES", 2)
    for i in range(4):
        db = hsscan.Database([f"rule{i}x"], tmp_path)
        db.start()
        assert db.wait(60) and db.source == "compiled"
    assert len(list(tmp_path.glob("hs-*.db"))) == 2


def test_unusable_cache_directory_still_builds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    db = hsscan.Database([r"\.\./"], not_a_dir / "sub")
    db.start()
    assert db.wait(60) and db.source == "compiled"

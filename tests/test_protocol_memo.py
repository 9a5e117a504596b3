"""The request-level protocol checks split ``headers.raw`` once per text: the split they share
gives what a fresh split gives, whatever order texts come in."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from devsecmw.engine import protocol

_NAMES = st.sampled_from(["host", "content-length", "transfer-encoding", "content-type", "x-a", ""])
_VALUES = st.sampled_from(["1", "0", "5, 7", "chunked", "gzip, chunked", "text/plain", " x ", ""])
_LINE = st.tuples(_NAMES, _VALUES).map(lambda nv: f"{nv[0]}: {nv[1]}" if nv[0] else nv[1])
_RAW = st.builds(
    lambda method, version, lines: "\n".join([f"{method} HTTP/{version}", *lines]),
    st.sampled_from(["GET", "POST", "TRACE", "PUT"]),
    st.sampled_from(["1.0", "1.1", "2", "9.9"]),
    st.lists(_LINE, max_size=6),
)


def _fresh(check: protocol.Check, raw: str) -> tuple[int, int] | None:
    protocol._last = None  # no shared split: the check splits this text itself
    return check(raw)


@settings(max_examples=300, deadline=None)
@given(st.lists(_RAW, min_size=1, max_size=4))
def test_shared_split_gives_the_checks_of_a_fresh_one(raws: list[str]) -> None:
    checks = list(protocol._RAW_CHECKS.values())
    expected = [[_fresh(c, raw) for c in checks] for raw in raws]
    # Interleaved: each text is split once and its split reused by the checks that follow.
    got = [[c(raw) for c in checks] for raw in raws]
    assert got == expected
    again = [[c(raw) for c in checks] for raw in reversed(raws)]
    assert again == list(reversed(expected))


def test_one_split_per_text() -> None:
    raw = "POST HTTP/1.1\ncontent-length: 5\ntransfer-encoding: chunked"
    first = protocol._head(raw)
    assert protocol._head(raw) is first
    assert protocol._head("GET HTTP/1.1\nhost: a") is not first

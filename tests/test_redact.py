"""Secrets never reach telemetry; evidence is short and masked."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devsecmw import redact


@pytest.mark.parametrize(
    "location",
    [
        "header:authorization",
        "header:proxy-authorization",
        "header:cookie",
        "header:set-cookie",
        "header:x-api-key",
        "cookie:theme",
        "query:password",
        "query:new_passwd",
        "body:form:api_key",
        "body:json:user.accessToken",
        "body:json:client_secret",
        "query:sessionid",
        "query:csrfmiddlewaretoken",
        "query:pin",
        "body:json:card.cvv",
    ],
)
def test_secret_locations_are_fully_redacted(location: str) -> None:
    assert redact.evidence(location, "' or 1=1 -- hunter2", 0, 9) == redact.REDACTED


@pytest.mark.parametrize(
    "location", ["query:q", "query:shipping", "body:json:author", "header:user-agent", "query:spinner"]
)
def test_ordinary_locations_show_evidence(location: str) -> None:
    assert "or 1=1" in redact.evidence(location, "x' or 1=1 --", 1, 9)


def test_extra_secret_names_from_config() -> None:
    assert redact.evidence("query:licence", "abc", 0, 3, extra_names=("licence",)) == redact.REDACTED


def test_evidence_is_an_excerpt_around_the_match() -> None:
    value = "a" * 500 + "<script>alert(1)</script>" + "b" * 500
    start = value.index("<script>")
    ev = redact.evidence("query:q", value, start, start + 8)
    assert len(ev) <= redact.MAX_EVIDENCE
    assert "<script>" in ev


@pytest.mark.parametrize(
    ("text", "leaked"),
    [
        ("x=1&password=hunter2&y=2", "hunter2"),
        ("Authorization: Bearer abc.def.ghi", "abc.def.ghi"),
        ("token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl", "eyJzdWIiOiIxMjMifQ"),
        ("key AKIAABCDEFGHIJKLMNOP here", "AKIAABCDEFGHIJKLMNOP"),
    ],
)
def test_inline_secrets_are_masked(text: str, leaked: str) -> None:
    assert leaked not in redact.evidence("body", text, 0, len(text))


def test_control_characters_are_escaped() -> None:
    ev = redact.evidence("query:q", "a\r\nSet-Cookie: x", 0, 16)
    assert "\r" not in ev and "\n" not in ev and "\\r\\n" in ev


def test_scrub_query_keeps_names_and_masks_secret_values() -> None:
    assert (
        redact.scrub_query("q=shoes&password=hunter2&token=abc") == "q=shoes&password=REDACTED&token=REDACTED"
    )


@given(st.text(max_size=300), st.integers(0, 300), st.integers(0, 300))
def test_evidence_never_raises_and_is_bounded(value: str, a: int, b: int) -> None:
    ev = redact.evidence("query:q", value, min(a, b), max(a, b))
    assert len(ev) <= redact.MAX_EVIDENCE


def test_scrub_query_masks_inline_secrets_in_ordinary_parameters() -> None:
    assert redact.scrub_query("q=shoes&next=/cb?api_key=s3cr3t") == "q=shoes&next=/cb?api_key=***"
    assert redact.scrub_query("q=Bearer%20x&page=2") == "q=Bearer%20x&page=2"  # '%20' is not whitespace
    assert redact.scrub_query("q=Bearer xyz&page=2") == "q=***&page=2"
    assert (
        redact.scrub_query("category=books&page=2&q=python+cookbook")
        == "category=books&page=2&q=python+cookbook"
    )


# The pre-check that spares most queries the inline regex must never skip a query the regex matches.
_INLINE_PIECES = st.sampled_from(
    ["pass", "PassWord", "pwd", "secret", "TOKEN", "api_key", "ApiKey", "access-key", "sessionid", "auth",
     "bearer ", "eyJ", "eyJhbGciOi.eyJzdWIiOi.", "AKIA", "ASIA", "-----BEGIN RSA PRIVATE KEY-----",
     "=", ":", "'", '"', " ", "&", "x", "0", "K", "\u212a", "\u017f", "\u0130", "\u0131", "é"]
)  # fmt: skip


@given(st.lists(_INLINE_PIECES | st.text(max_size=4), max_size=12).map("".join))
def test_inline_precheck_never_hides_a_match(text: str) -> None:
    if redact._INLINE.search(text) is not None:
        assert redact._may_hold_inline(text)
    assert redact.mask_inline(text) == redact._INLINE.sub(redact._mask, text)


def test_inline_precheck_skips_ordinary_text() -> None:
    assert not redact._may_hold_inline("category=books&page=2&sort=price&q=python+cookbook")
    assert redact._may_hold_inline("\u212aEY=1")  # non-ASCII: the regex decides (the Kelvin sign folds to k)

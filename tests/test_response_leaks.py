"""Response leaks: sniffed as the chunks pass, never held; stronger after an attack.

The leak rules are response-phase rules of the one rule system (``engine/rules/951-leaks.json``):
their own examples run through the rule alone in ``test_rule_examples.py``, and here through
the engine's response runner, on a sample as the middleware keeps it.
"""

from __future__ import annotations

import gzip
import zlib
from typing import Any

import pytest
from asgi_harness import bare_get

from devsecmw.asgi import SecurityMiddleware
from devsecmw.engine.response import ResponseRules
from devsecmw.engine.rules import RESPONSE_BODY, Rule, load_packaged
from devsecmw.leaks import Sniffer

RULES = [r for r in load_packaged() if RESPONSE_BODY in r.phases]
_RUNNER = ResponseRules(RULES)
CASES = [
    pytest.param(r, kind, value, id=f"{r.id}-{kind}-{i}")
    for r in RULES
    for kind, values in (("match", r.examples_match), ("nomatch", r.examples_nomatch))
    for i, value in enumerate(values)
]


def test_the_leak_rules_are_response_body_rules() -> None:
    assert len(RULES) >= 14
    assert {r.type for r in RULES} == {"response_leak"}
    assert all(r.phase_names == ("response.body",) and r.examples_match for r in RULES)


@pytest.mark.parametrize(("rule", "kind", "value"), CASES)
def test_leak_rule_example_through_the_response_runner(rule: Rule, kind: str, value: str) -> None:
    sniffer = Sniffer(1 << 16, None)
    sniffer.feed(value.encode("utf-8"))
    fired = {s.rule_id for s in _RUNNER.inspect(sniffer.data)}
    assert (rule.id in fired) is (kind == "match"), f"{rule.id} ({rule.name}) on {value!r}: {fired}"


_EXAMPLES = [ex for r in RULES for ex in (*r.examples_match, *r.examples_nomatch)]


@pytest.mark.parametrize(
    "text", [*_EXAMPLES, '{"ok":true}', "caf\u00e9 Traceback (most recent call last):", ""]
)
@pytest.mark.parametrize("prefix", [b"", b"\xff\xfe broken utf-8 ", "d\u00e9j\u00e0 ".encode()])
def test_sniffed_bytes_give_what_their_text_gives(text: str, prefix: bytes) -> None:
    """Bytes scanned as they are (ASCII) find exactly what each rule alone finds in the text."""
    sniffer = Sniffer(1 << 20, None)
    sniffer.feed(prefix + text.encode("utf-8", "surrogatepass"))
    alone = {r.id for r in RULES if r.matches_value(sniffer.text()) is not None}
    assert {s.rule_id for s in _RUNNER.inspect(sniffer.data)} == alone


def test_secrets_are_never_evidence() -> None:
    signals = _RUNNER.inspect(
        b"config: -----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA AKIAIOSFODNN7EXAMPLE"
    )
    assert {s.rule_id for s in signals} == {"954100", "954110"}
    assert all(s.evidence == "[redacted]" for s in signals)


@pytest.mark.parametrize(
    ("headers", "sniffed"),
    [
        ([(b"content-type", b"text/html; charset=utf-8")], True),
        ([(b"content-type", b"application/json")], True),
        ([(b"content-type", b"application/problem+json")], True),
        ([(b"content-type", b"image/png")], False),
        ([(b"content-type", b"application/octet-stream")], False),
        ([(b"content-type", b"text/plain"), (b"content-encoding", b"br")], False),
        ([], False),
    ],
)
def test_what_is_sniffed(headers: list[tuple[bytes, bytes]], sniffed: bool) -> None:
    assert (Sniffer.for_response(headers, 1024) is not None) is sniffed


def test_sniffer_is_bounded() -> None:
    s = Sniffer(100, None)
    for _ in range(50):
        s.feed(b"x" * 64)
    assert len(s.text()) == 100


@pytest.mark.parametrize("compress", [gzip.compress, zlib.compress])
def test_compressed_bodies_are_inflated_incrementally_within_the_cap(compress: Any) -> None:
    body = compress(b"<html>" + b"A" * 10_000_000 + b"Traceback (most recent call last):")
    s = Sniffer.for_response(
        [
            (b"content-type", b"text/html"),
            (b"content-encoding", b"gzip" if compress is gzip.compress else b"deflate"),
        ],
        4096,
    )
    assert s is not None
    for i in range(0, len(body), 1000):
        s.feed(body[i : i + 1000])
    # The bomb never inflates past the cap.
    assert len(s.text()) == 4096


def test_corrupt_compressed_body_stops_sniffing_quietly() -> None:
    s = Sniffer.for_response([(b"content-type", b"text/html"), (b"content-encoding", b"gzip")], 4096)
    assert s is not None
    s.feed(b"not gzip at all")
    s.feed(b"more")
    assert s.text() == ""


def _app(status: int, body: bytes, ctype: bytes = b"text/html") -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", ctype)]})
        for i in range(0, len(body), 7):  # many small chunks: the leak spans chunk boundaries
            await send({"type": "http.response.body", "body": body[i : i + 7], "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    return app


def _call(mw: Any, query: bytes) -> list[dict[str, Any]]:
    return bare_get(mw, "/item", query)


LEAK = (
    b"<html><b>Warning</b>: mysql_fetch_array() expects parameter 1 ... You have an error in your SQL syntax"
)


def test_leak_after_attack_is_marked_and_weighs_more(otel: Any) -> None:
    mw = SecurityMiddleware(_app(500, LEAK), **otel.providers)
    sent = _call(mw, b"id=1%27%20UNION%20SELECT%20password%20FROM%20users--")
    assert b"".join(m.get("body", b"") for m in sent[1:]) == LEAK  # untouched
    span = otel.span()
    assert {"sqli", "response_leak", "http_5xx", "attack_5xx"} <= set(
        span.attributes["devsecmw.signal.types"]
    )
    assert span.attributes["devsecmw.leak_after_attack"] is True
    leak = [e for e in otel.events() if e["devsecmw.signal.type"] == "response_leak"]
    assert leak and leak[0]["devsecmw.signal.severity"] == 5


def test_leak_without_attack_is_an_anomaly(otel: Any) -> None:
    mw = SecurityMiddleware(_app(200, LEAK), **otel.providers)
    _call(mw, b"id=7")
    span = otel.span()
    assert span.attributes["devsecmw.classification"] == "anomaly"
    assert "devsecmw.leak_after_attack" not in span.attributes
    assert "response_leak" in otel.signal_types()


def test_binary_responses_are_not_sniffed(otel: Any) -> None:
    mw = SecurityMiddleware(_app(200, LEAK, b"application/octet-stream"), **otel.providers)
    _call(mw, b"id=7")
    assert "response_leak" not in otel.signal_types()


def test_sniffing_can_be_switched_off(otel: Any) -> None:
    mw = SecurityMiddleware(_app(200, LEAK), response_limit=0, **otel.providers)
    _call(mw, b"id=7")
    assert "response_leak" not in otel.signal_types()

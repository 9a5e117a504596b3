"""The warm request path: work skipped when it cannot find anything, with the same outcome.

A response no client receives a body for (HEAD, 1xx, 204, 304) is not sampled: what the app
hands over for it never reaches the client, so it cannot leak. A textual response with a body
is still sampled, whatever the request's method. A short sample the response rules found
clean is remembered (by digest) and not scanned again; a leak is found every time.
"""

from __future__ import annotations

from typing import Any

import pytest
from asgi_harness import bare_get

from devsecmw.asgi import SecurityMiddleware
from devsecmw.engine.response import ResponseRules
from devsecmw.engine.rules import RESPONSE_BODY, load_packaged
from devsecmw.leaks import CLEAN_SAMPLE_MAX, CLEAN_SAMPLES, CleanSamples, Sniffer
from devsecmw.telemetry.spans import _MAX_CACHED_HEAD, _MAX_CACHED_HEADS, _MAX_NAMES, _NAMES, span_name

LEAK = b"<html><b>Warning</b>: mysql_fetch_array() ... You have an error in your SQL syntax"


def _app(status: int, body: bytes) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"text/html")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def _call(
    mw: Any, method: str, client: tuple[str, int] = ("203.0.113.5", 1), headers: tuple[Any, ...] = ()
) -> list[dict[str, Any]]:
    return bare_get(mw, "/item", b"id=7", headers, client, method)


@pytest.mark.parametrize(("method", "status"), [("GET", 200), ("POST", 500), ("GET", 404)])
def test_a_response_with_a_body_is_sampled(otel: Any, method: str, status: int) -> None:
    sent = _call(SecurityMiddleware(_app(status, LEAK), **otel.providers), method)
    assert sent[1]["body"] == LEAK  # forwarded untouched
    assert "response_leak" in otel.signal_types()


@pytest.mark.parametrize(("method", "status"), [("HEAD", 200), ("GET", 304), ("GET", 204), ("HEAD", 500)])
def test_a_response_without_a_body_is_not_sampled(
    otel: Any, monkeypatch: pytest.MonkeyPatch, method: str, status: int
) -> None:
    made: list[object] = []
    real = Sniffer.for_response.__func__  # type: ignore[attr-defined]

    def spy(cls: type[Sniffer], headers: Any, limit: int) -> Sniffer | None:
        made.append(headers)
        return real(cls, headers, limit)  # type: ignore[no-any-return]

    monkeypatch.setattr(Sniffer, "for_response", classmethod(spy))
    sent = _call(SecurityMiddleware(_app(status, LEAK), **otel.providers), method)
    assert sent[0]["status"] == status and sent[1]["body"] == LEAK  # the app's messages, as they were
    assert made == []  # no sample was even set up
    assert "response_leak" not in otel.signal_types()
    span = otel.span()
    assert span.attributes["http.response.status_code"] == status
    assert span.attributes["devsecmw.classification"] == ("anomaly" if status >= 500 else "benign")


def _counting_body_rules(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    scanned: list[bytes] = []
    real = ResponseRules.inspect_body

    def spy(self: ResponseRules, buf: bytes | bytearray) -> list[Any]:
        scanned.append(bytes(buf))
        return real(self, buf)

    monkeypatch.setattr(ResponseRules, "inspect_body", spy)
    return scanned


def test_a_repeated_clean_sample_is_scanned_once(otel: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    scanned = _counting_body_rules(monkeypatch)
    clean = b'{"ok": true, "items": []}'
    mw = SecurityMiddleware(_app(200, clean), **otel.providers)
    for _ in range(3):
        assert _call(mw, "GET")[1]["body"] == clean
    assert scanned == [clean]
    assert len(mw.runtime.clean_samples) == 1
    assert all(s.attributes["devsecmw.classification"] == "benign" for s in otel.spans())


def test_a_leak_is_found_every_time_and_never_remembered(otel: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    scanned = _counting_body_rules(monkeypatch)
    mw = SecurityMiddleware(_app(200, LEAK), **otel.providers)
    for _ in range(3):
        _call(mw, "GET")
    assert scanned == [LEAK] * 3
    assert len(mw.runtime.clean_samples) == 0
    spans = otel.spans()
    assert len(spans) == 3
    assert all("response_leak" in s.attributes["devsecmw.signal.types"] for s in spans)


def test_clean_samples_keep_digests_only_and_stay_bounded() -> None:
    rules = ResponseRules([r for r in load_packaged() if RESPONSE_BODY in r.phases])
    clean = CleanSamples()
    secret = b'{"token": "tok_8f14e45fceea167a5a36dedd4bea2543"}'
    assert clean.inspect(rules, bytearray(secret), ()) == []
    assert len(clean) == 1 and all(secret not in k and len(k) == 16 for k in clean._seen)
    long = b"x" * (CLEAN_SAMPLE_MAX + 1)
    assert clean.inspect(rules, long, ()) == [] and len(clean) == 1  # too long to remember
    for i in range(CLEAN_SAMPLES + 10):
        clean.inspect(rules, b"page %d" % i, ())
    assert 0 < len(clean) <= CLEAN_SAMPLES
    leak = clean.inspect(rules, LEAK, ())
    assert {s.type for s in leak} == {"response_leak"}
    assert {s.type for s in clean.inspect(rules, LEAK, ())} == {"response_leak"}


@pytest.mark.parametrize(
    ("method", "route", "name"),
    [("GET", "/items/{id}", "GET /items/{id}"), ("get", "/a", "GET /a"), ("BREW", "/pot", "HTTP /pot")],
)
def test_span_names_are_formatted_once_and_stay_right(method: str, route: str, name: str) -> None:
    assert span_name(method, route) == name
    assert span_name(method, route) is span_name(method, route)  # the same string, kept


def test_span_names_stay_bounded() -> None:
    for i in range(_MAX_NAMES + 5):
        span_name("GET", f"/r{i}")
    assert 0 < len(_NAMES) <= _MAX_NAMES
    assert span_name("POST", "/r1") == "POST /r1"


def test_span_head_attributes_are_reused_with_each_requests_client(otel: Any) -> None:
    mw = SecurityMiddleware(_app(200, b"{}"), trusted_proxies=["10.0.0.0/8"], **otel.providers)
    ua = (b"user-agent", b"curl/8.5 token=abc123")
    _call(mw, "GET", ("203.0.113.5", 1111), (ua,))
    _call(mw, "GET", ("203.0.113.6", 2222), (ua,))
    _call(mw, "GET", ("10.1.2.3", 3333), (ua, (b"x-forwarded-for", b"198.51.100.7")))
    _call(mw, "GET", ("203.0.113.5", 4444), ())
    first, second, proxied, other = (s.attributes for s in otel.spans())
    assert len(mw.runtime.telemetry._heads) == 2  # two distinct heads: with and without the agent
    for attrs in (first, second, proxied):
        assert attrs["url.path"] == "/item" and attrs["url.query"] == "id=7"
        assert attrs["user_agent.original"] != "curl/8.5 token=abc123"  # scrubbed, cached scrubbed
        assert attrs["user_agent.original"] == first["user_agent.original"]
    assert (first["client.address"], first["client.port"]) == ("203.0.113.5", 1111)
    assert (second["client.address"], second["client.port"]) == ("203.0.113.6", 2222)
    assert proxied["client.address"] == "198.51.100.7" and proxied["network.peer.address"] == "10.1.2.3"
    assert "client.port" not in proxied
    assert other["client.port"] == 4444 and "user_agent.original" not in other
    # The head's attributes in the order a head built afresh has them.
    assert list(first)[:10] == [
        "http.request.method", "url.path", "url.scheme", "url.query", "client.address", "client.port",
        "server.address", "server.port", "user_agent.original", "network.protocol.version",
    ]  # fmt: skip


def test_span_heads_stay_bounded(otel: Any) -> None:
    mw = SecurityMiddleware(_app(200, b"{}"), **otel.providers)
    heads = mw.runtime.telemetry._heads
    for i in range(_MAX_CACHED_HEADS + 3):
        _call(mw, "GET", headers=((b"user-agent", b"agent/%d" % i),))
    assert 0 < len(heads) <= _MAX_CACHED_HEADS
    _call(mw, "GET", headers=((b"user-agent", b"a" * (_MAX_CACHED_HEAD + 1)),))
    assert all(len(k[6] or "") <= _MAX_CACHED_HEAD for k in heads)  # a long head is not kept

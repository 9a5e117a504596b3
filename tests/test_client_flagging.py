"""Per-client intelligence through the middleware: flagging, identity behind proxies, would_block."""

from __future__ import annotations

import asyncio
from typing import Any

from devsecmw.asgi import SecurityMiddleware


def _app(status: int = 200) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


def _call(mw: Any, query: bytes = b"", peer: str = "203.0.113.5", headers: Any = ()) -> int:
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/p",
        "raw_path": b"/p",
        "query_string": query,
        "headers": list(headers),
        "client": (peer, 1),
        "server": ("127.0.0.1", 80),
        "scheme": "http",
        "http_version": "1.1",
        "root_path": "",
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(mw(scope, receive, send))
    return int(sent[0]["status"])


ATTACK = b"q=%3Cscript%3Ealert(1)%3C/script%3E"


def test_a_burst_of_attacks_flags_the_client_and_it_stays_flagged(otel: Any) -> None:
    mw = SecurityMiddleware(_app(), flag_attacks=3, **otel.providers)
    for _ in range(2):
        _call(mw, ATTACK)
    assert "client_flagged" not in otel.signal_types()
    otel.clear()
    _call(mw, ATTACK)  # the third attack crosses the threshold
    ev = [e for e in otel.events() if e["devsecmw.signal.type"] == "client_flagged"]
    assert ev and ev[0]["devsecmw.signal.evidence"] == "attack >= 3 in 60s"
    otel.clear()
    # While flagged, even a clean request from that client carries the flag...
    assert _call(mw, b"q=shoes") == 200  # ...and monitor mode never changes the response.
    span = otel.span()
    assert "client_flagged" in span.attributes["devsecmw.signal.types"]
    assert span.attributes["devsecmw.would_block"] is True
    assert span.attributes["devsecmw.blocked"] is False
    otel.clear()
    _call(mw, b"q=shoes", peer="198.51.100.1")  # another client is not affected
    assert otel.events() == []


def test_a_burst_of_404s_flags_a_scanner(otel: Any) -> None:
    mw = SecurityMiddleware(_app(404), flag_404s=5, **otel.providers)
    for _ in range(5):
        _call(mw)
    assert "client_flagged" in otel.signal_types()


def test_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(otel: Any) -> None:
    mw = SecurityMiddleware(_app(), flag_attacks=2, trusted_proxies=["10.0.0.0/8"], **otel.providers)
    # The attacker rotates X-Forwarded-For to hide; the connection address is what counts.
    for i in range(2):
        _call(mw, ATTACK, peer="203.0.113.66", headers=[(b"x-forwarded-for", f"192.0.2.{i}".encode())])
    assert "client_flagged" in otel.signal_types()
    span = otel.spans()[-1]
    assert span.attributes["client.address"] == "203.0.113.66"


def test_forwarded_for_from_a_trusted_proxy_identifies_the_client(otel: Any) -> None:
    mw = SecurityMiddleware(_app(), flag_attacks=2, trusted_proxies=["10.0.0.0/8"], **otel.providers)
    _call(mw, ATTACK, peer="10.0.0.7", headers=[(b"x-forwarded-for", b"192.0.2.1")])
    _call(mw, ATTACK, peer="10.0.0.8", headers=[(b"x-forwarded-for", b"192.0.2.2")])
    assert "client_flagged" not in otel.signal_types()  # two different clients behind the proxy
    span = otel.spans()[-1]
    assert span.attributes["client.address"] == "192.0.2.2"
    assert span.attributes["network.peer.address"] == "10.0.0.8"


def test_client_address_never_reaches_metrics(otel: Any) -> None:
    mw = SecurityMiddleware(_app(), flag_attacks=1, **otel.providers)
    _call(mw, ATTACK)
    for name in ("devsecmw.requests", "devsecmw.signals", "devsecmw.inspection.duration"):
        for attrs, _ in otel.metric_points(name):
            assert "203.0.113.5" not in repr(attrs)
            assert not {"client.address", "network.peer.address"} & set(attrs)

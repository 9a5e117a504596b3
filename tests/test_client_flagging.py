"""Per-client intelligence through the middleware: flagging, identity behind proxies, would_block."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from asgi_harness import bare_get

from devsecmw.asgi import SecurityMiddleware
from devsecmw.clients import MAX_REPORTED, FlagReports


def _app(status: int = 200) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


def _call(mw: Any, query: bytes = b"", peer: str = "203.0.113.5", headers: Any = ()) -> int:
    return int(bare_get(mw, "/p", query, headers, (peer, 1))[0]["status"])


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
    # While flagged, even a clean request from that client carries the flag (a span attribute:
    # the signal itself was reported on the request that crossed the threshold)...
    assert _call(mw, b"q=shoes") == 200  # ...and monitor mode never changes the response.
    span = otel.span()
    assert span.attributes["devsecmw.client.flagged"] is True
    assert span.attributes["devsecmw.signal.types"] == ()
    assert span.attributes["devsecmw.would_block"] is True
    assert span.attributes["devsecmw.blocked"] is False
    otel.clear()
    _call(mw, b"q=shoes", peer="198.51.100.1")  # another client is not affected
    assert otel.events() == []
    assert "devsecmw.client.flagged" not in otel.span().attributes


class _Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_client_flagged_is_reported_when_crossing_then_once_per_window(otel: Any) -> None:
    # A scanner's 404 burst: one client_flagged event when it crosses the threshold, then one per
    # client_window while it stays flagged, not one per request (telemetry volume on a scanner).
    mw = SecurityMiddleware(_app(404), flag_404s=3, client_window=60, flag_ttl=600, **otel.providers)
    clock = _Clock()
    mw.runtime.flag_reports = FlagReports(60, clock=clock)

    def flags() -> list[dict[str, Any]]:
        return [e for e in otel.events() if e["devsecmw.signal.type"] == "client_flagged"]

    for _ in range(3):
        _call(mw)
    assert len(flags()) == 1  # the third 404 crossed the threshold
    otel.clear()
    for _ in range(20):
        clock.t += 1
        _call(mw)
    assert flags() == []  # flagged all along, reported already in this window
    spans = otel.spans()
    assert len(spans) == 20
    assert all(s.attributes["devsecmw.client.flagged"] is True for s in spans)
    assert all(s.attributes["devsecmw.would_block"] is True for s in spans)
    assert all(s.attributes["devsecmw.signal.types"] == ("http_404",) for s in spans)
    otel.clear()
    clock.t += 60  # a window later, still flagged: reported again, on one request only
    _call(mw)
    _call(mw)
    assert len(flags()) == 1
    assert [s.attributes["devsecmw.signal.types"] for s in otel.spans()] == [
        ("client_flagged", "http_404"),
        ("http_404",),
    ]
    # The metric counts reports, not requests: 1 (crossing) + 1 (reminder).
    flagged_counts = [
        p.value
        for attrs, p in otel.metric_points("devsecmw.signals")
        if attrs["devsecmw.signal.type"] == "client_flagged"
    ]
    assert sum(flagged_counts) == 2
    # Requests from the flagged client stay countable on devsecmw.requests (a bounded boolean).
    requests = otel.metric_points("devsecmw.requests")
    assert sum(p.value for a, p in requests if a.get("devsecmw.client.flagged") is True) == 22
    assert sum(p.value for a, p in requests if "devsecmw.client.flagged" not in a) == 3


def test_flag_reports_are_bounded_and_per_client() -> None:
    clock = _Clock()
    reports = FlagReports(60, max_clients=2, clock=clock)
    assert reports.due("a") and not reports.due("a")
    assert reports.due("b") and reports.due("c")  # "a" evicted: least recently reported
    assert len(reports) == 2
    assert reports.due("a")
    reports.mark("d")
    assert not reports.due("d")
    clock.t += 60
    assert reports.due("d") and not reports.due("d")


def test_flag_reports_stay_small_whatever_max_clients() -> None:
    reports = FlagReports(60, max_clients=1_000_000)
    for i in range(MAX_REPORTED + 100):
        reports.mark(f"198.51.{i // 256}.{i % 256}")
    assert len(reports) == MAX_REPORTED
    assert reports.due("198.51.0.0")  # forgotten (oldest): reported again, never missed


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


# ---------------------------------------------------------------- behind an untrusted reverse proxy
PROXY = "10.0.0.1"  # the reverse proxy every user's connection comes from (defaults: not trusted)
CLEAN = b"q=shoes"


def _via_proxy(mw: Any, user: str, query: bytes, peer: str = PROXY) -> int:
    return _call(mw, query, peer=peer, headers=[(b"x-forwarded-for", user.encode())])


def test_block_mode_behind_an_untrusted_proxy_never_blocks_by_client(
    otel: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # Reproducer: with defaults every user arrives from the proxy's address; 12 attacks from one
    # user flagged that address and then every other user got 403.
    mw = SecurityMiddleware(_app(), mode="block", **otel.providers)
    with caplog.at_level(logging.WARNING, logger="devsecmw"):
        statuses = [_via_proxy(mw, "198.51.100.66", ATTACK) for _ in range(12)]
        assert statuses == [403] * 12  # each attack is still blocked on its own signals
        flags = [e for e in otel.events() if e["devsecmw.signal.type"] == "client_flagged"]
        assert flags, "the proxy's address is still counted and flagged, for telemetry"
        assert "not blocked" in flags[-1]["devsecmw.signal.evidence"]
        otel.clear()
        assert _via_proxy(mw, "198.51.100.67", CLEAN) == 200
        assert _via_proxy(mw, "192.0.2.10", CLEAN) == 200
        assert _via_proxy(mw, "198.51.100.66", CLEAN) == 200  # even the attacker's clean request
    span = otel.spans()[-1]
    assert span.attributes["devsecmw.blocked"] is False
    assert "devsecmw.would_block" not in span.attributes
    assert span.attributes["devsecmw.client.flagged"] is True  # still flagged, reported once a window
    warnings = [r for r in caplog.records if "trusted_proxies" in r.getMessage()]
    assert len(warnings) == 1, "one warning per middleware, not one per request"
    assert warnings[0].levelno == logging.WARNING
    assert PROXY in warnings[0].getMessage()
    assert "198.51.100" not in warnings[0].getMessage()  # forwarded (client-sent) text is not logged


@pytest.mark.parametrize(
    ("peer", "header"),
    [
        ("127.0.0.1", (b"forwarded", b"for=198.51.100.66")),
        ("::1", (b"x-real-ip", b"198.51.100.66")),
        ("172.17.0.1", (b"x-forwarded-for", b"198.51.100.66")),
        ("fd00::5", (b"x-forwarded-for", b"198.51.100.66")),
        ("100.64.3.4", (b"x-forwarded-for", b"198.51.100.66")),
    ],
)
def test_every_forwarding_header_and_private_range_counts_as_a_proxy(
    otel: Any, peer: str, header: tuple[bytes, bytes]
) -> None:
    mw = SecurityMiddleware(_app(), mode="block", flag_attacks=2, **otel.providers)
    for _ in range(3):
        assert _call(mw, ATTACK, peer=peer, headers=[header]) == 403
    assert _call(mw, CLEAN, peer=peer, headers=[header]) == 200


def test_a_proxy_outside_trusted_proxies_is_not_blocked_by_client_either(
    otel: Any, caplog: pytest.LogCaptureFixture
) -> None:
    mw = SecurityMiddleware(
        _app(), mode="block", flag_attacks=2, trusted_proxies=["10.9.0.0/16"], **otel.providers
    )
    with caplog.at_level(logging.WARNING, logger="devsecmw"):
        for _ in range(3):
            _via_proxy(mw, "198.51.100.66", ATTACK)
        assert _via_proxy(mw, "198.51.100.67", CLEAN) == 200
    assert [r for r in caplog.records if "not in trusted_proxies" in r.getMessage()]


def test_with_trusted_proxies_set_the_user_behind_it_is_blocked_by_client(
    otel: Any, caplog: pytest.LogCaptureFixture
) -> None:
    mw = SecurityMiddleware(_app(), mode="block", flag_attacks=3, trusted_proxies=[PROXY], **otel.providers)
    with caplog.at_level(logging.WARNING, logger="devsecmw"):
        for _ in range(3):
            _via_proxy(mw, "198.51.100.66", ATTACK)
        assert _via_proxy(mw, "198.51.100.66", CLEAN) == 403  # the flagged user
        assert _via_proxy(mw, "198.51.100.67", CLEAN) == 200  # everyone else
    assert not [r for r in caplog.records if "trusted_proxies" in r.getMessage()]


def test_a_garbage_forwarded_value_falls_back_to_the_proxy_and_blocks_no_one_by_client(otel: Any) -> None:
    mw = SecurityMiddleware(_app(), mode="block", flag_attacks=2, trusted_hops=1, **otel.providers)
    for _ in range(3):
        _via_proxy(mw, "x" * 2048, ATTACK)
    assert _via_proxy(mw, "not an address", CLEAN) == 200
    assert otel.spans()[-1].attributes["client.address"] == PROXY


@pytest.mark.parametrize(
    ("peer", "headers"),
    [
        ("10.0.0.9", []),  # an internal client talking directly: it is the client
        ("203.0.113.9", [(b"x-forwarded-for", b"198.51.100.1")]),  # a public peer: its header is spoofable
    ],
)
def test_clients_that_are_not_proxies_are_still_blocked_by_client(
    otel: Any, peer: str, headers: list[tuple[bytes, bytes]]
) -> None:
    mw = SecurityMiddleware(_app(), mode="block", flag_attacks=2, **otel.providers)
    for _ in range(2):
        _call(mw, ATTACK, peer=peer, headers=headers)
    assert _call(mw, CLEAN, peer=peer, headers=headers) == 403
    assert _call(mw, CLEAN, peer="198.51.100.200") == 200

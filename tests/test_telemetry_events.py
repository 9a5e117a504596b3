"""Span events and signal counts on the request path: the event attributes kept ready for
recurring signals, and the one-signal shortcuts, give what the general path gives."""

from __future__ import annotations

from typing import Any

from devsecmw.signals import Severity, Signal, Verdict
from devsecmw.telemetry import _MAX_EVENT_ATTRS, Telemetry


def _finish(t: Telemetry, signals: list[Signal], status: int = 404) -> None:
    from devsecmw.request import HttpRequest

    req = HttpRequest("GET", "/x", "/x")
    handle = t.start(req)
    t.finish(handle, req, Verdict("anomaly", 2, signals), status, None, 0.001)


def _signal_counts(otel: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for attrs, p in otel.metric_points("devsecmw.signals"):
        t = attrs["devsecmw.signal.type"]
        out[t] = out.get(t, 0) + p.value
    return out


def test_a_recurring_signal_gives_the_same_event_every_time(otel: Any) -> None:
    t = Telemetry(otel.tracer_provider, otel.meter_provider)
    s = Signal("http_404", "response", "status 404", Severity.INFO)
    for _ in range(3):
        _finish(t, [s])
    events = otel.events()
    assert len(events) == 3
    assert (
        events[0]
        == events[1]
        == events[2]
        == {
            "devsecmw.signal.type": "http_404",
            "devsecmw.signal.location": "response",
            "devsecmw.signal.evidence": "status 404",
            "devsecmw.signal.severity": int(Severity.INFO),
        }
    )
    assert len(t._event_attrs) == 1


def test_a_kept_location_is_the_scrubbed_one(otel: Any) -> None:
    # A client chooses parameter names: the location is scrubbed the first time and as kept.
    t = Telemetry(otel.tracer_provider, otel.meter_provider)
    s = Signal("sqli", "query:a[password=hunter2]", "x", Severity.CRITICAL, "942100", "SQLi", "sqli", "core")
    _finish(t, [s])
    _finish(t, [s])
    first, second = otel.events()
    assert first == second
    assert "hunter2" not in str(first["devsecmw.signal.location"])
    assert first["security_rule.uuid"] == "942100"


def test_event_attributes_kept_are_bounded(otel: Any) -> None:
    t = Telemetry(otel.tracer_provider, otel.meter_provider)
    for i in range(_MAX_EVENT_ATTRS + 10):
        _finish(t, [Signal("not_utf8", f"query:p{i}", "bytes", Severity.INFO)], status=200)
    assert 0 < len(t._event_attrs) <= _MAX_EVENT_ATTRS
    long = Signal("not_utf8", "query:" + "p" * 500, "bytes", Severity.INFO)
    before = len(t._event_attrs)
    _finish(t, [long], status=200)
    assert len(t._event_attrs) == before  # a long location is not kept


def test_one_signal_and_many_signals_count_alike(otel: Any) -> None:
    t = Telemetry(otel.tracer_provider, otel.meter_provider)
    s404 = Signal("http_404", "response", "status 404", Severity.INFO)
    xss = Signal("xss", "query:q", "<script>", Severity.CRITICAL, "941100", "XSS", "xss", "core")
    _finish(t, [s404])  # the one-signal way
    _finish(t, [s404, s404, xss])  # the general way: duplicates count once
    assert _signal_counts(otel) == {"http_404": 2, "xss": 1}
    assert [e["devsecmw.signal.type"] for e in otel.events()] == ["http_404", "http_404", "xss"]


def test_max_events_zero_records_no_event_but_counts_it_dropped(otel: Any) -> None:
    t = Telemetry(otel.tracer_provider, otel.meter_provider, max_events=0)
    _finish(t, [Signal("http_404", "response", "status 404", Severity.INFO)])
    assert otel.events() == []
    assert otel.span().attributes["devsecmw.signals.dropped"] == 1

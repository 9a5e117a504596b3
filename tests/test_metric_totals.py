"""``devsecmw.requests`` and ``devsecmw.signals``: asynchronous counters over in-process totals.

What a reader sees must be what a synchronous counter would have given: monotonic sums by
attribute set, cumulative or delta, exact under threads, shared by every devsecmw instance on
one meter, and bounded in attribute sets.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from conftest import Telemetry
from opentelemetry.sdk.metrics import Counter, MeterProvider, ObservableCounter
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader, Sum

from devsecmw import telemetry
from devsecmw.request import HttpRequest
from devsecmw.signals import Severity, Signal, Verdict


def _finish(tel: telemetry.Telemetry, route: str = "/items", signals: list[Signal] | None = None) -> None:
    request = HttpRequest("GET", route, route)
    request.route = route
    verdict = Verdict()
    if signals:
        verdict.signals = signals
        verdict.classification = "attack"
    handle = tel.start(request)
    tel.finish(handle, request, verdict, 200, None, 0.0001)


def _points(reader: InMemoryMetricReader, name: str) -> list[tuple[dict[str, Any], Any, Any]]:
    data = reader.get_metrics_data()
    out = []
    assert data is not None
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                if m.name == name:
                    out.extend((dict(p.attributes or {}), p.value, m.data) for p in m.data.data_points)
    return out


def test_requests_are_a_monotonic_cumulative_sum(otel: Telemetry) -> None:
    tel = telemetry.Telemetry(**otel.providers)
    for _ in range(3):
        _finish(tel)
    [(attrs, value, data)] = _points(otel.reader, "devsecmw.requests")
    assert isinstance(data, Sum) and data.is_monotonic
    assert data.aggregation_temporality == AggregationTemporality.CUMULATIVE
    assert value == 3
    assert attrs == {
        "http.request.method": "GET",
        "http.route": "/items",
        "http.response.status_code": 200,
        "devsecmw.classification": "benign",
    }
    _finish(tel)
    [(_, value, _)] = _points(otel.reader, "devsecmw.requests")
    assert value == 4  # cumulative: the total so far, not what came since the last collection


def test_delta_readers_get_what_came_since_the_last_collection() -> None:
    reader = InMemoryMetricReader(
        preferred_temporality={
            Counter: AggregationTemporality.DELTA,
            ObservableCounter: AggregationTemporality.DELTA,
        }
    )
    tel = telemetry.Telemetry(meter_provider=MeterProvider(metric_readers=[reader]))
    for _ in range(5):
        _finish(tel)
    [(_, first, data)] = _points(reader, "devsecmw.requests")
    assert data.aggregation_temporality == AggregationTemporality.DELTA and first == 5
    for _ in range(2):
        _finish(tel)
    [(_, second, _)] = _points(reader, "devsecmw.requests")
    assert second == 2


def test_signals_are_counted_per_type(otel: Telemetry) -> None:
    tel = telemetry.Telemetry(**otel.providers)
    sqli = Signal("sqli", "query:id", "1' or 1=1", Severity.CRITICAL, rule_id="942100")
    xss = Signal("xss", "query:q", "<script>", Severity.CRITICAL, rule_id="941100")
    _finish(tel, signals=[sqli, xss])
    _finish(tel, signals=[sqli])
    by_type = {a["devsecmw.signal.type"]: v for a, v, _ in _points(otel.reader, "devsecmw.signals")}
    assert by_type == {"sqli": 2, "xss": 1}


def test_instances_on_one_meter_provider_add_up(otel: Telemetry) -> None:
    # The SDK keeps the first callback registered under an instrument name: two middleware
    # instances on one provider must still both be counted.
    first = telemetry.Telemetry(**otel.providers)
    second = telemetry.Telemetry(**otel.providers)
    _finish(first)
    _finish(second)
    _finish(second)
    [(_, value, _)] = _points(otel.reader, "devsecmw.requests")
    assert value == 3


def test_totals_are_exact_under_threads(otel: Telemetry) -> None:
    tel = telemetry.Telemetry(**otel.providers)
    routes = ["/a", "/b"]
    start = threading.Barrier(8)

    def work(i: int) -> None:
        start.wait()
        for _ in range(250):
            _finish(tel, routes[i % 2])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    totals = {a["http.route"]: v for a, v, _ in _points(otel.reader, "devsecmw.requests")}
    assert totals == {"/a": 1000, "/b": 1000}


def test_attribute_sets_are_bounded(otel: Telemetry, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(telemetry, "_MAX_TOTALS", 4)
    tel = telemetry.Telemetry(**otel.providers)
    for i in range(10):
        _finish(tel, f"/r{i}")
    points = _points(otel.reader, "devsecmw.requests")
    assert len(points) == 5  # four attribute sets, then one overflow set for the rest
    overflow = [v for a, v, _ in points if a == {"otel.metric.overflow": True}]
    assert overflow == [6]
    assert sum(v for _, v, _ in points) == 10  # nothing lost


def test_no_reader_no_cost_beyond_the_total() -> None:
    # Without a reader nothing is collected; counting still works and never raises.
    tel = telemetry.Telemetry(meter_provider=MeterProvider())
    _finish(tel)
    assert tel.requests.observe(None)[0].value == 1  # type: ignore[arg-type]

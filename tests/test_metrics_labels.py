"""Metrics a team can graph without reading the code (issue 12).

- A view that raises: ``devsecmw.requests`` and ``devsecmw.signals`` both carry status 500,
  on ASGI (Starlette, FastAPI, inside their error middleware), WSGI (Flask, propagating or
  not) and Django, like the span.
- Every request is counted once on ``devsecmw.requests``, with its primary attack type;
  ``devsecmw.signals`` counts findings, each with its own kind next to the request's class.
- The route is on devsecmw's metrics even when an outer HTTP instrumentation owns the span.
- Blocked requests are countable; counters carry an exemplar trace; the inspection histogram
  has second-scale buckets fit for a p99.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from asgi_harness import (
    steady_time_budget,  # noqa: F401  (autouse: load-independent detection)
)
from conftest import Telemetry
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from devsecmw import telemetry
from devsecmw.asgi import SecurityMiddleware
from devsecmw.signals import ATTACK_TYPES, Severity, Signal

TRAVERSAL = "../../../../etc/passwd"
SQLI = "1' UNION SELECT password FROM users--"


def requests_points(otel: Telemetry) -> list[tuple[dict[str, Any], int]]:
    return [(a, int(p.value)) for a, p in otel.metric_points("devsecmw.requests")]


def signal_points(otel: Telemetry) -> list[tuple[dict[str, Any], int]]:
    return [(a, int(p.value)) for a, p in otel.metric_points("devsecmw.signals")]


def assert_raised_request_is_a_500(otel: Telemetry, route: str | None) -> None:
    """One request counted, status 500 on it and on every signal, the same as on the span."""
    [(attrs, count)] = requests_points(otel)
    assert count == 1
    assert attrs["http.response.status_code"] == 500
    assert attrs["devsecmw.classification"] == "attack"
    assert attrs["devsecmw.attack.type"] == "traversal"
    if route is not None:
        assert attrs["http.route"] == route
    signals = signal_points(otel)
    assert {a["devsecmw.signal.type"] for a, _ in signals} >= {"traversal", "http_5xx", "attack_5xx"}
    assert all(a["http.response.status_code"] == 500 for a, _ in signals)
    assert otel.span().attributes["http.response.status_code"] == 500  # type: ignore[index]


# ---------------------------------------------------------------------- a view raises: ASGI
async def boom(request: Request) -> Response:
    raise RuntimeError("view failed")


def test_starlette_view_raises_metrics_carry_500(otel: Telemetry) -> None:
    app = Starlette(routes=[Route("/items/{item_id}", boom)])
    app.add_middleware(SecurityMiddleware, **otel.providers)
    # Starlette's ServerErrorMiddleware sits outside devsecmw: devsecmw sees the exception, not a 500.
    response = TestClient(app, raise_server_exceptions=False).get("/items/7", params={"f": TRAVERSAL})
    assert response.status_code == 500
    assert_raised_request_is_a_500(otel, "/items/{item_id}")


def test_fastapi_view_raises_metrics_carry_500(otel: Telemetry) -> None:
    fastapi = pytest.importorskip("fastapi")
    app = fastapi.FastAPI()

    @app.get("/items/{item_id}")
    def item(item_id: int) -> dict[str, int]:
        raise RuntimeError("view failed")

    app.add_middleware(SecurityMiddleware, **otel.providers)
    response = TestClient(app, raise_server_exceptions=False).get("/items/7", params={"f": TRAVERSAL})
    assert response.status_code == 500
    assert_raised_request_is_a_500(otel, "/items/{item_id}")


def test_a_response_already_started_keeps_its_status(otel: Telemetry) -> None:
    """An exception after the status went out: the client got that status, and so do the metrics."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise RuntimeError("stream failed")

    client = TestClient(SecurityMiddleware(app, **otel.providers), raise_server_exceptions=False)
    client.get("/stream")
    [(attrs, _)] = requests_points(otel)
    assert attrs["http.response.status_code"] == 200
    assert "http_5xx" in {a["devsecmw.signal.type"] for a, _ in signal_points(otel)}


# ---------------------------------------------------------------------- a view raises: WSGI (Flask)
@pytest.mark.parametrize("propagate", [False, True], ids=["flask-handles", "flask-propagates"])
def test_flask_view_raises_metrics_carry_500(otel: Telemetry, propagate: bool) -> None:
    flask = pytest.importorskip("flask")
    from devsecmw.flask import init_app

    app = flask.Flask(__name__)
    app.config["PROPAGATE_EXCEPTIONS"] = propagate
    app.logger.disabled = True  # the view's traceback is expected

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> str:
        raise RuntimeError("view failed")

    init_app(app, **otel.providers)
    client = app.test_client()
    if propagate:  # the exception crosses devsecmw: the server answers 500
        with pytest.raises(RuntimeError, match="view failed"):
            client.get("/items/7", query_string={"f": TRAVERSAL})
    else:  # Flask answers 500 itself, through devsecmw
        response = client.get("/items/7", query_string={"f": TRAVERSAL})
        assert response.status_code == 500
        response.close()
    # Propagated, Flask has popped its request context before devsecmw sees the exception: no route.
    assert_raised_request_is_a_500(otel, None if propagate else "/items/<int:item_id>")


# ---------------------------------------------------------------------- a view raises: Django
@pytest.fixture
def django_settings(otel: Telemetry) -> Iterator[None]:
    pytest.importorskip("django")
    import django_app
    from django.test import override_settings

    django_app.setup()
    with override_settings(
        MIDDLEWARE=["devsecmw.django.SecurityMiddleware"], DEVSECMW={**otel.providers, "time_budget": 5.0}
    ):
        yield


@pytest.mark.parametrize("raise_request_exception", [False, True])
def test_django_view_raises_metrics_carry_500(
    otel: Telemetry, django_settings: None, raise_request_exception: bool
) -> None:
    from django.test import Client

    client = Client(raise_request_exception=raise_request_exception)
    if raise_request_exception:
        with pytest.raises(RuntimeError, match="view failed"):
            client.get("/boom/", {"f": TRAVERSAL})
    else:
        assert client.get("/boom/", {"f": TRAVERSAL}).status_code == 500
    assert_raised_request_is_a_500(otel, "boom/")  # the URL pattern, as Django names the route


# ---------------------------------------------------------------------- one count per request
async def ok(request: Request) -> Response:
    return PlainTextResponse("ok")


def test_one_request_counts_once_and_signals_keep_their_kind(otel: Telemetry) -> None:
    app = Starlette(routes=[Route("/files/{name}", ok)])
    app.add_middleware(SecurityMiddleware, **otel.providers)
    client = TestClient(app)
    # A traversal seen in two parameters and by several rules: several findings, one request.
    client.get("/files/a", params={"f": TRAVERSAL, "g": TRAVERSAL}, headers={"user-agent": "sqlmap/1.7"})
    client.get("/files/b")
    requests = requests_points(otel)
    assert sum(n for _, n in requests) == 2
    [(attack, n)] = [(a, n) for a, n in requests if a["devsecmw.classification"] == "attack"]
    assert n == 1 and attack["http.route"] == "/files/{name}"
    # sqlmap's user agent is a scanner signal; the specific attack is the request's primary type.
    assert attack["devsecmw.attack.type"] == "traversal"
    [(benign, _)] = [(a, n) for a, n in requests if a["devsecmw.classification"] == "benign"]
    assert "devsecmw.attack.type" not in benign
    signals = signal_points(otel)
    by_type = {a["devsecmw.signal.type"]: (a, n) for a, n in signals}
    assert by_type["traversal"][1] >= 2  # findings: one per parameter (and rule) at least
    assert sum(n for _, n in signals) > 1  # summing signals is not counting requests
    for signal_type, (attrs, _) in by_type.items():
        assert attrs["devsecmw.signal.kind"] == ("attack" if signal_type in ATTACK_TYPES else "anomaly")
        assert attrs["devsecmw.classification"] == "attack"  # the request's class, beside the kind
        assert "devsecmw.attack.type" not in attrs


def test_anomaly_signals_on_a_benign_route_are_anomaly_kind(otel: Telemetry) -> None:
    app = Starlette(routes=[Route("/files/{name}", ok)])
    app.add_middleware(SecurityMiddleware, **otel.providers)
    TestClient(app).get("/nowhere")
    [(attrs, _)] = signal_points(otel)
    assert attrs["devsecmw.signal.type"] == "http_404"
    assert attrs["devsecmw.signal.kind"] == "anomaly"
    [(request, _)] = requests_points(otel)
    assert request["devsecmw.classification"] == "anomaly" and "devsecmw.attack.type" not in request


def s(signal_type: str, severity: Severity = Severity.CRITICAL) -> Signal:
    return Signal(signal_type, "query:x", "", severity)


@pytest.mark.parametrize(
    ("signals", "expected"),
    [
        ([], None),
        ([s("http_5xx"), s("attack_5xx"), s("client_flagged")], None),
        ([s("scanner"), s("sqli")], "sqli"),  # specific before how it was sent
        ([s("protocol"), s("scanner", Severity.WARNING)], "protocol"),  # both generic: severity
        ([s("rfi", Severity.WARNING), s("xss", Severity.ERROR)], "xss"),  # severity
        ([s("xss"), s("sqli")], "sqli"),  # a tie: SPEC.md's order, whatever the detection order
        ([s("sqli"), s("xss")], "sqli"),
        ([s("made_up_by_a_plugin"), s("scanner")], "scanner"),  # never a type outside the vocabulary
    ],
)
def test_primary_attack_type(signals: list[Signal], expected: str | None) -> None:
    assert telemetry.primary_attack_type(signals) == expected


# ---------------------------------------------------------------------- route under an outer instrumentation
def test_route_on_devsecmw_metrics_under_the_otel_asgi_middleware(otel: Telemetry) -> None:
    otel_asgi = pytest.importorskip("opentelemetry.instrumentation.asgi")
    inner = Starlette(routes=[Route("/users/{uid}", ok)])
    inner.add_middleware(SecurityMiddleware, **otel.providers)
    app = otel_asgi.OpenTelemetryMiddleware(inner, **otel.providers)
    TestClient(app).get("/users/42", params={"q": SQLI})
    [(attrs, _)] = requests_points(otel)
    assert attrs["http.route"] == "/users/{uid}"
    assert attrs["devsecmw.attack.type"] == "sqli"
    assert all(a["http.route"] == "/users/{uid}" for a, _ in signal_points(otel))


# ---------------------------------------------------------------------- blocked
def test_blocked_and_would_block_are_countable(otel: Telemetry) -> None:
    routes = [Route("/items/{item_id}", ok)]
    blocking = Starlette(routes=routes)
    blocking.add_middleware(SecurityMiddleware, **otel.providers, mode="block")
    monitoring = Starlette(routes=routes)
    monitoring.add_middleware(SecurityMiddleware, **otel.providers)
    assert TestClient(blocking).get("/items/1", params={"q": SQLI}).status_code == 403
    assert TestClient(monitoring).get("/items/1", params={"q": SQLI}).status_code == 200
    TestClient(monitoring).get("/items/2")
    points = requests_points(otel)
    blocked = [a for a, _ in points if a.get("devsecmw.blocked")]
    would = [a for a, _ in points if a.get("devsecmw.would_block") and not a.get("devsecmw.blocked")]
    assert len(blocked) == 1 and blocked[0]["http.response.status_code"] == 403
    assert len(would) == 1 and would[0]["http.response.status_code"] == 200
    [benign] = [a for a, _ in points if a["devsecmw.classification"] == "benign"]
    assert "devsecmw.blocked" not in benign and "devsecmw.would_block" not in benign


# ---------------------------------------------------------------------- exemplars, histogram
def test_counters_carry_the_trace_of_a_sampled_request_as_exemplar(otel: Telemetry) -> None:
    app = Starlette(routes=[Route("/items/{item_id}", boom)])
    app.add_middleware(SecurityMiddleware, **otel.providers)
    TestClient(app, raise_server_exceptions=False).get("/items/7", params={"f": TRAVERSAL})
    trace_id = otel.span().context.trace_id
    [(_, point)] = [
        (a, p) for a, p in otel.metric_points("devsecmw.signals") if a["devsecmw.signal.type"] == "attack_5xx"
    ]
    assert point.exemplars, "no exemplar on attack_5xx"
    assert {e.trace_id for e in point.exemplars} == {trace_id}
    [(_, request_point)] = otel.metric_points("devsecmw.requests")
    assert {e.trace_id for e in request_point.exemplars} == {trace_id}


def test_unsampled_requests_leave_no_exemplar() -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    reader = InMemoryMetricReader()
    app = Starlette(routes=[Route("/items/{item_id}", ok)])
    app.add_middleware(
        SecurityMiddleware,
        tracer_provider=TracerProvider(sampler=ALWAYS_OFF),
        meter_provider=MeterProvider(metric_readers=[reader]),
    )
    TestClient(app).get("/items/1", params={"q": SQLI})
    data = reader.get_metrics_data()
    assert data is not None
    points = [
        p
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name in ("devsecmw.requests", "devsecmw.signals")
        for p in m.data.data_points
    ]
    assert points and all(not p.exemplars for p in points)


def test_inspection_histogram_has_second_buckets_for_a_p99(otel: Telemetry) -> None:
    app = Starlette(routes=[Route("/items/{item_id}", ok)])
    app.add_middleware(SecurityMiddleware, **otel.providers)
    client = TestClient(app)
    for i in range(20):
        client.get(f"/items/{i}")
    [(attrs, point)] = otel.metric_points("devsecmw.inspection.duration")
    assert point.count == 20
    # The advisory buckets, not the SDK's default (0, 5, 10 ... 10000: milliseconds, where the
    # unit is seconds, would put every request in the first bucket and make a p99 meaningless).
    assert tuple(point.explicit_bounds) == telemetry.DURATION_BUCKETS
    # The buckets reach past the default time budget, so a p99 is never clamped below it.
    from devsecmw.config import Config

    assert telemetry.DURATION_BUCKETS[-1] > Config().time_budget
    assert set(attrs) == {"http.request.method", "http.route", "devsecmw.classification"}
    assert sum(point.bucket_counts) == 20


def test_metrics_are_collected_across_event_loops(otel: Telemetry) -> None:
    """The totals are plain locked integers: requests on separate event loops add up."""
    app = SecurityMiddleware(Starlette(routes=[Route("/r", ok)]), **otel.providers)

    async def one() -> None:
        messages = [{"type": "http.request", "body": b"", "more_body": False}]

        async def receive() -> Any:
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        async def send(message: Any) -> None:
            return None

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/r",
            "raw_path": b"/r",
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"t")],
            "client": ("127.0.0.1", 1),
            "server": ("t", 80),
        }
        await app(scope, receive, send)

    for _ in range(3):
        asyncio.run(one())
    [(attrs, n)] = requests_points(otel)
    assert n == 3 and attrs["http.route"] == "/r"

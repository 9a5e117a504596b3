"""devsecmw and OpenTelemetry's ASGI/FastAPI instrumentation (PITFALLS 6 and 7).

One server span either way: with the OpenTelemetry middleware outside,
devsecmw enriches its span; with devsecmw outside, devsecmw's span is the
server span and OpenTelemetry's becomes INTERNAL. The context is attached and
detached symmetrically, and raw paths never name a span.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from asgi_harness import (
    App,
    drive,
    make_scope,
    steady_time_budget,  # noqa: F401  (autouse: load-independent detection)
)
from fastapi import FastAPI
from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.trace import SpanKind, StatusCode
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from devsecmw.asgi import SecurityMiddleware

SQLI = b"id=1%27%20UNION%20SELECT%20password%20FROM%20users--"


def starlette_app(seen_spans: list[Any] | None = None) -> Starlette:
    async def item(request: Request) -> Response:
        if seen_spans is not None:
            seen_spans.append(trace.get_current_span())
        return PlainTextResponse(f"item {request.path_params['item_id']}")

    async def fail(request: Request) -> Response:
        return PlainTextResponse("down", status_code=503)

    async def raises(request: Request) -> Response:
        raise ZeroDivisionError("bug")

    async def stream(request: Request) -> Response:
        async def gen() -> AsyncIterator[bytes]:
            for i in range(3):
                yield b"%d" % i

        return StreamingResponse(gen())

    return Starlette(
        routes=[
            Route("/items/{item_id}", item),
            Route("/fail", fail),
            Route("/raise", raises),
            Route("/stream", stream),
        ]
    )


def otel_mw(app: App, otel: Any) -> App:
    return OpenTelemetryMiddleware(
        app, tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider
    )


# --------------------------------------------------------------------------- our own SERVER span
def test_own_server_span_follows_http_semconv(otel: Any) -> None:
    headers = [(b"user-agent", b"Mozilla/5.0 (X11; Linux)")]
    ex = drive(
        SecurityMiddleware(starlette_app(), **otel.providers),
        make_scope("GET", "/items/12345", query=SQLI, headers=headers),
    )
    assert ex.sent[0]["status"] == 200
    [span] = otel.server_spans()
    assert span.kind == SpanKind.SERVER
    assert span.name == "GET /items/{item_id}"
    attrs = span.attributes
    assert attrs["http.request.method"] == "GET"
    assert attrs["url.path"] == "/items/12345"
    assert attrs["url.scheme"] == "http"
    assert attrs["http.route"] == "/items/{item_id}"
    assert attrs["http.response.status_code"] == 200
    assert attrs["client.address"] == "10.1.2.3"
    assert attrs["user_agent.original"] == "Mozilla/5.0 (X11; Linux)"
    assert "error.type" not in attrs
    assert span.status.status_code == StatusCode.UNSET
    assert "sqli" in attrs["devsecmw.signal.types"]


def test_5xx_sets_error_type_and_error_status(otel: Any) -> None:
    drive(SecurityMiddleware(starlette_app(), **otel.providers), make_scope("GET", "/fail"))
    [span] = otel.server_spans()
    assert span.attributes["error.type"] == "503"
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes["http.response.status_code"] == 503


def test_4xx_is_not_a_server_error(otel: Any) -> None:
    drive(SecurityMiddleware(starlette_app(), **otel.providers), make_scope("GET", "/nowhere/42"))
    [span] = otel.server_spans()
    assert span.status.status_code == StatusCode.UNSET
    assert "error.type" not in span.attributes
    assert span.name == "GET"  # no route matched: the method alone, never the raw path
    assert "http.route" not in span.attributes


def test_exception_is_recorded_on_the_span(otel: Any) -> None:
    from starlette.middleware.exceptions import ExceptionMiddleware

    # Only the router, so the exception reaches devsecmw before any error page is sent.
    inner = ExceptionMiddleware(starlette_app().router)
    ex = drive(SecurityMiddleware(inner, **otel.providers), make_scope("GET", "/raise"))
    assert isinstance(ex.exception, ZeroDivisionError)
    [span] = otel.server_spans()
    assert span.attributes["error.type"] == "ZeroDivisionError"
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes["http.route"] == "/raise"
    assert any(e.name == "exception" for e in span.events)


def test_incoming_traceparent_is_the_parent(otel: Any) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    headers = [(b"traceparent", f"00-{trace_id}-00f067aa0ba902b7-01".encode())]
    drive(
        SecurityMiddleware(starlette_app(), **otel.providers), make_scope("GET", "/items/1", headers=headers)
    )
    [span] = otel.server_spans()
    assert format(span.context.trace_id, "032x") == trace_id
    assert span.parent is not None and format(span.parent.span_id, "016x") == "00f067aa0ba902b7"


def test_header_bytes_are_decoded_as_latin1(otel: Any) -> None:
    headers = [(b"user-agent", b"Bot\xe9\xff/1.0")]
    drive(
        SecurityMiddleware(starlette_app(), **otel.providers), make_scope("GET", "/items/1", headers=headers)
    )
    assert otel.span().attributes["user_agent.original"] == "Bot\xe9\xff/1.0"


def test_the_app_runs_under_devsecmw_span(otel: Any) -> None:
    seen: list[Any] = []
    drive(SecurityMiddleware(starlette_app(seen), **otel.providers), make_scope("GET", "/items/1"))
    [span] = otel.server_spans()
    assert seen[0].get_span_context().span_id == span.context.span_id


# --------------------------------------------------------------------------- context symmetry
def around(app: App, before_after: list[Any]) -> App:
    """An outer layer that records the current context before and after the inner app ran."""

    async def outer(scope: Any, receive: Any, send: Any) -> None:
        token = otel_context.attach(baggage.set_baggage("marker", "outer"))
        before_after.append(otel_context.get_current())
        try:
            await app(scope, receive, send)
        finally:
            before_after.append(otel_context.get_current())
            otel_context.detach(token)

    return outer


@pytest.mark.parametrize("path", ["/items/1", "/fail", "/raise", "/stream"])
@pytest.mark.parametrize("layout", ["alone", "inside-otel", "outside-otel"])
def test_context_is_attached_and_detached_symmetrically(otel: Any, path: str, layout: str) -> None:
    from starlette.middleware.exceptions import ExceptionMiddleware

    inner = ExceptionMiddleware(starlette_app().router)
    if layout == "alone":
        app = SecurityMiddleware(inner, **otel.providers)
    elif layout == "inside-otel":
        app = otel_mw(SecurityMiddleware(inner, **otel.providers), otel)
    else:
        app = SecurityMiddleware(otel_mw(inner, otel), **otel.providers)
    snapshots: list[Any] = []
    drive(around(app, snapshots), make_scope("GET", path))
    before, after = snapshots
    assert after is before or after == before
    assert baggage.get_baggage("marker", after) == "outer"
    assert len(otel.server_spans()) == 1


# --------------------------------------------------------------------------- OpenTelemetryMiddleware
def test_inside_otel_middleware_enriches_its_server_span(otel: Any) -> None:
    seen: list[Any] = []
    app = otel_mw(SecurityMiddleware(starlette_app(seen), **otel.providers), otel)
    ex = drive(app, make_scope("GET", "/items/7", query=SQLI))
    assert ex.sent[0]["status"] == 200
    servers = otel.server_spans()
    assert len(servers) == 1
    [server] = servers
    # OpenTelemetry's span carries devsecmw's verdict and events; devsecmw started none.
    assert server.instrumentation_scope.name == "opentelemetry.instrumentation.asgi"
    assert server.attributes["devsecmw.classification"] == "attack"
    assert any(e.attributes["devsecmw.signal.type"] == "sqli" for e in server.events if e.attributes)
    assert not [s for s in otel.spans() if s.instrumentation_scope.name == "devsecmw"]
    assert seen[0].get_span_context().span_id == server.context.span_id


def test_inside_otel_middleware_on_error_status(otel: Any) -> None:
    app = otel_mw(SecurityMiddleware(starlette_app(), **otel.providers), otel)
    drive(app, make_scope("GET", "/fail", query=SQLI))
    [server] = otel.server_spans()
    assert {"sqli", "http_5xx", "attack_5xx"} <= set(server.attributes["devsecmw.signal.types"])
    # The metrics use the status devsecmw observed.
    statuses = {p[0].get("http.response.status_code") for p in otel.metric_points("devsecmw.requests")}
    assert statuses == {503}


def test_outside_otel_middleware_turns_its_span_internal(otel: Any) -> None:
    app = SecurityMiddleware(otel_mw(starlette_app(), otel), **otel.providers)
    drive(app, make_scope("GET", "/items/7", query=SQLI))
    servers = otel.server_spans()
    assert len(servers) == 1
    [server] = servers
    assert server.instrumentation_scope.name == "devsecmw"
    assert server.attributes["devsecmw.classification"] == "attack"
    assert server.name == "GET /items/{item_id}"
    otel_spans = [
        s
        for s in otel.spans()
        if s.instrumentation_scope.name == "opentelemetry.instrumentation.asgi"
        and s.parent is not None
        and s.parent.span_id == server.context.span_id
    ]
    assert otel_spans and all(s.kind == SpanKind.INTERNAL for s in otel_spans)
    assert {s.context.trace_id for s in otel.spans()} == {server.context.trace_id}


# --------------------------------------------------------------------------- FastAPIInstrumentor
def fastapi_app() -> FastAPI:
    app = FastAPI()

    @app.get("/users/{user_id}")
    async def user(user_id: int) -> dict[str, int]:
        return {"id": user_id}

    @app.get("/teapot")
    async def teapot() -> Response:
        return PlainTextResponse("short and stout", status_code=418)

    return app


@pytest.fixture
def instrumented(otel: Any) -> Any:
    apps: list[FastAPI] = []

    def instrument(app: FastAPI) -> FastAPI:
        FastAPIInstrumentor.instrument_app(
            app, tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider
        )
        apps.append(app)
        return app

    yield instrument
    for app in apps:
        FastAPIInstrumentor.uninstrument_app(app)


def test_fastapi_instrumentor_with_devsecmw_added_as_middleware(otel: Any, instrumented: Any) -> None:
    app = fastapi_app()
    app.add_middleware(SecurityMiddleware, **otel.providers)
    instrumented(app)
    ex = drive(app, make_scope("GET", "/users/31337", query=SQLI))
    assert ex.sent[0]["status"] == 200
    [server] = otel.server_spans()
    assert server.instrumentation_scope.name == "opentelemetry.instrumentation.fastapi"
    assert server.name == "GET /users/{user_id}"
    assert "sqli" in server.attributes["devsecmw.signal.types"]
    routes = {p[0].get("http.route") for p in otel.metric_points("devsecmw.requests")}
    assert routes == {"/users/{user_id}"}


def test_fastapi_instrumentor_inside_devsecmw(otel: Any, instrumented: Any) -> None:
    app = SecurityMiddleware(instrumented(fastapi_app()), **otel.providers)
    drive(app, make_scope("GET", "/users/31337", query=SQLI))
    [server] = otel.server_spans()
    assert server.instrumentation_scope.name == "devsecmw"
    assert server.name == "GET /users/{user_id}"
    inner = [
        s for s in otel.spans() if s.instrumentation_scope.name == "opentelemetry.instrumentation.fastapi"
    ]
    assert inner and all(s.kind == SpanKind.INTERNAL for s in inner)


def test_fastapi_instrumentor_non_error_4xx(otel: Any, instrumented: Any) -> None:
    app = fastapi_app()
    app.add_middleware(SecurityMiddleware, **otel.providers)
    instrumented(app)
    drive(app, make_scope("GET", "/teapot"))
    [server] = otel.server_spans()
    assert server.attributes["devsecmw.classification"] == "benign"
    assert otel.metric_points("devsecmw.requests")[0][0]["http.response.status_code"] == 418


@pytest.mark.parametrize(
    ("path", "expected"),
    [("/stream", {"sqli"}), ("/fail", {"sqli", "http_5xx", "attack_5xx"}), ("/raise", {"sqli", "http_5xx"})],
)
def test_inside_otel_middleware_the_verdict_lands_before_its_span_ends(
    otel: Any, path: str, expected: set[str]
) -> None:
    """OpenTelemetry's middleware ends its span as the last body message passes through it."""
    from starlette.middleware.exceptions import ExceptionMiddleware

    inner = ExceptionMiddleware(starlette_app().router)
    drive(otel_mw(SecurityMiddleware(inner, **otel.providers), otel), make_scope("GET", path, query=SQLI))
    [server] = otel.server_spans()
    assert expected <= set(server.attributes["devsecmw.signal.types"])
    assert {
        e.attributes["devsecmw.signal.type"] for e in server.events if e.name == "devsecmw.signal"
    } >= expected


# --------------------------------------------------------------------------- the server's context
def test_the_servers_send_and_receive_run_in_the_servers_context(otel: Any) -> None:
    """uvicorn starts the next keep-alive request from inside ``send``: it must not inherit our span."""
    import asyncio

    inherited: list[Any] = []

    async def main() -> None:
        spawned: list[asyncio.Task[None]] = []

        async def next_request() -> None:
            inherited.append(trace.get_current_span())

        async def receive() -> Any:
            inherited.append(trace.get_current_span())
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Any) -> None:
            if message["type"] == "http.response.body":
                spawned.append(asyncio.get_running_loop().create_task(next_request()))

        app = SecurityMiddleware(starlette_app(), **otel.providers)
        await app(make_scope("POST", "/items/1"), receive, send)
        await asyncio.gather(*spawned)

    asyncio.run(main())
    assert inherited and all(s is trace.INVALID_SPAN for s in inherited)
    assert len(otel.server_spans()) == 1


def test_a_current_span_that_is_not_recording_does_not_swallow_the_request(otel: Any) -> None:
    """An ended span left current (leaked by some other layer) is not an instrumentation to enrich."""
    stale = otel.tracer_provider.get_tracer("other").start_span("previous request")
    stale.end()

    async def leaky(scope: Any, receive: Any, send: Any) -> None:
        token = otel_context.attach(trace.set_span_in_context(stale))
        try:
            await SecurityMiddleware(starlette_app(), **otel.providers)(scope, receive, send)
        finally:
            otel_context.detach(token)

    drive(leaky, make_scope("GET", "/items/1", query=SQLI))
    ours = [s for s in otel.server_spans() if s.instrumentation_scope.name == "devsecmw"]
    assert len(ours) == 1
    assert "sqli" in ours[0].attributes["devsecmw.signal.types"]

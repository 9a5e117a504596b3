"""devsecmw inside and outside OpenTelemetry's WSGI middleware: one SERVER span either way,
carrying devsecmw's attributes, with context attached and detached symmetrically."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from devsecmw.config import Config
from devsecmw.engine import Engine
from devsecmw.wsgi import SecurityMiddleware

otel_wsgi = pytest.importorskip("opentelemetry.instrumentation.wsgi")

# Inspection stops after a wall-clock budget (10 ms by default): on a loaded test machine that
# would make detection assertions depend on timing, so the adapter tests give it ample room.
# One engine (rules compiled once) serves the module; a few tests build their own on purpose.
STEADY: dict[str, Any] = {"time_budget": 5.0, "detector": Engine(Config())}

SQLI_QUERY = "q=1%27%20UNION%20SELECT%20password%20FROM%20users--"


def environ_for(query: str = "", body: bytes = b"") -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "POST" if body else "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/search",
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "10.0.0.1",
        "HTTP_HOST": "example.test",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }


def make_app(status: str = "200 OK", seen: list[Any] | None = None) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        if seen is not None:
            seen.append(trace.get_current_span())
        start_response(status, [("Content-Type", "text/plain")])
        yield b"first "
        if seen is not None:
            seen.append(trace.get_current_span())
        yield b"second"

    return app


def serve(app: Any, environ: dict[str, Any]) -> tuple[str, bytes]:
    got: list[str] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        got.append(status)
        return lambda data: None

    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return got[-1], body


def otel_middleware(app: Any, otel: Any) -> Any:
    return otel_wsgi.OpenTelemetryMiddleware(app, **otel.providers)


@pytest.mark.parametrize("where", ["devsecmw inside", "devsecmw outside"])
@pytest.mark.parametrize("status", ["200 OK", "500 Internal Server Error"])
def test_one_server_span_with_devsecmw_attributes(where: str, status: str, otel: Any) -> None:
    seen: list[Any] = []
    app = make_app(status, seen)
    if where == "devsecmw inside":
        stack = otel_middleware(SecurityMiddleware(app, **otel.providers, **STEADY), otel)
    else:
        stack = SecurityMiddleware(otel_middleware(app, otel), **otel.providers, **STEADY)
    assert serve(stack, environ_for(SQLI_QUERY)) == (status, b"first second")
    assert not trace.get_current_span().get_span_context().is_valid  # everything detached

    servers = otel.server_spans()
    assert len(servers) == 1
    server = servers[0]
    assert server.attributes["devsecmw.classification"] == "attack"
    assert "sqli" in server.attributes["devsecmw.signal.types"]
    assert any(e.name == "devsecmw.signal" for e in server.events)
    assert server.attributes[
        "http.response.status_code" if where == "devsecmw outside" else "http.status_code"
    ]
    if status.startswith("500"):
        assert "attack_5xx" in server.attributes["devsecmw.signal.types"]

    # The app's first step ran under the innermost span. (OpenTelemetry's WSGI middleware keeps its
    # span attached across its generator's yields; devsecmw's attach/detach around each next()
    # undoes that between chunks, so a later step may see devsecmw's span: same trace, never none.)
    innermost = otel.spans()[0]  # the inner span ends first
    assert seen[0].get_span_context().span_id == innermost.context.span_id
    assert {s.get_span_context().span_id for s in seen} <= {s.context.span_id for s in otel.spans()}
    if where == "devsecmw outside":
        inner = next(s for s in otel.spans() if s.kind == SpanKind.INTERNAL)
        assert inner.parent is not None and inner.parent.span_id == server.context.span_id


def test_inner_instrumentation_sees_devsecmw_as_parent_context(otel: Any) -> None:
    tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    env = environ_for()
    env["HTTP_TRACEPARENT"] = tp
    stack = SecurityMiddleware(otel_middleware(make_app(), otel), **otel.providers, **STEADY)
    serve(stack, env)
    assert {f"{s.context.trace_id:032x}" for s in otel.spans()} == {"0af7651916cd43dd8448eb211c80319c"}


def test_devsecmw_inside_writes_its_verdict_before_the_outer_span_ends(otel: Any) -> None:
    stack = otel_middleware(SecurityMiddleware(make_app(), **otel.providers, **STEADY), otel)
    result = stack(environ_for(SQLI_QUERY), lambda s, h, e=None: lambda d: None)
    it = iter(result)
    next(it)
    result.close()  # the server stops early: devsecmw still records on the outer span
    (server,) = otel.server_spans()
    assert server.attributes["devsecmw.classification"] == "attack"


def test_flask_behind_otel_wsgi_middleware_gets_the_route(otel: Any) -> None:
    flask = pytest.importorskip("flask")
    app = flask.Flask("otel_wsgi_flask")

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> str:
        return str(item_id)

    app.wsgi_app = SecurityMiddleware(app.wsgi_app, **otel.providers, **STEADY)  # type: ignore[method-assign]
    stack = otel_middleware(app.wsgi_app, otel)
    env = environ_for(SQLI_QUERY)
    env["PATH_INFO"] = "/items/9"
    assert serve(stack, env) == ("200 OK", b"9")
    (server,) = otel.server_spans()
    assert server.attributes["devsecmw.classification"] == "attack"
    routes = {a.get("http.route") for a, _ in otel.metric_points("devsecmw.requests")}
    assert routes == {"/items/<int:item_id>"}

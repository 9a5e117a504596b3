"""Flask behind ``app.wsgi_app = SecurityMiddleware(app.wsgi_app)`` and ``devsecmw.flask.init_app``:
route templates, response signals, transparency (test client and httpx), OpenTelemetry's Flask
instrumentation in either order."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

flask = pytest.importorskip("flask")

from opentelemetry.trace import SpanKind  # noqa: E402

from devsecmw.config import Config  # noqa: E402
from devsecmw.engine import Budget, Engine  # noqa: E402
from devsecmw.flask import current_route, init_app, uninit_app  # noqa: E402
from devsecmw.request import HttpRequest  # noqa: E402
from devsecmw.signals import Signal  # noqa: E402
from devsecmw.wsgi import SecurityMiddleware  # noqa: E402

# Inspection stops after a wall-clock budget (10 ms by default): on a loaded test machine that
# would make detection assertions depend on timing, so the adapter tests give it ample room.
# One engine (rules compiled once) serves the module; a few tests build their own on purpose.
STEADY: dict[str, Any] = {"time_budget": 5.0, "detector": Engine(Config())}

SQLI_Q = "1' UNION SELECT password FROM users--"
BIG = bytes(range(256)) * 4096  # 1 MiB
CLOSED: list[str] = []


def make_app() -> Any:
    app = flask.Flask("devsecmw_test_app")

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> Any:
        return {"id": item_id, "q": flask.request.args.get("q", "")}

    @app.post("/echo")
    def echo() -> Any:
        return flask.request.get_data()

    @app.post("/chunks")
    def chunks() -> Any:
        stream = flask.request.stream
        total = b"".join(iter(lambda: stream.read(4096), b""))
        return f"{len(total)} {hashlib.sha256(total).hexdigest()}"

    @app.post("/form")
    def form() -> Any:
        return flask.request.form.get("q", "")

    @app.post("/upload")
    def upload() -> Any:
        data = flask.request.files["file"].read()
        return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}

    @app.get("/stream")
    def stream() -> Any:
        @flask.stream_with_context
        def gen() -> Iterator[str]:
            for i in range(5):
                yield f"data: {i} {flask.request.path}\n\n"

        return flask.Response(gen(), mimetype="text/event-stream")

    @app.get("/closing")
    def closing() -> Any:
        response = flask.make_response("bye")
        response.call_on_close(lambda: CLOSED.append("closed"))
        return response

    @app.get("/file")
    def file() -> Any:
        return flask.send_file(io.BytesIO(BIG[:50_000]), mimetype="application/octet-stream", etag="v1")

    @app.route("/head", methods=["GET", "HEAD"])
    def head() -> Any:
        return "a body"

    @app.get("/boom")
    def boom() -> Any:
        raise RuntimeError("view failed")

    @app.get("/status/<int:code>")
    def status(code: int) -> Any:
        flask.abort(code)

    @app.get("/route")
    def route() -> Any:
        return current_route() or ""

    return app


class Broken:
    def inspect(self, request: HttpRequest, phase: str, budget: Budget | None = None) -> list[Signal]:
        raise RuntimeError("detector bug")


def done(response: Any) -> Any:
    """Read and close a test-client response, as a server would (the span ends with the body)."""
    response.get_data()
    response.close()
    return response


def wrapped(otel: Any, **options: Any) -> Any:
    app = make_app()
    app.wsgi_app = SecurityMiddleware(app.wsgi_app, **otel.providers, **{**STEADY, **options})  # type: ignore[method-assign]
    return app


def httpx_client(app: Any) -> httpx.Client:
    return httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://testserver")


# ---------------------------------------------------------------------- route and signals
def test_route_template_is_http_route(otel: Any) -> None:
    app = wrapped(otel, detector=None)  # the default: an engine built from the options
    response = app.test_client().get("/items/42", query_string={"q": SQLI_Q})
    assert response.status_code == 200 and response.get_json() == {"id": 42, "q": SQLI_Q}
    span = otel.span()
    assert span.kind == SpanKind.SERVER
    assert span.attributes["http.route"] == "/items/<int:item_id>"
    assert span.name == "GET /items/<int:item_id>"
    assert "sqli" in otel.signal_types()
    assert {a.get("http.route") for a, _ in otel.metric_points("devsecmw.requests")} == {
        "/items/<int:item_id>"
    }


def test_through_httpx_wsgi_transport(otel: Any) -> None:
    with httpx_client(wrapped(otel)) as client:
        response = client.get("/items/7", params={"q": "<script>alert(1)</script>"})
    assert response.status_code == 200
    assert otel.span().attributes["http.route"] == "/items/<int:item_id>"
    assert "xss" in otel.signal_types()


def test_unrouted_path_has_no_route_and_is_a_404(otel: Any) -> None:
    app = wrapped(otel)
    assert done(app.test_client().get("/no/such/thing/123")).status_code == 404
    span = otel.span()
    assert "http.route" not in span.attributes
    assert otel.signal_types() == {"http_404"}


def test_current_route_outside_a_request_is_none() -> None:
    assert current_route() is None
    app = make_app()
    assert app.test_client().get("/route").data == b"/route"


def test_body_attack_in_a_form(otel: Any) -> None:
    app = wrapped(otel)
    response = done(app.test_client().post("/form", data={"q": SQLI_Q}))
    assert response.data == SQLI_Q.encode()
    assert any(e["devsecmw.signal.location"] == "body:form:q" for e in otel.events())


@pytest.mark.parametrize(
    ("code", "signal"),
    [
        (500, "http_5xx"),
        (503, "http_5xx"),
        (404, "http_404"),
        (401, "auth_failure"),
        (403, "auth_failure"),
        (429, "rate_limited"),
    ],
)
def test_response_signals(code: int, signal: str, otel: Any) -> None:
    app = wrapped(otel)
    assert done(app.test_client().get(f"/status/{code}")).status_code == code
    assert otel.signal_types() == {signal}
    assert otel.span().attributes["http.route"] == "/status/<int:code>"


def test_view_exception_is_a_500_and_attack_5xx(otel: Any) -> None:
    app = wrapped(otel)
    assert done(app.test_client().get("/boom", query_string={"q": SQLI_Q})).status_code == 500
    assert {"sqli", "http_5xx", "attack_5xx"} <= otel.signal_types()


def test_propagated_exception_passes_through_unchanged(otel: Any) -> None:
    app = wrapped(otel)
    app.testing = True  # Flask re-raises instead of answering 500
    with pytest.raises(RuntimeError, match="view failed"):
        app.test_client().get("/boom")
    span = otel.span()
    assert span.attributes["error.type"] == "RuntimeError"
    assert "http_5xx" in otel.signal_types()


def test_streaming_span_ends_after_the_last_chunk(otel: Any) -> None:
    app = wrapped(otel)
    response = app.test_client().get("/stream", buffered=False)
    it = iter(response.response)
    assert next(it) == b"data: 0 /stream\n\n"
    assert otel.spans() == []
    rest = b"".join(it)
    assert rest.endswith(b"data: 4 /stream\n\n")
    response.close()
    assert otel.span().attributes["http.route"] == "/stream"


# ---------------------------------------------------------------------- init_app
def test_init_app_is_idempotent_and_reversible(otel: Any) -> None:
    app = make_app()
    original = app.wsgi_app
    first = init_app(app, **otel.providers, **STEADY)
    assert init_app(app, **otel.providers, **STEADY) is first
    assert app.wsgi_app is first and first.app == original
    done(app.test_client().get("/items/1"))
    assert len(otel.spans()) == 1
    uninit_app(app)
    assert app.wsgi_app == original
    uninit_app(app)  # a second undo is a no-op
    done(app.test_client().get("/items/1"))
    assert len(otel.spans()) == 1


def test_init_app_leaves_a_hand_wrapped_app_alone(otel: Any) -> None:
    app = wrapped(otel)
    mw = app.wsgi_app
    assert init_app(app) is mw
    uninit_app(app)  # not installed by init_app: nothing to undo
    assert app.wsgi_app is mw


def test_uninit_with_a_wrapper_on_top_turns_devsecmw_into_a_pass_through(otel: Any) -> None:
    app = make_app()
    init_app(app, **otel.providers, **STEADY)
    inner = app.wsgi_app

    def outer(environ: dict[str, Any], start_response: Any) -> Any:
        environ["outer.seen"] = True
        return inner(environ, start_response)

    app.wsgi_app = outer  # type: ignore[method-assign]
    uninit_app(app)
    assert app.wsgi_app is outer  # the other wrapper survives
    assert done(app.test_client().get("/items/1")).status_code == 200
    assert otel.spans() == []


# ---------------------------------------------------------------------- OpenTelemetry's Flask instrumentation
@pytest.fixture
def instrumentor() -> Iterator[Any]:
    pytest.importorskip("opentelemetry.instrumentation.flask")
    from opentelemetry.instrumentation.flask import FlaskInstrumentor

    apps: list[Any] = []
    yield FlaskInstrumentor, apps
    for app in apps:
        FlaskInstrumentor.uninstrument_app(app)


@pytest.mark.parametrize("order", ["instrument first", "devsecmw first"])
def test_flask_instrumentor_in_either_order_one_server_span(order: str, otel: Any, instrumentor: Any) -> None:
    FlaskInstrumentor, apps = instrumentor
    app = make_app()
    apps.append(app)
    if order == "instrument first":
        FlaskInstrumentor.instrument_app(app, **otel.providers)
        init_app(app, **otel.providers, **STEADY)
    else:
        init_app(app, **otel.providers, **STEADY)
        FlaskInstrumentor.instrument_app(app, **otel.providers)
    response = done(app.test_client().get("/items/5", query_string={"q": SQLI_Q}))
    assert response.status_code == 200
    servers = otel.server_spans()
    assert len(servers) == 1
    server = servers[0]
    assert server.attributes["devsecmw.classification"] == "attack"
    assert server.attributes["http.route"] == "/items/<int:item_id>"
    flask_spans = [s for s in otel.spans() if s.instrumentation_scope.name.endswith("flask")]
    assert len(flask_spans) == 1 and flask_spans[0].kind == SpanKind.INTERNAL
    assert flask_spans[0].parent is not None and flask_spans[0].parent.span_id == server.context.span_id
    assert otel.span() is server or otel.span().context.span_id == server.context.span_id


# ---------------------------------------------------------------------- transparency
Call = Callable[[Any], Any]
TCASES: list[tuple[str, Call]] = [
    ("get", lambda c: c.get("/items/3", query_string={"q": "a b"})),
    ("attack", lambda c: c.get("/items/3", query_string={"q": SQLI_Q})),
    ("echo 1MiB", lambda c: c.post("/echo", data=BIG)),
    ("stream 1MiB", lambda c: c.post("/chunks", data=BIG)),
    (
        "chunked input",
        lambda c: c.post(
            "/chunks",
            input_stream=io.BytesIO(BIG[:100_000]),
            headers={"Transfer-Encoding": "chunked"},
            environ_overrides={"CONTENT_LENGTH": "", "wsgi.input_terminated": True},
        ),
    ),
    ("empty POST with Content-Length", lambda c: c.post("/echo", data=b"")),
    ("empty POST without Content-Length", lambda c: c.post("/echo")),
    ("form", lambda c: c.post("/form", data={"q": "it's a 'quote'"})),
    (
        "upload",
        # Under Werkzeug's 500 kB threshold: bigger test uploads go to a temporary file the test
        # client never closes (a ResourceWarning with or without devsecmw).
        lambda c: c.post(
            "/upload",
            data={"file": (io.BytesIO(BIG[:300_000]), "big.bin")},
            content_type="multipart/form-data",
        ),
    ),
    ("streaming", lambda c: c.get("/stream")),
    ("file", lambda c: c.get("/file")),
    ("304", lambda c: c.get("/file", headers={"If-None-Match": '"v1"'})),
    ("HEAD", lambda c: c.head("/head")),
    ("view raises", lambda c: c.get("/boom")),
    ("404", lambda c: c.get("/nowhere")),
    ("429", lambda c: c.get("/status/429")),
]


def _snapshot(response: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    body = response.get_data()
    response.close()
    headers = sorted((k, v) for k, v in response.headers.items() if k != "Date")  # a clock, not us
    return response.status_code, headers, body


@pytest.mark.parametrize("call", [c[1] for c in TCASES], ids=[c[0] for c in TCASES])
def test_test_client_transparency(call: Call, otel: Any) -> None:
    plain = _snapshot(call(make_app().test_client()))
    devsecmw = _snapshot(call(wrapped(otel).test_client()))
    assert devsecmw == plain
    assert len(otel.spans()) == 1


HCASES: list[tuple[str, Callable[[httpx.Client], httpx.Response]]] = [
    ("get", lambda c: c.get("/items/3", params={"q": SQLI_Q})),
    ("echo 1MiB", lambda c: c.post("/echo", content=BIG)),
    ("streamed request body", lambda c: c.post("/chunks", content=iter([BIG[:70_000], BIG[70_000:140_000]]))),
    ("empty POST", lambda c: c.post("/echo")),
    ("form", lambda c: c.post("/form", data={"q": SQLI_Q})),
    ("upload", lambda c: c.post("/upload", files={"file": ("big.bin", BIG[:300_000])})),
    ("streaming", lambda c: c.get("/stream")),
    ("file", lambda c: c.get("/file")),
    ("HEAD", lambda c: c.head("/head")),
    ("view raises", lambda c: c.get("/boom")),
]


@pytest.mark.parametrize("call", [c[1] for c in HCASES], ids=[c[0] for c in HCASES])
def test_httpx_transparency(call: Callable[[httpx.Client], httpx.Response], otel: Any) -> None:
    with httpx_client(make_app()) as client:
        plain = call(client)
    with httpx_client(wrapped(otel)) as client:
        devsecmw = call(client)

    def seen(r: httpx.Response) -> tuple[int, list[tuple[str, str]], bytes]:
        return r.status_code, [(k, v) for k, v in r.headers.multi_items() if k != "date"], r.content

    assert seen(devsecmw) == seen(plain)
    assert len(otel.spans()) == 1


def test_close_is_always_called(otel: Any) -> None:
    CLOSED.clear()
    make_app().test_client().get("/closing").close()
    wrapped(otel).test_client().get("/closing").close()
    with httpx_client(wrapped(otel)) as client:
        client.get("/closing")
    assert CLOSED == ["closed", "closed", "closed"]


@pytest.mark.internal_errors_expected
@pytest.mark.parametrize("call", [c[1] for c in TCASES], ids=[c[0] for c in TCASES])
def test_broken_detector_fails_open(call: Call, otel: Any) -> None:
    plain = _snapshot(call(make_app().test_client()))
    broken = _snapshot(call(wrapped(otel, detector=Broken()).test_client()))
    assert broken == plain
    assert sum(p.value for _, p in otel.metric_points("devsecmw.errors")) >= 1

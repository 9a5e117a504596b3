"""Django through ``"devsecmw.django.SecurityMiddleware"``: WSGI (``Client``) and ASGI (``AsyncClient``).

Django's settings are process-wide: they are configured once here from
``tests/django_app/settings.py`` and every test changes only what it needs
through ``override_settings``, so nothing leaks into the other test modules
(which never import Django).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import subprocess
import sys
from collections.abc import Iterator
from typing import Any
from wsgiref.util import FileWrapper

import pytest

django = pytest.importorskip("django")

from django.test import AsyncClient, Client, override_settings  # noqa: E402
from opentelemetry.trace import SpanKind, StatusCode  # noqa: E402

from devsecmw.config import Config  # noqa: E402
from devsecmw.engine import Budget, Engine  # noqa: E402
from devsecmw.request import HttpRequest  # noqa: E402
from devsecmw.signals import Signal  # noqa: E402

# Inspection stops after a wall-clock budget (10 ms by default): on a loaded test machine that
# would make detection assertions depend on timing, so the adapter tests give it ample room.
# One engine (rules compiled once) serves the module; a few tests build their own on purpose.
STEADY: dict[str, Any] = {"time_budget": 5.0, "detector": Engine(Config())}

MW = "devsecmw.django.SecurityMiddleware"
SQLI_Q = "1' UNION SELECT password FROM users--"


@pytest.fixture(scope="module", autouse=True)
def django_project() -> Iterator[None]:
    import django_app

    django_app.setup()
    yield


class Recorder:
    """Keeps what devsecmw showed the detector of the body, then runs the real engine."""

    def __init__(self) -> None:
        self.engine = STEADY["detector"]
        self.bodies: list[tuple[bytes, int, bool]] = []
        self.routes: list[str | None] = []

    def inspect(self, request: HttpRequest, phase: str, budget: Budget | None = None) -> list[Signal]:
        if phase == "body":
            self.bodies.append((bytes(request.body), request.body_seen, request.body_complete))
        return self.engine.inspect(request, phase, budget)


class Broken:
    def inspect(self, request: HttpRequest, phase: str, budget: Budget | None = None) -> list[Signal]:
        raise RuntimeError("detector bug")


def devsecmw_settings(otel: Any, middleware: list[str] | None = None, **options: Any) -> override_settings:
    return override_settings(
        MIDDLEWARE=[MW] if middleware is None else middleware,
        DEVSECMW={**otel.providers, **STEADY, **options},
    )


def served(response: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """What a client receives: status, headers, body (streaming consumed)."""
    streaming = getattr(response, "streaming", False)
    body = b"".join(response.streaming_content) if streaming else response.content
    return response.status_code, sorted(response.items()), body


def aserved(response: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    async def consume() -> bytes:
        if getattr(response, "is_async", False):
            return b"".join([c async for c in response.streaming_content])
        return b"".join(response.streaming_content)

    body = asyncio.run(consume()) if getattr(response, "streaming", False) else response.content
    return response.status_code, sorted(response.items()), body


def get(path: str, **kwargs: Any) -> Any:
    return Client(raise_request_exception=False).get(path, **kwargs)


def post(path: str, data: Any = None, content_type: str = "application/octet-stream", **kw: Any) -> Any:
    return Client(raise_request_exception=False).post(path, data=data, content_type=content_type, **kw)


def aget(path: str, **kwargs: Any) -> Any:
    return asyncio.run(AsyncClient(raise_request_exception=False).get(path, **kwargs))


def apost(path: str, data: Any, content_type: str = "application/octet-stream", **kwargs: Any) -> Any:
    return asyncio.run(
        AsyncClient(raise_request_exception=False).post(path, data=data, content_type=content_type, **kwargs)
    )


# ---------------------------------------------------------------------- basics
def test_import_is_lazy_and_middleware_is_sync_and_async_capable() -> None:
    from devsecmw.django import SecurityMiddleware

    assert SecurityMiddleware.sync_capable and SecurityMiddleware.async_capable


def test_importing_the_module_does_not_import_django() -> None:
    code = "import sys, devsecmw.django; print('django' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_clear_error_when_django_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    from devsecmw.django import SecurityMiddleware

    real = importlib.import_module

    def without_django(name: str, package: str | None = None) -> Any:
        if name == "django" or name.startswith("django."):
            raise ImportError(f"No module named {name!r}")
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", without_django)
    with pytest.raises(ImportError, match=r"needs Django: pip install 'devsecmw\[django\]'"):
        SecurityMiddleware(lambda request: None)


def test_attack_in_query_on_an_own_server_span_with_the_resolved_route(otel: Any) -> None:
    with devsecmw_settings(otel, detector=None):  # the default: an engine built from the options
        response = get("/api/items/7/", data={"q": SQLI_Q})
    assert response.status_code == 200 and response.json() == {"id": 7, "q": SQLI_Q}
    span = otel.span()
    assert span.kind == SpanKind.SERVER
    assert span.attributes["http.route"] == "api/items/<int:pk>/"
    assert span.name == "GET api/items/<int:pk>/"
    assert span.attributes["devsecmw.classification"] == "attack"
    assert "sqli" in otel.signal_types()
    routes = {a.get("http.route") for a, _ in otel.metric_points("devsecmw.requests")}
    assert routes == {"api/items/<int:pk>/"}


@pytest.mark.parametrize(
    ("path", "route"),
    [("/", "/"), ("/legacy/12/", "^legacy/(?P<pk>[0-9]+)/$"), ("/nowhere/", None)],
)
def test_route_is_the_pattern_never_the_path(path: str, route: str | None, otel: Any) -> None:
    with devsecmw_settings(otel):
        get(path)
    assert otel.span().attributes.get("http.route") == route


def test_async_stack_same_signals_and_route(otel: Any) -> None:
    with devsecmw_settings(otel):
        response = aget("/api/items/7/", data={"q": SQLI_Q})
    assert response.status_code == 200
    span = otel.span()
    assert span.attributes["http.route"] == "api/items/<int:pk>/"
    assert "sqli" in otel.signal_types()


def test_options_come_from_settings_and_are_validated(otel: Any) -> None:
    from devsecmw.config import ConfigError

    with devsecmw_settings(otel, ignore_paths=["/api/*"]):
        get("/api/items/7/", data={"q": SQLI_Q})
    assert otel.spans() == []
    with devsecmw_settings(otel, mode="nonsense"), pytest.raises(ConfigError, match="invalid mode"):
        get("/")


# ---------------------------------------------------------------------- body
@pytest.mark.parametrize("how", ["read", "chunks", "lines", "readline"])
def test_body_read_by_the_view_is_inspected(how: str, otel: Any) -> None:
    body = b"first line\nq=" + SQLI_Q.encode() + b"\nlast"
    rec = Recorder()
    with devsecmw_settings(otel, detector=rec):
        response = post(f"/read/?how={how}", body)
    assert response.content == body
    assert rec.bodies == [(body, len(body), True)]


def test_form_body_via_request_post(otel: Any) -> None:
    with devsecmw_settings(otel):
        response = post("/form/", f"q={SQLI_Q}", content_type="application/x-www-form-urlencoded")
    assert response.content == SQLI_Q.encode()
    assert any(e["devsecmw.signal.location"].startswith("body") for e in otel.events())
    assert "sqli" in otel.signal_types()


def test_body_the_view_ignores_is_never_read(otel: Any) -> None:
    class Untouchable(io.BytesIO):
        def read(self, *a: Any) -> bytes:
            raise AssertionError("devsecmw read ahead of the view")

        readline = read

    rec = Recorder()

    class Tamper:
        """Swaps the WSGI input for one that refuses every read, before Django builds the request."""

        def __init__(self, get_response: Any) -> None:
            self.get_response = get_response

        def __call__(self, request: Any) -> Any:
            request._stream = Untouchable(b"x" * 10)
            return self.get_response(request)

    import django_app

    django_app.Tamper = Tamper  # type: ignore[attr-defined]
    try:
        # unread_timeout=0: nothing is read after the response either (tests/test_unread_body_django.py).
        with devsecmw_settings(otel, ["django_app.Tamper", MW], detector=rec, unread_timeout=0):
            response = post("/ignore/", b"x" * 10)
    finally:
        del django_app.Tamper  # type: ignore[attr-defined]
    assert response.content == b"ignored"
    assert rec.bodies == []


def test_body_read_before_devsecmw_is_inspected_from_memory(otel: Any) -> None:
    class ReadsBody:
        def __init__(self, get_response: Any) -> None:
            self.get_response = get_response

        def __call__(self, request: Any) -> Any:
            assert request.body  # an earlier middleware consumed the stream
            return self.get_response(request)

    import django_app

    django_app.ReadsBody = ReadsBody  # type: ignore[attr-defined]
    try:
        with devsecmw_settings(otel, ["django_app.ReadsBody", MW]):
            response = post(
                "/echo/", f"q={SQLI_Q}".encode(), content_type="application/x-www-form-urlencoded"
            )
    finally:
        del django_app.ReadsBody  # type: ignore[attr-defined]
    assert response.content == f"q={SQLI_Q}".encode()
    assert "sqli" in otel.signal_types()


def test_upload_far_larger_than_the_cap(otel: Any) -> None:
    payload = bytes(range(256)) * 2048  # 512 KiB
    rec = Recorder()
    data = {"file": io.BytesIO(payload), "note": "hello"}
    data["file"].name = "blob.bin"  # type: ignore[attr-defined]
    with devsecmw_settings(otel, detector=rec, body_limit=4096):
        response = Client().post("/upload/", data=data)
    assert response.json() == {
        "size": len(payload),
        "sha256": hashlib.sha256(payload).hexdigest(),
        "note": "hello",
    }
    assert len(rec.bodies) == 1
    kept, seen, complete = rec.bodies[0]
    assert len(kept) == 4096 and seen > len(payload) and complete


def test_async_body_is_inspected(otel: Any) -> None:
    rec = Recorder()
    with devsecmw_settings(otel, detector=rec):
        response = apost(
            "/async-echo/", f"q={SQLI_Q}".encode(), content_type="application/x-www-form-urlencoded"
        )
    assert response.content == f"q={SQLI_Q}".encode()
    assert rec.bodies and rec.bodies[0][0] == f"q={SQLI_Q}".encode()
    assert "sqli" in otel.signal_types()


@pytest.mark.parametrize("path", ["/echo/", "/read/"])
def test_empty_post_with_and_without_content_length(path: str, otel: Any) -> None:
    with devsecmw_settings(otel):
        with_cl = post(path, b"")
        without = Client().generic("POST", path, b"", CONTENT_LENGTH="")
        a_with = apost(path, b"")
    for response in (with_cl, without, a_with):
        assert response.status_code == 200 and response.content == b""
    assert len(otel.spans()) == 3


# ---------------------------------------------------------------------- streaming
def test_sync_streaming_span_ends_after_the_last_chunk(otel: Any) -> None:
    with devsecmw_settings(otel):
        response = get("/stream/")
        assert otel.spans() == []  # the view returned; nothing has been sent yet
        chunks = list(response.streaming_content)
    assert b"".join(chunks) == b"".join(f"chunk {i}\n".encode() for i in range(5))
    assert otel.span().attributes["http.response.status_code"] == 200


def test_async_streaming_span_ends_after_the_last_chunk(otel: Any) -> None:
    async def run() -> bytes:
        response = await AsyncClient().get("/astream/")
        assert response.is_async
        assert otel.spans() == []
        return b"".join([c async for c in response.streaming_content])

    with devsecmw_settings(otel):
        body = asyncio.run(run())
    assert body == b"".join(f"achunk {i}\n".encode() for i in range(5))
    assert len(otel.spans()) == 1


def test_streaming_stopped_early_still_ends_the_span(otel: Any) -> None:
    with devsecmw_settings(otel):
        response = get("/stream/")
        it = iter(response.streaming_content)
        assert next(it) == b"chunk 0\n"
        response.close()
    assert len(otel.spans()) == 1


def test_streaming_that_fails_midway_records_the_exception(otel: Any) -> None:
    with devsecmw_settings(otel):
        response = get("/stream-fails/")
        it = iter(response.streaming_content)
        assert next(it) == b"partial"
        with pytest.raises(OSError, match="backend went away"):
            next(it)
    span = otel.span()
    assert span.attributes["error.type"] == "OSError"
    assert "http_5xx" in otel.signal_types()


def wsgi_environ(path: str) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "testserver",
        "REMOTE_ADDR": "10.0.0.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.file_wrapper": FileWrapper,
    }


def test_file_response_stays_a_wsgi_file_wrapper(otel: Any) -> None:
    from django.core.handlers.wsgi import WSGIHandler
    from django_app import views

    with open(views.FILE_PATH, "rb") as fh:
        expected = fh.read()
    with devsecmw_settings(otel):
        result = WSGIHandler()(wsgi_environ("/file/"), lambda status, headers, exc_info=None: None)
        try:
            assert type(result) is FileWrapper  # Django kept the server's sendfile path
            body = b"".join(result)
            assert otel.spans() == []  # ends at close(), when the server is done with the file
        finally:
            result.close()
    assert body == expected
    assert len(otel.spans()) == 1
    assert otel.span().attributes["http.response.status_code"] == 200


# ---------------------------------------------------------------------- errors and status signals
def test_view_exception_is_a_500_with_the_exception_recorded(otel: Any) -> None:
    with devsecmw_settings(otel):
        response = get("/boom/", data={"q": "<script>alert(1)</script>"})
    assert response.status_code == 500
    span = otel.span()
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes["error.type"] == "RuntimeError"
    assert {"xss", "http_5xx", "attack_5xx"} <= otel.signal_types()


def test_view_exception_passes_through_unchanged_when_django_propagates(otel: Any) -> None:
    with devsecmw_settings(otel), pytest.raises(RuntimeError, match="view failed"):
        Client().get("/boom/")
    assert "http_5xx" in otel.signal_types()


def test_http404_from_a_view_is_a_404_not_a_5xx(otel: Any) -> None:
    with devsecmw_settings(otel):
        assert get("/missing/").status_code == 404
    assert otel.signal_types() == {"http_404"}


@pytest.mark.parametrize(
    ("code", "signal"),
    [
        (500, "http_5xx"),
        (502, "http_5xx"),
        (404, "http_404"),
        (401, "auth_failure"),
        (403, "auth_failure"),
        (429, "rate_limited"),
    ],
)
def test_response_status_signals(code: int, signal: str, otel: Any) -> None:
    with devsecmw_settings(otel):
        assert get(f"/status/{code}/").status_code == code
        assert aget(f"/status/{code}/").status_code == code
    assert {str(s.events[0].attributes["devsecmw.signal.type"]) for s in otel.spans()} == {signal}
    assert len(otel.spans()) == 2


@pytest.mark.parametrize("query", [{}, {"stream": "1"}], ids=["plain", "streaming"])
def test_response_leak_is_detected(query: dict[str, str], otel: Any) -> None:
    with devsecmw_settings(otel):
        served(get("/sql-error/", data={**query, "id": "1'"}))
        aserved(aget("/sql-error/", data={**query, "id": "1'"}))
    assert [("response_leak" in s.attributes["devsecmw.signal.types"]) for s in otel.spans()] == [True, True]


def test_devsecmw_wsgi_around_django_inspects_once(otel: Any) -> None:
    from django.core.handlers.wsgi import WSGIHandler

    from devsecmw.wsgi import SecurityMiddleware as WSGIMiddleware

    env = wsgi_environ("/api/items/3/")
    env["QUERY_STRING"] = "q=1%27%20UNION%20SELECT%20password%20FROM%20users--"
    with devsecmw_settings(otel):
        app = WSGIMiddleware(WSGIHandler(), **otel.providers, **STEADY)
        result = app(env, lambda status, headers, exc_info=None: None)
        b"".join(result)
        result.close()  # type: ignore[attr-defined]
    assert len(otel.spans()) == 1
    assert sum(p.value for _, p in otel.metric_points("devsecmw.requests")) == 1


def test_asgi_with_a_sync_only_middleware_below(otel: Any) -> None:
    class SyncOnly:
        sync_capable = True
        async_capable = False

        def __init__(self, get_response: Any) -> None:
            self.get_response = get_response

        def __call__(self, request: Any) -> Any:
            return self.get_response(request)

    import django_app

    django_app.SyncOnly = SyncOnly  # type: ignore[attr-defined]
    try:
        with devsecmw_settings(otel, [MW, "django_app.SyncOnly"]):
            probe = aget("/probe/").content.decode()
            item = aget("/api/items/7/", data={"q": SQLI_Q})
    finally:
        del django_app.SyncOnly  # type: ignore[attr-defined]
    assert item.status_code == 200
    first, second = otel.spans()
    assert probe == f"{first.context.trace_id:032x}:{first.context.span_id:016x}"
    assert second.attributes["http.route"] == "api/items/<int:pk>/"
    assert "sqli" in second.attributes["devsecmw.signal.types"]


def test_context_is_the_server_span_in_the_view(otel: Any) -> None:
    with devsecmw_settings(otel):
        body = get("/probe/").content.decode()
        abody = aget("/probe/").content.decode()
    spans = otel.spans()
    assert len(spans) == 2
    ids = {f"{s.context.trace_id:032x}:{s.context.span_id:016x}" for s in spans}
    assert {body, abody} == ids


# ---------------------------------------------------------------------- fail open
@pytest.mark.internal_errors_expected
def test_a_broken_detector_changes_nothing(otel: Any) -> None:
    with devsecmw_settings(otel, [], detector=Broken()):
        plain = [served(post("/echo/", b"q=1")), served(get("/stream/")), aserved(aget("/astream/"))]
    with devsecmw_settings(otel, detector=Broken()):
        broken = [served(post("/echo/", b"q=1")), served(get("/stream/")), aserved(aget("/astream/"))]
    assert broken == plain
    assert sum(p.value for _, p in otel.metric_points("devsecmw.errors")) >= 3
    assert len(otel.spans()) == 3


# ---------------------------------------------------------------------- transparency
CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("get", "/", {}),
    ("get", "/api/items/3/", {"data": {"q": "a b"}}),
    ("post", "/echo/", {"data": b"x" * 100_000}),
    ("post", "/read/?how=chunks", {"data": b"y\n" * 5000}),
    ("post", "/form/", {"data": "q=hello&r=2", "content_type": "application/x-www-form-urlencoded"}),
    ("post", "/ignore/", {"data": b"z" * 1000}),
    ("get", "/stream/", {}),
    ("get", "/file/", {}),
    ("head", "/head/", {}),
    ("get", "/not-modified/", {}),
    ("get", "/boom/", {}),
    ("get", "/missing/", {}),
    ("get", "/status/429/", {}),
]


def _call(client: Any, method: str, path: str, kwargs: dict[str, Any]) -> Any:
    kwargs = dict(kwargs)
    if method == "post":
        kwargs.setdefault("content_type", "application/octet-stream")
    return getattr(client, method)(path, **kwargs)


@pytest.mark.parametrize(("method", "path", "kwargs"), CASES, ids=[f"{m} {p}" for m, p, _ in CASES])
def test_wsgi_transparency(method: str, path: str, kwargs: dict[str, Any], otel: Any) -> None:
    with override_settings(MIDDLEWARE=[]):
        plain = served(_call(Client(raise_request_exception=False), method, path, kwargs))
    with devsecmw_settings(otel):
        wrapped = served(_call(Client(raise_request_exception=False), method, path, kwargs))
    assert wrapped == plain
    assert len(otel.spans()) == 1


ACASES = [c for c in CASES if c[1] != "/stream/"] + [("get", "/astream/", {})]


@pytest.mark.parametrize(("method", "path", "kwargs"), ACASES, ids=[f"{m} {p}" for m, p, _ in ACASES])
def test_asgi_transparency(method: str, path: str, kwargs: dict[str, Any], otel: Any) -> None:
    async def run() -> tuple[int, list[tuple[str, str]], bytes]:
        response = await _call(AsyncClient(raise_request_exception=False), method, path, kwargs)
        body = b""
        if response.streaming:
            if response.is_async:
                body = b"".join([c async for c in response.streaming_content])
            else:
                body = b"".join(response.streaming_content)
        else:
            body = response.content
        return response.status_code, sorted(response.items()), body

    with override_settings(MIDDLEWARE=[]):
        plain = asyncio.run(run())
    with devsecmw_settings(otel):
        wrapped = asyncio.run(run())
    assert wrapped == plain
    assert len(otel.spans()) == 1


# ------------------------------------------------------------ OpenTelemetry's Django instrumentation
@pytest.fixture
def django_instrumented(otel: Any) -> Iterator[Any]:
    pytest.importorskip("opentelemetry.instrumentation.django")
    from opentelemetry.instrumentation.django import DjangoInstrumentor

    # instrument() inserts its middleware first in the MIDDLEWARE in force: the overridden one.
    with devsecmw_settings(otel):
        DjangoInstrumentor().instrument(**otel.providers)
        try:
            yield
        finally:
            DjangoInstrumentor().uninstrument()


@pytest.mark.parametrize("stack", ["wsgi", "asgi"])
@pytest.mark.parametrize("path", ["/api/items/7/", "/stream/", "/boom/"])
def test_django_instrumentor_span_is_enriched(
    stack: str, path: str, otel: Any, django_instrumented: Any
) -> None:
    if stack == "wsgi":
        response = get(path, data={"q": SQLI_Q})
        served(response)
    else:
        response = aget(path, data={"q": SQLI_Q})
        aserved(response)
    servers = otel.server_spans()
    assert len(servers) == 1
    (server,) = servers
    assert server.instrumentation_scope.name.endswith("django")  # OpenTelemetry's span, enriched
    assert server.attributes["devsecmw.classification"] == "attack"
    assert "sqli" in server.attributes["devsecmw.signal.types"]
    expected_route = {"/api/items/7/": "api/items/<int:pk>/", "/stream/": "stream/", "/boom/": "boom/"}[path]
    assert server.attributes["http.route"] == expected_route
    routes = {a.get("http.route") for a, _ in otel.metric_points("devsecmw.requests")}
    assert routes == {expected_route}
    if path == "/boom/":
        assert {"http_5xx", "attack_5xx"} <= set(server.attributes["devsecmw.signal.types"])

"""The adapter contract: what every framework adapter does, run over each of them.

One suite, six drivers: the ASGI middleware (a scripted server), the WSGI middleware
(PEP 3333 calls, an in-memory ``wsgi.input``), Django's middleware under its WSGI handler
(``Client``) and its ASGI handler (``AsyncClient``), and a Falcon app (``falcon.App`` and
``falcon.asgi.App``, through ``devsecmw.falcon.instrument`` and ``falcon.testing``). A
driver sends a request (method, path, query, headers, body, client address) through one
middleware instance and returns what the client got (status, headers, body), whether the
app ran and what it read, and, where the driver can see it, how many body bytes the server
handed out. The span is read from the in-memory SDK.

What only one adapter has (ASGI message identity, WSGI helper-thread reads and read methods,
Django routes) stays in that adapter's test file.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

import pytest
from asgi_harness import steady_time_budget
from conftest import trace_id_of

import devsecmw.asgi
import devsecmw.blocking
import devsecmw.wsgi
from devsecmw.config import Config
from devsecmw.engine import Engine

__all__ = ["steady_time_budget"]  # the fixture applies here

# One compiled engine for the module; a generous inspection budget; a read-ahead never cut short.
STEADY: dict[str, Any] = {"time_budget": 5.0, "detector": Engine(Config()), "block_read_timeout": 60.0}

SQLI_QUERY = "q=1%27%20UNION%20SELECT%20password%20FROM%20users--"
SQLI_FORM = b"name=bob&q=1%27+UNION+SELECT+password+FROM+users--"
XSS_JSON = b'{"user": {"name": "bob", "comment": "<script>alert(document.cookie)</script>"}}'
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
FORM = "application/x-www-form-urlencoded"
BIG = bytes(range(256)) * 400  # 100 KiB, ten times the cap of the test that sends it


@dataclass
class Req:
    method: str = "GET"
    path: str = "/submit"
    query: str = ""
    body: bytes = b""
    ctype: str | None = None
    accept: str | None = None
    client: str = "203.0.113.5"
    #: Whether the app reads its body (an app that answers without reading it: False).
    reads: bool = True


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # names lower-cased
    body: bytes
    app_called: bool
    #: The body as the app read it (None: the app did not read).
    app_read: bytes | None
    #: Body bytes the server's stream handed out (None: this driver cannot see it).
    server_read: int | None
    #: Reads on the server's stream: ``receive()`` or ``wsgi.input`` calls (None: not seen).
    server_calls: int | None
    #: The status line's reason phrase, where the protocol has one.
    reason: str | None


Session = Callable[[Req], Reply]


class _App:
    """What the app did on the current request (drivers run one request at a time)."""

    def __init__(self) -> None:
        self.req = Req()
        self.called = False
        self.read: bytes | None = None

    def begin(self, req: Req) -> None:
        self.req, self.called, self.read = req, False, None


# --------------------------------------------------------------------------- ASGI
def asgi_session(otel: Any, **options: Any) -> Session:
    state = _App()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        state.called = True
        if state.req.reads:
            got = b""
            while True:
                message = await receive()
                got += message.get("body", b"")
                if message["type"] != "http.request" or not message.get("more_body", False):
                    break
            state.read = got
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        await send({"type": "http.response.body", "body": b"ok"})

    mw = devsecmw.asgi.SecurityMiddleware(app, **{**STEADY, **otel.providers, **options})

    def call(req: Req) -> Reply:
        state.begin(req)
        # The body in 1000-byte messages, as a server hands out what arrived.
        parts = [req.body[i : i + 1000] for i in range(0, len(req.body), 1000)] or [b""]
        script = [
            {"type": "http.request", "body": p, "more_body": i < len(parts) - 1} for i, p in enumerate(parts)
        ]
        given = [0, 0]  # bytes, calls
        sent: list[dict[str, Any]] = []
        done = asyncio.Event()

        async def receive() -> dict[str, Any]:
            given[1] += 1
            if script:
                message = script.pop(0)
                given[0] += len(message["body"])
                return message
            await done.wait()  # a real server reports the disconnect once the response is out
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                done.set()

        headers = [(b"host", b"t")]
        if req.ctype is not None:
            headers += [
                (b"content-type", req.ctype.encode()),
                (b"content-length", str(len(req.body)).encode()),
            ]
        if req.accept is not None:
            headers.append((b"accept", req.accept.encode()))
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": req.method,
            "scheme": "http",
            "path": unquote_to_bytes(req.path).decode("utf-8", "replace"),
            "raw_path": req.path.encode(),
            "query_string": req.query.encode(),
            "root_path": "",
            "headers": headers,
            "client": (req.client, 50000),
            "server": ("127.0.0.1", 8000),
        }
        asyncio.run(mw(scope, receive, send))
        start = next(m for m in sent if m["type"] == "http.response.start")
        return Reply(
            status=int(start["status"]),
            headers={k.decode().lower(): v.decode() for k, v in start.get("headers") or []},
            body=b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"),
            app_called=state.called,
            app_read=state.read,
            server_read=given[0],
            server_calls=given[1],
            reason=None,
        )

    return call


# --------------------------------------------------------------------------- WSGI
class CountingInput(io.BytesIO):
    """An in-memory ``wsgi.input`` that counts the bytes it hands out."""

    given = 0
    calls = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.given += len(data)
        self.calls += 1
        return data

    def readline(self, size: int | None = -1) -> bytes:  # type: ignore[override]
        data = super().readline(size)
        self.given += len(data)
        self.calls += 1
        return data


def wsgi_session(otel: Any, **options: Any) -> Session:
    state = _App()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        state.called = True
        if state.req.reads:
            state.read = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    mw = devsecmw.wsgi.SecurityMiddleware(app, **{**STEADY, **otel.providers, **options})

    def call(req: Req) -> Reply:
        state.begin(req)
        stream = CountingInput(req.body)
        environ: dict[str, Any] = {
            "REQUEST_METHOD": req.method,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote_to_bytes(req.path).decode("latin-1"),
            "QUERY_STRING": req.query,
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": req.client,
            "HTTP_HOST": "t",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": stream,
            "wsgi.errors": io.StringIO(),
            "wsgi.multithread": False,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        if req.ctype is not None:
            environ["CONTENT_TYPE"] = req.ctype
            environ["CONTENT_LENGTH"] = str(len(req.body))
        if req.accept is not None:
            environ["HTTP_ACCEPT"] = req.accept
        status: list[str] = []
        headers: dict[str, str] = {}

        def start_response(line: str, response_headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status.append(line)
            headers.update((k.lower(), v) for k, v in response_headers)
            return lambda data: None

        result = mw(environ, start_response)
        try:
            body = b"".join(result)
        finally:
            getattr(result, "close", lambda: None)()
        code, _, reason = status[0].partition(" ")
        return Reply(int(code), headers, body, state.called, state.read, stream.given, stream.calls, reason)

    return call


# --------------------------------------------------------------------------- Django
_DJANGO = _App()


def django_view(request: Any) -> Any:
    from django.http import HttpResponse

    _DJANGO.called = True
    if _DJANGO.req.reads:
        _DJANGO.read = request.body
    return HttpResponse(b"ok", content_type="text/plain")


def _urlpatterns() -> list[Any]:
    from django.urls import re_path

    return [re_path(r"^.*$", django_view)]


def __getattr__(name: str) -> Any:  # ROOT_URLCONF is this module; Django is imported lazily
    if name == "urlpatterns":
        return _urlpatterns()
    raise AttributeError(name)


def _async_client_class() -> Any:
    from django.test import AsyncClient

    class PeerAsyncClient(AsyncClient):  # type: ignore[misc]
        """Django's AsyncClient with the scope's ``client`` address set (it has no option for it)."""

        peer = "127.0.0.1"

        def _base_scope(self, **request: Any) -> dict[str, Any]:
            scope: dict[str, Any] = super()._base_scope(**request)
            scope["client"] = [self.peer, 0]
            return scope

    return PeerAsyncClient


def django_session(kind: str) -> Callable[..., Session]:
    def open_session(otel: Any, **options: Any) -> Session:
        pytest.importorskip("django")
        import django_app
        from django.test import Client, override_settings

        django_app.setup()
        settings = override_settings(
            ROOT_URLCONF=__name__,
            MIDDLEWARE=["devsecmw.django.SecurityMiddleware"],
            DEVSECMW={**STEADY, **otel.providers, **options},
        )
        # One client for the session: its handler (and so the middleware) is built once.
        client = Client(raise_request_exception=False)
        aclient = _async_client_class()(raise_request_exception=False)

        def call(req: Req) -> Reply:
            _DJANGO.begin(req)
            url = req.path + (f"?{req.query}" if req.query else "")
            headers = {"accept": req.accept} if req.accept is not None else {}
            ctype = req.ctype or "application/octet-stream"
            with settings:
                if kind == "wsgi":
                    r = client.generic(
                        req.method, url, req.body, ctype, headers=headers, REMOTE_ADDR=req.client
                    )
                else:
                    aclient.peer = req.client
                    r = asyncio.run(aclient.generic(req.method, url, req.body, ctype, headers=headers))
            return Reply(
                status=r.status_code,
                headers={k.lower(): v for k, v in r.items()},
                body=r.content,
                app_called=_DJANGO.called,
                app_read=_DJANGO.read,
                server_read=None,  # Django's test clients buffer the body
                server_calls=None,
                reason=r.reason_phrase,
            )

        return call

    return open_session


# --------------------------------------------------------------------------- Falcon
def falcon_session(kind: str) -> Callable[..., Session]:
    def open_session(otel: Any, **options: Any) -> Session:
        pytest.importorskip("falcon")
        import falcon
        import falcon.asgi
        import falcon.testing

        import devsecmw.falcon

        state = _App()

        def answer(resp: Any, body: bytes | None) -> None:
            state.read = body
            resp.content_type = "text/plain"
            resp.data = b"ok"

        class Anything:  # every method on every path (the path converter), as the other drivers' apps
            def on_get(self, req: Any, resp: Any, rest: str) -> None:
                state.called = True
                answer(resp, req.bounded_stream.read() if state.req.reads else None)

            on_post = on_put = on_head = on_delete = on_patch = on_get

        class AsyncAnything:
            async def on_get(self, req: Any, resp: Any, rest: str) -> None:
                state.called = True
                answer(resp, await req.stream.read() if state.req.reads else None)

            on_post = on_put = on_head = on_delete = on_patch = on_get

        app = falcon.App() if kind == "wsgi" else falcon.asgi.App()
        app.add_route("/{rest:path}", Anything() if kind == "wsgi" else AsyncAnything())
        client = falcon.testing.TestClient(
            devsecmw.falcon.instrument(app, **{**STEADY, **otel.providers, **options})
        )

        def call(req: Req) -> Reply:
            state.begin(req)
            headers = {"Accept": req.accept} if req.accept is not None else {}
            r = client.simulate_request(
                req.method,
                unquote_to_bytes(req.path).decode("utf-8", "replace"),
                query_string=req.query or None,
                headers=headers,
                body=req.body or None,
                content_type=req.ctype,
                remote_addr=req.client,
            )
            return Reply(
                status=r.status_code,
                headers={k.lower(): v for k, v in r.headers.items()},
                body=r.content,
                app_called=state.called,
                app_read=state.read,
                server_read=None,  # falcon.testing holds the body: not seen
                server_calls=None,
                reason=r.status.partition(" ")[2] if kind == "wsgi" else None,
            )

        return call

    return open_session


DRIVERS: dict[str, Callable[..., Session]] = {
    "asgi": asgi_session,
    "wsgi": wsgi_session,
    "django-wsgi": django_session("wsgi"),
    "django-asgi": django_session("asgi"),
    "falcon-wsgi": falcon_session("wsgi"),
    "falcon-asgi": falcon_session("asgi"),
}


@pytest.fixture(params=sorted(DRIVERS))
def adapter(request: pytest.FixtureRequest) -> Callable[..., Session]:
    return DRIVERS[request.param]


@pytest.fixture(autouse=True)
def _no_stale_django_request() -> Iterator[None]:
    yield
    _DJANGO.begin(Req())


def one(adapter: Callable[..., Session], otel: Any, req: Req, **options: Any) -> Reply:
    """One request through a fresh middleware."""
    return adapter(otel, **options)(req)


def types_of(span: Any) -> set[str]:
    return set(span.attributes["devsecmw.signal.types"])


# --------------------------------------------------------------------------- block vs monitor
def test_monitor_mode_observes_and_block_mode_blocks_the_same_attack(adapter: Any, otel: Any) -> None:
    monitored = one(adapter, otel, Req(query=SQLI_QUERY))
    assert monitored.app_called and monitored.status == 200
    span = otel.span()
    assert span.attributes["devsecmw.blocked"] is False
    assert span.attributes["devsecmw.would_block"] is True
    assert "sqli" in types_of(span)
    otel.clear()

    blocked = one(adapter, otel, Req(query=SQLI_QUERY), mode="block")
    assert not blocked.app_called
    assert blocked.status == 403
    assert blocked.server_calls in (0, None)  # a GET without a body: nothing read ahead
    span = otel.span()
    assert span.attributes["devsecmw.blocked"] is True
    assert span.attributes["devsecmw.classification"] == "attack"
    assert "sqli" in types_of(span)
    # The 403 is devsecmw's own: not an auth failure of the app.
    assert "auth_failure" not in types_of(span)
    assert span.attributes["http.response.status_code"] == 403
    assert {e["devsecmw.signal.type"] for e in otel.events()} >= {"sqli"}
    assert json.loads(blocked.body) == {"error": "request blocked", "trace_id": trace_id_of(span)}


@pytest.mark.parametrize(
    ("accept", "ctype"),
    [
        (None, "application/json"),
        ("application/json", "application/json"),
        ("*/*", "application/json"),
        (BROWSER_ACCEPT, "text/html; charset=utf-8"),
    ],
)
def test_block_response_by_accept_carries_the_span_trace_id(
    adapter: Any, otel: Any, accept: str | None, ctype: str
) -> None:
    r = one(adapter, otel, Req(query=SQLI_QUERY, accept=accept), mode="block")
    assert r.status == 403 and not r.app_called
    assert r.headers["content-type"] == ctype
    assert int(r.headers["content-length"]) == len(r.body)
    assert r.headers["cache-control"] == "no-store"
    trace_id = trace_id_of(otel.span())
    assert trace_id != "0" * 32
    if ctype == "application/json":
        assert json.loads(r.body) == {"error": "request blocked", "trace_id": trace_id}
    else:
        text = r.body.decode()
        assert text.startswith("<!doctype html>") and f"<code>{trace_id}</code>" in text


def test_custom_block_status_body_and_content_type(adapter: Any, otel: Any) -> None:
    options = {
        "block_status": 451,
        "block_body": "denied, ref {trace_id}\n",
        "block_content_type": "text/plain",
    }
    r = one(adapter, otel, Req(query=SQLI_QUERY, accept=BROWSER_ACCEPT), mode="block", **options)
    assert r.status == 451
    assert r.reason in (None, "Unavailable For Legal Reasons")  # a status line carries the phrase
    assert r.headers["content-type"] == "text/plain"
    assert r.body == f"denied, ref {trace_id_of(otel.span())}\n".encode()
    assert otel.span().attributes["http.response.status_code"] == 451


def test_head_request_blocked_without_a_body(adapter: Any, otel: Any) -> None:
    r = one(adapter, otel, Req("HEAD", "/search", SQLI_QUERY), mode="block")
    assert r.status == 403 and r.body == b"" and not r.app_called
    assert int(r.headers["content-length"]) > 0  # what a GET would have received


def test_block_types_narrow_what_blocks(adapter: Any, otel: Any) -> None:
    only_xss = one(adapter, otel, Req(query=SQLI_QUERY), mode="block", block_types=["xss"])
    assert only_xss.app_called and only_xss.status == 200
    span = otel.span()
    assert "sqli" in types_of(span)
    assert span.attributes["devsecmw.blocked"] is False
    otel.clear()
    only_sqli = one(adapter, otel, Req(query=SQLI_QUERY), mode="block", block_types=["sqli"])
    assert not only_sqli.app_called and only_sqli.status == 403


def test_anomaly_signals_alone_never_block(adapter: Any, otel: Any) -> None:
    # A private file, invalid UTF-8 and a null byte: anomalies worth a high score, no attack.
    r = one(adapter, otel, Req(path="/.env", query="q=%ff%fe&r=abc%00def"), mode="block", block_threshold=1)
    assert r.app_called and r.status == 200
    span = otel.span()
    assert {"private_file", "not_utf8", "null_byte"} <= types_of(span)
    assert int(span.attributes["devsecmw.score"]) >= 1
    assert span.attributes["devsecmw.blocked"] is False
    assert "devsecmw.would_block" not in span.attributes


def test_allowlisted_paths_are_never_blocked(adapter: Any, otel: Any) -> None:
    send = adapter(otel, mode="block", allow_paths=["/healthz", "/internal/*"])
    for path in ("/healthz", "/internal/metrics"):
        r = send(Req(path=path, query=SQLI_QUERY))
        assert r.app_called and r.status == 200
    spans = [s for s in otel.spans() if "devsecmw.classification" in (s.attributes or {})]
    assert len(spans) == 2
    for span in spans:  # still inspected and reported
        assert "sqli" in types_of(span)
        assert span.attributes["devsecmw.blocked"] is False
    assert send(Req(path="/healthz/x", query=SQLI_QUERY)).status == 403


# --------------------------------------------------------------------------- bodies
@pytest.mark.parametrize(
    ("ctype", "body", "signal"), [("application/json", XSS_JSON, "xss"), (FORM, SQLI_FORM, "sqli")]
)
def test_attack_in_the_body_is_blocked_before_the_app_runs(
    adapter: Any, otel: Any, ctype: str, body: bytes, signal: str
) -> None:
    r = one(adapter, otel, Req("POST", body=body, ctype=ctype), mode="block")
    assert not r.app_called and r.status == 403
    assert r.server_read in (len(body), None)  # read to its end, not beyond
    span = otel.span()
    assert span.attributes["devsecmw.blocked"] is True
    assert signal in types_of(span)
    assert any(e["devsecmw.signal.location"].startswith("body:") for e in otel.events())


def test_body_larger_than_the_cap_reaches_the_app_whole_and_in_order(adapter: Any, otel: Any) -> None:
    r = one(
        adapter,
        otel,
        Req("POST", body=BIG, ctype="application/octet-stream"),
        mode="block",
        body_limit=10_000,
    )
    assert r.app_called and r.status == 200
    assert r.app_read == BIG
    assert r.server_read in (len(BIG), None)  # each byte handed out once
    assert otel.error_count("read_ahead", "timeout") == 0


def test_monitor_mode_never_reads_ahead(adapter: Any, otel: Any) -> None:
    # unread_timeout=0: nor after the response (the unread body: tests/test_unread_body_*.py)
    r = one(
        adapter, otel, Req("POST", body=XSS_JSON, ctype="application/json", reads=False), unread_timeout=0
    )
    assert r.status == 200 and r.app_called and r.app_read is None
    assert r.server_calls in (0, None)  # nothing read, in any thread
    assert "xss" not in types_of(otel.span())


@pytest.mark.internal_errors_expected
def test_block_response_failure_lets_the_request_through(
    adapter: Any, otel: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("render failed")

    monkeypatch.setattr(devsecmw.blocking, "render", broken)
    r = one(adapter, otel, Req("POST", body=SQLI_FORM, ctype=FORM), mode="block")
    assert r.app_called and r.status == 200 and r.app_read == SQLI_FORM  # the body read ahead, replayed
    assert otel.error_count("block_response", "RuntimeError") == 1
    assert otel.span().attributes["devsecmw.blocked"] is False


# --------------------------------------------------------------------------- clients
def test_flagged_client_is_blocked_in_block_mode_while_flagged(adapter: Any, otel: Any) -> None:
    send = adapter(otel, mode="block", flag_attacks=3)
    # Each attack is blocked on its own, and still counts: a scanner whose probes are all blocked.
    for _ in range(3):
        assert send(Req(query=SQLI_QUERY, client="203.0.113.9")).status == 403
    assert "client_flagged" in otel.signal_types()
    otel.clear()
    clean = send(Req(query="q=shoes", client="203.0.113.9"))
    assert clean.status == 403 and not clean.app_called
    span = otel.span()
    assert span.attributes["devsecmw.blocked"] is True
    assert span.attributes["devsecmw.signal.types"] == ("client_flagged",)
    assert span.attributes["devsecmw.classification"] == "anomaly"
    otel.clear()
    assert send(Req(query="q=shoes", client="198.51.100.7")).status == 200  # another client


def test_flagged_client_is_only_observed_in_monitor_mode(adapter: Any, otel: Any) -> None:
    send = adapter(otel, flag_attacks=3)
    assert [send(Req(query=SQLI_QUERY, client="203.0.113.9")).status for _ in range(3)] == [200, 200, 200]
    otel.clear()
    clean = send(Req(query="q=shoes", client="203.0.113.9"))
    assert clean.status == 200 and clean.app_called
    span = otel.span()
    # client_flagged was reported when the client crossed the threshold (once per window after):
    # a later request carries the flag as an attribute, and would still be blocked.
    assert span.attributes["devsecmw.client.flagged"] is True
    assert span.attributes["devsecmw.signal.types"] == ()
    assert span.attributes["devsecmw.would_block"] is True
    assert span.attributes["devsecmw.blocked"] is False

"""Monitor mode is invisible: the same exchange with and without devsecmw, message by message.

Each test runs a real Starlette app on the scripted server of ``asgi_harness``
twice, bare and behind devsecmw, and asserts that the app read the same
``receive`` messages, the client got the same ``send`` messages (status,
headers, body bytes, message boundaries), the server's ``receive`` was called
the same number of times (nothing read ahead), and the same exception escaped.
PITFALLS 1 and 2 are owned here.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import itertools
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from asgi_harness import (
    App,
    Exchange,
    TestClient,
    body_messages,
    compare,
    drive,
    make_scope,
    steady_time_budget,  # noqa: F401  (autouse: load-independent detection)
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

from devsecmw.asgi import SecurityMiddleware


# --------------------------------------------------------------------------- endpoints
async def hello(request: Request) -> Response:
    return PlainTextResponse("hello", headers={"x-custom": "1", "set-cookie": "sid=abc; HttpOnly"})


async def echo(request: Request) -> Response:
    body = await request.body()
    return JSONResponse(
        {
            "len": len(body),
            "sha": hashlib.sha256(body).hexdigest(),
            "query": str(request.query_params),
            "ua": request.headers.get("user-agent"),
        }
    )


async def stream_upload(request: Request) -> Response:
    digest = hashlib.sha256()
    size = 0
    async for chunk in request.stream():
        digest.update(chunk)
        size += len(chunk)
    return JSONResponse({"len": size, "sha": digest.hexdigest()})


async def form(request: Request) -> Response:
    out: dict[str, Any] = {}
    async with request.form() as data:
        for key, value in data.multi_items():
            if isinstance(value, str):
                out[key] = value
            else:
                out[key] = hashlib.sha256(await value.read()).hexdigest()
    return JSONResponse(out)


async def numbers(request: Request) -> Response:
    async def gen() -> AsyncIterator[bytes]:
        for i in range(5):
            yield f"chunk {i}\n".encode()

    return StreamingResponse(gen(), media_type="text/plain")


async def sse(request: Request) -> Response:
    async def events() -> AsyncIterator[str]:
        for i in range(4):
            yield f'id: {i}\nevent: tick\ndata: {{"n": {i}}}\n\n'

    return StreamingResponse(events(), media_type="text/event-stream", headers={"cache-control": "no-cache"})


async def big(request: Request) -> Response:
    return PlainTextResponse("lorem ipsum dolor sit amet " * 400)


async def boom(request: Request) -> Response:
    raise KeyError("before the response")


async def boom_midstream(request: Request) -> Response:
    async def gen() -> AsyncIterator[bytes]:
        yield b"first"
        raise KeyError("after the response started")

    return StreamingResponse(gen())


def routes(tmp_path: Any = None) -> list[Any]:
    out: list[Any] = [
        Route("/", hello, methods=["GET"]),
        Route("/echo", echo, methods=["GET", "POST"]),
        Route("/upload", stream_upload, methods=["POST", "PUT"]),
        Route("/form", form, methods=["POST"]),
        Route("/numbers", numbers),
        Route("/sse", sse),
        Route("/big", big),
        Route("/boom", boom),
        Route("/boom-midstream", boom_midstream),
    ]
    if tmp_path is not None:
        report = tmp_path / "report.txt"
        if not report.exists():  # written once: its mtime is in the ETag both runs must agree on
            report.write_bytes(b"file contents\n" * 5000)

        async def file(request: Request) -> Response:
            return FileResponse(tmp_path / "report.txt", media_type="text/plain")

        out.append(Route("/file", file, methods=["GET", "HEAD"]))
        out.append(Mount("/static", StaticFiles(directory=tmp_path)))
    return out


def pair(
    otel: Any,
    tmp_path: Any = None,
    above: list[Middleware] | None = None,
    below: list[Middleware] | None = None,
) -> Callable[[bool], App]:
    """A factory of the same Starlette app without (False) or with (True) devsecmw in its stack."""

    def make(with_devsecmw: bool) -> App:
        mine = [Middleware(SecurityMiddleware, **otel.providers)] if with_devsecmw else []
        return Starlette(routes=routes(tmp_path), middleware=[*(above or []), *mine, *(below or [])])

    return make


def compare_stack(
    make: Callable[[bool], App], scope: dict[str, Any], script: list[Any] | None = None, **kw: Any
) -> tuple[Exchange, Exchange]:
    bare = drive(make(False), scope, script)
    wrapped = drive(make(True), scope, script, **kw)
    assert wrapped.sent == bare.sent, "devsecmw changed what the client receives"
    assert wrapped.app_received == bare.app_received
    assert wrapped.server_receives == bare.server_receives, "devsecmw read ahead of the app"
    assert wrapped.normalized()[3] == bare.normalized()[3], "devsecmw changed the app's exception"
    return bare, wrapped


def app_only(otel: Any, tmp_path: Any = None) -> App:
    return Starlette(routes=routes(tmp_path))


JSON = [(b"content-type", b"application/json")]


# --------------------------------------------------------------------------- plain
def test_plain_response(otel: Any) -> None:
    bare, _ = compare(app_only(otel), make_scope("GET", "/"), **otel.providers)
    assert bare.sent[0]["status"] == 200 and bare.body == b"hello"
    assert (b"set-cookie", b"sid=abc; HttpOnly") in bare.sent[0]["headers"]
    assert otel.span().attributes["http.route"] == "/"


def test_json_echo_with_attack_is_untouched(otel: Any) -> None:
    body = json.dumps({"name": "x' OR 1=1--", "bio": "<script>alert(1)</script>"}).encode()
    bare, _ = compare(
        app_only(otel), make_scope("POST", "/echo", headers=JSON), body_messages(body), **otel.providers
    )
    assert json.loads(bare.body)["sha"] == hashlib.sha256(body).hexdigest()
    assert {"sqli", "xss"} <= otel.signal_types()


def test_non_utf8_and_latin1_headers_are_untouched(otel: Any) -> None:
    headers = [(b"user-agent", b"caf\xe9 \xff\xfe"), (b"x-raw", b"\x80\x81")]
    bare, _ = compare(
        app_only(otel),
        make_scope("GET", "/echo", query=b"a=%ff%fe&b=\xe9", headers=headers),
        **otel.providers,
    )
    assert json.loads(bare.body)["ua"] == "caf\xe9 \xff\xfe"
    assert otel.span().attributes["user_agent.original"] == "caf\xe9 \xff\xfe"


# --------------------------------------------------------------------------- streaming
@pytest.mark.parametrize("spec_version", ["2.3", "2.4"])  # 2.3: Starlette listens for disconnect meanwhile
@pytest.mark.parametrize("path", ["/numbers", "/sse"])
def test_streaming_and_sse_pass_chunk_by_chunk_and_the_span_closes_after_the_last(
    otel: Any, path: str, spec_version: str
) -> None:
    scope = make_scope("GET", path)
    scope["asgi"]["spec_version"] = spec_version
    bare = drive(app_only(otel), scope)
    wrapped = drive(
        SecurityMiddleware(app_only(otel), **otel.providers), scope, probe=lambda: len(otel.spans())
    )
    assert wrapped.sent == bare.sent and wrapped.server_receives == bare.server_receives
    bodies = [m for m in bare.sent if m["type"] == "http.response.body"]
    assert len(bodies) >= 5  # one message per chunk: nothing was buffered
    # Open while every chunk (the empty final one included) reached the server; closed after.
    assert wrapped.probes == [0] * len(wrapped.sent)
    span = otel.span()
    assert span.attributes["http.route"] == path
    assert span.attributes["http.response.status_code"] == 200


def test_streaming_is_not_delayed(otel: Any) -> None:
    """Each chunk reaches the server before the app produces the next one."""
    log: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(3):
            log.append(f"produced {i}")
            await send({"type": "http.response.body", "body": b"x", "more_body": i < 2})

    drive(SecurityMiddleware(app, **otel.providers), make_scope(), probe=lambda: log.append("sent"))
    assert log == ["sent", "produced 0", "sent", "produced 1", "sent", "produced 2", "sent"]


# --------------------------------------------------------------------------- files, HEAD, 304
def test_file_response(otel: Any, tmp_path: Any) -> None:
    bare, _ = compare(app_only(otel, tmp_path), make_scope("GET", "/file"), **otel.providers)
    assert bare.body == b"file contents\n" * 5000
    assert len([m for m in bare.sent if m["type"] == "http.response.body"]) > 1  # chunked file
    assert otel.span().attributes["http.route"] == "/file"


def test_file_response_with_pathsend(otel: Any, tmp_path: Any) -> None:
    scope = make_scope("GET", "/file", extensions={"http.response.pathsend": {}})
    wrapped = drive(
        SecurityMiddleware(app_only(otel, tmp_path), **otel.providers), scope, probe=lambda: len(otel.spans())
    )
    bare = drive(app_only(otel, tmp_path), scope)
    assert wrapped.sent == bare.sent
    assert bare.sent[-1]["type"] == "http.response.pathsend"
    assert wrapped.probes == [0, 0] and len(otel.spans()) == 1


@pytest.mark.parametrize("path", ["/", "/file", "/static/report.txt"])
def test_head(otel: Any, tmp_path: Any, path: str) -> None:
    bare, _ = compare(app_only(otel, tmp_path), make_scope("HEAD", path), **otel.providers)
    assert bare.sent[0]["status"] == 200
    if path != "/":  # a plain Response leaves dropping the body of a HEAD to the server
        assert bare.body == b""
    span = otel.span()
    assert span.attributes["http.request.method"] == "HEAD"
    assert span.attributes["http.response.status_code"] == 200


def test_conditional_request_304(otel: Any, tmp_path: Any) -> None:
    first = drive(app_only(otel, tmp_path), make_scope("GET", "/static/report.txt"))
    etag = dict(first.sent[0]["headers"])[b"etag"]
    scope = make_scope("GET", "/static/report.txt", headers=[(b"if-none-match", etag)])
    bare, _ = compare(app_only(otel, tmp_path), scope, **otel.providers)
    assert bare.sent[0]["status"] == 304 and bare.body == b""
    span = otel.span()
    assert span.attributes["http.response.status_code"] == 304
    assert span.attributes["http.route"] == "/static"  # the mount template, not the file's path
    assert span.name == "GET /static"
    assert otel.signal_types() == set()


# --------------------------------------------------------------------------- gzip inside devsecmw
@pytest.mark.parametrize("path", ["/big", "/numbers"])
def test_gzip_inside_devsecmw(otel: Any, path: str) -> None:
    def make(with_devsecmw: bool) -> App:
        inner = Starlette(routes=routes(), middleware=[Middleware(GZipMiddleware, minimum_size=16)])
        return SecurityMiddleware(inner, **otel.providers) if with_devsecmw else inner

    scope = make_scope("GET", path, headers=[(b"accept-encoding", b"gzip")])
    bare, _ = compare_stack(make, scope)
    headers = dict(bare.sent[0]["headers"])
    assert headers[b"content-encoding"] == b"gzip"
    assert gzip.decompress(bare.body)
    assert otel.span().attributes["http.response.status_code"] == 200


# --------------------------------------------------------------------------- uploads
def test_upload_far_larger_than_the_cap(otel: Any) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    script = body_messages(data, chunk=8192)
    headers = [(b"content-type", b"application/octet-stream"), (b"content-length", str(len(data)).encode())]
    bare, wrapped = compare(
        app_only(otel), make_scope("POST", "/upload", headers=headers), script, **otel.providers
    )
    assert json.loads(bare.body) == {"len": len(data), "sha": hashlib.sha256(data).hexdigest()}
    assert len(wrapped.app_received) == len(script)  # every chunk, as it came


def test_chunked_multipart_upload(otel: Any) -> None:
    boundary = b"XyZ123"
    payload = bytes(range(256)) * 300
    body = (
        b"--" + boundary + b"\r\n"
        b'Content-Disposition: form-data; name="title"\r\n\r\n'
        b"quarterly report\r\n"
        b"--" + boundary + b"\r\n"
        b'Content-Disposition: form-data; name="file"; filename="r.bin"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n" + payload + b"\r\n"
        b"--" + boundary + b"--\r\n"
    )
    headers = [(b"content-type", b"multipart/form-data; boundary=" + boundary)]
    script = body_messages(body, chunk=1000)
    bare, _ = compare(app_only(otel), make_scope("POST", "/form", headers=headers), script, **otel.providers)
    assert json.loads(bare.body) == {"title": "quarterly report", "file": hashlib.sha256(payload).hexdigest()}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.binary(max_size=3000),
    cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=8),
)
def test_any_chunking_of_any_body_is_forwarded_unchanged(otel: Any, body: bytes, cuts: list[int]) -> None:
    points = sorted({c for c in cuts if 0 < c < len(body)})
    edges = [0, *points, len(body)]
    script = [
        {"type": "http.request", "body": body[a:b], "more_body": i < len(edges) - 2}
        for i, (a, b) in enumerate(itertools.pairwise(edges))
    ]
    bare, _ = compare(
        app_only(otel), make_scope("POST", "/upload"), script, body_limit=1024, **otel.providers
    )
    assert json.loads(bare.body)["sha"] == hashlib.sha256(body).hexdigest()


@pytest.mark.parametrize("content_length", [None, b"0"])
@pytest.mark.parametrize("path", ["/echo", "/upload"])
def test_empty_post_does_not_hang(otel: Any, content_length: bytes | None, path: str) -> None:
    headers = [(b"content-length", content_length)] if content_length is not None else []
    bare, _ = compare(app_only(otel), make_scope("POST", path, headers=headers), **otel.providers)
    assert json.loads(bare.body)["len"] == 0


def test_client_disconnects_mid_body(otel: Any) -> None:
    script = [
        {"type": "http.request", "body": b"a" * 1000, "more_body": True},
        {"type": "http.disconnect"},
    ]
    bare, _ = compare(app_only(otel), make_scope("POST", "/upload"), script, **otel.providers)
    assert type(bare.exception).__name__ == "ClientDisconnect"
    assert len(otel.spans()) == 1


# --------------------------------------------------------------------------- exceptions
@pytest.mark.parametrize("path", ["/boom", "/boom-midstream"])
def test_app_raises_before_and_after_starting_its_response(otel: Any, path: str) -> None:
    bare, _wrapped = compare(app_only(otel), make_scope("GET", path), **otel.providers)
    assert isinstance(bare.exception, KeyError)
    if path == "/boom":
        assert bare.sent[0]["status"] == 500  # Starlette's ServerErrorMiddleware, outside devsecmw
    else:
        assert bare.sent[0]["status"] == 200
    span = otel.span()
    if path == "/boom":
        # ServerErrorMiddleware sent a complete 500 before re-raising: the span closed on its last byte.
        assert span.attributes["error.type"] == "500"
        assert span.attributes["http.response.status_code"] == 500
    else:
        # The exception escaped before the final message: it is the span's error.
        assert span.attributes["error.type"] == "KeyError"
    assert "http_5xx" in otel.signal_types()


# --------------------------------------------------------------------------- BaseHTTPMiddleware
class ReadsBody(BaseHTTPMiddleware):
    """A BaseHTTPMiddleware that reads the body itself before calling the app (the risky kind)."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        body = await request.body()
        response = await call_next(request)
        response.headers["x-seen-len"] = str(len(body))
        return response


class Passes(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        response.headers["x-passed"] = "1"
        return response


@pytest.mark.parametrize("where", ["above", "below", "both"])
@pytest.mark.parametrize("cls", [ReadsBody, Passes])
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/echo", b'{"q": "x\' OR 1=1--"}'),
        ("POST", "/echo", b""),
        ("POST", "/upload", b"z" * 200_000),
        ("GET", "/numbers", b""),
    ],
)
def test_base_http_middleware_above_and_below(
    otel: Any, where: str, cls: type[BaseHTTPMiddleware], method: str, path: str, body: bytes
) -> None:
    mw = [Middleware(cls)]
    make = pair(
        otel,
        above=mw if where in ("above", "both") else None,
        below=mw if where in ("below", "both") else None,
    )
    bare, _ = compare_stack(make, make_scope(method, path, headers=JSON), body_messages(body, chunk=65536))
    assert bare.exception is None and bare.sent[0]["status"] == 200
    if path != "/numbers":
        assert json.loads(bare.body)["len"] == len(body)
    assert len(otel.server_spans()) == 1


# --------------------------------------------------------------------------- background tasks
def test_background_task_runs_after_the_span_closed(otel: Any) -> None:
    ran: list[int] = []

    async def task() -> None:
        ran.append(len(otel.spans()))

    async def endpoint(request: Request) -> Response:
        return PlainTextResponse("accepted", status_code=202, background=BackgroundTask(task))

    def make(with_devsecmw: bool) -> App:
        app = Starlette(routes=[Route("/", endpoint)])
        return SecurityMiddleware(app, **otel.providers) if with_devsecmw else app

    compare_stack(make, make_scope())
    assert ran == [0, 1]  # bare: no span; wrapped: the span had closed when the task ran


def test_background_task_failure_propagates_unchanged(otel: Any) -> None:
    async def task() -> None:
        raise OSError("background failed")

    async def endpoint(request: Request) -> Response:
        return PlainTextResponse("ok", background=BackgroundTask(task))

    app = Starlette(routes=[Route("/", endpoint)])
    _bare, wrapped = compare(app, make_scope(), **otel.providers)
    assert isinstance(wrapped.exception, OSError)
    # The response had fully gone: the request was a 200, the failure is the task's.
    assert otel.span().attributes["http.response.status_code"] == 200


# --------------------------------------------------------------------------- lifespan
def test_lifespan_startup_and_shutdown(otel: Any) -> None:
    events: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        events.append("startup")
        yield {"db": "ready"}
        events.append("shutdown")

    app = Starlette(routes=routes(), lifespan=lifespan)
    scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.4"}, "state": {}}
    script = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    bare, _ = compare(app, scope, script, **otel.providers)
    assert [m["type"] for m in bare.sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert events == ["startup", "shutdown"] * 2
    assert otel.spans() == []


def test_lifespan_startup_failure_reaches_the_server(otel: Any) -> None:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        raise RuntimeError("no database")
        yield

    app = Starlette(lifespan=lifespan)
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    bare, _ = compare(app, scope, [{"type": "lifespan.startup"}], **otel.providers)
    assert bare.sent[0]["type"] == "lifespan.startup.failed"
    assert isinstance(bare.exception, RuntimeError)


# --------------------------------------------------------------------------- websockets
def _ws_app(otel: Any, with_devsecmw: bool, log: list[Any]) -> Starlette:
    async def endpoint(ws: WebSocket) -> None:
        await ws.accept(subprotocol=ws.scope["subprotocols"][0] if ws.scope["subprotocols"] else None)
        while True:
            message = await ws.receive()
            log.append(dict(message))
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is not None:
                await ws.send_text("echo:" + message["text"])
            else:
                await ws.send_bytes(b"echo:" + message["bytes"])

    mw = [Middleware(SecurityMiddleware, **otel.providers)] if with_devsecmw else []
    return Starlette(routes=[WebSocketRoute("/ws/{room}", endpoint)], middleware=mw)


def _ws_session(app: Starlette) -> list[Any]:
    got: list[Any] = []
    with (
        TestClient(app) as client,
        client.websocket_connect(
            "/ws/lobby?token=abc", subprotocols=["chat"], headers={"user-agent": "t/1"}
        ) as ws,
    ):
        got.append(ws.accepted_subprotocol)
        ws.send_text("hello")
        got.append(ws.receive_text())
        ws.send_bytes(b"\x00\xff" * 1000)
        got.append(ws.receive_bytes())
        ws.send_text("' OR 1=1--")
        got.append(ws.receive_text())
    return got


def test_websocket_echo(otel: Any) -> None:
    bare_log: list[Any] = []
    wrapped_log: list[Any] = []
    bare = _ws_session(_ws_app(otel, False, bare_log))
    wrapped = _ws_session(_ws_app(otel, True, wrapped_log))
    assert wrapped == bare == ["chat", "echo:hello", b"echo:" + b"\x00\xff" * 1000, "echo:' OR 1=1--"]
    assert wrapped_log == bare_log
    span = otel.span()
    assert span.attributes["http.route"] == "/ws/{room}"
    assert span.attributes["http.response.status_code"] == 101
    # Messages are not inspected: only the handshake is.
    assert otel.signal_types() == set()

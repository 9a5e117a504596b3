"""Block mode in the ASGI adapter: decided before the app runs, on the head and on the body read ahead.

A scripted server plays the client: :func:`serve` answers ``receive()`` from a
script (a :data:`STALL` entry waits until the app has started, so a test can
make the read-ahead time out without depending on the clock), records every
message the app sends, the very objects the server handed out and those the
app got, and whether the app ran at all.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from asgi_harness import (
    TestClient,
    body_messages,
    make_scope,
    steady_time_budget,  # noqa: F401  (autouse: load-independent detection)
)
from conftest import trace_id_of
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from devsecmw.asgi import SecurityMiddleware
from devsecmw.blocking import render, wants_html
from devsecmw.config import Config, ConfigError
from devsecmw.core import Runtime
from devsecmw.request import from_asgi_scope

Message = dict[str, Any]
SQLI_QUERY = b"q=1%27%20UNION%20SELECT%20password%20FROM%20users--"
SQLI_FORM = b"name=bob&q=1%27+UNION+SELECT+password+FROM+users--"
XSS_JSON = b'{"user": {"name": "bob", "comment": "<script>alert(document.cookie)</script>"}}'
BENIGN_JSON = b'{"user": {"name": "bob", "comment": "Leave it at the door, please."}}'
BROWSER_ACCEPT = b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
STALL = {"type": "devsecmw.test.stall"}  # the server waits here until the app has started


# --------------------------------------------------------------------------- a scripted server
@dataclass
class Run:
    sent: list[Message] = field(default_factory=list)
    #: The message objects the server's ``receive`` returned, in order.
    server_gave: list[Message] = field(default_factory=list)
    #: The message objects the app's ``receive`` returned, in order.
    app_got: list[Message] = field(default_factory=list)
    app_called: bool = False
    exception: BaseException | None = None

    @property
    def status(self) -> int | None:
        for m in self.sent:
            if m["type"] in ("http.response.start", "websocket.http.response.start"):
                return int(m["status"])
        return None

    @property
    def body(self) -> bytes:
        types = ("http.response.body", "websocket.http.response.body")
        return b"".join(m.get("body", b"") for m in self.sent if m["type"] in types)

    @property
    def headers(self) -> dict[bytes, bytes]:
        for m in self.sent:
            if m["type"] in ("http.response.start", "websocket.http.response.start"):
                return dict(m.get("headers") or [])
        return {}

    @property
    def app_body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.app_got if m["type"] == "http.request")


App = Callable[..., Any]


def reader(respond_first: bool = False, status: int = 200) -> App:
    """An app that reads the whole body (or up to a disconnect) and answers with its length."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if respond_first:
            await send({"type": "http.response.start", "status": status, "headers": []})
        total = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            total += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
        if not respond_first:
            await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": str(total).encode()})

    return app


def serve(app: App, scope: dict[str, Any], script: list[Message] | None = None, **options: Any) -> Run:
    """One exchange through ``SecurityMiddleware(app, **options)`` driven by ``script``."""
    return asyncio.run(_serve(SecurityMiddleware(_recorded(app), **options), scope, script))


def _recorded(app: App) -> App:
    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        run: Run = scope["state"]["run"]
        run.app_called = True
        scope["state"]["app_started"].set()

        async def tap() -> Any:
            message = await receive()
            run.app_got.append(message)
            return message

        await app(scope, tap, send)

    return wrapped


async def _serve(mw: App, scope: dict[str, Any], script: list[Message] | None) -> Run:
    run = Run()
    queue = list(script if script is not None else body_messages(b""))
    done = asyncio.Event()
    app_started = asyncio.Event()
    scope = dict(scope, state={"run": run, "app_started": app_started})
    disconnect = {"type": "websocket.disconnect" if scope["type"] == "websocket" else "http.disconnect"}

    async def receive() -> Message:
        while queue and queue[0] is STALL:
            queue.pop(0)
            await app_started.wait()
        if queue:
            message = queue.pop(0)
        else:
            await done.wait()  # like a real server: nothing more until the response is complete
            message = dict(disconnect)
        run.server_gave.append(message)
        return message

    async def send(message: Message) -> None:
        run.sent.append(message)
        t = message["type"]
        if (t.endswith("response.body") and not message.get("more_body", False)) or t == "websocket.close":
            done.set()

    try:
        await mw(scope, receive, send)
    except BaseException as exc:
        run.exception = exc
    return run


def post(
    path: str = "/submit",
    ctype: bytes = b"application/json",
    length: int | None = None,
    accept: bytes | None = None,
    http_version: str = "1.1",
    query: bytes = b"",
) -> dict[str, Any]:
    headers = [(b"content-type", ctype)]
    headers.append(
        (b"content-length", str(length).encode())
        if length is not None
        else (b"transfer-encoding", b"chunked")
    )
    if accept is not None:
        headers.append((b"accept", accept))
    scope = make_scope("POST", path, query, headers)
    scope["http_version"] = http_version
    return scope


def get(query: bytes = b"", path: str = "/search", accept: bytes | None = None, **kw: Any) -> dict[str, Any]:
    headers = [(b"accept", accept)] if accept is not None else []
    return make_scope("GET", path, query, headers, **kw)


# --------------------------------------------------------------------------- block vs monitor
def test_benign_request_in_block_mode_reaches_the_app_unchanged(otel: Any) -> None:
    run = serve(reader(), get(b"q=garden+chairs"), mode="block", **otel.providers)
    assert run.app_called and run.status == 200
    span = otel.span()
    assert span.attributes["devsecmw.blocked"] is False
    assert "devsecmw.would_block" not in span.attributes


# --------------------------------------------------------------------------- what counts
def test_block_threshold(otel: Any) -> None:
    serve(reader(), get(SQLI_QUERY), **otel.providers)
    score = int(otel.span().attributes["devsecmw.score"])
    otel.clear()
    at = serve(reader(), get(SQLI_QUERY), mode="block", block_threshold=score, **otel.providers)
    assert at.status == 403 and not at.app_called
    above = serve(reader(), get(SQLI_QUERY), mode="block", block_threshold=score + 1, **otel.providers)
    assert above.status == 200 and above.app_called
    # Still an attack on the span: the threshold decides blocking, not classification.
    assert otel.spans()[-1].attributes["devsecmw.classification"] == "attack"


def test_allowlisted_networks_are_never_blocked(otel: Any) -> None:
    # make_scope's client is 10.1.2.3; the body is not even read ahead for it.
    run = serve(reader(), post(length=len(XSS_JSON)), body_messages(XSS_JSON, 7), mode="block",
                allow_networks=["10.0.0.0/8"], **otel.providers)  # fmt: skip
    assert run.app_called and run.status == 200
    assert run.app_got == run.server_gave and run.app_body == XSS_JSON
    assert "xss" in otel.span().attributes["devsecmw.signal.types"]
    other = serve(reader(), post(length=len(XSS_JSON)), body_messages(XSS_JSON, 7), mode="block",
                  allow_networks=["192.0.2.0/24"])  # fmt: skip
    assert other.status == 403 and not other.app_called


# --------------------------------------------------------------------------- the body, read ahead
@pytest.mark.parametrize("chunk", [None, 3])
def test_benign_body_read_ahead_is_replayed_as_the_very_same_messages(otel: Any, chunk: int | None) -> None:
    script = body_messages(BENIGN_JSON, chunk)
    run = serve(reader(), post(length=len(BENIGN_JSON)), script, mode="block", **otel.providers)
    assert run.app_called and run.status == 200 and run.body == str(len(BENIGN_JSON)).encode()
    assert len(run.app_got) == len(script)
    assert all(a is s for a, s in zip(run.app_got, run.server_gave, strict=True))
    assert otel.span().attributes["devsecmw.classification"] == "benign"


# The adapter contract (tests/test_adapter_contract.py) covers what every adapter does; here is
# what only ASGI shows: the messages themselves.
@pytest.mark.parametrize(
    ("ctype", "body"), [(b"application/json", XSS_JSON), (b"application/x-www-form-urlencoded", SQLI_FORM)]
)
@pytest.mark.parametrize("chunk", [None, 1, 5])
def test_attack_body_over_many_messages_is_read_to_its_end_not_beyond(
    otel: Any, ctype: bytes, body: bytes, chunk: int | None
) -> None:
    script = body_messages(body, chunk)
    run = serve(reader(), post(ctype=ctype, length=len(body)), script, mode="block", **otel.providers)
    assert not run.app_called and run.status == 403
    assert run.server_gave == script  # every message, and no receive() after the last


def test_messages_past_the_cap_reach_the_app_as_the_very_same_objects(otel: Any) -> None:
    body = bytes(range(256)) * 400  # 100 KiB, ten times the cap below
    script = body_messages(body, 1000)
    run = serve(reader(), post(ctype=b"application/octet-stream", length=len(body)), script,
                mode="block", body_limit=10_000, **otel.providers)  # fmt: skip
    assert run.app_called and run.status == 200 and run.app_body == body
    assert len(run.app_got) == len(script)
    assert all(a is s for a, s in zip(run.app_got, run.server_gave, strict=True))


def test_attack_within_the_cap_of_a_large_body_is_blocked_without_reading_the_rest(otel: Any) -> None:
    body = SQLI_FORM + b"&pad=" + b"x" * 50_000
    script = body_messages(body, 1000)
    run = serve(reader(), post(ctype=b"application/x-www-form-urlencoded", length=len(body)), script,
                mode="block", body_limit=2000, **otel.providers)  # fmt: skip
    assert run.status == 403 and not run.app_called
    assert len(run.server_gave) == 2  # the cap, not the whole upload


def test_slow_upload_is_not_waited_for_and_the_app_gets_every_byte(otel: Any) -> None:
    # The rest of the body arrives only once the app runs: the read-ahead cannot see it, whatever
    # the machine's speed, and must give up after block_read_timeout.
    first, rest = b'{"user": {"name": "bob", ', b'"comment": "<script>alert(document.cookie)</script>"}}'
    script = [
        {"type": "http.request", "body": first, "more_body": True},
        STALL,
        {"type": "http.request", "body": rest, "more_body": False},
    ]
    run = serve(reader(), post(length=len(first + rest)), script, mode="block", block_read_timeout=0.05,
                **otel.providers)  # fmt: skip
    assert run.app_called and run.status == 200  # not blocked for what it did not see
    assert run.app_body == first + rest
    assert all(a is s for a, s in zip(run.app_got, run.server_gave, strict=True))
    assert len(run.app_got) == 2
    assert otel.error_count("read_ahead", "timeout") == 1
    span = otel.span()
    # What arrived late was inspected as the app read it, and recorded: too late to block.
    assert "xss" in span.attributes["devsecmw.signal.types"]
    assert span.attributes["devsecmw.blocked"] is False
    assert span.attributes["devsecmw.would_block"] is True


def test_attack_seen_before_a_stall_is_blocked(otel: Any) -> None:
    script = [{"type": "http.request", "body": SQLI_FORM, "more_body": True}, STALL]
    run = serve(reader(), post(ctype=b"application/x-www-form-urlencoded", length=10_000), script,
                mode="block", block_read_timeout=0.05, **otel.providers)  # fmt: skip
    assert run.status == 403 and not run.app_called
    assert otel.error_count("read_ahead", "timeout") == 1
    assert otel.span().attributes["devsecmw.blocked"] is True


@pytest.mark.parametrize(("length", "http_version"), [(0, "1.1"), (None, "1.1"), (None, "2")])
@pytest.mark.parametrize("method", ["POST", "GET"])
def test_empty_body_does_not_hang(otel: Any, length: int | None, http_version: str, method: str) -> None:
    headers = [] if length is None else [(b"content-length", b"0")]
    scope = make_scope(method, "/submit", b"", headers)
    scope["http_version"] = http_version
    # A long wait: were the read-ahead to wait for a body that never comes, the timeout would count.
    run = serve(reader(), scope, mode="block", block_read_timeout=30.0, **otel.providers)
    assert run.app_called and run.status == 200 and run.body == b"0"
    assert otel.error_count("read_ahead", "timeout") == 0
    assert len(run.server_gave) == 1  # the one empty http.request, read ahead (HTTP/2) or by the app


def test_disconnect_during_read_ahead_is_replayed_to_the_app(otel: Any) -> None:
    script = [{"type": "http.request", "body": b'{"user": ', "more_body": True}, {"type": "http.disconnect"}]
    run = serve(reader(), post(length=100), script, mode="block", **otel.providers)
    assert run.app_called
    assert [m["type"] for m in run.app_got] == ["http.request", "http.disconnect"]
    assert all(a is s for a, s in zip(run.app_got, run.server_gave, strict=True))
    assert len(run.server_gave) == 2


def test_disconnect_after_an_attack_during_read_ahead_still_blocks(otel: Any) -> None:
    script = [{"type": "http.request", "body": SQLI_FORM, "more_body": True}, {"type": "http.disconnect"}]
    run = serve(reader(), post(ctype=b"application/x-www-form-urlencoded", length=1000), script,
                mode="block", **otel.providers)  # fmt: skip
    assert not run.app_called and run.status == 403
    assert otel.span().attributes["devsecmw.blocked"] is True


# --------------------------------------------------------------------------- after the response started
def test_nothing_is_blocked_once_the_response_has_started(otel: Any) -> None:
    # The app starts its response, then reads a body that arrives after the read-ahead gave up.
    script = [{"type": "http.request", "body": b"name=bob&", "more_body": True}, STALL,
              {"type": "http.request", "body": SQLI_FORM, "more_body": False}]  # fmt: skip
    scope = post(ctype=b"application/x-www-form-urlencoded", length=200)
    run = serve(
        reader(respond_first=True), scope, script, mode="block", block_read_timeout=0.05, **otel.providers
    )
    assert run.status == 200 and run.body == str(len(b"name=bob&" + SQLI_FORM)).encode()
    assert [m["type"] for m in run.sent] == ["http.response.start", "http.response.body"]
    span = otel.span()
    assert "sqli" in span.attributes["devsecmw.signal.types"]
    assert span.attributes["devsecmw.blocked"] is False
    assert span.attributes["devsecmw.would_block"] is True
    assert span.attributes["http.response.status_code"] == 200


def test_check_block_after_the_response_started_only_records(otel: Any) -> None:
    runtime = Runtime.from_options(mode="block", **otel.providers)
    insp = runtime.begin(from_asgi_scope(get(SQLI_QUERY)))
    assert insp is not None
    insp.response_start(200, [])
    assert insp.check_block() is False
    assert insp.blocked is False and insp.would_block is True
    insp.finish()
    assert otel.span().attributes["devsecmw.blocked"] is False


# --------------------------------------------------------------------------- flagged clients
def _client(scope: dict[str, Any], addr: str) -> dict[str, Any]:
    return dict(scope, client=(addr, 40000))


def test_flagged_client_not_blocked_when_block_flagged_is_off(otel: Any) -> None:
    mw = SecurityMiddleware(
        _recorded(reader()), mode="block", flag_attacks=2, block_flagged=False, **otel.providers
    )
    for _ in range(2):
        asyncio.run(_serve(mw, get(SQLI_QUERY), None))
    assert asyncio.run(_serve(mw, get(b"q=shoes"), None)).status == 200


# --------------------------------------------------------------------------- websockets
def ws_app() -> App:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 1000})

    return app


def test_blocked_websocket_handshake_is_closed_before_accept(otel: Any) -> None:
    scope = make_scope(path="/ws", query=SQLI_QUERY, kind="websocket")
    run = serve(ws_app(), scope, [{"type": "websocket.connect"}], mode="block", **otel.providers)
    assert not run.app_called
    assert run.sent == [{"type": "websocket.close", "code": 1008}]
    span = otel.span()
    assert span.attributes["devsecmw.blocked"] is True
    assert span.attributes["http.response.status_code"] == 403
    assert "sqli" in span.attributes["devsecmw.signal.types"]


def test_blocked_websocket_handshake_uses_the_denial_response_when_offered(otel: Any) -> None:
    scope = make_scope(
        path="/ws", query=SQLI_QUERY, kind="websocket", extensions={"websocket.http.response": {}}
    )
    run = serve(
        ws_app(), scope, [{"type": "websocket.connect"}], mode="block", block_status=406, **otel.providers
    )
    assert not run.app_called
    assert [m["type"] for m in run.sent] == ["websocket.http.response.start", "websocket.http.response.body"]
    assert run.status == 406
    assert json.loads(run.body)["trace_id"] == trace_id_of(otel.span())


def test_benign_websocket_in_block_mode_passes(otel: Any) -> None:
    scope = make_scope(path="/ws", query=b"room=1", kind="websocket")
    run = serve(ws_app(), scope, [{"type": "websocket.connect"}], mode="block", **otel.providers)
    assert run.app_called
    assert [m["type"] for m in run.sent] == ["websocket.accept", "websocket.close"]


# --------------------------------------------------------------------------- fail open
def test_server_receive_error_during_read_ahead_reaches_the_app(otel: Any) -> None:
    class ServerGone(Exception):
        pass

    async def receive() -> Message:
        raise ServerGone()

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    got: list[BaseException] = []

    async def app(scope: Any, app_receive: Any, app_send: Any) -> None:
        try:
            await app_receive()
        except ServerGone as exc:
            got.append(exc)
            raise

    mw = SecurityMiddleware(app, mode="block", **otel.providers)
    with pytest.raises(ServerGone):
        asyncio.run(mw(post(length=10), receive, send))
    assert len(got) == 1 and sent == []


def test_a_receive_left_pending_is_cancelled_when_the_request_ends(otel: Any) -> None:
    """The read-ahead gave up on a receive; the app never asked for more: nothing is left running."""
    cancelled: list[bool] = []

    async def run() -> Run:
        never = asyncio.Event()
        calls = 0

        async def receive() -> Message:
            nonlocal calls
            calls += 1
            if calls == 1:
                return {"type": "http.request", "body": b"name=bob", "more_body": True}
            try:
                await never.wait()  # an upload that stalls forever
            except asyncio.CancelledError:
                cancelled.append(True)
                raise
            raise AssertionError("unreachable")

        sent: list[Message] = []

        async def send(message: Message) -> None:
            sent.append(message)

        async def app(scope: Any, app_receive: Any, app_send: Any) -> None:
            await app_receive()  # the replayed first message; the rest is never asked for
            await app_send({"type": "http.response.start", "status": 413, "headers": []})
            await app_send({"type": "http.response.body", "body": b"too slow"})

        mw = SecurityMiddleware(app, mode="block", block_read_timeout=0.05, **otel.providers)
        await mw(post(ctype=b"application/x-www-form-urlencoded", length=10_000), receive, send)
        await asyncio.sleep(0)  # let the cancellation reach the server's receive
        return Run(sent=sent)

    run = asyncio.run(run())
    assert run.status == 413
    assert cancelled == [True]
    assert otel.error_count("read_ahead", "timeout") == 1


def test_blocked_under_opentelemetry_asgi_middleware(otel: Any) -> None:
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    inner = SecurityMiddleware(_recorded(reader()), mode="block", **otel.providers)
    app = OpenTelemetryMiddleware(
        inner, tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider
    )
    run = asyncio.run(_serve(app, post(length=len(XSS_JSON)), body_messages(XSS_JSON, 8)))
    assert run.status == 403 and not run.app_called
    [span] = otel.server_spans()  # OpenTelemetry's span, enriched: one server span
    assert span.attributes["devsecmw.blocked"] is True
    assert "xss" in span.attributes["devsecmw.signal.types"]
    status = span.attributes.get("http.response.status_code", span.attributes.get("http.status_code"))
    assert status == 403  # OpenTelemetry saw the block response go out
    assert json.loads(run.body)["trace_id"] == trace_id_of(span)


@pytest.mark.parametrize("ctype", ["text/plain\r\nx-injected: 1", "text/plain; charset=\u00e9", " "])
def test_bad_block_content_type_fails_at_construction(ctype: str) -> None:
    with pytest.raises(ConfigError, match="invalid block_content_type"):
        SecurityMiddleware(reader(), mode="block", block_body="no", block_content_type=ctype)


# --------------------------------------------------------------------------- a real framework
async def echo(request: Request) -> Response:
    body = await request.body()
    return Response(body, media_type="application/octet-stream")


async def form(request: Request) -> Response:
    data = await request.json()
    return JSONResponse({"name": data["user"]["name"]})


def starlette_client(**options: Any) -> TestClient:
    app = Starlette(routes=[Route("/echo", echo, methods=["POST"]), Route("/json", form, methods=["POST"])])
    app.add_middleware(SecurityMiddleware, mode="block", **options)
    return TestClient(app)


def test_starlette_app_in_block_mode(otel: Any) -> None:
    with starlette_client(body_limit=4096, **otel.providers) as client:
        big = bytes(range(256)) * 1024
        assert client.post("/echo", content=big).content == big
        assert client.post("/json", content=BENIGN_JSON).json() == {"name": "bob"}
        r = client.post("/json", content=XSS_JSON, headers={"accept": "application/json"})
        assert r.status_code == 403 and r.json()["trace_id"] == trace_id_of(otel.spans()[-1])
        assert client.get("/echo", params={"q": "1' UNION SELECT password FROM users--"}).status_code == 403


def test_wants_html_follows_quality_values() -> None:
    assert wants_html("text/html")
    assert wants_html(BROWSER_ACCEPT.decode())
    assert not wants_html("application/json, text/html;q=0.5")
    assert wants_html("application/json;q=0.4, text/html")
    assert not wants_html("*/*")
    assert not wants_html("text/*, application/json")
    assert not wants_html("text/html;q=bogus")
    assert not wants_html(None)
    status, headers, body = render(Config(), "ab" * 16, "text/html")
    assert status == 403 and b"abababab" in body and ("content-type", "text/html; charset=utf-8") in headers

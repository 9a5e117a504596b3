"""The ASGI adapter on toy ASGI apps: what it inspects, when, and the signals it derives.

Transparency (byte-for-byte identical exchanges with and without devsecmw) is
in ``test_asgi_transparency.py``; these tests look at what devsecmw does with
what passes through.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from asgi_harness import (
    body_messages,
    compare,
    drive_wrapped,
    make_scope,
    steady_time_budget,  # noqa: F401  (autouse: load-independent detection)
)

from devsecmw.asgi import SecurityMiddleware, route_from_scope
from devsecmw.engine import Budget, Engine
from devsecmw.request import HttpRequest
from devsecmw.signals import Signal


class SpyDetector:
    """Records what the engine is asked to look at, and delegates to the real engine."""

    def __init__(self) -> None:
        self.engine = Engine()
        self.calls: list[tuple[str, int, bool]] = []

    def inspect(self, request: HttpRequest, phase: str, budget: Budget | None = None) -> list[Signal]:
        self.calls.append((phase, len(request.body), request.body_complete))
        return self.engine.inspect(request, phase, budget)

    def phases(self) -> list[str]:
        return [c[0] for c in self.calls]


def responder(status: int = 200, body: bytes = b"ok", read_body: bool = True) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if read_body:
            more = True
            while more:
                message = await receive()
                more = message.get("more_body", False) and message["type"] == "http.request"
        await send({"type": "http.response.start", "status": status, "headers": [(b"x-a", b"1")]})
        await send({"type": "http.response.body", "body": body})

    return app


# --------------------------------------------------------------------------- passthrough
def test_lifespan_and_unknown_scopes_pass_through_untouched(otel: Any) -> None:
    seen: list[tuple[Any, Any, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope, receive, send))

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    async def send(message: Any) -> None:
        return None

    mw = SecurityMiddleware(app, **otel.providers)
    for kind in ("lifespan", "custom.extension"):
        scope = {"type": kind, "asgi": {"version": "3.0"}}
        asyncio.run(mw(scope, receive, send))
        # The very same objects: no wrapping, no copy.
        assert seen[-1][0] is scope and seen[-1][1] is receive and seen[-1][2] is send
    assert otel.spans() == []
    assert otel.metric_points("devsecmw.requests") == []


def test_messages_are_forwarded_as_the_same_objects(otel: Any) -> None:
    request_msg = {"type": "http.request", "body": b"a=1", "more_body": False}
    got: list[Any] = []
    start = {"type": "http.response.start", "status": 200, "headers": []}
    body = {"type": "http.response.body", "body": b"x"}
    delivered: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        got.append(await receive())
        await send(start)
        await send(body)

    async def receive() -> Any:
        return request_msg

    async def send(message: Any) -> None:
        delivered.append(message)

    asyncio.run(SecurityMiddleware(app, **otel.providers)(make_scope("POST"), receive, send))
    assert got[0] is request_msg
    assert delivered[0] is start and delivered[1] is body


# --------------------------------------------------------------------------- the request body
def test_body_is_inspected_as_the_app_reads_it_and_capped(otel: Any) -> None:
    spy = SpyDetector()
    big = b"".join(b"%07d," % i for i in range(1 << 17))  # 1 MiB
    script = body_messages(big, chunk=4096)
    ex = drive_wrapped(responder(), make_scope("POST", "/upload"), script, detector=spy, **otel.providers)
    assert b"".join(m["body"] for m in ex.app_received if m["type"] == "http.request") == big
    assert spy.phases() == ["head", "body"]
    # At most the cap (64 KiB) was kept, and the body was inspected once the app read its end.
    assert spy.calls[1] == ("body", 64 * 1024, True)


def test_cap_is_configurable(otel: Any) -> None:
    spy = SpyDetector()
    script = body_messages(b"q=" + b"a" * 5000, chunk=100)
    drive_wrapped(responder(), make_scope("POST"), script, detector=spy, body_limit=1000, **otel.providers)
    assert spy.calls[1][:2] == ("body", 1000)


def test_body_the_app_never_reads_is_never_inspected_with_unread_timeout_0(otel: Any) -> None:
    spy = SpyDetector()
    script = body_messages(b"q=1' UNION SELECT password FROM users--")
    ex = drive_wrapped(
        responder(read_body=False),
        make_scope("POST", "/"),
        script,
        detector=spy,
        unread_timeout=0,  # on by default: tests/test_unread_body.py
        **otel.providers,
    )
    assert ex.server_receives == 0  # devsecmw did not read it either
    assert spy.phases() == ["head"]
    assert "sqli" not in otel.signal_types()


def test_partially_read_body_inspects_only_what_was_read(otel: Any) -> None:
    spy = SpyDetector()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()  # the first chunk only
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    script = [
        {"type": "http.request", "body": b"q=hello+", "more_body": True},
        {"type": "http.request", "body": b"<script>alert(1)</script>", "more_body": False},
    ]
    ex = drive_wrapped(app, make_scope("POST"), script, detector=spy, unread_timeout=0, **otel.providers)
    assert ex.server_receives == 1
    assert spy.calls[-1] == ("body", len(b"q=hello+"), False)
    assert "xss" not in otel.signal_types()


def test_attack_split_across_chunks_is_seen(otel: Any) -> None:
    payload = b"comment=<script>alert(document.cookie)</script>"
    script = body_messages(payload, chunk=7)
    headers = [(b"content-type", b"application/x-www-form-urlencoded")]
    drive_wrapped(responder(), make_scope("POST", "/c", headers=headers), script, **otel.providers)
    assert "xss" in otel.signal_types()
    assert any(e["devsecmw.signal.location"] == "body:form:comment" for e in otel.events())


def test_client_disconnect_mid_body_still_inspects_what_arrived(otel: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # nothing to answer: the client has gone
            if not message.get("more_body"):
                break

    script = [
        {"type": "http.request", "body": b"q=1 UNION SELECT pass", "more_body": True},
        {"type": "http.request", "body": b"word FROM users--", "more_body": True},
        {"type": "http.disconnect"},
    ]
    headers = [(b"content-type", b"application/x-www-form-urlencoded")]
    _, ex = compare(app, make_scope("POST", "/", headers=headers), script, **otel.providers)
    assert ex.sent == []
    span = otel.span()
    assert "sqli" in span.attributes["devsecmw.signal.types"]
    assert "http.response.status_code" not in span.attributes


# --------------------------------------------------------------------------- response signals
@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, set()),
        (302, set()),
        (404, {"http_404"}),
        (401, {"auth_failure"}),
        (403, {"auth_failure"}),
        (429, {"rate_limited"}),
        (500, {"http_5xx"}),
        (503, {"http_5xx"}),
    ],
)
def test_status_signals(otel: Any, status: int, expected: set[str]) -> None:
    drive_wrapped(responder(status), make_scope(), **otel.providers)
    assert otel.signal_types() == expected
    span = otel.span()
    assert span.attributes["http.response.status_code"] == status
    assert span.attributes["devsecmw.classification"] == ("anomaly" if expected else "benign")


def test_exception_counts_as_5xx_and_is_reraised_as_the_same_object(otel: Any) -> None:
    err = LookupError("app bug")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise err

    ex = drive_wrapped(app, make_scope(), **otel.providers)
    assert ex.exception is err
    assert otel.signal_types() == {"http_5xx"}
    span = otel.span()
    assert span.attributes["error.type"] == "LookupError"
    assert span.status.status_code.name == "ERROR"


def test_exception_after_response_started_counts_as_5xx(otel: Any) -> None:
    err = RuntimeError("mid-stream")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        raise err

    ex = drive_wrapped(app, make_scope(), **otel.providers)
    assert ex.exception is err
    assert "http_5xx" in otel.signal_types()


def test_attack_that_ends_in_exception_is_attack_5xx(otel: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise ValueError("boom")

    q = b"id=1%27%20UNION%20SELECT%20password%20FROM%20users--"
    ex = drive_wrapped(app, make_scope(query=q), **otel.providers)
    assert isinstance(ex.exception, ValueError)
    assert {"sqli", "http_5xx", "attack_5xx"} <= otel.signal_types()


def test_attack_that_ends_in_500_is_attack_5xx(otel: Any) -> None:
    q = b"q=%3Cscript%3Ealert(1)%3C/script%3E"
    drive_wrapped(responder(500), make_scope(query=q), **otel.providers)
    assert {"xss", "http_5xx", "attack_5xx"} <= otel.signal_types()
    assert otel.span().attributes["devsecmw.classification"] == "attack"


def test_attack_that_ends_in_200_is_not_attack_5xx(otel: Any) -> None:
    q = b"q=%3Cscript%3Ealert(1)%3C/script%3E"
    drive_wrapped(responder(200), make_scope(query=q), **otel.providers)
    assert "xss" in otel.signal_types()
    assert "attack_5xx" not in otel.signal_types()


def test_cancellation_propagates_and_is_not_a_5xx(otel: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise asyncio.CancelledError()

    ex = drive_wrapped(app, make_scope(), **otel.providers)
    assert isinstance(ex.exception, asyncio.CancelledError)
    assert "http_5xx" not in otel.signal_types()
    assert len(otel.spans()) == 1  # the span is still ended


# --------------------------------------------------------------------------- when the span closes
def test_span_closes_after_the_last_body_message_not_when_the_app_returns(otel: Any) -> None:
    probe = lambda: len(otel.spans())  # noqa: E731
    chunks = [b"one", b"two", b"three"]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i, c in enumerate(chunks):
            await send({"type": "http.response.body", "body": c, "more_body": i < len(chunks) - 1})
        # Work after the last byte (e.g. background tasks): the span is already closed.
        probes_after.append(len(otel.spans()))

    probes_after: list[int] = []
    ex = drive_wrapped(app, make_scope(), probe=probe, **otel.providers)
    assert ex.probes == [0, 0, 0, 0]  # open while every message, the last one included, is sent
    assert probes_after == [1]


def test_span_closes_after_pathsend(otel: Any, tmp_path: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.pathsend", "path": str(tmp_path)})
        after.append(len(otel.spans()))

    after: list[int] = []
    scope = make_scope(extensions={"http.response.pathsend": {}})
    ex = drive_wrapped(app, scope, probe=lambda: len(otel.spans()), **otel.providers)
    assert ex.probes == [0, 0] and after == [1]


def test_span_closes_after_the_last_trailers(otel: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [], "trailers": True})
        await send({"type": "http.response.body", "body": b"data"})
        await send({"type": "http.response.trailers", "headers": [(b"x-sum", b"1")], "more_trailers": True})
        await send({"type": "http.response.trailers", "headers": [(b"x-sum2", b"2")]})

    scope = make_scope(extensions={"http.response.trailers": {}})
    ex = drive_wrapped(app, scope, probe=lambda: len(otel.spans()), **otel.providers)
    assert ex.probes == [0, 0, 0, 0]
    assert len(otel.spans()) == 1


def test_span_closes_after_the_last_zerocopy_message(otel: Any, tmp_path: Any) -> None:
    (tmp_path / "f").write_bytes(b"abc")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        with (tmp_path / "f").open("rb") as fh:
            await send({"type": "http.response.zerocopy", "file": fh, "count": 1, "more_body": True})
            await send({"type": "http.response.zerocopy", "file": fh})
        after.append(len(otel.spans()))

    after: list[int] = []
    scope = make_scope(extensions={"http.response.zerocopy": {}})
    ex = drive_wrapped(app, scope, probe=lambda: len(otel.spans()), wait_for_response=False, **otel.providers)
    assert ex.probes == [0, 0, 0] and after == [1]


def test_app_that_returns_without_responding_still_closes_the_span(otel: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        return None

    drive_wrapped(app, make_scope(), **otel.providers)
    span = otel.span()
    assert "http.response.status_code" not in span.attributes


# --------------------------------------------------------------------------- websockets
def test_websocket_handshake_is_inspected(otel: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 1000})

    q = b"room=1%27%20UNION%20SELECT%20password%20FROM%20users--"
    script = [{"type": "websocket.connect"}]
    compare(app, make_scope(path="/ws", query=q, kind="websocket"), script, **otel.providers)
    span = otel.span()
    assert "sqli" in span.attributes["devsecmw.signal.types"]
    assert span.attributes["http.response.status_code"] == 101
    assert span.attributes["url.scheme"] == "ws"


def test_websocket_rejected_before_accept_is_403(otel: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.close", "code": 1008})

    script = [{"type": "websocket.connect"}]
    drive_wrapped(app, make_scope(path="/ws", kind="websocket"), script, **otel.providers)
    assert otel.span().attributes["http.response.status_code"] == 403
    assert otel.signal_types() == {"auth_failure"}


def test_websocket_denial_response_status(otel: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.http.response.start", "status": 429, "headers": []})
        await send({"type": "websocket.http.response.body", "body": b"slow down"})

    script = [{"type": "websocket.connect"}]
    scope = make_scope(path="/ws", kind="websocket", extensions={"websocket.http.response": {}})
    compare(app, scope, script, **otel.providers)
    assert otel.signal_types() == {"rate_limited"}


# --------------------------------------------------------------------------- state per request
def test_concurrent_requests_keep_their_own_state(otel: Any) -> None:
    """Interleaved requests through one middleware instance: verdicts never leak between them."""
    gate = asyncio.Event

    async def main() -> None:
        release = gate()
        arrived = 0

        async def app(scope: Any, receive: Any, send: Any) -> None:
            nonlocal arrived
            body = b""
            more = True
            while more:
                m = await receive()
                body += m.get("body", b"")
                more = m.get("more_body", False)
            arrived += 1
            if arrived == 2:
                release.set()
            await release.wait()  # both requests are in flight at once
            status = 500 if scope["path"] == "/fail" else 200
            await send({"type": "http.response.start", "status": status, "headers": []})
            await send({"type": "http.response.body", "body": body})

        mw = SecurityMiddleware(app, **otel.providers)

        async def one(path: str, body: bytes) -> None:
            queue = [{"type": "http.request", "body": body, "more_body": False}]

            async def receive() -> Any:
                return queue.pop(0) if queue else {"type": "http.disconnect"}

            async def send(message: Any) -> None:
                return None

            headers = [(b"content-type", b"application/x-www-form-urlencoded")]
            await mw(make_scope("POST", path, headers=headers), receive, send)

        await asyncio.gather(
            one("/fail", b"name=alice"),
            one("/ok", b"q=<script>alert(document.domain)</script>"),
        )

    asyncio.run(main())
    by_path = {s.attributes["url.path"]: s.attributes for s in otel.server_spans()}
    assert set(by_path) == {"/fail", "/ok"}
    assert set(by_path["/fail"]["devsecmw.signal.types"]) == {"http_5xx"}
    assert "xss" in by_path["/ok"]["devsecmw.signal.types"]
    assert by_path["/ok"]["http.response.status_code"] == 200
    assert "http_5xx" not in by_path["/ok"]["devsecmw.signal.types"]
    assert by_path["/fail"]["http.response.status_code"] == 500


def test_middleware_keeps_no_per_request_state_on_itself(otel: Any) -> None:
    mw = SecurityMiddleware(responder(), **otel.providers)
    before = dict(vars(mw))
    asyncio.run(mw(make_scope(), _once({"type": "http.request", "body": b"", "more_body": False}), _discard))
    assert vars(mw) == before


async def _discard(message: Any) -> None:
    return None


def _once(message: Any) -> Any:
    queue = [message]

    async def receive() -> Any:
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    return receive


# --------------------------------------------------------------------------- ignored paths
def test_ignored_paths_pass_through_without_a_span(otel: Any) -> None:
    compare(responder(), make_scope(path="/healthz"), ignore_paths=["/healthz"], **otel.providers)
    assert otel.spans() == []


# --------------------------------------------------------------------------- route templates
class _Route:
    def __init__(self, path: str, routes: list[Any] | None = None) -> None:
        self.path = path
        if routes is not None:
            self.routes = routes


def test_route_from_scope() -> None:
    leaf = _Route("/{item_id}")
    mount = _Route("/users/{uid}", [leaf])
    router = _Route("", [_Route("/"), mount])
    assert route_from_scope({"route": _Route("/items/{id}")}) == "/items/{id}"
    assert route_from_scope({"devsecmw.route": "/explicit", "route": leaf}) == "/explicit"
    assert route_from_scope({}) is None
    assert route_from_scope({"route": object()}) is None  # e.g. a Host route: no path
    # Mounted: the mount's template, never the concrete root_path with the user's id in it.
    scope = {"route": leaf, "router": router, "root_path": "/users/42", "app_root_path": ""}
    assert route_from_scope(scope) == "/users/{uid}/{item_id}"


# --------------------------------------------------------------------------- head inspection
def test_attack_in_query_is_a_signal_on_the_server_span(otel: Any) -> None:
    q = b"q=1%27%20UNION%20SELECT%20password%20FROM%20users--"
    _, ex = compare(responder(), make_scope(path="/search", query=q), **otel.providers)
    assert ex.sent[0]["status"] == 200 and ex.body == b"ok"
    span = otel.span()
    assert span.attributes["devsecmw.classification"] == "attack"
    assert "sqli" in span.attributes["devsecmw.signal.types"]
    event = next(e for e in otel.events() if e["devsecmw.signal.type"] == "sqli")
    assert event["devsecmw.signal.location"] == "query:q"
    assert event["security_rule.uuid"]


def test_benign_request_has_no_signal(otel: Any) -> None:
    drive_wrapped(
        responder(), make_scope(path="/search", query=b"q=python+cookbook&page=2"), **otel.providers
    )
    assert otel.events() == []
    assert otel.span().attributes["devsecmw.classification"] == "benign"

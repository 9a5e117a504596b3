"""Monitor mode, ASGI: the request body an app left unread is read once its response is complete.

Driven by the scripted server of :mod:`asgi_harness` (which, like a real server, blocks a
``receive`` with nothing scripted until the response is complete, then answers
``http.disconnect``). Every test compares the client's side with the same exchange without
devsecmw and with the read switched off (``unread_timeout=0``, monitor mode before it existed).
"""

from __future__ import annotations

from typing import Any

import pytest
from asgi_harness import body_messages, drive, drive_wrapped, make_scope
from asgi_harness import steady_time_budget as steady_time_budget  # autouse: load-independent detection
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

from devsecmw.asgi import SecurityMiddleware

XXE = b'<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><foo>&xxe;</foo>'
SQLI_FORM = b"name=bob&id=1' UNION SELECT password FROM users--"
XML = [(b"content-type", b"application/xml")]
FORM = [(b"content-type", b"application/x-www-form-urlencoded")]


def post(path: str = "/", headers: list[tuple[bytes, bytes]] | None = None, length: int | None = None) -> Any:
    extra = list(headers or [])
    if length is not None:
        extra.append((b"content-length", str(length).encode()))
    return make_scope("POST", path, headers=extra)


def answers(status: int, *, reads: int = 0, receive_after: int = 0) -> Any:
    """An app that reads ``reads`` body messages, answers ``status``, then receives ``receive_after`` more."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        for _ in range(reads):
            await receive()
        await send(
            {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]}
        )
        await send({"type": "http.response.body", "body": b"Method Not Allowed" if status == 405 else b"ok"})
        for _ in range(receive_after):
            await receive()

    return app


def transparent(app: Any, scope: Any, script: list[dict[str, Any]], **options: Any) -> Any:
    """The exchange with devsecmw; asserts the client and the app saw what they see without it,
    and what they saw with the read switched off (monitor mode before it existed)."""
    bare = drive(app, scope, script)
    before = drive_wrapped(app, scope, script, **{**options, "unread_timeout": 0})
    wrapped = drive_wrapped(app, scope, script, **options)
    assert wrapped.sent == bare.sent == before.sent, "the client got something else"
    assert wrapped.app_received == bare.app_received, "the app got something else"
    assert repr(wrapped.exception) == repr(bare.exception)
    return wrapped


def attrs(otel: Any) -> Any:
    return otel.server_spans()[-1].attributes


# --------------------------------------------------------------------------- the app never reads
@pytest.mark.parametrize("status", [405, 404, 200])
def test_an_unread_xxe_body_is_inspected_after_the_response(otel: Any, status: int) -> None:
    wrapped = transparent(answers(status), post("/api", XML, len(XXE)), body_messages(XXE), **otel.providers)
    assert wrapped.app_received == []
    assert wrapped.server_receives == 1  # the one body message, read by devsecmw after the response
    assert "xxe" in attrs(otel)["devsecmw.signal.types"]
    assert any(e["devsecmw.signal.location"].startswith("body") for e in otel.events())
    assert "devsecmw.inspection.incomplete" not in attrs(otel)


def test_with_unread_timeout_0_nothing_is_read(otel: Any) -> None:
    ex = drive_wrapped(answers(405), post("/", XML), body_messages(XXE), unread_timeout=0, **otel.providers)
    assert ex.server_receives == 0
    assert "xxe" not in attrs(otel)["devsecmw.signal.types"]


def test_the_read_comes_after_the_app_produced_its_last_message(otel: Any) -> None:
    order: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        order.append("app: start")
        await send({"type": "http.response.start", "status": 405, "headers": []})
        order.append("app: last body message")
        await send({"type": "http.response.body", "body": b""})

    async def server(scope: Any, receive: Any, send: Any) -> None:
        async def receive_logged() -> Any:
            order.append("server: receive")
            return await receive()

        async def send_logged(message: Any) -> None:
            order.append(f"server: send {message['type']}")
            await send(message)

        await SecurityMiddleware(app, **otel.providers)(scope, receive_logged, send_logged)

    drive(server, post("/", XML), body_messages(XXE))
    assert order == [
        "app: start",
        "server: send http.response.start",
        "app: last body message",
        "server: receive",
        "server: send http.response.body",
    ]
    assert "xxe" in attrs(otel)["devsecmw.signal.types"]


# --------------------------------------------------------------------------- partly read, fully read
def test_the_rest_of_a_half_read_body_is_inspected(otel: Any) -> None:
    script = [
        {"type": "http.request", "body": b"name=bob&", "more_body": True},
        {"type": "http.request", "body": SQLI_FORM[9:], "more_body": False},
    ]
    wrapped = transparent(answers(200, reads=1), post("/", FORM, len(SQLI_FORM)), script, **otel.providers)
    assert len(wrapped.app_received) == 1
    assert wrapped.server_receives == 2
    assert "sqli" in attrs(otel)["devsecmw.signal.types"]
    assert any(e["devsecmw.signal.location"] == "body:form:id" for e in otel.events())


def test_a_body_the_app_read_to_its_end_is_not_read_again(otel: Any) -> None:
    script = body_messages(SQLI_FORM, chunk=16)
    bare = drive(answers(200, reads=len(script)), post("/", FORM), script)
    wrapped = transparent(answers(200, reads=len(script)), post("/", FORM), script, **otel.providers)
    assert wrapped.server_receives == bare.server_receives == len(script)
    assert "sqli" in attrs(otel)["devsecmw.signal.types"]


@pytest.mark.parametrize(
    ("method", "headers"),
    [("GET", []), ("POST", [(b"content-length", b"0")]), ("POST", [(b"expect", b"100-continue")])],
    ids=["get-without-body", "content-length-0", "expect-100-continue"],
)
def test_nothing_is_read_when_there_is_no_body_or_the_client_holds_it_back(
    otel: Any, method: str, headers: list[tuple[bytes, bytes]]
) -> None:
    ex = drive_wrapped(
        answers(405), make_scope(method, "/", headers=headers), body_messages(XXE), **otel.providers
    )
    assert ex.server_receives == 0


def test_nothing_is_read_while_the_app_itself_waits_on_receive(otel: Any) -> None:
    # Starlette's StreamingResponse (ASGI spec < 2.4) listens for a disconnect while it streams.
    import asyncio

    async def app(scope: Any, receive: Any, send: Any) -> None:
        listener = asyncio.ensure_future(receive())
        await asyncio.sleep(0)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"streamed"})
        await listener

    # Nothing has arrived yet: the app's receive is in flight when it sends its last message.
    ex = drive_wrapped(app, post("/", FORM, 100), [], **otel.providers)
    assert ex.server_receives == 1  # the app's own receive only
    assert ex.app_received == [{"type": "http.disconnect"}]


# --------------------------------------------------------------------------- the app receives later
def test_an_app_receiving_after_its_response_gets_the_same_messages(otel: Any) -> None:
    script = body_messages(SQLI_FORM, chunk=20)
    wrapped = transparent(
        answers(405, receive_after=len(script) + 1), post("/", FORM), script, **otel.providers
    )
    assert wrapped.app_received[: len(script)] == script
    assert wrapped.app_received[-1] == {"type": "http.disconnect"}
    assert "sqli" in attrs(otel)["devsecmw.signal.types"]


# --------------------------------------------------------------------------- disconnect, slow client, cap
def test_a_client_that_disconnects_mid_body_is_inspected_on_what_arrived(otel: Any) -> None:
    script = [{"type": "http.request", "body": SQLI_FORM, "more_body": True}, {"type": "http.disconnect"}]
    wrapped = transparent(answers(405), post("/", FORM, 10_000), script, **otel.providers)
    assert wrapped.server_receives == 2
    assert "sqli" in attrs(otel)["devsecmw.signal.types"]


def test_nothing_is_read_once_the_app_received_a_disconnect(otel: Any) -> None:
    script = [{"type": "http.disconnect"}]
    ex = drive_wrapped(answers(499, reads=1), post("/", FORM, 100), script, **otel.providers)
    assert ex.server_receives == 1


def test_a_slow_client_is_not_waited_for_beyond_the_bound(otel: Any) -> None:
    # The first part has arrived; the rest never comes while the response is open (the harness's
    # receive blocks until the response is complete): the wait runs out, the response goes on.
    script = [{"type": "http.request", "body": SQLI_FORM, "more_body": True}]
    wrapped = transparent(
        answers(405), post("/", FORM, 10_000), script, unread_timeout=0.05, **otel.providers
    )
    assert "sqli" in attrs(otel)["devsecmw.signal.types"]  # what did arrive was inspected
    assert attrs(otel)["devsecmw.inspection.incomplete"] is True
    incomplete = [e for e in otel.events() if e["devsecmw.signal.type"] == "inspection_incomplete"]
    assert [e["devsecmw.signal.location"] for e in incomplete] == ["body.unread"]
    assert otel.error_count("body_unread", "timeout") == 1
    assert wrapped.sent[-1]["type"] == "http.response.body"


def test_a_client_that_sends_nothing_is_marked_incomplete(otel: Any) -> None:
    wrapped = transparent(answers(405), post("/", FORM, 10_000), [], unread_timeout=0.05, **otel.providers)
    assert wrapped.server_receives == 1  # one receive, left pending, then answered http.disconnect
    assert attrs(otel)["devsecmw.inspection.incomplete"] is True


def test_never_more_than_the_cap_is_read(otel: Any) -> None:
    body = b"x=" + b"a" * 298 + SQLI_FORM  # the attack lies beyond the cap
    script = body_messages(body, chunk=50)
    wrapped = transparent(answers(405), post("/", FORM, len(body)), script, body_limit=100, **otel.providers)
    assert wrapped.server_receives == 2  # 2 x 50 bytes: the cap
    assert "sqli" not in attrs(otel)["devsecmw.signal.types"]


# --------------------------------------------------------------------------- modes and spans
def test_block_mode_does_not_read_after_the_response(otel: Any) -> None:
    # Block mode read the body ahead (here: the whole of it) before the app ran; nothing more.
    script = body_messages(b"a=1")
    ex = drive_wrapped(answers(405), post("/", FORM), script, mode="block", **otel.providers)
    assert ex.server_receives == 1


def test_the_verdict_reaches_an_outer_instrumentations_span(otel: Any) -> None:
    app = OpenTelemetryMiddleware(
        SecurityMiddleware(answers(405), **otel.providers), tracer_provider=otel.providers["tracer_provider"]
    )
    drive(app, post("/api", XML), body_messages(XXE))
    spans = otel.server_spans()
    assert len(spans) == 1  # one server span, enriched
    assert "xxe" in spans[0].attributes["devsecmw.signal.types"]
    assert spans[0].attributes["devsecmw.classification"] == "attack"


@pytest.mark.internal_errors_expected
def test_a_detector_failing_on_the_unread_body_keeps_the_response_and_the_verdict(otel: Any) -> None:
    class Failing:
        def inspect(self, request: Any, phase: str, budget: Any = None) -> list[Any]:
            if phase == "body":
                raise RuntimeError("detector bug")
            return []

    wrapped = transparent(
        answers(404), post("/", XML), body_messages(XXE), detector=Failing(), **otel.providers
    )
    assert wrapped.server_receives == 1
    assert otel.error_count("inspect_body", "RuntimeError") >= 1
    assert attrs(otel)["devsecmw.signal.types"] == ("http_404",)

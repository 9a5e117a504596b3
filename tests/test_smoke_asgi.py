"""The ASGI path end to end on a toy app: signals on one server span, response untouched."""

from __future__ import annotations

import asyncio
from typing import Any

from devsecmw.asgi import SecurityMiddleware


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    status = 500 if b"boom" in body or scope["path"] == "/boom" else 200
    await send(
        {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]}
    )
    await send({"type": "http.response.body", "body": b"ok:" + body})


def run(mw: Any, path: str, query: bytes = b"", body: bytes = b"", headers: Any = ()) -> list[dict[str, Any]]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST" if body else "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"t")] + list(headers),
        "client": ("10.0.0.1", 1234),
        "server": ("127.0.0.1", 80),
    }
    queue = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(mw(scope, receive, send))
    return sent


def test_attack_in_query_is_a_signal_on_the_server_span(otel: Any) -> None:
    mw = SecurityMiddleware(app, **otel.providers)
    sent = run(mw, "/search", b"q=1%27%20UNION%20SELECT%20password%20FROM%20users--")
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"ok:"
    span = otel.span()
    assert span.attributes["devsecmw.classification"] == "attack"
    assert "sqli" in span.attributes["devsecmw.signal.types"]
    ev = otel.events()[0]
    assert ev["devsecmw.signal.location"] == "query:q"
    assert ev["security_rule.uuid"]


def test_attack_that_ends_in_500_is_attack_5xx(otel: Any) -> None:
    mw = SecurityMiddleware(app, **otel.providers)
    run(mw, "/boom", b"q=%3Cscript%3Ealert(1)%3C/script%3E")
    assert {"xss", "http_5xx", "attack_5xx"} <= otel.signal_types()


def test_benign_request_has_no_signal(otel: Any) -> None:
    mw = SecurityMiddleware(app, **otel.providers)
    run(mw, "/search", b"q=python+cookbook&page=2")
    assert otel.events() == []
    assert otel.span().attributes["devsecmw.classification"] == "benign"

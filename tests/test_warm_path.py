"""The warm request path: work skipped when it cannot find anything, with the same outcome.

A response no client receives a body for (HEAD, 1xx, 204, 304) is not sampled: what the app
hands over for it never reaches the client, so it cannot leak. A textual response with a body
is still sampled, whatever the request's method.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from devsecmw.asgi import SecurityMiddleware
from devsecmw.leaks import Sniffer

LEAK = b"<html><b>Warning</b>: mysql_fetch_array() ... You have an error in your SQL syntax"


def _app(status: int, body: bytes) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"text/html")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def _call(mw: Any, method: str) -> list[dict[str, Any]]:
    scope = {
        "type": "http",
        "method": method,
        "path": "/item",
        "raw_path": b"/item",
        "query_string": b"id=7",
        "headers": [],
        "client": ("203.0.113.5", 1),
        "server": ("127.0.0.1", 80),
        "scheme": "http",
        "http_version": "1.1",
        "root_path": "",
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(mw(scope, receive, send))
    return sent


@pytest.mark.parametrize(("method", "status"), [("GET", 200), ("POST", 500), ("GET", 404)])
def test_a_response_with_a_body_is_sampled(otel: Any, method: str, status: int) -> None:
    sent = _call(SecurityMiddleware(_app(status, LEAK), **otel.providers), method)
    assert sent[1]["body"] == LEAK  # forwarded untouched
    assert "response_leak" in otel.signal_types()


@pytest.mark.parametrize(("method", "status"), [("HEAD", 200), ("GET", 304), ("GET", 204), ("HEAD", 500)])
def test_a_response_without_a_body_is_not_sampled(
    otel: Any, monkeypatch: pytest.MonkeyPatch, method: str, status: int
) -> None:
    made: list[object] = []
    real = Sniffer.for_response.__func__  # type: ignore[attr-defined]

    def spy(cls: type[Sniffer], headers: Any, limit: int) -> Sniffer | None:
        made.append(headers)
        return real(cls, headers, limit)  # type: ignore[no-any-return]

    monkeypatch.setattr(Sniffer, "for_response", classmethod(spy))
    sent = _call(SecurityMiddleware(_app(status, LEAK), **otel.providers), method)
    assert sent[0]["status"] == status and sent[1]["body"] == LEAK  # the app's messages, as they were
    assert made == []  # no sample was even set up
    assert "response_leak" not in otel.signal_types()
    span = otel.span()
    assert span.attributes["http.response.status_code"] == status
    assert span.attributes["devsecmw.classification"] == ("anomaly" if status >= 500 else "benign")

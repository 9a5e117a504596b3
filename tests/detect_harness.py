"""Helpers for the detection tests: run a request through the engine or the ASGI middleware.

``engine_signals`` builds the request the way the ASGI adapter does (from a scope,
body appended as the app reads it) and runs both phases of a fresh
:class:`~devsecmw.engine.Engine`; ``asgi_signals`` goes through
:class:`devsecmw.asgi.SecurityMiddleware` and reads the span events, as the
referee does. ``rule_examples`` turns the ``examples`` of every rule of one
rule file into pytest parameters.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote_to_bytes

import pytest

import devsecmw.engine
from devsecmw.config import Config
from devsecmw.engine import Engine
from devsecmw.engine.rules import Rule, load_file
from devsecmw.request import from_asgi_scope
from devsecmw.signals import Signal

_ENGINES: dict[int, Engine] = {}


def engine(paranoia: int = 1) -> Engine:
    if paranoia not in _ENGINES:
        _ENGINES[paranoia] = Engine(Config(paranoia_level=paranoia))
    return _ENGINES[paranoia]


def scope_for(method: str, target: str, headers: list[tuple[str, str]]) -> dict[str, Any]:
    raw = target.encode("latin-1")
    path, _, query = raw.partition(b"?")
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": unquote_to_bytes(path).decode("utf-8", "replace"),
        "raw_path": path,
        "query_string": query,
        "root_path": "",
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers],
        "client": ("10.1.2.3", 50000),
        "server": ("127.0.0.1", 8000),
    }


BROWSER = [
    ("host", "app.example.test"),
    (
        "user-agent",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
    ),
    ("accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
]


@dataclass
class Req:
    """One request to inspect; ``form``/``json_body`` build the body and its Content-Type."""

    target: str = "/"
    method: str = "GET"
    headers: list[tuple[str, str]] | None = None
    body: bytes = b""
    content_type: str | None = None

    @classmethod
    def query(cls, name: str, value: str, path: str = "/search") -> Req:
        return cls(f"{path}?{quote(name)}={quote(value, safe='')}")

    @classmethod
    def form(cls, name: str, value: str, path: str = "/submit") -> Req:
        body = f"{quote(name)}={quote(value, safe='')}".encode()
        return cls(path, "POST", body=body, content_type="application/x-www-form-urlencoded")

    @classmethod
    def json_body(cls, doc: Any, path: str = "/api/submit") -> Req:
        return cls(path, "POST", body=json.dumps(doc).encode(), content_type="application/json")

    @classmethod
    def path(cls, raw_path: str) -> Req:
        return cls(raw_path)

    @classmethod
    def header(cls, name: str, value: str) -> Req:
        return cls("/", headers=[(name, value)])

    def all_headers(self) -> list[tuple[str, str]]:
        out = list(BROWSER)
        names = {k for k, _ in self.headers or []}
        out = [(k, v) for k, v in out if k not in names] + list(self.headers or [])
        if self.content_type:
            out.append(("content-type", self.content_type))
        if self.body:
            out.append(("content-length", str(len(self.body))))
        return out


def engine_signals(req: Req, paranoia: int = 1) -> list[Signal]:
    request = from_asgi_scope(scope_for(req.method, req.target, req.all_headers()))
    eng = engine(paranoia)
    out = eng.inspect(request, "head")
    if req.body:
        request.add_body(req.body, 1 << 20)
        request.body_complete = True
        out += eng.inspect(request, "body")
    return out


def asgi_signals(req: Req, otel: Any) -> list[dict[str, Any]]:
    """The ``devsecmw.signal`` span events of one request through the ASGI middleware."""
    from devsecmw.asgi import SecurityMiddleware

    async def app(scope: Any, receive: Any, send: Any) -> None:
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        await send({"type": "http.response.body", "body": b"ok"})

    messages = [{"type": "http.request", "body": req.body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await asyncio.sleep(0)
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        return None

    mw = SecurityMiddleware(app, **otel.providers)
    asyncio.run(mw(scope_for(req.method, req.target, req.all_headers()), receive, send))
    return list(otel.events())


def fired(signals: list[Signal], type_: str | None = None) -> set[tuple[str, str, str]]:
    """``(type, location, rule_id)`` of the signals (of one type when given)."""
    return {(s.type, s.location, s.rule_id or "") for s in signals if type_ is None or s.type == type_}


def types(signals: list[Signal]) -> set[str]:
    return {s.type for s in signals}


def rules_of(filename: str) -> list[Rule]:
    """The rules of one packaged file (parsed alone: another file's error is not this test's)."""
    path = Path(devsecmw.engine.__file__).parent / "rules" / filename
    return load_file(path)


def rule_examples(*filenames: str) -> list[Any]:
    """pytest params ``(rule, example, should_match)`` for every example of the files' rules."""
    params = []
    for filename in filenames:
        for rule in rules_of(filename):
            for i, ex in enumerate(rule.examples_match):
                params.append(pytest.param(rule, ex, True, id=f"{rule.id}-match-{i}"))
            for i, ex in enumerate(rule.examples_nomatch):
                params.append(pytest.param(rule, ex, False, id=f"{rule.id}-nomatch-{i}"))
    return params

"""Fail open (SPEC "Guarantees"): devsecmw's own errors never change what the app returns.

Each test breaks one part of devsecmw on purpose and asserts that the exchange
is byte-for-byte what it is without devsecmw, that the error was counted in
``devsecmw.errors`` and logged once per kind on the ``devsecmw`` logger.
Bad configuration, on the contrary, fails at construction, loudly.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from asgi_harness import (
    TestClient,
    body_messages,
    compare,
    make_scope,
    steady_time_budget,  # noqa: F401  (autouse: load-independent detection)
)
from starlette.applications import Starlette
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

import devsecmw.asgi
from devsecmw import ConfigError, _safety
from devsecmw.asgi import SecurityMiddleware
from devsecmw.core import Inspection
from devsecmw.engine import Budget
from devsecmw.request import HttpRequest
from devsecmw.signals import Signal
from devsecmw.telemetry import SpanHandle, Telemetry

SQLI = b"q=1%27%20UNION%20SELECT%20password%20FROM%20users--"
pytestmark = pytest.mark.internal_errors_expected


class Broken(Exception):
    """An internal devsecmw failure, simulated."""


class RaisingDetector:
    def __init__(self, phases: tuple[str, ...] = ("head", "body")) -> None:
        self.phases = phases

    def inspect(self, request: HttpRequest, phase: str, budget: Budget | None = None) -> list[Signal]:
        if phase in self.phases:
            raise Broken(f"detector failed in {phase}")
        return []


async def echo(request: Request) -> Response:
    body = await request.body()
    return JSONResponse({"len": len(body), "q": request.query_params.get("q")}, headers={"x-app": "1"})


async def stream(request: Request) -> Response:
    async def gen() -> Any:
        for i in range(3):
            yield b"%d," % i

    return StreamingResponse(gen())


async def fails(request: Request) -> Response:
    raise LookupError("the app's own bug")


APP = Starlette(routes=[Route("/echo", echo, methods=["GET", "POST"]), Route("/stream", stream)])
RAISING_APP = ExceptionMiddleware(Starlette(routes=[Route("/fails", fails)]).router)


@pytest.fixture(autouse=True)
def fresh_log_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    # "Logged once per kind" is process-wide; start each test with a clean memory.
    monkeypatch.setattr(_safety, "_logged", set())


def errors(otel: Any) -> dict[tuple[str, str], int]:
    return {
        (str(a["devsecmw.stage"]), str(a["error.type"])): int(p.value)
        for a, p in otel.metric_points("devsecmw.errors")
    }


def exchanges(otel: Any, **options: Any) -> None:
    """A GET with an attack, a POST with a body in chunks, and a streamed response."""
    compare(APP, make_scope("GET", "/echo", query=SQLI), **options, **otel.providers)
    script = body_messages(b'{"name": "alice"}' * 50, chunk=100)
    compare(APP, make_scope("POST", "/echo", headers=[(b"content-type", b"application/json")]), script,
            **options, **otel.providers)  # fmt: skip
    compare(APP, make_scope("GET", "/stream"), **options, **otel.providers)


# --------------------------------------------------------------------------- the detector
def test_detector_failure_in_every_phase(otel: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="devsecmw")
    exchanges(otel, detector=RaisingDetector())
    counted = errors(otel)
    assert counted[("inspect_head", "Broken")] == 3
    assert counted[("inspect_body", "Broken")] == 1
    # Logged once per kind (stage, error type), however many requests hit it.
    records = [r for r in caplog.records if r.name == "devsecmw"]
    assert sorted(r.getMessage().split(" in ")[1].split(" ")[0] for r in records) == [
        "inspect_body",
        "inspect_head",
    ]
    assert all(r.exc_info and isinstance(r.exc_info[1], Broken) for r in records)
    # Each request still got its span and verdict (what could be decided without the detector).
    assert len(otel.server_spans()) == 3
    assert all(s.attributes["devsecmw.classification"] == "benign" for s in otel.server_spans())


def test_detector_failure_on_a_partly_read_body_keeps_the_verdict(otel: Any) -> None:
    async def reads_one_chunk(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b"no"})

    script = body_messages(b"a=1&b=2" * 100, chunk=50)
    # unread_timeout=0: compare() counts the server's receives; the unread-body read has its own
    # fail-open test (tests/test_unread_body_asgi.py).
    compare(reads_one_chunk, make_scope("POST", "/x"), script, detector=RaisingDetector(("body",)),
            unread_timeout=0, **otel.providers)  # fmt: skip
    assert errors(otel)
    # The status signal survives the failed body inspection.
    assert otel.signal_types() == {"http_404"}


# --------------------------------------------------------------------------- telemetry
@pytest.mark.parametrize("method", ["start", "finish", "record_signal", "count_error"])
def test_telemetry_failure(otel: Any, monkeypatch: pytest.MonkeyPatch, method: str) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise Broken(method)

    monkeypatch.setattr(Telemetry, method, broken)
    exchanges(otel)
    if method == "start":
        assert otel.spans() == []  # devsecmw stood aside for these requests
    else:
        # Owned spans are still ended: nothing leaks, nothing stays open.
        assert len(otel.server_spans()) == 3


def test_span_context_failure(otel: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: Any) -> None:
        raise Broken("context")

    monkeypatch.setattr(SpanHandle, "activate", broken)
    exchanges(otel)
    assert errors(otel)[("context", "Broken")] == 3


def test_request_model_failure(otel: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(scope: Any) -> Any:
        raise Broken("scope")

    monkeypatch.setattr(devsecmw.asgi, "from_asgi_scope", broken)
    exchanges(otel)
    assert otel.spans() == []
    assert errors(otel)[("request", "Broken")] == 3


# --------------------------------------------------------------------------- the adapter's fences
@pytest.mark.parametrize(
    ("method", "stage"),
    [("body_chunk", "receive"), ("response_start", "send"), ("response_chunk", "send")],
)
def test_adapter_observation_failure_never_drops_a_message(
    otel: Any, monkeypatch: pytest.MonkeyPatch, method: str, stage: str
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise Broken(method)

    monkeypatch.setattr(Inspection, method, broken)
    exchanges(otel)
    assert errors(otel)[(stage, "Broken")] >= 1
    assert len(otel.server_spans()) == 3


def test_route_failure(otel: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(scope: Any) -> Any:
        raise Broken("route")

    monkeypatch.setattr(devsecmw.asgi, "route_from_scope", broken)
    exchanges(otel)
    assert errors(otel)[("route", "Broken")] >= 3
    assert all("http.route" not in s.attributes for s in otel.server_spans())


# --------------------------------------------------------------------------- the app's errors stay the app's
@pytest.mark.parametrize("broken_method", ["finish", "start", None])
def test_app_exception_passes_through_unchanged_even_when_devsecmw_fails(
    otel: Any, monkeypatch: pytest.MonkeyPatch, broken_method: str | None
) -> None:
    if broken_method is not None:

        def broken(*args: Any, **kwargs: Any) -> Any:
            raise Broken(broken_method)

        monkeypatch.setattr(Telemetry, broken_method, broken)
    seen: list[BaseException] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        try:
            await RAISING_APP(scope, receive, send)
        except BaseException as exc:
            seen.append(exc)
            raise

    _, wrapped = compare(app, make_scope("GET", "/fails", query=SQLI), **otel.providers)
    assert isinstance(wrapped.exception, LookupError)
    assert wrapped.exception is seen[-1]  # the very object the app raised
    assert not isinstance(wrapped.exception, Broken)


# --------------------------------------------------------------------------- bad configuration fails fast
@pytest.mark.parametrize(
    ("options", "error", "words"),
    [
        ({"mode": "blok"}, ConfigError, ["mode", "'blok'", "monitor", "block"]),
        ({"paranoia_level": 7}, ConfigError, ["paranoia_level", "1, 2, 3 or 4"]),
        ({"body_limit": -1}, ConfigError, ["body_limit", ">= 0"]),
        ({"time_budget": 0}, ConfigError, ["time_budget", "> 0"]),
        ({"bodylimit": 10}, TypeError, ["'bodylimit'", "body_limit"]),
    ],
)
def test_bad_configuration_fails_at_construction(
    options: dict[str, Any], error: type[Exception], words: list[str]
) -> None:
    with pytest.raises(error) as info:
        SecurityMiddleware(APP, **options)
    for word in words:
        assert word in str(info.value)


def test_bad_configuration_stops_a_starlette_app_at_startup() -> None:
    app = Starlette(routes=[Route("/echo", echo)])
    app.add_middleware(SecurityMiddleware, mode="blok")
    with pytest.raises(ConfigError, match="mode"), TestClient(app):
        pass  # Starlette builds its middleware stack on the first event: lifespan startup

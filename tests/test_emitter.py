"""The output seam: a second output, added in this one file, receives what the span receives."""

from __future__ import annotations

import dataclasses
import json
import logging
import warnings
from typing import Any

import pytest

from devsecmw.config import Config, ConfigError
from devsecmw.signals import Signal
from devsecmw.telemetry.emitter import Emission, Emitter, LoggingEmitter

SQLI = "1' UNION SELECT password FROM users--"
SQL_ERROR = "<p>You have an error in your SQL syntax near 'x'</p>"


class ListEmitter:
    """The smallest output: keeps every emission."""

    def __init__(self) -> None:
        self.emissions: list[Emission] = []

    def emit(self, emission: Emission) -> None:
        self.emissions.append(emission)


class Broken:
    def emit(self, emission: Emission) -> None:
        raise RuntimeError("output down")


def _client(**options: Any) -> Any:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, Response
    from starlette.routing import Route

    from devsecmw.asgi import SecurityMiddleware

    async def item(request: Request) -> Response:
        if request.query_params.get("leak"):
            return HTMLResponse(SQL_ERROR, status_code=500)
        return JSONResponse({"id": request.path_params["item_id"]})

    app = Starlette(
        routes=[Route("/items/{item_id:int}", item)],
        middleware=[Middleware(SecurityMiddleware, **options)],
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Using `httpx` with `starlette.testclient` is deprecated")
        from starlette.testclient import TestClient
    return TestClient(app)


def _traffic(client: Any) -> list[int]:
    return [
        client.get("/items/1").status_code,
        client.get("/items/2", params={"q": SQLI}).status_code,
        client.get("/items/3", params={"leak": "1"}).status_code,
        client.get("/items/3", params={"leak": "1", "q": SQLI}).status_code,
        client.get("/nowhere").status_code,
    ]


def _signals_of(span: Any) -> list[tuple[Any, ...]]:
    return sorted(
        (
            e.attributes["devsecmw.signal.type"],
            e.attributes["devsecmw.signal.location"],
            e.attributes.get("security_rule.uuid"),
            e.attributes["devsecmw.signal.severity"],
            e.attributes["devsecmw.signal.evidence"],
        )
        for e in span.events
        if e.name == "devsecmw.signal"
    )


def _signals(emission: Emission) -> list[tuple[Any, ...]]:
    distinct = {s.key: s for s in emission.verdict.signals}.values()
    return sorted((s.type, s.location, s.rule_id, int(s.severity), s.evidence) for s in distinct)


def test_a_second_output_receives_what_the_span_receives(otel: Any) -> None:
    out = ListEmitter()
    assert isinstance(out, Emitter)
    with _client(emitters=[out], **otel.providers) as client:
        assert _traffic(client) == [200, 200, 500, 500, 404]
    spans = {format(s.context.trace_id, "032x"): s for s in otel.spans() if "devsecmw.score" in s.attributes}
    assert len(out.emissions) == len(spans) == 5
    kinds = set()
    for emission in out.emissions:
        span = spans[format(emission.span.span.get_span_context().trace_id, "032x")]
        assert _signals(emission) == _signals_of(span)
        assert emission.verdict.classification == span.attributes["devsecmw.classification"]
        assert emission.verdict.score == span.attributes["devsecmw.score"]
        assert emission.verdict.blocked is span.attributes["devsecmw.blocked"] is False
        assert emission.status == span.attributes["http.response.status_code"]
        assert emission.duration > 0
        kinds.add(tuple(sorted({s.type for s in emission.verdict.signals})))
    # The traffic covered benign, attack, leak, leak after attack and a status signal.
    assert kinds >= {(), ("sqli",), ("http_5xx", "response_leak"), ("http_404",)}
    assert ("attack_5xx", "http_5xx", "response_leak", "sqli") in kinds


def test_before_emit_is_the_seams_hook_for_every_output(otel: Any) -> None:
    def hook(signal: Signal) -> Signal | None:
        if signal.type == "response_leak":
            return None  # dropped everywhere, and from the score
        return dataclasses.replace(signal, evidence="[reviewed]")

    out = ListEmitter()
    with _client(emitters=[out], before_emit=hook, **otel.providers) as client:
        client.get("/items/3", params={"leak": "1", "q": SQLI})
    [emission] = out.emissions
    span = otel.span()
    assert _signals(emission) == _signals_of(span)
    assert {s.type for s in emission.verdict.signals} == {"sqli", "http_5xx", "attack_5xx"}
    assert {s.evidence for s in emission.verdict.signals} == {"[reviewed]"}
    assert (
        span.attributes["devsecmw.score"]
        == emission.verdict.score
        == sum(int(s.severity) for s in emission.verdict.signals)
    )


@pytest.mark.internal_errors_expected
def test_a_failing_output_fails_open(otel: Any) -> None:
    after = ListEmitter()
    with _client(emitters=[Broken(), after], **otel.providers) as client:
        response = client.get("/items/2", params={"q": SQLI})
    assert response.status_code == 200 and response.json() == {"id": 2}
    assert otel.span().attributes["devsecmw.classification"] == "attack"
    assert len(after.emissions) == 1  # the outputs after the broken one still run
    assert otel.error_count("emit", "RuntimeError") == 1


def test_the_logging_output_from_a_dotted_name(otel: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="devsecmw.signals")
    with _client(emitters="devsecmw.telemetry.emitter:LoggingEmitter", **otel.providers) as client:
        client.get("/items/1")
        client.get("/items/2", params={"q": SQLI, "password": "hunter2-s3cret"})
    records = [json.loads(r.getMessage()) for r in caplog.records if r.name == "devsecmw.signals"]
    assert len(records) == 1  # a request with no signal logs nothing
    [record] = records
    span = otel.spans()[-1]
    assert record["trace_id"] == format(span.context.trace_id, "032x")
    assert record["route"] == "/items/{item_id:int}"
    assert record["classification"] == "attack" and record["status"] == 200
    assert {s["type"] for s in record["signals"]} == {"sqli"}
    assert "hunter2" not in json.dumps(record)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ([object()], "is not an output"),
        ("json:dumps", "is not an output"),
        ("devsecmw.nowhere:Out", "cannot import"),
        ("LoggingEmitter", "is not an output"),
    ],
)
def test_bad_outputs_fail_at_start_up(value: Any, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        Config.from_options({"emitters": value}, environ={})


def test_outputs_from_the_environment_and_objects() -> None:
    name = "devsecmw.telemetry.emitter:LoggingEmitter"
    env = {"DEVSECMW_EMITTERS": f"{name}, {name}"}
    config = Config.from_options(environ=env)
    assert [type(e) for e in config.emitters] == [LoggingEmitter, LoggingEmitter]
    out = ListEmitter()
    assert Config.from_options({"emitters": out}, environ={}).emitters == (out,)
    assert Config.from_options(environ={}).emitters == ()

"""The block gate and span ownership of ``core.Inspection``, written once for every adapter.

Driven on the request model directly (the adapters' use of it is the contract suite):
``gate()`` says BLOCK, READ_AHEAD or RUN; ``block_answer(build)`` hands the rendered response
to the adapter's ``build`` and records it; the route is asked of the adapter once the app has
routed; ``sending_last()`` writes the verdict early only on a span devsecmw does not own.
"""

from __future__ import annotations

from typing import Any

import pytest
from asgi_harness import make_scope
from opentelemetry import trace

from devsecmw.core import BLOCK, READ_AHEAD, RUN, Inspection, Runtime
from devsecmw.request import from_asgi_scope

SQLI = b"q=1%27%20UNION%20SELECT%20password%20FROM%20users--"
FORM = [(b"content-type", b"application/x-www-form-urlencoded"), (b"content-length", b"40")]


def begin(otel: Any, scope: dict[str, Any], route: Any = None, **options: Any) -> Inspection:
    runtime = Runtime.from_options(**otel.providers, **options)
    insp = runtime.begin(from_asgi_scope(scope), route)
    assert insp is not None
    return insp


def build(status: int, headers: list[tuple[str, str]], body: bytes) -> tuple[int, dict[str, str], bytes]:
    return status, dict(headers), body


def test_monitor_mode_always_runs_the_app(otel: Any) -> None:
    insp = begin(otel, make_scope(query=SQLI))
    assert insp.gate() == RUN
    insp.finish()
    span = otel.span()
    assert span.attributes["devsecmw.would_block"] is True and span.attributes["devsecmw.blocked"] is False


def test_the_head_alone_decides_a_block(otel: Any) -> None:
    insp = begin(otel, make_scope(query=SQLI), mode="block")
    assert insp.gate() == BLOCK
    status, headers, body = insp.block_answer(build) or (0, {}, b"")
    assert status == 403 and body and "content-type" in {k.lower() for k in headers}
    assert insp.blocked and insp.status == 403
    insp.finish()
    assert otel.span().attributes["devsecmw.blocked"] is True


def test_a_request_with_a_body_is_read_ahead_once_then_decided_on_it(otel: Any) -> None:
    insp = begin(otel, make_scope("POST", headers=FORM), mode="block")
    assert insp.gate() == READ_AHEAD
    insp.body_chunk(b"name=bob&" + SQLI, more=False)  # what the tap read ahead
    insp.body_ahead_end()
    assert insp.gate() == BLOCK
    clean = begin(otel, make_scope("POST", headers=FORM), mode="block")
    assert clean.gate() == READ_AHEAD
    clean.body_chunk(b"name=bob&comment=hello", more=False)
    clean.body_ahead_end()
    assert clean.gate() == RUN and clean.gate() == RUN  # never sent to read twice


def test_a_head_request_is_answered_without_a_body(otel: Any) -> None:
    insp = begin(otel, make_scope("HEAD", query=SQLI), mode="block")
    assert insp.gate() == BLOCK
    answer = insp.block_answer(build)
    assert answer is not None and answer[0] == 403 and answer[2] == b""


@pytest.mark.internal_errors_expected
def test_an_answer_the_adapter_cannot_build_lets_the_app_run(otel: Any) -> None:
    def broken(status: int, headers: list[tuple[str, str]], body: bytes) -> Any:
        raise ValueError("the framework refused a header")

    insp = begin(otel, make_scope(query=SQLI), mode="block")
    assert insp.gate() == BLOCK
    assert insp.block_answer(broken) is None
    assert not insp.blocked and insp.status is None  # the app runs: nothing recorded as sent
    insp.response_start(200)
    insp.finish()
    assert otel.error_count("block_response", "ValueError") == 1
    span = otel.span()
    assert (
        span.attributes["devsecmw.blocked"] is False and span.attributes["http.response.status_code"] == 200
    )


def test_the_route_is_asked_once_the_app_has_routed(otel: Any) -> None:
    asked: list[str] = []

    def route() -> str | None:
        asked.append("route")
        return None if len(asked) == 1 else "/items/{id}"

    insp = begin(otel, make_scope(path="/items/7"), route)
    assert asked == []  # not before the app ran
    insp.response_start(200)  # not routed yet (e.g. a middleware answered): asked again at the end
    insp.finish()
    assert asked == ["route", "route"]
    assert otel.span().attributes["http.route"] == "/items/{id}"


@pytest.mark.internal_errors_expected
def test_a_failing_route_lookup_is_reported_and_the_request_goes_on(otel: Any) -> None:
    def route() -> str | None:
        raise KeyError("router")

    insp = begin(otel, make_scope(path="/items/7"), route)
    insp.response_start(200)
    insp.finish()
    assert otel.error_count("route", "KeyError") >= 1
    assert "http.route" not in otel.span().attributes


def test_the_verdict_is_written_before_the_last_message_only_on_a_span_not_ours(otel: Any) -> None:
    own = begin(otel, make_scope())
    own.response_start(200)
    own.sending_last()
    assert not own.finished  # our span ends after the last byte went
    own.finish()
    tracer = otel.tracer_provider.get_tracer("outer")
    with tracer.start_as_current_span("outer", kind=trace.SpanKind.SERVER):
        outer = begin(otel, make_scope())
        assert not outer.owns_span()
        outer.response_start(200)
        outer.sending_last()
        assert outer.finished  # the outer instrumentation ends its span as the message passes


def test_with_records_the_apps_exception_and_passes_it_on(otel: Any) -> None:
    insp = begin(otel, make_scope())
    with pytest.raises(RuntimeError, match="app failed"), insp:
        assert trace.get_current_span() is not trace.INVALID_SPAN  # devsecmw's span is current
        raise RuntimeError("app failed")
    assert insp.finished and trace.get_current_span() is trace.INVALID_SPAN
    span = otel.span()
    assert span.attributes["error.type"] == "RuntimeError"

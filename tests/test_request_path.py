"""The request path's shortcuts change no result: each one is pinned against the long way round.

The per-request fast paths (extract only when a propagation header is present, ready-made
metric attributes, early exits for requests with nothing to report, the context switch around
the server's ``send``/``receive``) must give exactly what the general path gives.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from asgi_harness import drive, make_scope
from opentelemetry import baggage, propagate, trace
from opentelemetry import context as otel_context
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import CarrierT, Getter, Setter, TextMapPropagator
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from devsecmw import core, telemetry
from devsecmw.asgi import SecurityMiddleware

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01".encode()


async def ok_app(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
def textmap() -> Iterator[None]:
    """Tests here replace the global propagator: put the original back."""
    original = propagate.get_global_textmap()
    yield
    propagate.set_global_textmap(original)


class _XTrace(TextMapPropagator):
    """A non-W3C propagator: the parent comes from ``x-trace: <32 hex>-<16 hex>``."""

    def extract(
        self,
        carrier: CarrierT,
        context: otel_context.Context | None = None,
        getter: Getter[CarrierT] = ...,  # type: ignore[assignment]
    ) -> otel_context.Context:
        values = getter.get(carrier, "x-trace")
        if not values:
            return context if context is not None else otel_context.Context()
        tid, sid = values[0].split("-")
        parent = SpanContext(int(tid, 16), int(sid, 16), is_remote=True, trace_flags=TraceFlags(1))
        return trace.set_span_in_context(NonRecordingSpan(parent), context)

    def inject(
        self, carrier: CarrierT, context: otel_context.Context | None = None, setter: Setter[CarrierT] = ...
    ) -> None:  # type: ignore[assignment]
        pass

    @property
    def fields(self) -> set[str]:
        return set()  # says nothing about what extract reads: devsecmw must extract anyway


# --------------------------------------------------------------------------- propagation
def test_the_default_propagators_have_a_plan() -> None:
    default = CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])
    assert telemetry._extract_plan(default) == (("traceparent", "baggage"), telemetry._EMPTY_CONTEXT)
    # Baggage first: without headers extract returns the current context (None: start_span's default).
    reverse = CompositePropagator([W3CBaggagePropagator(), TraceContextTextMapPropagator()])
    assert telemetry._extract_plan(reverse) == (("baggage", "traceparent"), None)
    assert telemetry._extract_plan(TraceContextTextMapPropagator()) == (
        ("traceparent",),
        telemetry._EMPTY_CONTEXT,
    )


def test_an_unknown_propagator_has_no_plan() -> None:
    assert telemetry._extract_plan(_XTrace()) is None
    assert telemetry._extract_plan(CompositePropagator([TraceContextTextMapPropagator(), _XTrace()])) is None


@pytest.mark.parametrize(
    "textmap_",
    [
        CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()]),
        CompositePropagator([W3CBaggagePropagator(), TraceContextTextMapPropagator()]),
        CompositePropagator([]),
        _XTrace(),
    ],
    ids=["default", "baggage-first", "empty", "custom"],
)
@pytest.mark.parametrize("headers", [[], [(b"traceparent", TRACEPARENT)], [(b"baggage", b"k=v")]])
def test_the_span_starts_where_extract_says(
    otel: Any, textmap: None, textmap_: TextMapPropagator, headers: list[tuple[bytes, bytes]]
) -> None:
    """With or without a propagation header, under a current span: the same parent as a plain extract."""
    propagate.set_global_textmap(textmap_)
    outer = otel.tracer_provider.get_tracer("other").start_span("outer")
    outer.end()  # current but not recording: devsecmw starts its own span
    scope = make_scope("GET", "/", headers=headers)
    request_headers = {k.decode(): v.decode() for k, v in scope["headers"]}
    token = otel_context.attach(baggage.set_baggage("b", "1", trace.set_span_in_context(outer)))
    try:
        expected = trace.get_current_span(propagate.extract(request_headers)).get_span_context()
        drive(SecurityMiddleware(ok_app, **otel.providers), scope)
    finally:
        otel_context.detach(token)
    [span] = [s for s in otel.server_spans() if s.instrumentation_scope.name == "devsecmw"]
    if expected.is_valid:
        assert span.parent is not None and span.parent.span_id == expected.span_id
        assert span.context.trace_id == expected.trace_id
    else:
        assert span.parent is None


def test_a_custom_propagator_is_always_asked(otel: Any, textmap: None) -> None:
    propagate.set_global_textmap(_XTrace())
    headers = [(b"x-trace", f"{TRACE_ID}-00f067aa0ba902b7".encode())]
    drive(SecurityMiddleware(ok_app, **otel.providers), make_scope("GET", "/", headers=headers))
    [span] = otel.server_spans()
    assert format(span.context.trace_id, "032x") == TRACE_ID


def test_a_replaced_global_propagator_is_noticed(otel: Any, textmap: None) -> None:
    app = SecurityMiddleware(ok_app, **otel.providers)
    headers = [(b"x-trace", f"{TRACE_ID}-00f067aa0ba902b7".encode())]
    drive(app, make_scope("GET", "/", headers=headers))  # the default propagators: x-trace means nothing
    propagate.set_global_textmap(_XTrace())
    drive(app, make_scope("GET", "/", headers=headers))
    first, second = otel.server_spans()
    assert first.parent is None
    assert second.parent is not None and format(second.context.trace_id, "032x") == TRACE_ID


# --------------------------------------------------------------------------- metrics
def test_ready_metric_attributes_equal_fresh_ones(otel: Any) -> None:
    """Reused attribute dicts: the same points as dicts built per request, and never shared mutably."""
    app = SecurityMiddleware(ok_app, **otel.providers)
    for query in (b"", b"q=1", b"id=1%27%20UNION%20SELECT%20password%20FROM%20users--", b"q=2"):
        drive(app, make_scope("GET", "/items", query=query))
    requests = sorted((sorted(a.items()), p.value) for a, p in otel.metric_points("devsecmw.requests"))
    assert requests == [
        (
            [
                ("devsecmw.attack.type", "sqli"),
                ("devsecmw.classification", "attack"),
                ("devsecmw.would_block", True),
                ("http.request.method", "GET"),
                ("http.response.status_code", 200),
            ],
            1,
        ),
        (
            [
                ("devsecmw.classification", "benign"),
                ("http.request.method", "GET"),
                ("http.response.status_code", 200),
            ],
            3,
        ),
    ]
    [(attrs, point)] = [
        (a, p) for a, p in otel.metric_points("devsecmw.signals") if a["devsecmw.signal.type"] == "sqli"
    ]
    assert point.value == 1
    assert attrs == {
        "devsecmw.classification": "attack",
        "devsecmw.signal.type": "sqli",
        "devsecmw.signal.kind": "attack",
        "http.request.method": "GET",
        "http.response.status_code": 200,
    }
    durations = {
        tuple(sorted(a.items())): p.count for a, p in otel.metric_points("devsecmw.inspection.duration")
    }
    assert durations == {
        (("devsecmw.classification", "attack"), ("http.request.method", "GET")): 1,
        (("devsecmw.classification", "benign"), ("http.request.method", "GET")): 3,
    }


def test_metric_attribute_cache_is_bounded(otel: Any) -> None:
    tel = telemetry.Telemetry(**otel.providers)
    from devsecmw.request import HttpRequest
    from devsecmw.signals import Verdict

    for i in range(telemetry._MAX_METRIC_KEYS + 10):
        req = HttpRequest("GET", "/", "/", route=f"/r{i}")
        tel._metrics(req, Verdict(), req.route, 200, 0.0)
    assert len(tel._metric_attrs) <= telemetry._MAX_METRIC_KEYS


# --------------------------------------------------------------------------- url.query
def test_url_query_is_scrubbed_the_same_from_the_cache(otel: Any) -> None:
    app = SecurityMiddleware(ok_app, **otel.providers, redact_names=("licence",))
    queries = [b"q=shoes&password=hunter2", b"licence=ABC-123&page=2", b"q=shoes&password=hunter2", b"q=1"]
    for query in queries:
        drive(app, make_scope("GET", "/", query=query))
    assert [s.attributes["url.query"] for s in otel.server_spans()] == [
        "q=shoes&password=REDACTED",
        "licence=REDACTED&page=2",  # the configured secret names apply to url.query too
        "q=shoes&password=REDACTED",
        "q=1",
    ]


def test_scrubbed_query_cache_is_bounded(otel: Any) -> None:
    tel = telemetry.Telemetry(**otel.providers)
    from devsecmw.request import HttpRequest

    for i in range(telemetry._MAX_CACHED_VALUES + 10):
        tel.start(HttpRequest("GET", f"/?page={i}", "/", query_string=f"page={i}")).span.end()
    tel.start(HttpRequest("GET", "/", "/", query_string="q=" + "x" * 300)).span.end()
    assert 0 < len(tel._scrubbed) <= telemetry._MAX_CACHED_VALUES
    assert all(len(value) <= telemetry._MAX_CACHED_VALUE for _, value in tel._scrubbed)


# --------------------------------------------------------------------------- inside OpenTelemetry
def test_inside_an_outer_server_span_devsecmw_starts_nothing_and_extracts_nothing(
    otel: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Enriching the outer instrumentation's span: no span of its own, no extract, no context switch."""
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("not on the enrich path")

    app = SecurityMiddleware(ok_app, **otel.providers)
    monkeypatch.setattr(telemetry.propagate, "extract", refuse)
    monkeypatch.setattr(app.runtime.telemetry.tracer, "start_span", refuse)
    monkeypatch.setattr(core, "attach_context", refuse)  # devsecmw's own step out of its context
    outer = OpenTelemetryMiddleware(
        app, tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider
    )
    sqli = b"id=1%27%20UNION%20SELECT%20password%20FROM%20users--"
    # A traceparent: devsecmw on its own would extract it; inside, the outer middleware did.
    ex = drive(outer, make_scope("GET", "/", query=sqli, headers=[(b"traceparent", TRACEPARENT)]))
    assert ex.sent[0]["status"] == 200
    [span] = otel.server_spans()
    assert span.instrumentation_scope.name != "devsecmw"
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.attributes["devsecmw.classification"] == "attack"
    assert [a["devsecmw.classification"] for a, _ in otel.metric_points("devsecmw.requests")] == ["attack"]


# --------------------------------------------------------------------------- activation
def test_reactivation_reuses_the_context_only_from_the_same_outer_context(otel: Any) -> None:
    span = otel.tracer_provider.get_tracer("t").start_span("s")
    handle = telemetry.SpanHandle(span, owned=True)
    handle.activate()
    first = otel_context.get_current()
    handle.deactivate()
    handle.activate()  # the next WSGI chunk: same server context, same context with the span
    assert otel_context.get_current() is first and trace.get_current_span() is span
    handle.deactivate()
    token = otel_context.attach(baggage.set_baggage("k", "v"))
    try:
        handle.activate()  # another outer context: a new one, made from it
        assert otel_context.get_current() is not first
        assert trace.get_current_span() is span and baggage.get_baggage("k") == "v"
        assert handle.outer is not None and baggage.get_baggage("k", handle.outer) == "v"
        handle.deactivate()
    finally:
        otel_context.detach(token)
    assert trace.get_current_span() is not span and handle.outer is None
    span.end()


def test_a_route_that_is_not_text_on_an_outer_span_is_counted_uncached(otel: Any) -> None:
    """Another instrumentation's ``http.route`` may hold anything: counted as given, never a cache key."""
    from devsecmw.request import HttpRequest
    from devsecmw.signals import Verdict

    class ForeignSpan(NonRecordingSpan):
        attributes = {"http.route": ["/a", "/b"], "http.response.status_code": 204}

    tel = telemetry.Telemetry(**otel.providers)
    handle = telemetry.SpanHandle(ForeignSpan(trace.INVALID_SPAN_CONTEXT), owned=False)
    tel.finish(handle, HttpRequest("GET", "/a", "/a"), Verdict(), None, None, 0.001)
    [(attrs, point)] = otel.metric_points("devsecmw.requests")
    assert attrs["http.route"] == ("/a", "/b") and attrs["http.response.status_code"] == 204
    assert point.value == 1 and tel._metric_attrs == {}

"""All emission to OpenTelemetry happens here: spans, span events, metrics.

- When a recording span is already current (an OpenTelemetry instrumentation
  runs outside), devsecmw enriches it; otherwise it starts its own SERVER span
  following the stable HTTP semantic conventions.
- One ``devsecmw.signal`` event per distinct signal (at most ``max_events``;
  the rest are counted in ``devsecmw.signals.dropped``).
- Metrics carry bounded attributes only: signal type and kind, classification,
  primary attack type, blocked / would-block, route template, method, final
  status. Never a client address, a raw path or a value.

Signals pass through :meth:`Telemetry.record_signal` only, so they can move to
log-based events when OpenTelemetry retires span events without touching
anything else.

The package: :class:`Telemetry` here (the only object the core talks to); ``names`` (SPEC.md's
attribute names), ``attributes`` (bounded values: method, primary attack type, game-day run id),
``propagation`` (reading trace headers cheaply), ``spans`` (the span handle, an owned span's end)
and ``instruments`` (counters over in-process totals, attribute sets built once). Names other modules
and tests use are re-exported here.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, propagate, trace
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace import SpanContext, SpanKind

from .. import __version__
from ..redact import DEFAULT_ATTRIBUTE_LIMIT, MAX_EVIDENCE, scrub_location, truncate
from ..request import HttpRequest
from ..response import leak_after_attack
from ..signals import Signal, Verdict
from .attributes import (
    _attr,
    event_attributes,
    gameday_run_id,
    normalize_method,
    primary_attack_type,
)
from .instruments import (
    _MAX_METRIC_KEYS,
    _MAX_TOTALS,
    _MetricAttrs,
    _MetricKey,
    _totals_for,
)
from .names import (
    ATTR_ATTACK_TYPE as ATTR_ATTACK_TYPE,
)
from .names import (
    ATTR_BLOCKED,
    ATTR_CLASSIFICATION,
    ATTR_CLIENT_FLAGGED,
    ATTR_DROPPED,
    ATTR_EVIDENCE,
    ATTR_GAMEDAY_RUN_ID,
    ATTR_INCOMPLETE,
    ATTR_LEAK_AFTER_ATTACK,
    ATTR_LOCATION,
    ATTR_RULE_CATEGORY,
    ATTR_RULE_ID,
    ATTR_RULE_NAME,
    ATTR_RULESET,
    ATTR_SCORE,
    ATTR_SEVERITY,
    ATTR_TYPE,
    ATTR_TYPES,
    ATTR_WOULD_BLOCK,
    DURATION_BUCKETS,
    EVENT_NAME,
    KNOWN_METHODS,
    MAX_LOCATION,
    SCHEMA_URL,
)
from .names import (
    ATTR_SIGNAL_KIND as ATTR_SIGNAL_KIND,
)
from .names import (
    GAMEDAY_HEADER as GAMEDAY_HEADER,
)
from .propagation import _EMPTY_CONTEXT as _EMPTY_CONTEXT
from .propagation import _extract_plan, _Plan, _request_getter
from .spans import (
    _HEADER,
    _MAX_CACHED_HEAD,
    _MAX_CACHED_HEADS,
    _MAX_CACHED_VALUE,
    _MAX_CACHED_VALUES,
    _PATH,
    _QUERY,
    _SCRUBBERS,
    SpanHandle,
    finish_owned,
)

#: Signals whose event attributes are kept ready (see ``Telemetry._event_attrs``).
_MAX_EVENT_ATTRS = 512


class Telemetry:
    """Tracer and instruments, created once per middleware instance."""

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        max_events: int = 32,
        redact_names: tuple[str, ...] = (),
        attribute_limit: int = DEFAULT_ATTRIBUTE_LIMIT,
    ) -> None:
        self.tracer = trace.get_tracer("devsecmw", __version__, tracer_provider, schema_url=SCHEMA_URL)
        meter = metrics.get_meter("devsecmw", __version__, meter_provider, schema_url=SCHEMA_URL)
        self.max_events = max_events
        self.redact_names = redact_names
        #: Cap of the attributes that copy request data (path, query, user agent).
        self.attribute_limit = attribute_limit
        #: ``url.path``, ``url.query``, ``user_agent.original`` and ``server.address`` as they may
        #: leave the process, by (kind, value): the same values come back (endpoints, pagination,
        #: polling, a client's user agent), and scrubbing one with escapes or tokens costs a few
        #: microseconds. Bounded; only short values are kept.
        self._scrubbed: dict[tuple[int, str], str] = {}
        #: The head's span attributes (name, before and after the client's) by the head's values.
        self._heads: dict[tuple[Any, ...], tuple[str, dict[str, Any], dict[str, Any]]] = {}
        # devsecmw.requests and devsecmw.signals: asynchronous counters over in-process totals.
        self.requests, self.signals = _totals_for(meter, _MAX_TOTALS)
        self.duration = meter.create_histogram(
            "devsecmw.inspection.duration",
            unit="s",
            description="Time devsecmw spent inspecting one request.",
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        )
        self.errors = meter.create_counter(
            "devsecmw.errors",
            unit="{error}",
            description="devsecmw internal errors (each failed open: the request went on).",
        )
        self._textmap: TextMapPropagator | None = None
        self._plan: _Plan | None = None
        # Metric attribute dicts by metric key (see _MetricAttrs): a bounded space by design, so
        # most requests reuse ready dicts instead of building three per request.
        self._metric_attrs: dict[_MetricKey, _MetricAttrs] = {}
        #: Event attributes by signal: the same findings come back request after request (every
        #: 404's ``http_404``, a rule on a recurring value), and their location is scrubbed and
        #: their dict built once. Never mutated (the SDK copies what it keeps); bounded.
        self._event_attrs: dict[Signal, dict[str, Any]] = {}

    def _parent(self, request: HttpRequest) -> otel_context.Context | None:
        """The context the server span starts in: ``extract`` only when it can find something."""
        textmap = propagate.get_global_textmap()
        if textmap is not self._textmap:  # set_global_textmap may replace it at any time
            self._plan = _extract_plan(textmap)
            self._textmap = textmap
        plan = self._plan
        if plan is not None:
            headers, without = plan
            for h in headers:
                if request.header(h) is not None:
                    break
            else:
                return without
        return propagate.extract(request, getter=_request_getter)

    # ------------------------------------------------------------------ spans
    def start(self, request: HttpRequest, flagged: bool = False) -> SpanHandle:
        """The request's span (``flagged``: it comes from a flagged client, said at finish)."""
        current = trace.get_current_span()
        if current.is_recording():
            # An instrumentation outside already owns the server span. (A current span that is
            # not recording, sampled out or ended, is not ours to enrich: devsecmw starts its own,
            # from the request's propagation headers like any server span, a root without them.)
            return SpanHandle(current, False, flagged=flagged)
        ua = request.header("user-agent")
        # The attributes of the request's head but the client's, built and scrubbed once per
        # distinct head: a client repeats its requests, and so do the clients of an API.
        key = (request.method, request.path, request.scheme, request.query_string, request.server_address,
               request.server_port, ua, request.http_version)  # fmt: skip
        parts = self._heads.get(key)
        if parts is None:
            parts = self._head_attributes(request, ua)
            if len(request.path) + len(request.query_string) + len(ua or "") <= _MAX_CACHED_HEAD:
                if len(self._heads) >= _MAX_CACHED_HEADS:
                    self._heads.clear()
                self._heads[key] = parts
        name, before, after = parts
        attrs = before.copy()  # the cached dicts are never handed out (the SDK copies anyway)
        client = request.client_address
        peer = request.peer_address
        if client:
            attrs["client.address"] = client
        if peer and peer != client:
            attrs["network.peer.address"] = peer
        elif request.client_port is not None and (peer is None or peer == client):  # no proxy between
            attrs["client.port"] = request.client_port
        attrs.update(after)
        span = self.tracer.start_span(
            name,
            context=self._parent(request),
            kind=SpanKind.SERVER,
            attributes=attrs,  # all at start, in one call: samplers see them
        )
        return SpanHandle(span, True, flagged=flagged)

    def _head_attributes(
        self, request: HttpRequest, ua: str | None
    ) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """The span's name, and its attributes before and after the client's (in that order)."""
        method = request.method
        if method not in KNOWN_METHODS:
            method = normalize_method(method)
        # Attributes that copy request data are capped, then redacted (the work is bounded by
        # the cap): path parameters, userinfo, tokens and what follows secret names are hidden.
        before: dict[str, Any] = {
            "http.request.method": method,
            "url.path": self._scrub(_PATH, request.path),
            "url.scheme": request.scheme,
        }
        if method == "_OTHER":
            before["http.request.method_original"] = request.method[:32]
        query = request.query_string
        if query:
            before["url.query"] = self._scrub(_QUERY, query)
        after: dict[str, Any] = {}
        if request.server_address:
            # Some WSGI servers (gunicorn) take SERVER_NAME from the client's Host header.
            after["server.address"] = self._scrub(_HEADER, request.server_address)
        if request.server_port is not None:
            after["server.port"] = request.server_port
        if ua:
            after["user_agent.original"] = self._scrub(_HEADER, ua)
        if request.http_version:
            after["network.protocol.version"] = request.http_version
        return ("HTTP" if method == "_OTHER" else method), before, after

    def _scrub(self, kind: int, value: str) -> str:
        key = (kind, value)
        done = self._scrubbed.get(key)
        if done is None:
            done = _SCRUBBERS[kind](value, self.redact_names, self.attribute_limit)
            if len(value) <= _MAX_CACHED_VALUE:
                if len(self._scrubbed) >= _MAX_CACHED_VALUES:
                    self._scrubbed.clear()
                self._scrubbed[key] = done
        return done

    def record_signal(self, span: trace.Span, signal: Signal) -> None:
        attrs = self._event_attrs.get(signal)
        if attrs is None:
            attrs = self._event_attributes(signal)
            if len(signal.location) <= MAX_LOCATION and len(signal.evidence) <= MAX_EVIDENCE:
                if len(self._event_attrs) >= _MAX_EVENT_ATTRS:
                    self._event_attrs.clear()
                self._event_attrs[signal] = attrs
        span.add_event(EVENT_NAME, attributes=attrs)

    @staticmethod
    def _event_attributes(signal: Signal) -> dict[str, Any]:
        attrs: dict[str, Any] = {
            ATTR_TYPE: signal.type,
            ATTR_LOCATION: scrub_location(signal.location, MAX_LOCATION),
            ATTR_EVIDENCE: truncate(signal.evidence, MAX_EVIDENCE),
            ATTR_SEVERITY: int(signal.severity),
        }
        if signal.rule_id:
            attrs[ATTR_RULE_ID] = signal.rule_id
            attrs[ATTR_RULE_NAME] = signal.rule_name or ""
            attrs[ATTR_RULE_CATEGORY] = signal.category or signal.type
            attrs[ATTR_RULESET] = signal.ruleset or ""
        return attrs

    def finish(
        self,
        handle: SpanHandle,
        request: HttpRequest,
        verdict: Verdict,
        status: int | None,
        exception: BaseException | None,
        duration: float,
        incomplete: bool = False,
    ) -> None:
        span = handle.span
        route = request.route
        if not handle.owned:
            route = route or _attr(span, "http.route")
            if status is None:
                raw = _attr(span, "http.response.status_code", "http.status_code")
                status = int(raw) if isinstance(raw, int) else None
        if status is None and exception is not None:
            # The app raised before any response started: the server (or the framework's error
            # middleware outside devsecmw) answers 500. Span and metrics carry the same status.
            status = 500
        # ---- events and summary attributes
        if span.is_recording():
            signals = verdict.signals
            dropped = self._record_signals(span, signals) if signals else 0
            summary: dict[str, Any] = {
                ATTR_CLASSIFICATION: verdict.classification,
                ATTR_TYPES: verdict.types if signals else [],
                ATTR_SCORE: verdict.score,
                ATTR_BLOCKED: verdict.blocked,
            }
            if signals and leak_after_attack(signals):
                summary[ATTR_LEAK_AFTER_ATTACK] = True
            if verdict.would_block:
                summary[ATTR_WOULD_BLOCK] = True
            if dropped:
                summary[ATTR_DROPPED] = dropped
            if incomplete:
                summary[ATTR_INCOMPLETE] = True
            if handle.flagged:
                summary[ATTR_CLIENT_FLAGGED] = True
            run_id = gameday_run_id(request)
            if run_id is not None:
                summary[ATTR_GAMEDAY_RUN_ID] = run_id
            if not handle.owned and request.client_address and request.peer_address != request.client_address:
                # Resolved through configured trusted proxies: more reliable than a naive reading.
                summary["client.address"] = request.client_address
            if handle.owned:
                finish_owned(
                    span, request, route, status, exception, summary, self.redact_names, self.attribute_limit
                )
            span.set_attributes(summary)  # one call: the SDK locks and validates per call
        if handle.owned:
            span.end()
        # ---- metrics
        ctx = span.get_span_context()
        sampled = ctx if ctx.trace_flags.sampled else None
        self._metrics(request, verdict, route, status, duration, sampled, handle.flagged)

    def _record_signals(self, span: trace.Span, signals: list[Signal]) -> int:
        """One event per distinct signal, at most ``max_events``; returns how many were dropped."""
        if len(signals) == 1 and self.max_events > 0:  # most requests with a signal: one
            self.record_signal(span, signals[0])
            return 0
        emitted = dropped = 0
        seen: set[tuple[str, str, str | None]] = set()
        for s in signals:
            if s.key in seen:
                continue
            seen.add(s.key)
            if emitted >= self.max_events:
                dropped += 1
                continue
            self.record_signal(span, s)
            emitted += 1
        return dropped

    def _metrics(
        self,
        request: HttpRequest,
        verdict: Verdict,
        route: str | None,
        status: int | None,
        duration: float,
        exemplar: SpanContext | None = None,
        flagged: bool = False,
    ) -> None:
        """Count one request (once) and its signals; ``exemplar``: the sampled span to link to;
        ``flagged``: the request came from a flagged client."""
        method = request.method
        if method not in KNOWN_METHODS:
            method = normalize_method(method)
        signals = verdict.signals
        attack_type = primary_attack_type(signals) if signals else None
        key: _MetricKey = (
            method,
            route,
            status,
            verdict.classification,
            attack_type,
            verdict.blocked,
            verdict.would_block,
            flagged,
        )
        attrs = self._metric_attrs.get(key) if route is None or isinstance(route, str) else None
        if attrs is None:
            attrs = _MetricAttrs(*key, self.requests, self.signals)
            if route is None or isinstance(route, str):  # not some other value an outer span held
                if len(self._metric_attrs) >= _MAX_METRIC_KEYS:  # only a misbehaving route source
                    self._metric_attrs.clear()
                self._metric_attrs[key] = attrs
        self.duration.record(duration, attrs.timing)
        self.requests.add(attrs.request_cell, 1, exemplar)
        if signals:
            # Findings, not requests: each distinct (type, location, rule) counts once, so one
            # request can add several to a type. Requests by attack are devsecmw.requests'.
            if len(signals) == 1:
                self.signals.add(attrs.type_cell(signals[0].type), 1, exemplar)
                return
            counts: dict[str, int] = {}
            seen: set[tuple[str, str, str | None]] = set()
            for s in signals:
                if s.key not in seen:
                    seen.add(s.key)
                    counts[s.type] = counts.get(s.type, 0) + 1
            for t, n in counts.items():
                self.signals.add(attrs.type_cell(t), n, exemplar)

    def count_error(self, stage: str, error_type: str) -> None:
        self.errors.add(1, {"devsecmw.stage": stage, "error.type": error_type})


__all__ = [
    "ATTR_BLOCKED",
    "ATTR_CLASSIFICATION",
    "ATTR_CLIENT_FLAGGED",
    "ATTR_GAMEDAY_RUN_ID",
    "ATTR_SCORE",
    "ATTR_TYPES",
    "EVENT_NAME",
    "SpanHandle",
    "Telemetry",
    "event_attributes",
    "gameday_run_id",
    "normalize_method",
    "primary_attack_type",
]

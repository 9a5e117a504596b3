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
"""

from __future__ import annotations

import inspect
import threading
import traceback
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import Getter, TextMapPropagator
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from . import __version__
from .redact import (
    DEFAULT_ATTRIBUTE_LIMIT,
    MAX_EVIDENCE,
    scrub_header,
    scrub_location,
    scrub_path,
    scrub_query,
    truncate,
)
from .request import HttpRequest
from .response import leak_after_attack
from .signals import ATTACK_TYPES, Signal, Verdict

SCHEMA_URL = "https://opentelemetry.io/schemas/1.26.0"

KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY"}
)
#: Histogram buckets for inspection time, in seconds (10 µs to 100 ms).
DURATION_BUCKETS = (
    0.00001,
    0.000025,
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
)
MAX_LOCATION = 128

# Attribute names of SPEC.md.
EVENT_NAME = "devsecmw.signal"
ATTR_TYPE = "devsecmw.signal.type"
ATTR_LOCATION = "devsecmw.signal.location"
ATTR_EVIDENCE = "devsecmw.signal.evidence"
ATTR_SEVERITY = "devsecmw.signal.severity"
ATTR_RULE_ID = "security_rule.uuid"
ATTR_RULE_NAME = "security_rule.name"
ATTR_RULE_CATEGORY = "security_rule.category"
ATTR_RULESET = "security_rule.ruleset.name"
ATTR_CLASSIFICATION = "devsecmw.classification"
ATTR_TYPES = "devsecmw.signal.types"
ATTR_SCORE = "devsecmw.score"
ATTR_BLOCKED = "devsecmw.blocked"
ATTR_WOULD_BLOCK = "devsecmw.would_block"
ATTR_LEAK_AFTER_ATTACK = "devsecmw.leak_after_attack"
ATTR_DROPPED = "devsecmw.signals.dropped"
ATTR_INCOMPLETE = "devsecmw.inspection.incomplete"
# Metric-only attributes (bounded: a fixed vocabulary or a boolean).
#: The request's primary attack type (one per request, see :func:`primary_attack_type`).
ATTR_ATTACK_TYPE = "devsecmw.attack.type"
#: A signal's own kind, ``attack`` or ``anomaly`` (the request's class is ``devsecmw.classification``).
ATTR_SIGNAL_KIND = "devsecmw.signal.kind"
#: The run id of a ``devsecmw gameday`` request (its ``X-Devsecmw-Gameday`` header), when well formed.
ATTR_GAMEDAY_RUN_ID = "devsecmw.gameday.run_id"
GAMEDAY_HEADER = "x-devsecmw-gameday"
_RUN_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")


class _HeaderGetter(Getter[Sequence[tuple[str, str]]]):
    def get(self, carrier: Sequence[tuple[str, str]], key: str) -> list[str] | None:
        key = key.lower()
        values = [v for k, v in carrier if k == key]
        return values or None

    def keys(self, carrier: Sequence[tuple[str, str]]) -> list[str]:
        return [k for k, _ in carrier]


class _RequestGetter(Getter[HttpRequest]):
    """Propagators read a few headers by name: the request's header map answers in O(1)."""

    def get(self, carrier: HttpRequest, key: str) -> list[str] | None:
        key = key.lower()
        if carrier.header(key) is None:  # the common case: one dict lookup
            return None
        return carrier.header_values(key)

    def keys(self, carrier: HttpRequest) -> list[str]:
        return [k for k, _ in carrier.headers]


_getter = _HeaderGetter()
_request_getter = _RequestGetter()

#: What ``extract`` gives when the request carries no propagation header and the first propagator
#: is W3C trace context: a new, empty context (never the current one). Contexts are immutable.
_EMPTY_CONTEXT = otel_context.Context()
#: The one header each well-known propagator's ``extract`` reads before anything else.
_EXTRACT_HEADER: dict[type, str] = {
    TraceContextTextMapPropagator: "traceparent",
    W3CBaggagePropagator: "baggage",
}
#: A plan: the headers that can change what ``extract`` returns, and what it returns without them.
_Plan = tuple[tuple[str, ...], otel_context.Context | None]


def _extract_plan(textmap: TextMapPropagator) -> _Plan | None:
    """When ``textmap`` is made only of the W3C propagators (OpenTelemetry's default), the headers
    whose absence makes ``extract`` a no-op; ``None`` for any other propagator (always extract:
    a propagator's ``fields`` need not list every header its ``extract`` reads, B3's does not)."""
    props: object = [textmap]
    if type(textmap) is CompositePropagator:
        props = getattr(textmap, "_propagators", None)
    if not isinstance(props, list | tuple):
        return None
    headers = []
    for p in props:
        header = _EXTRACT_HEADER.get(type(p))
        if header is None:
            return None
        headers.append(header)
    # Without its header each returns the context it was given; the first is given none, and
    # then starts from an empty context (trace context) or the current one (baggage).
    first = type(props[0]) if props else None
    return tuple(headers), (_EMPTY_CONTEXT if first is TraceContextTextMapPropagator else None)


#: Attack types that say how a request was sent rather than what it tried: on a request that also
#: carries a specific attack (a sqlmap user agent and its SQL injection), the specific one is primary.
_GENERIC_ATTACKS = frozenset({"scanner", "protocol"})
#: Tie-break among equally severe specific attacks: the order of SPEC.md's vocabulary.
_ATTACK_ORDER = {
    t: i
    for i, t in enumerate(
        (
            "sqli", "xss", "cmdi", "traversal", "rfi", "ssrf", "xxe", "ssti", "nosqli", "log4shell",
            "php", "java", "nodejs", "code_injection", "scanner", "protocol", "session_fixation",
            "backdoor",
        )
    )
}  # fmt: skip


def primary_attack_type(signals: Iterable[Signal]) -> str | None:
    """The one attack type a request is counted under on ``devsecmw.requests``, or ``None``.

    A specific attack before ``scanner``/``protocol``, then the highest severity, then SPEC.md's
    order: deterministic for a given set of signals, and always a member of the attack vocabulary
    (a type outside it, from a custom detector, is never a label value).
    """
    best: tuple[bool, int, int] | None = None
    best_type: str | None = None
    for s in signals:
        t = s.type
        if t not in ATTACK_TYPES:
            continue
        rank = (t not in _GENERIC_ATTACKS, int(s.severity), -_ATTACK_ORDER.get(t, len(_ATTACK_ORDER)))
        if best is None or rank > best:
            best, best_type = rank, t
    return best_type


def gameday_run_id(request: HttpRequest) -> str | None:
    """The game-day run id a request carries, or ``None``: 1 to 64 of ``A-Z a-z 0-9 . _ -``,
    starting with a letter or digit. Anyone can send the header: it labels a span, it
    exempts nothing; anything else (too long, repeated, other characters) is ignored."""
    value = request.header(GAMEDAY_HEADER)
    if value is None or not 0 < len(value) <= 64 or not value[0].isalnum():
        return None
    return value if _RUN_ID_CHARS.issuperset(value) else None


def normalize_method(method: str) -> str:
    upper = method.upper()
    return upper if upper in KNOWN_METHODS else "_OTHER"


@dataclass(slots=True)
class SpanHandle:
    """The span devsecmw writes to for one request, and whether devsecmw owns (ends) it."""

    span: trace.Span
    owned: bool
    _token: object | None = None
    #: While devsecmw's own span is active (between activate and deactivate): the context from
    #: before, which the server's ``send``/``receive`` must run in (a task the server spawns
    #: there, e.g. uvicorn's next keep-alive request, must not inherit this request's span).
    #: ``None`` otherwise: then there is nothing to step out of.
    outer: otel_context.Context | None = None
    #: The context with the span in it, and the context it was made from: a WSGI response
    #: activates once per chunk, from the same server context, and reuses it.
    _inner: otel_context.Context | None = None
    _base: otel_context.Context | None = None

    def activate(self) -> None:
        """Make an owned span current for the app (child spans, logs); symmetric with deactivate."""
        if self.owned and self._token is None:
            outer = otel_context.get_current()
            inner = self._inner
            if inner is None or outer is not self._base:
                inner = self._inner = trace.set_span_in_context(self.span, outer)
                self._base = outer
            self._token = otel_context.attach(inner)
            self.outer = outer

    def deactivate(self) -> None:
        if self._token is not None:
            token, self._token, self.outer = self._token, None, None
            otel_context.detach(token)  # type: ignore[arg-type]


def _attr(span: trace.Span, *names: str) -> Any:
    attrs = getattr(span, "attributes", None)
    if not attrs:
        return None
    for n in names:
        v = attrs.get(n)
        if v is not None:
            return v
    return None


#: Scrubbed attribute values kept (paths, queries, user agents, host names), and the longest kept.
_MAX_CACHED_VALUES = 2048
_MAX_CACHED_VALUE = 256
#: How each cached kind of value is scrubbed (the index is part of the cache key).
_SCRUBBERS = (scrub_path, scrub_query, scrub_header)
_PATH, _QUERY, _HEADER = 0, 1, 2
#: Distinct (method, route, status, classification) metric attribute sets kept ready.
_MAX_METRIC_KEYS = 2048


#: Distinct attribute sets per counter; beyond it, counts go to one overflow set (the SDK's
#: own cardinality limit does the same for synchronous instruments).
_MAX_TOTALS = 4096
_OVERFLOW_ATTRS: dict[str, Any] = {"otel.metric.overflow": True}


#: Whether this OpenTelemetry API lets an observation carry a context (the exemplar's trace).
_OBSERVATION_CONTEXT = "context" in inspect.signature(Observation.__init__).parameters


class _Totals:
    """Monotonic sums by attribute set, reported by an asynchronous counter when a reader collects.

    Why not ``Counter.add``: the SDK spends ~6 µs per call (attribute validation, the exemplar
    filter, the aggregation lookup), once per request and once more per signal type; a locked
    integer add costs ~0.1 µs. The reader sees the same monotonic sum, deltas included (the SDK
    derives them for delta temporality). Shared by every devsecmw instance on one meter, since
    the SDK keeps the first callback of an instrument name.

    Exemplars: each cell keeps the span context of the last sampled request it counted, and its
    observation carries it, so the SDK's trace-based exemplar filter attaches that trace to the
    series (an ``attack_5xx`` count links to one of its traces).
    """

    __slots__ = ("_cells", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cells: dict[Any, list[Any]] = {}  # key -> [total, attributes, last sampled SpanContext]

    def cell(self, key: Any, attrs: dict[str, Any]) -> list[Any]:
        """The counting cell of one attribute set (created at its first use)."""
        with self._lock:
            cell = self._cells.get(key)
            if cell is None:
                if len(self._cells) >= _MAX_TOTALS:
                    key, attrs = "otel.metric.overflow", _OVERFLOW_ATTRS
                    cell = self._cells.get(key)
                if cell is None:
                    cell = self._cells[key] = [0, attrs, None]
            return cell

    def add(self, cell: list[Any], n: int, exemplar: SpanContext | None = None) -> None:
        with self._lock:
            cell[0] += n
            if exemplar is not None:
                cell[2] = exemplar

    def observe(self, _options: CallbackOptions) -> list[Observation]:
        with self._lock:
            snapshot = [(total, attrs, sc) for total, attrs, sc in self._cells.values()]
        if not _OBSERVATION_CONTEXT:
            return [Observation(total, attrs) for total, attrs, _ in snapshot]
        return [
            Observation(total, attrs)
            if sc is None
            else Observation(total, attrs, context=trace.set_span_in_context(NonRecordingSpan(sc)))
            for total, attrs, sc in snapshot
        ]


#: Per meter, the totals behind ``devsecmw.requests`` and ``devsecmw.signals``.
_METER_TOTALS: weakref.WeakKeyDictionary[Any, tuple[_Totals, _Totals]] = weakref.WeakKeyDictionary()
_METER_TOTALS_LOCK = threading.Lock()


def _totals_for(meter: metrics.Meter) -> tuple[_Totals, _Totals]:
    """The (requests, signals) totals of ``meter``, with their counters registered once."""
    with _METER_TOTALS_LOCK:
        found = _METER_TOTALS.get(meter)
        if found is not None:
            return found
        requests, signals = _Totals(), _Totals()
        meter.create_observable_counter(
            "devsecmw.requests",
            callbacks=[requests.observe],
            unit="{request}",
            description="Requests inspected, each counted once (final status, class, attack type).",
        )
        meter.create_observable_counter(
            "devsecmw.signals",
            callbacks=[signals.observe],
            unit="{signal}",
            description="Security signals (findings: one request may give several), by type and kind.",
        )
        _METER_TOTALS[meter] = (requests, signals)
        return requests, signals


#: The metric attribute key of one request: method, route, final status, classification, primary
#: attack type, blocked, would-block.
_MetricKey = tuple[str, Any, "int | None", str, "str | None", bool, bool]


class _MetricAttrs:
    """The attribute dicts of one metric key, built once, never mutated (the SDK copies what it
    keeps), and their counting cells.

    ``devsecmw.requests``: method, route, status, classification, and only where they apply the
    primary attack type and ``devsecmw.blocked`` / ``devsecmw.would_block`` (true; absent, not
    false, otherwise: no series for what did not happen). ``devsecmw.signals``: method, route,
    status, the request's classification, and the signal's own type and kind.
    """

    __slots__ = ("_by_type", "_key", "_signal_base", "_signals", "request", "request_cell", "timing")

    def __init__(
        self,
        method: str,
        route: Any,
        status: int | None,
        classification: str,
        attack_type: str | None,
        blocked: bool,
        would_block: bool,
        requests: _Totals,
        signals: _Totals,
    ) -> None:
        base: dict[str, Any] = {"http.request.method": method}
        if route:
            base["http.route"] = route
        self.timing = {**base, ATTR_CLASSIFICATION: classification}
        if status is not None:
            base["http.response.status_code"] = status
        base[ATTR_CLASSIFICATION] = classification
        self._signal_base = base
        request = dict(base)
        if attack_type is not None:
            request[ATTR_ATTACK_TYPE] = attack_type
        if blocked:
            request[ATTR_BLOCKED] = True
        if would_block:
            request[ATTR_WOULD_BLOCK] = True
        self.request = request
        # A route another instrumentation set may be any attribute value: keyed by its repr.
        self._key = (
            method,
            route if route is None or isinstance(route, str) else repr(route),
            status,
            classification,
            attack_type,
            blocked,
            would_block,
        )
        self.request_cell = requests.cell(self._key, request)
        self._signals = signals
        self._by_type: dict[str, list[Any]] = {}

    def type_cell(self, signal_type: str) -> list[Any]:
        cell = self._by_type.get(signal_type)
        if cell is None:
            # Keyed without the request-only parts (attack type, blocked): the same series as any
            # request of this method, route, status and classification.
            key = (*self._key[:4], signal_type)
            kind = "attack" if signal_type in ATTACK_TYPES else "anomaly"
            cell = self._signals.cell(
                key, {**self._signal_base, ATTR_TYPE: signal_type, ATTR_SIGNAL_KIND: kind}
            )
            if len(self._by_type) < 64:  # signal types are a fixed vocabulary
                self._by_type[signal_type] = cell
        return cell


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
        # devsecmw.requests and devsecmw.signals: asynchronous counters over in-process totals.
        self.requests, self.signals = _totals_for(meter)
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
    def start(self, request: HttpRequest) -> SpanHandle:
        current = trace.get_current_span()
        if current.is_recording():
            # An instrumentation outside already owns the server span. (A current span that is
            # not recording, sampled out or ended, is not ours to enrich: devsecmw starts its own,
            # from the request's propagation headers like any server span, a root without them.)
            return SpanHandle(current, owned=False)
        method = request.method
        if method not in KNOWN_METHODS:
            method = normalize_method(method)
        # Attributes that copy request data are capped, then redacted (the work is bounded by
        # the cap): path parameters, userinfo, tokens and what follows secret names are hidden.
        attrs: dict[str, Any] = {
            "http.request.method": method,
            "url.path": self._scrub(_PATH, request.path),
            "url.scheme": request.scheme,
        }
        if method == "_OTHER":
            attrs["http.request.method_original"] = request.method[:32]
        query = request.query_string
        if query:
            attrs["url.query"] = self._scrub(_QUERY, query)
        client = request.client_address
        peer = request.peer_address
        if client:
            attrs["client.address"] = client
        if peer and peer != client:
            attrs["network.peer.address"] = peer
        elif request.client_port is not None and (peer is None or peer == client):  # no proxy between
            attrs["client.port"] = request.client_port
        if request.server_address:
            # Some WSGI servers (gunicorn) take SERVER_NAME from the client's Host header.
            attrs["server.address"] = self._scrub(_HEADER, request.server_address)
        if request.server_port is not None:
            attrs["server.port"] = request.server_port
        ua = request.header("user-agent")
        if ua:
            attrs["user_agent.original"] = self._scrub(_HEADER, ua)
        if request.http_version:
            attrs["network.protocol.version"] = request.http_version
        span = self.tracer.start_span(
            "HTTP" if method == "_OTHER" else method,
            context=self._parent(request),
            kind=SpanKind.SERVER,
            attributes=attrs,  # all at start, in one call: samplers see them
        )
        return SpanHandle(span, owned=True)

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
        span.add_event(EVENT_NAME, attributes=attrs)

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
            run_id = gameday_run_id(request)
            if run_id is not None:
                summary[ATTR_GAMEDAY_RUN_ID] = run_id
            if not handle.owned and request.client_address and request.peer_address != request.client_address:
                # Resolved through configured trusted proxies: more reliable than a naive reading.
                summary["client.address"] = request.client_address
            if handle.owned:
                self._finish_owned(span, request, route, status, exception, summary)
            span.set_attributes(summary)  # one call: the SDK locks and validates per call
        if handle.owned:
            span.end()
        # ---- metrics
        ctx = span.get_span_context()
        self._metrics(request, verdict, route, status, duration, ctx if ctx.trace_flags.sampled else None)

    def _record_signals(self, span: trace.Span, signals: list[Signal]) -> int:
        """One event per distinct signal, at most ``max_events``; returns how many were dropped."""
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

    def _finish_owned(
        self,
        span: trace.Span,
        request: HttpRequest,
        route: str | None,
        status: int | None,
        exception: BaseException | None,
        attrs: dict[str, Any],
    ) -> None:
        """Name and status of a span devsecmw owns; its attributes go into ``attrs``."""
        if route:
            method = normalize_method(request.method)
            attrs["http.route"] = route
            # Without a route the name stays the one given at start (the method): no rename.
            span.update_name(f"{'HTTP' if method == '_OTHER' else method} {route}")
        if exception is not None:
            span.record_exception(exception, attributes=self._exception_attributes(exception))
            attrs["error.type"] = type(exception).__qualname__
            span.set_status(Status(StatusCode.ERROR, f"{type(exception).__name__}"))
            if status is None:
                status = 500
        if status is not None:
            attrs["http.response.status_code"] = status
            if status >= 500 and exception is None:
                attrs["error.type"] = str(status)
                span.set_status(Status(StatusCode.ERROR))

    def _exception_attributes(self, exception: BaseException) -> dict[str, Any]:
        """The app's exception message may quote request data (``bad password=...``): it is
        scrubbed and capped like a header value; the stack trace keeps its frames (code, not
        data) and ends with the scrubbed message (chained exceptions are left out: their
        messages would need the same care)."""
        try:
            message = str(exception)
        except Exception:  # an app's __str__ may raise; the type still tells
            message = ""
        message = scrub_header(message, self.redact_names, self.attribute_limit)
        name = type(exception).__qualname__
        frames = "".join(traceback.format_tb(exception.__traceback__))
        stack = f"Traceback (most recent call last):\n{frames}{name}: {message}\n"
        return {"exception.message": message, "exception.stacktrace": stack}

    def _metrics(
        self,
        request: HttpRequest,
        verdict: Verdict,
        route: str | None,
        status: int | None,
        duration: float,
        exemplar: SpanContext | None = None,
    ) -> None:
        """Count one request (once) and its signals; ``exemplar``: the sampled span to link to."""
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


def event_attributes(span_events: Iterable[Any]) -> list[Mapping[str, Any]]:
    """The attributes of ``devsecmw.signal`` events of a finished SDK span (for tests and tools)."""
    return [e.attributes for e in span_events if e.name == EVENT_NAME]


__all__ = [
    "ATTR_BLOCKED",
    "ATTR_CLASSIFICATION",
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

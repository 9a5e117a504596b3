"""Metrics: asynchronous counters over in-process totals (with exemplars), and the attribute
sets of one metric key, built once and reused."""

from __future__ import annotations

import inspect
import threading
import weakref
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import NonRecordingSpan, SpanContext

from ..signals import ATTACK_TYPES
from .names import (
    ATTR_ATTACK_TYPE,
    ATTR_BLOCKED,
    ATTR_CLASSIFICATION,
    ATTR_CLIENT_FLAGGED,
    ATTR_SIGNAL_KIND,
    ATTR_TYPE,
    ATTR_WOULD_BLOCK,
)

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

    __slots__ = ("_cells", "_limit", "_lock")

    def __init__(self, limit: int = _MAX_TOTALS) -> None:
        self._lock = threading.Lock()
        self._limit = limit  # distinct attribute sets before the overflow set
        self._cells: dict[Any, list[Any]] = {}  # key -> [total, attributes, last sampled SpanContext]

    def cell(self, key: Any, attrs: dict[str, Any]) -> list[Any]:
        """The counting cell of one attribute set (created at its first use)."""
        with self._lock:
            cell = self._cells.get(key)
            if cell is None:
                if len(self._cells) >= self._limit:
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


def _totals_for(meter: metrics.Meter, limit: int = _MAX_TOTALS) -> tuple[_Totals, _Totals]:
    """The (requests, signals) totals of ``meter``, with their counters registered once; ``limit``:
    distinct attribute sets per counter (the package's ``_MAX_TOTALS`` when the first instance
    on ``meter`` is made)."""
    with _METER_TOTALS_LOCK:
        found = _METER_TOTALS.get(meter)
        if found is not None:
            return found
        requests, signals = _Totals(limit), _Totals(limit)
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
#: attack type, blocked, would-block, from a flagged client.
_MetricKey = tuple[str, Any, "int | None", str, "str | None", bool, bool, bool]


class _MetricAttrs:
    """The attribute dicts of one metric key, built once, never mutated (the SDK copies what it
    keeps), and their counting cells.

    ``devsecmw.requests``: method, route, status, classification, and only where they apply the
    primary attack type and ``devsecmw.blocked`` / ``devsecmw.would_block`` /
    ``devsecmw.client.flagged`` (true; absent, not false, otherwise: no series for what did not
    happen). ``devsecmw.signals``: method, route,
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
        flagged: bool,
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
        if flagged:  # requests from flagged clients stay countable (client_flagged is reported once a window)
            request[ATTR_CLIENT_FLAGGED] = True
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
            flagged,
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

"""Reading the request's propagation headers: getters, and the plan that skips ``extract``
when the W3C propagators would find nothing."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry import context as otel_context
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import Getter, TextMapPropagator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from ..request import HttpRequest


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

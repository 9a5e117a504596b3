"""Span helpers: the handle of a request's span (own or enriched), the scrubbed-value cache's
bounds, and the name, status and exception of a span devsecmw owns."""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from ..redact import scrub_header, scrub_path, scrub_query
from ..request import HttpRequest
from .attributes import normalize_method

#: Scrubbed attribute values kept (paths, queries, user agents, host names), and the longest kept.
_MAX_CACHED_VALUES = 2048
_MAX_CACHED_VALUE = 256
#: Span heads kept (attributes but the client's), and the longest path + query + User-Agent kept.
_MAX_CACHED_HEADS = 256
_MAX_CACHED_HEAD = 512
#: How each cached kind of value is scrubbed (the index is part of the cache key).
_SCRUBBERS = (scrub_path, scrub_query, scrub_header)
_PATH, _QUERY, _HEADER = 0, 1, 2


@dataclass(slots=True)
class SpanHandle:
    """The span devsecmw writes to for one request, and whether devsecmw owns (ends) it."""

    span: trace.Span
    owned: bool
    _token: object | None = None
    #: The request came from a flagged client (``devsecmw.client.flagged`` at finish).
    flagged: bool = False
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


#: Span names by (method, route): an app has a bounded set of routes (templates, never raw
#: paths), so the name is formatted once per pair; bounded all the same.
_NAMES: dict[tuple[str, str], str] = {}
_MAX_NAMES = 1024


def span_name(method: str, route: str) -> str:
    """``METHOD route`` (``HTTP route`` for a method outside the known ones)."""
    key = (method, route)
    name = _NAMES.get(key)
    if name is None:
        normal = normalize_method(method)
        name = f"{'HTTP' if normal == '_OTHER' else normal} {route}"
        if len(_NAMES) >= _MAX_NAMES:
            _NAMES.clear()
        _NAMES[key] = name
    return name


def finish_owned(
    span: trace.Span,
    request: HttpRequest,
    route: str | None,
    status: int | None,
    exception: BaseException | None,
    attrs: dict[str, Any],
    redact_names: tuple[str, ...],
    attribute_limit: int,
) -> None:
    """Name and status of a span devsecmw owns; its attributes go into ``attrs``."""
    if route:
        attrs["http.route"] = route
        # Without a route the name stays the one given at start (the method): no rename.
        span.update_name(span_name(request.method, route))
    if exception is not None:
        span.record_exception(
            exception, attributes=exception_attributes(exception, redact_names, attribute_limit)
        )
        attrs["error.type"] = type(exception).__qualname__
        span.set_status(Status(StatusCode.ERROR, f"{type(exception).__name__}"))
        if status is None:
            status = 500
    if status is not None:
        attrs["http.response.status_code"] = status
        if status >= 500 and exception is None:
            attrs["error.type"] = str(status)
            span.set_status(Status(StatusCode.ERROR))


def exception_attributes(
    exception: BaseException, redact_names: tuple[str, ...], attribute_limit: int
) -> dict[str, Any]:
    """The app's exception message may quote request data (``bad password=...``): it is
    scrubbed and capped like a header value; the stack trace keeps its frames (code, not
    data) and ends with the scrubbed message (chained exceptions are left out: their
    messages would need the same care)."""
    try:
        message = str(exception)
    except Exception:  # an app's __str__ may raise; the type still tells
        message = ""
    message = scrub_header(message, redact_names, attribute_limit)
    name = type(exception).__qualname__
    frames = "".join(traceback.format_tb(exception.__traceback__))
    stack = f"Traceback (most recent call last):\n{frames}{name}: {message}\n"
    return {"exception.message": message, "exception.stacktrace": stack}

"""The output seam: how a request's verdict leaves the core.

When a request ends the core hands one :class:`Emission` (the request, its verdict with the
final signals, status, exception, time spent, the span) to :class:`Outputs`, which gives it to
every output: first the OpenTelemetry one (:class:`OtelEmitter`: span events, summary
attributes, metrics; always there, built on ``tracer_provider=``/``meter_provider=``), then
the user's (the ``emitters`` option). An output is any object with ``emit(emission)``
(:class:`Emitter`); one that raises is reported (logged once, counted in ``devsecmw.errors``
as stage ``emit``) and the others still run: outputs fail open like the rest.

The ``before_emit`` hook is this seam's hook point: :meth:`Outputs.before_emit` runs it on each
signal of the request before the score is computed (the decision calls it, see
:func:`devsecmw.decision.decide_request`), so a dropped or altered signal is dropped or altered
for the score and for every output alike.

Evidence and locations in signals are already redacted; the request object carries what was
on the wire (an output must not copy its values out: use ``verdict`` and ``request.route``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from ..request import HttpRequest
from ..signals import Signal, Verdict
from . import SpanHandle, Telemetry

#: ``before_emit(signal) -> signal | None`` (as in :mod:`devsecmw.config`).
BeforeEmit = Callable[[Signal], "Signal | None"]
#: How an output's failure is reported: ``(stage, exception)`` (the runtime's fail-open report).
Report = Callable[[str, BaseException], None]


class Emission:
    """What one request emits, once, when it ends."""

    __slots__ = ("duration", "exception", "incomplete", "request", "span", "status", "verdict")

    def __init__(
        self,
        request: HttpRequest,
        verdict: Verdict,
        status: int | None,
        exception: BaseException | None,
        duration: float,
        incomplete: bool,
        span: SpanHandle,
    ) -> None:
        self.request = request
        #: Classification, score, blocked / would-block and the final signals (after ``before_emit``).
        self.verdict = verdict
        #: The response status (``None`` when none started: with an exception, the server's 500).
        self.status = status
        self.exception = exception
        #: Seconds devsecmw spent on the request.
        self.duration = duration
        #: A cap or the time budget stopped inspection before the whole request was read.
        self.incomplete = incomplete
        #: The request's span (its trace id correlates an output's record with the trace).
        self.span = span


@runtime_checkable
class Emitter(Protocol):
    """An output: told about every inspected request once, when it ends."""

    def emit(self, emission: Emission) -> None: ...


class OtelEmitter:
    """The default output: OpenTelemetry span events, summary attributes and metrics."""

    __slots__ = ("telemetry",)

    def __init__(self, telemetry: Telemetry) -> None:
        self.telemetry = telemetry

    def emit(self, emission: Emission) -> None:
        self.telemetry.finish(
            emission.span,
            emission.request,
            emission.verdict,
            emission.status,
            emission.exception,
            emission.duration,
            incomplete=emission.incomplete,
        )


class LoggingEmitter:
    """An output to :mod:`logging`: one JSON line per request that has signals (logger
    ``devsecmw.signals``, level INFO). ``DEVSECMW_EMITTERS=devsecmw.telemetry.emitter:LoggingEmitter``."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger("devsecmw.signals")

    def emit(self, emission: Emission) -> None:
        verdict = emission.verdict
        if not verdict.signals or not self.logger.isEnabledFor(logging.INFO):
            return
        ctx = emission.span.span.get_span_context()
        record = {
            "trace_id": format(ctx.trace_id, "032x") if ctx.is_valid else None,
            "route": emission.request.route,  # the template: never the raw path
            "status": emission.status,
            "classification": verdict.classification,
            "score": verdict.score,
            "blocked": verdict.blocked,
            "signals": [
                {"type": s.type, "location": s.location, "evidence": s.evidence, "rule": s.rule_id}
                for s in verdict.signals
            ],
        }
        self.logger.info("%s", json.dumps(record))


class Outputs:
    """Every output of a middleware, and the ``before_emit`` hook they share."""

    __slots__ = ("_hook", "_report", "default", "extra")

    def __init__(
        self,
        telemetry: Telemetry,
        emitters: Sequence[Emitter] = (),
        hook: BeforeEmit | None = None,
        report: Report | None = None,
    ) -> None:
        self.default = OtelEmitter(telemetry)
        self.extra = tuple(emitters)
        self._hook = hook
        self._report = report

    @property
    def before_emit(self) -> Callable[[list[Signal]], list[Signal]] | None:
        """The hook over a request's signals (``None`` without a ``before_emit``: nothing to run)."""
        return None if self._hook is None else self._apply_hook

    def _apply_hook(self, signals: list[Signal]) -> list[Signal]:
        """The user's hook on each signal: kept, altered, or dropped (None). A hook that raises or
        returns something else keeps the signal as it was (fail open, counted as ``before_emit``)."""
        hook = self._hook
        assert hook is not None
        kept: list[Signal] = []
        for s in signals:
            try:
                out = hook(s)
                if out is not None and not isinstance(out, Signal):
                    raise TypeError(f"before_emit returned {type(out).__name__}, not a Signal or None")
            except Exception as exc:
                if self._report is not None:
                    self._report("before_emit", exc)
                out = s
            if out is not None:
                kept.append(out)
        return kept

    def emit(self, emission: Emission) -> None:
        """To OpenTelemetry (its failure reaches the caller, which ends an owned span), then to
        each other output, each failing open on its own."""
        self.default.emit(emission)
        for out in self.extra:
            try:
                out.emit(emission)
            except Exception as exc:
                if self._report is not None:
                    self._report("emit", exc)


__all__ = ["Emission", "Emitter", "LoggingEmitter", "OtelEmitter", "Outputs"]

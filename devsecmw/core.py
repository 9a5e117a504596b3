"""The request path shared by every adapter.

:class:`Runtime` is built once per middleware (configuration, detector,
telemetry). :class:`Inspection` follows one request through its life:
head inspected before the app runs, body inspected as the app reads it,
response observed as it leaves, verdict and telemetry when the last byte has
gone. Adapters translate their protocol into these calls and nothing more.

Every public method of :class:`Inspection` fails open: an internal error is
reported (logged once, counted) and the request goes on as if devsecmw were
absent.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.context import attach as attach_context
from opentelemetry.context import detach as detach_context

from . import _safety
from .clients import ClientTable, Thresholds, parse_networks, resolve_client
from .config import Config
from .engine import Budget, Detector, Engine
from .leaks import LeakScanner, Sniffer
from .request import HttpRequest
from .response import correlate, status_signals
from .scoring import decide, should_block
from .signals import Severity, Signal, Verdict
from .telemetry import SpanHandle, Telemetry

_perf = time.perf_counter
#: Methods whose HTTP/1 requests carry no body unless a Content-Length or Transfer-Encoding says so.
_BODYLESS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE", "TRACE"})


class Runtime:
    """Everything one middleware instance shares across requests. Stateless per request."""

    def __init__(
        self,
        config: Config,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        detector: Detector | None = None,
    ) -> None:
        self.config = config
        # Rule files are loaded and validated here: bad rules fail at start-up, not per request.
        self.detector: Detector = detector if detector is not None else Engine(config)
        self.telemetry = Telemetry(tracer_provider, meter_provider, config.max_events, config.redact_names)
        self.leaks: LeakScanner | None = LeakScanner() if config.response_limit > 0 else None
        self._ignore_exact, self._ignore_prefix = _path_set(config.ignore_paths)
        self._allow_exact, self._allow_prefix = _path_set(config.allow_paths)
        self.trusted_proxies = parse_networks(config.trusted_proxies, "trusted_proxies")
        self.allow_networks = parse_networks(config.allow_networks, "allow_networks")
        #: Block mode: adapters decide before calling the app (and read the body ahead for it).
        self.blocking = config.mode == "block"
        self.clients = ClientTable(
            max_clients=config.max_clients,
            window=config.client_window,
            flag_ttl=config.flag_ttl,
            thresholds=Thresholds(
                attack=config.flag_attacks,
                http_404=config.flag_404s,
                auth_failure=config.flag_auth_failures,
                http_5xx=config.flag_5xx,
            ),
        )

    @classmethod
    def from_options(
        cls,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        detector: Detector | None = None,
        config: Config | None = None,
        **options: Any,
    ) -> Runtime:
        if config is not None and options:
            raise TypeError("devsecmw: pass either config= or keyword options, not both")
        return cls(config or Config.from_options(options), tracer_provider, meter_provider, detector)

    def report(self, stage: str, exc: BaseException) -> None:
        _safety.report(stage, exc, self.telemetry.count_error)

    def ignored(self, path: str) -> bool:
        return path in self._ignore_exact or (
            bool(self._ignore_prefix) and path.startswith(self._ignore_prefix)
        )

    def allowlisted(self, request: HttpRequest) -> bool:
        """Never blocked: allowlisted paths (health checks) and client networks."""
        path = request.path
        if path in self._allow_exact or (self._allow_prefix and path.startswith(self._allow_prefix)):
            return True
        if self.allow_networks and request.client_address:
            from .clients import _in

            return _in(request.client_address, self.allow_networks)
        return False

    def begin(self, request: HttpRequest) -> Inspection | None:
        """Start inspecting ``request``: span, head inspection. ``None`` when devsecmw stands aside."""
        try:
            if self.ignored(request.path):
                return None
            insp = Inspection(self, request)
        except Exception as exc:
            self.report("begin", exc)
            return None
        try:  # inspect_head, inline: one call less per request
            insp._detect("head")
        except Exception as exc:
            self.report("inspect_head", exc)
        return insp


def _path_set(paths: Sequence[str]) -> tuple[set[str], tuple[str, ...]]:
    return {p for p in paths if not p.endswith("*")}, tuple(p[:-1] for p in paths if p.endswith("*"))


class Inspection:
    """One request's journey through devsecmw."""

    __slots__ = (
        "_body_inspected",
        "_sniffer",
        "_spent",
        "blocked",
        "exception",
        "finished",
        "flagged",
        "handle",
        "incomplete",
        "request",
        "response_headers",
        "runtime",
        "signals",
        "status",
        "would_block",
    )

    def __init__(self, runtime: Runtime, request: HttpRequest) -> None:
        self.runtime = runtime
        self.request = request
        self.signals: list[Signal] = []
        self.status: int | None = None
        self.response_headers: Sequence[tuple[Any, Any]] = ()
        self.exception: BaseException | None = None
        self.finished = False
        self.incomplete = False
        self._body_inspected = 0  # bytes of captured body already inspected
        self._sniffer: Sniffer | None = None
        self._spent = 0.0
        self.blocked = False
        self.would_block = False
        # Behind trusted proxies the client is the forwarded address; the peer stays on the request.
        request.peer_address = request.client_address
        if runtime.trusted_proxies or runtime.config.trusted_hops:
            request.client_address = resolve_client(
                request, runtime.trusted_proxies, runtime.config.trusted_hops
            )
        self.flagged = runtime.clients.flagged(request.client_address)
        if self.flagged:
            self.signals.append(Signal("client_flagged", "client", self.flagged, Severity.WARNING))
        self.handle: SpanHandle = runtime.telemetry.start(request)

    # ------------------------------------------------------------------ context
    def activate(self) -> None:
        try:
            self.handle.activate()
        except Exception as exc:
            self.runtime.report("context", exc)

    def deactivate(self) -> None:
        try:
            self.handle.deactivate()
        except Exception as exc:
            self.runtime.report("context", exc)

    def step_out(self) -> object | None:
        """Before handing control to the server: its context, not devsecmw's span (see SpanHandle).

        Adapters call it only when ``handle.outer`` is set (devsecmw's own span is active): with no
        span of its own current there is nothing to step out of, and nothing to pay.
        """
        outer = self.handle.outer
        if outer is None:
            return None
        try:
            return attach_context(outer)
        except Exception as exc:
            self.runtime.report("context", exc)
            return None

    def step_in(self, token: object | None) -> None:
        if token is not None:
            detach_context(token)  # type: ignore[arg-type]  # never raises: OpenTelemetry logs a failure

    # ------------------------------------------------------------------ request
    def _detect(self, phase: str, again: bool = False) -> None:
        t0 = _perf()
        remaining = self.runtime.config.time_budget - self._spent
        if remaining <= 0:
            self.incomplete = True
            self.runtime.telemetry.count_error(phase, "time_budget")
            return
        budget = Budget(deadline=t0 + remaining)
        try:
            found = self.runtime.detector.inspect(self.request, phase, budget)
            if again:  # a second look at a longer body: only what the first look did not find
                seen = {s.key for s in self.signals}
                found = [s for s in found if s.key not in seen]
            self.signals.extend(found)
            if budget.exhausted:
                self.incomplete = True
                self.runtime.telemetry.count_error(phase, "time_budget")
        finally:
            self._spent += _perf() - t0

    def inspect_head(self) -> None:
        try:
            self._detect("head")
        except Exception as exc:
            self.runtime.report("inspect_head", exc)

    def body_chunk(self, chunk: bytes, more: bool) -> None:
        """The app read ``chunk`` of the request body; ``more`` is False on the last one."""
        try:
            req = self.request
            if chunk and len(req.body) < self.runtime.config.body_limit:
                req.add_body(chunk, self.runtime.config.body_limit)
            else:
                req.body_seen += len(chunk)
            if not more:
                req.body_complete = True
                if req.body:
                    self.inspect_body()
        except Exception as exc:
            self.runtime.report("body", exc)

    def inspect_body(self) -> None:
        """Inspect the body captured so far: once, or again if more was captured since.

        Monitor mode inspects once (when the app has read the body, or at finish). Block mode
        inspects what it read ahead; when that wait ended early, what the app reads later is
        inspected again at the end (record only: the app already has the request).
        """
        if self.finished or not self.request.body:
            return
        try:
            size = len(self.request.body)
            if size > self._body_inspected:
                again = self._body_inspected > 0
                self._body_inspected = size
                self._detect("body", again)
        except Exception as exc:
            self.runtime.report("inspect_body", exc)

    # ------------------------------------------------------------------ read-ahead (block mode)
    def wants_body_ahead(self) -> bool:
        """Whether block mode should read the body before the app runs, so the decision sees it.

        Not when it cannot matter: nothing is inspected (``body_limit=0``), the request is never
        blocked (allowlisted), or there is surely no body (``Content-Length: 0``, or an HTTP/1
        GET, HEAD, OPTIONS, DELETE or TRACE with neither ``Content-Length`` nor
        ``Transfer-Encoding``). Otherwise it reads (a POST without them, any HTTP/2 or 3
        request): no body costs one empty message, which the server hands over at once.
        """
        try:
            runtime = self.runtime
            if not runtime.blocking or runtime.config.body_limit <= 0 or self.status is not None:
                return False
            req = self.request
            return _may_have_body(req) and not runtime.allowlisted(req)
        except Exception as exc:
            self.runtime.report("read_ahead", exc)
            return False

    def body_ahead_needed(self) -> bool:
        """While reading ahead: whether another body message is worth waiting for (up to the cap)."""
        req = self.request
        return not req.body_complete and len(req.body) < self.runtime.config.body_limit

    def body_ahead_end(self, timed_out: bool = False, skipped: str | None = None) -> None:
        """Reading ahead ended (body complete, cap reached, disconnect, or the wait ran out):
        inspect what arrived. What did not arrive in time is not waited for: the decision goes
        without it, and the skip is counted in ``devsecmw.errors`` (stage ``read_ahead``)."""
        try:
            if timed_out:
                self.runtime.telemetry.count_error("read_ahead", "timeout")
            elif skipped is not None:
                self.runtime.telemetry.count_error("read_ahead", skipped)
        except Exception as exc:
            self.runtime.report("read_ahead", exc)
        self.inspect_body()

    # ------------------------------------------------------------------ unread body (monitor mode)
    def wants_unread(self) -> bool:
        """Monitor mode, the response complete: whether to read the body the app left unread.

        The server would discard it (a 405 or 404, an endpoint that ignores its body), so an
        attack in it would go unseen. Not when the app read the body to its end or up to the
        cap (nothing is read twice), when nothing is inspected, in block mode (it read ahead),
        when there is surely no body, nor when the client sent ``Expect`` (it holds the body
        back until asked: reading would ask for a body the server never wanted).
        """
        try:
            runtime = self.runtime
            config = runtime.config
            if runtime.blocking or config.unread_timeout <= 0 or self.finished or self.exception is not None:
                return False
            req = self.request
            if req.body_complete or req.body_seen >= config.body_limit or req.header("expect") is not None:
                return False
            return _may_have_body(req)
        except Exception as exc:
            self.runtime.report("body_unread", exc)
            return False

    def unread_end(self, timed_out: bool = False, skipped: str | None = None) -> None:
        """The read of the unread body ended: inspect what arrived (the body phase, again if the
        app had read a part). A client that sent nothing more in time is not waited for: the
        request is marked incomplete and the wait counted (``devsecmw.errors``, stage
        ``body_unread``); a server where the read could stall is skipped, counted the same way.
        """
        try:
            if timed_out or skipped is not None:
                # Seen in part only. (With the ``inspection_incomplete`` signal this is its
                # location ``body.unread``.)
                self.incomplete = True
                self.runtime.telemetry.count_error("body_unread", "timeout" if timed_out else skipped or "")
        except Exception as exc:
            self.runtime.report("body_unread", exc)
        self.inspect_body()

    # ------------------------------------------------------------------ blocking
    def check_block(self, record_only: bool = False) -> bool:
        """Whether blocking applies to what was seen of the request so far.

        Records ``would_block`` in every mode; returns True only in block mode,
        so the adapter answers with :meth:`block_response` instead of calling the app.
        """
        if not self.signals and not self.flagged:
            return False  # no signal and a clean client: nothing could call for a block
        try:
            config = self.runtime.config
            would = should_block(self.signals, config, bool(self.flagged)) and not self.runtime.allowlisted(
                self.request
            )
            self.would_block = self.would_block or would
            if would and config.mode == "block" and self.status is None and not record_only:
                self.blocked = True
                return True
        except Exception as exc:
            self.runtime.report("block", exc)
        return False

    def block_response(self, accept: str | None = None) -> tuple[int, list[tuple[str, str]], bytes] | None:
        """Status, headers and body of the block response (the trace id lets support find the span).

        ``None`` if it cannot be built (an internal error, reported): the request then goes on to
        the app unblocked, as if devsecmw were absent (fail open).
        """
        try:
            from .blocking import render

            ctx = self.handle.span.get_span_context()
            trace_id = format(ctx.trace_id, "032x") if ctx.is_valid else ""
            status, headers, body = render(self.runtime.config, trace_id, accept)
        except Exception as exc:
            self.runtime.report("block_response", exc)
            self.blocked = False
            return None
        self.status = status
        return status, headers, body

    # ------------------------------------------------------------------ response
    def response_start(self, status: int, headers: Sequence[tuple[Any, Any]] = ()) -> None:
        try:
            self.status = status
            self.response_headers = headers
            if self.runtime.leaks is not None:
                self._sniffer = Sniffer.for_response(headers, self.runtime.config.response_limit)
        except Exception as exc:
            self.runtime.report("response_start", exc)

    def response_chunk(self, chunk: bytes) -> None:
        """A chunk of response body is leaving: a bounded copy is sniffed; the chunk is never held."""
        sniffer = self._sniffer
        if sniffer is None or not chunk:
            return
        try:
            t0 = _perf()
            sniffer.feed(chunk)
            self._spent += _perf() - t0
        except Exception as exc:
            self._sniffer = None
            self.runtime.report("response_chunk", exc)

    # ------------------------------------------------------------------ end
    def finish(self, exception: BaseException | None = None) -> None:
        """The last byte has gone (or the app failed): decide, emit, end the span. Once."""
        if self.finished:
            return
        # A body the app read only in part: inspect what it read (fails open on its own, so a
        # detector error here cannot cost the verdict).
        if self.request.body:
            self.inspect_body()
        self.finished = True
        try:
            if isinstance(exception, Exception):
                self.exception = exception
            if not self.blocked and (self.signals or self.flagged):
                self.check_block(record_only=True)  # what blocking would have done with the request
            t0 = _perf()
            verdict = self._decide()
            self._spent += _perf() - t0
            self.runtime.telemetry.finish(
                self.handle,
                self.request,
                verdict,
                self.status,
                self.exception,
                self._spent,
                incomplete=self.incomplete,
            )
        except Exception as exc:
            self.runtime.report("finish", exc)
            try:
                if self.handle.owned:
                    self.handle.span.end()
            except Exception:  # pragma: no cover - span end failing after a report
                pass

    def _decide(self) -> Verdict:
        # A request with no signal, a 2xx/3xx answer and no leak has nothing to combine: each step
        # below skips on empty input, and no list is built for it (self.signals is never mutated).
        config = self.runtime.config
        signals = self.signals
        if config.exclusions and signals:
            where = self.request.route or self.request.path
            signals = [
                s
                for s in signals
                if not any(x.applies(s.rule_id, s.type, where, s.location) for x in config.exclusions)
            ]
        status = self.status
        if not self.blocked and (self.exception is not None or (status is not None and status >= 400)):
            # The block response's status is devsecmw's, not the app's answer; below 400 nothing.
            answered = status_signals(status, self.exception)
            if answered:
                signals = signals + answered
        leaked = self._leaks()
        if leaked:
            if any(s.is_attack for s in signals):
                # An attack answered with a database error or a stack trace: the exploit worked.
                leaked = [dataclasses.replace(s, severity=Severity.CRITICAL) for s in leaked]
            signals = signals + leaked
        attack = False
        if signals:
            correlated = correlate(signals)
            if correlated:
                signals = signals + correlated
            attack = any(s.is_attack for s in signals)
        # Per-client windows count the attacks a client sent, blocked or not (a scanner whose
        # every probe is blocked is still a scanner), and the statuses the app answered (a block
        # response is devsecmw's own 403, not an auth failure).
        reason = self.runtime.clients.observe(
            self.request.client_address, attack, None if self.blocked else status
        )
        if reason and not self.flagged:
            signals = [*signals, Signal("client_flagged", "client", reason, Severity.WARNING)]
        verdict = decide(signals, config)
        verdict.blocked = self.blocked
        verdict.would_block = self.would_block
        return verdict

    def _leaks(self) -> list[Signal]:
        sniffer, self._sniffer = self._sniffer, None
        if sniffer is None or self.runtime.leaks is None:
            return []
        return self.runtime.leaks.scan_sniffed(sniffer)


def _may_have_body(req: HttpRequest) -> bool:
    """False when there is surely no body: ``Content-Length: 0``, or an HTTP/1 GET, HEAD, OPTIONS,
    DELETE or TRACE with neither ``Content-Length`` nor ``Transfer-Encoding``."""
    length = req.header("content-length")
    if req.header("transfer-encoding") is not None:
        return True
    if length is not None:
        return length.strip() != "0"
    return not (req.http_version in ("1.0", "1.1") and req.method in _BODYLESS)


__all__ = ["Inspection", "Runtime"]

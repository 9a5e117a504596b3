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

import functools
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics, trace
from opentelemetry.context import attach as attach_context
from opentelemetry.context import detach as detach_context

from . import _safety
from .clients import (
    ClientTable,
    ProxyNotice,
    Thresholds,
    behind_untrusted_proxy,
    parse_networks,
    resolve_client,
)
from .config import BeforeEmit, Config, expand_tags
from .config_values import path_set
from .decision import block_wanted, decide_request
from .engine import Budget, Detector, Engine
from .engine.matcher import Pattern
from .leaks import LeakScanner, Sniffer
from .request import HttpRequest, Limits, full_url, may_have_body
from .signals import INSPECTION_INCOMPLETE, Severity, Signal, Verdict
from .telemetry import SpanHandle, Telemetry

if TYPE_CHECKING:
    from .clients_redis import RedisClientTable

_perf = time.perf_counter
#: This thread's CPU time: what the inspection budget counts (see :class:`~devsecmw.engine.Budget`).
_cpu = time.thread_time
#: A phase shorter than this in wall time adds its wall time to the CPU spent (an upper bound:
#: CPU time never exceeds it), saving a read of the CPU clock on nearly every request.
_CPU_EXACT_FROM = 0.001


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
        #: The exclusions, ``tag:`` entries expanded to the ids of the rules carrying the tag.
        self.exclusions = expand_tags(config.exclusions, getattr(self.detector, "rules", ()))
        self.telemetry = Telemetry(
            tracer_provider, meter_provider, config.max_events, config.redact_names, config.attribute_limit
        )
        self.leaks: LeakScanner | None = LeakScanner() if config.response_limit > 0 else None
        #: The caps of parsing and inspection, handed to every request.
        self.limits = Limits(
            query=config.query_limit,
            path=config.path_limit,
            header=config.header_limit,
            headers=config.max_headers,
            params=config.max_params,
            body=config.body_limit,
        )
        #: The budget: CPU seconds, and the wall-clock ceiling (see :class:`~devsecmw.engine.Budget`).
        self.cpu_budget = config.time_budget
        self.wall_ceiling = config.wall_ceiling
        self._ignore_exact, self._ignore_prefix = path_set(config.ignore_paths)
        self._allow_exact, self._allow_prefix = path_set(config.allow_paths)
        #: ``excluded_urls`` as one RE2 pattern, searched in the full URL (OpenTelemetry's way).
        self._excluded_urls = _url_pattern(config.excluded_urls)
        self.trusted_proxies = parse_networks(config.trusted_proxies, "trusted_proxies")
        self.allow_networks = parse_networks(config.allow_networks, "allow_networks")
        #: Block mode: adapters decide before calling the app (and read the body ahead for it).
        self.blocking = config.mode == "block"
        thresholds = Thresholds(
            attack=config.flag_attacks,
            http_404=config.flag_404s,
            auth_failure=config.flag_auth_failures,
            http_5xx=config.flag_5xx,
        )
        local = ClientTable(
            max_clients=config.max_clients,
            window=config.client_window,
            flag_ttl=config.flag_ttl,
            thresholds=thresholds,
        )
        self.clients: ClientTable | RedisClientTable = local
        if config.client_store:
            from .clients_redis import RedisClientTable

            self.clients = RedisClientTable(
                config.client_store,
                window=config.client_window,
                flag_ttl=config.flag_ttl,
                thresholds=thresholds,
                fallback=local,
                on_error=self.report,
            )
        #: Logs once that the client identity is a proxy not configured as trusted.
        self.proxy_notice = ProxyNotice()
        self.flag_reports = local.reports  # client_flagged when crossing, then once a window

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
            if self._excluded_urls is not None and self._excluded_urls.search(full_url(request)):
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


def _url_pattern(patterns: Sequence[str]) -> Pattern | None:
    if not patterns:
        return None
    from .engine.matcher import compile_pattern

    return compile_pattern("|".join(f"(?:{p})" for p in patterns))


class Inspection:
    """One request's journey through devsecmw."""

    __slots__ = (
        "_body_inspected",
        "_cpu_spent",
        "_cuts",
        "_sniffer",
        "_spent",
        "_start",
        "blocked",
        "exception",
        "finished",
        "flagged",
        "handle",
        "incomplete",
        "request",
        "response_headers",
        "runtime",
        "shared",
        "signals",
        "status",
        "would_block",
    )

    def __init__(self, runtime: Runtime, request: HttpRequest) -> None:
        # Everything done here on request data (client resolution, the span's attributes and
        # their scrubbing) counts against the budget: the head phase's clocks start now.
        self._start: tuple[float, float] | None = (_perf(), _cpu())
        self.runtime = runtime
        self.request = request
        request.limits = runtime.limits
        self.signals: list[Signal] = []
        self.status: int | None = None
        self.response_headers: Sequence[tuple[Any, Any]] = ()
        self.exception: BaseException | None = None
        self.finished = False
        self.incomplete = False
        self._body_inspected = 0  # bytes of captured body already inspected
        self._sniffer: Sniffer | None = None
        self._spent = 0.0  # wall seconds (the duration metric, and the ceiling)
        self._cpu_spent = 0.0  # CPU seconds (the budget)
        self._cuts: set[str] | None = None  # locations already reported incomplete
        self.blocked = False
        self.would_block = False
        # Behind trusted proxies the client is the forwarded address; the peer stays on the request.
        # Either way the identity is a normalised address (bounded key), never the client's text.
        request.peer_address = request.client_address
        request.client_address = client = resolve_client(
            request, runtime.trusted_proxies, runtime.config.trusted_hops
        )
        #: The identity is an untrusted proxy's address, shared by all its users: counted and
        #: reported, never blocked by client (a request is still blocked on its own signals).
        self.shared = behind_untrusted_proxy(request, client)
        if self.shared:
            runtime.proxy_notice(client or "", bool(runtime.trusted_proxies))
        self.flagged = runtime.clients.flagged(client)
        if self.flagged and (runtime.blocking or runtime.flag_reports.due(client)):  # a refusal says why
            self.signals.append(self._flag_signal(self.flagged))
        self.handle: SpanHandle = runtime.telemetry.start(request, bool(self.flagged))

    def _flag_signal(self, reason: str) -> Signal:
        if self.shared:  # the dashboard says why this flag blocks nobody
            reason = f"{reason} (shared proxy address: not blocked)"
        return Signal("client_flagged", "client", reason, Severity.WARNING)

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
        start, self._start = self._start, None
        w0, c0 = start if start is not None else (_perf(), _cpu())
        runtime = self.runtime
        cpu_left = runtime.cpu_budget - self._cpu_spent
        wall_left = runtime.wall_ceiling - self._spent
        if cpu_left <= 0 or wall_left <= 0:
            self._budget_spent(phase, "cpu" if cpu_left <= 0 else "wall")
            return
        budget = Budget(w0 + wall_left, False, _perf, cpu_left, c0, w0, _cpu)
        try:
            request = self.request
            found = self.runtime.detector.inspect(request, phase, budget)
            if again:  # a second look at a longer body: only what the first look did not find
                seen = {s.key for s in self.signals}
                found = [s for s in found if s.key not in seen]
            self.signals.extend(found)
            cuts = request.head_cuts() if phase == "head" else request.body_cuts()
            if cuts:
                self._incomplete(cuts)
            if budget.exhausted:
                self._budget_spent(phase, budget.reason)
        finally:
            wall = _perf() - w0
            self._spent += wall
            self._cpu_spent += wall if wall < _CPU_EXACT_FROM else _cpu() - c0

    def _budget_spent(self, phase: str, reason: str) -> None:
        """The budget stopped inspection: counted (``devsecmw.errors``) and reported as a signal."""
        self.runtime.telemetry.count_error(phase, "time_budget")
        config = self.runtime.config
        if reason == "cpu":
            evidence = f"{phase}: CPU time budget {config.time_budget * 1000:g} ms"
        else:
            evidence = f"{phase}: wall-clock ceiling {config.wall_ceiling * 1000:g} ms"
        self._incomplete([("budget", evidence)])

    def _incomplete(self, cuts: list[tuple[str, str]]) -> None:
        """``inspection_incomplete`` once per location where a cap or the budget stopped inspection."""
        self.incomplete = True
        done = self._cuts
        if done is None:
            done = self._cuts = set()
        for location, evidence in cuts:
            if location not in done:
                done.add(location)
                self.signals.append(Signal(INSPECTION_INCOMPLETE, location, evidence, Severity.INFO))

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
            return may_have_body(req) and not runtime.allowlisted(req)
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
            return may_have_body(req)
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
            if timed_out:  # seen in part only: said where
                wait = self.runtime.config.unread_timeout
                self._incomplete([("body.unread", f"no more of the body within {wait * 1000:g} ms")])
            if timed_out or skipped is not None:
                # A server where the read could stall is skipped as before this read existed
                # (the app did not read the body either): counted, not marked incomplete.
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
            flagged = bool(self.flagged) and not self.shared  # never deny a whole proxy's users
            where = self.request.route or self.request.path
            would = block_wanted(
                self.signals, config, where, flagged, exclusions=self.runtime.exclusions
            ) and not self.runtime.allowlisted(self.request)
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
                # Not when the failure came after the span ended (metrics): a second end() is
                # a warning in the SDK's log on every such request.
                if self.handle.owned and self.handle.span.is_recording():
                    self.handle.span.end()
            except Exception:  # pragma: no cover - span end failing after a report
                pass

    def _decide(self) -> Verdict:
        # The one decision (devsecmw.decision), with this request's state: the client windows
        # and the user's hook come in as callbacks.
        hook = self.runtime.config.before_emit
        verdict = decide_request(
            self.signals,
            self.runtime.config,
            where=self.request.route or self.request.path,
            status=self.status,
            exception=self.exception,
            blocked=self.blocked,
            leaked=self._leaks(),
            observe=self._observe_client,
            hook=None if hook is None else functools.partial(self._before_emit, hook),
            exclusions=self.runtime.exclusions,
        )
        verdict.blocked = self.blocked
        verdict.would_block = self.would_block
        return verdict

    def _observe_client(self, attack: bool) -> Signal | None:
        # Per-client windows count the attacks a client sent, blocked or not (a scanner whose
        # every probe is blocked is still a scanner), and the statuses the app answered (a block
        # response is devsecmw's own 403, not an auth failure).
        client = self.request.client_address
        reason = self.runtime.clients.observe(client, attack, None if self.blocked else self.status)
        first = reason is not None and not self.flagged and self.runtime.flag_reports.mark(client)
        return self._flag_signal(reason) if first and reason else None

    def _before_emit(self, hook: BeforeEmit, signals: list[Signal]) -> list[Signal]:
        """The user's hook on each signal: kept, altered, or dropped (None). A hook that raises or
        returns something else keeps the signal as it was (fail open, counted as ``before_emit``)."""
        kept: list[Signal] = []
        for s in signals:
            try:
                out = hook(s)
                if out is not None and not isinstance(out, Signal):
                    raise TypeError(f"before_emit returned {type(out).__name__}, not a Signal or None")
            except Exception as exc:
                self.runtime.report("before_emit", exc)
                out = s
            if out is not None:
                kept.append(out)
        return kept

    def _leaks(self) -> list[Signal]:
        sniffer, self._sniffer = self._sniffer, None
        if sniffer is None or self.runtime.leaks is None:
            return []
        return self.runtime.leaks.scan_sniffed(sniffer)


__all__ = ["Inspection", "Runtime"]

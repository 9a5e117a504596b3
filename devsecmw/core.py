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

import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, TypeVar

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
from .config import Config, expand_tags
from .config_values import path_set
from .core_reads import BodyReads
from .decision import block_wanted, decide_request
from .engine import Budget, Detector, Engine
from .engine.matcher import Pattern
from .engine.response import ResponseRules, response_rules
from .leaks import CleanSamples, Sniffer
from .request import HttpRequest, Limits, full_url
from .signals import INSPECTION_INCOMPLETE, Severity, Signal, Verdict
from .telemetry import SpanHandle, Telemetry
from .telemetry.emitter import Emission, Outputs

if TYPE_CHECKING:
    from .clients_redis import RedisClientTable

_perf = time.perf_counter
#: This thread's CPU time: what the inspection budget counts (see :class:`~devsecmw.engine.Budget`).
_cpu = time.thread_time
#: A phase shorter than this in wall time adds its wall time to the CPU spent (an upper bound:
#: CPU time never exceeds it), saving a read of the CPU clock on nearly every request.
_CPU_EXACT_FROM = 0.001

#: What :meth:`Inspection.gate` tells an adapter to do before calling the app.
RUN: Final = "run"
READ_AHEAD: Final = "read_ahead"
BLOCK: Final = "block"
#: Where an adapter finds the route template once the framework has routed the request.
RouteOf = Callable[[], "str | None"]
_T = TypeVar("_T")
#: Statuses whose response has no body (RFC 9110 6.4.1): no sample is made for them.
_BODILESS: Final = frozenset((100, 101, 102, 103, 204, 304))


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
        #: Where verdicts leave: OpenTelemetry, then the ``emitters`` option's outputs; ``before_emit``.
        self.outputs = Outputs(self.telemetry, config.emitters, config.before_emit, self.report)
        self.leaks: ResponseRules | None = response_rules(self.detector, config)
        #: The response sample's size; 0 when no rule reads a response body (nothing sampled).
        self.sniff_limit = config.response_limit if self.leaks is not None and self.leaks.wants_body else 0
        self.clean_samples = CleanSamples()
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

    def begin(self, request: HttpRequest, route: RouteOf | None = None) -> Inspection | None:
        """Start inspecting ``request``: span, head inspection. ``None`` when devsecmw stands aside.

        ``route`` gives the route template the framework matched (called at the response's
        start and at the end, until it gives one; never the raw path)."""
        try:
            if self.ignored(request.path):
                return None
            if self._excluded_urls is not None and self._excluded_urls.search(full_url(request)):
                return None
            insp = Inspection(self, request, route)
        except Exception as exc:
            self.report("begin", exc)
            return None
        try:  # the head, inspected before the app runs
            insp._detect("head")
        except Exception as exc:
            self.report("inspect_head", exc)
        return insp


def _url_pattern(patterns: Sequence[str]) -> Pattern | None:
    if not patterns:
        return None
    from .engine.matcher import compile_pattern

    return compile_pattern("|".join(f"(?:{p})" for p in patterns))


class Inspection(BodyReads):
    """One request's journey through devsecmw. Adapters call its methods and never write its state."""

    __slots__ = (
        "_body_inspected",
        "_cpu_spent",
        "_cuts",
        "_gated",
        "_route_of",
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

    def __init__(self, runtime: Runtime, request: HttpRequest, route: RouteOf | None = None) -> None:
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
        self.blocked = False  # the block response was sent instead of calling the app
        self.would_block = False
        self._gated = False  # the gate sent the adapter to read the body ahead
        self._route_of = route
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

    def __enter__(self) -> Inspection:
        """``with insp:`` around the app: devsecmw's span current; the app's exception, if any,
        recorded (and the verdict written) before it propagates unchanged."""
        self.activate()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if exc is not None:
                self.finish(exc)
        finally:
            self.deactivate()

    def owns_span(self) -> bool:
        """Whether devsecmw ends the span itself; else an outer instrumentation ends it when the
        response leaves it, so the verdict cannot wait for a streaming response's end."""
        return self.handle.owned

    def sending_last(self) -> None:
        """The last response message is about to leave: an outer instrumentation's span ends as
        it passes, so the verdict is written on it now. devsecmw's own span ends after it went
        (:meth:`finish`, once the send returned): the last byte has gone, not merely been made."""
        if not self.handle.owned:
            self.finish()

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

    # ------------------------------------------------------------------ blocking
    def gate(self) -> str:
        """Block mode, before the app runs: the block gate of every adapter, written once.

        :data:`BLOCK`: answer with :meth:`block_answer` (the app never runs). :data:`READ_AHEAD`:
        the request may have a body worth deciding on; read it ahead with the protocol's tap
        (which feeds :meth:`body_chunk` and ends with :meth:`body_ahead_end`), then ask again.
        :data:`RUN`: call the app. The head decides first, then the body read ahead; monitor
        mode always runs.
        """
        if not self.runtime.blocking:
            return RUN
        if self.check_block():
            return BLOCK
        if not self._gated and self.wants_body_ahead():
            self._gated = True
            return READ_AHEAD
        return RUN

    def check_block(self, record_only: bool = False) -> bool:
        """Whether blocking applies to what was seen of the request so far.

        Records ``would_block`` in every mode; True only in block mode before the response
        started (the adapter then answers with :meth:`block_answer` instead of calling the app).
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
            return would and config.mode == "block" and self.status is None and not record_only
        except Exception as exc:
            self.runtime.report("block", exc)
        return False

    def block_answer(self, build: Callable[[int, list[tuple[str, str]], bytes], _T]) -> _T | None:
        """The block response in the adapter's protocol: ``build(status, headers, body)`` (the
        body empty for HEAD; the trace id in it lets support find the span). Recorded as
        blocked; the adapter sends it, then calls :meth:`finish` (see :meth:`sending_last`).
        ``None`` if it cannot be built (an internal error, reported): the request then goes on
        to the app unblocked, as if devsecmw were absent (fail open).
        """
        try:
            from .blocking import render

            ctx = self.handle.span.get_span_context()
            trace_id = format(ctx.trace_id, "032x") if ctx.is_valid else ""
            request = self.request
            status, headers, body = render(self.runtime.config, trace_id, request.header("accept"))
            answer = build(status, headers, b"" if request.method == "HEAD" else body)
        except Exception as exc:
            self.runtime.report("block_response", exc)
            return None
        self.blocked = True
        self.status = status
        return answer

    # ------------------------------------------------------------------ response
    def response_start(self, status: int, headers: Sequence[tuple[Any, Any]] = ()) -> None:
        self._note_route()
        try:
            self.status = status
            self.response_headers = headers
            # No body reaches the client (HEAD, 1xx, 204, 304): nothing to sample.
            if self.runtime.sniff_limit and status not in _BODILESS and self.request.method != "HEAD":
                self._sniffer = Sniffer.for_response(headers, self.runtime.sniff_limit)
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

    def _note_route(self) -> None:
        """The route template, from the adapter's framework, once the app has routed the request."""
        route_of = self._route_of
        if route_of is not None and self.request.route is None:
            try:
                self.request.route = route_of()
            except Exception as exc:
                self.runtime.report("route", exc)

    # ------------------------------------------------------------------ end
    def app_failed(self, exception: BaseException | None) -> None:
        """The app's exception, kept for a verdict written later (a streaming response's end)."""
        if isinstance(exception, Exception):
            self.exception = exception

    def finish(self, exception: BaseException | None = None) -> None:
        """The last byte has gone (or the app failed): decide, emit, end the span. Once."""
        if self.finished:
            return
        self._note_route()
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
            self.runtime.outputs.emit(
                Emission(
                    self.request,
                    verdict,
                    self.status,
                    self.exception,
                    self._spent,
                    self.incomplete,
                    self.handle,
                )
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
        # and the user's hook (the output seam's) come in as callbacks.
        verdict = decide_request(
            self.signals,
            self.runtime.config,
            where=self.request.route or self.request.path,
            status=self.status,
            exception=self.exception,
            blocked=self.blocked,
            leaked=self._leaks(),
            observe=self._observe_client,
            hook=self.runtime.outputs.before_emit,
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

    def _leaks(self) -> list[Signal]:
        sniffer, self._sniffer = self._sniffer, None
        if self.runtime.leaks is None or self.blocked:  # a block response is devsecmw's own
            return []
        try:  # a failure here costs the response rules' signals, not the request's verdict
            sample = None if sniffer is None else sniffer.data
            return self.runtime.clean_samples.inspect(self.runtime.leaks, sample, self.response_headers)
        except Exception as exc:
            self.runtime.report("response_rules", exc)
            return []


__all__ = ["BLOCK", "READ_AHEAD", "RUN", "Inspection", "RouteOf", "Runtime"]

#!/usr/bin/env python3
"""Where devsecmw's microseconds go on one request, outside and inside the engine.

The same requests as the overhead referee's ``get`` and ``post_json`` mixes (a browser
GET with a short query and cookies; a 2 KiB JSON POST), measured two ways.

Each step alone, warm, in a tight loop:

- ``model``: the request model from the ASGI scope (``from_asgi_scope``);
- ``telemetry``: ``Telemetry.start`` + ``finish`` of a benign request, with devsecmw's own
  SERVER span, and enriching the span of an outer instrumentation (``enrich``); beside them
  ``SDK floor``: the OpenTelemetry SDK alone doing the same (a SERVER span started with the
  same ten attributes, renamed, six set, ended; a histogram record; the request counted in
  the in-process totals that ``devsecmw.requests`` reports at collection);
- ``core``: ``Runtime.begin`` .. ``finish`` with a detector that finds nothing and no-op
  OpenTelemetry providers: client table, block bookkeeping, decision, leak sniffing;
- ``engine``: the detector alone, per phase (``head``; ``body`` for the POST).

In the request path, a Starlette app driven as the referee drives it, the bare app
subtracted (what the referee calls "added"):

- ``as shipped``; ``no-op providers`` (the same with OpenTelemetry's no-op tracer and meter:
  devsecmw's own code only; the difference is what the SDK costs); ``no-op providers, no
  signals`` (also without the engine: model, core and adapter).

Steps alone run faster than in the request path (warm caches, no app around them): read
them as a breakdown, the request-path rows as the measurement. Every figure is the median
over rounds of a round's mean, in microseconds per request; everything runs interleaved,
round by round, so machine drift hits all alike.

    python benchmarks/request_path.py               # both mixes, 9 rounds
    python benchmarks/request_path.py --mix get --rounds 5 --n 2000
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from _common import BROWSER, GET_QUERY, json_order, providers

from devsecmw.core import Runtime
from devsecmw.engine import Budget
from devsecmw.request import HttpRequest, from_asgi_scope
from devsecmw.signals import Signal, Verdict

#: name -> (method, path, query, headers, body): the referee's mixes of the same names.
MIXES: dict[str, tuple[str, str, bytes, list[tuple[bytes, bytes]], bytes]] = {
    "get": ("GET", "/api/items", GET_QUERY, BROWSER, b""),
    "post_json": (
        "POST",
        "/api/items",
        b"",
        [*BROWSER, (b"content-type", b"application/json")],
        json_order(2048),
    ),
}
RESPONSE_HEADERS = [(b"content-length", b"18"), (b"content-type", b"application/json")]
RESPONSE_BODY = b'{"ok":true,"n":0}'


class NoSignals:
    """A detector that finds nothing, at no cost: isolates everything around the engine."""

    def inspect(self, request: HttpRequest, phase: str, budget: Budget | None = None) -> list[Signal]:
        return []


def scope_for(mix: str, i: int) -> dict[str, Any]:
    method, path, query, headers, _ = MIXES[mix]
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": query,
        "root_path": "", "headers": headers,
        "client": ("198.18.0.1", 40000 + i % 1000), "server": ("127.0.0.1", 8000),
    }  # fmt: skip


def app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def items(request: Request) -> JSONResponse:
        body = await request.body()
        return JSONResponse({"ok": True, "n": len(body)})

    return Starlette(routes=[Route("/api/items", items, methods=["GET", "POST"])])


# --------------------------------------------------------------------------- components
Timer = Callable[[str, int], float]  # (mix, n) -> seconds for n requests


def time_model(mix: str, n: int) -> float:
    scopes = [scope_for(mix, i) for i in range(n)]
    perf = time.perf_counter
    t0 = perf()
    for s in scopes:
        from_asgi_scope(s)
    return perf() - t0


def make_telemetry_timer(enrich: bool) -> Timer:
    from opentelemetry import context, trace
    from opentelemetry.trace import SpanKind

    tp, mp = providers()
    runtime = Runtime.from_options(tp, mp, detector=NoSignals())
    telemetry = runtime.telemetry
    verdict_signals: list[Signal] = []
    outer_tracer = tp.get_tracer("outer")

    def run(mix: str, n: int) -> float:
        requests = [from_asgi_scope(scope_for(mix, i)) for i in range(n)]
        for r in requests:
            r.route = "/api/items"
        perf = time.perf_counter
        spent = 0.0
        for r in requests:
            token = None
            outer = None
            if enrich:  # what OpenTelemetry's ASGI middleware has made current before devsecmw runs
                outer = outer_tracer.start_span("GET /api/items", kind=SpanKind.SERVER)
                token = context.attach(trace.set_span_in_context(outer))
            t0 = perf()
            handle = telemetry.start(r)
            verdict = Verdict("benign", 0, verdict_signals)
            telemetry.finish(handle, r, verdict, 200, None, 1e-4)
            spent += perf() - t0
            if token is not None and outer is not None:
                context.detach(token)
                outer.end()
        return spent

    return run


def make_sdk_floor_timer() -> Timer:
    """The OpenTelemetry SDK alone doing what devsecmw asks of it for a benign request."""
    from opentelemetry.trace import SpanKind

    tp, mp = providers()
    runtime = Runtime.from_options(tp, mp, detector=NoSignals())
    tracer, telemetry = runtime.telemetry.tracer, runtime.telemetry

    def run(mix: str, n: int) -> float:
        method, path, query, _, _ = MIXES[mix]
        attrs = {
            "http.request.method": method, "url.path": path, "url.scheme": "http",
            "client.address": "198.18.0.1", "client.port": 40000, "server.address": "127.0.0.1",
            "server.port": 8000, "user_agent.original": "Mozilla/5.0", "network.protocol.version": "1.1",
        }  # fmt: skip
        if query:
            attrs["url.query"] = query.decode()
        summary = {
            "devsecmw.classification": "benign", "devsecmw.signal.types": [], "devsecmw.score": 0,
            "devsecmw.blocked": False, "http.route": path, "http.response.status_code": 200,
        }  # fmt: skip
        timing = {"http.request.method": method, "http.route": path, "devsecmw.classification": "benign"}
        counted = {**timing, "http.response.status_code": 200}
        totals = telemetry.requests
        cell = totals.cell(("floor", method, path), counted)
        perf = time.perf_counter
        t0 = perf()
        for _ in range(n):
            span = tracer.start_span(method, kind=SpanKind.SERVER, attributes=attrs)
            span.update_name(f"{method} {path}")
            span.set_attributes(summary)
            span.end()
            telemetry.duration.record(1e-4, timing)
            totals.add(cell, 1)
        return perf() - t0

    return run


def make_core_timer() -> Timer:
    from opentelemetry.metrics import NoOpMeterProvider
    from opentelemetry.trace import NoOpTracerProvider

    runtime = Runtime.from_options(NoOpTracerProvider(), NoOpMeterProvider(), detector=NoSignals())

    def run(mix: str, n: int) -> float:
        requests = [from_asgi_scope(scope_for(mix, i)) for i in range(n)]
        body = MIXES[mix][4]
        perf = time.perf_counter
        t0 = perf()
        for r in requests:
            insp = runtime.begin(r)
            if insp is None:
                continue
            if body:
                insp.body_chunk(body, False)
            r.route = "/api/items"
            insp.response_start(200, RESPONSE_HEADERS)
            insp.response_chunk(RESPONSE_BODY)
            insp.finish()
        return perf() - t0

    return run


def make_engine_timer(phase: str) -> Timer:
    runtime = Runtime.from_options(*providers())
    detector = runtime.detector
    budget_s = runtime.config.time_budget

    def run(mix: str, n: int) -> float:
        body = MIXES[mix][4]
        requests = [from_asgi_scope(scope_for(mix, i)) for i in range(n)]
        for r in requests:
            if body:
                r.add_body(body, runtime.config.body_limit)
                r.body_complete = True
        perf = time.perf_counter
        spent = 0.0
        for r in requests:
            if phase == "body" and not body:
                continue
            if phase == "body":  # the head ran before the body, as in a request
                detector.inspect(r, "head", Budget(deadline=perf() + budget_s))
            t0 = perf()
            detector.inspect(r, phase, Budget(deadline=t0 + budget_s))
            spent += perf() - t0
        return spent

    return run


def make_asgi_timer(target: Any, loop: asyncio.AbstractEventLoop) -> Timer:
    async def drive(mix: str, n: int) -> float:
        body = MIXES[mix][4]
        perf = time.perf_counter
        spent = 0.0
        for i in range(n):
            scope = scope_for(mix, i)
            queue = [body]

            async def receive(queue: list[bytes] = queue) -> dict[str, Any]:
                if queue:
                    return {"type": "http.request", "body": queue.pop(), "more_body": False}
                return {"type": "http.disconnect"}

            async def send(message: dict[str, Any]) -> None:
                pass

            t0 = perf()
            await target(scope, receive, send)
            spent += perf() - t0
        return spent

    return lambda mix, n: loop.run_until_complete(drive(mix, n))


# --------------------------------------------------------------------------- report
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--n", type=int, default=1000, help="requests per component and round")
    ap.add_argument("--mix", action="append", choices=sorted(MIXES), help="only this mix (repeatable)")
    args = ap.parse_args(argv)

    from opentelemetry.metrics import NoOpMeterProvider
    from opentelemetry.trace import NoOpTracerProvider

    from devsecmw.asgi import SecurityMiddleware

    loop = asyncio.new_event_loop()
    tp, mp = providers()
    noop = {"tracer_provider": NoOpTracerProvider(), "meter_provider": NoOpMeterProvider()}
    timers: dict[str, Timer] = {
        "model": time_model,
        "telemetry": make_telemetry_timer(enrich=False),
        "telemetry (enrich)": make_telemetry_timer(enrich=True),
        "sdk floor": make_sdk_floor_timer(),
        "core": make_core_timer(),
        "engine head": make_engine_timer("head"),
        "engine body": make_engine_timer("body"),
        "bare app": make_asgi_timer(app(), loop),
        "as shipped": make_asgi_timer(SecurityMiddleware(app(), tracer_provider=tp, meter_provider=mp), loop),
        "no-op providers": make_asgi_timer(SecurityMiddleware(app(), **noop), loop),
        "no-op, no signals": make_asgi_timer(SecurityMiddleware(app(), **noop, detector=NoSignals()), loop),
    }
    print(f"µs per request: median of {args.rounds} rounds x {args.n} requests, everything interleaved")
    for mix in args.mix or list(MIXES):
        for timer in timers.values():  # warm-up: imports, caches, first-request paths
            timer(mix, max(args.n // 10, 10))
        rounds: dict[str, list[float]] = {name: [] for name in timers}
        for _ in range(args.rounds):
            for name, timer in timers.items():
                gc.collect()
                rounds[name].append(timer(mix, args.n) / args.n * 1e6)
        med = {name: statistics.median(v) for name, v in rounds.items()}
        has_body = bool(MIXES[mix][4])
        bare = med["bare app"]
        shipped, own, around = (med[k] - bare for k in ("as shipped", "no-op providers", "no-op, no signals"))
        print(f"\n{mix}: {MIXES[mix][0]} {MIXES[mix][1]}")
        rows: list[tuple[str, float | None]] = [
            ("each step alone, warm:", None),
            ("  model (from_asgi_scope)", med["model"]),
            ("  telemetry start+finish, own SERVER span", med["telemetry"]),
            ("  telemetry start+finish, enriching an outer span", med["telemetry (enrich)"]),
            ("    SDK floor: the same span, record and add, SDK alone", med["sdk floor"]),
            ("  core (begin..finish; no signal, no-op providers)", med["core"]),
            ("  engine head", med["engine head"]),
        ]
        if has_body:
            rows.append(("  engine body", med["engine body"]))
        rows += [
            ("in the request path (bare app subtracted):", None),
            ("  devsecmw as shipped (the referee's 'added')", shipped),
            ("    OpenTelemetry SDK (as shipped - no-op providers)", shipped - own),
            ("    devsecmw's own code (no-op providers)", own),
            ("      engine (the detector's share of it)", own - around),
            ("      model + core + adapter (no signals)", around),
            ("  bare app itself", bare),
        ]
        for label, value in rows:
            print(f"  {label:58}" + ("" if value is None else f" {value:8.1f}"))
    loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Per-request overhead of devsecmw, in process: bare app, OpenTelemetry alone, devsecmw, both.

ASGI (a Starlette app) and WSGI (a Flask app) are driven directly, without a
server or a socket, so the figures are the middleware's own cost. Every
request is timed on its own; configurations are interleaved round by round,
so machine drift (two shared cores) hits all of them alike. Printed per mix
and configuration: the median over rounds of the mean per request, the
p50/p99 of single requests, and ratios to the bare app of the same run.

    python benchmarks/overhead.py                 # everything, 10 rounds
    python benchmarks/overhead.py --quick         # 3 rounds, fewer requests
    python benchmarks/overhead.py --mix get --mix attack --no-wsgi --json out.json

Needs the test extra (starlette, flask, opentelemetry-sdk, and the OpenTelemetry
ASGI/WSGI instrumentations for the otel rows, which are skipped when missing).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import io
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from _common import providers

Header = tuple[bytes, bytes]

BROWSER: list[Header] = [
    (b"host", b"shop.example.com"),
    (
        b"user-agent",
        b"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Version/17.5 Safari/605.1.15",
    ),
    (b"accept", b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
    (b"accept-language", b"fr-FR,fr;q=0.9,en;q=0.7"),
    (b"accept-encoding", b"gzip, deflate, br"),
    (b"referer", b"https://shop.example.com/c/shirts?sort=new"),
    (b"cookie", b"sid=5f0c6a1e9b2d4c7f8a3e1b0d9c8f7a6e; consent=analytics%3Dno; _ga=GA1.1.998877.1712345678"),
    (b"connection", b"keep-alive"),
]


def order_json(size: int) -> bytes:
    """A realistic JSON order of about ``size`` bytes (prose with punctuation included)."""
    lines, i = [], 0
    while sum(len(x) for x in lines) < size:
        lines.append(
            json.dumps(
                {
                    "sku": f"SH-{i:04d}",
                    "qty": i % 4 + 1,
                    "gift": i % 3 == 0,
                    "note": "Don't fold it; it's a gift.",
                }
            )
        )
        i += 1
    return (
        '{"customer":{"name":"Zoë O\'Brien","email":"zoe@example.com"},"lines":[' + ",".join(lines) + "]}"
    ).encode()


def adversarial_form(size: int) -> bytes:
    """A form body of fragments that open many rules' matches and never finish one."""
    pieces = [
        "' or 1",
        "<scr",
        "../..",
        "${jn",
        "{{7",
        ";ca",
        "union sel",
        "%252e",
        "<!ENT",
        "$ne",
        "php:/",
        "eval(",
        "__pro",
        "java.la",
        "\\x00",
        "select(",
        "onload",
        "&#x3c",
    ]
    out, i = [], 0
    while sum(len(x) + 1 for x in out) < size:
        out.append(f"f{i % 50}={pieces[i % len(pieces)]}{'a' * (i % 7)}")
        i += 1
    return "&".join(out).encode()[:size]


def long_query(params: int) -> bytes:
    return "&".join(f"filter{i}=size%20{i}%20%27slim%27" for i in range(params)).encode()


def many_headers(count: int) -> list[Header]:
    return BROWSER + [(f"x-custom-{i}".encode(), f"v{i}; path=/a/b, q='{i}'".encode()) for i in range(count)]


@dataclass(frozen=True)
class Mix:
    method: str
    path: str
    query: bytes
    headers: list[Header]
    body: bytes
    n: int  # requests per round and configuration

    @property
    def what(self) -> str:
        sizes = f"query {len(self.query)} B, body {len(self.body)} B, {len(self.headers)} headers"
        return f"{self.method} {self.path} ({sizes})"


FORM = [(b"content-type", b"application/x-www-form-urlencoded")]
JSON = [(b"content-type", b"application/json")]
MIXES: dict[str, Mix] = {
    "get": Mix("GET", "/api/items", b"category=shirts&page=2&sort=price&q=linen+shirt", BROWSER, b"", 300),
    "post_json": Mix("POST", "/api/items", b"", BROWSER + JSON, order_json(2048), 300),
    "attack": Mix(
        "GET", "/api/items", b"id=1%27%20UNION%20SELECT%20password%20FROM%20users--", BROWSER, b"", 300
    ),
    "attack_json": Mix(
        "POST", "/api/items", b"", BROWSER + JSON, b'{"comment":"<svg onload=alert(document.cookie)>"}', 300
    ),
    "adversarial_64k": Mix("POST", "/api/items", b"", BROWSER + FORM, adversarial_form(65536), 30),
    "long_query": Mix("GET", "/api/items", long_query(200), BROWSER, b"", 100),
    "many_headers": Mix("GET", "/api/items", b"page=1", many_headers(100), b"", 150),
}


# --------------------------------------------------------------------------- ASGI
def asgi_app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def items(request: Request) -> JSONResponse:
        body = await request.body()
        return JSONResponse({"ok": True, "n": len(body), "q": len(request.query_params)})

    return Starlette(routes=[Route("/api/items", items, methods=["GET", "POST"])])


def asgi_configs() -> dict[str, Any]:
    from devsecmw.asgi import SecurityMiddleware

    tp, mp = providers()
    configs: dict[str, Any] = {"bare": asgi_app()}
    try:
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    except ImportError:
        print("# opentelemetry-instrumentation-asgi missing: ASGI otel rows skipped", file=sys.stderr)
        OpenTelemetryMiddleware = None
    if OpenTelemetryMiddleware is not None:
        configs["otel"] = OpenTelemetryMiddleware(asgi_app(), tracer_provider=tp, meter_provider=mp)
    configs["devsecmw"] = SecurityMiddleware(asgi_app(), tracer_provider=tp, meter_provider=mp)
    if OpenTelemetryMiddleware is not None:
        configs["otel+devsecmw"] = OpenTelemetryMiddleware(
            SecurityMiddleware(asgi_app(), tracer_provider=tp, meter_provider=mp),
            tracer_provider=tp,
            meter_provider=mp,
        )
    return configs


async def drive_asgi(app: Any, mix: Mix, n: int, times: list[float]) -> int:
    chunks = [mix.body[i : i + 16384] for i in range(0, len(mix.body), 16384)] or [b""]
    ok = 0
    perf = time.perf_counter
    for i in range(n):
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": mix.method,
            "scheme": "http", "path": mix.path, "raw_path": mix.path.encode(), "query_string": mix.query,
            "root_path": "", "headers": mix.headers,
            # A thousand clients: per-client state sees realistic cardinality, not one hot entry.
            "client": (f"198.18.{(i >> 8) & 3}.{i & 255}", 40000 + i), "server": ("127.0.0.1", 8000),
        }  # fmt: skip
        queue = list(chunks)

        async def receive(queue: list[bytes] = queue) -> dict[str, Any]:
            if queue:
                c = queue.pop(0)
                return {"type": "http.request", "body": c, "more_body": bool(queue)}
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal ok
            if message["type"] == "http.response.start":
                ok += message["status"] == 200

        t0 = perf()
        await app(scope, receive, send)
        times.append(perf() - t0)
    return ok


# --------------------------------------------------------------------------- WSGI
def wsgi_app() -> Any:
    from flask import Flask, jsonify, request

    app = Flask("bench")

    @app.route("/api/items", methods=["GET", "POST"])
    def items() -> Any:
        return jsonify(ok=True, n=len(request.get_data()), q=len(request.args))

    return app.wsgi_app


def wsgi_configs() -> dict[str, Any]:
    from devsecmw.wsgi import SecurityMiddleware

    tp, mp = providers()
    configs: dict[str, Any] = {"bare": wsgi_app()}
    try:
        from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware
    except ImportError:
        print("# opentelemetry-instrumentation-wsgi missing: WSGI otel rows skipped", file=sys.stderr)
        OpenTelemetryMiddleware = None
    if OpenTelemetryMiddleware is not None:
        configs["otel"] = OpenTelemetryMiddleware(wsgi_app(), tracer_provider=tp, meter_provider=mp)
    configs["devsecmw"] = SecurityMiddleware(wsgi_app(), tracer_provider=tp, meter_provider=mp)
    if OpenTelemetryMiddleware is not None:
        configs["otel+devsecmw"] = OpenTelemetryMiddleware(
            SecurityMiddleware(wsgi_app(), tracer_provider=tp, meter_provider=mp),
            tracer_provider=tp,
            meter_provider=mp,
        )
    return configs


def drive_wsgi(app: Any, mix: Mix, n: int, times: list[float]) -> int:
    ok = 0
    perf = time.perf_counter
    base = {
        "REQUEST_METHOD": mix.method, "SCRIPT_NAME": "", "PATH_INFO": mix.path,
        "QUERY_STRING": mix.query.decode("latin-1"), "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.version": (1, 0), "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr, "wsgi.multithread": False, "wsgi.multiprocess": False,
        "wsgi.run_once": False, "CONTENT_LENGTH": str(len(mix.body)) if mix.body else "",
    }  # fmt: skip
    for k, v in mix.headers:
        name = k.decode("latin-1").upper().replace("-", "_")
        if name == "CONTENT_TYPE":
            base["CONTENT_TYPE"] = v.decode("latin-1")
        else:
            base["HTTP_" + name] = v.decode("latin-1")

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Callable[[bytes], None]:
        nonlocal ok
        ok += status.startswith("200")
        return lambda data: None

    for i in range(n):
        environ = dict(base)
        environ["wsgi.input"] = io.BytesIO(mix.body)
        environ["REMOTE_ADDR"] = f"198.18.{(i >> 8) & 3}.{i & 255}"
        t0 = perf()
        result = app(environ, start_response)
        try:
            for _ in result:
                pass
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        times.append(perf() - t0)
    return ok


# --------------------------------------------------------------------------- measuring
def quantile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def measure(
    name: str,
    configs: dict[str, Any],
    run: Callable[[Any, Mix, int, list[float]], int],
    args: argparse.Namespace,
) -> dict[str, float]:
    summary: dict[str, float] = {}
    print(f"\n{name}: {args.rounds} rounds, configurations interleaved; microseconds per request")
    print(f"{'mix':16} {'config':14} {'median':>8} {'p50':>8} {'p99':>8} {'x bare':>7} {'x otel':>7}")
    for mix_name in args.mix or list(MIXES):
        mix = MIXES[mix_name]
        n = max(3, int(mix.n * args.scale))
        for app in configs.values():  # warm-up: imports, caches, first-request paths
            run(app, mix, max(n // 5, 3), [])
        round_means: dict[str, list[float]] = {c: [] for c in configs}
        singles: dict[str, list[float]] = {c: [] for c in configs}
        failures: dict[str, int] = {c: 0 for c in configs}
        for _ in range(args.rounds):
            for config, app in configs.items():
                times: list[float] = []
                gc.collect()
                ok = run(app, mix, n, times)
                failures[config] += n - ok
                round_means[config].append(statistics.fmean(times) * 1e6)
                singles[config].extend(t * 1e6 for t in times)
        bare = statistics.median(round_means["bare"])
        otel = statistics.median(round_means["otel"]) if "otel" in round_means else None
        for config in configs:
            med = statistics.median(round_means[config])
            s = sorted(singles[config])
            x_otel = f"{med / otel:7.2f}" if otel and config == "otel+devsecmw" else f"{'':7}"
            print(
                f"{mix_name:16} {config:14} {med:8.1f} {quantile(s, 0.5):8.1f} {quantile(s, 0.99):8.1f} "
                f"{med / bare:7.2f} {x_otel}"
            )
            key = f"{name.split()[0].lower()}.{mix_name}.{config}"
            summary[f"{key}.us"] = round(med, 1)
            summary[f"{key}.p50_us"] = round(quantile(s, 0.5), 1)
            summary[f"{key}.p99_us"] = round(quantile(s, 0.99), 1)
            summary[f"{key}.x_bare"] = round(med / bare, 3)
            if failures[config]:
                print(f"#   {config}: {failures[config]} responses were not 200 (the timings are suspect)")
        added = statistics.median(round_means["devsecmw"]) - bare
        summary[f"{name.split()[0].lower()}.{mix_name}.devsecmw.added_us"] = round(added, 1)
        note = f"#   {mix.what}: devsecmw adds {added:.0f} us to the bare app"
        if otel:
            both = statistics.median(round_means["otel+devsecmw"])
            note += f", {both - otel:.0f} us on top of OpenTelemetry ({both / otel:.2f}x)"
        print(note)
    return summary


def main(argv: Iterable[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--scale", type=float, default=1.0, help="multiply the requests per round of every mix")
    ap.add_argument("--mix", action="append", choices=sorted(MIXES), help="only this mix (repeatable)")
    ap.add_argument("--quick", action="store_true", help="3 rounds, a third of the requests")
    ap.add_argument("--no-asgi", action="store_true")
    ap.add_argument("--no-wsgi", action="store_true")
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = ap.parse_args(list(argv) if argv is not None else None)
    if args.quick:
        args.rounds, args.scale = 3, args.scale / 3
    import devsecmw

    print(f"devsecmw {devsecmw.__version__}, Python {sys.version.split()[0]}")
    summary: dict[str, float] = {}
    if not args.no_asgi:
        loop = asyncio.new_event_loop()

        def run_asgi(app: Any, mix: Mix, n: int, times: list[float]) -> int:
            return loop.run_until_complete(drive_asgi(app, mix, n, times))

        summary |= measure("ASGI (Starlette)", asgi_configs(), run_asgi, args)
        loop.close()
    if not args.no_wsgi:
        summary |= measure("WSGI (Flask)", wsgi_configs(), drive_wsgi, args)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(summary, fh, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

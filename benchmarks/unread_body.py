"""What reading the unread body costs: a POST the app answers 405 without reading its body.

Three configurations of the same app, interleaved round by round, in process (no socket):
the bare app, devsecmw with the read switched off (``unread_timeout=0``, monitor mode as it
was), devsecmw with it (the default), and, for reference, devsecmw in front of an app that
reads the body itself (the body is inspected either way). The body is there at once (as a server hands it
over when the client sent it with the request), so the figure is the cost of reading and
inspecting it, not of waiting. ASGI (a Starlette route) and WSGI (a plain app). Prints
microseconds per request (median over rounds) and ratios against the read switched off.

    python benchmarks/unread_body.py            # 7 rounds
    python benchmarks/unread_body.py --rounds 3 --requests 200
    python benchmarks/unread_body.py --corpus ../shared/corpus/dev/*.jsonl

``--corpus`` prints what the read finds instead: every labeled row with a body is sent to
an ASGI app that answers 405 without reading it, with the read off and on; the share of
attack rows that raise an attack signal, and the benign rows that do.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import statistics
import time
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from devsecmw.asgi import SecurityMiddleware as AsgiMiddleware
from devsecmw.wsgi import SecurityMiddleware as WsgiMiddleware

BODIES = {
    "xxe": b'<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><foo>&xxe;</foo>',
    "xml_8k": b"<order>" + b"<item sku='A-1' qty='2'>garden chair</item>" * 190 + b"</order>",
}


def providers() -> dict[str, Any]:
    return {"tracer_provider": TracerProvider(), "meter_provider": MeterProvider()}


# --------------------------------------------------------------------------- ASGI
async def items(request: Any) -> PlainTextResponse:
    return PlainTextResponse("items")


async def reads(request: Any) -> PlainTextResponse:
    await request.body()
    return PlainTextResponse("Method Not Allowed", status_code=405)


def asgi_apps() -> dict[str, Any]:
    bare = Starlette(routes=[Route("/items", items, methods=["GET"])])
    reader = Starlette(routes=[Route("/items", reads, methods=["POST"])])
    return {
        "bare": bare,
        "unread off": AsgiMiddleware(bare, unread_timeout=0, **providers()),
        "unread on": AsgiMiddleware(bare, **providers()),
        "app reads": AsgiMiddleware(reader, **providers()),
    }


async def asgi_requests(app: Any, body: bytes, n: int) -> float:
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/items", "raw_path": b"/items", "query_string": b"", "root_path": "",
        "headers": [(b"host", b"bench"), (b"content-type", b"application/xml"),
                    (b"content-length", str(len(body)).encode())],
        "client": ("10.0.0.1", 5000), "server": ("127.0.0.1", 80),
    }  # fmt: skip

    async def send(message: Any) -> None:
        pass

    t0 = time.perf_counter()
    for _ in range(n):
        sent = False

        async def receive() -> Any:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return {"type": "http.disconnect"}

        await app(dict(scope), receive, send)
    return (time.perf_counter() - t0) / n * 1e6


# --------------------------------------------------------------------------- WSGI
def wsgi_bare(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("405 Method Not Allowed", [("Content-Type", "text/plain")])
    return [b"Method Not Allowed"]


def wsgi_reads(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"]))
    return wsgi_bare(environ, start_response)


def wsgi_apps() -> dict[str, Any]:
    return {
        "bare": wsgi_bare,
        "unread off": WsgiMiddleware(wsgi_bare, unread_timeout=0, **providers()),
        "unread on": WsgiMiddleware(wsgi_bare, **providers()),
        "app reads": WsgiMiddleware(wsgi_reads, **providers()),
    }


def wsgi_requests(app: Any, body: bytes, n: int) -> float:
    base: dict[str, Any] = {
        "REQUEST_METHOD": "POST", "PATH_INFO": "/items", "QUERY_STRING": "", "SERVER_NAME": "bench",
        "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "10.0.0.1",
        "CONTENT_TYPE": "application/xml", "CONTENT_LENGTH": str(len(body)), "wsgi.url_scheme": "http",
    }  # fmt: skip

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        return None

    t0 = time.perf_counter()
    for _ in range(n):
        environ = dict(base)
        environ["wsgi.input"] = io.BytesIO(body)
        result = app(environ, start_response)
        for _chunk in result:
            pass
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return (time.perf_counter() - t0) / n * 1e6


def corpus_rows(files: list[str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for name in files:
        with open(name, encoding="utf-8") as fh:
            rows.extend(json.loads(line) for line in fh if line.strip())
    return [r for r in rows if r.get("body")]


async def never_reads(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 405, "headers": []})
    await send({"type": "http.response.body", "body": b"Method Not Allowed"})


def attack_signalled(rows: list[dict[str, Any]], **options: Any) -> int:
    """How many rows, sent to an app that never reads the body, raise an attack signal."""
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from devsecmw.signals import ATTACK_TYPES

    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    mw = AsgiMiddleware(
        never_reads,
        tracer_provider=tracer_provider,
        meter_provider=MeterProvider(),
        time_budget=5.0,
        **options,
    )
    hits = 0
    for row in rows:
        body = (
            base64.b64decode(row["body"]) if row.get("body_b64") else row["body"].encode("latin-1", "replace")
        )
        path, _, query = row["uri"].encode("latin-1", "replace").partition(b"?")
        headers = [
            (k.lower().encode("latin-1", "replace"), v.encode("latin-1", "replace"))
            for k, v in row["headers"]
            if k.lower() != "content-length"
        ]
        headers.append((b"content-length", str(len(body)).encode()))
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": row["method"],
            "scheme": "http", "path": path.decode("latin-1"), "raw_path": path, "query_string": query,
            "root_path": "", "headers": headers, "client": ("10.0.0.1", 5000), "server": ("127.0.0.1", 80),
        }  # fmt: skip
        messages = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> Any:
            return messages.pop(0) if messages else {"type": "http.disconnect"}  # noqa: B023

        async def send(message: Any) -> None:
            pass

        exporter.clear()
        asyncio.run(mw(scope, receive, send))
        attributes = exporter.get_finished_spans()[-1].attributes or {}
        types: Any = attributes.get("devsecmw.signal.types", ())
        hits += bool(set(types) & ATTACK_TYPES)
    return hits


def corpus_figures(files: list[str]) -> None:
    rows = corpus_rows(files)
    attacks = [r for r in rows if r.get("expect") == "attack"]
    benign = [r for r in rows if r.get("expect") != "attack"]
    print(f"rows with a body, answered 405 unread: {len(attacks)} attacks, {len(benign)} benign")
    for name, options in (("unread off", {"unread_timeout": 0}), ("unread on", {})):
        a, b = attack_signalled(attacks, **options), attack_signalled(benign, **options)
        share = a / max(1, len(attacks))
        print(f"{name:11} attacks signalled {a}/{len(attacks)} ({share:.3f}), benign {b}/{len(benign)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--corpus", nargs="+", help="labeled JSONL files: what the read finds, not what it costs")
    args = ap.parse_args()
    if args.corpus:
        corpus_figures(args.corpus)
        return
    print(f"{'adapter':8} {'body':8} {'config':12} {'us/req':>8} {'x off':>7}")
    for adapter in ("asgi", "wsgi"):
        for name, body in BODIES.items():
            apps = asgi_apps() if adapter == "asgi" else wsgi_apps()
            times: dict[str, list[float]] = {k: [] for k in apps}
            for _ in range(args.rounds):
                for config, app in apps.items():  # interleaved: drift hits every configuration alike
                    if adapter == "asgi":
                        times[config].append(asyncio.run(asgi_requests(app, body, args.requests)))
                    else:
                        times[config].append(wsgi_requests(app, body, args.requests))
            off = statistics.median(times["unread off"])
            for config, values in times.items():
                us = statistics.median(values)
                print(f"{adapter:8} {name:8} {config:12} {us:8.1f} {us / off:7.2f}")
            added = statistics.median(times["unread on"]) - off
            same = statistics.median(times["unread on"]) / statistics.median(times["app reads"])
            print(
                f"#   {len(body)} B body answered 405: the read adds {added:.1f} us "
                f"({same:.2f} x an app that reads the body itself: the cost is the inspection)"
            )


if __name__ == "__main__":
    main()

"""What a scanner's requests cost in telemetry: one client sending N requests that all get a 404.

    python benchmarks/scanner.py [--n 10000] [--mode monitor|block]

The client crosses the 404 threshold (50 in a minute by default) early and stays flagged.
Printed: span events by signal type, the ``devsecmw.signals`` count of ``client_flagged``,
the spans carrying ``devsecmw.client.flagged``, and the CPU µs per request
(``time.thread_time``) beside the same requests from N distinct clients (none flagged), in
one run. ``client_flagged`` is reported when the client crosses the threshold, then once per
``client_window`` while it stays flagged (block mode: on each refused request).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from devsecmw.asgi import SecurityMiddleware


async def not_found(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 404, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"not found"})


def scope(i: int, client: str) -> dict[str, Any]:
    path = f"/admin/backup-{i}.zip"
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"shop.example.com"), (b"user-agent", b"Mozilla/5.0 (compatible; probe)")],
        "client": (client, 40000 + i % 1000), "server": ("127.0.0.1", 8000),
    }  # fmt: skip


def run(n: int, mode: str, one_client: bool) -> dict[str, Any]:
    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    mw = SecurityMiddleware(not_found, mode=mode, tracer_provider=tp, meter_provider=meters)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(_message: dict[str, Any]) -> None:
        pass

    async def drive() -> float:
        t0 = time.thread_time()
        for i in range(n):
            client = "203.0.113.9" if one_client else f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
            await mw(scope(i, client), receive, send)
        return time.thread_time() - t0

    cpu = asyncio.run(drive())
    spans = exporter.get_finished_spans()
    events: collections.Counter[str] = collections.Counter()
    for s in spans:
        for e in s.events:
            events[str((e.attributes or {}).get("devsecmw.signal.type"))] += 1
    counted = 0
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                if m.name == "devsecmw.signals":
                    for p in m.data.data_points:
                        if (p.attributes or {}).get("devsecmw.signal.type") == "client_flagged":
                            counted += int(p.value)  # type: ignore[union-attr]
    flagged = sum(1 for s in spans if (s.attributes or {}).get("devsecmw.client.flagged"))
    return {"us": cpu / n * 1e6, "events": events, "counted": counted, "flagged": flagged}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--mode", choices=("monitor", "block"), default="monitor")
    args = ap.parse_args()
    many = run(args.n, args.mode, one_client=False)
    one = run(args.n, args.mode, one_client=True)
    print(f"{args.n} requests answered 404, {args.mode} mode")
    for label, r in (("one scanner client", one), (f"{args.n} distinct clients", many)):
        ev = ", ".join(f"{t} {c}" for t, c in sorted(r["events"].items()))
        print(f"  {label:24} {r['us']:7.1f} us/request CPU | events: {ev}")
        flagged = f"spans with devsecmw.client.flagged {r['flagged']}"
        print(f"  {'':24} client_flagged counted {r['counted']}, {flagged}")
    print(f"  scanner / distinct clients: {one['us'] / many['us']:.3f}x CPU per request")


if __name__ == "__main__":
    main()

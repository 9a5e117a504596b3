"""``devsecmw demo``: a small shop behind devsecmw, some traffic, and what devsecmw saw.

Needs the ``demo`` extra (``pip install "devsecmw[demo]"``): the OpenTelemetry
SDK, the OTLP http exporter, Starlette, uvicorn and httpx.

- :mod:`.app`: the Starlette shop with ``devsecmw.asgi.SecurityMiddleware``.
- :mod:`.traffic`: benign requests, attacks of every category, failing requests.
- :mod:`.otel`: the SDK (in memory; OTLP too when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set).
- :mod:`.server`: uvicorn on 127.0.0.1 in a thread.
- :mod:`.summary`: finished spans and metrics to a terminal summary.

It ends by writing the same spans as an HTML page (:mod:`devsecmw.report`) and printing its path.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import TextIO

DEFAULT_REQUESTS = 250


def run_demo(
    requests: int = DEFAULT_REQUESTS,
    seed: int = 1,
    port: int = 0,
    color: bool = False,
    out: TextIO | None = None,
    report: str | None = None,
) -> int:
    """Run the demo end to end and print the summary; returns the process exit code.

    ``report``: where the HTML report goes (default: a new file in the temporary directory).
    Raises :class:`~devsecmw.demo.server.ServerError` when the server cannot start.
    """
    import httpx

    from . import otel
    from .app import build_app
    from .server import serve
    from .summary import summarize
    from .traffic import plan, send_all

    out = out or sys.stdout
    probes = plan(requests, seed)
    tele = otel.setup()
    try:
        # The traffic generator plays a reverse proxy on 127.0.0.1 that forwards many
        # visitors (X-Forwarded-For); trusting it gives per-client signals real clients.
        app = build_app(tele.tracer_provider, tele.meter_provider, trusted_proxies=("127.0.0.1",))
        t0 = time.perf_counter()
        with (
            serve(app, port) as base_url,
            httpx.Client(base_url=base_url, timeout=10.0, trust_env=False) as client,
        ):
            sent = send_all(client, probes)
        # The server has stopped: every request's span has ended and been collected.
        elapsed = time.perf_counter() - t0
        spans = tele.finished_spans()
        metrics = tele.metrics.get_metrics_data()
        where = (
            f"exported over OTLP to {tele.otlp_endpoint} (and summarised here)"
            if tele.otlp_endpoint
            else "in memory (set OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 to export it)"
        )
        title = (
            f"devsecmw demo: {len(sent)} requests to {base_url} in {elapsed:.1f} s (seed {seed})\n"
            f"telemetry: {where}"
        )
        out.write(summarize(spans, metrics, sent, color=color, title=title))
        out.flush()
    finally:
        tele.shutdown()
    try:
        path = _write_report(spans, report, f"devsecmw demo: {len(sent)} requests (seed {seed})")
    except OSError as exc:
        print(f"devsecmw demo: cannot write the report: {exc}", file=sys.stderr)
        return 1
    out.write(f"\nreport: {path}\n")
    out.flush()
    answered = sum(1 for s in sent if s.status is not None)
    if probes and not answered:
        print(f"devsecmw demo: no request got a response ({sent[0].error})", file=sys.stderr)
        return 1
    return 0


def _write_report(spans: Sequence[object], path: str | None, title: str) -> str:
    """The demo's spans as an HTML page; a fresh file in the temporary directory by default."""
    import os
    import tempfile

    from ..gameday.records import from_sdk
    from ..report import render_html

    page = render_html(from_sdk(spans), title=title)
    if path is None:
        fd, path = tempfile.mkstemp(prefix="devsecmw-demo-", suffix=".html")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(page)
    else:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(page)
    return os.path.abspath(path)


__all__ = ["DEFAULT_REQUESTS", "run_demo"]

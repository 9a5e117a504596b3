"""A small shop API behind devsecmw, exposing its metrics to Prometheus directly.

What the end-to-end test (tests/test_prometheus_e2e.py) scrapes, and a way to try the dashboard and
rules of deploy/ without a Collector::

    pip install "devsecmw[demo]" opentelemetry-exporter-prometheus
    DEVSECMW_METRICS_PORT=9464 uvicorn app:app --port 8000    # from deploy/example/

Metrics: the OpenTelemetry Prometheus exporter (prometheus_client's HTTP server on 127.0.0.1 at
``DEVSECMW_METRICS_PORT``). Traces: sampled, so devsecmw's counters carry exemplar trace ids; sent
over OTLP/HTTP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (to the Collector of
deploy/otel-collector/config.yaml, whose Prometheus exporter is the one that passes exemplars on).

devsecmw runs in block mode for SQL injection only (``block_types``) and blocks flagged clients;
every other attack is monitored. The app has a real bug: ``/items/{item_id}?fields=...`` looks the
requested fields up without validation, so a probe there raises (a 500, ``attack_5xx``).
"""

from __future__ import annotations

import os

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import start_http_server
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from devsecmw.asgi import SecurityMiddleware

ITEMS = {str(i): {"name": f"item {i}", "price": i * 3, "stock": i % 7} for i in range(1, 50)}


async def item(request: Request) -> Response:
    found = ITEMS.get(request.path_params["item_id"])
    if found is None:
        return JSONResponse({"error": "no such item"}, status_code=404)
    fields = request.query_params.get("fields", "name")
    # The bug: an unknown field name is a KeyError, answered 500 by the framework.
    return JSONResponse({f: found[f] for f in fields.split(",")})


async def search(request: Request) -> Response:
    q = request.query_params.get("q", "")
    return JSONResponse([v for v in ITEMS.values() if q.lower() in str(v["name"])][:10])


async def login(request: Request) -> Response:
    form = await request.form()
    if form.get("user") == "demo" and form.get("password") == "demo":
        return PlainTextResponse("welcome")
    return PlainTextResponse("no", status_code=401)


async def health(request: Request) -> Response:
    return PlainTextResponse("ok")


resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "shop")})
tracer_provider = TracerProvider(resource=resource)
if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
meter_provider = MeterProvider(resource=resource, metric_readers=[PrometheusMetricReader()])
start_http_server(int(os.environ.get("DEVSECMW_METRICS_PORT", "9464")), addr="127.0.0.1")

app = Starlette(
    routes=[
        Route("/items/{item_id}", item),
        Route("/search", search),
        Route("/login", login, methods=["POST"]),
        Route("/health", health),
    ]
)
app.add_middleware(
    SecurityMiddleware,
    tracer_provider=tracer_provider,
    meter_provider=meter_provider,
    mode="block",
    block_types=("sqli",),
    # A local reverse proxy in front: its X-Forwarded-For names the client.
    trusted_proxies=("127.0.0.1",),
    ignore_paths=("/health",),
)

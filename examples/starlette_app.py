"""Starlette behind devsecmw: the pure-ASGI middleware, added like any other.

Install and run (from the repository root; http://127.0.0.1:8000, or $PORT):

    python -m pip install ".[fastapi]"
    python examples/starlette_app.py

Try it:

    curl 'http://127.0.0.1:8000/search?q=shirt'
    curl "http://127.0.0.1:8000/search?q=1'%20UNION%20SELECT%20password%20FROM%20users--"

Zero code, spans on the terminal (devsecmw's OpenTelemetry instrumentor; OTel's SDK via the distro):

    python -m pip install ".[fastapi,instrument]" opentelemetry-distro
    OTEL_TRACES_EXPORTER=console OTEL_METRICS_EXPORTER=none OTEL_LOGS_EXPORTER=none \
        opentelemetry-instrument python examples/starlette_app.py

Or to any OTLP endpoint (Jaeger, Tempo, an OpenTelemetry Collector):

    python -m pip install ".[fastapi,instrument]" opentelemetry-distro opentelemetry-exporter-otlp-proto-http
    OTEL_SERVICE_NAME=starlette-example OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 \
        OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf OTEL_METRICS_EXPORTER=none OTEL_LOGS_EXPORTER=none \
        opentelemetry-instrument python examples/starlette_app.py
"""

from __future__ import annotations

import os
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from devsecmw.asgi import SecurityMiddleware

ITEMS = {1: "Blue cotton shirt", 2: "Red wool scarf"}


async def home(request: Request) -> Response:
    return PlainTextResponse("hello from Starlette")


async def search(request: Request) -> Response:
    q = request.query_params.get("q", "")
    return JSONResponse({"q": q, "results": [v for v in ITEMS.values() if q.lower() in v.lower()]})


async def item(request: Request) -> Response:
    name = ITEMS.get(request.path_params["item_id"])
    if name is None:
        return JSONResponse({"error": "not found"}, status_code=404)
    return JSONResponse({"id": request.path_params["item_id"], "name": name})


def create_app(**devsecmw_options: Any) -> Starlette:
    """``devsecmw_options``: ``tracer_provider``, ``meter_provider`` and any devsecmw option."""
    return Starlette(
        routes=[Route("/", home), Route("/search", search), Route("/items/{item_id:int}", item)],
        # First in the list: devsecmw sees every request and every response the app produces.
        middleware=[Middleware(SecurityMiddleware, **devsecmw_options)],
    )


app = create_app()

if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))

"""Starlette behind devsecmw: the pure-ASGI middleware, added like any other.

Run it (http://127.0.0.1:8000):

    python examples/starlette_app.py

Send its spans and metrics to any OTLP endpoint (Jaeger, Tempo, an OpenTelemetry Collector):

    pip install opentelemetry-distro opentelemetry-exporter-otlp-proto-http
    OTEL_SERVICE_NAME=starlette-example OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 \
        OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf opentelemetry-instrument python examples/starlette_app.py
"""

from __future__ import annotations

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

    uvicorn.run(app, host="127.0.0.1", port=8000)

"""FastAPI behind devsecmw: ``app.add_middleware(SecurityMiddleware)``.

Install and run (from the repository root; http://127.0.0.1:8000, or $PORT):

    python -m pip install ".[fastapi]"
    python examples/fastapi_app.py

Try it:

    curl 'http://127.0.0.1:8000/search?q=shirt'
    curl "http://127.0.0.1:8000/search?q=1'%20UNION%20SELECT%20password%20FROM%20users--"

Zero code, spans on the terminal (devsecmw's OpenTelemetry instrumentor; OTel's SDK via the distro):

    python -m pip install ".[fastapi,instrument]" opentelemetry-distro
    OTEL_TRACES_EXPORTER=console OTEL_METRICS_EXPORTER=none OTEL_LOGS_EXPORTER=none \
        opentelemetry-instrument python examples/fastapi_app.py

Or to any OTLP endpoint (Jaeger, Tempo, an OpenTelemetry Collector):

    python -m pip install ".[fastapi,instrument]" opentelemetry-distro opentelemetry-exporter-otlp-proto-http
    OTEL_SERVICE_NAME=fastapi-example OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 \
        OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf OTEL_METRICS_EXPORTER=none OTEL_LOGS_EXPORTER=none \
        opentelemetry-instrument python examples/fastapi_app.py
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from devsecmw.asgi import SecurityMiddleware

ITEMS = {1: "Blue cotton shirt", 2: "Red wool scarf"}


class Comment(BaseModel):
    author: str
    text: str


def create_app(**devsecmw_options: Any) -> FastAPI:
    """``devsecmw_options``: ``tracer_provider``, ``meter_provider`` and any devsecmw option."""
    app = FastAPI(title="devsecmw FastAPI example")
    # Added last, so it is the outermost middleware: it sees every request and response.
    app.add_middleware(SecurityMiddleware, **devsecmw_options)

    @app.get("/")
    async def home() -> dict[str, str]:
        return {"hello": "from FastAPI"}

    @app.get("/search")
    async def search(q: str = "") -> dict[str, Any]:
        return {"q": q, "results": [v for v in ITEMS.values() if q.lower() in v.lower()]}

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, Any]:
        if item_id not in ITEMS:
            raise HTTPException(status_code=404, detail="not found")
        return {"id": item_id, "name": ITEMS[item_id]}

    @app.post("/comments", status_code=201)
    async def comment(body: Comment) -> dict[str, int]:
        return {"length": len(body.text)}

    return app


app = create_app()

if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))

"""FastAPI behind devsecmw: ``app.add_middleware(SecurityMiddleware)``.

Run it (http://127.0.0.1:8000, docs at /docs):

    python examples/fastapi_app.py

Send its spans and metrics to any OTLP endpoint (Jaeger, Tempo, an OpenTelemetry Collector):

    pip install opentelemetry-distro opentelemetry-exporter-otlp-proto-http
    OTEL_SERVICE_NAME=fastapi-example OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 \
        OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf opentelemetry-instrument python examples/fastapi_app.py
"""

from __future__ import annotations

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

    uvicorn.run(app, host="127.0.0.1", port=8000)

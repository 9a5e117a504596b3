"""Falcon behind devsecmw: ``devsecmw.falcon.instrument(app)`` (route template from Falcon's uri_template).

Install and run (from the repository root; http://127.0.0.1:8000, or $PORT):

    python -m pip install ".[falcon]"
    python examples/falcon_app.py

Try it:

    curl 'http://127.0.0.1:8000/search?q=shirt'
    curl "http://127.0.0.1:8000/search?q=1'%20UNION%20SELECT%20password%20FROM%20users--"

Zero code, spans on the terminal (devsecmw's OpenTelemetry instrumentor; OTel's SDK via the distro):

    python -m pip install ".[falcon,instrument]" opentelemetry-distro
    OTEL_TRACES_EXPORTER=console OTEL_METRICS_EXPORTER=none OTEL_LOGS_EXPORTER=none \
        opentelemetry-instrument python examples/falcon_app.py

Or to any OTLP endpoint (Jaeger, Tempo, an OpenTelemetry Collector):

    python -m pip install ".[falcon,instrument]" opentelemetry-distro opentelemetry-exporter-otlp-proto-http
    OTEL_SERVICE_NAME=falcon-example OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 \
        OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf OTEL_METRICS_EXPORTER=none OTEL_LOGS_EXPORTER=none \
        opentelemetry-instrument python examples/falcon_app.py

Under ``opentelemetry-instrument`` the instrumentor sees the line below (devsecmw's
``RouteMiddleware`` in the app) and leaves the app to it: one inspection per request. Without
that line the instrumentor adds devsecmw itself. The server is the standard library's
``wsgiref`` (one request at a time), enough for an example; use gunicorn or uWSGI in production.
"""

from __future__ import annotations

import os
from typing import Any
from wsgiref.simple_server import make_server

import falcon

import devsecmw.falcon

ITEMS = {1: "Blue cotton shirt", 2: "Red wool scarf"}
ACCOUNTS = {"alice": "wonderland"}  # an example's credentials, nothing more


class Home:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = "hello from Falcon"


class Search:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        q = req.get_param("q", default="") or ""
        resp.media = {"q": q, "results": [v for v in ITEMS.values() if q.lower() in v.lower()]}


class Item:
    def on_get(self, req: falcon.Request, resp: falcon.Response, item_id: int) -> None:
        if item_id not in ITEMS:
            raise falcon.HTTPNotFound()
        resp.media = {"id": item_id, "name": ITEMS[item_id]}


class Login:
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        form = req.get_media(default_when_empty={})
        if ACCOUNTS.get(form.get("username", "")) != form.get("password"):
            resp.status = falcon.HTTP_401
            resp.media = {"error": "invalid credentials"}
            return
        resp.media = {"ok": True}


def create_app(**devsecmw_options: Any) -> Any:
    """``devsecmw_options``: ``tracer_provider``, ``meter_provider`` and any devsecmw option."""
    app = falcon.App()
    app.add_route("/", Home())
    app.add_route("/search", Search())
    app.add_route("/items/{item_id:int}", Item())
    app.add_route("/login", Login())
    # The one line that adds devsecmw: what the server runs is the WSGI middleware around the app.
    return devsecmw.falcon.instrument(app, **devsecmw_options)


app = create_app()

if __name__ == "__main__":
    make_server("127.0.0.1", int(os.environ.get("PORT", "8000")), app).serve_forever()

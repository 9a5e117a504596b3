"""Flask behind devsecmw: wrap ``app.wsgi_app`` (the route template comes from Flask's url_rule).

Install and run (from the repository root; http://127.0.0.1:5000, or $PORT):

    python -m pip install ".[flask]"
    python examples/flask_app.py

Try it:

    curl 'http://127.0.0.1:5000/search?q=shirt'
    curl "http://127.0.0.1:5000/search?q=1'%20UNION%20SELECT%20password%20FROM%20users--"

Zero code, spans on the terminal (devsecmw's OpenTelemetry instrumentor; OTel's SDK via the distro):

    python -m pip install ".[flask,instrument]" opentelemetry-distro
    OTEL_TRACES_EXPORTER=console OTEL_METRICS_EXPORTER=none OTEL_LOGS_EXPORTER=none \
        opentelemetry-instrument python examples/flask_app.py

Or to any OTLP endpoint (Jaeger, Tempo, an OpenTelemetry Collector):

    python -m pip install ".[flask,instrument]" opentelemetry-distro opentelemetry-exporter-otlp-proto-http
    OTEL_SERVICE_NAME=flask-example OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 \
        OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf OTEL_METRICS_EXPORTER=none OTEL_LOGS_EXPORTER=none \
        opentelemetry-instrument python examples/flask_app.py

Under ``opentelemetry-instrument`` the app is wrapped twice (by the instrumentor when Flask
creates it, and by the line below): devsecmw inspects each request once, in the outer one.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, abort, jsonify, request
from flask.typing import ResponseReturnValue

from devsecmw.wsgi import SecurityMiddleware

ITEMS = {1: "Blue cotton shirt", 2: "Red wool scarf"}
ACCOUNTS = {"alice": "wonderland"}  # an example's credentials, nothing more


def create_app(**devsecmw_options: Any) -> Flask:
    """``devsecmw_options``: ``tracer_provider``, ``meter_provider`` and any devsecmw option."""
    app = Flask(__name__)

    @app.get("/")
    def home() -> ResponseReturnValue:
        return "hello from Flask"

    @app.get("/search")
    def search() -> ResponseReturnValue:
        q = request.args.get("q", "")
        return jsonify(q=q, results=[v for v in ITEMS.values() if q.lower() in v.lower()])

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> ResponseReturnValue:
        if item_id not in ITEMS:
            abort(404)
        return jsonify(id=item_id, name=ITEMS[item_id])

    @app.post("/login")
    def login() -> ResponseReturnValue:
        if ACCOUNTS.get(request.form.get("username", "")) != request.form.get("password"):
            return jsonify(error="invalid credentials"), 401
        return jsonify(ok=True)

    # The one line that adds devsecmw (devsecmw.flask.init_app(app) does the same, reversibly).
    app.wsgi_app = SecurityMiddleware(app.wsgi_app, **devsecmw_options)
    return app


app = create_app()

if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "5000")))

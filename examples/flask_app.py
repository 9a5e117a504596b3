"""Flask behind devsecmw: wrap ``app.wsgi_app`` (the route template comes from Flask's url_rule).

Run it (http://127.0.0.1:5000):

    python examples/flask_app.py

Send its spans and metrics to any OTLP endpoint (Jaeger, Tempo, an OpenTelemetry Collector):

    pip install opentelemetry-distro opentelemetry-exporter-otlp-proto-http
    OTEL_SERVICE_NAME=flask-example OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 \
        OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf opentelemetry-instrument python examples/flask_app.py
"""

from __future__ import annotations

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
    app.run(host="127.0.0.1", port=5000)

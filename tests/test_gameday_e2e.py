"""``devsecmw gameday`` end to end: each example app under a real server on 127.0.0.1,
exporting OTLP/HTTP (the SDK's own exporters, configured by ``OTEL_EXPORTER_OTLP_ENDPOINT``)
to the game day's built-in receiver.

- Flask and Django under gunicorn (sync worker), FastAPI under uvicorn: every category
  arrives, exit 0, and the JSON scorecard says so.
- The same Flask app without devsecmw (OpenTelemetry's own WSGI middleware makes the
  spans): spans arrive but carry no verdict, exit 1, every attack category named missing.

Bounded: about 70 requests per app at 100/s, a short batch delay, and a wait that ends
as soon as everything arrived (or after a few seconds where nothing will).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from servers import free_port

from devsecmw import ATTACK_TYPES
from devsecmw.cli import main

pytest.importorskip("opentelemetry.exporter.otlp.proto.http.trace_exporter")
pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
ROOT = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT = 20.0

# Imported by the server (gunicorn / uvicorn) as "boot:app": the SDK first, exporting over
# OTLP/HTTP wherever OTEL_EXPORTER_OTLP_ENDPOINT says, then the example app as shipped.
BOOT = textwrap.dedent(
    """
    import importlib.util, os, sys
    from pathlib import Path
    from opentelemetry import metrics, trace
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    reader = PeriodicExportingMetricReader(OTLPMetricExporter())
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))

    examples = Path(os.environ["GAMEDAY_EXAMPLES"])
    kind = os.environ["GAMEDAY_APP"]
    if kind == "django":
        sys.path.insert(0, str(examples / "django_project"))
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
        from shop.wsgi import application as app
    elif kind == "bare":  # the Flask example's routes, without devsecmw: OpenTelemetry's WSGI middleware
        from flask import Flask
        from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware

        app = Flask("bare")
        app.add_url_rule("/", "home", lambda: "hello")
        app.add_url_rule("/search", "search", lambda: {"results": []})
        app.wsgi_app = OpenTelemetryMiddleware(app.wsgi_app)
    else:
        spec = importlib.util.spec_from_file_location("example_app", examples / f"{kind}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        app = module.app
    """
)


def _listening(port: int) -> bool:
    # A TCP connect, not an HTTP request: no span is made before the receiver listens.
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def serve(
    kind: str,
    server: str,
    receiver_port: int,
    tmp: Path,
    mode: str = "monitor",
    boot: str = BOOT,
    **env_extra: str,
) -> Iterator[str]:
    (tmp / "boot.py").write_text(boot)
    port = free_port()
    env = {
        **os.environ,
        "GAMEDAY_EXAMPLES": str(EXAMPLES),
        "GAMEDAY_APP": kind,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp)]),
        "OTEL_SERVICE_NAME": f"gameday-{kind}",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver_port}",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_METRIC_EXPORT_INTERVAL": "1000",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "2",  # the receiver stops first: a last export gives up soon
        "DEVSECMW_TIME_BUDGET": "1.0",  # detection, not speed, is under test on a loaded machine
        "DEVSECMW_MODE": mode,
        **env_extra,
    }
    if server == "gunicorn":
        cmd = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1"]
        cmd += ["--worker-class", "sync", "--graceful-timeout", "5", "--log-level", "warning", "boot:app"]
    else:
        cmd = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port)]
        cmd += ["--log-level", "warning", "boot:app"]
    log = open(tmp / f"{kind}.log", "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not _listening(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(f"{server} did not start:\n{(tmp / f'{kind}.log').read_text(errors='replace')}")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


def _gameday(target: str, receiver_port: int, tmp: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    out = tmp / "scorecard.json"
    args = ["gameday", "--target", target, "--otlp-listen", f"127.0.0.1:{receiver_port}", "--rate", "100"]
    args += ["--burst", "5", "--json", str(out), "--save", str(tmp / "spans.jsonl"), *extra]
    code = main(args)
    return code, json.loads(out.read_text())


@pytest.mark.parametrize(
    ("kind", "server", "path", "auth_path"),
    [
        ("flask_app", "gunicorn", "/search", "/login"),
        ("fastapi_app", "uvicorn", "/search", None),
        ("django", "gunicorn", "/search/", None),
    ],
)
def test_every_category_arrives_from_each_example(
    kind: str,
    server: str,
    path: str,
    auth_path: str | None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    receiver_port = free_port()
    extra = ["--path", path, "--wait", "30"]
    if auth_path:
        extra += ["--auth-path", auth_path]
    with serve(kind, server, receiver_port, tmp_path) as target:
        code, doc = _gameday(target, receiver_port, tmp_path, *extra)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "every category arrived" in out
    assert doc["ok"] is True and doc["missing"] == []
    rows = {r["category"]: r for r in doc["categories"]}
    assert set(rows) >= ATTACK_TYPES
    for category in ATTACK_TYPES:
        row = rows[category]
        assert row["right_type"] >= 1 and row["seen"] >= 1, row
        assert row["blocked"] == 0  # monitor mode
        assert row["time_to_appear"] is not None and row["time_to_appear"] >= 0
    assert rows["http_404"]["required"] and rows["http_404"]["right_type"] == 5
    if auth_path:
        assert rows["auth_failure"]["required"] and rows["auth_failure"]["right_type"] == 5
    # Every span of the run is labeled with the run id, and the saved spans are span records.
    run_id = doc["run_id"]
    spans = doc["spans"]
    assert spans and all(s["attributes"]["devsecmw.gameday.run_id"] == run_id for s in spans)
    saved = [json.loads(line) for line in (tmp_path / "spans.jsonl").read_text().splitlines()]
    assert {s["trace_id"] for s in saved} >= {r["trace_id"] for r in doc["requests"] if r["seen"]}


def test_an_app_without_devsecmw_fails_naming_the_missing_categories(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    receiver_port = free_port()
    with serve("bare", "gunicorn", receiver_port, tmp_path) as target:
        code, doc = _gameday(target, receiver_port, tmp_path, "--path", "/search", "--wait", "3")
    out = capsys.readouterr().out
    assert code == 1
    missing = doc["missing"]
    assert set(missing) >= ATTACK_TYPES
    assert "missing: " in out and all(c in out.split("missing: ", 1)[1] for c in ATTACK_TYPES)
    # The spans did arrive (OpenTelemetry's middleware made them): none carried a verdict.
    assert doc["received"]["spans"] > 0
    assert not any(r["seen"] for r in doc["requests"])


def test_in_block_mode_the_scorecard_counts_blocked_requests(tmp_path: Path) -> None:
    receiver_port = free_port()
    with serve("flask_app", "gunicorn", receiver_port, tmp_path, mode="block") as target:
        args = ["--path", "/search", "--auth-path", "/login", "--wait", "30"]
        code, doc = _gameday(target, receiver_port, tmp_path, *args)
    assert code == 0 and doc["missing"] == []  # blocked or not, every category arrived
    rows = {r["category"]: r for r in doc["categories"]}
    assert rows["sqli"]["blocked"] == rows["sqli"]["sent"] == rows["sqli"]["statuses"]["403"]
    assert sum(rows[c]["blocked"] for c in ATTACK_TYPES) >= len(ATTACK_TYPES) // 2
    assert all(r["blocked"] <= r["sent"] for r in rows.values())
    # The bursts go first, before the attacks get the client flagged (and blocked).
    assert rows["http_404"]["blocked"] == 0 and rows["http_404"]["right_type"] == 5
    assert rows["auth_failure"]["blocked"] == 0 and rows["auth_failure"]["right_type"] == 5
    blocked = [r for r in doc["requests"] if r["blocked"]]
    assert blocked and all(r["status"] == 403 for r in blocked)

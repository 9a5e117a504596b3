"""``devsecmw gameday --prometheus`` against a real Prometheus (Debian's package) scraping the
Flask example through OpenTelemetry's Prometheus exporter: every category arrives as growth of
``devsecmw_signals_total{devsecmw_signal_type=...}``. Skipped where Prometheus is not installed."""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from servers import free_port
from test_gameday_e2e import serve

from devsecmw.cli import main

PROMETHEUS = shutil.which("prometheus")
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(PROMETHEUS is None, reason="prometheus is not installed (apt-get install prometheus)"),
]
pytest.importorskip(
    "opentelemetry.exporter.prometheus", reason="opentelemetry-exporter-prometheus is not installed"
)

# The Flask example with its metrics on a Prometheus endpoint (the exporter's own HTTP server).
BOOT = textwrap.dedent(
    """
    import importlib.util, os
    from pathlib import Path
    from opentelemetry import metrics
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider
    from prometheus_client import start_http_server

    start_http_server(int(os.environ["GAMEDAY_METRICS_PORT"]), addr="127.0.0.1")
    metrics.set_meter_provider(MeterProvider(metric_readers=[PrometheusMetricReader()]))
    path = Path(os.environ["GAMEDAY_EXAMPLES"]) / "flask_app.py"
    spec = importlib.util.spec_from_file_location("example_app", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    app = module.app
    """
)
STARTUP_TIMEOUT = 30.0


@contextmanager
def prometheus(tmp: Path, metrics_port: int) -> Iterator[str]:
    assert PROMETHEUS is not None
    port = free_port()
    config = tmp / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: shop\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{metrics_port}']\n"
    )
    cmd = [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp / 'tsdb'}"]
    cmd += [f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]
    log = open(tmp / "prometheus.log", "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            try:
                with urllib.request.urlopen(f"{base}/-/ready", timeout=1) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(
                    f"prometheus did not start:\n{(tmp / 'prometheus.log').read_text(errors='replace')}"
                )
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_every_category_arrives_in_prometheus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    metrics_port = free_port()
    out = tmp_path / "card.json"
    with (
        prometheus(tmp_path, metrics_port) as prom,
        serve(
            "flask_app", "gunicorn", free_port(), tmp_path, boot=BOOT, GAMEDAY_METRICS_PORT=str(metrics_port)
        ) as app,
    ):
        args = ["gameday", "--target", app, "--path", "/search", "--auth-path", "/login", "--rate", "100"]
        args += ["--burst", "5", "--prometheus", prom, "--prometheus-selector", 'job="shop"', "--wait", "40"]
        code = main([*args, "--json", str(out)])
    text = capsys.readouterr().out
    assert code == 0, text
    doc = json.loads(out.read_text())
    assert doc["mode"] == "prometheus" and doc["missing"] == []
    assert doc["prometheus"]["query"] == 'sum by (devsecmw_signal_type) (devsecmw_signals_total{job="shop"})'
    rows = {r["category"]: r for r in doc["categories"]}
    assert rows["sqli"]["right_type"] == 2 and rows["http_404"]["right_type"] == 5
    assert all(r["time_to_appear"] is not None for r in rows.values() if r["required"])

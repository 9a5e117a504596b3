"""A real Prometheus scrapes a real app behind devsecmw, and every query we ship is evaluated.

deploy/example/app.py (Starlette + devsecmw in block mode for SQL injection, with a real bug that
raises on probes) runs under uvicorn on 127.0.0.1 and exposes its metrics through the OpenTelemetry
Prometheus exporter. Prometheus (Debian's package), on 127.0.0.1 with a temporary configuration and
storage, scrapes it every second and loads deploy/prometheus/devsecmw.rules.yml. Two waves of
traffic (benign, attacks that are blocked, attacks that raise 500, a client that gets flagged, a
slow body that outlasts block mode's read-ahead) are sent, each waited for until Prometheus has
scraped all of it; then every PromQL query of the Grafana dashboard, of docs/promql.md and of the README, and
every recording rule, is evaluated through Prometheus's HTTP API and must return the series it is
about, with the labels it groups by. Both processes are stopped by PID at the end.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from servers import free_port

httpx = pytest.importorskip("httpx")
yaml = pytest.importorskip("yaml")
pytest.importorskip("opentelemetry.exporter.prometheus", reason="opentelemetry-exporter-prometheus missing")
pytest.importorskip("uvicorn")

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
RULES = DEPLOY / "prometheus" / "devsecmw.rules.yml"
STARTUP_TIMEOUT = 20.0
SCRAPE_TIMEOUT = 15.0

# Grafana's variables, as a dashboard with "All" selected sends them.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$job": ".*", "$route": ".*"}


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def wait_until_up(proc: subprocess.Popen[bytes], url: str, what: str) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        if proc.poll() is not None:
            output = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            pytest.fail(f"{what} exited with {proc.returncode}:\n{output[-4000:]}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not answer {url} within {STARTUP_TIMEOUT:g} s")
        time.sleep(0.1)


def prometheus_binary() -> str:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus not installed (Debian: apt-get install prometheus)")
    return binary


@pytest.fixture
def app_server() -> Iterator[tuple[str, int]]:
    """The example app under uvicorn; yields its base URL and its metrics port."""
    prometheus_binary()  # skip before starting anything
    port, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "DEVSECMW_METRICS_PORT": str(metrics_port),
        "DEVSECMW_TIME_BUDGET": "5.0",  # results independent of the machine's load
        "DEVSECMW_BLOCK_READ_TIMEOUT": "0.2",  # the slow body below outlasts it
        "OTEL_SERVICE_NAME": "shop",
    }
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    cmd = [
        sys.executable, "-m", "uvicorn", "app:app", "--app-dir", str(DEPLOY / "example"),
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_up(proc, base + "/health", "the example app")
        wait_until_up(proc, f"http://127.0.0.1:{metrics_port}/metrics", "the example app's /metrics")
        yield base, metrics_port
    finally:
        stop(proc)


@pytest.fixture
def prometheus(app_server: tuple[str, int], tmp_path: Path) -> Iterator[str]:
    """Prometheus scraping the app every second, with devsecmw's rules; yields its base URL."""
    binary = prometheus_binary()
    _, metrics_port = app_server
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {"job_name": "shop", "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}]}
        ],
    }
    (tmp_path / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
    cmd = [
        binary, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn",
        "--enable-feature=exemplar-storage",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_up(proc, base + "/-/ready", "prometheus")
        yield base
    finally:
        stop(proc)


# ---------------------------------------------------------------------- traffic
BENIGN = ["/items/{i}?fields=name", "/items/{i}?fields=name,price", "/search?q=item+{i}", "/items/999"]
SQLI = "1' UNION SELECT password FROM users--"
TRAVERSAL = "../../../../etc/passwd"


def slow_body(sqli: bool) -> Iterator[bytes]:
    """A login form whose second half comes after block mode stopped waiting for it."""
    yield b"user=demo&"
    time.sleep(0.5)
    yield ("password=" + (SQLI if sqli else "wrong")).encode()


def wave(base: str, n: int) -> int:
    """Send one wave of traffic; returns how many requests devsecmw inspected."""
    sent = 0
    with httpx.Client(base_url=base, timeout=10) as client:

        def get(path: str, client_ip: str, expect: int) -> None:
            nonlocal sent
            headers = {"x-forwarded-for": client_ip}
            if expect == 500:  # uvicorn drops the connection after an application error
                headers["connection"] = "close"
            response = client.get(path, headers=headers)
            assert response.status_code == expect, (path, response.status_code, response.text[:200])
            sent += 1

        for i in range(1, 13):  # benign users
            ip = f"198.51.100.{10 * n + i}"
            for template in BENIGN:
                get(template.format(i=i), ip, 404 if "999" in template else 200)
            response = client.post(
                "/login", data={"user": "demo", "password": "nope"}, headers={"x-forwarded-for": ip}
            )
            assert response.status_code == 401, (i, response.text)
            sent += 1
        for i in range(6):  # occasional attackers, each below the flagging threshold
            ip = f"203.0.113.{10 * n + i}"
            get(f"/items/{i + 1}?fields={TRAVERSAL}", ip, 500)  # the bug: attack_5xx
            get(f"/search?q={SQLI}", ip, 403)  # blocked (block_types: sqli)
            get("/search?q=<script>alert(document.cookie)</script>", ip, 200)  # monitored
        noisy = "203.0.113.250"  # crosses the attack threshold (10 in a window): flagged, then blocked
        for i in range(12):
            response = client.get(
                "/search", params={"q": f"<svg onload=alert({i})>"}, headers={"x-forwarded-for": noisy}
            )
            assert response.status_code in (200, 403)
            sent += 1
        for sqli in (False, True):  # a body slower than the read-ahead: devsecmw_errors_total
            response = client.post(
                "/login",
                content=slow_body(sqli),
                headers={
                    "content-type": "application/x-www-form-urlencoded",
                    "x-forwarded-for": f"198.51.100.{200 + 10 * n + sqli}",
                },
            )
            assert response.status_code == 401  # read after the decision: would block, not blocked
            sent += 1
    return sent


def query(prom: str, expr: str) -> list[dict[str, Any]]:
    response = httpx.get(prom + "/api/v1/query", params={"query": expr}, timeout=10)
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", (expr, body)
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def wait_for_scrape(prom: str, total: int) -> None:
    """Until Prometheus has scraped every request sent so far (bounded)."""
    deadline = time.monotonic() + SCRAPE_TIMEOUT
    seen = -1.0
    while time.monotonic() < deadline:
        result = query(prom, "sum(devsecmw_requests_total)")
        seen = float(result[0]["value"][1]) if result else -1.0
        if seen == total:
            return
        time.sleep(0.25)
    pytest.fail(f"Prometheus saw {seen} requests, {total} were sent")


# ---------------------------------------------------------------------- the queries we ship
def dashboard_queries() -> list[tuple[str, str]]:
    dash = json.loads((DEPLOY / "grafana" / "devsecmw.json").read_text())
    out = []
    for panel in dash["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            for var, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(var, value)
            out.append((f"dashboard {panel['title']!r} {target['refId']}", expr))
    return out


def doc_queries() -> list[tuple[str, str]]:
    text = (ROOT / "docs" / "promql.md").read_text()
    return [
        (f"docs/promql.md #{i}", q.strip())
        for i, q in enumerate(re.findall(r"```promql\n(.*?)```", text, re.S))
    ]


def readme_queries() -> list[tuple[str, str]]:
    text = (ROOT / "README.md").read_text()
    found = re.findall(r"```promql\n(.*?)```", text, re.S)
    assert len(found) >= 5, "the README's dashboard queries are ```promql blocks"
    return [(f"README.md #{i}", q.strip()) for i, q in enumerate(found)]


def recording_rules() -> list[tuple[str, str]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [(f"rule {r['record']}", r["expr"]) for g in groups for r in g["rules"] if "record" in r]


def expected_labels(expr: str) -> set[str]:
    """The labels a query's result is about: what it groups by, and what label_replace adds."""
    labels: set[str] = set()
    for by in re.findall(r"by \(([^)]*)\)", expr):
        labels |= {b.strip() for b in by.split(",") if b.strip()}
    labels |= set(re.findall(r'label_replace\(.*?,\s*"(\w+)"', expr, re.S))
    return labels - {"le"}


def test_every_shipped_query_returns_its_series_from_a_real_prometheus(
    app_server: tuple[str, int], prometheus: str
) -> None:
    base, _ = app_server
    total = wave(base, 1)
    wait_for_scrape(prometheus, total)
    total += wave(base, 2)  # the same again: every series now grows between two scrapes
    wait_for_scrape(prometheus, total)

    checked = 0
    for name, expr in dashboard_queries() + doc_queries() + readme_queries() + recording_rules():
        result = query(prometheus, expr)
        assert result, f"{name}: no series for {expr}"
        want = expected_labels(expr)
        for series in result:
            labels = {k for k in series["metric"] if k != "__name__"}
            assert labels <= want, f"{name}: unexpected labels {labels - want} in {series['metric']}"
        for label in want:
            assert any(s["metric"].get(label) for s in result), f"{name}: no series has {label}"
        assert any(float(s["value"][1]) > 0 for s in result), f"{name}: all zero: {result}"
        checked += 1
    assert checked >= 30

    # What the panels are about, concretely.
    def by(expr: str, label: str) -> dict[str, float]:
        return {s["metric"].get(label, ""): float(s["value"][1]) for s in query(prometheus, expr)}

    routes_5xx = by(
        'sum by (http_route) (increase(devsecmw_requests_total{http_response_status_code="500"}[5m]))',
        "http_route",
    )
    assert set(routes_5xx) == {"/items/{item_id}"}  # the raised view: status 500 on the metric
    types = by(
        'sum by (devsecmw_attack_type) (increase(devsecmw_requests_total{devsecmw_attack_type!=""}[5m]))',
        "devsecmw_attack_type",
    )
    assert {"traversal", "sqli", "xss"} <= set(types)
    kinds = by("sum by (devsecmw_signal_kind) (devsecmw_signals_total)", "devsecmw_signal_kind")
    assert set(kinds) == {"attack", "anomaly"}
    stages = by("sum by (devsecmw_stage, error_type) (devsecmw_errors_total)", "error_type")
    assert "timeout" in stages
    # One count per request: attack requests are fewer than attack findings.
    attacks = float(
        query(prometheus, 'sum(devsecmw_requests_total{devsecmw_classification="attack"})')[0]["value"][1]
    )
    findings = float(
        query(prometheus, 'sum(devsecmw_signals_total{devsecmw_signal_kind="attack"})')[0]["value"][1]
    )
    assert 0 < attacks < findings

    # The dashboard's variables list what the app has.
    routes = httpx.get(
        prometheus + "/api/v1/label/http_route/values",
        params={"match[]": "devsecmw_requests_total"},
        timeout=10,
    ).json()["data"]
    assert {"/items/{item_id}", "/search", "/login"} <= set(routes)

    # The rules' alerts fire on this traffic: an attack that ended in a 5xx, a flagged client.
    deadline = time.monotonic() + SCRAPE_TIMEOUT
    firing: set[str] = set()
    while time.monotonic() < deadline:
        alerts = httpx.get(prometheus + "/api/v1/alerts", timeout=10).json()["data"]["alerts"]
        firing = {a["labels"]["alertname"] for a in alerts if a["state"] == "firing"}
        if {"DevsecmwAttackEndedIn5xx", "DevsecmwClientFlagged"} <= firing:
            break
        time.sleep(0.5)
    assert {"DevsecmwAttackEndedIn5xx", "DevsecmwClientFlagged"} <= firing
    assert "DevsecmwInternalErrors" not in firing  # a read-ahead timeout is load, not a bug

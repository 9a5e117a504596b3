"""What deploy/ ships, checked: the rules with promtool (syntax and unit tests), the Collector and
Prometheus configurations, the Grafana dashboard's structure, and that every metric and label the
queries name is one devsecmw emits (as the OpenTelemetry Prometheus exporter translates it)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
RULES = DEPLOY / "prometheus" / "devsecmw.rules.yml"
RULES_TEST = DEPLOY / "prometheus" / "devsecmw.rules.test.yml"
DASHBOARD = DEPLOY / "grafana" / "devsecmw.json"
COLLECTOR = DEPLOY / "otel-collector" / "config.yaml"
PROMQL_DOC = ROOT / "docs" / "promql.md"

#: devsecmw's metrics and labels as the Prometheus exporters write them (dots to underscores,
#: ``_total`` on counters, the unit on the histogram), plus the labels Prometheus adds.
SCRAPE_LABELS = {"job", "instance"}
METRICS: dict[str, set[str]] = {
    "devsecmw_requests_total": {
        "http_route",
        "http_request_method",
        "http_response_status_code",
        "devsecmw_classification",
        "devsecmw_attack_type",
        "devsecmw_blocked",
        "devsecmw_would_block",
        "devsecmw_client_flagged",
    },
    "devsecmw_signals_total": {
        "http_route",
        "http_request_method",
        "http_response_status_code",
        "devsecmw_classification",
        "devsecmw_signal_type",
        "devsecmw_signal_kind",
    },
    "devsecmw_inspection_duration_seconds_bucket": {
        "http_route",
        "http_request_method",
        "devsecmw_classification",
        "le",
    },
    "devsecmw_errors_total": {"devsecmw_stage", "error_type"},
}


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool not installed (Debian: apt-get install prometheus)")
    return path


def dashboard_queries() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dash["panels"] for t in p["targets"]]


def doc_queries() -> list[str]:
    return re.findall(r"```promql\n(.*?)```", PROMQL_DOC.read_text(), flags=re.S)


def rule_queries() -> list[str]:
    rules = yaml.safe_load(RULES.read_text())
    return [r["expr"] for g in rules["groups"] for r in g["rules"]]


# ---------------------------------------------------------------------- promtool
def test_promtool_check_rules() -> None:
    result = subprocess.run(
        [promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 13 rules found" in result.stdout


def test_promtool_test_rules() -> None:
    result = subprocess.run(
        [promtool(), "test", "rules", RULES_TEST.name],
        cwd=RULES_TEST.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_test_rules_catches_a_broken_rule(tmp_path: Path) -> None:
    """The unit tests do test: a rule whose threshold is wrong makes them fail."""
    tool = promtool()
    broken = RULES.read_text().replace(
        'increase(devsecmw_signals_total{devsecmw_signal_type="attack_5xx"}[5m])) > 0',
        'increase(devsecmw_signals_total{devsecmw_signal_type="attack_5xx"}[5m])) > 5',
    )
    assert broken != RULES.read_text()
    (tmp_path / RULES.name).write_text(
        broken.replace("unless devsecmw_signals_total", "and devsecmw_signals_total")
    )
    (tmp_path / RULES_TEST.name).write_text(RULES_TEST.read_text())
    result = subprocess.run(
        [tool, "test", "rules", RULES_TEST.name], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "DevsecmwAttackEndedIn5xx" in result.stdout + result.stderr


def test_prometheus_example_config_is_valid() -> None:
    result = subprocess.run(
        [promtool(), "check", "config", "prometheus.yml"],
        cwd=DEPLOY / "prometheus",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_the_issue_asks_for_has_a_rule_and_a_unit_test() -> None:
    rules = yaml.safe_load(RULES.read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    assert {
        "DevsecmwAttackEndedIn5xx",
        "DevsecmwAttackSpike",
        "DevsecmwClientFlagged",
        "DevsecmwInternalErrors",
    } <= alerts
    tests = yaml.safe_load(RULES_TEST.read_text())
    tested = {
        a["alertname"] for t in tests["tests"] for a in t.get("alert_rule_test", []) if a.get("exp_alerts")
    }
    assert alerts <= tested, f"alerts never seen firing in a unit test: {alerts - tested}"


# ---------------------------------------------------------------------- Collector
def test_collector_config_wires_otlp_to_prometheus_and_traces() -> None:
    config = yaml.safe_load(COLLECTOR.read_text())
    assert set(config["receivers"]["otlp"]["protocols"]) == {"grpc", "http"}
    exporters = config["exporters"]
    prometheus = exporters["prometheus"]
    assert re.fullmatch(r"[\w.]+:\d+", prometheus["endpoint"])
    assert prometheus["enable_open_metrics"] is True  # exemplars reach Prometheus only in OpenMetrics
    trace_exporters = [name for name in exporters if name == "otlp" or name.startswith("otlp/")]
    assert trace_exporters
    pipelines = config["service"]["pipelines"]
    assert pipelines["metrics"]["receivers"] == ["otlp"] and pipelines["metrics"]["exporters"] == [
        "prometheus"
    ]
    assert pipelines["traces"]["receivers"] == ["otlp"]
    assert set(pipelines["traces"]["exporters"]) <= set(trace_exporters)
    # Every component a pipeline names is defined, and every defined one is used.
    for section in ("receivers", "processors", "exporters"):
        used = {c for p in pipelines.values() for c in p.get(section, [])}
        assert used == set(config[section]), section
    assert set(config["service"].get("extensions", [])) == set(config.get("extensions", {}))
    # Component types are ones the Collector (contrib) has: the name before a "/".
    known = {"otlp", "prometheus", "batch", "memory_limiter", "health_check", "otlphttp"}
    for section in ("receivers", "processors", "exporters", "extensions"):
        for name in config.get(section, {}):
            assert name.split("/")[0] in known, name


# ---------------------------------------------------------------------- dashboard
def test_dashboard_has_the_panels_the_issue_asks_for() -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] == "devsecmw" and dash["panels"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    by_title = {p["title"]: p for p in dash["panels"]}
    text = json.dumps(dash)
    for needle in (
        "attack_5xx",
        "devsecmw_attack_type",
        "client_flagged",
        "devsecmw_blocked",
        "devsecmw_errors_total",
    ):
        assert needle in text, needle
    assert any("histogram_quantile(0.99" in q for q in dashboard_queries())
    assert any("histogram_quantile(0.5" in q for q in dashboard_queries())
    # Attacks and 5xx per route on one panel.
    attacks_5xx = by_title["Attacks vs 5xx per route"]["targets"]
    assert {'devsecmw_classification="attack"' in t["expr"] for t in attacks_5xx} == {True, False}
    assert all("by (http_route)" in t["expr"] for t in attacks_5xx)
    # The attack_5xx panel asks for exemplars.
    [exemplar_panel] = [p for p in dash["panels"] if "attack_5xx" in p["title"]]
    assert all(t["exemplar"] is True for t in exemplar_panel["targets"])
    for panel in dash["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"
        for t in panel["targets"]:
            assert t["datasource"]["uid"] == "${datasource}" and t["refId"]


def labels_in(query: str) -> dict[str, set[str]]:
    """Metric name -> the label names its selectors use, in one query."""
    found: dict[str, set[str]] = {}
    for name, selector in re.findall(
        r"\b(devsecmw_[a-z_]+?_(?:total|bucket|sum|count))\b(?:\{([^}]*)\})?", query
    ):
        labels = set(re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", selector))
        found.setdefault(name, set()).update(labels)
    return found


@pytest.mark.parametrize("source", ["dashboard", "docs", "rules"])
def test_queries_name_only_metrics_and_labels_devsecmw_emits(source: str) -> None:
    queries = {"dashboard": dashboard_queries, "docs": doc_queries, "rules": rule_queries}[source]()
    assert queries
    recorded = {r.get("record") for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
    for query in queries:
        assert "devsecmw." not in query.replace("devsecmw.rules", ""), (
            f"dotted (OpenTelemetry) name in {query}"
        )
        for name, labels in labels_in(query).items():
            if any(name in (r or "") for r in recorded):
                continue  # a recording rule's output
            assert name in METRICS, f"{name} is not a metric devsecmw exposes ({query})"
            unknown = labels - METRICS[name] - SCRAPE_LABELS
            assert not unknown, f"{name} has no label {unknown} ({query})"
        # Every other devsecmw_ word is a label devsecmw emits.
        words = set(re.findall(r"(?<![\w:])(devsecmw_\w+)(?![\w:])", query)) - set(METRICS)
        assert words <= set().union(*METRICS.values()), query
        for by in re.findall(r"by \(([^)]*)\)", query):
            names = {b.strip() for b in by.split(",")}
            assert names <= set().union(*METRICS.values()) | SCRAPE_LABELS, query


def test_docs_cover_the_questions_a_team_asks() -> None:
    queries = "\n".join(doc_queries())
    assert len(doc_queries()) >= 10
    for needle in (
        'devsecmw_classification="attack"',
        'http_response_status_code=~"5.."',
        'devsecmw_signal_type="attack_5xx"',
        'devsecmw_signal_type="client_flagged"',
        "histogram_quantile(0.99",
        'devsecmw_blocked="true"',
        "devsecmw_signal_kind",
    ):
        assert needle in queries, needle


def test_example_app_settings_match_the_docs() -> None:
    """The example names the exporter's port variable the end-to-end test sets."""
    source = (DEPLOY / "example" / "app.py").read_text()
    assert "PrometheusMetricReader" in source and "DEVSECMW_METRICS_PORT" in source
    assert 'addr="127.0.0.1"' in source


def _json_roundtrip(obj: Any) -> Any:
    return json.loads(json.dumps(obj))


def test_dashboard_is_stable_json() -> None:
    text = DASHBOARD.read_text()
    assert _json_roundtrip(json.loads(text)) == json.loads(text)
    assert text.endswith("\n")

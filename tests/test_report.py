"""``devsecmw report``: what the page summarises, the inputs it reads, that it is safe with
hostile span contents and needs no network, and that a real headless Chromium draws it."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devsecmw.cli import main
from devsecmw.report import load, render_html, summarize

T0 = 1_760_000_000.0
HOSTILE = '"><script>document.title="pwned"</script><img src=x onerror=alert(1) id=pwned>'


def span(
    i: int,
    route: str,
    cls: str = "benign",
    types: tuple[str, ...] = (),
    status: int = 200,
    method: str = "GET",
    **attrs: Any,
) -> dict[str, Any]:
    return {
        "trace_id": f"{i:032x}",
        "span_id": f"{i:016x}",
        "name": f"{method} {route}",
        "start_time": T0 + i,
        "end_time": T0 + i + 0.01,
        "attributes": {
            "http.request.method": method,
            "http.route": route,
            "http.response.status_code": status,
            "devsecmw.classification": cls,
            "devsecmw.signal.types": list(types),
            **attrs,
        },
        "events": [{"name": "devsecmw.signal", "attributes": {"devsecmw.signal.type": t}} for t in types],
    }


def sample() -> list[dict[str, Any]]:
    spans = [span(i, "/search") for i in range(10)]
    spans += [span(10 + i, "/search", "attack", ("sqli",)) for i in range(4)]
    spans += [
        span(20 + i, "/api/calc", "attack", ("code_injection", "attack_5xx", "http_5xx"), 500)
        for i in range(3)
    ]
    spans += [span(30, "/api/calc", "anomaly", ("http_5xx",), 500)]
    spans += [
        span(
            40 + i,
            "/login",
            "attack",
            ("nosqli", "client_flagged"),
            401,
            "POST",
            **{"client.address": "203.0.113.7"},
        )
        for i in range(2)
    ]
    spans += [span(50, "/x", "attack", ("scanner", "client_flagged"))]  # no address on the span
    spans += [{"trace_id": "9" * 32, "attributes": {"http.route": "/other"}}]  # no devsecmw verdict: ignored
    return spans


def test_summary_counts_requests_routes_types_attack_5xx_and_clients() -> None:
    s = summarize(sample())
    assert s["totals"] == {
        "requests": 21,
        "benign": 10,
        "attack": 10,
        "anomaly": 1,
        "5xx": 4,
        "attack_5xx": 3,
    }
    routes = {r["route"]: r for r in s["routes"]}
    assert routes["GET /api/calc"] == {"route": "GET /api/calc", "requests": 4, "attacks": 3, "5xx": 4}
    assert routes["GET /search"]["attacks"] == 4 and "5xx" not in routes["GET /search"]
    types = {t["type"]: t for t in s["types"]}
    assert types["sqli"] == {"type": "sqli", "kind": "attack", "requests": 4}
    assert types["http_5xx"]["kind"] == "anomaly" and types["http_5xx"]["requests"] == 4
    assert [r["trace_id"] for r in s["attack_5xx"]] == [f"{20 + i:032x}" for i in range(3)]
    assert s["attack_5xx"][0]["types"] == ["code_injection"] and s["attack_5xx"][0]["status"] == 500
    clients = {c["client"]: c for c in s["clients"]}
    assert clients["203.0.113.7"]["requests"] == 2 and clients["203.0.113.7"]["types"] == ["nosqli"]
    assert clients["(not on the span)"]["requests"] == 1  # never an address the span did not carry


def test_chart_has_attacks_and_5xx_per_route_per_bucket() -> None:
    chart = summarize(sample())["chart"]
    series = {s["route"]: s for s in chart["series"]}
    assert set(series) == {
        "GET /search",
        "GET /api/calc",
        "POST /login",
        "GET /x",
    }  # routes with attacks or 5xx
    assert sum(series["GET /search"]["attacks"]) == 4 and sum(series["GET /search"]["errors"]) == 0
    assert sum(series["GET /api/calc"]["errors"]) == 4 and sum(series["GET /api/calc"]["attacks"]) == 3
    assert all(len(s["attacks"]) == chart["buckets"] for s in chart["series"])
    assert chart["start"] <= T0 and chart["start"] + chart["buckets"] * chart["step"] > T0 + 50


def test_chart_keeps_the_busiest_routes_and_sums_the_rest() -> None:
    spans = [span(i, f"/r{i}", "attack", ("sqli",)) for i in range(10)]
    chart = summarize(spans)["chart"]
    assert len(chart["series"]) == 7 and chart["series"][-1]["route"] == "other routes"
    assert sum(sum(s["attacks"]) for s in chart["series"]) == 10


# --------------------------------------------------------------------------- inputs
def test_load_reads_span_records_otlp_json_and_gameday_documents(tmp_path: Path) -> None:
    records = tmp_path / "spans.jsonl"
    records.write_text("".join(json.dumps(s) + "\n" for s in sample()[:3]))
    otlp = tmp_path / "otlp.jsonl"
    otlp_span = {"traceId": "AB" * 16, "spanId": "CD" * 8, "name": "GET /", "attributes": []}
    otlp.write_text(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [otlp_span]}]}]}) + "\n")
    gameday = tmp_path / "gameday.json"
    doc = {"devsecmw_gameday": 1, "run_id": "gd-1", "categories": [], "spans": sample()[10:12]}
    gameday.write_text(json.dumps(doc, indent=1))
    spans, gamedays = load([records, otlp, gameday])
    assert [s["trace_id"] for s in spans] == [f"{i:032x}" for i in range(3)] + ["ab" * 16] + [
        f"{i:032x}" for i in (10, 11)
    ]
    assert [g["run_id"] for g in gamedays] == ["gd-1"]
    # A compact gameday document is a JSON line like any other.
    compact = tmp_path / "compact.jsonl"
    compact.write_text(json.dumps(doc) + "\n" + json.dumps(sample()[0]) + "\n")
    spans, gamedays = load([compact])
    assert len(gamedays) == 1 and len(spans) == 3


def test_a_report_of_nothing_says_so() -> None:
    page = render_html([])
    assert "0 requests" in page and page.count('id="') >= 6
    assert (
        json.loads(re.search(r'id="report-data">(.*?)</script>', page, re.S).group(1))["chart"]["series"]
        == []
    )  # type: ignore[union-attr]


def test_report_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "spans.jsonl"
    src.write_text("".join(json.dumps(s) + "\n" for s in sample()))
    out = tmp_path / "r.html"
    assert main(["report", str(src), "-o", str(out), "--title", "Shop, last night"]) == 0
    assert capsys.readouterr().out.strip() == str(out.resolve())
    assert "<title>Shop, last night</title>" in out.read_text()
    assert main(["report", str(tmp_path / "absent.jsonl"), "-o", str(out)]) == 1
    assert "devsecmw report:" in capsys.readouterr().err


# --------------------------------------------------------------------------- safety
def hostile_spans() -> list[dict[str, Any]]:
    return [
        span(1, HOSTILE, "attack", ("xss", "attack_5xx"), 500, **{"client.address": HOSTILE}),
        span(2, "/ok</script><!--", "attack", ("xss", "client_flagged"), **{"client.address": "\u2028x"}),
    ]


def test_hostile_span_contents_stay_text() -> None:
    page = render_html(hostile_spans(), title=HOSTILE)
    assert "<script>document.title" not in page and "<img src=x" not in page
    assert page.count("<script") == 2  # the data block and the chart's script, nothing else
    data = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S)
    assert data is not None
    assert "<" not in data.group(1) and "\u2028" not in data.group(1)
    assert json.loads(data.group(1))["chart"]["series"][0]["route"].endswith(HOSTILE)


def test_the_page_needs_no_network() -> None:
    page = render_html(sample())
    found = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page)
    assert found is not None
    csp = html.unescape(found.group(1))
    assert "default-src 'none'" in csp
    script = re.search(r"<script>(.*?)</script>", page, re.S)
    assert script is not None
    digest = base64.b64encode(hashlib.sha256(script.group(1).encode()).digest()).decode()
    # The inline script is the only one allowed to run (Chromium runs it: the browser test draws).
    assert f"'sha256-{digest}'" in csp
    assert not re.search(r"\b(?:src|href)\s*=|<link|@import|url\(", page)


# --------------------------------------------------------------------------- in a browser
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)"
)


def chromium(page: Path, tmp_path: Path, *args: str) -> str:
    assert CHROMIUM is not None
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions"]
    cmd += [f"--user-data-dir={tmp_path / 'chromium-profile'}", *args, page.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, timeout=90, check=False)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    return proc.stdout.decode("utf-8", "replace")


@needs_chromium
def test_chromium_draws_the_chart_and_the_tables(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(render_html(sample() + hostile_spans(), title="browser test"), encoding="utf-8")
    dom = chromium(page, tmp_path, "--dump-dom")
    # Drawn by the page's script: the SVG, one solid and one dashed line per route, the legend.
    assert 'data-drawn="chart"' in dom
    series = summarize(sample() + hostile_spans())["chart"]["series"]
    assert dom.count('data-series="attacks"') == len(series) == dom.count('data-series="errors"')
    assert dom.count("data-legend=") == len(series)
    assert dom.count("<circle") > 0
    for table in ("routes", "types", "attack5xx", "clients"):
        assert f'id="{table}"' in dom
    assert f"{20:032x}" in dom  # an attack_5xx trace id
    # Hostile text was drawn as text: no element it tried to create exists.
    assert 'id="pwned"' not in dom and "<img" not in dom
    assert "&lt;script&gt;document.title" in dom
    assert "<title>browser test</title>" in dom


@needs_chromium
def test_chromium_screenshot(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(render_html(sample(), title="screenshot"), encoding="utf-8")
    shot = tmp_path / "report.png"
    chromium(page, tmp_path, "--window-size=1280,1600", f"--screenshot={shot}", "--hide-scrollbars")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


@pytest.mark.e2e
def test_the_demo_ends_by_writing_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    monkeypatch.setenv("DEVSECMW_TIME_BUDGET", "1.0")
    out = tmp_path / "demo.html"
    assert main(["demo", "--requests", "40", "--no-color", "--report", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Per route: attacks next to errors" in text  # the summary is still there
    assert text.rstrip().endswith(f"report: {out.resolve()}")
    page = out.read_text()
    data = re.search(r'id="report-data">(.*?)</script>', page, re.S)
    assert data is not None and json.loads(data.group(1))["chart"]["series"]
    assert "40 requests" in page


ANY = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.lists(st.text(max_size=4))
)


@settings(max_examples=200, deadline=None)
@given(
    attrs=st.fixed_dictionaries(
        {"devsecmw.classification": ANY},
        optional={
            "http.route": ANY,
            "http.request.method": ANY,
            "http.response.status_code": ANY,
            "devsecmw.signal.types": ANY,
            "devsecmw.blocked": ANY,
            "client.address": ANY,
        },
    ),
    start=ANY,
    card=st.fixed_dictionaries(
        {}, optional={"categories": st.lists(st.dictionaries(st.text(max_size=8), ANY)), "missing": ANY}
    ),
)
def test_any_span_record_or_scorecard_renders(
    attrs: dict[str, Any], start: Any, card: dict[str, Any]
) -> None:
    """Files are read as they come: odd values render as text, never stop the report."""
    record = {"trace_id": "a" * 32, "start_time": start, "attributes": attrs, "events": []}
    page = render_html([record, span(1, "/x", "attack", ("sqli",))], [{"devsecmw_gameday": 1, **card}])
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")

"""``devsecmw demo``: the traffic plan, the demo shop, the summary, and the command end to end."""

from __future__ import annotations

import socket
import threading
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from devsecmw import ATTACK_TYPES
from devsecmw.cli import main
from devsecmw.demo import otel as demo_otel
from devsecmw.demo.app import build_app
from devsecmw.demo.summary import summarize
from devsecmw.demo.traffic import ATTACK, BENIGN, FAILURE, MAX_REQUESTS, Probe, Sent, catalogue, plan

with warnings.catch_warnings():
    # Starlette >= 1.x nudges TestClient users from httpx to httpx2; this project uses httpx.
    warnings.filterwarnings("ignore", message=r"Using `httpx` with `starlette.testclient` is deprecated")
    from starlette.testclient import TestClient


# --------------------------------------------------------------------------- plan
def test_plan_is_reproducible_and_covers_every_attack_category() -> None:
    first = plan(60, seed=3)
    assert first == plan(60, seed=3)
    assert first != plan(60, seed=4)
    assert len(first) == 60
    assert {p.label for p in first if p.kind == ATTACK} == ATTACK_TYPES
    assert {p.kind for p in first} == {ATTACK, BENIGN, FAILURE}
    # Every request carries its own trace id (how the summary matches sent to seen).
    assert len({p.trace_id for p in first}) == 60
    assert all(len(p.trace_id) == 32 and int(p.trace_id, 16) for p in first)


def test_plan_sizes_and_bounds() -> None:
    assert plan(0) == []
    assert len(plan(5)) == 5
    assert len(plan(MAX_REQUESTS)) == MAX_REQUESTS
    with pytest.raises(ValueError, match="between 0 and"):
        plan(MAX_REQUESTS + 1)


def test_attacks_come_from_few_clients_and_visitors_from_many() -> None:
    probes = plan(300, seed=1)
    attackers = {p.client for p in probes if p.kind == ATTACK}
    visitors = {p.client for p in probes if p.kind != ATTACK}
    assert len(attackers) <= 4 < len(visitors)
    assert not attackers & visitors


# --------------------------------------------------------------------------- the shop
@pytest.fixture
def shop(otel: Any) -> Iterator[TestClient]:
    # A generous time budget: on a loaded CI machine the default 10 ms may cut an inspection
    # short (fail open, counted), and these tests are about what is detected, not how fast.
    app = build_app(**otel.providers, time_budget=1.0)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def _send(client: TestClient, probe: Probe) -> int:
    headers = dict(probe.headers)
    headers["traceparent"] = f"00-{'ab' * 16}-{'cd' * 8}-01"
    resp = client.request(probe.method, probe.target, headers=headers, content=probe.body or None)
    return resp.status_code


def test_shop_routes_answer_like_a_real_app(shop: TestClient, otel: Any) -> None:
    assert shop.get("/search", params={"q": "shirt"}).json()["results"] == ["Blue cotton shirt"]
    assert shop.get("/search", params={"q": "o'reilly"}).status_code == 500
    assert shop.get("/api/users/1").json()["name"] == "Alice"
    assert shop.get("/api/users/999").status_code == 404
    assert shop.post("/login", data={"username": "alice", "password": "nope"}).status_code == 401
    assert shop.post("/login", data={"username": "alice", "password": "wonderland"}).status_code == 200
    assert shop.get("/api/preview", params={"url": "gopher://x/"}).status_code == 500
    assert shop.get("/greeting", params={"name": "Ann"}).text == "Hello, Ann, welcome to the demo shop!"
    assert shop.get("/greeting", params={"name": "{{7*7}}"}).status_code == 500
    assert shop.get("/api/calc", params={"expr": "2 * (3 + 4)"}).json() == {"result": 14.0}
    assert shop.get("/api/calc", params={"expr": "__import__('os')"}).status_code == 500
    assert shop.get("/nowhere").status_code == 404
    csv = shop.get("/export.csv")
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines()[0] == "sku,name,price" and len(csv.text.splitlines()) == 4
    routes = {s.attributes.get("http.route") for s in otel.server_spans()}
    assert {"/search", "/api/users/{user_id:int}", "/login", "/export.csv"} <= routes


def test_every_hand_written_attack_is_reported_as_an_attack(shop: TestClient, otel: Any) -> None:
    _, _, attacks = catalogue()
    missed = []
    for category, probes in sorted(attacks.items()):
        for probe in probes:
            otel.clear()
            _send(shop, probe)
            types = otel.signal_types()
            if not types & ATTACK_TYPES:
                missed.append(f"{category}: {probe.method} {probe.target} -> {sorted(types)}")
    assert not missed, "demo attacks devsecmw does not report:\n" + "\n".join(missed)


def test_attack_on_a_failing_route_is_attack_5xx(shop: TestClient, otel: Any) -> None:
    probe = Probe(ATTACK, "sqli", "GET", "/search?q=%27%20UNION%20SELECT%20password%20FROM%20users--")
    assert _send(shop, probe) == 500
    assert {"sqli", "http_5xx", "attack_5xx"} <= otel.signal_types()


def test_failures_are_anomalies_without_attack_signals(shop: TestClient, otel: Any) -> None:
    _, failures, _ = catalogue()
    for probe in failures:
        otel.clear()
        status = _send(shop, probe)
        assert status >= 400, probe
        span = otel.span()
        assert span.attributes["devsecmw.classification"] == "anomaly", (probe, otel.signal_types())


# --------------------------------------------------------------------------- summary
def _span(
    tracer: Any, route: str | None, status: int, cls: str, types: list[str], client: str = "198.51.100.7"
) -> None:
    attrs: dict[str, Any] = {
        "http.request.method": "GET",
        "http.response.status_code": status,
        "devsecmw.classification": cls,
        "devsecmw.signal.types": types,
        "client.address": client,
    }
    if route:
        attrs["http.route"] = route
    span = tracer.start_span("GET", kind=SpanKind.SERVER, attributes=attrs)
    for t in types:
        span.add_event("devsecmw.signal", {"devsecmw.signal.type": t, "devsecmw.signal.location": "query:q"})
    span.end()


@pytest.fixture
def spans() -> list[Any]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    _span(tracer, "/search", 500, "attack", ["sqli", "http_5xx", "attack_5xx"], client="203.0.113.9")
    _span(tracer, "/search", 200, "benign", [])
    _span(tracer, "/search", 500, "anomaly", ["http_5xx"])
    _span(tracer, "/login", 401, "anomaly", ["auth_failure"])
    _span(tracer, None, 404, "attack", ["scanner", "http_404", "client_flagged"], client="203.0.113.9")
    # A span devsecmw did not annotate (another instrumentation's) is not a request.
    tracer.start_span("SELECT", attributes={"db.system": "sqlite"}).end()
    return list(exporter.get_finished_spans())


def test_summary_counts_classifications_signals_and_routes(spans: list[Any]) -> None:
    text = summarize(spans)
    lines = text.splitlines()
    assert "Requests by classification (5 inspected)" in lines
    assert any(line.split()[:2] == ["attack", "2"] for line in lines)
    assert any(line.split()[:2] == ["anomaly", "2"] for line in lines)
    assert any(line.split()[:2] == ["benign", "1"] for line in lines)
    assert "http_5xx 2" in text and "sqli 1" in text and "scanner 1" in text
    # route  requests  attacks  5xx  attack_5xx  401/403  404
    rows = {" ".join(line.split()[:-6]): line.split()[-6:] for line in lines if line.startswith("  GET ")}
    assert rows["GET /search"] == ["3", "1", "2", "1", "0", "0"]
    assert rows["GET /login"] == ["1", "0", "0", "0", "1", "0"]
    assert rows["GET (no route)"] == ["1", "1", "0", "0", "0", "1"]
    assert "1 of 2 server errors (50%) came with an attack on the same request." in text
    # The worst route (attacks that ended in errors) comes first.
    route_lines = [line for line in lines if line.startswith("  GET ")]
    assert route_lines[0].split()[1] == "/search"


def test_summary_lists_attack_5xx_trace_ids_and_flagged_clients(spans: list[Any]) -> None:
    text = summarize(spans)
    a5 = [s for s in spans if "attack_5xx" in (s.attributes.get("devsecmw.signal.types") or ())]
    assert len(a5) == 1
    trace_id = f"{a5[0].context.trace_id:032x}"
    assert "Attacks that ended in a 5xx (attack_5xx): 1" in text
    assert f"  {trace_id}  GET /search  500  sqli" in text.splitlines()
    flagged = [line.split() for line in text.splitlines() if line.startswith("  203.0.113.9")]
    assert flagged == [["203.0.113.9", "2", "2", "1"]]


def test_summary_matches_sent_requests_by_trace_id(spans: list[Any]) -> None:
    by_status = {
        s.attributes["http.response.status_code"]: s
        for s in spans
        if s.attributes and "http.response.status_code" in s.attributes
    }
    sqli = f"{by_status[401].context.trace_id:032x}"  # a sent "attack" devsecmw did not flag
    scan = f"{by_status[404].context.trace_id:032x}"
    fp = f"{by_status[200].context.trace_id:032x}"
    sent = [
        Sent(Probe(ATTACK, "sqli", "POST", "/login", trace_id=sqli), status=401),
        Sent(Probe(ATTACK, "scanner", "GET", "/wp-login.php", trace_id=scan), status=404),
        Sent(Probe(BENIGN, "search", "GET", "/search?q=x", trace_id=fp), status=200),
        Sent(Probe(BENIGN, "home", "GET", "/", trace_id="f" * 32), error="ReadError: reset"),
    ]
    text = summarize(spans, sent=sent)
    assert "Attacks sent, by category: 1 of 2 carried an attack signal" in text
    assert "scanner 1/1" in text and "sqli 0/1" in text
    assert "not detected every time: sqli" in text
    assert "1 requests got no response (ReadError: reset)" in text
    assert "false positives" not in text


def test_summary_colour_is_optional(spans: list[Any]) -> None:
    assert "\x1b[" not in summarize(spans)
    coloured = summarize(spans, color=True)
    assert "\x1b[31m" in coloured and "\x1b[0m" in coloured


def test_summary_of_nothing() -> None:
    text = summarize([])
    assert "Requests by classification (0 inspected)" in text
    assert text.count("(none)") == 2


def test_summary_reads_metrics(shop: TestClient, otel: Any) -> None:
    shop.get("/search", params={"q": "shirt"})
    shop.get("/search", params={"q": "<script>alert(1)</script>"})
    text = summarize(otel.spans(), otel.reader.get_metrics_data())
    assert "over 2 requests" in text
    assert "(devsecmw.errors): 0" in text


# --------------------------------------------------------------------------- the command
@pytest.mark.e2e
def test_demo_command_end_to_end(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    monkeypatch.setenv("DEVSECMW_TIME_BUDGET", "1.0")  # detection, not speed, is under test
    assert main(["demo", "--requests", "60", "--seed", "5", "--no-color"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("devsecmw demo: 60 requests to http://127.0.0.1:")
    assert "telemetry: in memory" in out
    assert "Requests by classification (60 inspected)" in out
    assert "Per route: attacks next to errors" in out
    assert "Attacks sent, by category: " in out
    assert "got no response" not in out
    assert "\x1b[" not in out
    # At least one attack on a failing route is reported with its trace id.
    a5 = out.split("(attack_5xx): ", 1)[1]
    assert int(a5.split()[0]) > 0
    trace_line = a5.splitlines()[1].split()
    assert len(trace_line[0]) == 32 and trace_line[3] == "500"


@pytest.mark.e2e
def test_demo_reports_a_port_it_cannot_use(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["demo", "--requests", "5", "--port", str(port), "--no-color"]) == 1
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err
    assert "pick another --port" in err


def test_demo_without_its_extra_says_how_to_install_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(__import__("sys").modules, "uvicorn", None)
    assert main(["demo", "--requests", "5"]) == 1
    err = capsys.readouterr().err
    assert "uvicorn is not installed" in err and 'pip install "devsecmw[demo]"' in err


@pytest.mark.parametrize("args", [["--requests", "0"], ["--requests", "100000"], ["--port", "70000"]])
def test_demo_rejects_bad_options(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["demo", *args])
    assert exc.value.code == 2
    assert "must be" in capsys.readouterr().err


class _Collector(BaseHTTPRequestHandler):
    received: list[tuple[str, str, bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        self.received.append((self.path, self.headers.get("content-type", ""), body))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass


@pytest.mark.e2e
def test_demo_exports_over_otlp_when_an_endpoint_is_set(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    _Collector.received = []
    collector = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=collector.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = f"http://127.0.0.1:{collector.server_address[1]}"
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        monkeypatch.setenv("OTEL_SERVICE_NAME", "demo-under-test")
        assert demo_otel.otlp_endpoint() == endpoint
        assert main(["demo", "--requests", "30", "--no-color"]) == 0
    finally:
        collector.shutdown()
        collector.server_close()
        thread.join()
    assert f"exported over OTLP to {endpoint}" in capsys.readouterr().out
    spans = []
    metric_names = set()
    for path, ctype, body in _Collector.received:
        assert ctype == "application/x-protobuf"
        if path == "/v1/traces":
            req = ExportTraceServiceRequest.FromString(body)
            for rs in req.resource_spans:
                service = {a.key: a.value.string_value for a in rs.resource.attributes}["service.name"]
                assert service == "demo-under-test"
                spans += [s for ss in rs.scope_spans for s in ss.spans]
        elif path == "/v1/metrics":
            req_m = ExportMetricsServiceRequest.FromString(body)
            metric_names |= {
                m.name for rm in req_m.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
            }
    assert len(spans) == 30
    classified = [s for s in spans if any(a.key == "devsecmw.classification" for a in s.attributes)]
    assert len(classified) == 30
    assert {"devsecmw.requests", "devsecmw.signals", "devsecmw.inspection.duration"} <= metric_names


# The demo extra is all a fresh machine has: no test-only package may be needed.
DEMO_ONLY_SCRIPT = """
import asyncio, importlib.abc, sys

TEST_ONLY = {"flask", "django", "fastapi", "pytest", "hypothesis", "python_multipart", "multipart"}

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in TEST_ONLY:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Refuse())
import httpx
from devsecmw.demo.app import build_app
from devsecmw.demo.traffic import catalogue

async def main():
    transport = httpx.ASGITransport(app=build_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as client:
        benign, _, _ = catalogue()
        statuses = []
        for p in benign:
            r = await client.request(p.method, p.target, headers=dict(p.headers), content=p.body or None)
            statuses.append(r.status_code)
        print(statuses)

asyncio.run(main())
"""


def test_demo_shop_needs_no_test_only_package() -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", DEMO_ONLY_SCRIPT], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    statuses = [int(s) for s in proc.stdout.strip().strip("[]").split(",")]
    # Every benign request of the demo succeeds (form logins included) with the demo extra alone.
    assert statuses and all(200 <= s < 300 for s in statuses), statuses

"""The scorecard from span records and from Prometheus counts, and the command's refusals:
only loopback targets unless the host is named, one way to verify, bounded options."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from devsecmw import ATTACK_TYPES
from devsecmw.cli import main
from devsecmw.gameday import scorecard, suite
from devsecmw.gameday.run import UsageError, is_loopback, parse_listen, parse_target, prometheus_query

RUN_ID = "gd-test-1"


def _outcomes(burst: int = 2, status: int = 200, **statuses: int) -> list[scorecard.Outcome]:
    probes = suite.build(RUN_ID, "/", burst=burst)
    return [
        scorecard.Outcome(p, sent_at=100.0 + p.seq, status=statuses.get(p.category, status)) for p in probes
    ]


def _span(probe: suite.Probe, types: list[str], received: float, **attrs: Any) -> dict[str, Any]:
    return {
        "trace_id": probe.trace_id,
        "span_id": "1" * 16,
        "received": received,
        "attributes": {"devsecmw.classification": "attack" if types else "benign", **attrs},
        "events": [{"name": "devsecmw.signal", "attributes": {"devsecmw.signal.type": t}} for t in types],
    }


def test_rows_from_spans_count_seen_right_type_delay_and_blocked() -> None:
    outcomes = _outcomes(**{suite.BURST_404: 404})
    sqli = [o for o in outcomes if o.probe.category == "sqli"]
    spans = [
        _span(sqli[0].probe, ["sqli"], received=sqli[0].sent_at + 0.5),
        _span(sqli[1].probe, ["xss"], received=sqli[1].sent_at + 0.1, **{"devsecmw.blocked": True}),
        {"trace_id": "f" * 32, "attributes": {"devsecmw.classification": "attack"}},  # another request
    ]
    rows = {r.category: r for r in scorecard.from_spans(outcomes, spans, RUN_ID)}
    row = rows["sqli"]
    assert (row.sent, row.seen, row.right_type, row.blocked) == (2, 2, 1, 1)
    assert row.time_to_appear == pytest.approx(0.5) and row.ok
    assert row.other_types == {"xss": 1}
    assert not rows["xss"].ok and rows["xss"].seen == 0
    # The 404 burst was answered 404: it is required, and nothing showed it.
    assert rows[suite.BURST_404].required and not rows[suite.BURST_404].ok
    # The auth burst was answered 200: nothing to check.
    assert not rows[suite.BURST_AUTH].required and rows[suite.BURST_AUTH].ok
    assert scorecard.missing(rows.values()) == sorted((ATTACK_TYPES - {"sqli"}) | {suite.BURST_404})


def test_spans_match_by_the_query_tag_when_the_trace_was_replaced() -> None:
    outcomes = _outcomes()
    probe = next(o.probe for o in outcomes if o.probe.category == "xxe")
    span = _span(probe, ["xxe"], 200.0, **{"url.query": f"q=x&{suite.PARAM}={RUN_ID}.{probe.seq}"})
    span["trace_id"] = "e" * 32  # a proxy started a new trace
    other_run = dict(
        span, attributes={**span["attributes"], "url.query": f"{suite.PARAM}=gd-other.{probe.seq}"}
    )
    assert scorecard.match([o.probe for o in outcomes], [other_run], RUN_ID) == {}
    rows = {r.category: r for r in scorecard.from_spans(outcomes, [span], RUN_ID)}
    assert rows["xxe"].right_type == 1


def test_a_span_with_the_verdict_wins_over_an_instrumentation_span_of_the_same_trace() -> None:
    outcomes = _outcomes()
    probe = outcomes[0].probe
    bare = {"trace_id": probe.trace_id, "attributes": {"http.route": "/"}}
    full = _span(probe, [probe.category], 200.0)
    for order in ([bare, full], [full, bare]):
        assert scorecard.match([probe], order, RUN_ID)[probe.seq] is full


def test_rows_from_prometheus_counts() -> None:
    outcomes = _outcomes(**{suite.BURST_AUTH: 401})
    increase = {"sqli": 2.0, "scanner": 50.0, "auth_failure": 2.0}
    rows = {r.category: r for r in scorecard.from_counts(outcomes, increase, {"sqli": 110.0})}
    assert rows["sqli"].right_type == 2 and rows["sqli"].time_to_appear is not None
    assert rows["scanner"].right_type == rows["scanner"].sent  # capped by what was sent
    assert rows[suite.BURST_AUTH].ok and rows[suite.BURST_AUTH].required
    assert "xss" in scorecard.missing(rows.values())


def test_render_names_the_missing_categories() -> None:
    outcomes = _outcomes()
    text = scorecard.render(scorecard.from_spans(outcomes, [], RUN_ID), "title")
    assert text.startswith("title\n")
    assert "MISSING" in text and "not checked (answered 200)" in text
    assert text.rstrip().endswith("missing: " + ", ".join(sorted(ATTACK_TYPES)))


# --------------------------------------------------------------------------- target checks
@pytest.mark.parametrize("host", ["127.0.0.1", "127.3.2.1", "::1", "[::1]", "localhost", "LOCALHOST."])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize(
    "host", ["10.0.0.1", "192.168.1.1", "0.0.0.0", "example.com", "127.0.0.1.nip.io", "::"]
)
def test_other_hosts_are_not_loopback(host: str) -> None:
    assert not is_loopback(host)


def test_a_non_loopback_target_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["gameday", "--target", "http://staging.example.com:8000", "--otlp-listen", "127.0.0.1:0"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "refusing target 'staging.example.com'" in err and "--allow-host staging.example.com" in err
    with pytest.raises(UsageError, match=r"refusing target '10\.1\.2\.3'"):
        parse_target("http://10.1.2.3/", ["staging.example.com"])


def test_a_named_host_is_allowed() -> None:
    url = parse_target("https://Staging.Example.com:8443/app", ["staging.example.com"])
    assert (url.hostname, url.port, url.path) == ("staging.example.com", 8443, "/app")


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("127.0.0.1:8000", "must be an http"),
        ("ftp://127.0.0.1/", "must be an http"),
        ("http://user:pw@127.0.0.1/", "credentials"),
        ("http://127.0.0.1:99999/", "--target"),
    ],
)
def test_malformed_targets_are_refused(target: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_target(target, [])


def test_the_receiver_listens_on_loopback_unless_named() -> None:
    assert parse_listen("127.0.0.1:4318", []) == ("127.0.0.1", 4318)
    assert parse_listen("[::1]:4318", []) == ("::1", 4318)
    with pytest.raises(UsageError, match=r"refusing listen address '0\.0\.0\.0'"):
        parse_listen("0.0.0.0:4318", [])
    with pytest.raises(UsageError, match="HOST:PORT"):
        parse_listen("4318", [])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--rate", "0"], "--rate must be"),
        (["--rate", "1000"], "--rate must be"),
        (["--burst", "1000"], "--burst must be"),
        (["--max-requests", "10"], "more than --max-requests 10"),
        (["--run-id", "bad id"], "--run-id"),
        (["--path", "nope"], "must start with '/'"),
        (["--wait", "-1"], "--wait must be"),
    ],
)
def test_bad_options_exit_2_before_sending_anything(
    extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Port 9 on loopback: nothing is sent anyway, the options are refused first.
    assert main(["gameday", "--target", "http://127.0.0.1:9", "--otlp-listen", "127.0.0.1:0", *extra]) == 2
    assert message in capsys.readouterr().err


def test_one_way_to_verify_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["gameday", "--target", "http://127.0.0.1:9"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit):
        main(["gameday", "--target", "http://127.0.0.1:9", "--otlp-listen", ":0", "--prometheus", "http://x"])
    with pytest.raises(SystemExit):
        main(["gameday", "--otlp-listen", "127.0.0.1:0"])  # never a default target
    assert "--target" in capsys.readouterr().err


# --------------------------------------------------------------------------- Prometheus mode
class _Target(BaseHTTPRequestHandler):
    """A service that answers 200, or 404 for the game day's missing paths; records categories."""

    seen: list[str] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        status = 404 if "missing" in self.path else 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Prometheus(BaseHTTPRequestHandler):
    """Answers the instant query with the counts a devsecmw service would have: one per request
    the target saw, by category, but none for xss (as if the service missed it)."""

    queries: list[str] = []
    categories: dict[str, str] = {}

    def do_GET(self) -> None:
        query = parse_qs(urlsplit(self.path).query)["query"][0]
        self.queries.append(query)
        counts: dict[str, int] = {}
        for path in _Target.seen:
            seq = int(path.rsplit(".", 1)[1])
            category = self.categories[str(seq)]
            if category != "xss":
                counts[category] = counts.get(category, 0) + 1
        result = [
            {"metric": {"devsecmw_signal_type": t}, "value": [0, str(n + 100)]} for t, n in counts.items()
        ] + [{"metric": {"devsecmw_signal_type": "xss"}, "value": [0, "100"]}]
        body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def servers() -> Iterator[tuple[str, str]]:
    started = []
    for handler in (_Target, _Prometheus):
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        started.append((server, thread))
    try:
        yield tuple(f"http://127.0.0.1:{s.server_address[1]}" for s, _ in started)  # type: ignore[misc]
    finally:
        for server, thread in started:
            server.shutdown()
            server.server_close()
            thread.join()


def test_prometheus_mode_reports_the_category_that_did_not_grow(
    servers: tuple[str, str], tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    target, prometheus = servers
    _Target.seen = []
    _Prometheus.queries = []
    probes = suite.build(RUN_ID, "/", burst=3)
    _Prometheus.categories = {str(p.seq): p.category for p in probes}
    out = tmp_path / "card.json"
    args = ["gameday", "--target", target, "--prometheus", prometheus, "--prometheus-selector", 'job="shop"']
    code = main(
        [*args, "--run-id", RUN_ID, "--rate", "200", "--burst", "3", "--wait", "1", "--json", str(out)]
    )
    assert code == 1
    assert len(_Target.seen) == len(probes)
    assert _Prometheus.queries[0] == prometheus_query('job="shop"')
    assert _Prometheus.queries[0] == 'sum by (devsecmw_signal_type) (devsecmw_signals_total{job="shop"})'
    doc = json.loads(out.read_text())
    assert doc["mode"] == "prometheus" and doc["missing"] == ["xss"]
    assert "missing: " in capsys.readouterr().out
    rows = {r["category"]: r for r in doc["categories"]}
    assert rows["sqli"]["right_type"] == 2 and rows["xss"]["right_type"] == 0


def test_a_burst_blocked_by_devsecmw_is_not_required() -> None:
    outcomes = _outcomes(**{suite.BURST_AUTH: 403})
    for o in outcomes:
        o.blocked = o.probe.category == suite.BURST_AUTH  # devsecmw's block response, not the app's 403
    rows = {r.category: r for r in scorecard.from_spans(outcomes, [], RUN_ID)}
    assert not rows[suite.BURST_AUTH].required and rows[suite.BURST_AUTH].blocked == 2
    for o in outcomes:
        o.blocked = False  # the application's own 403
    rows = {r.category: r for r in scorecard.from_spans(outcomes, [], RUN_ID)}
    assert rows[suite.BURST_AUTH].required and not rows[suite.BURST_AUTH].ok

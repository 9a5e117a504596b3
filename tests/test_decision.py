"""One decision: ``devsecmw scan`` and the middleware classify the same rows alike.

The same rows (with the status the app answers, and an exclusion configured) go through
``devsecmw scan --json`` and through the ASGI middleware in front of an app that answers that
status; classification, score and signals must agree. Then :mod:`devsecmw.decision` itself:
the order of its steps, and that it never mutates its input.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes

import pytest
from asgi_harness import body_messages, drive_wrapped, steady_time_budget

from devsecmw.cli import main
from devsecmw.config import Config, Exclusion
from devsecmw.decision import block_wanted, decide_request, excluded
from devsecmw.signals import Severity, Signal

__all__ = ["steady_time_budget"]  # the fixture applies here

SQLI = "/items?id=1%27%20UNION%20SELECT%20password%20FROM%20users--"
XSS_FORM = "comment=%3Cscript%3Ealert(document.cookie)%3C%2Fscript%3E"
FORM = [["Host", "shop.test"], ["Content-Type", "application/x-www-form-urlencoded"]]
ROWS: list[dict[str, Any]] = [
    {
        "id": "benign",
        "method": "GET",
        "uri": "/search?q=blue+shirt&page=2",
        "headers": [["Host", "shop.test"]],
    },
    {"id": "sqli", "method": "GET", "uri": SQLI, "headers": [["Host", "shop.test"]]},
    # An attack the app answered with a 500: attack_5xx, the score of an exploited bug.
    {"id": "sqli-500", "method": "GET", "uri": SQLI, "headers": [["Host", "shop.test"]], "status": 500},
    {"id": "xss-body", "method": "POST", "uri": "/comments", "headers": FORM, "body": XSS_FORM},
    {
        "id": "xss-body-403",
        "method": "POST",
        "uri": "/comments",
        "headers": FORM,
        "body": XSS_FORM,
        "status": 403,
    },
    {
        "id": "benign-404",
        "method": "GET",
        "uri": "/nothing/here",
        "headers": [["Host", "shop.test"]],
        "status": 404,
    },
    # SQL injection where the exclusion switches sqli off: what is left must agree too.
    {
        "id": "sqli-excluded",
        "method": "GET",
        "uri": "/admin/query?id=1%27%20UNION%20SELECT%20password%20FROM%20users--",
        "headers": [["Host", "shop.test"]],
        "status": 500,
    },
]
EXCLUSIONS = [{"rules": ["sqli"], "route": "/admin/*"}]


def _scan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, Any]]:
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    assert main(["scan", "--json", str(rows)]) == 0
    return {doc["id"]: doc for doc in map(json.loads, capsys.readouterr().out.splitlines())}


def _scope(row: dict[str, Any]) -> dict[str, Any]:
    raw = row["uri"].encode()
    path, _, query = raw.partition(b"?")
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": row["method"],
        "scheme": "http",
        "path": unquote_to_bytes(path).decode(),
        "raw_path": path,
        "query_string": query,
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in row["headers"]],
        "server": ("127.0.0.1", 8000),
    }


def _answering(status: int) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        more = True
        while more:  # the app reads its body, as a form handler would
            more = (await receive()).get("more_body", False)
        await send(
            {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]}
        )
        await send({"type": "http.response.body", "body": b"ok"})

    return app


def _through_middleware(row: dict[str, Any], otel: Any) -> dict[str, Any]:
    otel.clear()
    status = row.get("status", 200)
    drive_wrapped(
        _answering(status), _scope(row), body_messages(row.get("body", "").encode()), **otel.providers
    )
    span = otel.span()
    return {
        "classification": span.attributes["devsecmw.classification"],
        "score": span.attributes["devsecmw.score"],
        "signals": sorted((e["devsecmw.signal.type"], e.get("security_rule.uuid")) for e in otel.events()),
    }


def test_scan_and_the_middleware_decide_alike(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, otel: Any
) -> None:
    monkeypatch.setenv("DEVSECMW_EXCLUSIONS", json.dumps(EXCLUSIONS))  # both read the environment
    scanned = _scan(tmp_path, capsys)
    assert set(scanned) == {r["id"] for r in ROWS}
    for row in ROWS:
        mw = _through_middleware(row, otel)
        doc = scanned[row["id"]]
        by_scan = sorted((s["type"], s["rule"]) for s in doc["signals"])
        assert (doc["classification"], doc["score"], by_scan) == (
            mw["classification"],
            mw["score"],
            mw["signals"],
        ), row["id"]
    # The rows exercise what the decision combines (so agreement above means something).
    types = {rid: {s["type"] for s in doc["signals"]} for rid, doc in scanned.items()}
    assert scanned["benign"]["classification"] == "benign"
    assert scanned["sqli"]["classification"] == "attack" and "sqli" in types["sqli"]
    assert "attack_5xx" in types["sqli-500"] and scanned["sqli-500"]["score"] > scanned["sqli"]["score"]
    assert "xss" in types["xss-body"] and "auth_failure" in types["xss-body-403"]
    assert types["benign-404"] == {"http_404"} and scanned["benign-404"]["classification"] == "anomaly"
    assert "sqli" not in types["sqli-excluded"] and "attack_5xx" not in types["sqli-excluded"]
    assert "http_5xx" in types["sqli-excluded"]


def test_scan_without_the_exclusion_sees_the_attack(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scanned = _scan(tmp_path, capsys)
    assert scanned["sqli-excluded"]["classification"] == "attack"
    assert "attack_5xx" in {s["type"] for s in scanned["sqli-excluded"]["signals"]}


# --------------------------------------------------------------------------- the function itself
def _sig(kind: str, rule: str | None = "942100", severity: Severity = Severity.CRITICAL) -> Signal:
    return Signal(kind, "query:id", "x", severity, rule_id=rule)


def test_steps_run_in_order_and_the_input_is_not_mutated() -> None:
    config = Config()
    request = [_sig("sqli")]
    leak = Signal("response_leak", "response:body", "sql error", Severity.WARNING, rule_id="950100")
    seen: list[bool] = []

    def observe(attack: bool) -> Signal | None:
        seen.append(attack)
        return Signal("client_flagged", "client", "attack", Severity.WARNING)

    def hook(signals: list[Signal]) -> list[Signal]:
        # The hook sees the final list: status, leak (raised to critical), attack_5xx, client flag.
        assert [s.type for s in signals] == [
            "sqli",
            "http_5xx",
            "response_leak",
            "attack_5xx",
            "client_flagged",
        ]
        assert signals[2].severity == Severity.CRITICAL
        return signals[:-1]

    verdict = decide_request(
        request, config, where="/x", status=503, leaked=[leak], observe=observe, hook=hook
    )
    assert seen == [True]
    assert [s.type for s in verdict.signals] == ["sqli", "http_5xx", "response_leak", "attack_5xx"]
    assert verdict.classification == "attack"
    assert request == [_sig("sqli")]  # never mutated
    assert leak.severity == Severity.WARNING


def test_a_block_response_status_is_not_the_apps_answer() -> None:
    verdict = decide_request([_sig("sqli")], Config(), where="/", status=403, blocked=True)
    assert [s.type for s in verdict.signals] == ["sqli"]
    verdict = decide_request([_sig("sqli")], Config(), where="/", status=403)
    assert [s.type for s in verdict.signals] == ["sqli", "auth_failure"]


def test_exclusions_apply_to_the_decision_and_to_blocking_alike() -> None:
    config = Config(exclusions=(Exclusion(rules=("sqli",), route="/admin/*"),), mode="block")
    signals = [_sig("sqli")]
    assert excluded(signals, config, "/admin/q") == []
    assert excluded(signals, config, "/shop") == signals
    assert decide_request(signals, config, where="/admin/q").classification == "benign"
    assert not block_wanted(signals, config, "/admin/q")
    assert block_wanted(signals, config, "/shop")
    assert block_wanted([], config, "/admin/q", flagged=True)  # a flagged client, whatever the route


def test_a_clean_request_builds_nothing() -> None:
    empty: list[Signal] = []
    verdict = decide_request(empty, Config(), where="/", status=200)
    assert verdict.classification == "benign" and verdict.score == 0 and verdict.signals is empty


def test_exclusions_prepared_by_the_caller_take_the_place_of_the_configured_ones() -> None:
    # The runtime may prepare its exclusions at start-up (e.g. expanded); what it passes is used.
    config = Config(exclusions=(Exclusion(rules=("xss",)),))
    signals = [_sig("sqli")]
    prepared = (Exclusion(rules=("942100",)),)
    assert excluded(signals, config, "/") == signals
    assert excluded(signals, config, "/", prepared) == []
    assert decide_request(signals, config, where="/", exclusions=prepared).classification == "benign"
    assert not block_wanted(signals, config, "/", exclusions=prepared)
    assert excluded(signals, config, "/", ()) == signals  # none, whatever the configuration says

"""``devsecmw tune``: from real spans to exclusions that silence a false positive, and only it.

The end-to-end test serves a Starlette app behind the middleware with an extra rule that
fires on an ordinary search word (a false positive made on purpose), records spans with the
SDK, saves them as span records, runs ``devsecmw tune`` on the file, applies the JSON it
prints as the ``exclusions`` option, and replays: the false positive is gone, the real
attacks in the same traffic are still seen and were never proposed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from devsecmw import tune
from devsecmw.cli import main

pytest.importorskip("starlette")
pytest.importorskip("httpx")

RULE = {
    "ruleset": "test-noisy",
    "rules": [
        {
            "id": "990001",
            "name": "noisy word (a false positive on purpose)",
            "type": "xss",
            "category": "attack-xss",
            "severity": "critical",
            "paranoia": 1,
            "targets": ["query"],
            "transforms": [],
            "operator": "contains",
            "value": "sweater",
            "examples": {"match": ["red sweater"], "nomatch": ["shirt"]},
        }
    ],
}


def _traffic(tmp_path: Path, otel: Any, exclusions: list[dict[str, Any]] | None = None) -> list[Any]:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from devsecmw.asgi import SecurityMiddleware

    rules = tmp_path / "noisy.json"
    rules.write_text(json.dumps(RULE))

    async def search(request: Any) -> PlainTextResponse:
        return PlainTextResponse("results")

    app = Starlette(routes=[Route("/search", search), Route("/item/{id}", search)])
    options: dict[str, Any] = {"rule_files": [str(rules)]}
    if exclusions is not None:
        options["exclusions"] = exclusions
    wrapped = SecurityMiddleware(app, **otel.providers, **options)
    otel.clear()
    with TestClient(wrapped) as client:
        for i in range(60):  # ordinary searches, a third for sweaters
            client.get("/search", params={"q": "red sweater" if i % 3 == 0 else f"shirt {i}"})
        for i in range(40):
            client.get(f"/item/{i}")
        for payload in (
            "1' UNION SELECT password FROM users--",
            "<script>alert(1)</script>",
            "../../etc/passwd",
        ):
            client.get("/search", params={"q": payload})
    return otel.server_spans()


def test_tune_proposes_the_false_positive_and_the_exclusion_silences_it(
    tmp_path: Path, otel: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from devsecmw.gameday import records

    spans = _traffic(tmp_path, otel)
    export = tmp_path / "spans.jsonl"
    records.dump(records.from_sdk(spans), export)
    noisy_before = sum(1 for s in spans if "990001" in json.dumps([dict(e.attributes) for e in s.events]))
    assert noisy_before == 20

    assert main(["tune", str(export), "--format", "json"]) == 0
    proposed = json.loads(capsys.readouterr().out)
    assert proposed == [{"rules": ["990001"], "route": "/search", "location": "query:q"}]

    spans = _traffic(tmp_path, otel, exclusions=proposed)
    types = [set(s.attributes.get("devsecmw.signal.types", ())) for s in spans]
    rule_ids = {e.attributes.get("security_rule.uuid") for s in spans for e in s.events}
    assert "990001" not in rule_ids
    assert sum("sqli" in t for t in types) == 1 and sum("traversal" in t for t in types) == 1
    assert sum("xss" in t for t in types) == 1  # the real script tag, not the sweaters

    assert main(["tune", str(export)]) == 0  # the table names rule, route, location
    table = capsys.readouterr().out
    assert "990001" in table and "/search" in table and "query:q" in table


def _seen(route: str, rules: list[str], status: int = 200, **kw: Any) -> tune.Seen:
    return tune.Seen(route, status, tuple((r, "sqli", "query:id") for r in rules), **kw)


def test_attacks_are_not_proposed() -> None:
    traffic = [_seen("/a", []) for _ in range(100)]
    # A scanner's probes: several rules at once, or ending in errors.
    traffic += [_seen("/a", ["942100", "942190"]) for _ in range(30)]
    traffic += [_seen("/a", ["942100"], status=500) for _ in range(30)]
    assert tune.propose(traffic) == []
    # Game-day requests and exploits that worked are never noise, however many.
    traffic = [_seen("/a", ["942100"], excluded=True) for _ in range(50)] + [
        _seen("/a", []) for _ in range(50)
    ]
    assert tune.propose(traffic) == []


def test_thresholds() -> None:
    noise = [_seen("/a", ["942100"]) for _ in range(9)] + [_seen("/a", []) for _ in range(100)]
    assert tune.propose(noise) == []  # below min_count
    assert [p.rule for p in tune.propose(noise, min_count=9)] == ["942100"]
    rare = [_seen("/a", ["942100"]) for _ in range(10)] + [_seen("/a", []) for _ in range(1000)]
    assert tune.propose(rare) == []  # 1% of the route: below min_share
    assert tune.propose(rare, min_share=0.005)[0].share == pytest.approx(10 / 1010)


def test_labeled_benign_scan_rows_are_always_proposed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scan = tmp_path / "scan.jsonl"
    rows = [
        {"id": "b1", "expect": "benign", "classification": "attack", "score": 5,
         "signals": [{"type": "sqli", "location": "body:json:items.3.note", "rule": "942100",
                      "evidence": "x"}]},
        {"id": "a1", "expect": "attack", "classification": "attack", "score": 5,
         "signals": [{"type": "xss", "location": "query:q", "rule": "941100", "evidence": "y"}]},
        {"id": "b2", "expect": "benign", "classification": "anomaly", "score": 2,
         "signals": [{"type": "not_utf8", "location": "query:q", "rule": None, "evidence": ""}]},
    ]  # fmt: skip
    scan.write_text("\n".join(json.dumps(r) for r in rows))
    assert main(["tune", str(scan), "--format", "toml"]) == 0
    out = capsys.readouterr().out
    # One array's values are one location; the attack row and anomalies are not proposed.
    assert out.count("[[tool.devsecmw.exclusions]]") == 1
    assert 'rules = ["942100"]' in out and 'location = "body:json:items.*"' in out
    assert "941100" not in out


@pytest.mark.parametrize(
    ("location", "general"),
    [
        ("body:json:items.3.note", "body:json:items.*"),
        ("body:json:0", "body:json:0"),
        ("body:form:tags[2]", "body:form:tags.*"),
        ("query:q", "query:q"),
        ("body:json:v2.name", "body:json:v2.name"),
    ],
)
def test_generalise(location: str, general: str) -> None:
    assert tune.generalise(location) == general


def test_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    assert main(["tune", str(bad)]) == 1
    assert f"{bad}:1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["tune", str(bad), "--min-share", "2"])
    assert exc.value.code == 2

"""Response rules are rules like the others: one schema with a phase, loaded, disabled, excluded,
listed and validated as request rules are, run by the engine's response runner."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from devsecmw.asgi import SecurityMiddleware
from devsecmw.cli import RULE_PHASES, main
from devsecmw.config import ConfigError
from devsecmw.engine.response import ResponseRules, response_rules
from devsecmw.engine.rules import PHASES, RuleError, load_all, load_packaged, parse_rule
from devsecmw.request import HttpRequest
from devsecmw.signals import Signal

SQL_ERROR = b"<html><p>You have an error in your SQL syntax near 'x'</p></html>"

RESPONSE_RULE: dict[str, Any] = {
    "id": "999100",
    "name": "Local: internal build banner in a page",
    "type": "response_leak",
    "category": "debug-page",
    "severity": "warning",
    "phase": "response.body",
    "targets": ["response.body"],
    "transforms": ["lowercase"],
    "operator": "contains",
    "value": "internal build ",
    "tags": {"team": "web"},
    "examples": {"match": ["INTERNAL BUILD 42"], "nomatch": ["a public build"]},
}
HEAD_RULE: dict[str, Any] = {
    "id": "999200",
    "name": "Local: framework version in a response header",
    "type": "response_leak",
    "category": "version-disclosure",
    "severity": "notice",
    "targets": ["response.headers"],
    "operator": "rx",
    "value": "(?i)^(?:x-powered-by|set-cookie): .*\\d+\\.\\d+",
    "examples": {"match": ["x-powered-by: PHP/5.6.40"], "nomatch": ["x-powered-by: PHP"]},
}


def _file(tmp_path: Path, *rules: dict[str, Any], name: str = "local.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps({"ruleset": "local", "rules": list(rules)}), encoding="utf-8")
    return str(path)


def _app(body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        sent = headers if headers is not None else [(b"content-type", b"text/html")]
        await send({"type": "http.response.start", "status": 200, "headers": sent})
        await send({"type": "http.response.body", "body": body})

    return app


def _call(mw: Any, path: str = "/item", query: bytes = b"id=7") -> None:
    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "headers": [],
        "client": ("203.0.113.5", 1),
        "server": ("127.0.0.1", 80),
        "scheme": "http",
        "http_version": "1.1",
        "root_path": "",
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        pass

    asyncio.run(mw(scope, receive, send))


def _fired(otel: Any) -> set[str]:
    return {str(e.get("security_rule.uuid")) for e in otel.events() if "security_rule.uuid" in e}


# --------------------------------------------------------------------------- schema
def test_cli_phase_choices_are_the_schema_phases() -> None:
    assert tuple(PHASES) == RULE_PHASES


def test_request_rules_phase_follows_from_their_targets() -> None:
    rules = {r.id: r for r in load_packaged()}
    assert rules["942100"].phase_names == ("request.head", "request.body")
    assert rules["942102"].phase_names == ("request.body",)
    assert rules["951110"].phase_names == ("response.body",)
    assert all(r.phase_names for r in rules.values())


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"targets": ["response.body", "args"]}, "a response rule has one target"),
        ({"targets": ["response.body", "response.headers"], "phase": None}, "a response rule has one target"),
        ({"phase": "response.head"}, "phase 'response.head' does not fit targets"),
        ({"phase": "request.body", "targets": ["args"]}, "does not fit targets ['query']"),
        ({"phase": "response"}, "invalid phase 'response' (must be one of request.head, request.body"),
        ({"secret": "yes"}, "secret must be true or false"),
    ],
)
def test_phase_and_secret_are_validated(change: dict[str, Any], problem: str) -> None:
    raw = {**RESPONSE_RULE, **change}
    if raw.get("phase") is None:
        raw.pop("phase")
    with pytest.raises(RuleError, match="rule '999100'") as err:
        parse_rule(raw, "local.json")
    assert problem in str(err.value)


def test_a_stated_request_phase_that_fits_is_accepted() -> None:
    raw = {**RESPONSE_RULE, "phase": "request.head", "targets": ["query", "header:x-a"], "type": "backdoor"}
    assert parse_rule(raw, "local.json").phase_names == ("request.head",)


# --------------------------------------------------------------------------- runner
def test_user_response_rules_run_with_their_transforms_and_phase(tmp_path: Path) -> None:
    rules = load_all([_file(tmp_path, RESPONSE_RULE, HEAD_RULE)])
    runner = ResponseRules(rules)
    found = runner.inspect(b"<p>Internal Build 42</p>", [(b"X-Powered-By", b"PHP/5.6.40"), (b"server", b"x")])
    by_id = {s.rule_id: s for s in found}
    assert set(by_id) == {"999100", "999200"}
    assert by_id["999100"].location == "response:body"
    assert by_id["999200"].location == "response:header:x-powered-by"
    assert "PHP/5.6.40" in by_id["999200"].evidence
    # Head rules alone when the response had no textual body (nothing was sampled).
    assert [s.rule_id for s in runner.inspect(None, [("x-powered-by", "Express 4.18")])] == ["999200"]


def test_secret_named_response_headers_never_reach_evidence(tmp_path: Path) -> None:
    runner = ResponseRules(load_all([_file(tmp_path, HEAD_RULE)]))
    [signal] = runner.inspect(None, [(b"set-cookie", b"session=s3cr3t-v4lue-1.2; Path=/")])
    assert signal.location == "response:header:set-cookie"
    assert "s3cr3t" not in signal.evidence


def test_response_headers_are_capped(tmp_path: Path) -> None:
    runner = ResponseRules(load_all([_file(tmp_path, HEAD_RULE)]), max_headers=3, header_limit=16)
    many = [(b"x-a", b"1")] * 3 + [(b"x-powered-by", b"PHP/5.6.40")]
    assert runner.inspect(None, many) == []  # the fourth header is past max_headers
    long = [(b"x-powered-by", b"P" * 20 + b"/5.6")]
    assert runner.inspect(None, long) == []  # the version is past header_limit


def test_response_rules_follow_the_paranoia_level(tmp_path: Path) -> None:
    path = _file(tmp_path, {**RESPONSE_RULE, "paranoia": 2})
    from devsecmw.config import Config
    from devsecmw.engine import Engine

    for level, want in ((1, False), (2, True)):
        config = Config.from_options({"rule_files": [path], "paranoia_level": level})
        runner = response_rules(Engine(config), config)
        assert runner is not None
        assert ("999100" in {r.id for r in runner.rules}) is want


def test_a_detector_of_the_users_own_keeps_the_packaged_response_rules(otel: Any) -> None:
    class Quiet:
        def inspect(self, request: HttpRequest, phase: str, budget: Any = None) -> list[Signal]:
            return []

    _call(SecurityMiddleware(_app(SQL_ERROR), detector=Quiet(), **otel.providers))
    assert _fired(otel) == {"951110"}


# --------------------------------------------------------------------------- middleware
def test_user_response_rule_from_rule_files_fires_in_the_middleware(tmp_path: Path, otel: Any) -> None:
    path = _file(tmp_path, RESPONSE_RULE, HEAD_RULE)
    app = _app(b"<p>internal build 7</p>", [(b"content-type", b"text/html"), (b"x-powered-by", b"PHP/8.1")])
    _call(SecurityMiddleware(app, rule_files=[path], **otel.providers))
    assert _fired(otel) == {"999100", "999200"}
    assert otel.span().attributes["devsecmw.classification"] == "anomaly"


def test_disabled_rules_switch_a_leak_rule_off(otel: Any) -> None:
    _call(SecurityMiddleware(_app(SQL_ERROR), disabled_rules=["951110"], **otel.providers))
    assert "response_leak" not in otel.signal_types()
    otel.clear()
    _call(
        SecurityMiddleware(
            _app(SQL_ERROR + b"Traceback (most recent call last):"),
            disabled_rules=["951110"],
            **otel.providers,
        )
    )
    assert _fired(otel) == {"952110"}  # the other leak rules still run


def test_disabling_an_unknown_id_is_still_an_error() -> None:
    with pytest.raises(RuleError, match="unknown rule id '951999'"):
        SecurityMiddleware(_app(b""), disabled_rules=["951999"])


@pytest.mark.parametrize(
    "exclusion",
    [
        {"rules": ["951110"]},
        {"rules": ["response_leak"]},
        {"rules": ["tag:cwe=209"]},
        {"rules": ["951110"], "route": "/item"},
        {"rules": ["*"], "location": "response:body"},
        {"rules": ["response_leak"], "route": "/it*", "location": "response:*"},
    ],
)
def test_exclusions_apply_to_leak_rules(exclusion: dict[str, Any], otel: Any) -> None:
    _call(SecurityMiddleware(_app(SQL_ERROR), exclusions=[exclusion], **otel.providers))
    assert "response_leak" not in otel.signal_types()
    assert otel.span().attributes["devsecmw.classification"] == "benign"


@pytest.mark.parametrize(
    "exclusion",
    [
        {"rules": ["951110"], "route": "/other"},
        {"rules": ["952110"]},
        {"rules": ["sqli"]},
        {"rules": ["*"], "location": "query:id"},
    ],
)
def test_exclusions_elsewhere_keep_the_leak(exclusion: dict[str, Any], otel: Any) -> None:
    _call(SecurityMiddleware(_app(SQL_ERROR), exclusions=[exclusion], **otel.providers))
    assert _fired(otel) == {"951110"}


def test_a_tag_no_rule_carries_is_still_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="no loaded rule carries that tag"):
        SecurityMiddleware(_app(b""), exclusions=[{"rules": ["tag:cwe=99999"]}])


# --------------------------------------------------------------------------- command line
def test_rules_list_shows_response_rules_with_their_phase(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "list", "--phase", "response.body", "--json"]) == 0
    docs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    packaged = {r.id for r in load_packaged() if r.type == "response_leak"}
    assert {d["id"] for d in docs} == packaged
    assert all(d["phases"] == ["response.body"] and d["ruleset"] == "devsecmw-response" for d in docs)
    assert main(["rules", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("951110 ") and " response.body " in line for line in lines)
    assert any(line.startswith("942102 ") and " request.body " in line for line in lines)


def test_rules_validate_checks_response_rules_and_their_examples(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = _file(tmp_path, RESPONSE_RULE, HEAD_RULE)
    assert main(["rules", "validate", good]) == 0
    assert "ok: " in capsys.readouterr().out
    bad = _file(tmp_path, {**RESPONSE_RULE, "examples": {"match": ["public build"]}}, name="bad.json")
    assert main(["rules", "validate", bad]) == 1
    assert "example does not match: 'public build'" in capsys.readouterr().err
    clash = _file(tmp_path, {**RESPONSE_RULE, "id": "951110"}, name="clash.json")
    assert main(["rules", "validate", clash]) == 1
    assert "duplicate id" in capsys.readouterr().err


def test_response_headers_may_be_any_iterable_of_pairs(tmp_path: Path) -> None:
    runner = ResponseRules(load_all([_file(tmp_path, HEAD_RULE)]))
    pairs = ((b"x-powered-by", b"PHP/5.6.40") for _ in range(2))
    assert [s.rule_id for s in runner.inspect(None, pairs)] == ["999200", "999200"]


@pytest.mark.internal_errors_expected
def test_a_failing_response_rule_costs_its_signals_not_the_verdict(
    monkeypatch: pytest.MonkeyPatch, otel: Any
) -> None:
    def broken(self: ResponseRules, body: Any, headers: Any = ()) -> list[Signal]:
        raise RuntimeError("response rules down")

    monkeypatch.setattr(ResponseRules, "inspect", broken)
    _call(
        SecurityMiddleware(_app(SQL_ERROR), **otel.providers),
        query=b"id=1%27%20UNION%20SELECT%20password%20FROM%20users--",
    )
    assert otel.span().attributes["devsecmw.classification"] == "attack"
    assert "response_leak" not in otel.signal_types()
    assert otel.error_count("response_rules", "RuntimeError") == 1


def test_secret_rules_never_show_their_match_in_any_phase(tmp_path: Path, otel: Any) -> None:
    request_rule = {
        "id": "999300",
        "name": "Local: an internal deploy key in a parameter",
        "type": "backdoor",
        "targets": ["args"],
        "operator": "rx",
        "value": "dk_[a-z0-9]{8}",
        "secret": True,
        "examples": {"match": ["dk_abcd1234"], "nomatch": ["dk_short"]},
    }
    path = _file(tmp_path, request_rule, {**RESPONSE_RULE, "secret": True})
    _call(
        SecurityMiddleware(_app(b"<p>internal build 7</p>"), rule_files=[path], **otel.providers),
        query=b"k=dk_abcd1234",
    )
    shown = {
        e["security_rule.uuid"]: e["devsecmw.signal.evidence"]
        for e in otel.events()
        if "security_rule.uuid" in e
    }
    assert shown == {"999300": "[redacted]", "999100": "[redacted]"}

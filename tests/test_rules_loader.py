"""Rule files are validated at start-up: errors name the file, the rule, the problem and the choices.

Users add rule files (``rule_files``), switch rules off by id (``disabled_rules``)
and exclude them per route, per location or per signal type (``exclusions``).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from devsecmw.asgi import SecurityMiddleware
from devsecmw.config import ConfigError
from devsecmw.engine import Engine
from devsecmw.engine.rules import RuleError, load_all, load_packaged, parse_rule

GOOD = {
    "id": "990100",
    "name": "Custom: internal debug switch",
    "type": "protocol",
    "targets": ["args.names"],
    "operator": "contains",
    "value": "__debug",
    "examples": {"match": ["x__debug"], "nomatch": ["debug"]},
}


def write(tmp_path: Path, rules: list[dict[str, Any]] | Any, name: str = "custom.json") -> str:
    p = tmp_path / name
    p.write_text(json.dumps({"ruleset": "acme", "rules": rules} if isinstance(rules, list) else rules))
    return str(p)


def test_packaged_rules_all_load_with_unique_ids() -> None:
    rules = load_packaged()
    assert len(rules) >= 30
    assert len({r.id for r in rules}) == len(rules)
    assert all(r.source.startswith("devsecmw/engine/rules/") for r in rules)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"type": "sqlinjection"}, "invalid type 'sqlinjection' (must be one of "),
        ({"targets": ["params"]}, "invalid target 'params' (must be one of "),
        ({"targets": []}, "targets must not be empty"),
        ({"transforms": ["urldecode"]}, "invalid transform name 'urldecode' (must be one of "),
        ({"operator": "regex"}, "invalid operator 'regex' (must be one of "),
        ({"operator": "rx", "value": "(unclosed"}, "operator 'rx': invalid pattern"),
        ({"operator": "rx", "value": "(?<=x)y"}, "operator 'rx': invalid pattern"),  # RE2: no look-behind
        ({"severity": "severe"}, "severe"),
        ({"paranoia": 7}, "invalid paranoia 7 (must be 1, 2, 3 or 4)"),
        ({"colour": "red"}, "unknown key 'colour' (allowed: "),
        ({"name": ""}, "missing or empty 'name'"),
        ({"examples": {"match": [], "maybe": []}}, "examples must be an object"),
    ],
)
def test_invalid_rule_names_file_rule_problem(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    path = write(tmp_path, [{**GOOD, **change}])
    with pytest.raises(RuleError) as err:
        load_all([path])
    text = str(err.value)
    assert text.startswith(f"{path}: rule '990100': ")
    assert message in text


def test_choices_are_listed(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match=r"url_decode.*lowercase|lowercase.*url_decode"):
        load_all([write(tmp_path, [{**GOOD, "transforms": ["nope"]}])])


def test_file_level_errors(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(RuleError, match=rf"^{broken}: not valid JSON"):
        load_all([str(broken)])
    with pytest.raises(RuleError, match="cannot read rule file"):
        load_all([str(tmp_path / "missing.json")])
    with pytest.raises(RuleError, match="must be an object with a 'rules' list"):
        load_all([write(tmp_path, {"rules": "no"}, "shape.json")])


def test_duplicate_id_names_both_files(tmp_path: Path) -> None:
    a = write(tmp_path, [GOOD], "a.json")
    b = write(tmp_path, [GOOD], "b.json")
    with pytest.raises(RuleError, match=r"b.json: rule '990100': duplicate id \(also in .*a.json\)"):
        load_all([a, b])
    packaged_id = load_packaged()[0].id
    with pytest.raises(RuleError, match="duplicate id"):
        load_all([write(tmp_path, [{**GOOD, "id": packaged_id}], "c.json")])


def test_user_rules_are_loaded_and_run(tmp_path: Path) -> None:
    path = write(tmp_path, [GOOD])
    engine = Engine(rules=load_all([path]))
    custom = [r for r in engine.rules if r.id == "990100"]
    assert custom and custom[0].ruleset == "acme" and custom[0].source == path
    assert custom[0].matches_value("?__debug=1")


def test_disabled_rules(tmp_path: Path) -> None:
    some = load_packaged()[0].id
    assert some not in {r.id for r in load_all(disabled=[some])}
    with pytest.raises(RuleError, match="disabled_rules: unknown rule id 'nope'"):
        load_all(disabled=["nope"])


def test_bad_rule_file_stops_the_middleware_at_start_up(tmp_path: Path) -> None:
    path = write(tmp_path, [{**GOOD, "operator": "regex"}])

    async def app(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover - never called
        raise AssertionError

    with pytest.raises(RuleError, match=r"custom.json: rule '990100': .*invalid operator 'regex'"):
        SecurityMiddleware(app, rule_files=[path])


def test_parse_rule_expands_aliases() -> None:
    r = parse_rule({**GOOD, "targets": ["args", "header:X-Api"]}, "t.json")
    assert r.targets == {"query", "body", "header:x-api"}
    assert r.phases == {"head", "body"}


# ---------------------------------------------------------------------------- exclusions
def drive(app: Any, target: bytes) -> None:
    path, _, qs = target.partition(b"?")
    scope = {"type": "http", "method": "GET", "path": path.decode(), "raw_path": path, "query_string": qs,
             "headers": [], "http_version": "1.1", "scheme": "http"}  # fmt: skip

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    async def main() -> None:
        await app(scope, receive, send)

    asyncio.run(main())


async def ok(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


ATTACK = b"/search?q=1%27%20UNION%20SELECT%20password%20FROM%20users--&page=%3Cscript%3Ealert(1)%3C/script%3E"


def types_seen(otel: Any, **options: Any) -> set[str]:
    otel.clear()
    drive(SecurityMiddleware(ok, time_budget=5.0, **options, **otel.providers), ATTACK)
    return {t for t in otel.signal_types()}


def test_exclusion_by_signal_type_location_and_route(otel: Any) -> None:
    assert {"sqli", "xss"} <= types_seen(otel)
    assert "sqli" not in types_seen(otel, exclusions=[{"rules": ["sqli"]}])
    by_location = types_seen(otel, exclusions=[{"location": "query:page"}])
    assert "xss" not in by_location and "sqli" in by_location
    assert "xss" not in types_seen(otel, exclusions=[{"rules": ["xss"], "location": "query:*"}])
    # A route exclusion applies to that route only (no framework route here: the path counts).
    assert "sqli" not in types_seen(otel, exclusions=[{"rules": ["sqli"], "route": "/search"}])
    assert "sqli" in types_seen(otel, exclusions=[{"rules": ["sqli"], "route": "/other"}])


def test_exclusion_by_rule_id(otel: Any) -> None:
    all_events = [e for e in (types_seen(otel) and otel.events()) if e["devsecmw.signal.type"] == "sqli"]
    ids = {str(e["security_rule.uuid"]) for e in all_events}
    assert ids
    remaining = types_seen(otel, exclusions=[{"rules": sorted(ids)}])
    assert "sqli" not in remaining


def test_bad_exclusion_fails_at_start_up() -> None:
    with pytest.raises(ConfigError, match="invalid exclusion key 'path'"):
        SecurityMiddleware(ok, exclusions=[{"path": "/x"}])

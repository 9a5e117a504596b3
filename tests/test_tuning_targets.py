"""Tuning by location and by tag: a rule narrowed to one named parameter, exclusions by rule tag.

- A rule may target a named location (``query:q``, ``cookie:theme``, ``body:json:comment.*``,
  ``body:form:bio``) instead of a whole family: it judges that parameter only, and the other
  parameters of the family stay out of its reach unless the family is named whole too.
- An exclusion may name rules by tag (``tag:cwe=89``, ``tag:crs_id``): expanded to the ids of
  the loaded rules that carry it when the middleware starts; a tag no rule carries stops the
  start, as any other bad option does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from devsecmw.config import Config, ConfigError
from devsecmw.core import Runtime
from devsecmw.engine import Engine
from devsecmw.engine.rules import RuleError, parse_rule
from devsecmw.request import from_asgi_scope


def _rule(targets: list[str], rid: str = "990010") -> dict[str, Any]:
    return {
        "id": rid,
        "name": "the word sweater",
        "type": "xss",
        "severity": "critical",
        "targets": targets,
        "transforms": [],
        "operator": "contains",
        "value": "sweater",
        "examples": {"match": ["red sweater"], "nomatch": ["shirt"]},
    }


def _engine(tmp_path: Path, *rules: dict[str, Any]) -> Engine:
    path = tmp_path / "rules.json"
    path.write_text(json.dumps({"ruleset": "test", "rules": list(rules)}))
    return Engine(Config(rule_files=(str(path),)))


def _fired(
    engine: Engine, query: bytes = b"", body: bytes = b"", ctype: bytes = b"", cookie: bytes = b""
) -> list[str]:
    headers = [(b"content-type", ctype)] if ctype else []
    if cookie:
        headers.append((b"cookie", cookie))
    request = from_asgi_scope({"type": "http", "path": "/", "query_string": query, "headers": headers})
    signals = engine.inspect(request, "head")
    if body:
        request.add_body(body, 65536)
        request.body_complete = True
        signals += engine.inspect(request, "body")
    return sorted(s.location for s in signals if s.rule_id == "990010")


@pytest.mark.parametrize(
    ("targets", "query", "body", "ctype", "cookie", "want"),
    [
        (["query:q"], b"q=sweater&x=sweater", b"", b"", b"", ["query:q"]),
        (["query:q"], b"x=sweater", b"", b"", b"", []),
        (["cookie:theme"], b"", b"", b"", b"theme=sweater; other=sweater", ["cookie:theme"]),
        (
            ["body:json:comment.*"],
            b"q=sweater",
            b'{"comment": {"text": "sweater", "by": "sweater"}, "title": "sweater"}',
            b"application/json",
            b"",
            ["body:json:comment.by", "body:json:comment.text"],
        ),
        (
            ["body:form:bio"],
            b"",
            b"bio=sweater&name=sweater",
            b"application/x-www-form-urlencoded",
            b"",
            ["body:form:bio"],
        ),
        # The family named whole beside one of its names: all of it.
        (["query", "query:q"], b"q=sweater&x=sweater", b"", b"", b"", ["query:q", "query:x"]),
        (["args", "query:q"], b"q=sweater&x=sweater", b"", b"", b"", ["query:q", "query:x"]),
    ],
)
def test_a_rule_narrowed_to_named_locations(
    tmp_path: Path,
    targets: list[str],
    query: bytes,
    body: bytes,
    ctype: bytes,
    cookie: bytes,
    want: list[str],
) -> None:
    engine = _engine(tmp_path, _rule(targets))
    assert _fired(engine, query, body, ctype, cookie) == want


def test_named_targets_are_validated_and_listed_in_the_error() -> None:
    with pytest.raises(RuleError, match=r"invalid target 'params:q'.*query:<name>, cookie:<name>"):
        parse_rule(_rule(["params:q"]), "test.json")
    with pytest.raises(RuleError, match="invalid target 'query:'"):
        parse_rule(_rule(["query:"]), "test.json")
    rule = parse_rule(_rule(["query:q", "header:x-custom"]), "test.json")
    assert rule.applies_to("query") and rule.applies_to("header:x-custom") and not rule.applies_to("cookies")
    assert rule.wants("query:q") and not rule.wants("query:x") and rule.wants("header:x-custom")


def test_exclusions_by_tag(otel: Any) -> None:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from devsecmw.asgi import SecurityMiddleware

    async def ok(request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/search", ok)])
    attack = {"q": "1' UNION SELECT password FROM users--"}
    xss = {"q": "<script>alert(1)</script>"}
    # CWE-89 is SQL injection: every rule tagged so goes quiet on query:q, nothing else does.
    mw = SecurityMiddleware(
        app, **otel.providers, exclusions=[{"rules": ["tag:cwe=89"], "location": "query:q"}]
    )
    with TestClient(mw) as client:
        client.get("/search", params=attack)
        client.get("/search", params=xss)
    first, second = otel.server_spans()
    assert "sqli" not in (first.attributes or {}).get("devsecmw.signal.types", ())
    assert "xss" in (second.attributes or {}).get("devsecmw.signal.types", ())
    runtime = Runtime.from_options(exclusions=[{"rules": ["tag:cwe=89", "941100"]}])
    expanded = runtime.exclusions[0].rules
    assert "941100" in expanded and "942100" in expanded
    assert all(
        r.tags.get("cwe") == "89" for r in runtime.detector.rules if r.id in expanded and r.id != "941100"
    )  # type: ignore[attr-defined]


def test_a_tag_no_rule_carries_stops_the_start() -> None:
    with pytest.raises(ConfigError, match=r"'tag:cwe=8999'.*no loaded rule carries that tag"):
        Runtime.from_options(exclusions=[{"rules": ["tag:cwe=8999"]}])

"""Hand-made rules and requests for the engine tests (``test_engine*.py``): rules built from
JSON like user rule files, so that each test shows one mechanism of the engine apart from
the packaged rule set."""

from __future__ import annotations

from typing import Any

from devsecmw.engine import Engine
from devsecmw.engine.rules import Rule, parse_rule
from devsecmw.request import HttpRequest


def rule(rid: str, value: str, targets: list[str], transforms: list[str] | None = None, **kw: Any) -> Rule:
    raw = {
        "id": rid,
        "name": f"test rule {rid}",
        "type": kw.pop("type", "sqli"),
        "targets": targets,
        "transforms": transforms or [],
        "operator": kw.pop("operator", "rx"),
        "value": value,
        **kw,
    }
    return parse_rule(raw, "test.json")


def get(target: str, headers: list[tuple[str, str]] | None = None) -> HttpRequest:
    path, _, qs = target.partition("?")
    return HttpRequest("GET", target, path, query_string=qs, headers=headers or [])


def post(body: bytes, ctype: str) -> HttpRequest:
    req = HttpRequest("POST", "/p", "/p", headers=[("content-type", ctype)])
    req.add_body(body, 1 << 20)
    req.body_complete = True
    return req


def found(engine: Engine, req: HttpRequest) -> set[tuple[str | None, str]]:
    sigs = engine.inspect(req, "head") + engine.inspect(req, "body")
    return {(s.rule_id, s.location) for s in sigs}

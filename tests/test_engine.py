"""The engine on hand-made rules: what it finds, where, and what it never does.

Rules here are built from JSON like user rule files, so each test shows the
engine's behaviour on one mechanism (joined scans, anchors, views, the time
budget) independently of the packaged rule set. Planning and caching have their
own files (``test_engine_plan.py``, ``test_engine_cache.py``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from engine_helpers import found, get, post, rule

from devsecmw.asgi import SecurityMiddleware
from devsecmw.config import Config
from devsecmw.engine import Budget, Engine
from devsecmw.engine.rules import Rule, RuleError
from devsecmw.request import HttpRequest, from_asgi_scope
from devsecmw.signals import Signal


# ---------------------------------------------------------------------------- what is found
def test_signal_carries_rule_location_and_evidence() -> None:
    e = Engine(rules=[rule("900001", r"union\s+select", ["args"], ["url_decode", "lowercase"])])
    sigs = e.inspect(get("/?q=ok&id=1%20UNION%20SELECT%20pw"), "head")
    assert len(sigs) == 1
    s = sigs[0]
    assert (s.rule_id, s.rule_name, s.type, s.location) == ("900001", "test rule 900001", "sqli", "query:id")
    assert "union select" in s.evidence  # the evidence is taken from the rule's own view


@pytest.mark.parametrize("position", [0, 1, 5])
def test_anchored_rule_matches_every_value_not_only_the_first(position: int) -> None:
    e = Engine(rules=[rule("900002", r"^\.\./", ["args"])])
    params = ["a=x", "b=y", "c=z", "d=w", "e=v", "f=u"]
    params[position] = params[position][:2] + "../etc"
    assert found(e, get("/?" + "&".join(params))) == {("900002", "query:" + params[position][0])}


def test_anchored_rule_does_not_match_inside_a_value() -> None:
    e = Engine(rules=[rule("900003", r"^admin$", ["args"])])
    assert found(e, get("/?a=x&b=notadmin&c=admins")) == set()
    assert found(e, get("/?a=x&b=admin")) == {("900003", "query:b")}


def test_a_match_spanning_two_values_is_no_signal() -> None:
    # "union" ends one value and "select" starts the next: joined, the prefilter sees both.
    e = Engine(rules=[rule("900004", r"union.{0,5}select", ["args"])])
    assert found(e, get("/?a=1+union&b=select+2")) == set()
    assert found(e, get("/?a=1+union+select+2")) == {("900004", "query:a")}


def test_a_prefilter_seen_in_another_key_is_no_signal() -> None:
    # The header holds the pattern; the rule only targets query values.
    e = Engine(rules=[rule("900005", "evil", ["args"])])
    req = get("/?a=fine", headers=[("user-agent", "evil-bot"), ("referer", "http://x/evil")])
    assert found(e, req) == set()


def test_each_rule_sees_its_own_view() -> None:
    rules = [
        rule("900006", "<script", ["args"], ["url_decode"]),  # needs decoding
        rule("900007", "%3cscript", ["args"], ["lowercase"]),  # sees the raw escapes
    ]
    e = Engine(rules=rules)
    # The query parser decodes once: a double-encoded value still holds "%3C" to look at.
    assert found(e, get("/?a=%253Cscript%253E")) == {("900006", "query:a"), ("900007", "query:a")}
    assert found(e, get("/?a=<script>")) == {("900006", "query:a")}


def test_repeated_values_each_get_their_signal() -> None:
    e = Engine(rules=[rule("900008", "attack", ["body"])])
    body = b'{"items": [{"n": "attack"}, {"n": "ok"}, {"n": "attack"}]}'
    locs = {loc for _, loc in found(e, post(body, "application/json"))}
    assert locs == {"body:json:items[0].n", "body:json:items[2].n"}


def test_non_ascii_evidence_offsets() -> None:
    e = Engine(rules=[rule("900009", "select", ["args"])])
    sigs = e.inspect(get("/?a=" + "é" * 20 + "select"), "head")
    assert sigs and sigs[0].evidence.endswith("select")


def test_lone_surrogate_never_breaks_a_scan() -> None:
    e = Engine(rules=[rule("900010", "<script", ["args"], ["js_decode"])])
    sigs = e.inspect(get("/?a=\\ud800<script>"), "head")
    assert [s.rule_id for s in sigs] == ["900010"]


def test_header_rules_specific_and_generic() -> None:
    rules = [
        rule("900011", "sqlmap", ["header:user-agent"], type="scanner"),
        rule("900012", "inject", ["headers"], exclude=["header:referer"]),
    ]
    e = Engine(rules=rules)
    req = get("/", headers=[("user-agent", "sqlmap/1.7"), ("x-custom", "inject"), ("referer", "inject")])
    assert found(e, req) == {("900011", "header:user-agent"), ("900012", "header:x-custom")}


def test_invalid_utf8_rule_fires_only_on_invalid_values() -> None:
    e = Engine(rules=[rule("900013", "", ["args"], operator="invalid_utf8", type="not_utf8")])
    assert found(e, get("/?a=%C3%A9")) == set()
    assert found(e, get("/?a=%FF%FE")) == {("900013", "query:a")}


# ---------------------------------------------------------------------------- budget
class FakeClock:
    def __init__(self, step: float) -> None:
        self.now = 0.0
        self.step = step
        self.calls = 0

    def __call__(self) -> float:
        self.calls += 1
        self.now += self.step
        return self.now


def many_rules(n: int) -> list[Rule]:
    return [rule(f"90{i:04d}", "needle", ["args"]) for i in range(n)]


def test_budget_stops_inspection_and_says_so() -> None:
    e = Engine(rules=many_rules(20))
    req = get("/?a=needle")
    clock = FakeClock(step=1.0)  # every look at the clock: one second later
    budget = Budget(deadline=3.0, clock=clock)
    sigs = e.inspect(req, "head", budget)
    assert budget.exhausted
    assert len(sigs) < 20  # stopped early
    assert clock.calls < 10
    unlimited = e.inspect(get("/?a=needle"), "head", Budget(deadline=float("inf")))
    assert len(unlimited) == 20


def test_exhausted_budget_caches_nothing() -> None:
    e = Engine(rules=[rule("900017", "evil", ["headers"])])
    e.inspect(get("/", headers=[("accept", "text/html")]), "head", Budget(deadline=-1.0))
    assert len(e.clean_values) == 0


class SlowDetector:
    """Takes one second of (fake) CPU and wall time per look and checks the budget like the engine does."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock

    def inspect(self, request: HttpRequest, phase: str, budget: Budget | None = None) -> list[Signal]:
        assert budget is not None
        budget.clock = budget.cpu_clock = self.clock
        self.clock.now += 1.0
        budget.expired()
        return []


def run_asgi(app: Callable[..., Any], target: bytes) -> None:
    path, _, qs = target.partition(b"?")
    scope = {"type": "http", "method": "GET", "path": path.decode(), "raw_path": path, "query_string": qs,
             "headers": [], "http_version": "1.1", "scheme": "http"}  # fmt: skip
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 200  # fail open: the app answered as if devsecmw were absent


async def ok_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def test_middleware_counts_an_exhausted_budget(otel: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock(step=0.0)
    monkeypatch.setattr("devsecmw.core._perf", clock)
    monkeypatch.setattr("devsecmw.core._cpu", clock)
    app = SecurityMiddleware(ok_app, detector=SlowDetector(clock), time_budget=0.5, **otel.providers)
    run_asgi(app, b"/?a=1")
    assert otel.span().attributes["devsecmw.inspection.incomplete"] is True
    errors = otel.metric_points("devsecmw.errors")
    assert any(a.get("error.type") == "time_budget" for a, _ in errors)


# ---------------------------------------------------------------------------- joined scans
def test_value_holding_the_separator_is_still_found() -> None:
    e = Engine(rules=[rule("900022", "^[^a-z]$", ["args"])])
    assert found(e, get("/?a=abc&b=%EF%BF%BF&c=def")) == {("900022", "query:b")}


def test_prefilter_naming_the_separator_is_rejected() -> None:
    with pytest.raises(RuleError, match="reserved"):
        Engine(rules=[rule("900023", "a\\x{FFFF}", ["args"])])


def test_long_view_of_one_chain_is_scanned_by_that_chains_rules() -> None:
    rules = [
        rule("900026", "cat/etc/passwd", ["args"], ["cmd_line"], type="cmdi"),
        rule("900027", "c'a't", ["args"]),
        rule("900028", "^x{3}", ["args"], ["lowercase"]),
    ]
    e = Engine(rules=rules)
    pad = "y" * 2000
    # The cmd_line view of the long value is its own text: scanned by 900026 alone.
    assert found(e, get(f"/?a={pad}c'a't%20/etc/passwd")) == {("900026", "query:a"), ("900027", "query:a")}
    # One long text, the plain view of one value and the lowercase view of another: by all.
    assert found(e, get(f"/?a=xxx{pad}&b=XXX{pad}")) == {("900028", "query:a"), ("900028", "query:b")}


@pytest.mark.parametrize("mix", ["form", "name", "json", "text"])
def test_split_scans_find_what_one_scan_finds(mix: str) -> None:
    # Per-chain scans of long texts and the body's raw text reusing its field's scan: the
    # same signals as every text scanned by every rule of its group.
    e = Engine()
    unit = "'/*<a \"||(select ../ ${jndi: %2e%2e <svg on c\\at /etc/pa's's'wd union select 1;"
    text = unit * 40
    bodies = {"form": f"q={text}&r=1", "name": text, "json": json.dumps({"q": text, "r": [text[::-1]]})}
    body = bodies.get(mix, text)
    form = "application/x-www-form-urlencoded"
    ctype = {"json": "application/json", "text": "text/plain"}.get(mix, form)
    fast = found(e, post(body.encode(), ctype))
    saved = [(g, g.by_chain, g.after) for ph in e._phases.values() for g in ph.groups]
    try:
        for g, _, _ in saved:
            g.by_chain, g.after = {}, None
        e.clean_bodies.clear()
        assert found(e, post(body.encode(), ctype)) == fast
    finally:
        for g, by_chain, after in saved:
            g.by_chain, g.after = by_chain, after
    assert fast


def test_paranoia_level_selects_rules() -> None:
    rules = [rule("900019", "x", ["args"]), rule("900020", "x", ["args"], paranoia=2)]
    assert {r for r, _ in found(Engine(rules=rules), get("/?a=x"))} == {"900019"}
    high = Engine(Config(paranoia_level=2), rules=rules)
    assert {r for r, _ in found(high, get("/?a=x"))} == {"900019", "900020"}


def test_request_built_from_scope_is_inspected() -> None:
    e = Engine(rules=[rule("900021", "drop table", ["args"], ["url_decode_uni", "lowercase"])])
    req = from_asgi_scope(
        {"type": "http", "method": "GET", "path": "/", "query_string": b"q=%u0044ROP%20TABLE"}
    )
    assert found(e, req) == {("900021", "query:q")}

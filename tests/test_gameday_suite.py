"""The game-day suite: every category, each payload classified right by the engine, harmless,
tagged with the run id; and devsecmw putting a well-formed run id on the span."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest

from devsecmw import ATTACK_TYPES
from devsecmw.cli import request_from_row
from devsecmw.config import Config
from devsecmw.engine import Engine
from devsecmw.gameday import suite
from devsecmw.scoring import decide
from devsecmw.telemetry import ATTR_GAMEDAY_RUN_ID, gameday_run_id

RUN_ID = "gd-20250101T000000-abc123"


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(Config.from_options({}))


def _request(probe: suite.Probe) -> Any:
    """The request as the sender puts it on the wire (default headers first, then the probe's)."""
    headers = {"host": "127.0.0.1:8000", "user-agent": suite.USER_AGENT, "accept": "application/json"}
    for k, v in probe.headers:
        headers[k.lower()] = v
    headers["traceparent"] = probe.traceparent()
    if probe.body:
        headers["content-type"] = "application/x-www-form-urlencoded"
    row = {"method": probe.method, "uri": probe.target, "headers": list(headers.items())}
    return request_from_row(row)


def test_every_attack_category_has_payloads() -> None:
    assert set(suite.payloads()) == ATTACK_TYPES
    probes = suite.build(RUN_ID, "/search", burst=3)
    assert {p.category for p in probes} == ATTACK_TYPES | {suite.BURST_404, suite.BURST_AUTH}


@pytest.mark.parametrize("path", ["/", "/search", "/api/v1/items/"])
def test_each_attack_probe_is_classified_as_its_category(engine: Engine, path: str) -> None:
    config = Config.from_options({})
    for probe in suite.build(RUN_ID, path, burst=2):
        request, _ = _request(probe)
        signals = engine.inspect(request, "head")
        types = {s.type for s in signals}
        if probe.category in ATTACK_TYPES:
            assert probe.category in types, (probe.category, probe.target, types)
            assert decide(signals, config).classification == "attack"
        else:  # the bursts are ordinary requests: what makes them anomalies is the answer
            assert not types & ATTACK_TYPES - {"scanner"}, (probe.target, types)


def test_the_run_tag_alone_raises_nothing(engine: Engine) -> None:
    probe = suite.Probe("none", "GET", f"/search?q=shirt&{suite.PARAM}={RUN_ID}.7", ((suite.HEADER, RUN_ID),))
    request, _ = _request(probe)
    assert engine.inspect(request, "head") == []


def test_every_request_carries_the_run_id_and_its_own_trace() -> None:
    probes = suite.build(RUN_ID, "/search", burst=4)
    assert [p.seq for p in probes] == list(range(1, len(probes) + 1))
    assert len({p.trace_id for p in probes}) == len(probes)
    for p in probes:
        assert (suite.HEADER, RUN_ID) in p.headers
        query = dict(parse_qsl(urlsplit(p.target).query))
        assert query[suite.PARAM] == f"{RUN_ID}.{p.seq}"
        assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", p.traceparent())
    assert sum(p.category == "scanner" for p in probes) == 4 + len(suite.payloads()["scanner"])


# Words that would make a payload do harm if a vulnerable app ran it.
HARMFUL = re.compile(
    r"\b(?:rm|mkfs|dd|shutdown|reboot|kill|wget|curl|nc|bash|sh|chmod|chown|drop|delete|update|insert|"
    r"truncate|alter|sleep|benchmark|waitfor|flushall|unlink|rmdir|writefile|writefilesync)\b|>\s*/",
    re.IGNORECASE,
)
URL = re.compile(
    r"(?:https?|ftps?|gopher|ldaps?|dns|rmi|dict|iiop|corba|nis|nds)://([^/?#\s'\"]*)", re.IGNORECASE
)


def test_payloads_are_harmless() -> None:
    """No destructive command or SQL, no reachable host, nothing stored (GET only, auth aside)."""
    for p in suite.build(RUN_ID, "/", burst=2, auth_path="/login"):
        # A scanner's User-Agent names its home page: a label, never fetched by anyone.
        text = unquote(p.target) + " " + " ".join(v for k, v in p.headers if k.lower() != "user-agent")
        assert not HARMFUL.search(text), (p.category, text)
        for host in URL.findall(text):
            name = host.rsplit("@", 1)[-1]
            name, _, port = name.rpartition(":") if name.count(":") == 1 else (name, "", "")
            assert name.endswith(".invalid") or (name in ("127.0.0.1", "[::1]") and port == "0"), text
        assert "169.254" not in text and "metadata" not in text
        assert p.method == "GET" or (p.category == suite.BURST_AUTH and p.method == "POST")


def test_auth_burst_posts_a_login_form_only_when_a_path_is_named() -> None:
    plain = [p for p in suite.build(RUN_ID, "/", burst=2) if p.category == suite.BURST_AUTH]
    login = [
        p for p in suite.build(RUN_ID, "/", burst=2, auth_path="/login") if p.category == suite.BURST_AUTH
    ]
    assert all(p.method == "GET" and not p.body and p.target.startswith("/?") for p in plain)
    assert all(
        p.method == "POST" and p.body == suite.AUTH_FORM and p.target.startswith("/login?") for p in login
    )


@pytest.mark.parametrize("bad", ["", "-x", "a b", "a" * 65, "x/y", "ünïcode", "a,b"])
def test_invalid_run_ids_and_paths_are_refused(bad: str) -> None:
    assert not suite.valid_run_id(bad)
    with pytest.raises(ValueError, match="invalid run id"):
        suite.build(bad)
    with pytest.raises(ValueError, match="must start with '/'"):
        suite.build(RUN_ID, "search")


def test_new_run_ids_are_valid_and_distinct() -> None:
    ids = {suite.new_run_id() for _ in range(20)}
    assert len(ids) == 20 and all(suite.valid_run_id(i) for i in ids)


# --------------------------------------------------------------------------- on the span
def _flask_client(otel: Any) -> Any:
    from flask import Flask

    from devsecmw.wsgi import SecurityMiddleware

    app = Flask("gameday")
    app.add_url_rule("/search", "search", lambda: "ok")
    app.wsgi_app = SecurityMiddleware(app.wsgi_app, **otel.providers, time_budget=1.0)  # type: ignore[method-assign]
    return app.test_client()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (RUN_ID, RUN_ID),
        ("run.1_A-b", "run.1_A-b"),
        (None, None),
        ("", None),
        ("a" * 65, None),
        ("<script>", None),
        ("run id", None),
        ("-leading", None),
    ],
)
def test_devsecmw_puts_a_well_formed_run_id_on_the_span(
    otel: Any, header: str | None, expected: str | None
) -> None:
    client = _flask_client(otel)
    headers = {suite.HEADER: header} if header is not None else {}
    resp = client.get("/search?q=shirt", headers=headers)
    assert resp.status_code == 200 and resp.data == b"ok"  # read to the end: the span ends
    assert otel.span().attributes.get(ATTR_GAMEDAY_RUN_ID) == expected


def test_a_repeated_run_id_header_is_ignored(otel: Any) -> None:
    client = _flask_client(otel)
    assert client.get("/search", headers=[(suite.HEADER, "one"), (suite.HEADER, "two")]).data == b"ok"
    assert ATTR_GAMEDAY_RUN_ID not in otel.span().attributes


def test_the_run_id_never_reaches_the_metrics(otel: Any) -> None:
    client = _flask_client(otel)
    assert client.get("/search", headers={suite.HEADER: RUN_ID}).data == b"ok"
    assert otel.span().attributes[ATTR_GAMEDAY_RUN_ID] == RUN_ID
    points = [
        attrs
        for n in ("devsecmw.requests", "devsecmw.inspection.duration")
        for attrs, _ in otel.metric_points(n)
    ]
    assert points and not any(RUN_ID in attrs.values() for attrs in points)


def test_gameday_run_id_reads_the_request_header() -> None:
    request, _ = request_from_row({"uri": "/", "headers": [["X-Devsecmw-Gameday", RUN_ID]]})
    assert gameday_run_id(request) == RUN_ID
    request, _ = request_from_row({"uri": "/", "headers": []})
    assert gameday_run_id(request) is None

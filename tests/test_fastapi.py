"""FastAPI behind devsecmw, driven the way FastAPI users test their apps.

Every request goes to two copies of the same app, one with devsecmw added,
through ``httpx.AsyncClient(transport=httpx.ASGITransport(app))`` and through
Starlette's ``TestClient``; the responses must be identical (status, raw
headers, body). Function middleware (``@app.middleware("http")``) sits above
and below devsecmw (PITFALLS 1: "No response returned", dd-trace-py #14306).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

import httpx
import pytest
from asgi_harness import (
    TestClient,
    steady_time_budget,  # noqa: F401  (autouse: load-independent detection)
)
from fastapi import APIRouter, BackgroundTasks, FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import PlainTextResponse, StreamingResponse
from pydantic import BaseModel
from starlette.responses import Response

from devsecmw.asgi import SecurityMiddleware

SQLI = "1' UNION SELECT password FROM users--"
Call = Callable[[Request], Awaitable[Response]]


class Item(BaseModel):
    name: str
    price: float
    tags: list[str] = []


def build(otel: Any, devsecmw: bool, function_mw: str | None = None, log: list[str] | None = None) -> FastAPI:
    """The app; ``function_mw`` puts an ``@app.middleware("http")`` "above" or "below" devsecmw."""
    app = FastAPI()
    ran = log if log is not None else []
    router = APIRouter(prefix="/v1/things")

    @router.get("/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        return {"thing": thing_id}

    @app.get("/items/{item_id}")
    async def read_item(item_id: int, q: str | None = None) -> dict[str, Any]:
        return {"item_id": item_id, "q": q}

    @app.post("/items", status_code=201)
    async def create_item(item: Item) -> Item:
        return item

    @app.post("/upload")
    async def upload(note: Annotated[str, Form()], file: Annotated[UploadFile, File()]) -> dict[str, Any]:
        data = await file.read()
        return {"note": note, "name": file.filename, "sha": hashlib.sha256(data).hexdigest()}

    @app.post("/raw")
    async def raw(request: Request) -> dict[str, int]:
        return {"len": len(await request.body())}

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def gen() -> AsyncIterator[bytes]:
            for i in range(4):
                yield b"line %d\n" % i

        return StreamingResponse(gen(), media_type="text/plain")

    @app.post("/jobs", status_code=202)
    async def job(background: BackgroundTasks) -> dict[str, str]:
        background.add_task(ran.append, "background")
        return {"status": "queued"}

    @app.get("/admin")
    async def admin() -> None:
        raise HTTPException(status_code=403, detail="forbidden")

    @app.get("/crash")
    async def crash() -> None:
        raise ZeroDivisionError("division by zero in the app")

    @app.get("/limited")
    async def limited() -> PlainTextResponse:
        return PlainTextResponse("slow down", status_code=429, headers={"retry-after": "3"})

    app.include_router(router)

    async def function_middleware(request: Request, call_next: Call) -> Response:
        if request.method == "POST":
            await request.body()  # the kind that used to break WAFs wrapping receive
        response = await call_next(request)
        response.headers["x-function-mw"] = "1"
        ran.append("function middleware")
        return response

    # add_middleware / @app.middleware put the latest addition outermost.
    if function_mw == "below":
        app.middleware("http")(function_middleware)
    if devsecmw:
        app.add_middleware(SecurityMiddleware, **otel.providers)
    if function_mw == "above":
        app.middleware("http")(function_middleware)
    return app


Request_ = tuple[str, str, dict[str, Any]]
REQUESTS: list[Request_] = [
    ("GET", "/items/42", {"params": {"q": SQLI}}),
    ("GET", "/items/not-a-number", {}),
    ("POST", "/items", {"json": {"name": "<script>alert(1)</script>", "price": 1.5, "tags": ["a", "b"]}}),
    ("POST", "/items", {"content": b"{not json", "headers": {"content-type": "application/json"}}),
    ("POST", "/upload", {"data": {"note": "hi"}, "files": {"file": ("r.bin", bytes(range(256)) * 2000)}}),
    ("POST", "/raw", {}),
    ("POST", "/raw", {"content": b"", "headers": {"content-length": "0"}}),
    ("POST", "/raw", {"content": b"x" * 300_000}),
    ("GET", "/stream", {}),
    ("POST", "/jobs", {}),
    ("GET", "/admin", {}),
    ("GET", "/limited", {}),
    ("GET", "/v1/things/abc-123", {}),
    ("GET", "/nowhere", {}),
    ("HEAD", "/items/1", {}),
]


def served(r: httpx.Response) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    return r.status_code, list(r.headers.raw), r.content


async def via_httpx(app: FastAPI, requests: list[Request_]) -> list[Any]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return [served(await client.request(m, p, **kw)) for m, p, kw in requests]


def via_testclient(app: FastAPI, requests: list[Request_]) -> list[Any]:
    with TestClient(app) as client:
        return [served(client.request(m, p, **kw)) for m, p, kw in requests]


@pytest.mark.parametrize("function_mw", [None, "above", "below"])
def test_httpx_asgi_transport_responses_are_unchanged(otel: Any, function_mw: str | None) -> None:
    bare = asyncio.run(via_httpx(build(otel, False, function_mw), REQUESTS))
    wrapped = asyncio.run(via_httpx(build(otel, True, function_mw), REQUESTS))
    assert wrapped == bare
    assert [r[0] for r in bare] == [200, 422, 201, 422, 200, 200, 200, 200, 200, 202, 403, 429, 200, 404, 405]
    assert len(otel.server_spans()) == len(REQUESTS)


@pytest.mark.parametrize("function_mw", [None, "above", "below"])
def test_testclient_responses_are_unchanged(otel: Any, function_mw: str | None) -> None:
    bare = via_testclient(build(otel, False, function_mw), REQUESTS)
    wrapped = via_testclient(build(otel, True, function_mw), REQUESTS)
    assert wrapped == bare
    assert len(otel.server_spans()) == len(REQUESTS)


def test_route_templates_and_signals(otel: Any) -> None:
    asyncio.run(via_httpx(build(otel, True), REQUESTS))
    spans = {(s.attributes["http.request.method"], s.attributes["url.path"]): s for s in otel.server_spans()}
    assert spans[("GET", "/items/42")].name == "GET /items/{item_id}"
    assert "sqli" in spans[("GET", "/items/42")].attributes["devsecmw.signal.types"]
    assert spans[("POST", "/items")].name == "POST /items"
    assert spans[("GET", "/v1/things/abc-123")].attributes["http.route"] == "/v1/things/{thing_id}"
    assert set(spans[("GET", "/admin")].attributes["devsecmw.signal.types"]) == {"auth_failure"}
    assert set(spans[("GET", "/limited")].attributes["devsecmw.signal.types"]) == {"rate_limited"}
    assert set(spans[("GET", "/nowhere")].attributes["devsecmw.signal.types"]) == {"http_404"}
    assert spans[("GET", "/nowhere")].name == "GET"
    xss = [s for s in otel.server_spans() if "xss" in s.attributes["devsecmw.signal.types"]]
    assert xss and xss[0].attributes["http.route"] == "/items"


def test_background_tasks_run(otel: Any) -> None:
    log: list[str] = []
    with TestClient(build(otel, True, "above", log)) as client:
        assert client.post("/jobs").status_code == 202
    assert "background" in log and "function middleware" in log
    assert otel.span().attributes["http.response.status_code"] == 202


@pytest.mark.parametrize("function_mw", [None, "above", "below"])
def test_unhandled_exception_is_the_apps(otel: Any, function_mw: str | None) -> None:
    """The same exception type reaches the client library; the status signal is recorded."""
    for devsecmw in (False, True):
        app = build(otel, devsecmw, function_mw)
        with pytest.raises(ZeroDivisionError, match="division by zero in the app"):
            asyncio.run(via_httpx(app, [("GET", "/crash", {"params": {"q": SQLI}})]))
    assert {"http_5xx", "sqli", "attack_5xx"} <= otel.signal_types()


def test_unhandled_exception_as_500_page(otel: Any) -> None:
    pages = []
    for devsecmw in (False, True):
        with TestClient(build(otel, devsecmw), raise_server_exceptions=False) as client:
            pages.append(served(client.get("/crash")))
    assert pages[0] == pages[1] and pages[0][0] == 500
    assert "http_5xx" in otel.signal_types()

"""End to end on real servers (PITFALLS 8): uvicorn, and gunicorn with uvicorn workers.

A small Starlette app behind devsecmw is served on 127.0.0.1 (a free port
chosen by the OS), driven by httpx with a bounded number of requests, and
always shut down. The responses must equal those of the same app without
devsecmw, and the signals must reach the exporter.

- uvicorn in a thread of this process (``uvicorn.Server``): the in-memory SDK
  of the test sees the spans directly.
- uvicorn and gunicorn (``-k uvicorn_worker.UvicornWorker``) as subprocesses on
  an inherited listening socket, serving both apps (by Host header): the app
  configures the SDK with a span exporter that appends each finished span's
  route and signal types to a file.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from asgi_harness import steady_time_budget  # noqa: F401  (autouse: load-independent detection)
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

import devsecmw
from devsecmw.asgi import SecurityMiddleware

pytestmark = pytest.mark.e2e
STARTUP_TIMEOUT = 15.0
SQLI = "1' UNION SELECT password FROM users--"

# (method, path, query, body): the same bounded set of requests for every server.
REQUESTS: list[tuple[str, str, dict[str, str], bytes | None]] = [
    ("GET", "/items/42", {"q": "garden chairs"}, None),
    ("GET", "/items/43", {"q": SQLI}, None),
    ("POST", "/echo", {}, b'{"comment": "<script>alert(document.cookie)</script>"}'),
    ("POST", "/echo", {}, bytes(range(256)) * 1024),  # 256 KiB: far over the cap
    ("POST", "/echo", {}, b""),
    ("GET", "/stream", {}, None),
    ("GET", "/fail", {"id": SQLI}, None),
    ("GET", "/admin", {}, None),
    ("GET", "/nowhere/xyz", {}, None),
    ("HEAD", "/items/1", {}, None),
]
EXPECTED_STATUS = [200, 200, 200, 200, 200, 200, 500, 403, 404, 200]


# --------------------------------------------------------------------------- the app
async def item(request: Request) -> Response:
    return JSONResponse({"item": request.path_params["item_id"], "q": request.query_params.get("q")})


async def echo(request: Request) -> Response:
    body = await request.body()
    return Response(body, media_type=request.headers.get("content-type", "application/octet-stream"))


async def stream(request: Request) -> Response:
    async def events() -> AsyncIterator[str]:
        for i in range(5):
            yield f"data: {i}\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


async def fail(request: Request) -> Response:
    return PlainTextResponse("database unavailable", status_code=500)


async def admin(request: Request) -> Response:
    return PlainTextResponse("forbidden", status_code=403)


ROUTES = [
    Route("/items/{item_id}", item, methods=["GET", "HEAD"]),
    Route("/echo", echo, methods=["POST"]),
    Route("/stream", stream),
    Route("/fail", fail),
    Route("/admin", admin),
]


def make_app(**devsecmw_options: Any) -> Starlette:
    middleware = [Middleware(SecurityMiddleware, **devsecmw_options)] if devsecmw_options else []
    return Starlette(routes=ROUTES, middleware=middleware)


# --------------------------------------------------------------------------- helpers
def listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = STARTUP_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def exchange(base_url: str, host: str | None = None) -> list[tuple[int, list[tuple[str, str]], bytes]]:
    out = []
    headers = {"host": host} if host else {}
    with httpx.Client(base_url=base_url, timeout=10.0, headers=headers) as client:
        for method, path, params, body in REQUESTS:
            r = client.request(method, path, params=params, content=body)
            # The Date header is the server's clock, not the app's response.
            headers_out = [(k, v) for k, v in r.headers.multi_items() if k.lower() != "date"]
            out.append((r.status_code, headers_out, r.content))
    return out


@contextmanager
def uvicorn_thread(app: Any) -> Iterator[str]:
    sock = listening_socket()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started or not thread.is_alive(), "uvicorn to start")
        assert server.started, "uvicorn failed to start"
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
    assert not thread.is_alive()


# --------------------------------------------------------------------------- uvicorn, in process
def test_uvicorn_in_process(otel: Any) -> None:
    with uvicorn_thread(make_app()) as url:
        bare = exchange(url)
    with uvicorn_thread(make_app(**otel.providers)) as url:
        wrapped = exchange(url)
        wait_until(lambda: len(otel.server_spans()) >= len(REQUESTS), "spans")
    assert wrapped == bare
    assert [r[0] for r in bare] == EXPECTED_STATUS
    assert bare[3][2] == bytes(range(256)) * 1024
    assert bare[5][2] == b"".join(b"data: %d\n\n" % i for i in range(5))

    spans = otel.server_spans()
    assert len(spans) == len(REQUESTS)
    types = [set(s.attributes["devsecmw.signal.types"]) for s in spans]
    assert any("sqli" in t and "http_5xx" not in t for t in types)
    assert any({"sqli", "http_5xx", "attack_5xx"} <= t for t in types)
    assert any("xss" in t for t in types)
    assert any(t == {"auth_failure"} for t in types)
    assert any(t == {"http_404"} for t in types)
    names = {"GET /items/{item_id}", "HEAD /items/{item_id}", "POST /echo", "GET /stream", "GET /fail"}
    assert {s.name for s in spans} <= names | {"GET /admin", "GET"}
    # Every request got its own trace: no span leaked into the next keep-alive request.
    assert len({s.context.trace_id for s in spans}) == len(REQUESTS)
    assert all(s.parent is None for s in spans)
    for s in spans:
        assert s.attributes["client.address"] == "127.0.0.1"
        assert s.attributes["url.scheme"] == "http"


# --------------------------------------------------------------------------- servers as subprocesses
APP_MODULE = '''
"""The e2e app, run by a real server in a subprocess; finished spans are appended to a file."""
import json
import os

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from test_e2e_uvicorn import make_app


class FileExporter(SpanExporter):
    def export(self, spans):
        with open(os.environ["DEVSECMW_E2E_SPANS"], "a", encoding="utf-8") as fh:
            for span in spans:
                attrs = span.attributes or {}
                fh.write(json.dumps({
                    "name": span.name,
                    "kind": span.kind.name,
                    "pid": os.getpid(),
                    "route": attrs.get("http.route"),
                    "status": attrs.get("http.response.status_code"),
                    "types": list(attrs.get("devsecmw.signal.types", ())),
                    "events": [e.attributes.get("devsecmw.signal.type") for e in span.events
                               if e.name == "devsecmw.signal"],
                }) + "\\n")
        return SpanExportResult.SUCCESS


provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(FileExporter()))
bare = make_app()
wrapped = make_app(tracer_provider=provider)


async def app(scope, receive, send):
    """One server, two apps: Host "bare.test" gets the app without devsecmw."""
    host = dict(scope.get("headers") or ()).get(b"host", b"")
    target = bare if host.startswith(b"bare.test") else wrapped
    await target(scope, receive, send)
'''


def server_command(kind: str, fd: int) -> list[str]:
    if kind == "uvicorn":
        return [sys.executable, "-m", "uvicorn", "--fd", str(fd), "--log-level", "warning", "e2e_app:app"]
    gunicorn = [sys.executable, "-m", "gunicorn", "-k", "uvicorn_worker.UvicornWorker", "-w", "1"]
    return [*gunicorn, "--bind", f"fd://{fd}", "--log-level", "warning", "e2e_app:app"]


@contextmanager
def subprocess_server(kind: str, workdir: Path, spans_file: Path) -> Iterator[str]:
    sock = listening_socket()
    env = dict(os.environ)
    tests_dir = Path(__file__).resolve().parent
    # The devsecmw under test (this checkout), whatever the environment has installed.
    package_root = Path(devsecmw.__file__).resolve().parents[1]
    paths = [str(workdir), str(tests_dir), str(package_root), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    env["DEVSECMW_E2E_SPANS"] = str(spans_file)
    log = workdir / f"{kind}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            server_command(kind, sock.fileno()),
            cwd=workdir,
            env=env,
            pass_fds=(sock.fileno(),),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:

        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"{kind} exited early:\n{log.read_text(errors='replace')}")
            try:
                return (
                    httpx.get(url + "/items/0", headers={"host": "bare.test"}, timeout=1.0).status_code == 200
                )
            except httpx.HTTPError:
                return False

        wait_until(ready, f"{kind} to serve")
        yield url
    finally:
        sock.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def read_spans(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.mark.skipif(os.name != "posix", reason="gunicorn and inherited sockets need POSIX")
@pytest.mark.parametrize("kind", ["uvicorn", "gunicorn"])
def test_real_server_subprocess(tmp_path: Path, kind: str) -> None:
    (tmp_path / "e2e_app.py").write_text(textwrap.dedent(APP_MODULE), encoding="utf-8")
    spans_file = tmp_path / "spans.jsonl"
    with subprocess_server(kind, tmp_path, spans_file) as url:
        bare = exchange(url, host="bare.test")
        assert read_spans(spans_file) == []  # the app without devsecmw exported nothing
        wrapped = exchange(url)
        # A span is written after the last byte of its response went out: wait for the last ones.
        wait_until(lambda: len(read_spans(spans_file)) >= len(REQUESTS), "spans in the file", 10.0)
    assert wrapped == bare
    assert [r[0] for r in bare] == EXPECTED_STATUS

    spans = read_spans(spans_file)
    assert all(s["kind"] == "SERVER" for s in spans)
    types = [set(s["types"]) for s in spans]
    assert any({"sqli", "http_5xx", "attack_5xx"} <= t for t in types)
    assert any("xss" in t for t in types)
    assert any(t == {"auth_failure"} for t in types)
    assert any(t == {"http_404"} for t in types)
    assert all(set(s["events"]) == set(s["types"]) for s in spans)
    assert {s["route"] for s in spans} == {"/items/{item_id}", "/echo", "/stream", "/fail", "/admin", None}
    if kind == "gunicorn":
        assert len({s["pid"] for s in spans}) == 1  # one forked worker served and exported them all

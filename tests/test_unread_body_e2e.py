"""The unread body on real servers on 127.0.0.1: uvicorn (in process) and gunicorn (subprocess).

Two requests on one connection, the first with an attack body its route never reads (a
405): the attack is on the first span, and the second request is answered exactly as
without devsecmw and never sees the first one's bytes. Raw sockets, so keep-alive and
pipelining are what the test says (no client library reusing or reopening connections).
"""

from __future__ import annotations

import json
import os
import socket
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from asgi_harness import steady_time_budget as steady_time_budget  # autouse: load-independent detection
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from test_e2e_uvicorn import listening_socket, wait_until

from devsecmw.asgi import SecurityMiddleware

pytestmark = pytest.mark.e2e

XXE = b'<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><foo>&xxe;</foo>'
BIG = b"<a>" + b"x" * 200_000 + b"</a>" + XXE  # far over the cap, the attack beyond it
TIMEOUT = 10.0


# --------------------------------------------------------------------------- raw HTTP/1.1
def request(method: str, path: str, body: bytes = b"", *, headers: str = "") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}"
    if body or method == "POST":
        head += f"Content-Type: application/xml\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


CLOSED = (b"closed", b"")


def read_response(reader: Any) -> tuple[bytes, bytes]:
    """(status line and headers without Date, body) of one response with a Content-Length;
    :data:`CLOSED` when the server closed the connection instead."""
    lines = []
    length = 0
    while True:
        line = reader.readline()
        if not line:
            return CLOSED
        if line == b"\r\n":
            break
        name = line.split(b":", 1)[0].strip().lower()
        if name == b"content-length":
            length = int(line.split(b":", 1)[1])
        if name != b"date":  # the server's clock
            lines.append(line)
    body = reader.read(length)
    return b"".join(lines), body


def converse(url: str, steps: list[tuple[bytes, int, float]]) -> list[tuple[bytes, bytes]]:
    """On one connection: for each step, wait its delay, send its bytes, read that many responses
    (up to the server closing the connection)."""
    port = int(url.rsplit(":", 1)[1])
    out: list[tuple[bytes, bytes]] = []
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        reader = sock.makefile("rb")
        try:
            for data, responses, delay in steps:
                time.sleep(delay)
                try:
                    sock.sendall(data)
                except OSError:
                    out.append(CLOSED)
                    break
                for _ in range(responses):
                    try:
                        response = read_response(reader)
                    except ConnectionResetError:
                        response = CLOSED
                    out.append(response)
                    if response == CLOSED:
                        return out
        finally:
            reader.close()
    return out


def echo_second(path: str) -> bytes:
    return request("POST", path, b"<second>hello</second>")


#: The client's pause before sending a late body: well over the default unread_timeout (0.1 s).
LATE = 0.4
SCENARIOS: dict[str, list[tuple[bytes, int, float]]] = {
    # keep-alive: the first response is read before the second request is sent
    "keep-alive": [(request("POST", "/items", XXE), 1, 0), (echo_second("/echo"), 1, 0)],
    # pipelined: both requests in one write
    "pipelined": [(request("POST", "/items", XXE) + echo_second("/echo"), 2, 0)],
    # a body far over the cap, then the next request
    "over-cap": [(request("POST", "/items", BIG), 1, 0), (echo_second("/echo"), 1, 0)],
    # the body sent only well after the response arrived (a slow client), then the next request
    "late-body": [
        (request("POST", "/items", XXE)[: -len(XXE)], 1, 0),
        (XXE + echo_second("/echo"), 1, LATE),
    ],
}


# --------------------------------------------------------------------------- uvicorn
async def items(request: Request) -> Response:
    return PlainTextResponse("items")


async def echo(request: Request) -> Response:
    return PlainTextResponse((await request.body()).decode("latin-1"))


def make_app(**options: Any) -> Starlette:
    routes = [Route("/items", items, methods=["GET"]), Route("/echo", echo, methods=["POST"])]
    middleware = [Middleware(SecurityMiddleware, **options)] if options else []
    return Starlette(routes=routes, middleware=middleware)


@contextmanager
def uvicorn_thread(app: Any, http: str) -> Iterator[str]:
    """uvicorn with the given HTTP/1.1 implementation, in a thread, on 127.0.0.1."""
    import threading

    import uvicorn

    sock = listening_socket()
    config = uvicorn.Config(app, http=http, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
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


@pytest.mark.parametrize("http", ["h11", "httptools"])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_uvicorn_keep_alive(otel: Any, scenario: str, http: str) -> None:
    if http == "httptools":
        pytest.importorskip("httptools")
    steps = SCENARIOS[scenario]
    with uvicorn_thread(make_app(), http) as url:
        bare = converse(url, steps)
    with uvicorn_thread(make_app(unread_timeout=0, **otel.providers), http) as url:
        before = converse(url, steps)
    otel.clear()
    with uvicorn_thread(make_app(**otel.providers), http) as url:
        wrapped = converse(url, steps)
        wait_until(lambda: len(otel.server_spans()) >= 2, "spans")
    assert wrapped == bare == before
    assert bare[0][0].startswith(b"HTTP/1.1 405")
    assert bare[1][1] == b"<second>hello</second>"
    first, second = otel.server_spans()
    assert first.attributes["http.response.status_code"] == 405
    assert second.attributes["http.response.status_code"] == 200
    assert "xxe" not in second.attributes["devsecmw.signal.types"]
    if scenario in ("keep-alive", "pipelined"):
        assert "xxe" in first.attributes["devsecmw.signal.types"]
    if scenario == "over-cap":
        assert "xxe" not in first.attributes["devsecmw.signal.types"]
    if scenario == "late-body":
        # Nothing had arrived when the response was complete: not waited for beyond the bound.
        assert first.attributes["devsecmw.inspection.incomplete"] is True


# --------------------------------------------------------------------------- gunicorn
WSGI_APP = '''
"""A WSGI app behind devsecmw, served by gunicorn; finished spans are appended to a file."""
import json
import os

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from devsecmw.wsgi import SecurityMiddleware


class FileExporter(SpanExporter):
    def export(self, spans):
        with open(os.environ["SPANS"], "a", encoding="utf-8") as fh:
            for span in spans:
                attrs = dict(span.attributes or {})
                fh.write(json.dumps({
                    "status": attrs.get("http.response.status_code"),
                    "types": list(attrs.get("devsecmw.signal.types", ())),
                    "incomplete": attrs.get("devsecmw.inspection.incomplete", False),
                    "cuts": [
                        e.attributes.get("devsecmw.signal.location") for e in span.events
                        if e.attributes.get("devsecmw.signal.type") == "inspection_incomplete"
                    ],
                }) + "\\n")
        return SpanExportResult.SUCCESS


def bare(environ, start_response):
    if environ["PATH_INFO"] == "/echo":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
    elif environ["REQUEST_METHOD"] == "POST":
        body = b"Method Not Allowed"  # the body is never read
        headers = [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
        start_response("405 Method Not Allowed", headers)
        return [body]
    else:
        body = b"ok"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(FileExporter()))
options = json.loads(os.environ.get("DEVSECMW_OPTIONS", "null"))
app = bare if options is None else SecurityMiddleware(bare, tracer_provider=provider, **options)
'''


@contextmanager
def gunicorn(tmp: Path, worker: str, options: dict[str, Any] | None) -> Iterator[str]:
    import subprocess
    import sys

    from servers import free_port

    port = free_port()
    (tmp / "unread_app.py").write_text(textwrap.dedent(WSGI_APP))
    package_root = Path(__file__).resolve().parent.parent  # this tree's devsecmw, not an installed one
    env = {
        **os.environ,
        "SPANS": str(tmp / "spans.jsonl"),
        "DEVSECMW_OPTIONS": json.dumps(options),
        "PYTHONPATH": os.pathsep.join(p for p in (str(package_root), os.environ.get("PYTHONPATH", "")) if p),
    }
    cmd = [
        sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1",
        "--worker-class", worker, "--threads", "2", "--keep-alive", "5", "--timeout", "30",
        "--graceful-timeout", "5", "--log-level", "warning", "unread_app:app",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def spans(tmp: Path, count: int) -> list[dict[str, Any]]:
    path = tmp / "spans.jsonl"
    wait_until(lambda: path.exists() and len(path.read_text().splitlines()) >= count, "spans", TIMEOUT)
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_gunicorn_gthread_keep_alive(tmp_path: Path) -> None:
    # One server per configuration, every scenario on a connection of its own, in order.
    runs: dict[str, dict[str, list[tuple[bytes, bytes]]]] = {}
    for name, options in (("bare", None), ("before", {"unread_timeout": 0}), ("wrapped", {})):
        work = tmp_path / name
        work.mkdir()
        with gunicorn(work, "gthread", options) as url:
            runs[name] = {scenario: converse(url, steps) for scenario, steps in SCENARIOS.items()}
    assert runs["wrapped"] == runs["bare"] == runs["before"]
    bare = runs["bare"]
    assert all(out[0][0].startswith(b"HTTP/1.1 405") for out in bare.values())
    # gunicorn drains at most 64 KiB of an unread body, then closes: with devsecmw too.
    assert bare["over-cap"][1] == CLOSED
    for scenario in ("keep-alive", "pipelined", "late-body"):
        assert bare[scenario][1][1] == b"<second>hello</second>"
    # Spans of requests on different connections may be written in either order.
    found = spans(tmp_path / "wrapped", 7)
    firsts = [s for s in found if s["status"] == 405]
    seconds = [s for s in found if s["status"] == 200]
    assert len(firsts) == 4 and len(seconds) == 3
    assert not any("xxe" in s["types"] for s in seconds)  # never the first request's bytes
    # keep-alive and pipelined: seen; over the cap: the attack lies beyond it; late: not there in time.
    assert sum("xxe" in s["types"] for s in firsts) == 2
    # Where the signal exists, the over-cap body is incomplete too (location "body"), not "body.unread".
    late = [s for s in firsts if s["incomplete"] and "body" not in s["cuts"]]
    assert len(late) == 1 and "xxe" not in late[0]["types"]
    assert late[0]["cuts"] in ([], ["body.unread"])


def test_gunicorn_sync_worker(tmp_path: Path) -> None:
    # The sync worker closes every connection: one request each.
    for name, options in (("bare", None), ("wrapped", {})):
        work = tmp_path / name
        work.mkdir()
        with gunicorn(work, "sync", options) as url:
            out = converse(url, [(request("POST", "/items", XXE, headers="Connection: close\r\n"), 1, 0)])
        assert out[0][0].startswith(b"HTTP/1.1 405")
    assert "xxe" in spans(tmp_path / "wrapped", 1)[0]["types"]

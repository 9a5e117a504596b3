"""WITH and WITHOUT devsecmw, the same bytes: what the app reads and what the client receives.

Each case runs a WSGI app twice through the standard library's server-side
handler (``wsgiref.handlers.BaseCGIHandler``, no socket, deterministic output):
once bare, once wrapped. The raw response bytes (status line, headers incl. a
Content-Length the server derives, body), every read the app made, and every
``close()`` must be identical. Requests carry attacks too: monitor mode never
changes a byte.
"""

from __future__ import annotations

import hashlib
import io
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from wsgiref.handlers import BaseCGIHandler

import pytest

from devsecmw.config import Config
from devsecmw.engine import Engine
from devsecmw.wsgi import SecurityMiddleware, content_length

# Inspection stops after a wall-clock budget (10 ms by default): on a loaded test machine that
# would make detection assertions depend on timing, so the adapter tests give it ample room.
# One engine (rules compiled once) serves the module; a few tests build their own on purpose.
STEADY: dict[str, Any] = {"time_budget": 5.0, "detector": Engine(Config())}

App = Callable[[dict[str, Any], Any], Iterable[bytes]]
ATTACK_QUERY = "q=1%27%20UNION%20SELECT%20password%20FROM%20users--&next=..%2F..%2Fetc%2Fpasswd"


@dataclass
class Log:
    """What the app observed: every read and its result, closes, its own errors."""

    reads: list[tuple[str, bytes]] = field(default_factory=list)
    closes: int = 0
    events: list[str] = field(default_factory=list)


@dataclass
class Request:
    method: str = "GET"
    path: str = "/"
    query: str = ""
    body: bytes = b""
    content_length: str | None = None  # None: derived from body when there is one
    terminated: bool = False  # chunked: no Content-Length, wsgi.input_terminated
    headers: dict[str, str] = field(default_factory=dict)


def serve(app: App, req: Request) -> bytes:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": req.method,
        "SCRIPT_NAME": "",
        "PATH_INFO": req.path,
        "QUERY_STRING": req.query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "10.1.2.3",
        "HTTP_HOST": "example.test",
    }
    for k, v in req.headers.items():
        environ["HTTP_" + k.upper().replace("-", "_")] = v
    if req.terminated:
        environ["wsgi.input_terminated"] = True
    elif req.content_length is not None:
        environ["CONTENT_LENGTH"] = req.content_length
    elif req.body:
        environ["CONTENT_LENGTH"] = str(len(req.body))
    if req.body:
        environ["CONTENT_TYPE"] = "application/octet-stream"
    stdout = io.BytesIO()
    handler = BaseCGIHandler(
        io.BytesIO(req.body), stdout, io.StringIO(), environ, multithread=False, multiprocess=False
    )
    handler.os_environ = {}  # only this request's variables, not the test process's
    handler.run(app)
    return stdout.getvalue()


def compare(make_app: Callable[[Log], App], req: Request, otel: Any, **options: Any) -> tuple[bytes, Log]:
    bare_log, wrapped_log = Log(), Log()
    bare = serve(make_app(bare_log), req)
    wrapped = serve(SecurityMiddleware(make_app(wrapped_log), **otel.providers, **{**STEADY, **options}), req)
    assert wrapped == bare
    assert wrapped_log == bare_log
    assert len(otel.spans()) == 1
    return bare, bare_log


# ---------------------------------------------------------------------- apps
def plain(log: Log) -> App:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"hello \xe2\x9c\x93"]  # one chunk: the server derives Content-Length from len()

    return app


def generator(log: Log) -> App:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/event-stream")])
        for i in range(5):
            yield f"data: {i}\n\n".encode()
        yield b""  # empty chunks are legal and pass through
        yield b"data: end\n\n"

    return app


def head_aware(log: Log) -> App:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = b"the body of a GET"
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [] if environ["REQUEST_METHOD"] == "HEAD" else [body]

    return app


def not_modified(log: Log) -> App:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("304 Not Modified", [("ETag", '"v1"')])
        return []

    return app


def bounded_lines(stream: Any, n: int) -> Iterator[bytes]:
    """readline() never past Content-Length (PEP 3333 forbids reading beyond it)."""
    left = n
    while left > 0:
        line = stream.readline(left)
        if not line:
            return
        left -= len(line)
        yield line


def read_with(how: str) -> Callable[[Log], App]:
    def make(log: Log) -> App:
        def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
            stream = environ["wsgi.input"]
            n = content_length(environ.get("CONTENT_LENGTH"))
            terminated = environ.get("wsgi.input_terminated", False)
            total = b""
            if n is None and not terminated:
                pass  # PEP 3333: no Content-Length, no body
            elif how == "chunks":
                while True:
                    data = stream.read(65536) if terminated else stream.read(min(65536, n - len(total)))
                    log.reads.append(("read(n)", data[:16]))
                    total += data
                    if not data or (not terminated and len(total) >= n):
                        break
            elif how == "lines":
                for line in stream if terminated else bounded_lines(stream, n):
                    log.reads.append(("line", line[:16]))
                    total += line
            else:
                total = stream.read() if terminated else stream.read(n)
                log.reads.append(("read", total[:16]))
            digest = hashlib.sha256(total).hexdigest().encode()
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"%d %s" % (len(total), digest)]

        return app

    return make


def raises_before_start_response(log: Log) -> App:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        raise ValueError("before start_response")

    return app


def raises_after_start_response(log: Log) -> App:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        raise ValueError("after start_response")

    return app


def raises_mid_stream(log: Log) -> App:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"first part, "
        raise ValueError("mid-stream")

    return app


def exc_info_before_headers(log: Log) -> App:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise KeyError("template")
        except KeyError:
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info())
            log.events.append("replaced status")
        return [b"sorry"]

    return app


def exc_info_after_headers(log: Log) -> App:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"started "
        try:
            raise KeyError("late")
        except KeyError:
            try:
                start_response("500 Internal Server Error", [], sys.exc_info())
            except KeyError as exc:
                log.events.append(f"server re-raised {exc!r}")
                raise

    return app


def uses_write(log: Log) -> App:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"legacy ")
        write(b"write() ")
        return [b"and return"]

    return app


class ClosingBody:
    def __init__(self, log: Log, chunks: list[bytes]) -> None:
        self.log = log
        self.it = iter(chunks)

    def __iter__(self) -> ClosingBody:
        return self

    def __next__(self) -> bytes:
        return next(self.it)

    def close(self) -> None:
        self.log.closes += 1


def with_close(log: Log) -> App:
    def app(environ: dict[str, Any], start_response: Any) -> ClosingBody:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return ClosingBody(log, [b"a", b"b", b"c"])

    return app


def generator_with_finally(log: Log) -> App:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            yield b"x"
            yield b"y"
        finally:
            log.closes += 1

    return app


def file_response(log: Log) -> App:
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](io.BytesIO(bytes(range(256)) * 40), 1000)

    return app


def status_app(status: str) -> Callable[[Log], App]:
    def make(log: Log) -> App:
        def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
            start_response(status, [("Content-Type", "text/plain"), ("X-Trace", "1")])
            return [status.encode()]

        return app

    return make


BIG = bytes(range(256)) * 4096  # 1 MiB: sixteen times the default inspection cap

CASES: list[tuple[str, Callable[[Log], App], Request]] = [
    ("plain", plain, Request()),
    ("plain with attack", plain, Request(path="/search", query=ATTACK_QUERY)),
    ("generator", generator, Request(headers={"User-Agent": "sqlmap/1.7"})),
    ("HEAD", head_aware, Request(method="HEAD")),
    ("GET of the HEAD app", head_aware, Request()),
    ("304", not_modified, Request(headers={"If-None-Match": '"v1"'})),
    ("upload 1MiB read(n)", read_with("chunks"), Request(method="POST", body=BIG)),
    ("upload 1MiB lines", read_with("lines"), Request(method="POST", body=BIG)),
    ("upload 1MiB read", read_with("read"), Request(method="POST", body=BIG)),
    ("chunked input", read_with("chunks"), Request(method="POST", body=BIG[:100_000], terminated=True)),
    ("chunked input lines", read_with("lines"), Request(method="POST", body=b"a\nb\nc", terminated=True)),
    ("empty POST, Content-Length 0", read_with("read"), Request(method="POST", content_length="0")),
    ("empty POST, no Content-Length", read_with("read"), Request(method="POST")),
    ("empty POST, empty Content-Length", read_with("read"), Request(method="POST", content_length="")),
    ("attack in the body", read_with("read"), Request(method="POST", body=b"q=<script>alert(1)</script>")),
    ("raises before start_response", raises_before_start_response, Request(query=ATTACK_QUERY)),
    ("raises after start_response", raises_after_start_response, Request()),
    ("raises mid-stream", raises_mid_stream, Request()),
    ("exc_info before headers sent", exc_info_before_headers, Request()),
    ("exc_info after headers sent", exc_info_after_headers, Request()),
    ("write() callable", uses_write, Request()),
    ("close() called", with_close, Request()),
    ("generator finally", generator_with_finally, Request()),
    ("wsgi.file_wrapper", file_response, Request()),
    ("500", status_app("500 Internal Server Error"), Request(query=ATTACK_QUERY)),
    ("404", status_app("404 Not Found"), Request()),
    ("401", status_app("401 Unauthorized"), Request()),
    ("429", status_app("429 Too Many Requests"), Request()),
]


@pytest.mark.parametrize(("make_app", "req"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_same_bytes_with_and_without_devsecmw(
    make_app: Callable[[Log], App], req: Request, otel: Any
) -> None:
    compare(make_app, req, otel)


def test_the_cases_really_exercise_what_they_claim(otel: Any) -> None:
    """Guards the harness: the bytes compared above are the interesting ones."""
    out, _ = compare(plain, Request(), otel)
    assert b"Content-Length: 9" in out  # derived from len() of the one-chunk list
    otel.clear()
    out, log = compare(read_with("chunks"), Request(method="POST", body=BIG), otel)
    assert out.endswith(b"%d %s" % (len(BIG), hashlib.sha256(BIG).hexdigest().encode()))
    assert len(log.reads) == len(BIG) // 65536  # read in pieces, as the app asked
    otel.clear()
    out, log = compare(exc_info_after_headers, Request(), otel)
    assert log.events == ["server re-raised KeyError('late')"] and out.endswith(b"started ")
    otel.clear()
    out, log = compare(with_close, Request(), otel)
    assert log.closes == 1 and out.endswith(b"abc")
    otel.clear()
    out, _ = compare(raises_before_start_response, Request(), otel)
    assert out.startswith(b"Status: 500")


def test_upload_larger_than_the_cap_keeps_only_the_cap(otel: Any) -> None:
    seen: list[tuple[int, int]] = []

    class Probe:
        def inspect(self, request: Any, phase: str, budget: Any = None) -> list[Any]:
            if phase == "body":
                seen.append((len(request.body), request.body_seen))
            return []

    compare(read_with("chunks"), Request(method="POST", body=BIG), otel, detector=Probe(), body_limit=65536)
    assert seen == [(65536, len(BIG))]

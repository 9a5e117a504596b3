"""The WSGI adapter end to end on toy PEP 3333 apps: body tap, start_response, the iterable, context."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from wsgiref.util import FileWrapper

import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

from devsecmw.config import Config
from devsecmw.engine import Budget, Engine
from devsecmw.request import HttpRequest
from devsecmw.signals import Signal
from devsecmw.wsgi import (
    ROUTE_KEY,
    InputTap,
    SecurityMiddleware,
    content_length,
    route_from_environ,
    status_code,
)

# Inspection stops after a wall-clock budget (10 ms by default): on a loaded test machine that
# would make detection assertions depend on timing, so the adapter tests give it ample room.
# One engine (rules compiled once) serves the module; a few tests build their own on purpose.
STEADY: dict[str, Any] = {"time_budget": 5.0, "detector": Engine(Config())}

SQLI = b"q=1%27%20UNION%20SELECT%20password%20FROM%20users--"
SQLI_BODY = b"name=x&q=1' UNION SELECT password FROM users--"


def environ_for(
    path: str = "/",
    query: str = "",
    method: str = "GET",
    body: bytes | None = None,
    content_length: str | None = None,
    stream: Any = None,
    **extra: Any,
) -> dict[str, Any]:
    env: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "10.0.0.1",
        "HTTP_HOST": "t",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": stream if stream is not None else io.BytesIO(body or b""),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.file_wrapper": FileWrapper,
    }
    if body is not None:
        env["CONTENT_TYPE"] = "application/x-www-form-urlencoded"
        env["CONTENT_LENGTH"] = str(len(body)) if content_length is None else content_length
    elif content_length is not None:
        env["CONTENT_LENGTH"] = content_length
    env.update(extra)
    return env


class Server:
    """A minimal PEP 3333 server side: start_response, write(), iteration, close()."""

    def __init__(self) -> None:
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.body = b""
        self.headers_sent = False

    def start_response(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        if exc_info is not None:
            try:
                if self.headers_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError("start_response called twice without exc_info")
        self.status, self.headers = status, headers
        return self.write

    def write(self, data: bytes) -> None:
        self.headers_sent = True
        self.body += data

    def run(self, app: Any, environ: dict[str, Any], stop_after: int | None = None) -> Server:
        result = app(environ, self.start_response)
        try:
            for i, chunk in enumerate(result):
                self.write(chunk)
                if stop_after is not None and i + 1 >= stop_after:
                    break
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        return self


class Recorder:
    """A detector that keeps what it was shown of the body, then runs the real engine."""

    def __init__(self) -> None:
        self.engine = STEADY["detector"]
        self.bodies: list[tuple[bytes, int, bool]] = []

    def inspect(self, request: HttpRequest, phase: str, budget: Budget | None = None) -> list[Signal]:
        if phase == "body":
            self.bodies.append((bytes(request.body), request.body_seen, request.body_complete))
        return self.engine.inspect(request, phase, budget)


class Broken:
    def inspect(self, request: HttpRequest, phase: str, budget: Budget | None = None) -> list[Signal]:
        raise RuntimeError("detector bug")


def text_app(status: str = "200 OK", body: bytes = b"hello") -> Callable[..., Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]

    return app


def reading_app(how: Callable[[Any], bytes]) -> Callable[..., Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        data = how(environ["wsgi.input"])
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [data]

    return app


def mw(app: Any, otel: Any, **options: Any) -> SecurityMiddleware:
    return SecurityMiddleware(app, **otel.providers, **{**STEADY, **options})


# ---------------------------------------------------------------------- helpers
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("12", 12),
        (" 7 ", 7),
        ("", None),
        (None, None),
        ("-1", None),
        ("1e3", None),
        ("\uff11\uff12", None),  # fullwidth digits: str.isdigit() says yes, HTTP says no
        (5, 5),
    ],
)
def test_content_length_parsing(raw: Any, expected: int | None) -> None:
    assert content_length(raw) == expected


@pytest.mark.parametrize(
    ("status", "code"), [("200 OK", 200), ("404 Not Found", 404), ("599", 599), ("OK", 0), ("", 0)]
)
def test_status_code_parsing(status: str, code: int) -> None:
    assert status_code(status) == code


# ---------------------------------------------------------------------- request
def test_attack_in_query_is_a_signal_on_an_own_server_span(otel: Any) -> None:
    app = mw(text_app(), otel, detector=None)  # the default: an engine built from the options
    server = Server().run(app, environ_for("/search", SQLI.decode()))
    assert server.status == "200 OK" and server.body == b"hello"
    span = otel.span()
    assert span.kind == SpanKind.SERVER
    assert span.attributes["devsecmw.classification"] == "attack"
    assert "sqli" in span.attributes["devsecmw.signal.types"]
    assert span.attributes["http.response.status_code"] == 200
    assert otel.events()[0]["devsecmw.signal.location"] == "query:q"


def test_route_from_the_werkzeug_request_in_the_environ() -> None:
    # What Flask's request carries, duck-typed: the adapter imports no framework.
    class Rule:
        rule = "/items/<int:item_id>"

    class Req:
        url_rule: Any = Rule()

    assert route_from_environ({"werkzeug.request": Req()}) == "/items/<int:item_id>"
    assert route_from_environ({ROUTE_KEY: "/explicit", "werkzeug.request": Req()}) == "/explicit"
    Req.url_rule = None  # unrouted (a 404)
    assert route_from_environ({"werkzeug.request": Req()}) is None
    assert route_from_environ({"werkzeug.request": object()}) is None
    assert route_from_environ({}) is None


def test_explicit_route_key_becomes_http_route(otel: Any) -> None:
    Server().run(mw(text_app(), otel), environ_for("/items/42", **{"devsecmw.route": "/items/{id}"}))
    span = otel.span()
    assert span.attributes["http.route"] == "/items/{id}"
    assert span.name == "GET /items/{id}"
    routes = {p[0].get("http.route") for p in otel.metric_points("devsecmw.requests")}
    assert routes == {"/items/{id}"}


def test_body_read_by_the_app_is_inspected(otel: Any) -> None:
    app = reading_app(lambda s: s.read())
    server = Server().run(mw(app, otel), environ_for("/login", method="POST", body=SQLI_BODY))
    assert server.body == SQLI_BODY
    assert "sqli" in otel.signal_types()
    assert any(e["devsecmw.signal.location"].startswith("body") for e in otel.events())


def test_body_the_app_never_reads_is_never_read(otel: Any) -> None:
    class Untouchable(io.BytesIO):
        def read(self, *a: Any) -> bytes:
            raise AssertionError("devsecmw read ahead of the app")

        readline = readlines = read

    Server().run(mw(text_app(), otel), environ_for("/", method="POST", stream=Untouchable(), body=None))
    assert otel.span().attributes["devsecmw.classification"] == "benign"


READS: dict[str, Callable[[Any], bytes]] = {
    "read()": lambda s: s.read(),
    "read(-1)": lambda s: s.read(-1),
    "read(None)": lambda s: s.read(None),
    "read(n) loop": lambda s: b"".join(iter(lambda: s.read(7), b"")),
    "readline loop": lambda s: b"".join(iter(s.readline, b"")),
    "readline(n)": lambda s: b"".join(iter(lambda: s.readline(5), b"")),
    "readlines()": lambda s: b"".join(s.readlines()),
    "readlines(hint)": lambda s: b"".join(s.readlines(10)) + s.read(),
    "iteration": lambda s: b"".join(s),
    "readinto": lambda s: _readinto_all(s),
}


def _readinto_all(stream: Any) -> bytes:
    out = b""
    buf = bytearray(6)
    while n := stream.readinto(buf):
        out += bytes(buf[:n])
    return out


@pytest.mark.parametrize("how", list(READS))
def test_every_read_method_is_seen_whole(how: str, otel: Any) -> None:
    body = b"line one\nq=1' UNION SELECT password FROM users--\nlast line without newline"
    rec = Recorder()
    server = Server().run(
        mw(reading_app(READS[how]), otel, detector=rec), environ_for(method="POST", body=body)
    )
    assert server.body == body
    assert rec.bodies == [(body, len(body), True)]


def test_zero_sized_reads_do_not_end_the_body(otel: Any) -> None:
    def how(s: Any) -> bytes:
        out = s.read(4)
        out += s.read(0) + s.readline(0)
        out += bytes(bytearray(0)[: s.readinto(bytearray(0))])
        return out + s.read()

    body = b"q=1' UNION SELECT password FROM users--"
    rec = Recorder()
    server = Server().run(mw(reading_app(how), otel, detector=rec), environ_for(method="POST", body=body))
    assert server.body == body
    assert rec.bodies == [(body, len(body), True)]  # inspected once, whole, at the real end


def test_upload_far_larger_than_the_cap_reaches_the_app_whole(otel: Any) -> None:
    body = bytes(range(256)) * 4096  # 1 MiB
    rec = Recorder()
    app = reading_app(lambda s: b"".join(iter(lambda: s.read(65536), b"")))
    server = Server().run(
        mw(app, otel, detector=rec, body_limit=1024),
        environ_for(method="POST", body=body, CONTENT_TYPE="application/octet-stream"),
    )
    assert server.body == body
    assert len(rec.bodies) == 1
    kept, seen, complete = rec.bodies[0]
    assert kept == body[:1024] and seen == len(body) and complete


def test_chunked_input_terminated_is_read_to_eof(otel: Any) -> None:
    body = SQLI_BODY
    rec = Recorder()
    env = environ_for(method="POST", stream=io.BytesIO(body), **{"wsgi.input_terminated": True})
    env["CONTENT_TYPE"] = "application/x-www-form-urlencoded"
    assert "CONTENT_LENGTH" not in env
    server = Server().run(mw(reading_app(lambda s: s.read()), otel, detector=rec), env)
    assert server.body == body
    assert rec.bodies == [(body, len(body), True)]
    assert "sqli" in otel.signal_types()


class NeverEnds:
    """A socket-like input with no Content-Length: any read would block forever."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def read(self, *args: Any) -> bytes:
        self.calls.append("read")
        raise AssertionError("a read on a stream with no Content-Length would block")

    readline = readlines = read


@pytest.mark.parametrize("cl", [None, ""])
def test_no_content_length_means_no_body_and_no_read(cl: str | None, otel: Any) -> None:
    stream = NeverEnds()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        # A PEP 3333 app reads nothing without Content-Length (as Werkzeug and Django do).
        n = content_length(environ.get("CONTENT_LENGTH")) or 0
        data = environ["wsgi.input"].read(n) if n else b""
        start_response("200 OK", [])
        return [data]

    env = environ_for(method="POST", stream=stream, content_length=cl)
    server = Server().run(mw(app, otel), env)
    assert server.body == b"" and stream.calls == []
    assert otel.span().attributes["devsecmw.classification"] == "benign"


def test_empty_post_with_content_length_zero(otel: Any) -> None:
    server = Server().run(
        mw(reading_app(lambda s: s.read()), otel), environ_for(method="POST", body=b"", content_length="0")
    )
    assert server.status == "200 OK" and server.body == b""


def test_input_tap_keeps_server_extras_and_optional_methods_honest() -> None:
    class Plain:
        def __init__(self) -> None:
            self.data = io.BytesIO(b"abc")

        def read(self, *a: Any) -> bytes:
            return self.data.read(*a)

        def fileno(self) -> int:
            return 42

    class Insp:
        def body_chunk(self, chunk: bytes, more: bool) -> None:
            pass

    tap = InputTap(Plain(), Insp(), 3)  # type: ignore[arg-type]
    assert tap.fileno() == 42
    # Werkzeug's LimitedStream uses readinto when the stream has it: the tap must not claim it does.
    assert not hasattr(tap, "readinto") and not hasattr(tap, "read1")
    assert hasattr(InputTap(io.BytesIO(b""), Insp(), 0), "readinto")  # type: ignore[arg-type]
    assert tap.read() == b"abc"


# ---------------------------------------------------------------------- start_response / write
def test_exc_info_before_headers_sent_replaces_the_status(otel: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise ValueError("template failed")
        except ValueError:
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info())
        return [b"error page"]

    server = Server().run(mw(app, otel), environ_for())
    assert server.status == "500 Internal Server Error" and server.body == b"error page"
    assert otel.span().attributes["http.response.status_code"] == 500
    assert "http_5xx" in otel.signal_types()


def test_exc_info_after_headers_sent_reraises_the_same_exception(otel: Any) -> None:
    boom = ValueError("late failure")

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"first"
        try:
            raise boom
        except ValueError:
            start_response("500 Internal Server Error", [], sys.exc_info())
        yield b"never"

    server = Server()
    with pytest.raises(ValueError) as info:
        server.run(mw(app, otel), environ_for("/", SQLI.decode()))
    assert info.value is boom
    assert server.status == "200 OK" and server.body == b"first"
    span = otel.span()
    assert span.attributes["http.response.status_code"] == 200  # what the client got
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes["error.type"] == "ValueError"
    assert {"sqli", "http_5xx", "attack_5xx"} <= otel.signal_types()


def test_write_callable_passes_bytes_through(otel: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written ")
        write(b"directly ")
        return [b"then returned"]

    server = Server().run(mw(app, otel), environ_for())
    assert server.body == b"written directly then returned"
    assert otel.span().attributes["http.response.status_code"] == 200


# ---------------------------------------------------------------------- the iterable
def test_generator_app_span_ends_after_the_last_chunk(otel: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [])  # called lazily, on the first next()
        yield b"a"
        yield b"b"

    result = mw(app, otel)(environ_for(), Server().start_response)
    it = iter(result)
    assert next(it) == b"a" and next(it) == b"b"
    assert otel.spans() == []  # still streaming
    with pytest.raises(StopIteration):
        next(it)
    assert len(otel.spans()) == 1  # ended on the last chunk, before close()
    result.close()  # type: ignore[attr-defined]
    assert len(otel.spans()) == 1


class Closing:
    def __init__(self, chunks: list[bytes], fail_at: int | None = None, fail_close: bool = False) -> None:
        self.chunks = chunks
        self.fail_at = fail_at
        self.fail_close = fail_close
        self.closed = 0
        self.i = 0

    def __iter__(self) -> Closing:
        return self

    def __next__(self) -> bytes:
        if self.fail_at is not None and self.i == self.fail_at:
            raise OSError("disk gone")
        if self.i >= len(self.chunks):
            raise StopIteration
        self.i += 1
        return self.chunks[self.i - 1]

    def close(self) -> None:
        self.closed += 1
        if self.fail_close:
            raise RuntimeError("close failed")


def closing_app(result: Closing) -> Callable[..., Closing]:
    def app(environ: dict[str, Any], start_response: Any) -> Closing:
        start_response("200 OK", [])
        return result

    return app


def test_close_is_called_when_the_server_stops_early(otel: Any) -> None:
    result = Closing([b"a", b"b", b"c"])
    server = Server().run(mw(closing_app(result), otel), environ_for(), stop_after=1)
    assert server.body == b"a" and result.closed == 1
    span = otel.span()
    assert span.status.status_code != StatusCode.ERROR
    assert "http_5xx" not in otel.signal_types()


def test_close_is_called_when_iteration_raises(otel: Any) -> None:
    result = Closing([b"a", b"b"], fail_at=1)
    with pytest.raises(OSError, match="disk gone"):
        Server().run(mw(closing_app(result), otel), environ_for())
    assert result.closed == 1
    assert otel.span().attributes["error.type"] == "OSError"
    assert "http_5xx" in otel.signal_types()


def test_an_exception_from_close_propagates_and_ends_the_span(otel: Any) -> None:
    result = Closing([b"a"], fail_close=True)
    with pytest.raises(RuntimeError, match="close failed"):
        Server().run(mw(closing_app(result), otel), environ_for())
    assert result.closed == 1
    assert len(otel.spans()) == 1


def test_app_raising_before_start_response_passes_through_unchanged(otel: Any) -> None:
    boom = KeyError("missing")

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        raise boom

    with pytest.raises(KeyError) as info:
        Server().run(mw(app, otel), environ_for("/x", "q=%3Cscript%3Ealert(1)%3C/script%3E"))
    assert info.value is boom
    span = otel.span()
    assert span.status.status_code == StatusCode.ERROR
    assert {"xss", "http_5xx", "attack_5xx"} <= otel.signal_types()


def test_length_of_a_list_response_is_kept(otel: Any) -> None:
    result = mw(text_app(), otel)(environ_for(), Server().start_response)
    assert len(result) == 1  # type: ignore[arg-type]
    assert list(result) == [b"hello"]


def test_generator_response_has_no_length(otel: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [])
        yield b"x"

    result = mw(app, otel)(environ_for(), Server().start_response)
    assert not hasattr(result, "__len__")
    assert list(result) == [b"x"]


def test_file_wrapper_response_stays_a_file_wrapper(tmp_path: Any, otel: Any) -> None:
    payload = bytes(range(256)) * 100
    path = tmp_path / "f.bin"
    path.write_bytes(payload)
    fh = path.open("rb")

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Length", str(len(payload)))])
        return environ["wsgi.file_wrapper"](fh, 4096)

    env = environ_for()
    result = mw(app, otel)(env, Server().start_response)
    assert type(result) is FileWrapper  # the server's sendfile path still recognises it
    assert result.filelike.fileno() == fh.fileno()  # type: ignore[attr-defined]
    assert b"".join(result) == payload
    assert otel.spans() == []  # ends at close(): bytes may leave by sendfile, unseen
    result.close()  # type: ignore[attr-defined]
    assert fh.closed
    assert otel.span().attributes["http.response.status_code"] == 200


def test_file_wrapper_with_its_own_close_is_not_rewrapped(tmp_path: Any, otel: Any) -> None:
    path = tmp_path / "f.txt"
    path.write_bytes(b"data")
    closed: list[bool] = []

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [])
        fh = path.open("rb")
        wrapper = environ["wsgi.file_wrapper"](fh)

        def close() -> None:
            closed.append(True)
            fh.close()

        wrapper.close = close
        return wrapper

    server = Server().run(mw(app, otel), environ_for())
    assert server.body == b"data" and closed == [True]
    assert len(otel.spans()) == 1


# ---------------------------------------------------------------------- context
def test_span_is_current_in_the_app_and_each_next_and_detached_after(otel: Any) -> None:
    seen: list[Any] = []
    tracer = otel.tracer_provider.get_tracer("app")

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        seen.append(trace.get_current_span())
        start_response("200 OK", [])
        with tracer.start_as_current_span("db query"):
            yield b"a"
        seen.append(trace.get_current_span())
        yield b"b"

    class Eager:
        def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
            seen.append(trace.get_current_span())
            return app(environ, start_response)

    middleware = mw(Eager(), otel)
    result = middleware(environ_for(), Server().start_response)
    assert not trace.get_current_span().get_span_context().is_valid  # detached after the call
    chunks = []
    for chunk in result:
        chunks.append(chunk)
        assert not trace.get_current_span().get_span_context().is_valid  # detached between next()
    assert chunks == [b"a", b"b"]
    server_span = otel.span()
    ids = {s.get_span_context().span_id for s in seen}
    assert ids == {server_span.context.span_id}
    child = next(s for s in otel.spans() if s.name == "db query")
    assert child.parent is not None and child.parent.span_id == server_span.context.span_id


def test_incoming_traceparent_is_the_parent(otel: Any) -> None:
    tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    Server().run(mw(text_app(), otel), environ_for(HTTP_TRACEPARENT=tp))
    span = otel.span()
    assert f"{span.context.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
    assert span.parent is not None and f"{span.parent.span_id:016x}" == "b7ad6b7169203331"


# ---------------------------------------------------------------------- response signals
@pytest.mark.parametrize(
    ("status", "signal"),
    [
        ("500 Internal Server Error", "http_5xx"),
        ("503 Service Unavailable", "http_5xx"),
        ("404 Not Found", "http_404"),
        ("401 Unauthorized", "auth_failure"),
        ("403 Forbidden", "auth_failure"),
        ("429 Too Many Requests", "rate_limited"),
    ],
)
def test_response_status_signals(status: str, signal: str, otel: Any) -> None:
    server = Server().run(mw(text_app(status), otel), environ_for("/x"))
    assert server.status == status
    assert otel.signal_types() == {signal}


def test_attack_that_ends_in_5xx_is_attack_5xx(otel: Any) -> None:
    Server().run(mw(text_app("500 Internal Server Error"), otel), environ_for("/x", SQLI.decode()))
    assert {"sqli", "http_5xx", "attack_5xx"} <= otel.signal_types()


def test_ok_response_has_no_status_signal(otel: Any) -> None:
    Server().run(mw(text_app(), otel), environ_for("/x", "page=2"))
    assert otel.signal_types() == set()


SQL_ERROR = b"You have an error in your SQL syntax; check the manual that corresponds to your MySQL server"


@pytest.mark.parametrize("how", ["iterable", "write"])
def test_response_leak_in_the_body_is_detected(how: str, otel: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        write = start_response("500 Internal Server Error", [("Content-Type", "text/html")])
        if how == "write":
            write(b"<p>" + SQL_ERROR + b"</p>")
            return []
        return [b"<p>", SQL_ERROR, b"</p>"]

    server = Server().run(mw(app, otel), environ_for("/x", "id=1%27"))
    assert SQL_ERROR in server.body
    assert "response_leak" in otel.signal_types()


# ---------------------------------------------------------------------- fail open, pass-through
@pytest.mark.internal_errors_expected
def test_a_broken_detector_changes_nothing_and_is_counted_and_logged_once(
    otel: Any, caplog: pytest.LogCaptureFixture
) -> None:
    app = reading_app(lambda s: s.read())
    plain = Server().run(app, environ_for(method="POST", body=SQLI_BODY))
    middleware = mw(app, otel, detector=Broken())
    with caplog.at_level(logging.ERROR, logger="devsecmw"):
        first = Server().run(middleware, environ_for(method="POST", body=SQLI_BODY))
        second = Server().run(middleware, environ_for(method="POST", body=SQLI_BODY))
    for served in (first, second):
        assert (served.status, served.headers, served.body) == (plain.status, plain.headers, plain.body)
    errors = otel.metric_points("devsecmw.errors")
    assert sum(p.value for _, p in errors) >= 4  # head and body, twice
    logged = [r for r in caplog.records if "internal error" in r.getMessage()]
    assert len({(r.args[0], r.args[1]) for r in logged}) == len(logged)  # type: ignore[index]
    assert len(otel.spans()) == 2


def test_ignored_path_passes_straight_through(otel: Any) -> None:
    server = Server().run(mw(text_app(), otel, ignore_paths=("/healthz",)), environ_for("/healthz"))
    assert server.body == b"hello" and otel.spans() == []


def test_input_tap_copies_do_not_recurse() -> None:
    import copy

    class Insp:
        def body_chunk(self, chunk: bytes, more: bool) -> None:
            pass

    clone = copy.copy(InputTap(io.BytesIO(b"abc"), Insp(), None))  # type: ignore[arg-type]
    assert clone.read(1) == b"a"


def test_disabled_middleware_is_a_pass_through(otel: Any) -> None:
    app = text_app()
    middleware = mw(app, otel)
    middleware.enabled = False
    environ = environ_for()
    stream = environ["wsgi.input"]
    Server().run(middleware, environ)
    assert environ["wsgi.input"] is stream and otel.spans() == []


def test_metric_attributes_are_bounded(otel: Any) -> None:
    middleware = mw(text_app("404 Not Found"), otel)
    for i in range(50):
        Server().run(middleware, environ_for(f"/random/{i}/path", f"id={i}", REMOTE_ADDR=f"10.0.0.{i}"))
    combos = {tuple(sorted(a.items())) for a, _ in otel.metric_points("devsecmw.requests")}
    assert len(combos) == 1
    (attrs,) = combos
    keys = {k for k, _ in attrs}
    assert keys <= {"http.request.method", "http.response.status_code", "devsecmw.classification"}

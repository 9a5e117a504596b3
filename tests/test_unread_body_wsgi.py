"""Monitor mode, WSGI: the request body an app left unread is read once its response is complete.

Called the way a server calls an app (``environ``, ``start_response``, iterate, ``close()``),
with in-memory bodies (read inline), with a stream of unknown kind (not read), and with a
gunicorn-like stream over a real socket pair (read with a socket timeout). Real Flask routes
answer 405 and 404 through its test client. Every exchange is compared with the same one
without devsecmw and with the read switched off (``unread_timeout=0``).
"""

from __future__ import annotations

import io
import socket
from collections.abc import Iterable
from typing import Any

import pytest

from devsecmw.config import Config
from devsecmw.engine import Engine
from devsecmw.wsgi import SecurityMiddleware

STEADY: dict[str, Any] = {"time_budget": 5.0, "detector": Engine(Config())}
XXE = b'<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><foo>&xxe;</foo>'
SQLI_FORM = b"name=bob&id=1' UNION SELECT password FROM users--"
NEXT_REQUEST = b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n"


class Counting(io.BytesIO):
    """An in-memory body that counts the bytes taken from it."""


def app_reading(n: int | None, status: str = "405 Method Not Allowed") -> Any:
    """A WSGI app that reads ``n`` bytes of its body (None: none) and answers ``status``."""

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if n is not None:
            environ["wsgi.input"].read(n)
        start_response(status, [("Content-Type", "text/plain")])
        return [b"answer ", b"in two chunks"]

    return app


def environ_for(
    body: bytes, *, stream: Any = None, length: int | None = None, **extra: Any
) -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/api",
        "QUERY_STRING": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "10.1.2.3",
        "CONTENT_TYPE": "application/xml",
        "wsgi.url_scheme": "http",
        "wsgi.input": stream if stream is not None else Counting(body),
        **extra,
    }
    if length is not None or stream is None:
        environ["CONTENT_LENGTH"] = str(len(body) if length is None else length)
    return environ


def call(app: Any, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    """Serve one request as a server does: the status, headers and every chunk, then close()."""
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen["status"], seen["headers"] = status, headers
        return lambda data: None

    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return seen["status"], seen["headers"], body


def served(app: Any, make_environ: Any, otel: Any, **options: Any) -> tuple[Any, dict[str, Any]]:
    """The exchange without devsecmw, with the read off, and with it: the same to the client."""
    bare = call(app, make_environ())
    before = call(
        SecurityMiddleware(app, **{**otel.providers, **STEADY, **options, "unread_timeout": 0}),
        make_environ(),
    )
    environ = make_environ()
    wrapped = call(SecurityMiddleware(app, **{**otel.providers, **STEADY, **options}), environ)
    assert wrapped == bare == before
    return wrapped, environ


def attrs(otel: Any) -> Any:
    return otel.server_spans()[-1].attributes


# --------------------------------------------------------------------------- in memory
def test_an_unread_xxe_body_is_inspected_after_the_response(otel: Any) -> None:
    _, environ = served(app_reading(None), lambda: environ_for(XXE), otel)
    assert environ["wsgi.input"]._stream.tell() == len(XXE)
    assert "xxe" in attrs(otel)["devsecmw.signal.types"]
    assert "devsecmw.inspection.incomplete" not in attrs(otel)


def test_with_unread_timeout_0_nothing_is_read(otel: Any) -> None:
    environ = environ_for(XXE)
    call(SecurityMiddleware(app_reading(None), unread_timeout=0, **otel.providers, **STEADY), environ)
    assert environ["wsgi.input"]._stream.tell() == 0
    assert "xxe" not in attrs(otel)["devsecmw.signal.types"]


def test_the_rest_of_a_half_read_body_is_inspected(otel: Any) -> None:
    def make() -> dict[str, Any]:
        return environ_for(SQLI_FORM, CONTENT_TYPE="application/x-www-form-urlencoded")

    _, environ = served(app_reading(9, "200 OK"), make, otel)
    assert environ["wsgi.input"]._stream.tell() == len(SQLI_FORM)
    assert "sqli" in attrs(otel)["devsecmw.signal.types"]
    assert any(e["devsecmw.signal.location"] == "body:form:id" for e in otel.events())


def test_a_body_the_app_read_to_its_end_is_not_read_again(otel: Any) -> None:
    reads: list[int] = []

    class Recording(Counting):
        def read(self, size: int | None = -1) -> bytes:
            reads.append(-1 if size is None else size)
            return super().read(size)

    environ = environ_for(XXE, stream=Recording(XXE), length=len(XXE))
    call(SecurityMiddleware(app_reading(-1, "200 OK"), **otel.providers, **STEADY), environ)
    assert reads == [-1]  # the app's read(), nothing after it
    assert "xxe" in attrs(otel)["devsecmw.signal.types"]


def test_never_past_content_length_nor_past_the_cap(otel: Any) -> None:
    # What follows the body in the stream is not this request's.
    stream = Counting(XXE + NEXT_REQUEST)
    call(
        SecurityMiddleware(app_reading(None), **otel.providers, **STEADY),
        environ_for(XXE, stream=stream, length=len(XXE)),
    )
    assert stream.tell() == len(XXE)
    big = b"x=" + b"a" * 5000 + SQLI_FORM
    stream = Counting(big)
    environ = environ_for(
        big, stream=stream, length=len(big), CONTENT_TYPE="application/x-www-form-urlencoded"
    )
    call(SecurityMiddleware(app_reading(None), body_limit=100, **otel.providers, **STEADY), environ)
    assert stream.tell() == 100
    assert "sqli" not in attrs(otel)["devsecmw.signal.types"]


def test_a_terminated_body_is_read_to_its_end_or_the_cap(otel: Any) -> None:
    stream = Counting(XXE)
    environ = environ_for(XXE, stream=stream, **{"wsgi.input_terminated": True})
    call(SecurityMiddleware(app_reading(None), **otel.providers, **STEADY), environ)
    assert stream.tell() == len(XXE)
    assert "xxe" in attrs(otel)["devsecmw.signal.types"]


def test_no_content_length_and_not_terminated_is_no_body(otel: Any) -> None:
    stream = Counting(XXE)
    call(SecurityMiddleware(app_reading(None), **otel.providers, **STEADY), environ_for(XXE, stream=stream))
    assert stream.tell() == 0


def test_block_mode_does_not_read_after_the_response(otel: Any) -> None:
    stream = Counting(XXE + NEXT_REQUEST)
    environ = environ_for(XXE, stream=stream, length=len(XXE))
    call(
        SecurityMiddleware(app_reading(None), mode="block", body_limit=10, **otel.providers, **STEADY),
        environ,
    )
    assert stream.tell() == 10  # the read-ahead, up to the cap; nothing after the response


def test_an_app_exception_reads_nothing(otel: Any) -> None:
    def app(environ: Any, start_response: Any) -> Any:
        raise KeyError("boom")

    stream = Counting(XXE)
    with pytest.raises(KeyError):
        call(
            SecurityMiddleware(app, **otel.providers, **STEADY),
            environ_for(XXE, stream=stream, length=len(XXE)),
        )
    assert stream.tell() == 0


# --------------------------------------------------------------------------- socket streams
class Unknown:
    """A server's socket-backed stream that offers no bound on a read (wsgiref, werkzeug...)."""

    def __init__(self) -> None:
        self.reads = 0

    def read(self, size: int = -1) -> bytes:
        self.reads += 1
        raise AssertionError("devsecmw read a stream it cannot bound")


def test_a_stream_that_could_stall_is_not_read(otel: Any) -> None:
    stream = Unknown()
    call(
        SecurityMiddleware(app_reading(None), **otel.providers, **STEADY),
        environ_for(XXE, stream=stream, length=99),
    )
    assert stream.reads == 0
    # As before the read existed (the app did not read the body either): counted, no signal.
    assert "devsecmw.inspection.incomplete" not in attrs(otel)
    assert otel.error_count("body_unread", "server") == 1


def gunicorn_body(sock: socket.socket, length: int) -> Any:
    """gunicorn's own request body stream over ``sock`` (what its workers put in ``wsgi.input``)."""
    body = pytest.importorskip("gunicorn.http.body")
    unreader = pytest.importorskip("gunicorn.http.unreader")
    return body.Body(body.LengthReader(unreader.SocketUnreader(sock), length))


@pytest.fixture
def pair() -> Any:
    server, client = socket.socketpair()
    yield server, client
    server.close()
    client.close()


def gunicorn_environ(
    body: bytes, stream: Any, length: int, sock: socket.socket, **extra: Any
) -> dict[str, Any]:
    return environ_for(body, stream=stream, length=length, **{"gunicorn.socket": sock, **extra})


def test_gunicorn_the_unread_body_is_read_when_it_is_there(otel: Any, pair: Any) -> None:
    server, client = pair
    client.sendall(XXE + NEXT_REQUEST)  # pipelined: the next request follows the body
    stream = gunicorn_body(server, len(XXE))
    call(
        SecurityMiddleware(app_reading(None), **otel.providers, **STEADY),
        gunicorn_environ(XXE, stream, len(XXE), server),
    )
    assert "xxe" in attrs(otel)["devsecmw.signal.types"]
    assert stream.read() == b""  # the body was read to its end ...
    assert not stream.failed
    assert stream.reader.unreader.read() == NEXT_REQUEST  # ... and not a byte of the next request


def test_gunicorn_the_rest_of_a_half_read_body(otel: Any, pair: Any) -> None:
    server, client = pair
    body = b"x=" + b"a" * 3000 + b"&" + SQLI_FORM
    client.sendall(body)
    stream = gunicorn_body(server, len(body))
    environ = gunicorn_environ(
        body, stream, len(body), server, CONTENT_TYPE="application/x-www-form-urlencoded"
    )
    call(SecurityMiddleware(app_reading(100, "200 OK"), **otel.providers, **STEADY), environ)
    assert "sqli" in attrs(otel)["devsecmw.signal.types"]
    assert stream.read() == b""


def test_gunicorn_a_body_that_arrives_within_the_wait_is_read(otel: Any, pair: Any) -> None:
    import threading

    server, client = pair
    stream = gunicorn_body(server, len(XXE))
    # Sent once devsecmw waits for it (the app has answered): a slow but not stalled client.
    sender = threading.Timer(0.02, client.sendall, (XXE,))
    sender.start()
    try:
        call(
            SecurityMiddleware(app_reading(None), unread_timeout=5.0, **otel.providers, **STEADY),
            gunicorn_environ(XXE, stream, len(XXE), server),
        )
    finally:
        sender.join()
    assert "xxe" in attrs(otel)["devsecmw.signal.types"]


def test_gunicorn_a_slow_client_is_not_waited_for_and_nothing_is_lost(otel: Any, pair: Any) -> None:
    server, client = pair
    rest = b"&more=" + b"b" * 2000
    client.sendall(SQLI_FORM)  # then nothing: less than gunicorn's 1 KiB read step
    length = len(SQLI_FORM) + len(rest)
    stream = gunicorn_body(server, length)
    environ = gunicorn_environ(
        SQLI_FORM, stream, length, server, CONTENT_TYPE="application/x-www-form-urlencoded"
    )
    call(SecurityMiddleware(app_reading(None), unread_timeout=0.05, **otel.providers, **STEADY), environ)
    assert attrs(otel)["devsecmw.inspection.incomplete"] is True
    assert otel.error_count("body_unread", "timeout") == 1
    # No read blocked, timed out or failed in gunicorn: its own drain gets the whole body, in order.
    assert not stream.failed and server.gettimeout() is None
    client.sendall(rest + NEXT_REQUEST)
    assert stream.read() == SQLI_FORM + rest
    assert stream.reader.unreader.read() == NEXT_REQUEST


def test_gunicorn_a_client_gone_mid_body_is_inspected_on_what_arrived(otel: Any, pair: Any) -> None:
    server, client = pair
    client.sendall(SQLI_FORM)
    client.shutdown(socket.SHUT_WR)
    stream = gunicorn_body(server, 10_000)
    environ = gunicorn_environ(
        SQLI_FORM, stream, 10_000, server, CONTENT_TYPE="application/x-www-form-urlencoded"
    )
    call(SecurityMiddleware(app_reading(None), **otel.providers, **STEADY), environ)
    assert "sqli" in attrs(otel)["devsecmw.signal.types"]


def test_gunicorn_a_chunked_body_is_not_read(otel: Any, pair: Any) -> None:
    server, client = pair
    client.sendall(b"5\r\nhello\r\n0\r\n\r\n")
    body = pytest.importorskip("gunicorn.http.body")
    unreader = pytest.importorskip("gunicorn.http.unreader")

    class Req:
        trailers = None

    stream = body.Body(body.ChunkedReader(Req(), unreader.SocketUnreader(server)))
    environ = environ_for(b"", stream=stream, **{"gunicorn.socket": server, "wsgi.input_terminated": True})
    call(SecurityMiddleware(app_reading(None), **otel.providers, **STEADY), environ)
    assert otel.error_count("body_unread", "server") == 1
    assert stream.read() == b"hello"


# --------------------------------------------------------------------------- Flask
flask = pytest.importorskip("flask")


def flask_app(**options: Any) -> Any:
    app = flask.Flask(__name__)

    @app.get("/items")
    def items() -> str:
        return "items"

    if options:
        app.wsgi_app = SecurityMiddleware(app.wsgi_app, **options)  # type: ignore[method-assign]
    return app


@pytest.mark.parametrize("path", ["/items", "/nowhere"])
def test_flask_405_and_404_see_the_unread_body(otel: Any, path: str) -> None:
    def exchange(**options: Any) -> tuple[int, list[tuple[str, str]], bytes]:
        r = flask_app(**options).test_client().post(path, data=XXE, content_type="application/xml")
        return r.status_code, sorted(r.headers.items()), r.data

    bare = exchange()
    assert exchange(unread_timeout=0, **otel.providers, **STEADY) == bare
    otel.clear()
    assert exchange(**otel.providers, **STEADY) == bare
    assert bare[0] == (405 if path == "/items" else 404)
    assert "xxe" in attrs(otel)["devsecmw.signal.types"]

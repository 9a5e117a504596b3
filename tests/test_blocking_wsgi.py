"""Block mode in the WSGI adapter (plain PEP 3333 apps, then Flask's test client).

The body is read ahead before the app runs: inline from in-memory streams
(``io.BytesIO``, what test clients use), in a helper thread from any other
stream. :class:`Upload` plays a server's ``wsgi.input`` that is not in memory:
it serves the body in parts, returns short reads like a socket, and at a
:data:`STALL` waits until the harness releases it (when the app starts, or
once the response has been received: "the client sends the rest later"). So
the read-ahead's wait always runs out at a stall, whatever the machine's
speed, and no test depends on timing. It also records whether two readers
were ever in it at once.
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from conftest import trace_id_of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import devsecmw.blocking
import devsecmw.bodytap.ahead
import devsecmw.wsgi
from devsecmw.config import Config
from devsecmw.engine import Budget, Engine
from devsecmw.request import HttpRequest
from devsecmw.signals import Signal
from devsecmw.wsgi import SecurityMiddleware, wsgi_status

# A generous inspection budget (load-independent detection) and one compiled engine for the module.
STEADY: dict[str, Any] = {"time_budget": 5.0, "detector": Engine(Config())}
# Where the body is all there, the read-ahead must never be cut short by a loaded machine.
PATIENT = 60.0

SQLI_QUERY = "q=1%27%20UNION%20SELECT%20password%20FROM%20users--"
SQLI_FORM = b"name=bob&q=1%27+UNION+SELECT+password+FROM+users--"
XSS_JSON = b'{"user": {"name": "bob", "comment": "<script>alert(document.cookie)</script>"}}'
BENIGN_JSON = b'{"user": {"name": "bob", "comment": "Leave it at the door, please."}}'
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
FORM = "application/x-www-form-urlencoded"
STALL = object()


# --------------------------------------------------------------------------- a server's input
class Upload:
    """A request body stream that is not in memory (see the module docstring)."""

    def __init__(self, *parts: Any) -> None:
        self.parts: list[Any] = [p for p in parts if p is STALL or p]
        self.resume = threading.Event()
        self.lock = threading.Lock()
        self.active = 0
        self.overlap = False
        self.readers: list[str] = []  # the thread of each read call, in order

    @contextmanager
    def _reading(self) -> Iterator[None]:
        with self.lock:
            self.active += 1
            self.overlap = self.overlap or self.active > 1
            self.readers.append(threading.current_thread().name)
        try:
            yield
        finally:
            with self.lock:
                self.active -= 1

    def _next(self, size: int | None, line: bool = False) -> bytes:
        out = b""
        while size is None or len(out) < size:
            if not self.parts:
                break
            head = self.parts[0]
            if head is STALL:
                if out:
                    break  # a short read: what has arrived so far
                self.resume.wait()
                self.parts.pop(0)
                continue
            room = len(head) if size is None else size - len(out)
            if line and b"\n" in head[:room]:
                room = head.index(b"\n") + 1
            out += head[:room]
            if room < len(head):
                self.parts[0] = head[room:]
            else:
                self.parts.pop(0)
            if line and out.endswith(b"\n"):
                break
        return out

    def read(self, size: int | None = -1) -> bytes:
        with self._reading():
            return self._next(None if size is None or size < 0 else size)

    def readline(self, size: int | None = -1) -> bytes:
        with self._reading():
            return self._next(None if size is None or size < 0 else size, line=True)

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines: list[bytes] = []
        total = 0
        while line := self.readline():
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                break
        return lines

    def __iter__(self) -> Upload:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line


class UploadInto(Upload):
    """The same, with ``readinto`` (as io.BufferedReader and many servers' inputs have)."""

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        with self._reading():
            data = self._next(len(view))
        view[: len(data)] = data
        return len(data)


# --------------------------------------------------------------------------- the harness
@dataclass
class Result:
    status: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    app_called: bool = False
    app_read: bytes | None = None

    @property
    def code(self) -> int:
        return int(str(self.status)[:3])


def environ_for(
    method: str = "GET",
    path: str = "/submit",
    query: str = "",
    body: bytes | None = None,
    stream: Any = None,
    ctype: str = "application/json",
    length: int | None = -1,
    accept: str | None = None,
    client: str = "203.0.113.5",
    terminated: bool = False,
) -> dict[str, Any]:
    env: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": client,
        "HTTP_HOST": "t",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": stream if stream is not None else io.BytesIO(body or b""),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    if body is not None or stream is not None:
        env["CONTENT_TYPE"] = ctype
    if length == -1 and body is not None:
        length = len(body)
    if length is not None and length >= 0:
        env["CONTENT_LENGTH"] = str(length)
    if terminated:
        env["wsgi.input_terminated"] = True
        env["HTTP_TRANSFER_ENCODING"] = "chunked"
    if accept is not None:
        env["HTTP_ACCEPT"] = accept
    return env


Reader = Callable[[Any], bytes]


def read_all(s: Any) -> bytes:
    return bytes(s.read())


READERS: dict[str, Reader] = {
    "read": read_all,
    "read_n": lambda s: b"".join(iter(lambda: s.read(777), b"")),
    "readline": lambda s: b"".join(iter(s.readline, b"")),
    "readline_n": lambda s: b"".join(iter(lambda: s.readline(50), b"")),
    "readlines": lambda s: b"".join(s.readlines()),
    "iterate": lambda s: b"".join(s),
}


def readinto_all(s: Any) -> bytes:
    out = bytearray()
    buf = bytearray(1000)
    while n := s.readinto(buf):
        out += buf[:n]
    return bytes(out)


def reading_app(how: Reader = read_all, respond_first: bool = False) -> Callable[..., Iterable[bytes]]:
    """Reads the body ``how`` it is told and answers with a digest of what it read."""

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if respond_first:
            start_response("200 OK", [("content-type", "text/plain")])
        data = (
            how(environ["wsgi.input"])
            if environ.get("CONTENT_LENGTH") or environ.get("wsgi.input_terminated")
            else b""
        )
        environ["test.read"] = data
        if not respond_first:
            start_response("200 OK", [("content-type", "text/plain")])
        return [hashlib.sha256(data).hexdigest().encode()]

    return app


def quiet_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """Answers without reading the body."""
    start_response("200 OK", [("content-type", "text/plain")])
    return [b"ok"]


def run(
    app: Callable[..., Iterable[bytes]],
    environ: dict[str, Any],
    otel: Any = None,
    mw: SecurityMiddleware | None = None,
    **options: Any,
) -> Result:
    """One request through ``SecurityMiddleware(app, **options)`` played by a minimal server."""
    result = Result()
    stream = environ["wsgi.input"]

    def recorded(env: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        result.app_called = True
        if isinstance(stream, Upload):
            stream.resume.set()  # the app runs: the rest of a stalled upload arrives
        try:
            return app(env, start_response)
        finally:
            result.app_read = env.get("test.read")

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        result.status = status
        result.headers = {k.lower(): v for k, v in headers}
        return lambda data: None

    if mw is None:
        providers = otel.providers if otel is not None else {}
        mw = SecurityMiddleware(recorded, **STEADY, **providers, **options)
    else:
        mw.app = recorded
    out = mw(environ, start_response)
    try:
        result.body = b"".join(out)
        if isinstance(stream, Upload):
            stream.resume.set()  # the response is out: the client goes on sending
    finally:
        close = getattr(out, "close", None)
        if close is not None:
            close()
    return result


def no_helper_threads() -> bool:
    return not [t for t in threading.enumerate() if t.name == "devsecmw-read-ahead"]


# --------------------------------------------------------------------------- block vs monitor
def test_status_line_of_a_code_without_a_reason_phrase() -> None:
    assert wsgi_status(403) == "403 Forbidden"
    assert wsgi_status(499) == "499 Blocked"


def test_benign_request_in_block_mode_reaches_the_app(otel: Any) -> None:
    r = run(reading_app(), environ_for(query="q=garden+chairs"), otel, mode="block")
    assert r.app_called and r.code == 200
    assert otel.span().attributes["devsecmw.blocked"] is False
    assert "devsecmw.would_block" not in otel.span().attributes


# --------------------------------------------------------------------------- what counts
def test_allowlisted_networks_are_never_blocked_and_their_body_is_not_read_ahead(otel: Any) -> None:
    upload = Upload(XSS_JSON[:20], XSS_JSON[20:])
    env = environ_for("POST", stream=upload, length=len(XSS_JSON), client="10.1.2.3")
    r = run(reading_app(), env, otel, mode="block", allow_networks=["10.0.0.0/8"])
    assert r.app_called and r.code == 200 and r.app_read == XSS_JSON
    assert "devsecmw-read-ahead" not in upload.readers  # read by the app alone
    assert "xss" in otel.span().attributes["devsecmw.signal.types"]
    other = environ_for("POST", body=XSS_JSON, client="192.0.2.1")
    assert run(reading_app(), other, mode="block", allow_networks=["10.0.0.0/8"]).code == 403


# --------------------------------------------------------------------------- the body, read ahead
@pytest.mark.parametrize("source", ["memory", "stream"])
def test_benign_body_is_replayed_exactly(otel: Any, source: str) -> None:
    stream = io.BytesIO(BENIGN_JSON) if source == "memory" else Upload(BENIGN_JSON[:7], BENIGN_JSON[7:])
    env = environ_for("POST", stream=stream, length=len(BENIGN_JSON))
    r = run(reading_app(), env, otel, mode="block", block_read_timeout=PATIENT)
    assert r.app_called and r.code == 200 and r.app_read == BENIGN_JSON
    assert env["CONTENT_LENGTH"] == str(len(BENIGN_JSON))  # Content-Length means what it meant
    assert otel.span().attributes["devsecmw.classification"] == "benign"


BIG = b"".join(b"line %05d " % i + bytes(range(32, 127)) + b"\n" for i in range(1200))  # ~125 KB


# The adapter contract (tests/test_adapter_contract.py) covers what every adapter does; here is
# what only WSGI shows: a stream read ahead in the helper thread, and every read method.
@pytest.mark.parametrize(
    ("ctype", "body", "signal"), [("application/json", XSS_JSON, "xss"), (FORM, SQLI_FORM, "sqli")]
)
def test_attack_in_a_streamed_body_is_read_ahead_in_the_helper_thread(
    otel: Any, ctype: str, body: bytes, signal: str
) -> None:
    stream = Upload(body[:10], body[10:])
    env = environ_for("POST", stream=stream, ctype=ctype, length=len(body))
    r = run(reading_app(), env, otel, mode="block", block_read_timeout=PATIENT)
    assert not r.app_called and r.code == 403
    assert signal in otel.span().attributes["devsecmw.signal.types"]
    assert set(stream.readers) == {"devsecmw-read-ahead"}  # read in the helper thread
    assert not stream.overlap
    assert no_helper_threads()


@pytest.mark.parametrize("how", [*READERS, "readinto"])
@pytest.mark.parametrize("source", ["memory", "stream"])
def test_body_larger_than_the_cap_reaches_the_app_by_every_read_method(
    otel: Any, how: str, source: str
) -> None:
    reader = readinto_all if how == "readinto" else READERS[how]
    parts = [BIG[i : i + 3000] for i in range(0, len(BIG), 3000)]
    stream = io.BytesIO(BIG) if source == "memory" else UploadInto(*parts)
    env = environ_for("POST", stream=stream, ctype="text/plain", length=len(BIG))
    r = run(reading_app(reader), env, otel, mode="block", body_limit=10_000, block_read_timeout=PATIENT)
    assert r.app_called and r.code == 200
    assert r.app_read == BIG
    assert otel.error_count("read_ahead", "timeout") == 0
    if isinstance(stream, Upload):
        assert stream.readers[0] == "devsecmw-read-ahead" and not stream.overlap
        # The cap, not the whole upload, was read ahead.
        assert stream.readers.count("devsecmw-read-ahead") == 2  # 8 KiB, then the 1808 bytes left of it


@pytest.mark.parametrize("how", ["read", "readline", "iterate"])
def test_chunked_body_is_read_ahead_to_its_end_and_replayed(otel: Any, how: str) -> None:
    body = b"a=1\nb=2\nc=3\n" * 50
    env = environ_for(
        "POST", stream=Upload(body[:5], body[5:]), ctype="text/plain", length=None, terminated=True
    )
    r = run(reading_app(READERS[how]), env, otel, mode="block", block_read_timeout=PATIENT)
    assert r.app_called and r.app_read == body


def test_chunked_attack_is_blocked(otel: Any) -> None:
    stream = Upload(SQLI_FORM[:9], SQLI_FORM[9:])
    env = environ_for("POST", stream=stream, ctype=FORM, length=None, terminated=True)
    r = run(reading_app(), env, otel, mode="block", block_read_timeout=PATIENT)
    assert r.code == 403 and not r.app_called
    assert "sqli" in otel.span().attributes["devsecmw.signal.types"]


def test_attack_within_the_cap_of_a_larger_body_is_blocked_without_reading_the_rest(otel: Any) -> None:
    body = SQLI_FORM + b"&pad=" + b"x" * 50_000
    upload = Upload(*[body[i : i + 1000] for i in range(0, len(body), 1000)])
    env = environ_for("POST", stream=upload, ctype=FORM, length=len(body))
    r = run(reading_app(), env, otel, mode="block", body_limit=2000, block_read_timeout=PATIENT)
    assert r.code == 403 and not r.app_called
    assert sum(len(p) for p in upload.parts) == len(body) - 2000  # the cap, not the whole upload


def test_readinto_is_offered_only_when_the_server_stream_has_it(otel: Any) -> None:
    seen: dict[str, bool] = {}

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        seen[type(environ["wsgi.input"]._tap._stream).__name__] = hasattr(environ["wsgi.input"], "readinto")
        start_response("200 OK", [])
        return [environ["wsgi.input"].read()]

    for stream in (Upload(BENIGN_JSON), UploadInto(BENIGN_JSON)):
        run(app, environ_for("POST", stream=stream, length=len(BENIGN_JSON)), otel, mode="block")
    assert seen == {"Upload": False, "UploadInto": True}


class Blind:
    """A detector that finds nothing, fast: the property below is about bytes, not detection."""

    def inspect(self, request: HttpRequest, phase: str, budget: Budget | None = None) -> list[Signal]:
        return []


REPLAY_MW: dict[int, SecurityMiddleware] = {}
OPS = st.lists(
    st.tuples(
        st.sampled_from(["read", "read_all", "readline", "readline_all", "readlines", "next", "readinto",
                         "read1", "readinto1"]),
        st.integers(min_value=0, max_value=300),
    ),
    max_size=12,
)  # fmt: skip


def apply(stream: Any, ops: list[tuple[str, int]]) -> list[Any]:
    """What each call returned; read1/readinto1 may return less than asked (recorded as bytes read)."""
    out: list[Any] = []
    for op, n in ops:
        if op in ("read1", "readinto1") and not hasattr(stream, op):
            continue
        if op == "read":
            out.append(stream.read(n))
        elif op == "read_all":
            out.append(stream.read())
        elif op == "readline":
            out.append(stream.readline(n))
        elif op == "readline_all":
            out.append(stream.readline())
        elif op == "readlines":
            out.append(stream.readlines(n))
        elif op == "next":
            out.append(next(stream, None))
        elif op == "readinto":
            buf = bytearray(n)
            out.append(bytes(buf[: stream.readinto(buf)]))
        elif op == "read1":
            out.append(("short", stream.read1(n)))
        else:
            buf = bytearray(n)
            out.append(("short", bytes(buf[: stream.readinto1(buf)])))
    out.append(stream.read())  # the rest
    return out


def flat(results: list[Any]) -> bytes:
    parts: list[bytes] = []
    for r in results:
        r = r[1] if isinstance(r, tuple) else r
        parts.extend(r if isinstance(r, list) else [r or b""])
    return b"".join(parts)


#: How the environ describes the stream: its length, shorter, longer, none (chunked), or no body.
SHAPES = ("exact", "shorter", "longer", "terminated", "absent")


def declared(shape: str, size: int) -> tuple[int | None, bool]:
    """``(CONTENT_LENGTH, wsgi.input_terminated)`` of a stream of ``size`` bytes, by shape."""
    if shape == "terminated":
        return None, True
    if shape == "absent":
        return None, False
    return {"exact": size, "shorter": size // 2, "longer": size + 10}[shape], False


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    lines=st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=20),
    cap=st.sampled_from([1, 5, 37, 100, 600]),
    ops=OPS,
    source=st.sampled_from(["memory", "stream"]),
    shape=st.sampled_from(SHAPES),
)
def test_replay_returns_what_the_original_stream_returns(
    lines: list[bytes], cap: int, ops: list[tuple[str, int]], source: str, shape: str
) -> None:
    # Whatever CONTENT_LENGTH says (or does not say), the app reads what the bare stream gives:
    # the read-ahead is a prefix of the stream, and the stream goes on after it.
    body = b"\n".join(lines)

    def fresh() -> Any:
        return (
            io.BytesIO(body)
            if source == "memory"
            else UploadInto(*[body[i : i + 37] for i in range(0, len(body), 37)])
        )

    expected = apply(fresh(), ops)
    got: list[Any] = []

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        got.extend(apply(environ["wsgi.input"], ops))
        start_response("200 OK", [])
        return [b""]

    length, terminated = declared(shape, len(body))
    env = environ_for("POST", stream=fresh(), length=length, terminated=terminated)
    mw = REPLAY_MW.get(cap)
    if mw is None:  # built once per cap: construction costs far more than a request
        mw = REPLAY_MW[cap] = SecurityMiddleware(
            app, mode="block", body_limit=cap, detector=Blind(), block_read_timeout=PATIENT
        )
    run(app, env, mw=mw)
    assert flat(got) == flat(expected) == body  # every byte, in order
    for g, e in zip(got, expected, strict=True):
        if isinstance(e, tuple):  # a short read may stop earlier (at the end of the read-ahead)
            if g != e:
                break  # from here on the two streams are at different positions
        else:  # calls that fill what they ask for return the very same
            assert g == e


@pytest.mark.parametrize("mode", ["monitor", "block"])
@pytest.mark.parametrize("source", ["memory", "stream"])
def test_content_length_shorter_than_the_stream_is_not_imposed_on_the_app(source: str, mode: str) -> None:
    # Reproducer: CONTENT_LENGTH=5 on a stream holding "hello world": the bare app and monitor
    # mode read "hello world", block mode read "hello".
    def fresh() -> Any:
        return io.BytesIO(b"hello world") if source == "memory" else Upload(b"hel", b"lo wo", b"rld")

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        environ["test.read"] = environ["wsgi.input"].read()
        start_response("200 OK", [])
        return [b""]

    bare = environ_for("POST", stream=fresh(), length=5)
    app(bare, lambda *a: None)
    r = run(app, environ_for("POST", stream=fresh(), length=5), mode=mode, block_read_timeout=PATIENT)
    assert bare["test.read"] == r.app_read == b"hello world"


@pytest.mark.parametrize("how", [*READERS, "readinto"])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("source", ["memory", "stream"])
@pytest.mark.parametrize("cap", [3000, 64 * 1024])  # the read-ahead stops at the cap, or at the length
def test_every_reader_gets_the_bare_streams_bytes_whatever_the_declared_length(
    how: str, shape: str, source: str, cap: int
) -> None:
    body = b"".join(b"row %03d: " % i + b"x" * (i % 50) + b"\n" for i in range(200))  # ~10 KB
    reader = readinto_all if how == "readinto" else READERS[how]

    def fresh() -> Any:
        parts = [body[i : i + 700] for i in range(0, len(body), 700)]
        return io.BytesIO(body) if source == "memory" else UploadInto(*parts)

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        environ["test.read"] = reader(environ["wsgi.input"])  # reads whatever CONTENT_LENGTH says
        start_response("200 OK", [])
        return [b""]

    length, terminated = declared(shape, len(body))
    bare = environ_for("POST", stream=fresh(), length=length, terminated=terminated)
    app(bare, lambda *a: None)
    for mode in ("monitor", "block"):
        env = environ_for("POST", stream=fresh(), length=length, terminated=terminated)
        r = run(app, env, mode=mode, body_limit=cap, block_read_timeout=PATIENT)
        assert r.app_read == bare["test.read"] == body, mode


@pytest.mark.internal_errors_expected
def test_no_thread_to_be_had_means_the_head_alone_decides(otel: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_thread(target: Any) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(devsecmw.bodytap.ahead, "_spawn", no_thread)
    upload = Upload(SQLI_FORM[:10], SQLI_FORM[10:])
    env = environ_for("POST", stream=upload, ctype=FORM, length=len(SQLI_FORM))
    r = run(reading_app(), env, otel, mode="block", block_read_timeout=PATIENT)
    assert r.app_called and r.code == 200 and r.app_read == SQLI_FORM  # inspected as the app read it
    assert otel.error_count("read_ahead", "thread") == 1
    span = otel.span()
    assert "sqli" in span.attributes["devsecmw.signal.types"]
    assert span.attributes["devsecmw.blocked"] is False and span.attributes["devsecmw.would_block"] is True
    assert (
        run(reading_app(), environ_for(query=SQLI_QUERY), mode="block").code == 403
    )  # the head still decides


# --------------------------------------------------------------------------- slow bodies
def test_slow_body_is_not_waited_for_and_the_app_reads_every_byte(otel: Any) -> None:
    # The attack arrives only once the app runs: the read-ahead cannot see it and gives up.
    first, rest = b'{"user": {"name": "bob", ', b'"comment": "<script>alert(document.cookie)</script>"}}'
    upload = Upload(first, STALL, rest)
    env = environ_for("POST", stream=upload, length=len(first + rest))
    r = run(reading_app(READERS["read_n"]), env, otel, mode="block", block_read_timeout=0.05)
    assert r.app_called and r.code == 200  # not blocked for what it did not see
    assert r.app_read == first + rest
    assert not upload.overlap  # the app's first read waited for the helper's read in flight
    assert otel.error_count("read_ahead", "timeout") == 1
    span = otel.span()
    # What arrived late was inspected as the app read it, and recorded: too late to block.
    assert "xss" in span.attributes["devsecmw.signal.types"]
    assert span.attributes["devsecmw.blocked"] is False
    assert span.attributes["devsecmw.would_block"] is True
    assert no_helper_threads()


def test_attack_seen_before_a_stall_is_blocked_and_the_read_in_flight_settled(otel: Any) -> None:
    upload = Upload(SQLI_FORM, STALL, b"&more=1")
    env = environ_for("POST", stream=upload, ctype=FORM, length=len(SQLI_FORM) + 7)
    r = run(reading_app(), env, otel, mode="block", block_read_timeout=0.05)
    assert r.code == 403 and not r.app_called
    assert otel.error_count("read_ahead", "timeout") == 1
    assert otel.span().attributes["devsecmw.blocked"] is True
    # close() waited for the helper's read in flight: nothing reads the stream after the request.
    assert upload.active == 0 and upload.parts == [] and no_helper_threads()


def test_slow_body_the_app_never_reads_is_settled_at_close(otel: Any) -> None:
    upload = Upload(b"name=", STALL, b"bob")
    env = environ_for("POST", stream=upload, ctype=FORM, length=8)
    r = run(quiet_app, env, otel, mode="block", block_read_timeout=0.05)
    assert r.code == 200 and r.body == b"ok"
    assert upload.active == 0 and no_helper_threads()


@pytest.mark.internal_errors_expected
def test_stream_error_during_read_ahead_reaches_the_app_from_its_own_read(otel: Any) -> None:
    class Gone(OSError):
        pass

    class Failing(Upload):
        def read(self, size: int | None = -1) -> bytes:
            if self.parts:
                return super().read(size)
            raise Gone("client went away")

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        stream = environ["wsgi.input"]
        reads = []
        for size in (5, 100, 100):  # the third read meets the failure, as it does bare
            try:
                reads.append(stream.read(size))
            except Gone:
                reads.append(b"<gone>")
        start_response("200 OK", [])
        return [b"|".join(reads)]

    env = environ_for("POST", stream=Failing(b"name=bob"), ctype=FORM, length=100)
    bare = b"".join(app({**env, "wsgi.input": Failing(b"name=bob")}, lambda *a: None))
    r = run(app, env, otel, mode="block", block_read_timeout=PATIENT)
    assert r.body == bare == b"name=|bob|<gone>"


# --------------------------------------------------------------------------- empty bodies
@pytest.mark.parametrize("length", [0, None])
def test_empty_post_does_not_hang_nor_read(otel: Any, length: int | None) -> None:
    upload = Upload()  # a read of a body that does not exist would wait forever
    env = environ_for("POST", stream=upload, length=length)
    r = run(quiet_app, env, otel, mode="block", block_read_timeout=PATIENT)
    assert r.code == 200 and upload.readers == []
    assert otel.error_count("read_ahead", "timeout") == 0


def test_empty_chunked_post(otel: Any) -> None:
    env = environ_for("POST", stream=Upload(), length=None, terminated=True)
    r = run(reading_app(), env, otel, mode="block", block_read_timeout=PATIENT)
    assert r.code == 200 and r.app_read == b""


# --------------------------------------------------------------------------- response already started
def test_nothing_is_blocked_once_the_app_has_called_start_response(otel: Any) -> None:
    upload = Upload(b"name=bob&", STALL, SQLI_FORM)
    env = environ_for("POST", stream=upload, ctype=FORM, length=9 + len(SQLI_FORM))
    r = run(reading_app(respond_first=True), env, otel, mode="block", block_read_timeout=0.05)
    assert r.code == 200 and r.app_read == b"name=bob&" + SQLI_FORM
    span = otel.span()
    assert "sqli" in span.attributes["devsecmw.signal.types"]
    assert span.attributes["devsecmw.blocked"] is False
    assert span.attributes["devsecmw.would_block"] is True
    assert span.attributes["http.response.status_code"] == 200


# --------------------------------------------------------------------------- flagged clients
def test_behind_an_untrusted_proxy_one_users_attacks_never_block_the_others(otel: Any) -> None:
    # Reproducer: defaults (no trusted proxies), every user arrives from the proxy's address;
    # 12 attacks from one user flagged that address and two other users got 403.
    mw = SecurityMiddleware(reading_app(), mode="block", **STEADY, **otel.providers)

    def via_proxy(query: str, user: str) -> Result:
        env = environ_for(query=query, client="127.0.0.1")
        env["HTTP_X_FORWARDED_FOR"] = user
        return run(reading_app(), env, mw=mw)

    assert [via_proxy(SQLI_QUERY, "198.51.100.66").code for _ in range(12)] == [403] * 12
    assert "client_flagged" in otel.signal_types()  # counted and reported...
    otel.clear()
    for user in ("198.51.100.67", "192.0.2.44"):
        clean = via_proxy("q=shoes", user)
        assert clean.code == 200 and clean.app_called  # ...but nobody is denied for it
    assert all(span.attributes["devsecmw.blocked"] is False for span in otel.server_spans())


# --------------------------------------------------------------------------- Flask
def done(response: Any) -> Any:
    """Read and close a test-client response, as a server would (the span ends at close)."""
    response.get_data()
    response.close()
    return response


def flask_app(**options: Any) -> Any:
    flask = pytest.importorskip("flask")
    app = flask.Flask("devsecmw_block_test")
    app.config["called"] = []

    @app.post("/echo")
    def echo() -> Any:
        app.config["called"].append("echo")
        return flask.Response(flask.request.get_data(), mimetype="application/octet-stream")

    @app.post("/json")
    def json_view() -> Any:
        app.config["called"].append("json")
        return {"name": flask.request.get_json()["user"]["name"]}

    @app.post("/form")
    def form() -> Any:
        app.config["called"].append("form")
        return flask.request.form.get("name", "")

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> Any:
        app.config["called"].append("item")
        return {"id": item_id}

    app.wsgi_app = SecurityMiddleware(app.wsgi_app, **STEADY, **options)  # type: ignore[method-assign]
    return app


def test_flask_block_and_monitor_for_the_same_attacks(otel: Any) -> None:
    for mode, expected in (("monitor", 200), ("block", 403)):
        app = flask_app(mode=mode, block_read_timeout=PATIENT, **otel.providers)
        client = app.test_client()
        query = done(client.get("/items/3", query_string={"q": "1' UNION SELECT password FROM users--"}))
        body_json = done(client.post("/json", data=XSS_JSON, content_type="application/json"))
        body_form = done(
            client.post("/form", data={"name": "bob", "q": "1' UNION SELECT password FROM users--"})
        )
        assert [query.status_code, body_json.status_code, body_form.status_code] == [expected] * 3
        spans = otel.spans()[-3:]
        assert [s.attributes["devsecmw.blocked"] for s in spans] == [mode == "block"] * 3
        assert all(s.attributes["devsecmw.would_block"] is True for s in spans)
        if mode == "block":
            assert app.config["called"] == []  # no view ran
            assert body_json.json == {"error": "request blocked", "trace_id": trace_id_of(spans[1])}
            assert "http.route" not in spans[0].attributes  # Flask never routed it
        else:
            assert app.config["called"] == ["item", "json", "form"]
        otel.clear()


def test_flask_block_response_by_accept(otel: Any) -> None:
    client = flask_app(mode="block", **otel.providers).test_client()
    r = done(
        client.post(
            "/json", data=XSS_JSON, content_type="application/json", headers={"Accept": BROWSER_ACCEPT}
        )
    )
    assert r.status_code == 403 and r.content_type == "text/html; charset=utf-8"
    assert f"<code>{trace_id_of(otel.span())}</code>" in r.get_data(as_text=True)


def test_flask_bodies_pass_whole_in_block_mode(otel: Any) -> None:
    app = flask_app(mode="block", body_limit=4096, block_read_timeout=PATIENT, **otel.providers)
    client = app.test_client()
    assert done(client.post("/echo", data=BIG)).data == BIG
    assert done(client.post("/json", data=BENIGN_JSON, content_type="application/json")).json == {
        "name": "bob"
    }
    assert done(client.post("/form", data={"name": "O'Brien"})).data == b"O'Brien"
    assert done(client.post("/echo", data=b"")).data == b""
    assert app.config["called"] == ["echo", "json", "form", "echo"]
    assert not any(s.attributes["devsecmw.blocked"] for s in otel.spans())


def test_flask_flagged_client(otel: Any) -> None:
    client = flask_app(mode="block", flag_attacks=2, **otel.providers).test_client()
    for _ in range(2):
        assert (
            done(client.get("/items/1", query_string={"q": "<script>alert(1)</script>"})).status_code == 403
        )
    assert done(client.get("/items/1")).status_code == 403  # flagged: even a clean request
    other = done(client.get("/items/1", environ_base={"REMOTE_ADDR": "198.51.100.8"}))
    assert other.status_code == 200

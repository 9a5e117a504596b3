"""Block mode end to end under a real gunicorn (sync worker) on 127.0.0.1.

One gunicorn process serves one WSGI app (Werkzeug's dispatcher) that mounts
the same Flask app twice behind ``devsecmw.wsgi.SecurityMiddleware``:

- ``/block``    with ``mode="block"``
- ``/monitor``  with the default monitor mode

and, bare, ``/counts`` (devsecmw's error counters, from an in-memory metric
reader). Both sit behind a "proxy" (trusted ``127.0.0.1``) so that
``X-Forwarded-For`` tells the clients apart. Finished spans are appended to a
file by an SDK exporter, with devsecmw's internal errors and a marker when a
view starts (so a slow client can wait until the app runs before sending the
rest, instead of guessing with a sleep). Bounded requests; the server is
always terminated.
"""

from __future__ import annotations

import json
import os
import socket
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from servers import gunicorn as serve_gunicorn

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(os.name != "posix", reason="gunicorn runs on POSIX only"),
]
pytest.importorskip("gunicorn")
pytest.importorskip("flask")
httpx = pytest.importorskip("httpx")

SCANNER = "198.51.100.23"
VISITOR = "192.0.2.10"
FLAG_AFTER = 4
BODY_LIMIT = 16_384
# A scanner's burst: different techniques, in the query and in bodies (form and JSON).
ATTACKS: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/items/1", {"params": {"q": "1' UNION SELECT password FROM users--"}}),
    ("GET", "/items/2", {"params": {"q": "<script>alert(document.cookie)</script>"}}),
    ("POST", "/echo", {"data": {"comment": "<svg onload=alert(1)>"}}),
    ("GET", "/items/3", {"params": {"file": "../../../../etc/passwd"}}),
    (
        "POST",
        "/echo",
        {"content": b'{"cmd": ";cat /etc/passwd"}', "headers": {"content-type": "application/json"}},
    ),
    ("GET", "/items/5", {"params": {"id": "1 OR 1=1--"}}),
]
CLEAN: tuple[str, str, dict[str, Any]] = ("GET", "/items/7", {"params": {"q": "garden chairs"}})

APP = textwrap.dedent(
    """
    import json
    import os

    import flask
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    from devsecmw import _safety
    from devsecmw.wsgi import SecurityMiddleware

    OUT = os.environ["E2E_OUT"]


    def emit(record):
        with open(OUT, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\\n")


    class FileExporter(SpanExporter):
        def export(self, spans):
            for s in spans:
                a = dict(s.attributes or {})
                if "devsecmw.classification" in a:
                    emit({
                        "path": a.get("url.path"),
                        "status": a.get("http.response.status_code"),
                        "client": a.get("client.address"),
                        "blocked": a.get("devsecmw.blocked"),
                        "would_block": a.get("devsecmw.would_block", False),
                        "flagged": a.get("devsecmw.client.flagged", False),
                        "types": sorted(a.get("devsecmw.signal.types", ())),
                        "trace_id": format(s.context.trace_id, "032x"),
                    })
            return SpanExportResult.SUCCESS

        def shutdown(self):
            pass


    _safety.add_observer(lambda stage, exc: emit({"internal_error": stage, "error": repr(exc)}))
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(FileExporter()))
    reader = InMemoryMetricReader()
    OPTIONS = {
        "tracer_provider": provider,
        "meter_provider": MeterProvider(metric_readers=[reader]),
        "time_budget": 5.0,
        "trusted_proxies": ["127.0.0.1"],
        "flag_attacks": int(os.environ["E2E_FLAG_AFTER"]),
        "body_limit": int(os.environ["E2E_BODY_LIMIT"]),
    }


    def make_flask(name):
        app = flask.Flask(name)

        @app.get("/items/<int:item_id>")
        def item(item_id):
            return {"id": item_id}

        @app.post("/echo")
        def echo():
            emit({"view_started": flask.request.path})
            return flask.Response(flask.request.get_data(), mimetype="application/octet-stream")

        return app


    counts = flask.Flask("counts")


    @counts.get("/counts")
    def errors():
        out = {}
        data = reader.get_metrics_data()
        for rm in data.resource_metrics if data else ():
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.name == "devsecmw.errors":
                        for p in m.data.data_points:
                            key = f"{p.attributes['devsecmw.stage']}/{p.attributes['error.type']}"
                            out[key] = out.get(key, 0) + p.value
        return out


    block = make_flask("block")
    block.wsgi_app = SecurityMiddleware(block.wsgi_app, mode="block", **OPTIONS)
    monitor = make_flask("monitor")
    monitor.wsgi_app = SecurityMiddleware(monitor.wsgi_app, **OPTIONS)
    app = DispatcherMiddleware(counts, {"/block": block, "/monitor": monitor})
    """
)


class Server:
    def __init__(self, base: str, out: Path) -> None:
        self.base = base
        self.out = out
        self.port = int(base.rsplit(":", 1)[1])
        self.start = 0

    def _all(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out.read_text().splitlines() if line.strip()]

    def mark(self) -> Server:
        """A test starts: its records are those written from now on (each test waits for all of its own)."""
        self.start = len(self._all())
        return self

    def lines(self) -> list[dict[str, Any]]:
        return self._all()[self.start :]

    def wait_for(self, what: Any, label: str, timeout: float = 15.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            lines = self.lines()
            if what(lines):
                return lines
            if time.monotonic() > deadline:
                pytest.fail(f"gave up waiting for {label}: {lines[-5:]}")
            time.sleep(0.02)

    def spans(self, prefix: str, n: int) -> list[dict[str, Any]]:
        """The first ``n`` span records under ``prefix``, once they are all exported."""

        def enough(lines: list[dict[str, Any]]) -> bool:
            return len([r for r in lines if str(r.get("path", "")).startswith(prefix)]) >= n

        lines = self.wait_for(enough, f"{n} spans under {prefix}")
        assert not [r for r in lines if "internal_error" in r]
        return [r for r in lines if str(r.get("path", "")).startswith(prefix)][:n]

    def counts(self) -> dict[str, int]:
        return dict(httpx.get(self.base + "/counts", timeout=10).json())

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=15)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp_path = tmp_path_factory.mktemp("e2e_block")
    (tmp_path / "e2e_block_app.py").write_text(APP)
    out = tmp_path / "records.jsonl"
    out.write_text("")
    env = {
        "E2E_OUT": str(out),
        "E2E_FLAG_AFTER": str(FLAG_AFTER),
        "E2E_BODY_LIMIT": str(BODY_LIMIT),
        "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
    }
    with serve_gunicorn("e2e_block_app:app", tmp_path, env, probe="/counts") as base:
        yield Server(base, out)


@pytest.fixture
def gunicorn(server: Server) -> Server:
    """The module's server; each test uses its own client addresses, so per-client state is its own."""
    return server.mark()


def send(client: Any, mount: str, who: str, request: tuple[str, str, dict[str, Any]]) -> Any:
    method, path, kwargs = request
    headers = {"x-forwarded-for": who, **kwargs.get("headers", {})}
    return client.request(method, mount + path, **{**kwargs, "headers": headers})


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a Content-Length, read off a raw socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body


def post_head(path: str, length: int | None, ctype: str, who: str) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: {ctype}\r\nX-Forwarded-For: {who}\r\n"
    head += "Connection: close\r\n"
    if length is not None:
        head += f"Content-Length: {length}\r\n"
    return (head + "\r\n").encode()


# --------------------------------------------------------------------------- a scanner
def test_scanner_is_flagged_then_blocked_in_block_mode_and_only_observed_in_monitor_mode(
    gunicorn: Server,
) -> None:
    with httpx.Client(base_url=gunicorn.base, timeout=10) as client:
        assert send(client, "/block", SCANNER, CLEAN).status_code == 200  # nothing known against it yet
        burst = [send(client, "/block", SCANNER, a) for a in ATTACKS]
        assert [r.status_code for r in burst] == [403] * len(ATTACKS)  # each attack on its own signals
        after = [send(client, "/block", SCANNER, CLEAN).status_code for _ in range(3)]
        assert after == [403] * 3  # flagged: even clean-looking requests are refused
        assert send(client, "/block", VISITOR, CLEAN).status_code == 200  # another client is served

        monitored = [send(client, "/monitor", SCANNER, a) for a in ATTACKS]
        monitored.append(send(client, "/monitor", SCANNER, CLEAN))
        assert [r.status_code for r in monitored] == [200] * (len(ATTACKS) + 1)
        assert monitored[2].content == b"comment=%3Csvg+onload%3Dalert%281%29%3E"  # the app's own answer

    blocked = gunicorn.spans("/block", 1 + len(ATTACKS) + 3 + 1)
    scanner = [r for r in blocked if r["client"] == SCANNER]
    flagged_at = next(i for i, r in enumerate(scanner) if "client_flagged" in r["types"])
    assert flagged_at == FLAG_AFTER  # the FLAG_AFTER-th attack (blocked ones count) flags the client
    for r in scanner[1 : 1 + len(ATTACKS)]:
        assert r["blocked"] is True and r["status"] == 403
    for r in scanner[-3:]:
        assert r["blocked"] is True and r["types"] == ["client_flagged"] and r["status"] == 403
    assert [json.loads(r.content)["trace_id"] for r in burst] == [
        r["trace_id"] for r in scanner[1 : 1 + len(ATTACKS)]
    ]
    visitor = [r for r in blocked if r["client"] == VISITOR]
    assert len(visitor) == 1 and visitor[0]["blocked"] is False

    observed = gunicorn.spans("/monitor", len(ATTACKS) + 1)
    assert not any(r["blocked"] for r in observed)
    assert all(r["would_block"] for r in observed)
    assert "client_flagged" in observed[FLAG_AFTER - 1]["types"]
    # Reported when crossing (once per window after); the flag stays on the span as an attribute.
    assert observed[-1]["types"] == [] and observed[-1]["flagged"] is True and observed[-1]["status"] == 200


# --------------------------------------------------------------------------- bodies
def test_bodies_through_gunicorn_in_block_mode(gunicorn: Server) -> None:
    big = bytes(range(256)) * 512  # 128 KiB: eight times the cap

    def chunked() -> Iterator[bytes]:  # Transfer-Encoding: chunked (wsgi.input_terminated)
        for i in range(0, len(big), 5000):
            yield big[i : i + 5000]

    attack = b'{"comment": "<script>alert(document.cookie)</script>"}'
    binary = {"content-type": "application/octet-stream"}
    timeouts = gunicorn.counts().get("read_ahead/timeout", 0)
    with httpx.Client(base_url=gunicorn.base + "/block", headers={"x-forwarded-for": "192.0.2.50"}) as client:
        assert client.post("/echo", content=big, headers=binary).content == big
        assert client.post("/echo", content=chunked(), headers=binary).content == big
        assert client.post("/echo", content=b"", headers=binary).content == b""
        r = client.post("/echo", content=attack, headers={"content-type": "application/json"})
        assert r.status_code == 403 and r.headers["content-type"] == "application/json"
        chunked_attack = client.post("/echo", content=iter([attack[:9], attack[9:]]))
        assert chunked_attack.status_code == 403
    # A POST without Content-Length nor chunking has no body: nothing is read, nothing hangs.
    with gunicorn.connect() as sock:
        sock.sendall(post_head("/block/echo", None, "text/plain", "192.0.2.51"))
        status, _, body = read_response(sock)
    assert status == 200 and body == b""
    records = gunicorn.spans("/block", 6)
    assert [r["blocked"] for r in records] == [False, False, False, True, True, False]
    assert records[3]["trace_id"] == r.json()["trace_id"]
    assert gunicorn.counts().get("read_ahead/timeout", 0) == timeouts


def test_slow_body_is_not_waited_for_and_the_app_reads_every_byte(gunicorn: Server) -> None:
    first, rest = b'{"name": "bob", ', b'"comment": "<script>alert(document.cookie)</script>"}'
    timeouts = gunicorn.counts().get("read_ahead/timeout", 0)
    with gunicorn.connect() as sock:
        sock.sendall(post_head("/block/echo", len(first + rest), "application/json", "192.0.2.60") + first)
        # The rest is sent once the view runs: the read-ahead gave up on it (1 s, the default).
        gunicorn.wait_for(lambda lines: {"view_started": "/echo"} in lines, "the view to start")
        sock.sendall(rest)
        status, _, body = read_response(sock)
    assert status == 200 and body == first + rest  # not blocked for what it had not seen
    (record,) = gunicorn.spans("/block", 1)
    assert "xss" in record["types"]  # inspected as the app read it, and recorded
    assert record["blocked"] is False and record["would_block"] is True
    assert gunicorn.counts()["read_ahead/timeout"] == timeouts + 1


def test_attack_seen_before_a_stall_is_blocked_and_the_worker_goes_on(gunicorn: Server) -> None:
    # gunicorn's read(n) waits for n bytes: the attack comes in a full first read (8 KiB), then the
    # upload stalls; the decision goes on what arrived.
    first = b"q=1%27+UNION+SELECT+password+FROM+users--&pad=" + b"x" * 9000
    rest = b"yyyy"
    timeouts = gunicorn.counts().get("read_ahead/timeout", 0)
    form = "application/x-www-form-urlencoded"
    with gunicorn.connect() as sock:
        sock.sendall(post_head("/block/echo", len(first + rest), form, "192.0.2.70") + first)
        status, _, body = read_response(sock)  # answered while the upload is still incomplete
        assert status == 403 and json.loads(body)["error"] == "request blocked"
        sock.sendall(rest)  # the client goes on; the worker settles its read, then closes
        while sock.recv(65536):
            pass
    (record,) = gunicorn.spans("/block", 1)
    assert record["blocked"] is True and "sqli" in record["types"]
    assert record["trace_id"] == json.loads(body)["trace_id"]
    assert gunicorn.counts()["read_ahead/timeout"] == timeouts + 1
    with httpx.Client(base_url=gunicorn.base, timeout=10) as client:  # the worker serves on
        assert client.get("/block/items/9").json() == {"id": 9}

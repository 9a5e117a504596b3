"""End to end under a real gunicorn (sync worker) on 127.0.0.1.

One server process serves, from one WSGI app (Werkzeug's dispatcher):

- ``/``        a Flask app behind ``devsecmw.wsgi.SecurityMiddleware``
- ``/plain``   the same Flask app, bare (the reference for "responses unchanged")
- ``/django``  the test Django project with ``devsecmw.django.SecurityMiddleware``

Finished spans go through an SDK span processor that appends each span's path,
status, route and signal types to a file; devsecmw internal errors in the
worker are written there too. A bounded set of requests is sent with httpx
(plus two raw-socket ones); the server is always terminated.
"""

from __future__ import annotations

import hashlib
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

TESTS_DIR = Path(__file__).resolve().parent
SQLI_Q = "1' UNION SELECT password FROM users--"
BIG = bytes(range(256)) * 4096  # 1 MiB, sixteen times the inspection cap

APP = textwrap.dedent(
    """
    import hashlib
    import json
    import os

    import flask
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    from devsecmw import _safety
    from devsecmw.wsgi import SecurityMiddleware

    OUT = os.environ["E2E_OUT"]
    FILE = os.environ["E2E_FILE"]


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
                        "route": a.get("http.route"),
                        "types": sorted(a.get("devsecmw.signal.types", ())),
                    })
            return SpanExportResult.SUCCESS

        def shutdown(self):
            pass


    _safety.add_observer(lambda stage, exc: emit({"internal_error": stage, "error": repr(exc)}))
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(FileExporter()))
    OPTIONS = {"tracer_provider": provider, "time_budget": 5.0}


    def make_flask():
        app = flask.Flask("e2e")

        @app.get("/items/<int:item_id>")
        def item(item_id):
            return {"id": item_id, "q": flask.request.args.get("q", "")}

        @app.post("/echo")
        def echo():
            data = flask.request.get_data()
            return flask.Response(data, mimetype="application/octet-stream")

        @app.post("/raw")
        def raw():
            # Reads wsgi.input with no size: must not block when the client sent no body.
            return flask.request.environ["wsgi.input"].read()

        @app.post("/digest")
        def digest():
            stream = flask.request.stream
            data = b"".join(iter(lambda: stream.read(8192), b""))
            return f"{len(data)} {hashlib.sha256(data).hexdigest()}"

        @app.get("/stream")
        def stream():
            return flask.Response((f"chunk {i}\\n" for i in range(20)), mimetype="text/plain")

        @app.route("/file", methods=["GET", "HEAD"])
        def file():
            return flask.send_file(FILE, mimetype="application/octet-stream")

        @app.get("/status/<int:code>")
        def status(code):
            flask.abort(code)

        @app.get("/boom")
        def boom():
            raise RuntimeError("view failed")

        return app


    wrapped = make_flask()
    wrapped.wsgi_app = SecurityMiddleware(wrapped.wsgi_app, **OPTIONS)

    mounts = {"/plain": make_flask()}
    try:
        from django.conf import settings
        from django.core.wsgi import get_wsgi_application

        settings.DEVSECMW = OPTIONS
        mounts["/django"] = get_wsgi_application()
    except ImportError:
        pass

    app = DispatcherMiddleware(wrapped, mounts)
    """
)


class Server:
    def __init__(self, base: str, out: Path, file: Path) -> None:
        self.base = base
        self.out = out
        self.file = file
        self.records: list[dict[str, Any]] = []

    def raw(self, request: bytes) -> bytes:
        host, port = self.base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(request)
            chunks = []
            while data := sock.recv(65536):
                chunks.append(data)
        return b"".join(chunks)


@pytest.fixture(scope="module")
def gunicorn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("e2e")
    (tmp / "e2e_app.py").write_text(APP)
    out = tmp / "spans.jsonl"
    payload = tmp / "payload.bin"
    payload.write_bytes(BIG[:300_000])
    env = {
        "E2E_OUT": str(out),
        "E2E_FILE": str(payload),
        "PYTHONPATH": os.pathsep.join([str(tmp), str(TESTS_DIR), os.environ.get("PYTHONPATH", "")]),
        "DJANGO_SETTINGS_MODULE": "django_app.settings",
    }
    with serve_gunicorn("e2e_app:app", tmp, env, probe="/plain/items/0") as base:
        out.write_text("")  # drop the readiness probe (it went to the bare app anyway)
        yield Server(base, out, payload)


def _strip(headers: Any) -> list[tuple[str, str]]:
    return [(k, v) for k, v in headers.multi_items() if k not in ("date",)]


def test_flask_under_gunicorn_responses_unchanged_and_signals_exported(gunicorn: Server) -> None:
    import httpx

    def chunked() -> Iterator[bytes]:  # no Content-Length: Transfer-Encoding: chunked
        yield BIG[:200_000]
        yield BIG[200_000:400_000]

    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/items/1", {"params": {"q": SQLI_Q}}),
        ("GET", "/items/2", {"params": {"q": "python cookbook"}}),
        ("POST", "/echo", {"data": {"comment": "<script>alert(document.cookie)</script>"}}),
        ("POST", "/echo", {"content": BIG}),
        ("POST", "/digest", {"content": chunked}),
        ("POST", "/echo", {}),
        ("GET", "/stream", {}),
        ("GET", "/file", {}),
        ("HEAD", "/file", {}),
        ("GET", "/status/404", {}),
        ("GET", "/status/401", {}),
        ("GET", "/status/429", {}),
        ("GET", "/boom", {"params": {"q": SQLI_Q}}),
    ]
    with httpx.Client(base_url=gunicorn.base, timeout=10) as client:
        for method, path, kwargs in calls:
            fresh = {k: v() if callable(v) else v for k, v in kwargs.items()}
            plain = client.request(method, "/plain" + path, **fresh)
            fresh = {k: v() if callable(v) else v for k, v in kwargs.items()}
            wrapped = client.request(method, path, **fresh)
            assert (wrapped.status_code, _strip(wrapped.headers), wrapped.content) == (
                plain.status_code,
                _strip(plain.headers),
                plain.content,
            ), f"{method} {path}"
    # Spot checks that the comparisons above were about the interesting bytes.
    assert plain.status_code == 500  # the last call: /boom
    raw_plain = gunicorn.raw(b"POST /plain/raw HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    raw = gunicorn.raw(b"POST /raw HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert raw.split(b"\r\n", 1)[0] == raw_plain.split(b"\r\n", 1)[0] == b"HTTP/1.1 200 OK"
    assert raw.endswith(b"\r\n\r\n") and raw_plain.endswith(b"\r\n\r\n")  # empty body, no hang

    records = _records(gunicorn, expected=len(calls) + 1)
    assert not [r for r in records if "internal_error" in r]
    by_path: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_path.setdefault(r["path"], []).append(r)
    assert "sqli" in by_path["/items/1"][0]["types"]
    assert by_path["/items/1"][0]["route"] == "/items/<int:item_id>"
    assert by_path["/items/2"][0]["types"] == []
    echo_types = [r["types"] for r in by_path["/echo"]]
    assert any("xss" in t for t in echo_types)
    assert by_path["/status/404"][0]["types"] == ["http_404"]
    assert by_path["/status/401"][0]["types"] == ["auth_failure"]
    assert by_path["/status/429"][0]["types"] == ["rate_limited"]
    assert {"sqli", "http_5xx", "attack_5xx"} <= set(by_path["/boom"][0]["types"])
    assert [r["status"] for r in by_path["/file"]] == [200, 200]
    assert by_path["/stream"][0]["status"] == 200


def test_django_under_gunicorn(gunicorn: Server) -> None:
    import httpx

    pytest.importorskip("django")
    with httpx.Client(base_url=gunicorn.base + "/django", timeout=10) as client:
        item = client.get("/api/items/5/", params={"q": SQLI_Q})
        echo = client.post("/echo/", content=BIG, headers={"Content-Type": "application/octet-stream"})
        stream = client.get("/stream/")
        boom = client.get("/boom/")
        empty = client.post("/read/")
    assert item.status_code == 200 and item.json() == {"id": 5, "q": SQLI_Q}
    assert echo.status_code == 200 and hashlib.sha256(echo.content).digest() == hashlib.sha256(BIG).digest()
    assert stream.text == "".join(f"chunk {i}\n" for i in range(5))
    assert boom.status_code == 500
    assert empty.status_code == 200 and empty.content == b""
    records = [
        r for r in _records(gunicorn, expected=5) if "internal_error" in r or r["path"].startswith("/django")
    ]
    assert not [r for r in records if "internal_error" in r]
    by_path = {r["path"]: r for r in records}
    assert "sqli" in by_path["/django/api/items/5/"]["types"]
    assert by_path["/django/api/items/5/"]["route"] == "api/items/<int:pk>/"
    assert by_path["/django/echo/"]["types"] == []
    assert by_path["/django/stream/"]["status"] == 200
    assert by_path["/django/boom/"]["types"] == ["http_5xx"]


def _records(server: Server, expected: int) -> list[dict[str, Any]]:
    """The exported records, once ``expected`` new ones arrived (spans end just after the response)."""
    deadline = time.monotonic() + 10
    while True:
        lines = [json.loads(line) for line in server.out.read_text().splitlines() if line.strip()]
        new = lines[len(server.records) :]
        if len(new) >= expected or time.monotonic() > deadline:
            server.records = lines
            return new
        time.sleep(0.05)

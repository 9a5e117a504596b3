"""A small OTLP/HTTP receiver: the service (or its collector) exports to it during a game day.

``POST /v1/traces`` and ``POST /v1/metrics`` with ``application/x-protobuf`` (what the
OpenTelemetry SDK exporters send by default) or ``application/json`` (OTLP JSON), gzip or
not; ``/v1/logs`` is accepted and ignored. Bodies are capped before and after
decompression, and the records kept are capped too: a misdirected exporter cannot make
the tool grow without bound. Only what arrives is kept; nothing is forwarded.
"""

from __future__ import annotations

import json
import threading
import time
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .records import Record, from_otlp_json, from_protobuf, metric_points_from_protobuf

#: Largest request body accepted, compressed and decompressed (the SDK batches 512 spans).
MAX_BODY = 16 * 1024 * 1024
MAX_SPANS = 200_000
MAX_POINTS = 200_000


class ReceiverError(RuntimeError):
    """The receiver could not start."""


def _gunzip(data: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise ValueError(f"bad gzip body: {exc}") from None
    if len(out) > limit:
        raise ValueError(f"body larger than {limit} bytes once decompressed")
    return out


class Receiver:
    """Collects span records and metric points; :meth:`start` / :meth:`stop` (or ``with``)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 4318) -> None:
        self.host, self.port = host, port
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self.spans: list[Record] = []
        self.points: list[Record] = []
        self.rejected = 0
        self.dropped = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> str:
        """Listen; returns the endpoint to export to (``http://HOST:PORT``)."""
        receiver = self

        class Handler(_Handler):
            owner = receiver

        try:
            server = ThreadingHTTPServer((self.host, self.port), Handler)
        except OSError as exc:
            raise ReceiverError(f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}") from None
        server.daemon_threads = True
        self._server = server
        self.port = int(server.server_address[1])
        self._thread = threading.Thread(target=server.serve_forever, name="devsecmw-otlp", daemon=True)
        self._thread.start()
        return self.endpoint

    @property
    def endpoint(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Receiver:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- data
    def add_spans(self, records: list[Record]) -> None:
        now = time.time()
        with self._arrived:
            room = MAX_SPANS - len(self.spans)
            for r in records[: max(room, 0)]:
                r["received"] = now
                self.spans.append(r)
            self.dropped += max(len(records) - max(room, 0), 0)
            self._arrived.notify_all()

    def add_points(self, points: list[Record]) -> None:
        now = time.time()
        with self._arrived:
            room = MAX_POINTS - len(self.points)
            for p in points[: max(room, 0)]:
                p["received"] = now
                self.points.append(p)
            self.dropped += max(len(points) - max(room, 0), 0)
            self._arrived.notify_all()

    def reject(self) -> None:
        with self._lock:
            self.rejected += 1

    def snapshot(self) -> tuple[list[Record], list[Record]]:
        with self._lock:
            return list(self.spans), list(self.points)

    def wait_until(self, done: Callable[[list[Record], list[Record]], bool], timeout: float) -> bool:
        """Block until ``done(spans, points)`` is true (checked on each arrival) or ``timeout`` s."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                if done(list(self.spans), list(self.points)):
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._arrived.wait(min(left, 0.5))


class _Handler(BaseHTTPRequestHandler):
    owner: Receiver
    protocol_version = "HTTP/1.1"
    timeout = 30  # seconds a connection may stall before its thread gives up
    server_version = "devsecmw-gameday"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the exporter's requests are not the user's business

    def _reply(self, status: int, body: bytes = b"", ctype: str = "application/x-protobuf") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        if self.headers.get("Transfer-Encoding"):  # every OTLP exporter sends a Content-Length
            self.close_connection = True
            self.owner.reject()
            return self._reply(411, b"Content-Length required", "text/plain")
        try:
            length = int(self.headers.get("Content-Length") or "0")
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            self.close_connection = True
            self.owner.reject()
            return self._reply(413, b"body too large or without Content-Length", "text/plain")
        data = self.rfile.read(length)
        json_body = (self.headers.get("Content-Type") or "").split(";")[
            0
        ].strip().lower() == "application/json"
        try:
            if (self.headers.get("Content-Encoding") or "").strip().lower() == "gzip":
                data = _gunzip(data, MAX_BODY)
            if path == "/v1/traces":
                self.owner.add_spans(from_otlp_json(json.loads(data)) if json_body else from_protobuf(data))
            elif path == "/v1/metrics":
                if not json_body:  # OTLP JSON metrics: accepted, not decoded (spans carry the verdicts)
                    self.owner.add_points(metric_points_from_protobuf(data))
            elif path != "/v1/logs":
                return self._reply(404, b"not found", "text/plain")
        except (ValueError, AttributeError, TypeError) as exc:
            self.owner.reject()
            return self._reply(400, str(exc)[:200].encode(), "text/plain")
        # An empty Export*ServiceResponse: zero bytes in protobuf, {} in JSON.
        self._reply(
            200, b"{}" if json_body else b"", "application/json" if json_body else "application/x-protobuf"
        )


__all__ = ["MAX_BODY", "Receiver", "ReceiverError"]

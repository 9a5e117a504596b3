"""Block mode in ``devsecmw.django.SecurityMiddleware``: WSGI (``Client``, and Django's
``WSGIHandler`` fed a slow upload) and ASGI (``AsyncClient``).

Views and URLs live here (``ROOT_URLCONF`` is this module) and record that they
ran, so "the view never saw the request" is asserted, not assumed. Under WSGI
the body is read ahead from ``request._stream`` in a helper thread; under ASGI
Django has the whole body before any middleware, so it is read inline.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import trace_id_of

django = pytest.importorskip("django")

from django.http import HttpRequest, HttpResponse, JsonResponse  # noqa: E402
from django.test import AsyncClient, Client, override_settings  # noqa: E402
from django.urls import path  # noqa: E402
from test_blocking_wsgi import (  # noqa: E402
    BENIGN_JSON,
    BIG,
    BROWSER_ACCEPT,
    FORM,
    PATIENT,
    SQLI_FORM,
    STALL,
    STEADY,
    XSS_JSON,
    Upload,
    environ_for,
    no_helper_threads,
)

import devsecmw.blocking  # noqa: E402
import devsecmw.django  # noqa: E402

MW = "devsecmw.django.SecurityMiddleware"
SQLI_Q = "1' UNION SELECT password FROM users--"
CALLED: list[str] = []


# --------------------------------------------------------------------------- views
def ran(request: HttpRequest, name: str) -> None:
    CALLED.append(name)
    on_view = request.META.get("test.on_view")
    if on_view is not None:
        on_view()  # e.g. the rest of a stalled upload arrives once the view runs


def echo(request: HttpRequest) -> HttpResponse:
    ran(request, "echo")
    return HttpResponse(request.body, content_type="application/octet-stream")


def chunks(request: HttpRequest) -> HttpResponse:
    ran(request, "chunks")
    return HttpResponse(b"".join(iter(lambda: request.read(7), b"")), content_type="application/octet-stream")


def lines(request: HttpRequest) -> HttpResponse:
    ran(request, "lines")
    return HttpResponse(b"".join(request), content_type="application/octet-stream")


def form(request: HttpRequest) -> HttpResponse:
    ran(request, "form")
    return HttpResponse(request.POST.get("name", ""), content_type="text/plain")


def json_view(request: HttpRequest) -> HttpResponse:
    ran(request, "json")
    return JsonResponse({"name": json.loads(request.body)["user"]["name"]})


def item(request: HttpRequest, pk: int) -> HttpResponse:
    ran(request, "item")
    return JsonResponse({"id": pk})


def quiet(request: HttpRequest) -> HttpResponse:
    ran(request, "quiet")
    return HttpResponse(b"ok", content_type="text/plain")


urlpatterns = [
    path("echo/", echo),
    path("chunks/", chunks),
    path("lines/", lines),
    path("form/", form),
    path("json/", json_view),
    path("items/<int:pk>/", item),
    path("quiet/", quiet),
    path("healthz/", item, {"pk": 0}),
]


class ReadsBodyFirst:
    """A middleware above devsecmw that reads the body (``request._body`` is then in memory)."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        assert request.body is not None
        return self.get_response(request)


# --------------------------------------------------------------------------- harness
@pytest.fixture(scope="module", autouse=True)
def django_project() -> Iterator[None]:
    import django_app

    django_app.setup()
    yield


@pytest.fixture(autouse=True)
def called() -> Iterator[list[str]]:
    CALLED.clear()
    yield CALLED
    CALLED.clear()


def project(otel: Any, middleware: list[str] | None = None, **options: Any) -> override_settings:
    return override_settings(
        ROOT_URLCONF=__name__,
        MIDDLEWARE=[MW] if middleware is None else middleware,
        DEVSECMW={**otel.providers, **STEADY, **options},
    )


def client() -> Client:
    return Client(raise_request_exception=False)


def aclient() -> AsyncClient:
    return AsyncClient(raise_request_exception=False)


def send(kind: str, method: str, url: str, **kwargs: Any) -> Any:
    """One request through Django's WSGI (``Client``) or ASGI (``AsyncClient``) handler."""
    if kind == "wsgi":
        return getattr(client(), method)(url, **kwargs)
    return asyncio.run(getattr(aclient(), method)(url, **kwargs))


def wsgi_handler_call(environ: dict[str, Any]) -> tuple[str, bytes]:
    """Django's own WSGIHandler as a server calls it (iterate, then close)."""
    from django.core.handlers.wsgi import WSGIHandler

    handler = WSGIHandler()
    status: list[str] = []

    def start_response(s: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        status.append(s)
        return lambda data: None

    out = handler(environ, start_response)
    try:
        body = b"".join(out)
        stream = environ["wsgi.input"]
        if isinstance(stream, Upload):
            stream.resume.set()  # the response is out: the client goes on sending
    finally:
        out.close()
    return status[0], body


KINDS = ["wsgi", "asgi"]


# --------------------------------------------------------------------------- block vs monitor
@pytest.mark.parametrize("kind", KINDS)
def test_monitor_mode_observes_and_block_mode_blocks_the_same_attack(
    otel: Any, kind: str, called: list[str]
) -> None:
    with project(otel):
        monitored = send(kind, "get", "/items/4/", data={"q": SQLI_Q})
    assert monitored.status_code == 200 and called == ["item"]
    span = otel.span()
    assert span.attributes["devsecmw.blocked"] is False and span.attributes["devsecmw.would_block"] is True
    otel.clear()
    called.clear()

    with project(otel, mode="block"):
        blocked = send(kind, "get", "/items/4/", data={"q": SQLI_Q})
    assert blocked.status_code == 403 and called == []
    span = otel.span()
    assert span.attributes["devsecmw.blocked"] is True
    assert "sqli" in span.attributes["devsecmw.signal.types"]
    assert span.attributes["http.response.status_code"] == 403
    assert "http.route" not in span.attributes  # never routed: the view's URL was not resolved
    assert blocked["Content-Type"] == "application/json"
    assert blocked["Cache-Control"] == "no-store"
    assert blocked.json() == {"error": "request blocked", "trace_id": trace_id_of(span)}


@pytest.mark.parametrize("kind", KINDS)
def test_block_response_html_for_browsers_and_custom_status(otel: Any, kind: str) -> None:
    with project(otel, mode="block"):
        html = send(kind, "get", "/items/4/", data={"q": SQLI_Q}, headers={"accept": BROWSER_ACCEPT})
    assert html.status_code == 403 and html["Content-Type"] == "text/html; charset=utf-8"
    assert f"<code>{trace_id_of(otel.span())}</code>" in html.content.decode()
    otel.clear()
    custom = {"block_status": 406, "block_body": "no ({trace_id})", "block_content_type": "text/plain"}
    with project(otel, mode="block", **custom):
        r = send(kind, "get", "/items/4/", data={"q": SQLI_Q})
    assert r.status_code == 406 and r["Content-Type"] == "text/plain"
    assert r.content == f"no ({trace_id_of(otel.span())})".encode()


@pytest.mark.parametrize("kind", KINDS)
def test_block_types_and_anomalies(otel: Any, kind: str, called: list[str]) -> None:
    with project(otel, mode="block", block_types=["xss"]):
        assert send(kind, "get", "/items/4/", data={"q": SQLI_Q}).status_code == 200
    with project(otel, mode="block", block_threshold=1):
        # Invalid UTF-8 and a null byte: anomalies alone never block, whatever the threshold.
        assert send(kind, "get", "/items/4/?q=%ff%fe&r=abc%00def").status_code == 200
    assert called == ["item", "item"]
    spans = otel.spans()
    assert "sqli" in spans[0].attributes["devsecmw.signal.types"]
    assert {"not_utf8", "null_byte"} <= set(spans[1].attributes["devsecmw.signal.types"])
    assert not any(s.attributes["devsecmw.blocked"] for s in spans)


@pytest.mark.parametrize("kind", KINDS)
def test_allowlisted_path_and_network_never_blocked(otel: Any, kind: str) -> None:
    with project(otel, mode="block", allow_paths=["/healthz/"]):
        assert send(kind, "get", "/healthz/", data={"q": SQLI_Q}).status_code == 200
    with project(otel, mode="block", allow_networks=["127.0.0.0/8"]):  # the test clients' address
        assert send(kind, "post", "/json/", data=XSS_JSON, content_type="application/json").status_code == 200
    spans = otel.spans()
    assert "sqli" in spans[0].attributes["devsecmw.signal.types"]  # still inspected and reported
    assert "xss" in spans[1].attributes["devsecmw.signal.types"]
    assert not any(s.attributes["devsecmw.blocked"] for s in spans)


# --------------------------------------------------------------------------- bodies
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("url", "ctype", "body", "signal"),
    [("/json/", "application/json", XSS_JSON, "xss"), ("/form/", FORM, SQLI_FORM, "sqli")],
)
def test_attack_in_the_body_is_blocked_before_the_view(
    otel: Any, kind: str, url: str, ctype: str, body: bytes, signal: str, called: list[str]
) -> None:
    with project(otel, mode="block", block_read_timeout=PATIENT):
        r = send(kind, "post", url, data=body, content_type=ctype)
    assert r.status_code == 403 and called == []
    span = otel.span()
    assert span.attributes["devsecmw.blocked"] is True and signal in span.attributes["devsecmw.signal.types"]
    assert json.loads(r.content)["trace_id"] == trace_id_of(span)
    assert no_helper_threads()


@pytest.mark.parametrize("kind", KINDS)
def test_benign_bodies_reach_the_view_unchanged(otel: Any, kind: str) -> None:
    with project(otel, mode="block", block_read_timeout=PATIENT):
        assert send(kind, "post", "/json/", data=BENIGN_JSON, content_type="application/json").json() == {
            "name": "bob"
        }
        assert send(kind, "post", "/form/", data="name=O%27Brien", content_type=FORM).content == b"O'Brien"
    assert not any(s.attributes["devsecmw.blocked"] for s in otel.spans())


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("url", ["/echo/", "/chunks/", "/lines/"])
def test_body_larger_than_the_cap_reaches_the_view_whole_and_in_order(otel: Any, kind: str, url: str) -> None:
    with project(otel, mode="block", body_limit=10_000, block_read_timeout=PATIENT):
        r = send(kind, "post", url, data=BIG, content_type="text/plain")
    assert r.status_code == 200 and r.content == BIG
    assert otel.error_count("read_ahead", "timeout") == 0


@pytest.mark.parametrize("kind", KINDS)
def test_read_ahead_is_inline_only_under_asgi(otel: Any, kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bool] = []
    real = devsecmw.django.read_ahead

    def recording(insp: Any, stream: Any, length: Any, in_memory: bool) -> Any:
        seen.append(in_memory)
        return real(insp, stream, length, in_memory)

    monkeypatch.setattr(devsecmw.django, "read_ahead", recording)
    with project(otel, mode="block", block_read_timeout=PATIENT):
        send(kind, "post", "/echo/", data=BENIGN_JSON, content_type="application/json")
    assert seen == [kind == "asgi"]


@pytest.mark.parametrize("kind", KINDS)
def test_body_read_by_a_middleware_above_is_judged_from_memory(
    otel: Any, kind: str, called: list[str]
) -> None:
    with project(otel, middleware=[f"{__name__}.ReadsBodyFirst", MW], mode="block"):
        r = send(kind, "post", "/json/", data=XSS_JSON, content_type="application/json")
    assert r.status_code == 403 and called == []
    assert otel.span().attributes["devsecmw.blocked"] is True


@pytest.mark.parametrize("kind", KINDS)
def test_empty_post_does_not_hang(otel: Any, kind: str) -> None:
    with project(otel, mode="block", block_read_timeout=PATIENT):
        assert send(kind, "post", "/echo/", data=b"", content_type="text/plain").content == b""
    assert otel.error_count("read_ahead", "timeout") == 0


def test_post_without_content_length_is_not_read_under_wsgi(otel: Any, called: list[str]) -> None:
    upload = Upload()  # a read of a body that does not exist would wait forever
    env = environ_for("POST", path="/quiet/", stream=upload, length=None)
    with project(otel, mode="block", block_read_timeout=PATIENT):
        status, body = wsgi_handler_call(env)
    assert status.startswith("200") and body == b"ok" and upload.readers == []


# --------------------------------------------------------------------------- slow bodies (WSGI)
def test_slow_body_is_not_waited_for_and_the_view_reads_every_byte(otel: Any, called: list[str]) -> None:
    first, rest = b'{"user": {"name": "bob", ', b'"comment": "<script>alert(document.cookie)</script>"}}'
    upload = Upload(first, STALL, rest)
    env = environ_for("POST", path="/chunks/", stream=upload, length=len(first + rest))
    env["test.on_view"] = upload.resume.set
    with project(otel, mode="block", block_read_timeout=0.05):
        status, body = wsgi_handler_call(env)
    assert status.startswith("200") and body == first + rest
    assert not upload.overlap
    assert otel.error_count("read_ahead", "timeout") == 1
    span = otel.span()
    assert "xss" in span.attributes["devsecmw.signal.types"]  # inspected as the view read it: recorded
    assert span.attributes["devsecmw.blocked"] is False and span.attributes["devsecmw.would_block"] is True
    assert no_helper_threads()


def test_attack_seen_before_a_stall_is_blocked_and_the_read_in_flight_settled(
    otel: Any, called: list[str]
) -> None:
    upload = Upload(SQLI_FORM, STALL, b"&more=1")
    env = environ_for("POST", path="/form/", stream=upload, ctype=FORM, length=len(SQLI_FORM) + 7)
    with project(otel, mode="block", block_read_timeout=0.05):
        status, body = wsgi_handler_call(env)
    assert status.startswith("403") and called == []
    assert json.loads(body)["trace_id"] == trace_id_of(otel.span())
    assert otel.error_count("read_ahead", "timeout") == 1
    # Closing the response waited for the helper's read: nothing reads the stream afterwards.
    assert upload.active == 0 and upload.parts == [] and no_helper_threads()


# --------------------------------------------------------------------------- flagged clients
@pytest.mark.parametrize("kind", KINDS)
def test_flagged_client_blocked_in_block_mode_observed_in_monitor_mode(otel: Any, kind: str) -> None:
    for mode in ("block", "monitor"):
        with project(otel, mode=mode, flag_attacks=2):
            c = client() if kind == "wsgi" else aclient()

            def get(url: str, c: Any = c, **kw: Any) -> Any:
                return c.get(url, **kw) if kind == "wsgi" else asyncio.run(c.get(url, **kw))

            attacks = [
                get("/items/1/", data={"q": "<script>alert(1)</script>"}).status_code for _ in range(2)
            ]
            clean = get("/items/1/")
        span = otel.spans()[-1]
        assert span.attributes["devsecmw.client.flagged"] is True
        # A refusal carries its reason; in monitor mode client_flagged was reported on the
        # request that crossed the threshold (then once per window), the flag stays on the span.
        want = ("client_flagged",) if mode == "block" else ()
        assert span.attributes["devsecmw.signal.types"] == want
        assert span.attributes["devsecmw.would_block"] is True
        if mode == "block":
            assert attacks == [403, 403] and clean.status_code == 403
            assert span.attributes["devsecmw.blocked"] is True
        else:
            assert attacks == [200, 200] and clean.status_code == 200
            assert span.attributes["devsecmw.blocked"] is False
        otel.clear()


# --------------------------------------------------------------------------- fail open
@pytest.mark.internal_errors_expected
@pytest.mark.parametrize("kind", KINDS)
def test_block_response_failure_lets_the_request_through(
    otel: Any, kind: str, called: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("render failed")

    monkeypatch.setattr(devsecmw.blocking, "render", broken)
    with project(otel, mode="block", block_read_timeout=PATIENT):
        r = send(kind, "post", "/form/", data=SQLI_FORM, content_type=FORM)
    assert r.status_code == 200 and r.content == b"bob" and called == ["form"]
    assert otel.error_count("block_response", "RuntimeError") == 1
    assert otel.span().attributes["devsecmw.blocked"] is False

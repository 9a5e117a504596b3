"""Monitor mode, Django: the body a view left unread is read once its response is returned.

Real Django views through Django's test clients (WSGI and ASGI), with this module as the
URLconf. Each exchange is compared with the same one without devsecmw and with the read
switched off (``unread_timeout=0``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

django = pytest.importorskip("django")

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse  # noqa: E402
from django.test import AsyncClient, Client, override_settings  # noqa: E402
from django.urls import path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402
from django.views.decorators.http import require_GET  # noqa: E402

from devsecmw.config import Config  # noqa: E402
from devsecmw.engine import Budget, Engine  # noqa: E402
from devsecmw.request import HttpRequest as Model  # noqa: E402
from devsecmw.signals import Signal  # noqa: E402

MW = "devsecmw.django.SecurityMiddleware"
ENGINE = Engine(Config())
XXE = b'<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><foo>&xxe;</foo>'
SQLI_FORM = b"name=bob&id=1' UNION SELECT password FROM users--"


@require_GET
def items(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"items", content_type="text/plain")


@csrf_exempt
def half(request: HttpRequest) -> HttpResponse:
    return HttpResponse(request.read(9), content_type="text/plain")


@csrf_exempt
def whole(request: HttpRequest) -> HttpResponse:
    return HttpResponse(request.body, content_type="text/plain")


@csrf_exempt
def stream(request: HttpRequest) -> StreamingHttpResponse:
    def gen() -> Iterator[bytes]:
        yield b"streamed"

    return StreamingHttpResponse(gen(), content_type="text/plain")


urlpatterns = [path("items/", items), path("half/", half), path("whole/", whole), path("stream/", stream)]


@pytest.fixture(scope="module", autouse=True)
def django_project() -> Iterator[None]:
    import django_app

    django_app.setup()
    yield


class Spy:
    """The real engine, counting the body inspections."""

    def __init__(self) -> None:
        self.bodies: list[int] = []

    def inspect(self, request: Model, phase: str, budget: Budget | None = None) -> list[Signal]:
        if phase == "body":
            self.bodies.append(len(request.body))
        return ENGINE.inspect(request, phase, budget)


def settings(otel: Any | None, **options: Any) -> override_settings:
    if otel is None:
        return override_settings(ROOT_URLCONF=__name__, MIDDLEWARE=[])
    options = {"detector": ENGINE, **options}
    return override_settings(
        ROOT_URLCONF=__name__, MIDDLEWARE=[MW], DEVSECMW={**otel.providers, "time_budget": 5.0, **options}
    )


def post(url: str, body: bytes, ctype: str, asgi: bool = False) -> tuple[int, list[tuple[str, str]], bytes]:
    if asgi:
        r = asyncio.run(AsyncClient().post(url, data=body, content_type=ctype))
    else:
        r = Client().post(url, data=body, content_type=ctype)
    content = b"".join(r.streaming_content) if r.streaming else r.content
    return r.status_code, sorted(r.items()), content


def exchange(otel: Any, url: str, body: bytes, ctype: str, asgi: bool = False, **options: Any) -> Any:
    """Without devsecmw, with the read off, and with it: the client gets the same."""
    with settings(None):
        bare = post(url, body, ctype, asgi)
    with settings(otel, **{**options, "unread_timeout": 0}):
        before = post(url, body, ctype, asgi)
    otel.clear()
    with settings(otel, **options):
        wrapped = post(url, body, ctype, asgi)
    assert wrapped == bare == before
    return wrapped


def attrs(otel: Any) -> Any:
    return otel.server_spans()[-1].attributes


@pytest.mark.parametrize("asgi", [False, True], ids=["wsgi", "asgi"])
@pytest.mark.parametrize(("url", "status"), [("/items/", 405), ("/nowhere/", 404)])
def test_an_unread_xxe_body_is_inspected(otel: Any, asgi: bool, url: str, status: int) -> None:
    out = exchange(otel, url, XXE, "application/xml", asgi)
    assert out[0] == status
    assert "xxe" in attrs(otel)["devsecmw.signal.types"]


@pytest.mark.parametrize("asgi", [False, True], ids=["wsgi", "asgi"])
def test_the_rest_of_a_half_read_body_is_inspected(otel: Any, asgi: bool) -> None:
    out = exchange(otel, "/half/", SQLI_FORM, "application/x-www-form-urlencoded", asgi)
    assert out[2] == SQLI_FORM[:9]
    assert "sqli" in attrs(otel)["devsecmw.signal.types"]


def test_a_body_read_to_its_end_is_inspected_once(otel: Any) -> None:
    spy = Spy()
    exchange(otel, "/whole/", SQLI_FORM, "application/x-www-form-urlencoded", detector=spy)
    assert spy.bodies == [len(SQLI_FORM)] * 2  # one inspection per devsecmw run (read off, read on)
    assert "sqli" in attrs(otel)["devsecmw.signal.types"]


def test_a_streaming_response_is_not_followed_by_a_read(otel: Any) -> None:
    # Its generator may still read the request body: nothing is taken from under it.
    exchange(otel, "/stream/", XXE, "application/xml")
    assert "xxe" not in attrs(otel)["devsecmw.signal.types"]


def test_never_more_than_the_cap(otel: Any) -> None:
    body = b"x=" + b"a" * 500 + b"&" + SQLI_FORM
    spy = Spy()
    exchange(otel, "/items/", body, "application/x-www-form-urlencoded", body_limit=100, detector=spy)
    assert spy.bodies == [100]
    assert "sqli" not in attrs(otel)["devsecmw.signal.types"]


def test_block_mode_reads_nothing_after_the_response(otel: Any) -> None:
    spy = Spy()
    with settings(otel, mode="block", body_limit=10, detector=spy):
        post("/items/", XXE, "application/xml")
    assert spy.bodies == [10]  # the read-ahead only

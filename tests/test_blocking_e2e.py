"""Block mode end to end under a real uvicorn on 127.0.0.1 (bounded traffic, always shut down).

A scanner (one client, a burst of attacks) gets flagged and is then blocked, even
for requests that look clean, while another client is served; in monitor mode
the same traffic is only observed. The server sits behind a "proxy" (trusted
``127.0.0.1``) so ``X-Forwarded-For`` tells the clients apart. Bodies go through
uvicorn's own ``receive``: read ahead, blocked or replayed byte for byte.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
from asgi_harness import steady_time_budget  # noqa: F401  (autouse: load-independent detection)
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from test_e2e_uvicorn import uvicorn_thread, wait_until

from devsecmw.asgi import SecurityMiddleware

pytestmark = pytest.mark.e2e

SCANNER = "198.51.100.23"
VISITOR = "192.0.2.10"
FLAG_AFTER = 4
# A scanner's burst: different techniques, in the query, the path and a JSON body.
ATTACKS: list[tuple[str, str, dict[str, str], bytes | None]] = [
    ("GET", "/items/1", {"q": "1' UNION SELECT password FROM users--"}, None),
    ("GET", "/items/2", {"q": "<script>alert(document.cookie)</script>"}, None),
    ("GET", "/items/3", {"file": "../../../../etc/passwd"}, None),
    ("POST", "/echo", {}, b'{"comment": "<svg onload=alert(1)>"}'),
    ("GET", "/items/4", {"cmd": ";cat /etc/passwd"}, None),
    ("GET", "/items/5", {"id": "1 OR 1=1--"}, None),
]
CLEAN: tuple[str, str, dict[str, str], bytes | None] = ("GET", "/items/7", {"q": "garden chairs"}, None)


async def item(request: Request) -> Response:
    return JSONResponse({"item": request.path_params["item_id"]})


async def echo(request: Request) -> Response:
    return Response(await request.body(), media_type="application/octet-stream")


def make_app(**options: Any) -> Starlette:
    routes = [Route("/items/{item_id}", item), Route("/echo", echo, methods=["POST"])]
    return Starlette(routes=routes, middleware=[Middleware(SecurityMiddleware, **options)])


def send(client: httpx.Client, who: str, request: tuple[str, str, dict[str, str], bytes | None]) -> int:
    method, path, params, body = request
    r = client.request(method, path, params=params, content=body, headers={"x-forwarded-for": who})
    return r.status_code


@pytest.fixture
def serve(otel: Any) -> Iterator[Any]:
    """Start uvicorn with devsecmw and the given options; returns an httpx client. Both are closed."""
    with ExitStack() as stack:

        def start(**options: Any) -> httpx.Client:
            options = {"trusted_proxies": ["127.0.0.1"], "flag_attacks": FLAG_AFTER, **options}
            url = stack.enter_context(uvicorn_thread(make_app(**options, **otel.providers)))
            return stack.enter_context(httpx.Client(base_url=url, timeout=10.0))

        yield start


def spans_for(otel: Any, n: int) -> list[Any]:
    wait_until(lambda: len(otel.server_spans()) >= n, "spans", 10.0)
    return sorted(otel.server_spans(), key=lambda s: s.start_time or 0)


def test_scanner_is_flagged_then_blocked_in_block_mode(otel: Any, serve: Any) -> None:
    client = serve(mode="block")
    assert send(client, SCANNER, CLEAN) == 200  # nothing known against it yet
    burst = [send(client, SCANNER, a) for a in ATTACKS]
    assert burst == [403] * len(ATTACKS)  # each attack is blocked on its own signals
    after = [send(client, SCANNER, CLEAN) for _ in range(3)]
    assert after == [403] * 3  # flagged: even clean-looking requests are refused
    assert send(client, VISITOR, CLEAN) == 200  # another client is served as usual

    spans = spans_for(otel, 2 + len(ATTACKS) + 3)
    by_client = [s for s in spans if s.attributes["client.address"] == SCANNER]
    flagged_at = next(
        i for i, s in enumerate(by_client) if "client_flagged" in s.attributes["devsecmw.signal.types"]
    )
    assert flagged_at == FLAG_AFTER  # the FLAG_AFTER-th attack (blocked ones count) flags the client
    for s in by_client[-3:]:
        assert s.attributes["devsecmw.blocked"] is True
        assert s.attributes["devsecmw.signal.types"] == ("client_flagged",)
        assert s.attributes["http.response.status_code"] == 403
    visitor = [s for s in spans if s.attributes["client.address"] == VISITOR]
    assert len(visitor) == 1 and visitor[0].attributes["devsecmw.blocked"] is False


def test_scanner_below_the_block_threshold_is_blocked_once_flagged(otel: Any, serve: Any) -> None:
    # Each attack alone is let through (a high threshold); the client's behaviour is what blocks.
    client = serve(mode="block", block_threshold=1000)
    burst = [send(client, SCANNER, a) for a in ATTACKS]
    assert burst == [200] * FLAG_AFTER + [403] * (len(ATTACKS) - FLAG_AFTER)
    assert send(client, SCANNER, CLEAN) == 403
    assert send(client, VISITOR, CLEAN) == 200
    spans = spans_for(otel, len(ATTACKS) + 2)
    blocked = [bool(s.attributes["devsecmw.blocked"]) for s in spans]
    assert blocked == [False] * FLAG_AFTER + [True] * (len(ATTACKS) - FLAG_AFTER + 1) + [False]


def test_scanner_is_only_observed_in_monitor_mode(otel: Any, serve: Any) -> None:
    client = serve()
    statuses = [send(client, SCANNER, a) for a in ATTACKS] + [send(client, SCANNER, CLEAN)]
    assert statuses == [200] * (len(ATTACKS) + 1)
    spans = spans_for(otel, len(ATTACKS) + 1)
    assert not any(s.attributes["devsecmw.blocked"] for s in spans)
    assert all(s.attributes.get("devsecmw.would_block") is True for s in spans)
    assert "client_flagged" in spans[FLAG_AFTER - 1].attributes["devsecmw.signal.types"]
    # Reported once (crossing), then the flag rides on the span as an attribute.
    assert spans[-1].attributes["devsecmw.signal.types"] == ()
    assert spans[-1].attributes["devsecmw.client.flagged"] is True


def test_bodies_through_a_real_server_in_block_mode(otel: Any, serve: Any) -> None:
    client = serve(mode="block", body_limit=8192)  # the default wait: ample for bodies already sent
    big = bytes(range(256)) * 512  # 128 KiB: sixteen times the cap
    assert client.post("/echo", content=big).content == big

    def chunked() -> Iterator[bytes]:  # Transfer-Encoding: chunked, many receive() messages
        for i in range(0, len(big), 3000):
            yield big[i : i + 3000]

    assert client.post("/echo", content=chunked()).content == big
    assert client.post("/echo", content=b"").content == b""  # no hang on an empty POST
    attack = b'{"comment": "<script>alert(document.cookie)</script>"}'
    r = client.post("/echo", content=attack, headers={"accept": "application/json"})
    assert r.status_code == 403 and r.json()["error"] == "request blocked"
    spans = spans_for(otel, 4)
    blocked = [s for s in spans if s.attributes["devsecmw.blocked"]]
    assert [format(s.context.trace_id, "032x") for s in blocked] == [r.json()["trace_id"]]
    assert "xss" in blocked[0].attributes["devsecmw.signal.types"]


def test_slow_upload_through_a_real_server_is_not_waited_for(otel: Any, serve: Any) -> None:
    client = serve(mode="block", block_read_timeout=0.05)

    def slow() -> Iterator[bytes]:  # the attack is sent ten times the wait after the request began
        yield b'{"name": "bob", '
        time.sleep(0.5)
        yield b'"comment": "<script>alert(document.cookie)</script>"}'

    r = client.post("/echo", content=slow())
    assert r.status_code == 200  # not blocked for what had not arrived...
    assert r.content == b'{"name": "bob", "comment": "<script>alert(document.cookie)</script>"}'
    [span] = spans_for(otel, 1)
    assert "xss" in span.attributes["devsecmw.signal.types"]  # ...but inspected as the app read it
    assert span.attributes["devsecmw.blocked"] is False and span.attributes["devsecmw.would_block"] is True
    assert otel.error_count("read_ahead", "timeout") == 1

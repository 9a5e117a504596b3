"""The Falcon adapter (``devsecmw.falcon``): a real Falcon app, WSGI and ASGI, through
``falcon.testing``. The route template Falcon matched is ``http.route``; monitor mode
changes no byte of any response; block mode answers 403 before the resource runs.
What every adapter does is in ``tests/test_adapter_contract.py`` (the Falcon drivers)."""

from __future__ import annotations

import threading
import wsgiref.simple_server
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

pytest.importorskip("falcon")
import falcon
import falcon.asgi
import falcon.testing

import devsecmw.asgi
import devsecmw.falcon
import devsecmw.wsgi
from devsecmw.config import Config
from devsecmw.engine import Engine
from devsecmw.request import from_asgi_scope
from devsecmw.routes import ROUTE_KEY

DETECTOR = Engine(Config())
SQLI = "q=1%27%20UNION%20SELECT%20password%20FROM%20users--"
SQLI_FORM = "name=bob&q=1%27+UNION+SELECT+password+FROM+users--"
FORM = "application/x-www-form-urlencoded"
KINDS = ("wsgi", "asgi")


class Calls:
    """What the resources did: the requests they answered and the bodies they read."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.bodies: list[bytes] = []


def build(kind: str, calls: Calls) -> Any:
    """A Falcon app: ``/items/{item_id}`` (GET echoes the id, POST echoes the body it read)."""
    if kind == "wsgi":

        class Items:
            def on_get(self, req: Any, resp: Any, item_id: str) -> None:
                calls.seen.append(item_id)
                resp.media = {"id": item_id, "q": req.get_param("q")}
                resp.set_header("X-Item", item_id)

            def on_post(self, req: Any, resp: Any, item_id: str) -> None:
                calls.seen.append(item_id)
                body = req.bounded_stream.read()
                calls.bodies.append(body)
                resp.content_type = "application/octet-stream"
                resp.data = body[::-1]

        app = falcon.App()
        app.add_route("/items/{item_id}", Items())
        return app

    class AsyncItems:
        async def on_get(self, req: Any, resp: Any, item_id: str) -> None:
            calls.seen.append(item_id)
            resp.media = {"id": item_id, "q": req.get_param("q")}
            resp.set_header("X-Item", item_id)

        async def on_post(self, req: Any, resp: Any, item_id: str) -> None:
            calls.seen.append(item_id)
            body = await req.stream.read()
            calls.bodies.append(body)
            resp.content_type = "application/octet-stream"
            resp.data = body[::-1]

    app = falcon.asgi.App()
    app.add_route("/items/{item_id}", AsyncItems())
    return app


def client(kind: str, otel: Any, calls: Calls | None = None, **options: Any) -> falcon.testing.TestClient:
    app = build(kind, calls or Calls())
    wrapped = devsecmw.falcon.instrument(app, detector=DETECTOR, time_budget=5.0, **otel.providers, **options)
    return falcon.testing.TestClient(wrapped)


Send = Callable[[falcon.testing.TestClient], Any]
#: Benign and hostile requests, routed and not, with and without a body.
REQUESTS: list[Send] = [
    lambda c: c.simulate_get("/items/7"),
    lambda c: c.simulate_get("/items/7", query_string=SQLI),
    lambda c: c.simulate_get("/nothing/here", query_string=SQLI),
    lambda c: c.simulate_post("/items/9", body=SQLI_FORM, content_type=FORM),
    lambda c: c.simulate_post("/items/9", body=b"\x00\xff" * 5000, content_type="application/octet-stream"),
    lambda c: c.simulate_request("DELETE", "/items/7"),  # no responder: Falcon's 405
]


@pytest.mark.parametrize("kind", KINDS)
def test_an_attack_is_a_signal_on_the_route_template(kind: str, otel: Any) -> None:
    r = client(kind, otel).simulate_get("/items/7", query_string=SQLI)
    assert r.status_code == 200 and r.json["id"] == "7"
    span = otel.span()
    assert "sqli" in span.attributes["devsecmw.signal.types"]
    assert span.attributes["http.route"] == "/items/{item_id}"  # the template, never /items/7
    assert span.name == "GET /items/{item_id}"


@pytest.mark.parametrize("kind", KINDS)
def test_an_unrouted_request_has_no_template(kind: str, otel: Any) -> None:
    r = client(kind, otel).simulate_get("/nothing/here", query_string=SQLI)
    assert r.status_code == 404
    span = otel.span()
    assert "http.route" not in span.attributes
    assert "sqli" in span.attributes["devsecmw.signal.types"]


@pytest.mark.parametrize("kind", KINDS)
def test_monitor_mode_changes_no_byte_of_any_response(kind: str, otel: Any) -> None:
    bare_calls, calls = Calls(), Calls()
    bare = falcon.testing.TestClient(build(kind, bare_calls))
    wrapped = client(kind, otel, calls)
    for send in REQUESTS:
        want, got = send(bare), send(wrapped)
        assert (got.status, got.headers, got.content) == (want.status, want.headers, want.content)
    assert (calls.seen, calls.bodies) == (bare_calls.seen, bare_calls.bodies)  # the app read the same
    assert len(otel.server_spans()) == len(REQUESTS)
    assert all(s.attributes["devsecmw.blocked"] is False for s in otel.server_spans())


@pytest.mark.parametrize("kind", KINDS)
def test_block_mode_answers_403_before_the_resource_runs(kind: str, otel: Any) -> None:
    calls = Calls()
    c = client(kind, otel, calls, mode="block")
    r = c.simulate_get("/items/7", query_string=SQLI, headers={"Accept": "application/json"})
    assert r.status_code == 403 and r.json["error"]
    r = c.simulate_post("/items/9", body=SQLI_FORM, content_type=FORM)  # the body, read ahead
    assert r.status_code == 403
    assert calls.seen == [] and calls.bodies == []
    spans = otel.server_spans()
    assert [s.attributes["devsecmw.blocked"] for s in spans] == [True, True]
    assert [s.attributes["http.response.status_code"] for s in spans] == [403, 403]


@pytest.mark.parametrize("kind", KINDS)
def test_block_mode_lets_a_benign_request_through_with_its_whole_body(kind: str, otel: Any) -> None:
    calls = Calls()
    body = bytes(range(256)) * 200  # past the inspection cap: read ahead in part, replayed whole
    r = client(kind, otel, calls, mode="block").simulate_post(
        "/items/9", body=body, content_type="application/octet-stream"
    )
    assert r.status_code == 200 and r.content == body[::-1]
    assert calls.bodies == [body]
    assert otel.span().attributes["http.route"] == "/items/{item_id}"


def test_instrument_picks_the_middleware_of_the_app_kind(otel: Any) -> None:
    assert isinstance(
        devsecmw.falcon.instrument(falcon.App(), **otel.providers), devsecmw.wsgi.SecurityMiddleware
    )
    asgi = devsecmw.falcon.instrument(falcon.asgi.App(), **otel.providers)
    assert isinstance(asgi, devsecmw.asgi.SecurityMiddleware)


def test_the_route_middleware_writes_the_template_where_the_middleware_reads_it() -> None:
    class Req:
        uri_template = "/items/{item_id}"

        def __init__(self) -> None:
            self.env: dict[str, Any] = {}

    class AsgiReq(Req):
        def __init__(self) -> None:
            super().__init__()
            self.scope: dict[str, Any] = {}

    wsgi_req, asgi_req, unrouted = Req(), AsgiReq(), Req()
    unrouted.uri_template = None  # type: ignore[assignment]
    mw = devsecmw.falcon.RouteMiddleware()
    for req in (wsgi_req, asgi_req, unrouted):
        mw.process_resource(req, None, None, {})
    assert wsgi_req.env == {ROUTE_KEY: "/items/{item_id}"}
    assert asgi_req.scope == {ROUTE_KEY: "/items/{item_id}"} and asgi_req.env == {}
    assert unrouted.env == {}


def test_scope_addresses_given_as_iterators_are_read_and_kept_for_the_app() -> None:
    # falcon.testing hands the ASGI ``server`` as an iterator (the spec says: an iterable).
    scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "headers": [],
        "client": iter(["203.0.113.5", 4000]),
        "server": iter(["127.0.0.1", 8000]),
    }
    request = from_asgi_scope(scope)
    assert (request.client_address, request.server_address) == ("203.0.113.5", "127.0.0.1")
    assert scope["client"] == ("203.0.113.5", 4000) and scope["server"] == ("127.0.0.1", 8000)


# --------------------------------------------------------------------------- real servers
@contextmanager
def wsgiref_thread(app: Any) -> Iterator[str]:
    """The stdlib's WSGI server on a free port of 127.0.0.1, in a thread, stopped at the end."""
    server = wsgiref.simple_server.make_server("127.0.0.1", 0, app, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
    assert not thread.is_alive()


class _QuietHandler(wsgiref.simple_server.WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # no access log on stderr
        pass


def _exchange(base: str) -> list[tuple[int, list[tuple[str, str]], bytes]]:
    out = []
    with httpx.Client(base_url=base, timeout=10.0) as http:
        for method, path, query, body in [
            ("GET", "/items/7", "", b""),
            ("GET", "/items/7", SQLI, b""),
            ("POST", "/items/9", "", SQLI_FORM.encode()),
            ("GET", "/nothing", "", b""),
        ]:
            headers = {"content-type": FORM} if body else {}
            r = http.request(method, f"{path}?{query}" if query else path, content=body, headers=headers)
            # Date is the server's clock, not the app's answer.
            out.append(
                (r.status_code, [(k, v) for k, v in r.headers.multi_items() if k != "date"], r.content)
            )
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_on_a_real_server(kind: str, otel: Any) -> None:
    serve: Callable[[Any], Any] = wsgiref_thread
    if kind == "asgi":
        from test_e2e_uvicorn import uvicorn_thread

        serve = uvicorn_thread
    with serve(build(kind, Calls())) as base:
        want = _exchange(base)
    with serve(devsecmw.falcon.instrument(build(kind, Calls()), detector=DETECTOR, **otel.providers)) as base:
        got = _exchange(base)
    assert got == want  # monitor mode: every byte the same
    # (route, attack) per span; sorted: a span ends after its last byte, in any order
    seen = sorted(
        (s.attributes.get("http.route", ""), "sqli" in s.attributes.get("devsecmw.signal.types", ()))
        for s in otel.server_spans()
    )
    assert seen == [
        ("", False),
        ("/items/{item_id}", False),
        ("/items/{item_id}", True),
        ("/items/{item_id}", True),
    ]
    otel.clear()
    calls = Calls()
    app = devsecmw.falcon.instrument(build(kind, calls), detector=DETECTOR, mode="block", **otel.providers)
    with serve(app) as base, httpx.Client(base_url=base, timeout=10.0) as http:
        assert (
            http.post("/items/9", content=SQLI_FORM.encode(), headers={"content-type": FORM}).status_code
            == 403
        )
        assert http.get("/items/8").status_code == 200
    assert calls.seen == ["8"]

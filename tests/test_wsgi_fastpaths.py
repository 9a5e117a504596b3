"""The WSGI adapter's fast paths keep its promises.

A list or tuple response (and any iterable whose iterator is a list or tuple iterator) is
handed over without making the span current around each chunk, since no app code can run
there; everything that may run app code (a generator, a custom ``__iter__``, ``close()``)
still runs with devsecmw's span current, and the span still ends after the last chunk, or
at ``close()`` when the server stops early.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from typing import Any

import opentelemetry.context as otel_context
import pytest
from opentelemetry import trace
from test_wsgi import STEADY, Server, environ_for

from devsecmw.request import from_wsgi_environ
from devsecmw.wsgi import InputTap, SecurityMiddleware


class AttachCounter:
    """Counts context attaches (each activation of devsecmw's span is one)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = otel_context.attach

        def attach(context: Any) -> object:
            self.count += 1
            return real(context)

        monkeypatch.setattr(otel_context, "attach", attach)


def current_span_id() -> int:
    return trace.get_current_span().get_span_context().span_id


def ignore_start(*args: Any) -> Any:
    return lambda data: None


def middleware(app: Any, otel: Any) -> SecurityMiddleware:
    return SecurityMiddleware(app, **otel.providers, **STEADY)


@pytest.mark.parametrize("kind", [list, tuple])
def test_plain_response_no_activation_per_chunk_span_ends_after_last(
    kind: type, otel: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        chunks: Iterable[bytes] = kind([b"one", b"two", b"three"])
        return chunks

    counter = AttachCounter(monkeypatch)
    result = middleware(app, otel)(environ_for("/"), ignore_start)
    assert len(result) == 3  # type: ignore[arg-type]  # len() kept for servers
    it = iter(result)
    after_call = counter.count
    assert [next(it), next(it), next(it)] == [b"one", b"two", b"three"]
    assert counter.count == after_call  # no activation per chunk
    assert otel.spans() == []  # the span is still open until the end is seen
    with pytest.raises(StopIteration):
        next(it)
    assert counter.count == after_call + 1  # the end: span current for the final telemetry
    assert len(otel.server_spans()) == 1
    result.close()  # type: ignore[attr-defined]
    assert len(otel.server_spans()) == 1
    assert not trace.get_current_span().get_span_context().is_valid


def test_plain_response_server_stops_early_close_ends_span(otel: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"a", b"b", b"c"]

    server = Server().run(middleware(app, otel), environ_for("/"), stop_after=1)
    assert server.body == b"a"
    span = otel.span()
    assert span.attributes is not None
    assert span.attributes["http.response.status_code"] == 200
    assert not trace.get_current_span().get_span_context().is_valid


def test_empty_list_response_ends_span(otel: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start_response("204 No Content", [])
        return []

    server = Server().run(middleware(app, otel), environ_for("/"))
    assert server.status == "204 No Content" and server.body == b""
    assert len(otel.server_spans()) == 1


def test_generator_response_sees_span_in_every_chunk_and_close(otel: Any) -> None:
    seen: list[tuple[str, int]] = []

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        seen.append(("call", current_span_id()))
        try:
            for chunk in (b"x", b"y"):
                seen.append(("chunk", current_span_id()))
                yield chunk
        finally:
            seen.append(("close", current_span_id()))

    server = Server().run(middleware(app, otel), environ_for("/"), stop_after=1)
    assert server.body == b"x"
    span_id = otel.span().context.span_id
    # The generator body runs on the first next(); stopped after one chunk, its finally runs in close().
    assert seen == [("call", span_id), ("chunk", span_id), ("close", span_id)]
    assert not trace.get_current_span().get_span_context().is_valid


def test_custom_iterable_over_a_list_iter_and_close_see_span(
    otel: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, int]] = []

    class Body:
        """App code in __iter__ and close(); the iterator itself is a list iterator."""

        def __iter__(self) -> Iterator[bytes]:
            seen.append(("iter", current_span_id()))
            return iter([b"p", b"q", b"r"])

        def close(self) -> None:
            seen.append(("close", current_span_id()))

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Body()

    counter = AttachCounter(monkeypatch)
    result = middleware(app, otel)(environ_for("/"), ignore_start)
    it = iter(result)
    before = counter.count
    assert next(it) == b"p"  # iter() is app code: activated once
    assert counter.count == before + 1
    assert [next(it), next(it)] == [b"q", b"r"]
    assert counter.count == before + 1  # then the list iterator's chunks: not activated
    with pytest.raises(StopIteration):
        next(it)
    assert len(otel.server_spans()) == 1
    result.close()  # type: ignore[attr-defined]
    span_id = otel.span().context.span_id
    assert seen == [("iter", span_id), ("close", span_id)]  # close() is always called, span current


def test_list_subclass_with_own_iter_is_app_code(otel: Any) -> None:
    seen: list[int] = []

    class Chunks(list[bytes]):
        def __iter__(self) -> Iterator[bytes]:
            for chunk in list.__iter__(self):
                seen.append(current_span_id())
                yield chunk

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Chunks([b"1", b"2"])

    server = Server().run(middleware(app, otel), environ_for("/"))
    assert server.body == b"12"
    span_id = otel.span().context.span_id
    assert seen == [span_id, span_id]


def test_list_response_duration_exemplar_carries_the_span(otel: Any) -> None:
    """The end of the inspection runs with the span current, so metrics link to it."""

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    Server().run(middleware(app, otel), environ_for("/"))
    span_id = otel.span().context.span_id
    points = otel.metric_points("devsecmw.inspection.duration")
    assert points
    exemplar_spans = {e.span_id for _, p in points for e in (p.exemplars or ())}
    assert span_id in exemplar_spans


# ---------------------------------------------------------------------- wsgi.input tap
class Chunks:
    """Records what the inspection was shown of the body."""

    def __init__(self) -> None:
        self.seen: list[tuple[bytes, bool]] = []

    def body_chunk(self, chunk: bytes, more: bool) -> None:
        self.seen.append((chunk, more))


def test_tap_optional_reads_become_methods_and_stay_observed() -> None:
    insp = Chunks()
    tap = InputTap(io.BytesIO(b"abcdefgh"), insp, 8)  # type: ignore[arg-type]
    assert hasattr(tap, "readinto")  # first lookup: the stream's optional reads become methods
    assert isinstance(tap, InputTap) and "readinto" in type(tap).__dict__
    buffer = bytearray(3)
    assert tap.readinto(buffer) == 3 and buffer == b"abc"
    assert tap.read1(2) == b"de"
    assert tap.readinto1(bytearray(10)) == 3
    assert insp.seen == [(b"abc", True), (b"de", True), (b"fgh", True), (b"", False)]


def test_tap_claims_only_the_optional_reads_the_stream_has() -> None:
    class ReadintoOnly:
        def __init__(self) -> None:
            self.data = io.BytesIO(b"xyz")

        def read(self, *a: Any) -> bytes:
            return self.data.read(*a)

        def readinto(self, buffer: Any) -> int:
            return self.data.readinto(buffer)

    insp = Chunks()
    tap = InputTap(ReadintoOnly(), insp, None)  # type: ignore[arg-type]
    buffer = bytearray(5)
    assert tap.readinto(buffer) == 3
    assert not hasattr(tap, "read1") and not hasattr(tap, "readinto1")
    assert tap.readinto(bytearray(5)) == 0  # the end, asked for 5 and got none
    assert insp.seen == [(b"xyz", True), (b"", False)]

    # Another stream with all three gets its own class: one class per combination.
    full = InputTap(io.BytesIO(b"q"), Chunks(), 1)  # type: ignore[arg-type]
    assert hasattr(full, "read1") and type(full) is not type(tap)


def test_flask_post_body_read_through_readinto_is_inspected(otel: Any) -> None:
    flask = pytest.importorskip("flask")
    app = flask.Flask("fastpaths")

    @app.route("/items", methods=["POST"])  # type: ignore[untyped-decorator]
    def items() -> Any:
        return {"n": len(flask.request.get_data())}

    app.wsgi_app = middleware(app.wsgi_app, otel)
    body = b'{"q": "1\' UNION SELECT password FROM users--"}'
    response = app.test_client().post("/items", data=body, content_type="application/json")
    assert response.get_json() == {"n": len(body)}
    assert "sqli" in otel.signal_types()
    span = otel.span()
    assert span.attributes is not None and span.attributes["http.route"] == "/items"


# ---------------------------------------------------------------------- request model
@pytest.mark.parametrize(
    ("path_info", "target", "path"),
    [
        ("/api/items", "/api/items?a=1", "/api/items"),
        ("/a:b@c!$&'()*+,;=-._~", "/a:b@c!$&'()*+,;=-._~?a=1", "/a:b@c!$&'()*+,;=-._~"),  # needs no quoting
        ("/a b%", "/a%20b%25?a=1", "/a b%"),
        ("/caf\xc3\xa9", "/caf%C3%A9?a=1", "/café"),  # latin-1 text of UTF-8 bytes
        ("/\xe9", "/%E9?a=1", "/\xe9"),  # not UTF-8: every byte kept
    ],
)
def test_wsgi_target_and_path(path_info: str, target: str, path: str) -> None:
    request = from_wsgi_environ(environ_for(path_info, query="a=1"))
    assert (request.target, request.path) == (target, path)


def test_wsgi_headers_empty_content_keys_are_not_headers() -> None:
    environ = environ_for("/", CONTENT_TYPE="", CONTENT_LENGTH="", HTTP_X_EMPTY="", HTTP_X_N=7)
    request = from_wsgi_environ(environ)
    assert ("x-empty", "") in request.headers and ("x-n", "7") in request.headers
    assert request.header("content-type") is None and request.header("content-length") is None
    environ = environ_for("/", CONTENT_TYPE="text/plain", CONTENT_LENGTH="3")
    assert from_wsgi_environ(environ).header("content-length") == "3"

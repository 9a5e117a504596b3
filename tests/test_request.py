"""The request model built from an ASGI scope or a WSGI environ keeps what was on the wire."""

from __future__ import annotations

import io
from typing import Any

from devsecmw.engine.targets import body_values, head_values
from devsecmw.request import from_asgi_scope, from_wsgi_environ, parse_cookies, parse_qsl


def scope(**kw: Any) -> dict[str, Any]:
    base = {"type": "http", "method": "GET", "path": "/a b", "raw_path": b"/a%20b", "query_string": b"",
            "headers": [], "http_version": "1.1", "scheme": "https", "client": ("198.51.100.7", 5000),
            "server": ("10.0.0.1", 443)}  # fmt: skip
    base.update(kw)
    return base


def test_raw_target_is_kept_exactly() -> None:
    req = from_asgi_scope(scope(raw_path=b"/a/..%2f%2E/b", path="/a/../b", query_string=b"x=%27&x=2&y"))
    assert req.target == "/a/..%2f%2E/b?x=%27&x=2&y"
    assert req.path == "/a/../b"
    assert (req.client_address, req.client_port, req.scheme) == ("198.51.100.7", 5000, "https")


def test_raw_path_missing_is_reencoded() -> None:
    req = from_asgi_scope(scope(raw_path=None, path="/é x"))
    assert req.target == "/%C3%A9%20x"


def test_duplicate_headers_in_wire_order_and_latin1() -> None:
    headers = [(b"X-Tag", b"one"), (b"x-tag", b"two"), (b"User-Agent", b"caf\xe9")]
    req = from_asgi_scope(scope(headers=headers))
    assert req.headers == [("x-tag", "one"), ("x-tag", "two"), ("user-agent", "café")]
    assert req.header("x-tag") == "one, two"
    assert req.header_values("x-tag") == ["one", "two"]


def test_repeated_query_keys_in_order() -> None:
    req = from_asgi_scope(scope(query_string=b"id=1&id=2&name=a+b&flag&=v&bad=%zz&e=%C3%A9&x=%FF"))
    got = [(f.name, f.value, f.utf8) for f in req.query]
    assert got == [("id", "1", True), ("id", "2", True), ("name", "a b", True), ("flag", "", True),
                   ("", "v", True), ("bad", "%zz", True), ("e", "é", True), ("x", "\xff", False)]  # fmt: skip
    assert [f.location for f in req.query][:2] == ["query:id", "query:id"]


def test_cookies() -> None:
    fields = parse_cookies(['theme=dark; _ga=GA1.2.3; q="quoted"', "late=1"])
    assert [(f.name, f.value, f.location) for f in fields] == [
        ("theme", "dark", "cookie:theme"),
        ("_ga", "GA1.2.3", "cookie:_ga"),
        ("q", "quoted", "cookie:q"),
        ("late", "1", "cookie:late"),
    ]


def test_wsgi_environ() -> None:
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/caf\xc3\xa9", "QUERY_STRING": "a=1&a=2",
               "RAW_URI": "/caf%C3%A9?a=1&a=2", "HTTP_X_TAG": "one", "CONTENT_TYPE": "application/json",
               "CONTENT_LENGTH": "2", "REMOTE_ADDR": "203.0.113.9", "REMOTE_PORT": "4000",
               "SERVER_PROTOCOL": "HTTP/1.0", "wsgi.input": io.BytesIO(b"{}"),
               "wsgi.url_scheme": "http"}  # fmt: skip
    req = from_wsgi_environ(environ)
    assert req.target == "/caf%C3%A9?a=1&a=2"
    assert req.path == "/café"
    assert ("content-type", "application/json") in req.headers and ("x-tag", "one") in req.headers
    assert [f.value for f in req.query] == ["1", "2"]
    assert (req.http_version, req.client_address, req.client_port) == ("1.0", "203.0.113.9", 4000)


def test_wsgi_without_raw_uri_requotes_path() -> None:
    req = from_wsgi_environ({"REQUEST_METHOD": "GET", "PATH_INFO": "/a b", "QUERY_STRING": "q=1"})
    assert req.target == "/a%20b?q=1"


def test_head_values_address_every_part() -> None:
    req = from_asgi_scope(scope(query_string=b"id=1", headers=[(b"cookie", b"sid=x"), (b"accept", b"*/*")]))
    keys = {(k, loc) for k, loc, _v, _u in head_values(req)}
    # No Referer: the request came from elsewhere, and its names say so (one value per name).
    assert {("method", "method"), ("path", "path"), ("query", "query:id"),
            ("query.names.offsite", "query:id"), ("cookies", "cookie:sid"),
            ("header:accept", "header:accept"),
            ("headers.names", "header:cookie")} <= keys  # fmt: skip
    assert ("query.names", "query:id") not in keys
    assert ("header:cookie", "header:cookie") not in keys  # cookies have their own target
    same = [(b"host", b"shop.test"), (b"referer", b"https://shop.test/list")]
    req = from_asgi_scope(scope(query_string=b"id=1", headers=same))
    keys = [(k, loc) for k, loc, _v, _u in head_values(req)]
    assert keys.count(("query.names", "query:id")) == 1
    assert ("query.names.offsite", "query:id") not in keys


def test_parse_qsl_never_raises_on_junk() -> None:
    assert [(f.name, f.value) for f in parse_qsl("%%%&&=&%")] == [("%%%", ""), ("", ""), ("%", "")]


def test_body_values_none_for_binary() -> None:
    req = from_asgi_scope(scope(method="POST", headers=[(b"content-type", b"image/png")]))
    req.add_body(b"\x89PNG....", 1024)
    assert body_values(req) == []


def test_header_map_is_built_with_the_headers() -> None:
    """The ASGI builder fills the name -> value map in the same pass: it equals the lazy one."""
    headers = [
        (b"Host", b"a"),
        (b"x-tag", b"one"),
        (b"X-TAG", b"two"),
        (b"cookie", b"a=1"),
        (b"cookie", b"b=2"),
    ]
    eager = from_asgi_scope(scope(headers=headers))
    lazy = from_asgi_scope(scope(headers=headers))
    lazy._header_map = None
    for name in ("host", "x-tag", "cookie", "absent"):
        assert eager.header(name) == lazy.header(name)
    assert eager.header("x-tag") == "one, two"


def test_headers_that_are_not_bytes_are_read_too() -> None:
    """A server handing str or bytearray headers gets the same model as one handing bytes."""
    want = from_asgi_scope(scope(headers=[(b"X-A", b"caf\xe9"), (b"x-b", b"2")], query_string=b"q=1"))
    for headers in (
        [("X-A", "caf\xe9"), ("x-b", "2")],
        [(bytearray(b"X-A"), bytearray(b"caf\xe9")), (b"x-b", b"2")],
        [(b"X-A", "caf\xe9"), (b"x-b", b"2")],
    ):
        got = from_asgi_scope(scope(headers=headers, query_string=bytearray(b"q=1")))
        assert (got.headers, got.header("x-a"), got.target) == (want.headers, want.header("x-a"), want.target)


def test_wsgi_headers_from_the_environ_keys() -> None:
    """HTTP_* keys are headers even when empty; CONTENT_* only when set; other keys never."""
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "HTTP_X_EMPTY": "", "CONTENT_LENGTH": "",
               "CONTENT_TYPE": "text/plain", "HTTP_ACCEPT_LANGUAGE": "fr", "SERVER_NAME": "x",
               "wsgi.url_scheme": "http", "HTTP_X_NUMBER": 7}  # fmt: skip
    for _ in range(2):  # the second time, the key -> name lookups are remembered ones
        req = from_wsgi_environ(environ)
        assert req.headers == [("x-empty", ""), ("content-type", "text/plain"), ("accept-language", "fr"),
                               ("x-number", "7")]  # fmt: skip
        assert req.header("accept-language") == "fr" and req.header("content-length") is None

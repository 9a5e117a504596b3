"""Protocol (920/921/922), scanners (913), session fixation (943) and the request anomalies
``null_byte``, ``not_utf8`` and ``double_encoding``.

The rules' own examples; the code checks of :mod:`devsecmw.engine.protocol` one by one;
the synthetic targets (``headers.raw``, ``args.names.offsite``); then whole
requests through the engine and the ASGI middleware, and ordinary requests that must
stay quiet.
"""

from __future__ import annotations

from typing import Any

import pytest
from detect_harness import Req, asgi_signals, engine_signals, fired, rule_examples, scope_for, types

from devsecmw.engine import protocol
from devsecmw.engine.rules import Rule
from devsecmw.engine.targets import head_raw, offsite
from devsecmw.request import from_asgi_scope

ATTACKS = {"protocol", "scanner", "session_fixation"}


# --------------------------------------------------------------------------- rule examples
@pytest.mark.parametrize(
    ("rule", "example", "should_match"),
    rule_examples("920-protocol.json", "913-scanner.json", "943-session-fixation.json"),
)
def test_rule_examples(rule: Rule, example: str, should_match: bool) -> None:
    assert (rule.matches_value(example) is not None) is should_match


# --------------------------------------------------------------------------- code checks
def test_unknown_check_is_an_error_that_lists_the_checks() -> None:
    with pytest.raises(ValueError, match=r"unknown protocol check .nope..*cl_te"):
        protocol.make_detector({"check": "nope"})
    with pytest.raises(ValueError, match="detect_protocol needs"):
        protocol.make_detector("cl_te")


def test_method_override_needs_a_valid_place() -> None:
    with pytest.raises(ValueError, match="invalid 'in'"):
        protocol.make_detector({"check": "method_override", "in": "cookie"})


def test_check_spans_point_at_the_offending_line() -> None:
    raw = "POST / HTTP/1.1\nhost: a\ncontent-length: 4\ntransfer-encoding: chunked"
    span = protocol.make_detector({"check": "cl_te"})(raw)
    assert span is not None and raw[span[0] : span[1]] == "transfer-encoding: chunked"


@pytest.mark.parametrize(
    "value",
    ["", "\n\n\n", "GET", "GET / HTTP/1.1\n:", "x" * 10000, "--\n\n--", "bytes=" + "1-" * 500, "\x00\r\n"],
)
def test_checks_are_total(value: str) -> None:
    for name in (
        "cl_te",
        "content_length",
        "transfer_encoding",
        "body_on_get",
        "body_without_type",
        "duplicate_headers",
        "http_version",
        "restricted_headers",
        "cache_control",
        "accept_encoding",
        "charset",
        "range",
        "method_override",
        "multipart",
        "form_encoding",
        "content_type",
    ):
        span = protocol.make_detector({"check": name})(value)
        assert span is None or 0 <= span[0] <= span[1] <= len(value)


# --------------------------------------------------------------------------- synthetic targets
def _request(method: str, target: str, headers: list[tuple[str, str]]) -> Any:
    return from_asgi_scope(scope_for(method, target, headers))


def test_headers_raw_is_the_head_structure_without_free_text() -> None:
    req = _request(
        "POST",
        "/a?b=1",
        [
            ("Host", "x.test"),
            ("Authorization", "Bearer s3cret"),
            ("Cookie", "sid=abc"),
            ("User-Agent", "Mozilla/5.0"),
            ("Content-Length", "3"),
            ("Transfer-Encoding", "chunked"),
        ],
    )
    assert head_raw(req).splitlines() == [
        "POST HTTP/1.1",
        "host: x.test",
        "authorization:",
        "cookie:",
        "user-agent:",
        "content-length: 3",
        "transfer-encoding: chunked",
    ]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([("host", "shop.test")], True),  # no referer: a link from mail, chat, another site
        ([("host", "shop.test"), ("referer", "https://evil.example/x")], True),
        ([("host", "shop.test:8443"), ("referer", "https://shop.test:8443/cart")], False),
        ([("host", "shop.test"), ("origin", "https://shop.test")], False),
        ([("host", "shop.test"), ("referer", "https://shop.test.evil.example/")], True),
        ([("host", "[::1]:80"), ("referer", "http://[::1]/")], False),
        ([("host", "shop.test"), ("referer", "http://[bad")], True),
    ],
)
def test_offsite(headers: list[tuple[str, str]], expected: bool) -> None:
    assert offsite(_request("GET", "/", headers)) is expected


# --------------------------------------------------------------------------- whole requests
def hdr(*pairs: tuple[str, str], target: str = "/", method: str = "GET", body: bytes = b"") -> Req:
    return Req(target, method, headers=list(pairs), body=body)


PROTOCOL_CASES = [
    (
        hdr(("content-length", "4"), ("transfer-encoding", "chunked"), method="POST", body=b"0\r\n\r\n"),
        "headers",
        "920181",
    ),
    (hdr(("transfer-encoding", "chunked, identity"), method="POST", body=b"x"), "headers", "920182"),
    (hdr(("content-type", "text/plain"), ("content-length", "7"), body=b"hi=test"), "headers", "920170"),
    (hdr(("content-length", "4"), method="POST", body=b"test"), "headers", "920340"),
    (hdr(("host", "a.test"), ("host", "b.test")), "headers", "920620"),
    (hdr(("proxy", "http://evil.example:8080")), "headers", "920450"),
    (hdr(("content-range", "bytes 0-1/2")), "headers", "920450"),
    (hdr(("range", "bytes=0-,5-0,5-1,5-2,5-3")), "header:range", "920190"),
    (hdr(("connection", "keep-alive, close")), "header:connection", "920210"),
    (hdr(("cache-control", "max-age=1,,,max-stale=2")), "header:cache-control", "920510"),
    (hdr(("accept-encoding", "gzip" + ", gzip" * 30)), "header:accept-encoding", "920520"),
    (hdr(("accept", "text/html;q=0.9;charset=CP1026,*/*;q=0.8")), "header:accept", "920600"),
    (
        Req(
            "/post",
            "POST",
            body=b"test=value",
            content_type="application/x-www-form-urlencoded;charset=ibm037",
        ),
        "header:content-type",
        "920480",
    ),
    (
        Req(
            "/post", "POST", body=b"a=b", content_type='application/x-www-form-urlencoded;boundary="text/xml"'
        ),
        "header:content-type",
        "921421",
    ),
    (
        Req("/post", "POST", body=b"a=b", content_type="application/json, text/plain"),
        "header:content-type",
        "920470",
    ),
    (hdr(("sec-fetch-user", "foo")), "header:sec-fetch-user", "920275"),
    (hdr(("x test", "1")), "header:x test", "920273"),
    (Req.query("foo", "bar\r\nSet-Cookie: admin=1"), "query:foo", "921110"),
    (Req("/?a%0d%0aRemote-addr:%20x=1"), "query:a\r\nRemote-addr: x", "921150"),
    (Req.header("cookie", "oreo=munch%0d%0a%0d%0a<html><title></title></html>"), "cookie:oreo", "921110"),
    (
        Req.query("lang", 'x<meta http-equiv="Refresh" content="0; url=http://evil.example/">'),
        "query:lang",
        "921130",
    ),
    (Req.query("arg1", "GET http://www.foo.bar HTTP/1.1"), "query:arg1", "921130"),
    (Req.query("user", "*)(uid=*))(|(uid=*"), "query:user", "921200"),
    (Req("/?unix:AAAAAAAAAAAA|http://example.org/"), "uri", "921240"),
    (Req("/?foo[1]a=bar"), "query:foo[1]a", "921210"),
    (Req("/get?test=%uff0F"), "uri", "920260"),
    (Req("/?x=new%w20"), "uri", "920220"),
    (
        Req("/post", "POST", body=b"param=%1G", content_type="application/x-www-form-urlencoded"),
        "body",
        "920240",
    ),
    (
        Req("/post", "POST", body=b"testarg=%5Cu0061lert", content_type="application/x-www-form-urlencoded"),
        "body:form:testarg",
        "920540",
    ),
    (Req("/?test=a%03b"), "query:test", "920271"),
    (Req.header("cookie", "$Version=1; a=b"), "cookie:$Version", "921250"),
    (Req("/api/resource?_method=TRACE", "POST"), "uri", "920650"),
    (Req("/api/resource?id=1&_method=%44%45%42%55%47", "POST"), "uri", "920650"),
    (Req.form("_method", "PROPFIND", path="/webdav/file"), "body", "920655"),
    (Req("/api/resource?_method=PUT", "POST"), "uri", "920652"),
    (hdr(("x-http-method-override", "PROPFIND"), method="POST"), "header:x-http-method-override", "920654"),
]


@pytest.mark.parametrize(("req", "location", "rule_id"), PROTOCOL_CASES)
def test_protocol_detected(req: Req, location: str, rule_id: str) -> None:
    assert ("protocol", location, rule_id) in fired(engine_signals(req))


MULTIPART_BAD = [
    b'--b\r\n\x0eContent-Disposition: form-data; name="file"; filename="1.php"\r\n\r\nx\r\n--b--\r\n',
    b'--b\r\nContent- Disposition: form-data; name="file"; filename="1.php"\r\n\r\nx\r\n--b--\r\n',
    b'--b\r\nContent-Disposition: form-data; name="f"\r\nContent-Transfer-Encoding: 8bit\r\n'
    b"\r\nx\r\n--b--\r\n",
    b'--b\r\nContent-Disposition: form-data; name="f"; filename="te;st.txt"\r\n\r\nx\r\n--b--\r\n',
    b'--b\r\nContent-Disposition: form-data; name="f"; filename="a.txt"\r\n'
    b'Content-Disposition: form-data; name="g"\r\n\r\nx\r\n--b--\r\n',
    b'--b\r\nContent-Disposition: form-data; name="_charset_"\r\n\r\nibm037\r\n'
    b'--b\r\nContent-Disposition: form-data; name="q"\r\n\r\nx\r\n--b--\r\n',
]


@pytest.mark.parametrize("body", MULTIPART_BAD)
def test_multipart_part_headers(body: bytes) -> None:
    req = Req("/upload", "POST", body=body, content_type="multipart/form-data; boundary=b")
    assert ("protocol", "body", "922130") in fired(engine_signals(req))


def test_quote_in_file_name_only_at_paranoia_2() -> None:
    body = (
        b'--b\r\nContent-Disposition: form-data; name="f"; filename="O\'Brien CV.pdf"\r\n\r\nx\r\n--b--\r\n'
    )
    req = Req("/upload", "POST", body=body, content_type="multipart/form-data; boundary=b")
    assert "protocol" not in types(engine_signals(req))
    assert ("protocol", "body", "920120") in fired(engine_signals(req, paranoia=2))


def test_standard_method_override_in_a_form_only_at_paranoia_2() -> None:
    req = Req.form("_method", "DELETE", path="/posts/1")
    assert "protocol" not in types(engine_signals(req))
    assert ("protocol", "body", "920651") in fired(engine_signals(req, paranoia=2))


# --------------------------------------------------------------------------- scanners
@pytest.mark.parametrize(
    ("req", "location", "rule_id"),
    [
        (Req.header("user-agent", "sqlmap/1.7.2#stable (https://sqlmap.org)"), "header:user-agent", "913100"),
        (Req.header("user-agent", "Mozilla/5.0 zgrab/0.x"), "header:user-agent", "913100"),
        (Req.header("acunetix-product", "WVS/12"), "header:acunetix-product", "913110"),
        (Req.query("url", "http://abc123.oastify.com/"), "query:url", "913120"),
        (Req.header("x-forwarded-host", "q1w2e3.oast.fun"), "header:x-forwarded-host", "913120"),
        (Req.path("/w00tw00t.at.ISC.SANS.DFind:)"), "path", "913120"),
    ],
)
def test_scanner_detected(req: Req, location: str, rule_id: str) -> None:
    assert ("scanner", location, rule_id) in fired(engine_signals(req))


# --------------------------------------------------------------------------- session fixation
def test_session_id_parameter_from_another_site() -> None:
    req = Req(
        "/login.php?jsessionid=74B0CB414BD77D17B5680A6386EF1666",
        headers=[("referer", "http://www.attackersite.example/test")],
    )
    assert ("session_fixation", "query:jsessionid", "943110") in fired(engine_signals(req))


def test_session_id_parameter_without_referer_in_json() -> None:
    req = Req.json_body({"jsessionid": "foo"}, path="/")
    assert ("session_fixation", "body:json:jsessionid", "943110") in fired(engine_signals(req))


def test_session_id_parameter_from_the_same_site_passes() -> None:
    req = Req("/cart?PHPSESSID=abc123", headers=[("referer", "https://app.example.test/shop")])
    assert "session_fixation" not in types(engine_signals(req))


def test_cookie_set_through_a_parameter() -> None:
    req = Req.query("bar", '<script>document.cookie="sessionid=1234; domain=.example.dom";</script>')
    assert ("session_fixation", "query:bar", "943100") in fired(engine_signals(req))


def test_session_evidence_is_redacted() -> None:
    req = Req("/login?jsessionid=74B0CB414BD77D17B5680A6386EF1666")
    hits = [s for s in engine_signals(req) if s.type == "session_fixation"]
    assert hits and all("74B0CB" not in s.evidence for s in hits)


# --------------------------------------------------------------------------- anomalies
@pytest.mark.parametrize(
    ("req", "type_", "location", "rule_id"),
    [
        (Req("/?file=shell.php%00.jpg"), "null_byte", "query:file", "920270"),
        (Req.header("cookie", "a=x%00y"), "null_byte", "cookie:a", "920277"),
        (Req.json_body({"name": "a\u0000b"}), "null_byte", "body:json:name", "920270"),
        (Req("/tienda1/publico/anadir.jsp?nombre=Jam%F3n+Ib%E9rico"), "not_utf8", "query:nombre", "920250"),
        (Req("/?file=..%252f..%252fetc%252fpasswd"), "double_encoding", "query:file", "920230"),
    ],
)
def test_anomalies(req: Req, type_: str, location: str, rule_id: str) -> None:
    assert (type_, location, rule_id) in fired(engine_signals(req))


def test_a_literal_percent_sequence_in_a_password_is_not_a_control_character() -> None:
    """``%2503`` is ``%03`` once decoded (what the app sees), not the byte 0x03."""
    req = Req(
        "/signup", "POST", body=b"password=%24RB%2503K", content_type="application/x-www-form-urlencoded"
    )
    assert not types(engine_signals(req)) & {"protocol", "null_byte"}


# --------------------------------------------------------------------------- anomaly, not attack
CHUNKED_BODY = b"4\r\ntest\r\n0\r\n\r\n"
# (``Req`` adds ``Content-Length: len(body)`` to every request with a body.)
#: What real clients send: legal HTTP that is merely odd. Signals, never a block on their own.
LEGAL_ODDITIES = {
    "get_body_typed": hdr(("content-type", "text/plain"), body=b"test"),
    "get_body_untyped": hdr(body=b"test"),  # a digest-auth client's resend
    "head_body": hdr(method="HEAD", body=b"test"),
    "cl_te_typed": hdr(
        ("content-type", "application/json"), ("transfer-encoding", "chunked"), method="POST", body=b"test"
    ),
    "cl_te_untyped": hdr(("transfer-encoding", "chunked"), method="POST", body=b"test"),
    "get_cl_te_untyped": hdr(("transfer-encoding", "chunked"), body=b"test"),
}
#: Framing that is really malformed: smuggling attempts keep attack severity.
SMUGGLING = {
    "te_obfuscated": hdr(("transfer-encoding", "xchunked"), method="POST", body=b"x"),
    "te_listed": hdr(("transfer-encoding", "chunked, identity"), method="POST", body=b"x"),
    "te_repeated": hdr(
        ("transfer-encoding", "chunked"), ("transfer-encoding", "chunked"), method="POST", body=CHUNKED_BODY
    ),
    "cl_conflict": hdr(("content-length", "40"), method="POST", body=b"test"),
    "cl_invalid": hdr(("content-length", "4 4"), ("transfer-encoding", "chunked"), method="POST", body=b"x"),
}


@pytest.mark.parametrize("name", sorted(LEGAL_ODDITIES))
def test_legal_but_odd_http_is_an_anomaly_below_the_block_threshold(name: str) -> None:
    from devsecmw.config import Config
    from devsecmw.scoring import decide, should_block

    signals = engine_signals(LEGAL_ODDITIES[name])
    assert "protocol" in types(signals)  # still seen, still on the dashboard
    config = Config(mode="block")
    assert not should_block(signals, config)
    assert decide(signals, config).classification == "anomaly"


@pytest.mark.parametrize("name", sorted(SMUGGLING))
def test_malformed_framing_still_reaches_the_block_threshold(name: str) -> None:
    from devsecmw.config import Config
    from devsecmw.scoring import should_block

    assert should_block(engine_signals(SMUGGLING[name]), Config(mode="block"))


@pytest.mark.parametrize("name", sorted(LEGAL_ODDITIES))
def test_block_mode_lets_legal_but_odd_http_through_both_adapters(name: str, otel: Any) -> None:
    import asyncio
    import io

    from devsecmw.asgi import SecurityMiddleware as Asgi
    from devsecmw.wsgi import SecurityMiddleware as Wsgi

    req = LEGAL_ODDITIES[name]
    headers = req.all_headers()
    scope = scope_for(req.method, req.target, headers)
    sent: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": req.body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(Asgi(app, mode="block", **otel.providers)(scope, receive, send))
    assert sent[0]["status"] == 200

    def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        environ["wsgi.input"].read()
        start_response("200 OK", [])
        return [b"ok"]

    environ: dict[str, Any] = {
        "REQUEST_METHOD": req.method,
        "PATH_INFO": "/",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "10.1.2.3",
        "wsgi.input": io.BytesIO(req.body),
        "wsgi.input_terminated": True,
    }
    for k, v in headers:
        key = k.upper().replace("-", "_")
        environ[key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key] = v
    statuses: list[str] = []
    Wsgi(wsgi_app, mode="block", **otel.providers)(environ, lambda s, h, e=None: statuses.append(s))
    assert statuses == ["200 OK"]
    assert all(span.attributes["devsecmw.blocked"] is False for span in otel.server_spans())
    assert "protocol" in otel.signal_types()


# --------------------------------------------------------------------------- middleware
def test_through_the_asgi_middleware(otel: Any) -> None:
    req = hdr(("content-length", "4"), ("transfer-encoding", "chunked"), method="POST", body=b"0\r\n\r\n")
    events = asgi_signals(req, otel)
    hits = {
        (e["devsecmw.signal.type"], e["devsecmw.signal.location"], e.get("security_rule.uuid"))
        for e in events
    }
    assert ("protocol", "headers", "920181") in hits


def test_scanner_through_the_asgi_middleware(otel: Any) -> None:
    events = asgi_signals(Req.header("user-agent", "Mozilla/5.00 (Nikto/2.1.6) (Evasions:None)"), otel)
    assert ("scanner", "header:user-agent") in {
        (e["devsecmw.signal.type"], e["devsecmw.signal.location"]) for e in events
    }


# --------------------------------------------------------------------------- ordinary traffic
CHROME = [
    ("sec-ch-ua", '"Google Chrome";v="131", "Chromium";v="131", "Not_A Brand";v="24"'),
    ("sec-ch-ua-mobile", "?0"),
    ("sec-fetch-user", "?1"),
    ("sec-fetch-site", "same-origin"),
    ("accept-encoding", "gzip, deflate, br, zstd"),
    ("cache-control", "max-age=0"),
    ("connection", "keep-alive"),
    ("referer", "https://app.example.test/catalog?page=2"),
]

BENIGN = [
    hdr(*CHROME),
    hdr(*CHROME, ("range", "bytes=0-1023"), target="/video.mp4"),
    Req("/post", "POST", body=b'{"a": 1}', content_type="application/json; charset=utf-8"),
    Req(
        "/upload",
        "POST",
        content_type="multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW",
        body=b'------WebKitFormBoundary7MA4YWxkTrZu0gW\r\nContent-Disposition: form-data; name="file"; '
        b'filename="report.pdf"\r\nContent-Type: application/pdf\r\n\r\n%PDF-1.4 ...\r\n'
        b"------WebKitFormBoundary7MA4YWxkTrZu0gW--\r\n",
    ),
    Req.form("address", "Flat 21\nGlenn Pike"),
    Req.form("message", "Dear team,\r\nLocation: Berlin\r\nthanks"),
    Req("/geo/autocomplete?input=Main%20St&sessiontoken=368d0ddc-2c34-47a4-a7e7-702c43683185"),
    Req("/items?filter[price][min]=5&tags[]=a&tags[]=b"),
    Req("/posts/1", "POST", body=b"_method=DELETE&id=1", content_type="application/x-www-form-urlencoded"),
    Req.query("q", "smile :) (really)"),
    Req.header("user-agent", "curl/8.4.0"),
    Req.header("user-agent", "python-requests/2.31.0"),
    Req.query("q", "100%25 cotton"),
    Req.query("q", "get a quote for the post office"),
]


@pytest.mark.parametrize("req", BENIGN)
def test_ordinary_requests_pass(req: Req) -> None:
    assert not types(engine_signals(req)) & ATTACKS

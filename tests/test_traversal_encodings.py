"""Encodings of ``../`` that traversal fuzzers (dotdotpwn and the like) try, and their look-alikes.

Three layers: the decoding (``url_decode_deep``: nibble escapes, IIS non-hex digits;
``fold_path_chars``: runs of ``0x2e`` literals), properties of those transforms on hostile
input, then whole requests through the engine: every encoding is a traversal signal from
the rule that names the technique, and benign text that looks a little like one is none.
"""

from __future__ import annotations

import base64

import pytest
from detect_harness import Req, engine_signals, fired, types
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from devsecmw.engine.transforms import apply_chain, fold_path_chars, normalize_path, url_decode_deep

VIEW = ("url_decode_deep", "fold_path_chars", "normalize_path", "lowercase")  # the 930 rules' chain


# --------------------------------------------------------------------------- decoding
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # nibble encoding: each hex digit of "%2e" escaped on its own, once or twice
        ("%%32%%65%%32%%65/", "../"),
        ("%25%2532%25%2565%25%2532%25%2565%25%2532%25%2566", "../"),
        ("%%35%%63etc%%35%%63issue", "\\etc\\issue"),  # "%5%c" + "etc": the nibble wins over "%ce"
        ("%25%2535%25%2563boot.ini", "\\boot.ini"),
        ("%%32%%66boot.ini", "/boot.ini"),  # "%2%f" + "b": not "%fb"
        # IIS non-hex digits in an overlong pair (a letter g-z counts 16-35, low byte kept)
        ("..%c0%qf..%c0%qfetc", "../../etc"),
        ("..%c0%9v..", "../.."),
        ("..%c1%pc..", "..\\.."),
        ("..%c1%8s..", "..\\.."),
        ("..%bg%qf..", "../.."),  # %bg is a non-hex C0 lead
        ("%25c0%25qfetc%25c0%25qfpasswd", "/etc/passwd"),  # and double-encoded
        # still there: overlong forms of every length, %u, double encoding
        ("%f8%80%80%80%af", "/"),
        ("%25f0%2580%2580%25af", "/"),
        ("%25u2215", "\u2215"),
    ],
)
def test_url_decode_deep_reads_fuzzer_encodings(value: str, expected: str) -> None:
    assert url_decode_deep(value) == (expected, True)


@pytest.mark.parametrize(
    "value",
    ["50%off", "100% sure", "save 20%-30% today", "%s is %d years", "ratio 3%", "%zz", "%", "%%", "%g%h"],
)
def test_url_decode_deep_leaves_stray_percent_text_alone(value: str) -> None:
    assert url_decode_deep(value) == (value, False)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a%20b", "a b"),
        ("caf%C3%A9", "café"),
        ("50%25off", "50%off"),  # an escaped "%" then letters: no IIS digit read into it
        ("%c0%ae%c0%ae/", "../"),
    ],
)
def test_url_decode_deep_valid_escapes_unchanged_semantics(value: str, expected: str) -> None:
    assert url_decode_deep(value)[0] == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0x2e0x2e0x2f", "../"),
        ("0x2e0x2ex2e0x2e/", "..../"),  # a fuzzer's run that lost a "0"
        ("0X2E0X2EX5C", "..\\"),
    ],
)
def test_fold_path_chars_hex_runs(value: str, expected: str) -> None:
    assert fold_path_chars(value) == (expected, True)


@pytest.mark.parametrize("value", ["x2e", "0x41", "color 0x2a", "box2e", "#ff0000", "mix2f"])
def test_fold_path_chars_leaves_other_hex_alone(value: str) -> None:
    assert fold_path_chars(value) == (value, False)


# --------------------------------------------------------------------------- properties
_HOSTILE = st.text(
    alphabet=st.sampled_from(
        list("%%%uU0123456789abcdefqgpsvwxABCFQG./\\xX\x00\xc0\xc1\xe0\xf0\xf8\u2215é日")
    ),
    max_size=80,
)


@settings(max_examples=400, deadline=None)
@given(_HOSTILE)
def test_url_decode_deep_total_bounded_and_utf8_safe(value: str) -> None:
    out, changed = url_decode_deep(value)
    assert changed == (out != value)
    assert len(out) <= len(value)  # decoding only ever shortens
    out.encode("utf-8")  # no lone surrogate can reach RE2


@settings(max_examples=400, deadline=None)
@given(_HOSTILE)
def test_traversal_view_total_and_bounded(value: str) -> None:
    out = apply_chain(value, VIEW)
    assert len(out) <= 3 * len(value)  # fold_path_chars may spell U+2026 as "..."
    out.encode("utf-8")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("0xX2e5cEf./\\ab\u2215\uff0e\x00")), max_size=40))
def test_fold_and_normalize_are_idempotent(value: str) -> None:
    once = normalize_path(fold_path_chars(value)[0])[0]
    assert normalize_path(fold_path_chars(once)[0]) == (once, False)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("%25c0qfbg3e")), min_size=1, max_size=60))
def test_url_decode_deep_idempotent_once_no_escape_is_left(value: str) -> None:
    # Rounds are bounded (%252525... may keep a "%"); once none is left, decoding again is a no-op.
    once = url_decode_deep(value)[0]
    assume("%" not in once)
    assert url_decode_deep(once) == (once, False)


# --------------------------------------------------------------------------- whole requests
ENCODED = [
    # nibble and double-nibble dots and separators
    (Req("/get?q=%25%2532%25%2565%25%2532%25%2565%5C%25%2532%25%2565%25%2532%25%2565%5Cwin.ini"), "930100"),
    (Req.json_body({"q": "%%32%%65%%32%%65%c0%af%%32%%65%%32%%65%c0%afetc%c0%afpasswd"}), "930100"),
    (Req("/search?q=0x2e0x2e%25%2535%25%25630x2e0x2e%25%2535%25%2563etc%25%2535%25%2563issue"), "930100"),
    (Req.json_body({"q": "0x2e0x2ex2e0x2e%%35%%63etc%%35%%63issue"}), "930100"),
    # IIS non-hex digits
    (Req("/search?q=..%25c0%25qf..%25c0%25qfetc%25c0%25qfpasswd"), "930100"),
    (Req.form("q", "..%c1%8s..%c1%8sboot.ini"), "930100"),
    (Req.json_body({"q": "..%bg%qf..%bg%qfetc%bg%qfissue"}), "930100"),
    # Unicode slashes and five-byte overlong
    (Req("/search?q=..%25u2215..%25u2215etc%25u2215issue"), "930100"),
    (Req.json_body({"q": "..%f8%80%80%80%af..%f8%80%80%80%afetc%f8%80%80%80%afhosts"}), "930100"),
    # junk where the dots would be, the target file kept
    (Req("/search?q=%25c0%255e%25c0%255e%2F%25c0%255e%25c0%255e%2Fetc%2Fissue"), "930115"),
    (Req.form("q", "%c0%fe%c0%fe%c0%qfwindows%c0%qfsystem32%c0%qfdrivers%c0%qfetc%c0%qfhosts"), "930115"),
    (Req.json_body({"q": "%c0%5e%c0%5e%bg%qf%c0%5e%c0%5e%bg%qfboot.ini"}), "930115"),
    # base64 of a traversal
    (Req.query("q", base64.b64encode(b"../../../../etc/passwd").decode()), "930116"),
    (Req.json_body({"q": base64.b64encode(b"..\\..\\windows\\win.ini").decode()}), "930116"),
]  # fmt: skip


@pytest.mark.parametrize(("req", "rule_id"), ENCODED, ids=lambda v: v if isinstance(v, str) else None)
def test_encoded_traversal_detected(req: Req, rule_id: str) -> None:
    hits = fired(engine_signals(req), "traversal")
    assert rule_id in {rid for _, _, rid in hits}, hits


BENIGN = [
    Req.query("q", "Bring pens, paper, etc. and a laptop"),
    Req.query("q", "etc/issue tracker is on page 3, etc."),
    Req.query("v", "2.4.1-rc.3"),
    Req.query("color", "#ff0000"),
    Req.query("color", "0x2e2e2e"),
    Req.query("email", "anna.smith@example.com"),
    Req.query("next", "https://example.com/docs/etc/hosts.html"),
    Req.query("file", "report.pdf"),
    Req.query("promo", "50%off"),
    Req.query("q", "save 20%-30% on %s items"),
    Req.query("q", "discount 5%a%b"),
    Req.form("msg", "Ratios: 3%, 12%, 100%; done... ok"),
    Req.form("msg", "café » crème / thé — 100% bio"),
    Req.json_body({"name": "José Müller", "city": "Zürich", "note": "日本語/中文 ok", "emoji": "🙂/🙃"}),
    Req.json_body({"token": base64.b64encode(b"user:anna;role=admin;exp=1700000000").decode()}),
    Req.json_body({"avatar": base64.b64encode(bytes(range(48))).decode()}),
    Req.json_body({"path": "docs/etc/hosts.md", "glob": "**/etc/*.conf"}),
    Req.query("jwt", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dBjftJeZ4CVPmB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
]


@pytest.mark.parametrize("req", BENIGN)
def test_benign_look_alikes_pass(req: Req) -> None:
    assert "traversal" not in types(engine_signals(req))

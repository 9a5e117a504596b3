"""Normalisation transforms: each case is (input, expected output, changed)."""

from __future__ import annotations

import pytest

from devsecmw.engine import transforms as tf

CASES = [
    # percent-decoding, repeated and bounded
    ("url_decode", "a%20b", "a b", True),
    ("url_decode", "%252e%252e%252f", "../", True),
    ("url_decode", "%25252525", "%25", True),  # three rounds at most
    ("url_decode", "100%", "100%", False),
    ("url_decode", "%zz", "%zz", False),
    ("url_decode", "%C3%A9", "é", True),
    ("url_decode", "%FF%FE", "\xff\xfe", True),  # invalid UTF-8 stays visible as latin-1
    ("url_decode_uni", "%u003cscript%u003e", "<script>", True),
    ("url_decode_uni", "%U0027", "'", True),
    ("url_decode_deep", "%c0%ae%c0%ae/", "../", True),  # overlong UTF-8
    ("plus_to_space", "a+b+c", "a b c", True),
    ("plus_to_space", "a b", "a b", False),
    # HTML entities, named, numeric, without semicolons, double-encoded
    ("html_entity_decode", "&lt;svg&gt;", "<svg>", True),
    ("html_entity_decode", "&#x3c;&#60;&#0000060", "<<<", True),
    ("html_entity_decode", "&amp;lt;", "<", True),
    ("html_entity_decode", "fish & chips", "fish & chips", False),
    ("js_decode", "\\x3cscript\\u003e", "<script>", True),
    ("js_decode", "\\u{1F600}", "\U0001f600", True),
    ("js_decode", "\\u{110000}", "\\u{110000}", False),  # out of range: left alone
    # Unicode NFKC: full-width forms, ligatures
    ("nfkc", "\uff1cscript\uff1e", "<script>", True),
    ("nfkc", "\ufb01le", "file", True),
    ("nfkc", "plain", "plain", False),
    ("lowercase", "SeLeCT", "select", True),
    ("remove_nulls", "sel\x00ect", "select", True),
    # whitespace and comments (SQL, shell)
    ("compress_whitespace", "union \t\n select", "union select", True),
    ("remove_whitespace", "s e\tl", "sel", True),
    ("remove_comments", "UNION/**/SELECT", "UNION SELECT", True),
    ("remove_comments", "a/*b*/c/*unterminated", "a c ", True),
    ("cmd_line", "c'a't /e\"t\"c/pa\\sswd", "cat/etc/passwd", True),
    ("cmd_line", "cat${IFS}/etc/passwd", "cat/etc/passwd", True),
    ("cmd_line", "X  Y", "x y", True),
    ("cmd_line", "a \n  b", "a\nb", True),  # a line break separates commands: kept
    # paths
    ("normalize_path", "..\\..\\windows", "../../windows", True),
    ("normalize_path", "/a//b/./c", "/a/b/c", True),
    ("normalize_path", "/a;jsessionid=1/b", "/a/b", True),
    ("normalize_path", "/a/../b", "/a/../b", False),  # ".." kept: what traversal rules look for
    ("fold_path_chars", "\uff0e\uff0e\uff0f", "../", True),
    # base64 only when clearly base64 and text
    ("base64_decode", "PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==", "<script>alert(1)</script>", True),
    ("base64_decode", "dXNlcm5hbWU6YWRtaW4", "username:admin", True),  # padding optional
    ("base64_decode", "shortb64", "shortb64", False),
    ("base64_decode", "8f14e45fceea167a5a36dedd4bea2543", "8f14e45fceea167a5a36dedd4bea2543", False),
    ("trim", "  x \n", "x", True),
]


@pytest.mark.parametrize(("name", "value", "expected", "changed"), CASES, ids=lambda v: repr(v)[:30])
def test_transform(name: str, value: str, expected: str, changed: bool) -> None:
    assert tf.TRANSFORMS[name](value) == (expected, changed)


def test_every_transform_has_a_case() -> None:
    missing = set(tf.TRANSFORMS) - {c[0] for c in CASES}
    assert not missing, f"transforms without a test case: {sorted(missing)}"


def test_unknown_transform_lists_the_choices() -> None:
    with pytest.raises(ValueError, match=r"invalid transform name 'urldecode' \(must be one of .*url_decode"):
        tf.get("urldecode")


def test_chain_applies_in_order() -> None:
    assert tf.apply_chain("%2553ELECT", ("url_decode", "lowercase")) == "select"


# ---------------------------------------------------------------- HTML references
import html  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_REF_PIECES = st.sampled_from(
    ["&", "#", ";", "x", "X", "amp", "lt", "gt", "notin", "not", "frac34", "frac1", "sup1", "sup", "AElig",
     "para", "part", "quot", "1", "65", "0", "d800", "110000", "ffff", "=", " ", "\n", "é", "f", "Z",
     "&#", "&#x"]
)  # fmt: skip


@settings(max_examples=800, deadline=None)
@given(st.lists(_REF_PIECES | st.text(max_size=3), max_size=16).map("".join))
def test_unescape_html_is_the_stdlibs(text: str) -> None:
    # Same answers as html.unescape on entity-shaped text: names with and without ';', legacy
    # prefixes (&notit; -> ¬it;), numeric references, invalid code points, 33-character names.
    assert tf.unescape_html(text) == html.unescape(text)


@pytest.mark.parametrize(
    "text",
    ["&amp;lt;", "&notit;", "&notin;", "&ampfoo", "&frac345", "&#60", "&#x3C;", "&#0;", "&#xd800;",
     "&#1114112;", "&" + "a" * 40 + ";", "&lt" * 3, "a&b=c&lt=1&amp=2", "&AMP", "&Amp;"],
)  # fmt: skip
def test_unescape_html_edge_cases(text: str) -> None:
    assert tf.unescape_html(text) == html.unescape(text)


def test_unescape_html_leaves_form_separators_alone() -> None:
    # A form body's '&name=value' pairs are no references: the text comes back unchanged
    # (and, the point of the function, without a Python call per '&').
    body = "&".join(f"field{i}=value {i}" for i in range(2000))
    assert tf.unescape_html(body) == body
    assert tf.html_entity_decode(body) == (body, False)

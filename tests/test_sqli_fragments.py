"""SQL fragments that CRS's chained-injection tests send, and the bodies that carry them.

Two techniques: a body sent without a Content-Type whose whole form is percent-encoded
("=" included), and values that are the middle or the tail of an injected query (a
boolean clause cut at its right operand, a select-list tail ``) AS x FROM``). Each has
benign look-alikes that must pass.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
from detect_harness import Req, engine_signals, fired
from hypothesis import given, settings
from hypothesis import strategies as st

from devsecmw.body import MAX_FIELDS, parse_body
from devsecmw.engine import sqli


# --------------------------------------------------------------------------- encoded forms
def pairs(body: bytes) -> list[tuple[str, str]]:
    return [(f.location, f.value) for f in parse_body(body, None).fields]


def test_a_form_encoded_whole_is_read_as_a_form() -> None:
    assert pairs(b"pay%3DAND+2771%3D1709%29") == [("body:form:pay", "AND 2771=1709)")]
    assert pairs(b"var%3d%20@.%3d%20%28%20SELECT") == [("body:form:var", " @.= ( SELECT")]
    assert pairs(b"a%3D1%26b%3D2") == [("body:form:a", "1"), ("body:form:b", "2")]


def test_the_encoded_form_is_decoded_once_only() -> None:
    # "%2527" is "%27" after one decoding: a second one is the double-encoding rules' job.
    assert pairs(b"a%3D%2527") == [("body:form:a", "%27")]


@pytest.mark.parametrize(
    "body",
    [
        b"hello%20world",  # escapes, but no form inside
        b"100%25 cotton",
        b"see%3Dbelow%0Athanks%3Dyou",  # a decoded text of several lines is no form
        b"a=1&b=%3D",  # a form of its own: read as usual (the "=" is a value)
    ],
)
def test_encoded_text_that_is_no_form_stays_text(body: bytes) -> None:
    pb = parse_body(body, None)
    assert all(f.location.startswith("body:form:") for f in pb.fields)
    if b"=" not in body:
        assert pb.fields == []


def test_only_untyped_or_unknown_bodies_are_sniffed() -> None:
    # text/plain is sniffed as a missing type is (as for a plain "a=b" form).
    assert pairs(b"pay%3D1") == [("body:form:pay", "1")]
    assert parse_body(b"pay%3D1", "application/json").fields == []
    assert parse_body(b"pay%3D1", "application/octet-stream").fields == []


def test_encoded_form_fields_are_capped() -> None:
    body = "&".join(f"k{i}=v" for i in range(MAX_FIELDS + 50))
    pb = parse_body(quote(body, safe="").encode(), None)
    assert len(pb.fields) == MAX_FIELDS


NAMES = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="=& \n\r\x00"),
    min_size=1,
    max_size=20,
)
VALUES = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="&\n\r"), max_size=40
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(NAMES, VALUES), min_size=1, max_size=5))
def test_encoded_form_gives_the_fields_of_the_plain_form(fields: list[tuple[str, str]]) -> None:
    plain = "&".join(f"{n}={v}" for n, v in fields)
    encoded = quote(plain, safe="").encode()
    assert b"=" not in encoded
    assert pairs(encoded) == [(f"body:form:{n}", v) for n, v in fields]


# --------------------------------------------------------------------------- fragments
PROSE = [
    "select your size and order by Friday",
    "AND then 3 = three",
    "1 as a gift from Tom",
    'Robert, known as "Bob" from accounting',
    "(2020) as seen from space",
    "1) as seen from space",
    "use `make` as root from the shell",
    "and x = y",
    "(a and b = c)",
    "or maybe later",
    "and = or",
    "Ann, 5 as best from 2020",
]


@pytest.mark.parametrize(
    "value",
    [
        # A condition added after the application's, cut where its right operand begins.
        "AND 7639=(",
        "and 1=(",
        "AND uid!=(",
        "or 120=121=",
        "|| langCode ==",
        "OR name = '",
        'and code != "',
        'AND (name = "',
        # ... or closing the application's parenthesis.
        "AND deleted = 0)",
    ],
)
def test_boolean_clause_cut_or_closing(value: str) -> None:
    assert sqli.detect(value.lower()) is not None
    assert "logic_start" in sqli.explain(value.lower())[0]["features"]


@pytest.mark.parametrize(
    "value",
    [
        ") AS orders FROM",
        ")      AS schlagwoerter      FROM",
        ") AS `carrier_id` from",
        ") AS 'Durchschnitt_Importzeit' FROM",
        '1234 AS "foobar" FROM tablevar2=whatever',
        "` AS `edit_user_id` from",  # the break-out of a `name`
    ],
)
def test_select_list_tail(value: str) -> None:
    assert sqli.detect(value.lower()) is not None


@pytest.mark.parametrize("value", PROSE)
def test_prose_with_the_same_words_passes(value: str) -> None:
    assert sqli.detect(value.lower()) is None


def test_backtick_break_out_decides_only_on_strong_evidence() -> None:
    # Markdown code spans: a break-out of ` followed by prose-like SQL is no injection.
    for value in ("see `a` or `b`", "the `id` = 5", "x` and y = z"):
        assert sqli.detect(value) is None


def test_prefilter_covers_the_new_techniques() -> None:
    from devsecmw.engine.matcher import compile_pattern

    pattern = compile_pattern(sqli.PREFILTER)
    for value in (") as orders from", "and 7639=(", "` as `x` from", "|| c =="):
        assert pattern.search(value) is not None


# --------------------------------------------------------------------------- whole requests
def test_encoded_form_body_without_content_type_reaches_the_rule() -> None:
    req = Req("/post", "POST", body=b"pay%3DAND+7639%3D%28")
    assert ("sqli", "body:form:pay", "942100") in fired(engine_signals(req), "sqli")


@pytest.mark.parametrize(
    "body",
    [
        b"note%3Dselect+your+size+and+order+by+Friday",
        b"msg%3D1+as+a+gift+from+Tom",
        b"text%3DAND+then+3+%3D+three",
        b"q%3D100%25+cotton%26size%3DM",
    ],
)
def test_encoded_benign_form_body_has_no_sqli_signal(body: bytes) -> None:
    assert fired(engine_signals(Req("/post", "POST", body=body)), "sqli") == set()

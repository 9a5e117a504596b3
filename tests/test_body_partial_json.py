"""A JSON body cut short (at the body cap, or not all read yet) is still read field by field.

``body.partial_json`` gives the document of any prefix of a JSON text: on a complete text
exactly what ``json.loads`` gives; on a cut one every complete value plus the start of the
value the cut fell in. It never raises, whatever the bytes, and its work is linear.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from conftest import Telemetry
from hypothesis import given, settings
from hypothesis import strategies as st
from test_caps import ENGINE, STEADY, asgi_app, asgi_call, incomplete, wsgi_app, wsgi_call

import devsecmw.asgi
import devsecmw.body as body_mod
import devsecmw.wsgi
from devsecmw.body import MAX_JSON_DEPTH, _json_walk, parse_body, partial_json

NOT_JSON = body_mod._BAD

# JSON documents: every kind of value, keys and strings with escapes, quotes and non-ASCII.
_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _text
documents = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(_text, inner, max_size=5),
    max_leaves=25,
)


@pytest.fixture(autouse=True)
def _fresh_engine() -> Iterator[None]:
    yield
    for cache in (ENGINE.clean_values, ENGINE.clean_parts, ENGINE.clean_bodies):
        cache.clear()


def leaves(doc: object) -> dict[str, str]:
    fields, _keys, _capped = _json_walk(doc, 10**6)
    return {f.location: f.value for f in fields}


@given(documents, st.booleans())
@settings(max_examples=300, deadline=None)
def test_a_complete_text_gives_what_json_loads_gives(doc: Any, indent: bool) -> None:
    text = json.dumps(doc, indent=2 if indent else None, ensure_ascii=False)
    assert partial_json(text) == json.loads(text)


@given(documents, st.data())
@settings(max_examples=300, deadline=None)
def test_any_cut_gives_the_leaves_so_far(doc: Any, data: st.DataObject) -> None:
    indent, ascii_only = data.draw(st.sampled_from([None, 1])), data.draw(st.booleans())
    text = json.dumps(doc, indent=indent, ensure_ascii=ascii_only)
    cut = data.draw(st.integers(1, len(text)))
    calls: list[int] = []
    real = json.loads

    def loads(s: str) -> Any:
        calls.append(len(s))
        return real(s)

    with mock.patch.object(body_mod.json, "loads", loads):
        part = partial_json(text[:cut])
    assert part is not NOT_JSON  # every prefix of a JSON text is read
    # Linear work: besides C builtins' passes over the text, json.loads at most twice, on
    # the text and on the text completed (one character per open bracket, plus ':null"').
    assert len(calls) <= 2 and all(n <= 2 * cut + 6 for n in calls)
    whole = leaves(json.loads(text))
    for location, value in leaves(part).items():
        # Each string leaf read is there in the whole document, whole or cut at its end.
        assert location in whole
        assert whole[location].startswith(value)


@given(st.binary(max_size=300))
@settings(max_examples=500, deadline=None)
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    text = raw.decode("latin-1")
    for prefix in (text, "[" + text, '{"a": ' + text, '{"a": "' + text):
        partial_json(prefix)  # a document or NOT_JSON, never an exception
    parse_body(raw, "application/json", truncated=True)


@given(st.text(alphabet='{}[]":,\\ 0123456789.eE+-tfnrulase\n', max_size=200))
@settings(max_examples=500, deadline=None)
def test_json_shaped_noise_never_raises(text: str) -> None:
    result = partial_json(text)
    if result is not NOT_JSON:
        leaves(result)


def test_malformed_before_the_cut_is_not_json() -> None:
    malformed = ['{"a" 1', "[1 2", '{"a": 1}x', "x", "[tx", '{"a": "\n"', "[1e5.3x", '{"a": 1,}', "]"]
    for text in [*malformed, "", " "]:
        assert partial_json(text) is NOT_JSON, text


def test_what_a_cut_leaves() -> None:
    assert partial_json('{"a": [1, 2, {"b": "x\\"y') == {"a": [1, 2, {"b": 'x"y'}]}
    assert partial_json('{"user": {"name": "al') == {"user": {"name": "al"}}
    assert partial_json('{"a": "h\\u00') == {"a": "h"}  # an escape cut in its middle is left out
    assert partial_json('{"a": 1, "ke') == {"a": 1, "ke": None}  # a cut key: its name so far
    assert partial_json('{"a": tr') == {"a": None}
    assert partial_json("[1, 2.") == [1]  # a number cut short is left out
    assert partial_json('{"a": "x", ') == {"a": "x"}
    assert partial_json('{"a"') == {"a": None}
    assert partial_json('["\\ud83d\\ude00", "\\ud83d') == ["\U0001f600", ""]
    assert partial_json('[[], {"k": ') == [[], {"k": None}]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": ' * 20000 + '"' + "x" * 20000, NOT_JSON),  # deeper than json.loads goes: raw text
        ('{"a": ' * 50 + '"x', "x"),
        ("[" * 30000, NOT_JSON),
        ("[" + "1," * 10000, [1] * 10000),
        ('["' + '\\\\\\"' * 5000 + "\\", ['\\"' * 5000]),  # escapes only, one cut in its middle
        ("[" + '{"k": "v"}, ' * 3000 + '{"k": [', [{"k": "v"}] * 3000 + [{"k": []}]),
    ],
    ids=["deep-objects", "deep-string", "brackets-only", "numbers", "escapes", "wide-then-cut"],
)
def test_hostile_shapes(monkeypatch: pytest.MonkeyPatch, text: str, expected: object) -> None:
    """Linear work: every step is one pass of a C builtin over the text but one loop over its
    unclosed brackets, and json.loads runs at most twice (the text, then the completed text,
    which adds one character per open bracket at most, plus ``":null``)."""
    calls: list[int] = []
    real = json.loads

    def loads(s: str) -> Any:
        calls.append(len(s))
        return real(s)

    monkeypatch.setattr(body_mod.json, "loads", loads)
    doc = partial_json(text)
    while isinstance(doc, dict) and isinstance(expected, str):  # the innermost value
        doc = doc["a"]
    assert doc == expected
    assert len(calls) <= 2 and all(n <= 2 * len(text) + 6 for n in calls)


def test_fields_are_addressed_down_to_the_depth_limit() -> None:
    for depth, addressed in ((MAX_JSON_DEPTH, True), (MAX_JSON_DEPTH + 1, False)):
        text = '{"a": ' * depth + '"deep'
        pb = parse_body(text.encode(), "application/json", truncated=True)
        assert pb.kind == "json"
        assert [f.value for f in pb.fields] == (["deep"] if addressed else [])


def test_parse_body_reads_a_cut_json_body_field_by_field() -> None:
    text = json.dumps({"user": {"name": "al", "bio": "x" * 100}, "pad": "p" * 1000})
    pb = parse_body(text[:60].encode(), "application/json", truncated=True)
    assert pb.kind == "json"
    assert {f.location: f.value for f in pb.fields} == {
        "body:json:user.name": "al",
        "body:json:user.bio": "x" * (60 - len('{"user": {"name": "al", "bio": "')),
    }
    # Not cut: a body that does not parse is still raw text (its lenient reading is elsewhere).
    assert parse_body(text[:60].encode(), "application/json").kind == "text"
    # Sniffed JSON (no Content-Type) too.
    assert parse_body(text[:60].encode(), None, truncated=True).kind == "json"


SQLI = "1' UNION SELECT password FROM users--"


@pytest.mark.parametrize("adapter", ["asgi", "wsgi"])
@pytest.mark.parametrize("pad", [0, 100_000], ids=["under-the-cap", "past-the-cap"])
def test_padded_json_attack_is_found_in_its_field(otel: Telemetry, pad: int, adapter: str) -> None:
    """Benign fields, then the attack, then padding past the 64 KiB cap: the attack is found
    in its own field (its path in the document), not only in the raw text."""
    doc = {
        "items": [{"sku": f"A-{i}", "qty": i, "note": "gift wrap please"} for i in range(200)],
        "attachment": "QUJD" * 12_000,  # a large benign value before the attack
        "customer": {"name": "Ann", "comment": SQLI},
        "padding": "z" * pad,
    }
    body = json.dumps(doc).encode()
    assert (len(body) > 64 * 1024) == (pad > 0)
    assert body.index(SQLI.encode()) < 64 * 1024
    read: list[bytes] = []
    if adapter == "asgi":
        app = devsecmw.asgi.SecurityMiddleware(asgi_app(read), **STEADY, **otel.providers)
        asgi_call(app, "POST", b"/api/orders", headers=[(b"content-type", b"application/json")], body=body)
    else:
        wapp = devsecmw.wsgi.SecurityMiddleware(wsgi_app(read), **STEADY, **otel.providers)
        wsgi_call(wapp, "POST", "/api/orders", body=body, headers={"CONTENT_TYPE": "application/json"})
    assert b"".join(read) == body  # the app read exactly the bytes sent
    found = {
        (e["devsecmw.signal.type"], e["devsecmw.signal.location"])
        for e in otel.events()
        if e["devsecmw.signal.type"] != "inspection_incomplete"
    }
    assert ("sqli", "body:json:customer.comment") in found
    assert ("body" in incomplete(otel)) == (pad > 0)


# --------------------------------------------------------------------------- a character cut in two
def _cut_in_a_character(body: bytes, near: int) -> int:
    """A length at or below ``near`` that ends ``body`` inside a multi-byte UTF-8 character."""
    return next(n for n in range(near, 0, -1) if body[n] & 0xC0 == 0x80)


BIO = "café crème " * 8000


@pytest.mark.parametrize(
    ("ctype", "body", "location"),
    [
        (
            b"multipart/form-data; boundary=xx",
            b'--xx\r\nContent-Disposition: form-data; name="bio"\r\n\r\n' + BIO.encode() + b"\r\n--xx--\r\n",
            "body:multipart:bio",
        ),
        (b"application/x-www-form-urlencoded", f"a=1&bio={BIO.replace(' ', '+')}".encode(), "body:form:bio"),
        (b"application/json", json.dumps({"bio": BIO}, ensure_ascii=False).encode(), "body:json:bio"),
    ],
    ids=["multipart", "form", "json"],
)
def test_a_body_cut_inside_a_character_is_still_utf8(
    otel: Telemetry, ctype: bytes, body: bytes, location: str
) -> None:
    """The cap cuts a benign UTF-8 body in the middle of a character: the half character is
    left out, the body stays UTF-8 (no ``not_utf8`` signal, no latin-1 garbling of its text)."""
    limit = _cut_in_a_character(body, 4096)
    read: list[bytes] = []
    app = devsecmw.asgi.SecurityMiddleware(asgi_app(read), **STEADY, body_limit=limit, **otel.providers)
    asgi_call(app, "POST", b"/profile", headers=[(b"content-type", ctype)], body=body)
    assert b"".join(read) == body
    assert {str(e["devsecmw.signal.type"]) for e in otel.events()} == {"inspection_incomplete"}
    pb = parse_body(body[:limit], ctype.decode(), truncated=True)
    assert pb.utf8 and all(f.utf8 for f in pb.fields)
    value = next(f.value for f in pb.fields if f.location == location)
    assert len(value) > 3000 and BIO.startswith(value)  # read up to the cut, not garbled
    # The same bytes, not cut short, are invalid UTF-8 as before.
    assert not parse_body(body[:limit], ctype.decode()).utf8


def test_a_form_value_cut_inside_an_escape() -> None:
    pb = parse_body(b"a=1&bio=caf%C3%A", "application/x-www-form-urlencoded", truncated=True)
    assert [(f.location, f.value, f.utf8) for f in pb.fields] == [
        ("body:form:a", "1", True),
        ("body:form:bio", "caf", True),
    ]
    # Not cut: the stray escape stays as it is, and the value is not UTF-8.
    pb = parse_body(b"a=1&bio=caf%C3%A", "application/x-www-form-urlencoded")
    assert pb.fields[1].utf8 is False

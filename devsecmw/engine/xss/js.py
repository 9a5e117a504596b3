"""The JavaScript side: a small reader that tells a call (``alert(1)``) from prose that merely
mentions a word (``alert (from the bank)``), and helpers about quotes, brackets and globals."""

from __future__ import annotations

import re

from .words import JS_BINARY_KW, JS_PREFIX_KW, JS_TOKENS, JS_WINDOW, SINK_PROPS, SINKS

_JS_TOKEN = re.compile(
    r"(?P<ws>\s+)"
    r"|(?P<comment>//[^\n]*|<!--[^\n]*|/\*.*?(?:\*/|\Z))"
    r"|(?P<ident>[^\W\d][\w$]*|\$[\w$]*)"
    r"|(?P<num>\d[\w.]*|\.\d\w*)"
    r"|(?P<str>\"(?:[^\"\\\n]|\\.)*\"|'(?:[^'\\\n]|\\.)*')"
    r"|(?P<tpl>`(?:[^`\\]|\\.)*`)"
    r"|(?P<punct>\.\.\.|=>|[=!]==?|<<=?|>>>?=?|[<>]=?|&&=?|\|\|=?|\?\?=?|\?\.(?!\d)|\+\+|--|\*\*=?"
    r"|[-+*/%&|^]=?|[=~!?:.,;()\[\]{}])",
    re.S,
)
_JS_REGEX = re.compile(r"/(?![*/])(?:[^/\\\n\[]|\\.|\[(?:[^\]\\\n]|\\.)*\])+/[a-z]*")

# Parser states: what the previous token leaves the expression expecting.
START, OPERAND, OPERATOR, OPEN, DOT = range(5)


#: What :func:`js_call` read: ``(end, callee)``, ``end`` just after the first call (or sink
#: write) or -1 for none, ``callee`` the called name (``""`` for ``(f)(x)`` or none). A plain
#: pair: the reader answers for every candidate, and callers unpack it by name.
Call = tuple[int, str]

_NO_CALL: Call = (-1, "")


# The state after an operator, by the state before it (-1: not code). Member access needs an
# operand before it, ``++``/``--`` change nothing, unary operators need nothing, ``:`` ends a
# ``?`` or a label; other operators (``=`` too) and binary keywords (``in``...) need an operand.
_BINARY = (-1, OPERATOR, -1, -1, -1)
_AFTER_OPERATOR: dict[str, tuple[int, ...]] = {
    **dict.fromkeys((".", "?."), (-1, DOT, -1, -1, -1)),
    **dict.fromkeys(("++", "--"), (START, OPERAND, OPERATOR, OPEN, DOT)),
    **dict.fromkeys(("!", "~", "+", "-", "...", "=>", ":"), (OPERATOR,) * 5),
}


def js_call(text: str, i: int, limit: int, prev: int = START, tight: bool = False) -> Call:
    """Does the JS at ``text[i:limit]`` call something (or write a sink) before it stops parsing?

    A call is a name, ``)`` or ``]`` followed by ``(`` or a template literal. Prose fails
    fast: two operands in a row (``alert(from the bank)``), an operator before a closer, a
    member access on nothing; a character JS has no use for ends the reading. ``tight``: the
    ``(`` of a call follows its callee directly. ``prev``: the state before ``text[i]``.
    """
    limit = min(limit, len(text), i + JS_WINDOW)
    stack: list[str] = []
    call_depth = -1  # stack depth at which the first call's arguments start
    callee = operand_name = last_name = ""  # operand_name: the previous operand when a name
    callable_prev = False  # the previous operand can be called: a name, ``)`` or ``]``
    assigned = ws_before = False  # assigned: a sink property was (``document.cookie=...``)
    tokens = 0
    while i < limit and tokens < JS_TOKENS:
        if text[i] == "/" and prev not in (OPERAND, DOT) and text[i + 1 : i + 2] not in ("/", "*"):
            r = _JS_REGEX.match(text, i, limit)  # a regex literal where an operand is expected
            if r is None:
                return _NO_CALL
            i, tokens, ws_before = r.end(), tokens + 1, False
            prev, callable_prev, operand_name = OPERAND, False, ""
            continue
        m = _JS_TOKEN.match(text, i, limit)
        if m is None:
            break
        kind, tok, i = m.lastgroup, m.group(), m.end()
        if kind == "ws" or kind == "comment":
            ws_before = True
            continue
        tokens, spaced, ws_before = tokens + 1, ws_before, False
        if prev == DOT:
            if kind != "ident":
                return _NO_CALL
            prev, callable_prev, last_name, operand_name = OPERAND, True, tok, tok
        elif kind == "ident" and tok in JS_PREFIX_KW:
            prev = OPEN
        elif kind in ("num", "str", "tpl") or (kind == "ident" and tok not in JS_BINARY_KW):
            if prev == OPERAND:
                if kind == "tpl" and callable_prev:  # tagged template: alert`1`
                    if call_depth < 0:
                        return i, operand_name
                    continue
                return _NO_CALL  # two operands in a row: prose, not code
            prev, callable_prev = OPERAND, kind == "ident"
            operand_name, last_name = (tok, tok) if kind == "ident" else ("", last_name)
        elif tok in ("(", "[", "{"):
            if tok == "(" and prev == OPERAND:
                if not callable_prev or (tight and spaced):
                    return _NO_CALL
                if call_depth < 0:
                    call_depth, callee = len(stack), operand_name
            stack.append(tok)
            prev = OPEN
        elif tok in (")", "]", "}"):
            if prev == OPERATOR:
                return _NO_CALL
            if not stack:
                break
            stack.pop()
            prev, callable_prev, operand_name = OPERAND, tok != "}", ""
            if call_depth >= 0 and len(stack) == call_depth:
                return i, callee
        elif tok in (",", ";"):
            if prev == OPERATOR:
                return _NO_CALL
            if assigned and tok == ";":
                return i, last_name
            prev = START if tok == ";" else OPERATOR
        else:  # operators (``=`` to a sink property is a write)
            prev = _AFTER_OPERATOR.get(tok, _BINARY)[prev]
            if prev < 0:
                return _NO_CALL
            assigned = assigned or (tok == "=" and last_name in SINK_PROPS)
    # Out of input or window: a call whose arguments were cut short still counts.
    if call_depth >= 0 or (assigned and prev == OPERAND):
        return i, callee or last_name
    return _NO_CALL


def js_active(
    text: str, i: int = 0, limit: int | None = None, prev: int = START, tight: bool = False
) -> bool:
    """Whether :func:`js_call` finds a call (or a sink write) in ``text[i:limit]``."""
    end, _ = js_call(text, i, len(text) if limit is None else limit, prev, tight)
    return end >= 0


_RX_LEADING_NAME = re.compile(r"\s*([a-z]+)")


def runs_code(value: str) -> bool:
    """A handler or ``expression()`` body that calls something, or just names a sink (``onerror=alert``)."""
    if js_active(value):
        return True
    m = _RX_LEADING_NAME.match(value)
    return m is not None and m.group(1) in SINKS


class QuoteParity:
    """Does the quote at ``p`` close a string the value did not open (an even number of the
    same quote before it)? Positions must be asked in increasing order: linear overall."""

    __slots__ = ("_counts", "_text")

    def __init__(self, text: str) -> None:
        self._text = text
        self._counts: dict[str, tuple[int, int]] = {}  # quote -> (position counted up to, count)

    def __call__(self, p: int) -> bool:
        q = self._text[p]
        upto, count = self._counts.get(q, (0, 0))
        count += self._text.count(q, upto, p)
        self._counts[q] = (p, count)
        return count % 2 == 0


def skip_spaces(text: str, i: int, most: int = 16) -> int:
    end = min(len(text), i + most)
    while i < end and text[i] in " \t\n\r\f":
        i += 1
    return i


def used_as_code(dec: str, p: int, end: int) -> bool:
    """``+document.cookie``, ``(document.cookie)``, ``document.cookie=``: code, not a sentence."""
    j = p - 1
    while j >= 0 and j > p - 16 and dec[j] in " \t":
        j -= 1
    k = skip_spaces(dec, end)
    return (j >= 0 and dec[j] in "(+=,;[\"'") or (k < len(dec) and dec[k] in "=+);,]")


RX_OBFUSCATED_KEY = re.compile(
    r"['\"`]\s*\+|\+\s*['\"`]|/\*|\\|\.source\b|tostring|fromcharcode|atob"
    r"|['\"`](?:alert|prompt|confirm|eval|cookie|domain|location|innerhtml|outerhtml|write|settimeout)['\"`]"
)
_RX_BRACKETED = re.compile(
    r"\[(?:[^\[\]'\"`]|'[^'\n]{0,64}'|\"[^\"\n]{0,64}\"|`[^`]{0,64}`|\[[^\[\]]{0,64}\]){0,64}\]"
)


def closing_bracket(text: str, i: int) -> int:
    """Index of the ``]`` closing the ``[`` at ``i`` (strings and one nested level allowed), or -1."""
    m = _RX_BRACKETED.match(text, i)
    return m.end() - 1 if m is not None else -1

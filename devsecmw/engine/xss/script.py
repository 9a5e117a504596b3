"""The script checks: script URLs, string break-outs, sink calls, globals, templates.

They read the entity-decoded view (``dec``) and hand candidates to the JS reader.
"""

from __future__ import annotations

from .base import ScanBase
from .finders import (
    F_CTOR,
    F_DATA_DOC,
    F_GLOBAL,
    F_JS_ENTITY,
    F_JSFUCK,
    F_QUOTE_ASSIGN,
    F_QUOTE_BREAK,
    F_SCHEME,
    F_SINK,
    F_TEMPLATE,
    F_TEMPLATE_LITERAL,
    RX_GLOBAL_DOT,
    RX_JS_TAIL,
    RX_TIMER_EVAL,
)
from .html import RX_ACTIVE_MARKUP, in_escaped_tag
from .js import (
    OPERAND,
    RX_OBFUSCATED_KEY,
    QuoteParity,
    closing_bracket,
    js_active,
    js_call,
    skip_spaces,
    used_as_code,
)
from .words import GLOBALS, JS_WINDOW, SINKS, Span


class ScriptChecks(ScanBase):
    """Checks of script a value would inject (methods named in ``finders._CHECKS``)."""

    __slots__ = ()

    # -- script and data URLs inside the value
    def schemes(self, low: str) -> Span | None:
        dec = self.dec
        for m in self.candidates(F_DATA_DOC, dec, "_-"):
            if "base64" in m.group(1) or RX_ACTIVE_MARKUP.search(dec, m.end(), m.end() + 256):
                return self.dspan(m.start(), m.end())
        for m in self.candidates(F_SCHEME, dec, "_-"):
            self.steps += JS_WINDOW
            if js_active(dec, m.end(), m.end() + JS_WINDOW, tight=not self.strict):
                return self.dspan(m.start(), m.end() + 16)
        return None

    # -- breaking out of a JS string
    def quote_breaks(self, low: str) -> Span | None:
        dec = self.dec
        closes = QuoteParity(dec)
        for m in self.candidates(F_QUOTE_BREAK, dec):
            if not closes(m.start()):
                continue  # this quote ends a string the value itself opened: ``f("a", g(1))``
            self.steps += JS_WINDOW
            end, callee = js_call(dec, m.start(2), m.start(2) + JS_WINDOW, prev=OPERAND, tight=True)
            if end < 0:
                continue
            # ``'Hello' - World(2)`` is prose. A break-out calls a sink or a global, or the
            # string goes on like code: a comment, ``;``, an operator that re-opens the quote.
            if (
                self.strict
                or callee in SINKS
                or callee in GLOBALS
                or dec[end - 1 : end] == "`"
                or RX_JS_TAIL.match(dec, end)
            ):
                return self.dspan(m.start(), end)
        return None

    def quote_assigns(self, low: str) -> Span | None:
        closes = QuoteParity(self.dec)
        for m in self.candidates(F_QUOTE_ASSIGN, self.dec):
            if closes(m.start()):
                return self.dspan(m.start(), m.end())
        return None

    # -- calls of JS sinks in a code context
    def sinks(self, low: str) -> Span | None:
        dec = self.dec
        for m in self.candidates(F_SINK, dec, "_$"):
            p = m.start()
            self.steps += JS_WINDOW
            if dec[m.end() : m.end() + 1] == "`" and p and dec[p - 1] == "`":
                continue  # Markdown inline code (`` `alert` ``), not a tagged template
            if p and dec[p - 1] == ".":  # window.alert(1), top.eval(...): from the global on
                g = RX_GLOBAL_DOT.search(dec, max(0, p - 24), p)
                if g is None:
                    continue
                p = g.start()
            if not self._code_context(dec, p):
                continue
            if not self.strict and in_escaped_tag(self.low, self.dspan(p, p + 1)[0]):
                continue
            word, sink, ctor, doc, markup = m.groups()
            # ``document.cookie`` read by code, or as the whole value; not prose naming it.
            if (
                doc is not None
                and not doc.endswith("(")
                and not (self.strict or used_as_code(dec, p, m.end()) or dec.strip(" ;") == doc)
            ):
                continue
            if markup and not self.strict:
                continue  # ``el.innerHTML = html`` is everyday code; what it writes is checked anyway
            if ctor or doc or markup:
                return self.dspan(p, m.end())
            timer = sink in ("settimeout", "setinterval")
            if timer and not self.strict and not RX_TIMER_EVAL.match(dec, m.end()):
                continue  # ``setTimeout(cb, 10)`` is everyday code; a string argument is eval
            if js_active(dec, p, p + JS_WINDOW, tight=word is not None):
                return self.dspan(p, m.end() + 8)
        return None

    def _code_context(self, dec: str, p: int) -> bool:
        """Is ``dec[p]`` at the start of the value or right after JS punctuation?

        ``"><svg>alert(1)`` is a payload; ``<code>alert(1)</code>`` in a post is not,
        so ``>`` counts only as the first character of the value.
        """
        j = p - 1
        stop = max(-1, p - 32)
        while j > stop and dec[j] in " \t\n\r\f\v":
            j -= 1
        if j < 0 or self.strict:
            return True
        return dec[j] in ";,(=+-*/|&!?:{}[\"'" or (dec[j] == ">" and j == 0)

    # -- bracket access on globals, constructor tricks
    def globals_(self, low: str) -> Span | None:
        dec = self.dec
        for m in self.candidates(F_GLOBAL, dec, "_$."):
            self.steps += 160
            close = closing_bracket(dec, m.end() - 1)
            if close < 0:
                continue
            k = skip_spaces(dec, close + 1, 8)
            if k < len(dec) and dec[k] in "(`":
                return self.dspan(m.start(), k + 1)
            # ``document['coo'+'kie']``, ``self[/*x*/'location']``: a property name built or
            # hidden to get past a filter, or a quoted sink (``window['location']``).
            if RX_OBFUSCATED_KEY.search(dec, m.end(), close):
                return self.dspan(m.start(), close + 1)
        for m in self.candidates(F_CTOR, dec):
            return self.dspan(m.start(), m.end())
        return None

    # -- client-side template expressions
    def templates(self, low: str) -> Span | None:
        dec = self.dec
        for m in self.candidates(F_TEMPLATE, dec):
            return self.dspan(m.start(), m.end())
        for m in self.candidates(F_TEMPLATE_LITERAL, dec):
            # ``${alert(1)}`` inside a JS template literal: a call of a sink or a global's method.
            self.steps += JS_WINDOW
            end, callee = js_call(dec, m.start() + 2, m.start() + 2 + JS_WINDOW)
            if end >= 0 and (callee in SINKS or callee in GLOBALS or self.strict):
                return self.dspan(m.start(), end)
        return None

    # -- Netscape JS entities, JSFuck
    def misc(self, low: str) -> Span | None:
        dec = self.dec
        for m in self.candidates(F_JS_ENTITY, dec):
            i = m.start()
            self.steps += JS_WINDOW
            close = dec.find("}", i + 2, i + 2 + JS_WINDOW)
            body = dec[i + 2 : close].strip() if close >= 0 else ""
            # ``&{alert(1)}``, and the ``&{()}`` of the classic XSS locator string.
            if body and (body[0] in "(\"'" or js_active(body)):
                return self.dspan(i, close + 1)
        first = -1
        for n, m in enumerate(self.candidates(F_JSFUCK, low), 1):
            first = m.start() if first < 0 else first
            if n >= 3:
                return first, m.end()
        return None

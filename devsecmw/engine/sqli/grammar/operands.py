"""Operands: literals, variables, names, parenthesised groups, CASE, and the ``)`` that
closes a group, a call or a sub-query (or the application's own parenthesis)."""

from __future__ import annotations

from collections.abc import Callable

from ..tokens import NAME, NUM, OP, PUNCT, STR, VAR, WORD, Token
from ..vocabulary import (
    CALLABLE_RESERVED,
    INFO_WORDS,
    LITERAL_WORDS,
    RESERVED,
    TRUTHY,
    UNARY_OPS,
    UNARY_WORDS,
)
from .conditions import close_logic, mark, operand_done
from .functions import fn_call, word_info
from .selects import begin_select, end_select, select_real
from .state import CASE, FUNC, GROUP, MAX_DEPTH, NEED, OPD, OPR, SUBQ, TOP, Frame, ParseState


def operand(p: ParseState, tok: Token) -> bool:
    k, t = tok.kind, tok.text
    fr = p.frames[-1]
    if len(p.frames) > MAX_DEPTH:
        return False
    if k == NUM:
        if len(t) > 6 and t[1:2] in ("x", "X"):
            p.feat("hex", tok.start)  # 0x7162766a71: strings smuggled as numbers
        select_real(p)
        if fr.clause == "order":
            p.feat("order_n", tok.start)
        operand_done(p, "num", t, tok)
        return True
    if k == STR:
        return _string(p, tok, fr)
    if k == VAR:
        if t.startswith("@@"):
            p.feat("var", tok.start)
        select_real(p)
        operand_done(p, "var", t, tok)
        return True
    if k == NAME:
        name = t.strip("`[]").lower()
        word_info(p, name, tok)
        operand_done(p, "ident", name, tok)
        return True
    if k == WORD:
        return operand_word(p, tok)
    if k == PUNCT:
        if t == "(":
            p.frames.append(Frame(GROUP, "where" if fr.clause != "from" else "from", tok.start))
            p.st = OPD
            p.after_breakout = False
            return True
        if t == ")" and p.last is not None and p.last.text == "(" and fr.kind == FUNC:
            return close_paren(p, tok)  # version()
        if t == "{":  # {if expr}, {fn expr}: MySQL and ODBC escapes around an expression
            p.frames.append(Frame(GROUP, "where", tok.start, "{"))
            p.st, p.need = NEED, "escape"
            return True
        return False
    if k == OP:
        if t in UNARY_OPS:
            return True
        if t == "*" and (fr.clause == "select" or fr.kind == FUNC):
            select_real(p)
            operand_done(p, "star", t, tok)
            return True
    return False


def _string(p: ParseState, tok: Token, fr: Frame) -> bool:
    t = tok.text
    if not tok.closed and p.quote and t[0] != p.quote and t[:1] not in "xXbBnNeE_":
        return False  # would swallow the application's closing quote
    if not tok.closed and len(t) == 1 and fr.cmp_kind:
        p.feat("cmp_cut", tok.start)  # AND name = '  (the application's quote follows)
    select_real(p)
    body = t[t.index(t[-1] if tok.closed else t[0]) + 1 :] if t[0] in "'\"" else t
    if p.quote and any(c.isspace() for c in body):
        p.spaced_str = True
    operand_done(p, "strt" if TRUTHY.match(body) else "str", t, tok)
    return True


def operand_word(p: ParseState, tok: Token) -> bool:
    t = tok.text
    fr = p.frames[-1]
    if t in LITERAL_WORDS:
        select_real(p)
        operand_done(p, "lit", t, tok)
        return True
    if t in INFO_WORDS:
        p.feat("info", tok.start)
        select_real(p)
        operand_done(p, "ident", t, tok)
        p.last_fn = t
        return True
    last = p.last
    if t == "select":
        if last is not None and last.text == "(" and fr.kind == GROUP:
            fr.kind = SUBQ
            begin_select(p, "sub", tok)
            return True
        return False
    if t == "top" and fr.clause == "select" and last is not None and last.text in ("select", "distinct"):
        p.st, p.need = NEED, "top"  # MS-SQL SELECT TOP 1 ...: a count, then the select list
        return True
    if t in UNARY_WORDS:
        if t in ("distinct", "all", "any", "some") and not (fr.kind == FUNC or fr.clause == "select"):
            return t in ("all", "any", "some") and fr.cmp_kind != ""
        return True
    if t == "exists":
        p.st = NEED
        p.need = "("
        return True
    if t == "case":
        select_real(p)
        p.frames.append(Frame(CASE, "where", tok.start))
        p.st = OPD
        return True
    if t == "when" and fr.kind == CASE and last is not None and last.text == "case":
        return True  # CASE WHEN cond THEN ...
    if t in CALLABLE_RESERVED:
        # LIKE('a', b), IF(c, x, y), REPLACE(...): reserved words that are also functions.
        operand_done(p, "ident", t, tok)
        p.must_call = True
        return True
    if t in RESERVED:
        return False  # a reserved word where an operand belongs: prose, not SQL
    word_info(p, t, tok)
    operand_done(p, "ident", t, tok)
    p.last_fn = t
    return True


def case_word(p: ParseState, tok: Token) -> bool:
    """WHEN, THEN, ELSE, END inside CASE ... END."""
    t = tok.text
    if t in ("when", "then", "else"):
        p.st = OPD
        return True
    if t == "end":
        fr = p.frames.pop()
        p.feat("case", fr.start)
        operand_done(p, "case", t, tok)
        return True
    return False


def close_paren(p: ParseState, tok: Token) -> bool:
    fr = p.frames[-1]
    if fr.kind == CASE:
        return False
    if fr.kind == TOP:
        # Closes a parenthesis of the application's query: fine before anything else.
        p.feat("app_close", tok.start)
        p.app_close_end = tok.end
        close_logic(p, fr)
        p.st = OPR
        p.alias_ok = False
        p.operand_kind, p.operand_text = "paren", ")"
        return True
    close_logic(p, fr)
    end_select(p, fr)
    p.frames.pop()
    if fr.kind == FUNC:
        fn_call(p, fr.fn, fr.start, fr)
        operand_done(p, "fn", fr.fn, tok)
    elif fr.kind == SUBQ:
        mark(p, "sub")
        select_real(p)
        operand_done(p, "sub", ")", tok)
    else:
        p.closed_first = fr.first if fr.ops == 1 else ""
        operand_done(p, "paren", ")", tok)
    return True


# ------------------------------------------------------------------ words an operand needs next
def _need_paren(p: ParseState, tok: Token) -> bool:
    if tok.text == "(":  # EXISTS (
        p.st = OPD
        return operand(p, tok)
    return False


def _need_escape(p: ParseState, tok: Token) -> bool:
    if tok.kind == WORD:
        p.st = OPD  # {fn ...}: the escape's keyword, then an expression
        return True
    return False


NEEDS: dict[str, Callable[[ParseState, Token], bool]] = {"(": _need_paren, "escape": _need_escape}

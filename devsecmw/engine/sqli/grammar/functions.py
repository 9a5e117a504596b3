"""Names and calls: function calls (time delays, error-based extraction, file access),
system catalogues and procedures, dotted names, and casts (``x::int``, ``CAST(x AS t)``)."""

from __future__ import annotations

from ..tokens import NAME, NUM, OP, PUNCT, VAR, WORD, Token
from ..vocabulary import (
    FN_ALONE,
    FN_ATTACK,
    FN_SQL,
    SQL_TYPES,
    SYSOBJ,
    SYSOBJ_ALONE,
    SYSPROC,
    WORD_FNS,
)
from .conditions import mark, operand_done
from .selects import select_real
from .state import FUNC, GROUP, NEED, OPD, OPR, Frame, ParseState


def fn_call(p: ParseState, name: str, pos: int, args: Frame) -> None:
    """A call of ``name`` ended (its arguments are ``args``)."""
    p.feat("fn_any", pos)
    if name in WORD_FNS and args.ops == 1 and args.first == "ident":
        # "user (admin)", "sleep (well)": a word and a parenthesis, not a call anyone sends.
        mark(p, "fn")
        return
    if name in FN_SQL:
        p.feat("fn_sql", pos)
    if name in FN_ALONE:
        p.feat("fn_alone", pos)
    if name in FN_ATTACK:
        p.feat("fn_strong", pos)
    mark(p, "fn")
    select_real(p)


def word_info(p: ParseState, word: str, tok: Token) -> None:
    """A name: an SQL function named without a call, a system catalogue or procedure."""
    if "_" in word and word in FN_SQL:
        p.feat("fn_named", tok.start)  # SELECT pg_sleep
        select_real(p)
    if word in SYSOBJ:
        p.feat("sysobj", tok.start)
    if word in SYSOBJ_ALONE:
        p.feat("sysobj_alone", tok.start)
    if word in SYSPROC:
        p.feat("sysproc", tok.start)


def open_paren(p: ParseState, tok: Token) -> bool:
    """``(`` after an operand: a call when a name is right before it, else a sub-query."""
    last = p.last
    if last is not None and last.kind in (WORD, NAME) and p.operand_kind == "ident":
        name = p.operand_text
        if p.last_fn == "procedure" and name in ("analyse", "analyze"):
            p.feat("procedure", last.start)  # PROCEDURE ANALYSE(: MySQL error-based
        p.frames.append(Frame(FUNC, "args", last.start, name))
        p.st = OPD
        return True
    # "1 (select ...)", "') (select ...)": a sub-query right after an operand.
    p.frames.append(Frame(GROUP, "where", tok.start))
    p.st, p.need = NEED, "subselect"
    return True


def dotted(p: ParseState, tok: Token) -> bool:
    """A name part after ".": ``information_schema.tables``, ``@@global.version``."""
    k, t = tok.kind, tok.text
    if k in (WORD, NAME):
        name = t if k == WORD else t.strip("`[]").lower()
        word_info(p, name, tok)
        qualified = p.operand_text + "." + name
        if qualified in SYSOBJ_ALONE:
            p.feat("sysobj_alone", tok.start)
        operand_done(p, "ident", name, tok)
        p.last_fn = name
        return True
    if k == PUNCT and t == ".":  # master..xp_cmdshell
        return True
    if k == OP and t == "*":
        operand_done(p, "star", t, tok)
        return True
    if k in (VAR, NUM):  # @@global.version, t.1e0
        operand_done(p, "ident", t, tok)
        return True
    return False


def typename(p: ParseState, tok: Token) -> bool:
    """A type name after ``::`` or after AS in CAST."""
    k, t = tok.kind, tok.text
    if k == WORD and p.type_words == 0 and p.last is not None and p.last.text == "::":
        if t in SQL_TYPES:
            p.feat("cast", tok.start)  # password::int  (PostgreSQL error-based extraction)
        else:
            return False  # std::string is C++, not SQL
    if k == WORD and p.type_words < 2:
        p.type_words += 1
        p.operand_kind, p.operand_text = "ident", t
        p.after_breakout = False
        # A type is an operand: what follows is an operator, ")" or "(n)".
        p.st = OPR
        p.alias_ok = p.type_words < 2  # "double precision", "signed integer"
        return True
    return False

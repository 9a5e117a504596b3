"""WHERE conditions and boolean tests: operands and comparisons, what follows OR/AND
(a tautology, a call, a sub-query), IS, IN, BETWEEN, NOT, LIKE.

A condition an injection adds is a :class:`Logic` term opened by OR/AND; each operand
and comparison read inside it is marked on every open term, and the term becomes a
feature (``bool_taut``, ``bool_cmp``...) when it closes.
"""

from __future__ import annotations

from collections.abc import Callable

from ..tokens import NAME, OP, Token
from ..vocabulary import BIN_WORDS, CMP_WORDS, LITS, LOGIC_WORDS, POSTFIX_WORDS
from .state import FUNC, GROUP, NEED, OPD, OPR, TYPE, Frame, Logic, ParseState


def operand_done(p: ParseState, kind: str, text: str, tok: Token) -> None:
    """An operand is complete at the current level."""
    fr = p.frames[-1]
    lk = fr.cmp_kind
    if lk:
        fr.cmp_kind = ""
        if (lk in LITS and kind in LITS) or (lk == kind == "ident" and fr.cmp_text == text):
            p.feat("litcmp", tok.start)
            mark(p, "litcmp")
    fr.ops += 1
    if fr.ops == 1:
        fr.first = kind
    if kind != "str" and kind != "strt":
        p.nonstr = True
    lg = fr.logic
    if lg is not None:
        lg.operands += 1
        if kind in LITS:
            lg.lits += 1
        lg.lone_literal = lg.operands == 1 and kind in ("num", "lit", "strt")
    p.operand_kind = kind
    p.operand_text = text
    p.st = OPR
    p.alias_ok = fr.clause in ("select", "from") or kind == "sub"
    p.after_breakout = False


def mark(p: ParseState, what: str) -> None:
    """Mark every open OR/AND term: it holds a ``cmp``, ``litcmp``, ``fn`` or ``sub``."""
    for fr in p.frames:
        lg = fr.logic
        if lg is not None:
            if what == "cmp":
                lg.cmp = True
            elif what == "litcmp":
                lg.litcmp = True
            elif what == "fn":
                lg.fn = True
            elif what == "sub":
                lg.sub = True


def close_logic(p: ParseState, fr: Frame) -> None:
    """The OR/AND term at ``fr``'s level ends: record what kind of condition it was."""
    lg = fr.logic
    if lg is None:
        return
    fr.logic = None
    if lg.litcmp:
        p.feat("bool_taut", lg.start)
    if lg.sub:
        p.feat("bool_sub", lg.start)
    if lg.fn:
        p.feat("bool_fn", lg.start)
    if lg.cmp:
        p.feat("bool_cmp", lg.start)
    elif lg.operands == 1 and lg.lone_literal:
        p.feat("bool_lit", lg.start)
    elif lg.operands >= 2 and lg.lits == lg.operands:
        p.feat("bool_arith", lg.start)  # ' or ''-'  (arithmetic on literals)


def logic(p: ParseState, tok: Token) -> bool:
    """OR, AND, XOR, ||, &&: a new boolean term."""
    fr = p.frames[-1]
    if p.after_breakout and tok.kind == OP:
        p.feat("op_first", tok.start)  # 1'||'x
    close_logic(p, fr)
    fr.logic = Logic(tok.start)
    fr.cmp_kind = ""
    p.st = OPD
    p.after_breakout = False
    return True


def compare(p: ParseState, tok: Token) -> None:
    """A comparison operator: its right operand follows."""
    fr = p.frames[-1]
    kind, text = p.operand_kind, p.operand_text
    if kind == "paren" and p.closed_first in LITS:
        kind = p.closed_first  # ("x")=("x")
    if kind:
        fr.cmp_kind, fr.cmp_text = kind, text
    else:
        fr.cmp_kind, fr.cmp_text = "lit", ""
    mark(p, "cmp")
    p.st = OPD
    p.after_breakout = False


def compare_done(p: ParseState, tok: Token) -> None:
    # IS NULL, IN (...), BETWEEN: a condition without a literal comparison.
    mark(p, "cmp")
    p.after_breakout = False


def condition_word(p: ParseState, tok: Token) -> bool | None:
    """A word after an operand that continues a condition (or AS); None: not one of them."""
    t = tok.text
    if t in LOGIC_WORDS:
        if t == "and" and p.between:
            p.between -= 1
            p.st = OPD
            return True
        return logic(p, tok)
    if t in CMP_WORDS:
        compare(p, tok)
        return True
    if t == "sounds":
        p.st, p.need = NEED, "like"
        return True
    if t == "is":
        p.st, p.need = NEED, "is"
        compare_done(p, tok)
        return True
    if t in POSTFIX_WORDS:
        compare_done(p, tok)
        return True
    if t == "in":
        p.st, p.need = NEED, "in"
        compare_done(p, tok)
        return True
    if t == "between":
        # x BETWEEN a AND b compares x with a (then b): literals on both sides are a
        # tautology or a contradiction like x=a (sqlmap's "between" tamper writes 1=1 so).
        p.between += 1
        compare(p, tok)
        return True
    if t == "not":
        p.st, p.need = NEED, "not"
        return True
    if t in BIN_WORDS:
        p.st = OPD
        return True
    if t == "as":
        _as(p)
        return True
    return None


def _as(p: ParseState) -> None:
    if p.frames[-1].kind == FUNC:
        p.st, p.type_words = TYPE, 0  # CAST(x AS type)
        return
    p.st, p.need = NEED, "alias"
    last = p.last
    p.alias_closes_app = last is not None and last.end == p.app_close_end
    p.alias_strong = (
        p.after_breakout
        or p.alias_closes_app
        or p.operand_kind in ("num", "fn")
        or (last is not None and last.kind == NAME)
    )


# ------------------------------------------------------------------ words a condition needs next
def _need_is(p: ParseState, tok: Token, negated: bool) -> bool:
    t = tok.text
    if t == "not" and not negated:
        p.st, p.need = NEED, "isnot"
        return True
    if t in ("null", "true", "false", "unknown"):
        operand_done(p, "lit", t, tok)
        return True
    if t == "distinct":
        p.st, p.need = NEED, "from"
        return True
    return False


def _need_distinct_from(p: ParseState, tok: Token) -> bool:
    if tok.text == "from":  # IS [NOT] DISTINCT FROM
        p.st = OPD
        return True
    return False


def _need_not(p: ParseState, tok: Token) -> bool:
    t = tok.text
    if t in CMP_WORDS:  # NOT LIKE, NOT REGEXP: a comparison like the others
        compare(p, tok)
        return True
    if t == "between":
        p.between += 1
        compare(p, tok)
        return True
    if t == "in":
        p.st, p.need = NEED, "in"
        return True
    if t == "exists":
        p.st, p.need = NEED, "("
        return True
    return False


def _need_like(p: ParseState, tok: Token) -> bool:
    if tok.text == "like":  # SOUNDS LIKE
        compare(p, tok)
        return True
    return False


def _need_in(p: ParseState, tok: Token) -> bool:
    t = tok.text
    if t == "(":
        p.frames.append(Frame(GROUP, "where", tok.start))
        p.st = OPD
        return True
    if t == "boolean":  # AGAINST('...' IN BOOLEAN MODE)
        p.st, p.need = NEED, "mode"
        return True
    return False


def _need_mode(p: ParseState, tok: Token) -> bool:
    if tok.text == "mode":
        p.st = OPR
        p.alias_ok = False
        return True
    return False


NEEDS: dict[str, Callable[[ParseState, Token], bool]] = {
    "is": lambda p, tok: _need_is(p, tok, False),
    "isnot": lambda p, tok: _need_is(p, tok, True),
    "from": _need_distinct_from,
    "not": _need_not,
    "like": _need_like,
    "in": _need_in,
    "mode": _need_mode,
}

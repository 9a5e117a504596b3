"""The driver: reads the tokens of one context left to right, hands each to the
grammar for the current state, and stops at the first token SQL would reject."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from ..tokens import COMMENT, NUM, OP, OTHER, PUNCT, STR, WORD, Token
from ..vocabulary import (
    CLAUSE_WORDS,
    CMP_OPS,
    KEYWORDS,
    LOGIC_OPS,
    LOGIC_WORDS,
    NOT_AT_START,
    PROSE_KEYWORDS,
    STMT_NEXT,
)
from . import conditions, operands, selects, statements
from .closing import finish
from .comments import comment, continues_string, keyword
from .functions import dotted, typename
from .operands import operand
from .operators import operator
from .selects import begin_select
from .state import ParseState
from .statements import statement

Handler = Callable[[ParseState, Token], bool]

#: What a NEED state waits for, by the word it was set to: each clause owns its own.
_NEEDS: dict[str, Handler] = {
    **conditions.NEEDS,
    **selects.NEEDS,
    **operands.NEEDS,
    **statements.NEEDS,
}


def _needed(p: ParseState, tok: Token) -> bool:
    handler = _NEEDS.get(p.need)
    p.need = ""
    return False if handler is None else handler(p, tok)


def _start(p: ParseState, tok: Token) -> bool:
    """Start of an unquoted value: an operand, a statement, or a continuation."""
    k, t = tok.kind, tok.text
    if k == WORD:
        if t == "select":
            begin_select(p, "start", tok)
            return True
        if t in STMT_NEXT and t not in NOT_AT_START:
            p.feat("stmt_start", tok.start)
            p.stmt_at_start = True
            return statement(p, tok)
        if t in LOGIC_WORDS:
            p.feat("logic_start", tok.start)  # AND x=1: the continuation of a condition
            return operator(p, tok)
        if t in ("union", "intersect", "except") or t in CLAUSE_WORDS:
            return operator(p, tok)
        if t in ("not", "like", "rlike", "regexp", "is", "in", "between", "as", "div", "mod"):
            return operator(p, tok) if t != "not" else operand(p, tok)
    elif (k == PUNCT and t in ");,") or (k == OP and t in LOGIC_OPS) or (k == OP and t in CMP_OPS):
        if k == OP and t in LOGIC_OPS:
            p.feat("logic_start", tok.start)
        return operator(p, tok)
    return operand(p, tok)


#: The grammar for each state (OPD, OPR, START, NEED, DOT, TYPE, STMT).
_HANDLERS: tuple[Handler, ...] = (operand, operator, _start, _needed, dotted, typename, statement)


def run(p: ParseState, tokens: Iterator[Token], limit: int) -> None:
    """Read ``tokens`` (at most ``limit``) until the pass ends; ``p.stop`` says why."""
    handlers = _HANDLERS
    for tok in tokens:
        p.n += 1
        kind = tok.kind
        if kind == STR and continues_string(p, tok):
            continue
        if kind == COMMENT:
            if not comment(p, tok):
                return
            continue
        if kind == NUM and tok.text[-2:].lower() == ".e":
            # MySQL reads "1.e" glued before "(", "," or a name as nothing: an evasion
            # ("1.e(ascii", "1.e,1"). "Question 1.e" ends there and is just skipped.
            p.glue = tok.end
            continue
        if p.glue == tok.start and (kind == WORD or tok.text in ("(", ",")):
            p.feat("sci_glue", tok.start)
        if kind == WORD and tok.text in KEYWORDS:
            keyword(p, tok)
        if p.quote and not p.sqlish and (kind != WORD or tok.text in KEYWORDS):
            p.sqlish = kind != WORD or tok.text not in PROSE_KEYWORDS
        if not handlers[p.st](p, tok):
            if kind == OTHER and tok.end >= len(p.value.rstrip()):
                break  # one stray character at the very end: ' or 1=1 \u2013 (a mangled --)
            p.fail = tok
            p.stop = "fail"
            return
        if p.stop:
            return
        p.last = tok
        p.end = tok.end
    p.stop = "cap" if p.n >= limit else "end"
    finish(p)

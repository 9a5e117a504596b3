"""SELECT and its clauses: the select list and its aliases, FROM and joins, WHERE,
GROUP/ORDER BY, LIMIT, INTO, PROCEDURE, and UNION between selects.

A SELECT is *real* (a ``union``/``stack``/``subq``/``select`` feature when it ends) once
its column list holds more than prose: a literal, a call, a variable, ``*``, a
sub-query, or a FROM.
"""

from __future__ import annotations

from collections.abc import Callable

from ..tokens import NAME, NUM, STR, VAR, WORD, Token
from ..vocabulary import RESERVED, STRUCTURAL
from .conditions import close_logic, operand_done
from .state import FUNC, GROUP, NEED, OPD, OPR, SUBQ, TOP, Frame, ParseState, Select

_JOIN_WORDS = frozenset(
    {"join", "inner", "left", "right", "outer", "cross", "natural", "straight_join", "full"}
)


def begin_select(p: ParseState, origin: str, tok: Token) -> None:
    fr = p.frames[-1]
    if origin in ("union", "stack"):
        p.feat(origin + "_any", tok.start)
    fr.select = Select(origin, tok.start)
    fr.clause = "select"
    p.st = OPD
    p.after_breakout = False


def select_real(p: ParseState) -> None:
    sel = p.frames[-1].select
    if sel is not None:
        sel.real = True


def end_select(p: ParseState, fr: Frame) -> None:
    sel = fr.select
    if sel is None:
        return
    fr.select = None
    if sel.real:
        name = {"union": "union", "stack": "stack", "sub": "subq"}.get(sel.origin, "select")
        p.feat(name, sel.start)


def select_tail(p: ParseState) -> None:
    """``) AS total FROM``, ``1234 AS "x" FROM t``: the end of a select list, then FROM.

    Prose says "known as Bob from Texas"; SQL aliases something SQL-like (a number, a
    call, a closing parenthesis, a `name`) and quotes an alias as one token."""
    tok = p.alias_token
    if tok is None or p.last is not tok or not p.alias_strong:
        return
    if tok.kind in (NAME, STR) and tok.closed and not any(c.isspace() for c in tok.text):
        p.feat("select_tail", tok.start)
    elif p.alias_closes_app:
        p.feat("select_tail_cut", tok.start)  # decisive only when the value ends here


def enter_clause(p: ParseState, tok: Token) -> None:
    """A clause keyword: the condition before it ends; at the top level it is evidence."""
    fr = p.frames[-1]
    close_logic(p, fr)
    if len(p.frames) == 1 or p.after_breakout:
        p.feat("clause", tok.start)
    p.after_breakout = False


def clause(p: ParseState, tok: Token) -> bool | None:
    """A clause word after an operand; None: not one of them."""
    t = tok.text
    fr = p.frames[-1]
    if t in ("union", "intersect", "except", "minus"):
        if fr.kind not in (TOP, GROUP, SUBQ):
            return False
        close_logic(p, fr)
        end_select(p, fr)
        p.st, p.need = NEED, "union"
        p.after_breakout = False
        return True
    if t in ("order", "group"):
        enter_clause(p, tok)
        p.st, p.need = NEED, "by"
        return True
    if t in ("where", "having", "limit", "offset"):
        enter_clause(p, tok)
        fr.clause = "where" if t in ("where", "having") else "limit"
        p.st = OPD
        return True
    if t == "from":
        return _from(p, tok, fr)
    if t in ("for", "using", "placing", "separator") and fr.kind == FUNC:
        p.st = OPD  # SUBSTRING(x FOR 2), CONVERT(x USING utf8), OVERLAY(x PLACING y)
        return True
    if t in ("into", "procedure"):
        enter_clause(p, tok)
        p.st, p.need = NEED, "into" if t == "into" else "name"
        return True
    if t in ("asc", "desc") and fr.clause == "order":
        return True
    if t in _JOIN_WORDS:
        if fr.clause != "from" and not (p.alias_ok and t in ("left", "right", "full")):
            return False
        p.st = OPD if t in ("join", "straight_join") else OPR
        return True
    if t in ("on", "using") and fr.clause == "from":
        fr.clause = "where"
        p.st = OPD
        return True
    return None


def _from(p: ParseState, tok: Token, fr: Frame) -> bool:
    if fr.kind == FUNC:  # SUBSTRING(x FROM 2), TRIM(' ' FROM x)
        p.st = OPD
        return True
    if fr.select is None and not (p.quote or len(p.frames) == 1):
        return False
    if fr.select is not None:
        fr.select.real = True
    select_tail(p)
    enter_clause(p, tok)
    fr.clause = "from"
    p.st = OPD
    return True


# ------------------------------------------------------------------ words a clause needs next
def _need_top(p: ParseState, tok: Token) -> bool:
    if tok.kind == NUM:
        p.st = OPD  # SELECT TOP 1: the select list follows the count
        return True
    return False


def _need_by(p: ParseState, tok: Token) -> bool:
    if tok.text != "by":
        return False
    p.frames[-1].clause = "order"
    p.st = OPD
    return True


def _need_union(p: ParseState, tok: Token) -> bool:
    k, t = tok.kind, tok.text
    if k == WORD and t in ("all", "distinct", "distinctrow"):
        p.st, p.need = NEED, "union"
        return True
    if k == WORD and t == "select":
        begin_select(p, "union", tok)
        return True
    if t == "(":
        p.frames.append(Frame(GROUP, "where", tok.start))
        p.st, p.need = NEED, "select"
        return True
    return False


def _need_select(p: ParseState, tok: Token, origin: str) -> bool:
    if tok.text == "select":  # UNION (SELECT ...), 1 (SELECT ...)
        p.frames[-1].kind = SUBQ
        begin_select(p, origin, tok)
        return True
    return False


def _need_alias(p: ParseState, tok: Token) -> bool:
    k = tok.kind
    if (k in (WORD, NAME) and tok.text not in STRUCTURAL) or k == STR:
        p.st = OPR
        p.alias_ok = False
        p.alias_token = tok
        return True
    return False


def _need_into(p: ParseState, tok: Token) -> bool:
    k, t = tok.kind, tok.text
    if t in ("outfile", "dumpfile"):
        p.feat("into_file", tok.start)
        p.st, p.need = NEED, "file"
        return True
    if k == VAR:
        p.frames[-1].clause = "select"  # INTO @a, @b
        operand_done(p, "var", t, tok)
        return True
    if k in (WORD, NAME) and t not in RESERVED:
        operand_done(p, "ident", t, tok)
        return True
    return False


def _need_file(p: ParseState, tok: Token) -> bool:
    if tok.kind == STR:  # INTO OUTFILE '/var/www/x.php'
        operand_done(p, "str", tok.text, tok)
        return True
    return False


def _need_procedure_name(p: ParseState, tok: Token) -> bool:
    t = tok.text
    if tok.kind == WORD and t not in RESERVED:  # PROCEDURE analyse(
        operand_done(p, "ident", t, tok)
        p.last_fn = "procedure"  # remembered until the call: see functions.open_call
        return True
    return False


def _need_rollup(p: ParseState, tok: Token) -> bool:
    if tok.text == "rollup":
        p.st = OPR
        return True
    return False


NEEDS: dict[str, Callable[[ParseState, Token], bool]] = {
    "top": _need_top,
    "by": _need_by,
    "union": _need_union,
    "select": lambda p, tok: _need_select(p, tok, "union"),
    "subselect": lambda p, tok: _need_select(p, tok, "sub"),
    "alias": _need_alias,
    "into": _need_into,
    "file": _need_file,
    "name": _need_procedure_name,
    "rollup": _need_rollup,
}

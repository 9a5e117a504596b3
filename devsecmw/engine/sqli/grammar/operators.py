"""What may follow an operand: punctuation, operators, and the words that continue an
expression (a condition, a clause, CASE's words, a statement, an alias)."""

from __future__ import annotations

from ..tokens import NAME, NUM, OP, PUNCT, STR, VAR, WORD, Token
from ..vocabulary import BIN_OPS, CLOSERS, CMP_OPS, JSON_OPS, LOGIC_OPS, RESERVED
from .conditions import close_logic, compare, condition_word, logic
from .functions import open_paren
from .operands import case_word, close_paren, operand
from .selects import clause
from .state import CASE, DOT, GROUP, MAX_DEPTH, NEED, OPD, TYPE, Frame, ParseState
from .statements import semicolon, statement_word


def operator(p: ParseState, tok: Token) -> bool:
    k, t = tok.kind, tok.text
    if p.exec_args and len(p.frames) == 1 and t != ".":
        p.exec_args = False  # EXEC xp_cmdshell 'dir': arguments without "("
        if k in (STR, NUM, VAR):
            return operand(p, tok)
    if p.must_call:
        p.must_call = False
        if t != "(":
            return False
    if len(p.frames) > MAX_DEPTH:
        return False
    if k == PUNCT:
        return _punctuation(p, tok)
    if k == OP:
        return _operator(p, tok)
    if k == WORD:
        return operator_word(p, tok)
    if k == NAME and p.alias_ok:
        p.alias_ok = False
        return True
    return False


def _punctuation(p: ParseState, tok: Token) -> bool:
    t = tok.text
    fr = p.frames[-1]
    if t in (")", "]", "}"):
        closer = CLOSERS.get(fr.fn, ")") if fr.kind == GROUP else ")"
        if t != closer:
            return False  # "(]" is not SQL; ")" alone closes the application's "("
        return close_paren(p, tok)
    if t == "[":  # a[1], ARRAY['a','b']
        p.frames.append(Frame(GROUP, "where", tok.start, "["))
        p.st = OPD
        return True
    if t == ",":
        if fr.kind == CASE:
            return False
        close_logic(p, fr)
        p.st = OPD
        return True
    if t == ";":
        return semicolon(p, tok)
    if t == "(":
        return open_paren(p, tok)
    if t == ".":
        last = p.last
        if p.operand_kind in ("ident", "var") or (last is not None and last.text == "."):
            p.st = DOT
            return True
        return False
    return False


def _operator(p: ParseState, tok: Token) -> bool:
    t = tok.text
    if t in LOGIC_OPS:
        return logic(p, tok)
    if t in CMP_OPS:
        if p.after_breakout:
            p.feat("cmp_first", tok.start)
        if t in JSON_OPS:
            p.feat("json_op", tok.start)
        compare(p, tok)
        return True
    if t == "::":
        p.st = TYPE
        p.type_words = 0
        return True
    if t in BIN_OPS:
        if p.after_breakout:
            p.feat("op_first", tok.start)
        p.st = OPD
        p.after_breakout = False
        return True
    return False


def operator_word(p: ParseState, tok: Token) -> bool:
    found = condition_word(p, tok)
    if found is None:
        found = clause(p, tok)
    if found is not None:
        return found
    fr = p.frames[-1]
    if fr.kind == CASE:
        return case_word(p, tok)
    found = statement_word(p, tok)
    if found is not None:
        return found
    t = tok.text
    if t == "with" and fr.clause == "group":
        p.st, p.need = NEED, "rollup"
        return True
    if p.alias_ok and t not in RESERVED:
        p.alias_ok = False  # an alias without AS
        return True
    return False

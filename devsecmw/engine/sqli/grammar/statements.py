"""Stacked statements: ``;`` and what may follow it (``DROP TABLE``, ``EXEC xp_cmdshell``,
``WAITFOR DELAY``, ``DECLARE @x``...), the statements MSSQL accepts without ``;``, and a
statement that begins an unquoted value ("DELETE FROM users;--").

A statement counts once its head and the word after it are read (``stack``): "drop
table" is a statement, "drop us a line" is not.
"""

from __future__ import annotations

from collections.abc import Callable

from ..tokens import NAME, NUM, PUNCT, STR, VAR, WORD, Token
from ..vocabulary import FN_SQL, IMPLICIT_STMT, RESERVED, STMT_NEXT, SYSPROC
from .closing import finish
from .conditions import close_logic, operand_done
from .operands import operand
from .selects import begin_select, end_select
from .state import GROUP, NEED, OPD, STMT, Frame, ParseState

_UPDATE_SET = frozenset({"set"})


def semicolon(p: ParseState, tok: Token) -> bool:
    """``;``: every open level ends, a statement must follow."""
    p.feat("semicolon", tok.start)
    for f in reversed(p.frames):
        close_logic(p, f)
        end_select(p, f)
    del p.frames[1:]
    p.frames[0].clause = "where"
    p.st = STMT
    return True


def statement_word(p: ParseState, tok: Token) -> bool | None:
    """A statement head right after an operand, without ``;``; None: not one."""
    t = tok.text
    if len(p.frames) != 1:
        return None
    fr = p.frames[0]
    if p.stmt_head == "if" and (t in STMT_NEXT or t == "else"):
        # IF (cond) SELECT ... ELSE DROP ...: a statement follows the condition.
        close_logic(p, fr)
        if t == "else":
            p.st = STMT
            return True
        return statement(p, tok)
    if t in IMPLICIT_STMT or (p.after_breakout and t in STMT_NEXT):
        close_logic(p, fr)
        return statement(p, tok)
    return None


def statement(p: ParseState, tok: Token) -> bool:
    """After ``;`` (or an implicit boundary): a statement must start here."""
    k, t = tok.kind, tok.text
    p.after_breakout = False
    if k == PUNCT and t == ";":
        return True  # empty statement
    if k == PUNCT and t == "(":  # ;(select ...)
        p.frames.append(Frame(GROUP, "where", tok.start))
        p.st = OPD
        return True
    if k == WORD and t not in STMT_NEXT and t in FN_SQL:
        # ;IIF(1=1,1,1/0), ;SLEEP(5): a call standing as a statement.
        p.st = OPD
        p.feat("stack_call", tok.start)
        return operand(p, tok)
    if k != WORD or t not in STMT_NEXT:
        return False
    if t == "shutdown":  # takes nothing: "; SHUTDOWN --", "'; shutdown with nowait"
        return _stacked(p, tok)
    if t == "select":
        begin_select(p, "stack", tok)
        return True
    p.st, p.need = NEED, "stmt"
    p.stmt_head = t
    return True


def _statement_next(p: ParseState, tok: Token) -> bool:
    """The word after a statement head."""
    head = p.stmt_head
    k, t = tok.kind, tok.text
    allowed = STMT_NEXT.get(head) if head != "update_set" else _UPDATE_SET
    if allowed is not None:
        if k != WORD or t not in allowed:
            return False
        if head == "waitfor":
            p.st, p.need = NEED, "delay"
            return True
        return _stacked(p, tok)
    if head == "declare":
        return k == VAR and _stacked(p, tok)
    if head == "set":
        if k == VAR or (k == WORD and t not in RESERVED):
            return _stacked(p, tok)
        return False
    if head in ("exec", "execute"):
        return _exec(p, tok)
    if head == "shutdown":
        return False  # SHUTDOWN takes no operand; handled at the end of the pass
    if head in ("truncate", "replace"):
        if k == NAME or (k == WORD and (t not in RESERVED or t in ("table", "into"))):
            return _stacked(p, tok)
        return False
    if head == "copy":
        if k == WORD and t not in RESERVED:
            p.st, p.need = NEED, "stmt"
            p.stmt_head = "copy_dir"
            return True
        return False
    if head == "copy_dir":
        if t in ("from", "to"):
            return _stacked(p, tok)
        return False
    if head in ("call", "begin", "prepare", "update", "grant", "revoke", "dbcc", "kill"):
        return _named(p, tok, head)
    if head in ("if", "do", "use", "handler"):
        p.st = OPD
        if head != "if":
            p.stmt_head = ""
        return operand(p, tok)
    return False


def _exec(p: ParseState, tok: Token) -> bool:
    k, t = tok.kind, tok.text
    if k == VAR or (k == PUNCT and t == "("):
        return _stacked(p, tok)
    if k == WORD and t == "immediate":  # Oracle dynamic SQL
        p.feat("exec_dynamic", tok.start)
        if p.stmt_at_start:
            p.stmt_at_start = False
            p.feat("stmt_head", tok.start)
            p.stmt_head = ""
            p.st = OPD
            return True
        return _stacked(p, tok)
    if k == WORD and (t.startswith(("xp_", "sp_")) or t in ("master", "dbo", "sys")):
        p.exec_args = True
        return _stacked(p, tok)
    return False


def _named(p: ParseState, tok: Token, head: str) -> bool:
    # A name must follow; the call or the rest is read as an expression.
    t = tok.text
    if tok.kind == WORD and t not in RESERVED:
        if head == "update":  # UPDATE users SET ...
            p.st, p.need = NEED, "stmt"
            p.stmt_head = "update_set"
            return True
        p.feat("stack_weak", tok.start)
        operand_done(p, "ident", t, tok)
        p.last_fn = t
        return True
    return False


def _stacked(p: ParseState, tok: Token) -> bool:
    """A statement's head is read: a stacked statement, or one that began the value."""
    if p.stmt_at_start:
        # "DELETE FROM users;--" is an injection, "delete from cart" a button label:
        # read on (a table name, then ";" or a comment) and judge on what follows.
        _head_at_start(p, tok)
        return True
    p.feat("stack", tok.start)
    p.stop = "stmt"
    p.end = tok.end
    finish(p)
    return True


def _head_at_start(p: ParseState, tok: Token) -> None:
    p.stmt_at_start = False
    p.feat("stmt_head", tok.start)
    p.stmt_head = ""
    if tok.kind == WORD and tok.text in SYSPROC:
        p.feat("sysproc", tok.start)
        operand_done(p, "ident", tok.text, tok)
        p.exec_args = True
    elif tok.kind == WORD and tok.text not in RESERVED:
        operand_done(p, "ident", tok.text, tok)
        p.frames[0].clause = "from"
    elif tok.kind == VAR:
        p.feat("stmt_var", tok.start)  # DECLARE @x, SET @x: SQL-only syntax
        operand_done(p, "var", tok.text, tok)
    elif tok.kind == PUNCT and tok.text == "(":  # EXEC (@q)
        p.feat("stmt_var", tok.start)
        p.frames.append(Frame(GROUP, "where", tok.start))
        p.st = OPD
    else:
        p.st = OPD
        p.frames[0].clause = "from"


def _need_delay(p: ParseState, tok: Token) -> bool:
    if tok.kind in (STR, NUM, VAR):
        p.feat("waitfor", tok.start)  # WAITFOR DELAY '0:0:5'
        operand_done(p, "str", tok.text, tok)
        return True
    return False


NEEDS: dict[str, Callable[[ParseState, Token], bool]] = {"delay": _need_delay, "stmt": _statement_next}

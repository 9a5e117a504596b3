"""Comments and obfuscation: a comment that truncates the query after a break-out
(``admin'--``), inline comments used as blanks (``UNION/**/SELECT``), MySQL's executable
``/*!50000 ...*/`` comments, keywords in odd letter case (``UnIoN``), the doubled quote
that keeps a string going (``O''Brien``)."""

from __future__ import annotations

from ..tokens import STR, Token
from ..vocabulary import PREFILTER_WORDS
from .closing import finish
from .state import OPR, START, STMT, ParseState


def comment(p: ParseState, tok: Token) -> bool:
    """A comment token; False when the pass ends at it (truncated, or an operand is missing)."""
    if tok.text == "/*!":
        p.feat("inline_comment", tok.start)
        return True
    line = tok.text != "/*"
    if not line and tok.closed:
        # An inline comment is whitespace to SQL, and a tell: prose has none between words.
        if p.n > 1:
            p.feat("inline_comment", tok.start)
        return True
    if p.after_breakout:
        p.feat("trunc", tok.start)
    elif p.st == STMT and p.quote:
        p.feat("trunc", tok.start)  # x'; --
    if line and p.value[tok.end : tok.end + 1] == "\n" and p.value[tok.end + 1 :].strip():
        return True  # the comment ends at the newline and SQL goes on: UNION#\nSELECT
    if p.st in (OPR, START, STMT):
        p.feat("comment_end", tok.start)
        if p.quote and p.sqlish:
            p.feat("sql_comment", tok.start)  # user'collate nocase--
        p.stop = "comment"
        p.end = tok.end
        finish(p)
        return False
    # A comment where an operand is missing: the expression is incomplete.
    p.stop = "fail"
    p.fail = tok
    return False


def continues_string(p: ParseState, tok: Token) -> bool:
    """'O''Brien': a string right after a string, joined by a doubled quote, goes on."""
    last = p.last
    if (
        last is not None
        and last.kind == STR
        and last.end == tok.start
        and last.closed
        and tok.text[0] == last.text[-1]
    ):
        last.end, last.closed = tok.end, tok.closed
        p.end = tok.end
        return True
    return False


def keyword(p: ParseState, tok: Token) -> None:
    """A keyword read: counted, and UnIoN SeLeCt (case games are evasion) noted."""
    p.keywords += 1
    word = p.value[tok.start : tok.end]
    if tok.text in PREFILTER_WORDS and not (word.islower() or word.isupper() or word.istitle()):
        p.odd += 1
        p.feat("oddcase", tok.start)

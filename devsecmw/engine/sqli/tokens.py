"""The lexer: SQL tokens of a value, read lazily so that a pass stops at its first invalid one.

The tokenizer knows strings, numbers (hex, scientific, ``1e0union``), words,
``@``/``@@`` variables, backtick and bracket names, operators (PostgreSQL's JSON
ones included) and the three comment styles, MySQL's executable ``/*!50000 ...*/``
comments included (their content is SQL).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

#: Tokens one pass reads at most; longer valid SQL is judged on what was read.
MAX_TOKENS = 400

# --------------------------------------------------------------------------- tokenizer
# One alternative per token kind; each either consumes its token or fails at its
# first character, and none can fail after consuming (closing quotes and comment
# ends are optional), so a match costs O(token) and tokenizing is linear. The
# last alternatives make the pattern total.
_TOKEN_RE = re.compile(
    r"""[\s\x00]*(?:
      (?P<lc>(?:--|\#)[^\n]*)
    | (?P<vc>/\*!\d*)
    | (?P<bc>/\*)
    | (?P<ce>\*/)
    | (?P<ps>(?:[xXbBnNeE]|_[a-zA-Z0-9]{1,16})'(?:[^'\\]+|\\.)*(?P<psq>')?)
    | (?P<s>'(?:[^'\\]+|\\.)*(?P<sq>')?|"(?:[^"\\]+|\\.)*(?P<dq>")?)
    | (?P<n>0[xX][0-9a-fA-F]+\b|0[bB][01]+\b
        |\d+(?:\.\d*)?[eE][+-]?\d+|\d+\.\d*(?:[eE][+-]?\d*)?|\.\d+(?:[eE][+-]?\d+)?|\d+(?![^\W\d]))
    | (?P<w>[^\W\d][\w$]*|\d+[^\W\d][\w$]*)
    | (?P<bt>`[^`]*(?P<btq>`)?|\[[\w$ .-]{1,128}\])
    | (?P<o><=>|->>|<>|!=|<=|>=|\|\||&&|<<|>>|:=|::|->|==|!<|!>
        |<@|@>|@\?|@@(?![\w.$'"`])|\?[|&]?|[=<>+\-*/%&|^~!])
    | (?P<v>@@?(?:[\w.$]+|'[^']*'?|`[^`]*`?|"[^"]*"?)?)
    | (?P<p>[(),;.\[\]{}])
    | (?P<x>.)
    | (?P<end>\Z)
    )""",
    re.X | re.S,
)

NUM = "num"
STR = "str"
WORD = "word"
VAR = "var"
NAME = "name"  # `backtick` identifier
OP = "op"
PUNCT = "punct"
COMMENT = "comment"
OTHER = "other"


class Token:
    """One token: ``kind``, ``text`` (lower-cased for words and variables), ``start``/``end``.

    ``closed`` is False for a string, name or block comment that runs to the end of the value.
    """

    __slots__ = ("closed", "end", "kind", "start", "text")

    def __init__(self, kind: str, text: str, start: int, end: int, closed: bool = True) -> None:
        self.kind = kind
        self.text = text
        self.start = start
        self.end = end
        self.closed = closed

    def __repr__(self) -> str:
        state = "" if self.closed else ", open"
        return f"Token({self.kind}, {self.text!r}, {self.start}:{self.end}{state})"


def scan(value: str, pos: int, limit: int) -> Iterator[Token]:
    """Lazy tokens of ``value`` from ``pos``: a pass stops reading at its first invalid token."""
    match = _TOKEN_RE.match
    versioned = 0
    left = limit
    while left > 0:
        m = match(value, pos)
        if m is None:  # pragma: no cover - the pattern is total
            return
        kind = m.lastgroup
        # Sub-groups (closing quotes) can be ``lastgroup``; map them to their token.
        if kind == "end" or kind is None:
            return
        if kind in ("sq", "dq"):
            kind = "s"
        elif kind == "psq":
            kind = "ps"
        elif kind == "btq":
            kind = "bt"
        start, end = m.span(kind)
        pos = end
        text = m.group(kind)
        if kind == "w":
            tok = Token(WORD, text.lower(), start, end)
        elif kind == "s":
            tok = Token(STR, text, start, end, m.group("sq") is not None or m.group("dq") is not None)
        elif kind == "n":
            tok = Token(NUM, text, start, end)
        elif kind == "o":
            tok = Token(OP, text, start, end)
        elif kind == "p":
            tok = Token(PUNCT, text, start, end)
        elif kind == "lc":
            tok = Token(COMMENT, text[:2] if text[0] == "-" else "#", start, end, False)
        elif kind == "bc":
            # str.find, not a lazy regex: an unclosed "/*" costs one scan of the rest.
            close = value.find("*/", end)
            pos = len(value) if close < 0 else close + 2
            tok = Token(COMMENT, "/*", start, pos, close >= 0)
        elif kind == "vc":  # /*!50000 select */: the markers go, the content is SQL
            versioned += 1
            tok = Token(COMMENT, "/*!", start, end, True)
            left -= 1
            yield tok
            continue
        elif kind == "ce":
            if versioned:
                versioned -= 1
                continue
            lo = max(0, start - 256)
            if value.rfind("/*!", lo, start) > value.rfind("*/", lo, start):
                continue  # closes a versioned comment opened before this pass started
            if value.startswith("/*", start + 1):
                # "*/*" with no comment open: a "*" (SELECT/**/*/**/FROM, sqlmap's space2comment)
                # before a comment, as SQL lexes it.
                pos = start + 1
                tok = Token(OP, "*", start, pos)
            else:
                tok = Token(OTHER, text, start, end)
        elif kind == "ps":
            tok = Token(STR, text, start, end, m.group("psq") is not None)
        elif kind == "v":
            tok = Token(VAR, text.lower(), start, end)
        elif kind == "bt":
            tok = Token(NAME, text, start, end, text[0] == "[" or m.group("btq") is not None)
        else:
            tok = Token(OTHER, text, start, end)
        left -= 1
        yield tok


def tokenize(value: str, start: int = 0) -> list[Token]:
    """The tokens of ``value`` from ``start`` (at most :data:`MAX_TOKENS`), for tests and tooling."""
    return list(scan(value, start, MAX_TOKENS))

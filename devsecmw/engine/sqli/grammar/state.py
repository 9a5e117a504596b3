"""The explicit state of one parse: what the next token may be, the stack of open
parentheses (frames), and the features recorded so far.

Every grammar module is a set of functions over a :class:`ParseState`; none keeps
state of its own.
"""

from __future__ import annotations

from ..tokens import Token

#: Parenthesis depth a pass follows; deeper nesting is not SQL anyone sends.
MAX_DEPTH = 40

# Parser states: what the next token may be (indices into the driver's handler table).
OPD = 0  # an operand
OPR = 1  # an operator or a clause, after an operand
START = 2  # an operand or a continuation (start of an unquoted value)
NEED = 3  # a particular word or token (see ``ParseState.need``)
DOT = 4  # a name part after "."
TYPE = 5  # a type name after AS in CAST or after ::
STMT = 6  # a statement (after ";")

# Frame kinds.
TOP = "top"
GROUP = "("  # a parenthesised expression or list
FUNC = "f"  # function arguments
SUBQ = "q"  # a sub-query
CASE = "c"  # CASE ... END


class Select:
    """One SELECT: where it came from and whether its column list is more than prose."""

    __slots__ = ("origin", "real", "start")

    def __init__(self, origin: str, start: int) -> None:
        self.origin = origin  # union | stack | start | sub
        self.start = start
        self.real = False  # a literal, call, variable, *, sub-query, or FROM seen


class Logic:
    """What follows an OR/AND: the condition an injection adds."""

    __slots__ = ("cmp", "fn", "litcmp", "lits", "lone_literal", "operands", "start", "sub")

    def __init__(self, start: int) -> None:
        self.start = start
        self.cmp = False  # a comparison (or IS, IN, BETWEEN)
        self.litcmp = False  # a comparison of two literals, or of a name with itself
        self.fn = False  # a function call
        self.sub = False  # a sub-query
        self.operands = 0
        self.lits = 0  # of the operands, literals
        self.lone_literal = False  # one operand, a literal MySQL reads as true


class Frame:
    """One level of parentheses (or the top level, or CASE ... END)."""

    __slots__ = ("clause", "cmp_kind", "cmp_text", "first", "fn", "kind", "logic", "ops", "select", "start")

    def __init__(self, kind: str, clause: str, start: int, fn: str = "") -> None:
        self.kind = kind
        self.clause = clause  # where | select | from | order | limit | args
        self.start = start
        self.fn = fn  # the function's name for a call frame ("[" or "{" for those groups)
        self.select: Select | None = None
        # A comparison waiting for its right operand: the left operand's kind and text
        # (the kind is "" when none waits).
        self.cmp_kind = ""
        self.cmp_text = ""
        # The boolean term opened by the last OR/AND at this level (see Logic).
        self.logic: Logic | None = None
        self.ops = 0  # operands read at this level
        self.first = ""  # the kind of the first one ("(1)" is a literal too)


class ParseState:
    """One pass over the tokens of one context; ``feats`` maps a feature to its first position."""

    __slots__ = (
        "after_breakout",
        "alias_closes_app",
        "alias_ok",
        "alias_strong",
        "alias_token",
        "app_close_end",
        "between",
        "closed_first",
        "end",
        "exec_args",
        "fail",
        "feats",
        "frames",
        "glue",
        "keywords",
        "last",
        "last_fn",
        "must_call",
        "n",
        "need",
        "nonstr",
        "odd",
        "open_calls",
        "operand_kind",
        "operand_text",
        "origin",
        "quote",
        "spaced_str",
        "sqlish",
        "st",
        "stmt_at_start",
        "stmt_head",
        "stop",
        "type_words",
        "value",
    )

    def __init__(self, value: str, quote: str) -> None:
        # What is read: the value, the quote broken out of ("" as-is), where the pass started
        # (right after the break-out quote).
        self.value = value
        self.quote = quote
        self.origin = 0
        # Where the parse is: the state, the word a NEED state waits for, the open frames.
        self.st = OPR if quote else START
        self.need = ""
        self.frames: list[Frame] = [Frame(TOP, "where", 0)]
        self.last: Token | None = None
        self.operand_kind = ""  # kind and text of the last complete operand
        self.operand_text = ""
        self.last_fn = ""  # the last name that may be called
        self.must_call = False  # a reserved word that is an operand only when "(" follows
        self.alias_ok = False  # an alias may follow
        self.between = 0  # pending BETWEEN ... AND at the current depth (count)
        self.type_words = 0  # words of the type name being read
        self.closed_first = ""  # the kind of the only operand of the group just closed
        # "x AS alias": the alias token, whether x is SQL-like (a number, a call, a closing
        # parenthesis, a `name`, the break-out itself) and whether x closed the application's "(".
        self.alias_token: Token | None = None
        self.alias_strong = False
        self.alias_closes_app = False
        # The statement whose head is being read (after ";" or at the start of the value):
        # its first word, whether it began the (unquoted) value, and whether arguments
        # follow its name without "(" (EXEC proc 'arg', 2).
        self.stmt_head = ""
        self.stmt_at_start = False
        self.exec_args = False
        # What was seen: features, and the evidence of prose or SQL.
        self.feats: dict[str, int] = {}
        self.after_breakout = bool(quote)  # nothing but ")" read since the break-out
        self.spaced_str = False  # a string with whitespace read after the break-out
        self.nonstr = False  # an operand other than a string literal was read
        self.keywords = 0  # SQL keywords read
        self.odd = 0  # of them, in a case no one types (UnIoN)
        self.glue = -1  # where a "1.e" ended
        self.sqlish = False  # a token prose does not produce was read after the break-out
        self.app_close_end = -1  # where the last ")" closing the application's parenthesis ended
        # How the pass ended.
        self.n = 0  # tokens read
        self.end = 0
        self.fail: Token | None = None
        self.stop = ""  # why the pass ended: end | comment | stmt | fail | cap
        self.open_calls = False  # a call or CASE was open when the pass ended

    def feat(self, name: str, pos: int) -> None:
        if name not in self.feats:
            self.feats[name] = pos

"""SQL injection detection by tokenising a value and parsing it as SQL.

A keyword list flags "select specialty hospital" and misses ``1e0union/**/select``.
This module asks the question an attacker has to answer instead: *read in the
place where the application pastes it, does this value turn into SQL?*

The value is read in several contexts:

- **as-is** (a number or an unquoted fragment: ``WHERE id = <value>``): the whole
  value must parse as SQL, as an expression or the continuation of one
  (``1 OR 1=1``, ``1)) OR ((1=1``, ``-1 UNION SELECT ...``);
- **after a single quote** and **after a double quote** (``WHERE name = '<value>'``):
  the value up to the break-out (the first quote that is not doubled: ``O''Brien``
  stays in the string) is string content, and what follows must parse as SQL; a
  string left open at the end is closed by the application's own quote;
- the same after typographic quotes (``\u2019``, ``\u2032``...) that "best fit"
  code-page conversions turn into ASCII ones.

The tokenizer knows strings, numbers (hex, scientific, ``1e0union``), words,
``@``/``@@`` variables, backtick and bracket names, operators (PostgreSQL's JSON
ones included) and the three comment styles, MySQL's executable ``/*!50000 ...*/``
comments included (their content is SQL). Other comments are whitespace, so
``UNION/**/SELECT`` reads ``UNION SELECT``.

A small parser walks the tokens with a stack of parentheses and stops at the
first token SQL would reject, so prose ("O'Brien", "it's 5 o'clock", "union of
workers") fails within a few tokens. While the tokens stay valid it records what
makes an injection: a condition after ``OR``/``AND`` (a tautology when
unquoted), a comment right after a break-out (``admin'--``), ``UNION SELECT``
with a real column list, stacked statements (``; DROP TABLE``, ``; EXEC
xp_cmdshell``), calls of time/error/file/information functions (``sleep(``,
``extractvalue(``, ``load_file(``), ``@@version``, system catalogues, ``ORDER BY
3`` probes, ``INTO OUTFILE``, ``WAITFOR DELAY``, comments or odd letter case used
as evasion. A verdict needs both: SQL that stays valid (to the end of the value,
to a truncating comment, or through a stacked statement's head) and such a
feature (:func:`_judge`). A last pass looks for the unmistakable features alone
(``UNION SELECT 1,2``, ``sleep(5)``, ``WAITFOR DELAY '0:0:5'``) inside larger
text, such as a payload appended to a URL in a Referer.

:func:`detect_strict` (paranoia 2) also reports SQL fragments that change little
alone. :func:`make_detector` gives the rule variants: path segments, raw bodies.

Cost: each pass reads tokens left to right once, does bounded work per token and
stops at the first invalid one; all passes over a value read at most
:data:`TOTAL_TOKENS` tokens, so the time is linear in the value and bounded
whatever it holds. :func:`detect` never raises (a property test checks it).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from ..body import looks_urlencoded
from .transforms import unescape_html

try:  # RE2 scans for the embedded pass in linear time and far faster than re on long values
    import re2 as _re2
except ImportError:  # pragma: no cover - platforms without a google-re2 wheel
    _re2 = None

__all__ = [
    "MAX_TOKENS",
    "PREFILTER",
    "Token",
    "detect",
    "detect_strict",
    "explain",
    "make_detector",
    "tokenize",
]

Span = tuple[int, int]

#: Tokens one pass reads at most; longer valid SQL is judged on what was read.
MAX_TOKENS = 400
#: Tokens all the passes over one value read together at most (the cost bound).
TOTAL_TOKENS = 1000
#: Parenthesis depth a pass follows; deeper nesting is not SQL anyone sends.
MAX_DEPTH = 40
#: Positions the embedded pass tries at most, and tokens it reads at each.
MAX_ANCHORS = 8
ANCHOR_TOKENS = 48

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


def _tokens(value: str, pos: int, limit: int) -> Iterator[Token]:
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
    return list(_tokens(value, start, MAX_TOKENS))


# --------------------------------------------------------------------------- vocabulary
_LOGIC_WORDS = frozenset({"and", "or", "xor"})
_LOGIC_OPS = frozenset({"||", "&&"})
_CLOSERS = {"[": "]", "{": "}"}
_JSON_OPS = frozenset({"<@", "@>", "?|", "?&", "@?", "@@"})
_CMP_OPS = frozenset(
    {"=", "<>", "!=", "<", ">", "<=", ">=", "<=>", "==", "!<", "!>", "<@", "@>", "?", "?|", "?&", "@?", "@@"}
)  # the last ones: PostgreSQL JSON containment and key tests
_CMP_WORDS = frozenset({"like", "rlike", "regexp", "ilike", "glob", "similar"})
_BIN_OPS = frozenset({"+", "-", "*", "/", "%", "&", "|", "^", "<<", ">>", ":=", "->", "->>"})
_BIN_WORDS = frozenset({"div", "mod", "collate", "escape"})
_UNARY_OPS = frozenset({"-", "+", "~", "!"})
_UNARY_WORDS = frozenset({"not", "binary", "interval", "prior", "distinct", "all", "any", "some"})
_LITERAL_WORDS = frozenset({"null", "true", "false", "unknown", "default"})
# Niladic functions of the standard: operands without parentheses that leak information.
_INFO_WORDS = frozenset(
    {"current_user", "session_user", "system_user", "current_schema", "current_database", "user_name"}
)
_POSTFIX_WORDS = frozenset({"notnull", "isnull"})
# Operand kinds that are literals ("strt": a string MySQL reads as a non-zero number, so true).
_LITS = frozenset({"num", "str", "strt", "lit"})
_TRUTHY = re.compile(r"\s*[+-]?(?:0*[1-9]|0*\.0*[1-9])")
#: Reserved words that are also function names: an operand only when "(" follows.
_CALLABLE_RESERVED = frozenset({"like", "glob", "replace", "insert", "mod", "if", "left", "right", "values"})
_CLAUSE_WORDS = frozenset(
    {"where", "having", "limit", "offset", "from", "order", "group", "procedure", "into"}
)

#: Reserved words prose also uses: "x' and y --" is no evidence, "x' collate y --" is.
_PROSE_KEYWORDS = frozenset({"and", "or", "not", "as", "xor", "to", "of", "for", "with", "on", "by"})

#: Words SQL reserves: never an identifier, so prose that puts one where an operand
#: or an alias belongs stops the parse.
_RESERVED = frozenset(
    {
        "select", "from", "where", "union", "intersect", "except", "order", "group", "by", "having",
        "into", "and", "or", "xor", "not", "is", "in", "like", "rlike", "regexp",
        "between", "case", "when", "then", "else", "end", "as", "on", "join", "values", "set", "div",
        "mod", "exists", "procedure", "outfile", "dumpfile", "waitfor", "insert", "update", "delete",
        "drop", "create", "alter", "truncate", "exec", "execute", "declare", "table", "escape",
        "collate", "asc", "desc", "using", "for", "with", "to", "of", "natural", "inner", "outer",
        "cross", "straight_join", "glob", "ilike", "similar", "shutdown", "grant", "revoke", "use",
        "top", "distinctrow", "rollup", "minus", "returns", "return", "begin", "call",
    }
)  # fmt: skip

#: Type names of a PostgreSQL cast (``x::int``).
_SQL_TYPES = frozenset(
    {"int", "integer", "int2", "int4", "int8", "smallint", "bigint", "numeric", "decimal", "real",
     "float", "float4", "float8", "double", "text", "varchar", "char", "character", "bool", "boolean",
     "json", "jsonb", "xml", "bytea", "date", "timestamp", "time", "interval", "uuid", "inet", "oid",
     "regclass", "name", "money", "bit", "varbit", "tsvector", "record"}
)  # fmt: skip

#: Words that end an expression or a clause: never an alias after AS.
_STRUCTURAL = frozenset(
    {"select", "from", "where", "union", "group", "order", "having", "and", "or", "xor", "not", "on",
     "join", "into", "when", "then", "else", "end", "as", "by", "is", "in", "like", "between"}
)  # fmt: skip

#: Statement heads after ``;`` (or where MSSQL lets a statement follow without one),
#: with the words that must come next for the head to be a statement and not prose.
_STMT_NEXT: dict[str, frozenset[str] | None] = {
    "insert": frozenset({"into", "ignore", "low_priority", "delayed", "high_priority"}),
    "replace": None,  # [INTO] name
    "delete": frozenset({"from"}),
    "drop": frozenset(
        {"table", "database", "schema", "function", "procedure", "view", "user", "index", "trigger",
         "login", "temporary", "if", "event", "sequence", "role"}
    ),
    "create": frozenset(
        {"table", "database", "schema", "function", "procedure", "view", "user", "index", "trigger",
         "login", "or", "temporary", "definer", "event", "role", "sequence", "unique", "aggregate"}
    ),
    "alter": frozenset({"table", "database", "user", "login", "view", "procedure", "function", "system",
                        "session", "role", "schema"}),
    "truncate": None,  # [TABLE] name
    "rename": frozenset({"table", "user"}),
    "grant": None,
    "revoke": None,
    "shutdown": None,
    "waitfor": frozenset({"delay", "time"}),
    "declare": None,  # a variable must follow
    "set": None,  # a variable or a name, then =
    "exec": None,
    "execute": None,
    "call": None,  # a procedure call
    "copy": None,
    "backup": frozenset({"database", "log"}),
    "restore": frozenset({"database", "log"}),
    "load": frozenset({"data", "xml"}),
    "prepare": None,
    "deallocate": frozenset({"prepare"}),
    "show": frozenset({"tables", "databases", "columns", "grants", "variables", "processlist", "status",
                       "schemas", "full", "create", "global", "session"}),
    "lock": frozenset({"tables", "table"}),
    "unlock": frozenset({"tables"}),
    "attach": frozenset({"database"}),
    "begin": None,
    "if": None,
    "update": None,  # a table, then SET
    "select": None,
    "kill": None,
    "dbcc": None,
    "handler": None,
    "do": None,
    "use": None,
}  # fmt: skip
#: Every keyword (for the odd-case evasion check and the prose check after a break-out).
_KEYWORDS = _RESERVED | frozenset(_STMT_NEXT) | _LITERAL_WORDS | _POSTFIX_WORDS | _CMP_WORDS

#: Statement words that also start prose or a plain value ("Set up", "Shutdown at 5"): no
#: statement head when they begin an unquoted value.
_NOT_AT_START = frozenset({"if", "do", "use", "begin", "set", "call", "kill", "handler", "shutdown"})

#: Statements MSSQL accepts without a ``;`` in front (``1' WAITFOR DELAY '0:0:5'``).
_IMPLICIT_STMT = frozenset({"waitfor", "exec", "execute", "declare", "shutdown", "dbcc"})

#: Functions (and a few other names) only SQL has: string building, information about
#: the server, time delays, error-based extraction, file and network access.
_FN_SQL = frozenset(
    {
        "sleep", "benchmark", "pg_sleep", "pg_sleep_for", "pg_sleep_until", "randomblob", "extractvalue",
        "updatexml", "xmltype", "load_file", "load_extension", "version", "database", "schema", "user",
        "current_user", "system_user", "session_user", "db_name", "user_name", "suser_name", "suser_sname",
        "host_name", "is_srvrolemember", "connection_id", "last_insert_id", "sqlite_version",
        "pg_read_file", "pg_ls_dir", "pg_read_binary_file", "lo_import", "lo_export", "lo_get", "lo_put",
        "sys_eval", "sys_exec", "dblink", "openrowset", "opendatasource", "openquery", "xp_cmdshell",
        "xp_dirtree", "xp_regread", "xp_fileexist", "receive_message", "get_host_address",
        "get_host_name", "drithsx", "name_const", "geometrycollection", "multipoint", "multilinestring",
        "multipolygon", "linestring", "gtid_subset", "json_keys", "make_set", "elt",
        "sqlite_compileoption_used",
        "sqlite_compileoption_get", "regexp_substring", "crypt_key", "generate_series", "utl_http",
        "utl_inaddr", "dbms_pipe", "dbms_lock", "user_lock", "current_database", "schema_name",
        "group_concat", "concat_ws", "unhex", "sysdate", "ifnull", "nvl", "iif", "ascii", "substring",
        "substr", "concat", "char", "chr", "nchar", "hex", "mid", "ord", "coalesce", "cast", "convert",
        "string_agg", "listagg", "xmlagg", "json_extract", "json_build_object", "jsonb_pretty",
        "to_base64", "from_base64", "md5", "sha1", "sha2", "compress", "uncompress", "lpad", "rpad",
        "instr", "locate", "strcmp", "unistr", "starts_with", "overlay", "pg_catalog", "exp", "floor",
        "current_setting", "inet_server_addr", "pg_postmaster_start_time", "banner", "dbms_utility",
        "sqlid_to_sqlhash", "dbms_xmlgen", "getxml", "ctxsys", "ordsys", "bitand", "rownum",
    }
)  # fmt: skip
#: Calls that are an injection wherever they parse: delays and error-based extraction.
_FN_ATTACK = frozenset(
    {"sleep", "benchmark", "pg_sleep", "extractvalue", "updatexml", "load_file", "randomblob"}
)
#: Calls a value may be made of alone (``sleep(5)``, ``database()``, ``concat(0x7e,``)
#: rather than a call inside an injected condition.
_FN_ALONE = frozenset(
    {
        "sleep", "benchmark", "pg_sleep", "pg_sleep_for", "pg_sleep_until", "randomblob", "extractvalue",
        "updatexml", "xmltype", "load_file", "load_extension", "db_name", "suser_name", "suser_sname",
        "is_srvrolemember", "sqlite_version", "pg_read_file", "pg_ls_dir", "pg_read_binary_file",
        "lo_import", "lo_export", "lo_get", "lo_put", "sys_eval", "sys_exec", "dblink", "openrowset",
        "opendatasource", "openquery", "xp_cmdshell", "xp_dirtree", "xp_regread", "xp_fileexist",
        "receive_message", "get_host_address", "get_host_name", "drithsx", "name_const",
        "geometrycollection", "multipoint", "multilinestring", "multipolygon", "gtid_subset",
        "make_set", "sqlite_compileoption_used", "sqlite_compileoption_get", "regexp_substring",
        "current_database", "schema_name", "group_concat", "concat_ws", "unhex", "sysdate", "ifnull",
        "string_agg", "json_build_object", "jsonb_pretty", "unistr", "database", "version", "find_in_set",
        "current_user", "system_user", "session_user", "user_name", "connection_id", "coalesce", "user",
        "compress", "uncompress", "concat", "md5", "strcmp", "substr", "substring", "xmlelement",
        "current_setting", "utl_http", "utl_inaddr", "dbms_pipe", "dbms_lock",
    }
)  # fmt: skip
#: SQL functions named like English words: a call of one on a lone bare name is prose.
_WORD_FNS = frozenset(
    {"sleep", "user", "database", "version", "schema", "compress", "uncompress", "concat", "coalesce",
     "substring", "substr", "char", "ascii", "mid", "hex", "floor", "exp", "cast", "convert", "instr",
     "locate", "overlay", "banner", "nchar", "ord", "elt", "benchmark", "trim", "left", "right", "if"}
)  # fmt: skip

#: Names of system catalogues and objects (as a whole name or one part of a dotted one).
_SYSOBJ = frozenset(
    {
        "information_schema", "sysobjects", "syscolumns", "sysusers", "sysdatabases", "systables",
        "syslogins", "sysprocesses", "all_tables", "all_tab_columns", "all_users", "user_tables",
        "user_tab_columns", "dba_users", "dba_tables", "dba_role_privs", "pg_catalog", "pg_shadow",
        "pg_user", "pg_group", "pg_database", "pg_tables", "pg_authid", "pg_roles", "msysobjects",
        "msysaccessobjects", "msysqueries", "sqlite_master", "sqlite_schema", "sqlite_temp_master",
        "sysibm", "syscat", "rdb$fields", "rdb$types", "rdb$collations", "rdb$functions",
        "rdb$relations", "rdb$database", "v$instance", "v$version", "v$database", "user$", "mysql",
        "master", "tempdb", "msdb", "dual", "sysmaster", "domain",
    }
)  # fmt: skip
#: Server procedures and packages an injection calls (MSSQL, Oracle): never ordinary values.
_SYSPROC = frozenset(
    {"xp_cmdshell", "xp_dirtree", "xp_regread", "xp_regwrite", "xp_fileexist", "xp_subdirs",
     "xp_servicecontrol", "xp_availablemedia", "xp_terminate_process", "xp_loginconfig",
     "xp_ntsec_enumdomains", "xp_regdeletekey", "xp_makecab", "sp_executesql", "sp_oacreate",
     "sp_oamethod", "sp_password", "sp_addlogin", "sp_addsrvrolemember", "sp_configure",
     "sp_makewebtask", "sp_adduser", "sp_addextendedproc", "openrowset", "opendatasource",
     "utl_http", "utl_inaddr", "utl_file", "dbms_pipe", "dbms_lock", "dbms_java", "msdasql"}
)  # fmt: skip

#: Catalogue names specific enough to be an injection as the whole value.
_SYSOBJ_ALONE = frozenset(
    {"information_schema", "sysobjects", "syscolumns", "pg_catalog", "pg_shadow", "msysobjects",
     "msysaccessobjects", "sqlite_master", "all_tab_columns", "sysdatabases", "tempdb", "msdb",
     "schema_name", "pg_authid", "sysusers", "mysql.user", "mysql.db", "sys.user$", "sys.objects",
     "master.dbo", "sys.sql_logins", "sys.databases"}
)  # fmt: skip


# --------------------------------------------------------------------------- prefilter
def _alternation(words: frozenset[str] | set[str]) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


#: Keywords the odd-case check counts (UnIoN SeLeCt): the ones PREFILTER looks for.
_PREFILTER_WORDS = frozenset({"union", "select", "having", "waitfor", "order", "group", "case"})

#: RE2 pattern every value :func:`detect` reports matches (a property test checks
#: it), so that most benign values never reach the tokenizer: a quote, a comparison,
#: a comment opener, a cast, ``@@``, ``||``, a ``;`` a statement can follow, a call
#: of an SQL function, or one of the few keywords an injection can rest on alone
#: (``1 union select 1``, ``1 order by 3``, ``tempdb``). :func:`detect_strict` is not
#: covered: its rule carries a broader prefilter of its own.
PREFILTER = (
    # Quotes, comparisons, comments, casts, @@variables, pipes: most injections have one.
    # (typographic quotes too: see _BEST_FIT).
    "(?i)['\"`#=<>\u2018\u2019\u02bc\u00b4\uff07\u2032\u201c\u201d\uff02\u2033]"
    r"|--|/\*|::|@@|@\?|\?[|&]|\|\||&&|"
    # ";" only where a statement can start after it, or at the very end: not "; Win64".
    r";[\s+]*(?:$|[;(]|(?:" + _alternation(frozenset(_STMT_NEXT) | _FN_SQL) + r")\b)|"
    # Calls that are injections alone, and MySQL's 1.e( glue.
    r"\b(?:" + _alternation(_FN_ALONE | _FN_SQL) + r")[\s+]*\(|\d\.e\b|"
    # Keywords that make an injection without any of the characters above.
    # ("[\s+]": a raw form body spells spaces "+").
    r"\b(?:exec(?:ute)?[\s+]*[(@]|exec(?:ute)?[\s+]+(?:xp|sp)_|declare[\s+]+@|"
    r"(?:r?like|regexp|glob)[\s+]*[-+.\d(]|analy[sz]e[\s+]*\()|"
    # "AND 1 BETWEEN 0 AND 2": a comparison spelled without "=" (sqlmap's between tamper).
    r"\b(?:and|or|xor)[\s+]+(?:not[\s+]+)?[-+]?\d+[\s+]+between[\s+]|"
    r"\b(?:union|select|having|waitfor|(?:order|group)[\s+]+by|case(?:[\s+]+\S+)?[\s+]+when|"
    r"into[\s+]+(?:out|dump)file|procedure[\s+]+analy[sz]e|execute[\s+]+immediate|exec[\s+]+master|"
    # ") AS total FROM": a select-list tail (the alias is one token).
    r"as[\s+]+[^\s+]{1,128}[\s+]+from|" + _alternation(_SYSOBJ_ALONE | _SYSPROC) + r")\b"
)

# --------------------------------------------------------------------------- parser
# Parser states: what the next token may be.
_OPD = 0  # an operand
_OPR = 1  # an operator or a clause, after an operand
_START = 2  # an operand or a continuation (start of an unquoted value)
_NEED = 3  # a particular word or token (see ``need``)
_DOT = 4  # a name part after "."
_TYPE = 5  # a type name after AS in CAST or after ::
_STMT = 6  # a statement (after ";")

# Frame kinds.
_TOP = "top"
_GROUP = "("  # a parenthesised expression or list
_FUNC = "f"  # function arguments
_SUBQ = "q"  # a sub-query
_CASE = "c"  # CASE ... END


class _Frame:
    __slots__ = ("clause", "cmp_left", "first", "fn", "kind", "logic", "ops", "select", "start")

    def __init__(self, kind: str, clause: str, start: int, fn: str = "") -> None:
        self.kind = kind
        self.clause = clause  # where | select | from | order | limit | args | into | set
        self.start = start
        self.fn = fn  # the function's name for a call frame
        self.select: _Select | None = None
        # A comparison waiting for its right operand: the left operand's kind and text.
        self.cmp_left: tuple[str, str] | None = None
        # The boolean term opened by the last OR/AND at this level (see _Logic).
        self.logic: _Logic | None = None
        self.ops = 0  # operands read at this level
        self.first = ""  # the kind of the first one ("(1)" is a literal too)


class _Select:
    """One SELECT: where it came from and whether its column list is more than prose."""

    __slots__ = ("origin", "real", "start")

    def __init__(self, origin: str, start: int) -> None:
        self.origin = origin  # union | stack | start | sub
        self.start = start
        self.real = False  # a literal, call, variable, *, sub-query, or FROM seen


class _Logic:
    """What follows an OR/AND: the condition an injection adds."""

    __slots__ = ("cmp", "fn", "litcmp", "lits", "lone_literal", "operands", "start", "sub")

    def __init__(self, start: int) -> None:
        self.start = start
        self.cmp = False
        self.litcmp = False
        self.fn = False
        self.sub = False
        self.operands = 0
        self.lits = 0
        self.lone_literal = False


class _Parse:
    """One pass over the tokens of one context; ``feats`` maps a feature to its first position."""

    __slots__ = (
        "after_breakout",
        "alias_ok",
        "alias_tok",
        "app_close_end",
        "as_close",
        "as_strong",
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
        "last_operand",
        "must_call",
        "n",
        "need",
        "nonstr",
        "odd",
        "open_calls",
        "origin",
        "quote",
        "spaced_str",
        "sqlish",
        "st",
        "stmt",
        "stmt_start",
        "stop",
        "type_words",
        "value",
    )

    def __init__(self, value: str, quote: str) -> None:
        self.value = value
        self.quote = quote
        self.st = _OPR if quote else _START
        self.need = ""
        self.frames: list[_Frame] = [_Frame(_TOP, "where", 0)]
        self.feats: dict[str, int] = {}
        self.alias_ok = False
        self.between = 0  # pending BETWEEN ... AND at the current depth (count)
        self.last: Token | None = None
        self.last_operand = ("", "")  # kind, text of the last complete operand
        self.last_fn = ""
        self.type_words = 0
        self.must_call = False
        self.spaced_str = False  # a string with whitespace read after the break-out
        self.closed_first = ""
        self.nonstr = False  # an operand other than a string literal was read
        self.after_breakout = bool(quote)  # nothing but ")" read since the break-out
        self.n = 0
        self.end = 0
        self.fail: Token | None = None
        self.stop = ""  # why the pass ended: end | comment | stmt | fail | cap
        self.stmt = ""  # the statement whose head is being read
        self.stmt_start = False  # that statement began the (unquoted) value
        self.exec_args = False  # EXEC proc 'arg', 2: arguments follow the name without "("
        self.keywords = 0  # SQL keywords read
        self.odd = 0  # of them, in a case no one types (UnIoN)
        self.glue = -1  # where a "1.e" ended
        self.open_calls = False  # a call or CASE was open when the pass ended
        self.origin = 0  # where the pass started (right after the break-out quote)
        self.sqlish = False  # a token prose does not produce was read after the break-out
        self.app_close_end = -1  # where the last ")" closing the application's parenthesis ended
        # "x AS alias": the alias token, whether x is SQL-like (a number, a call, a closing
        # parenthesis, a `name`, the break-out itself) and whether x closed the application's "(".
        self.alias_tok: Token | None = None
        self.as_strong = False
        self.as_close = False

    # ------------------------------------------------------------------ helpers
    def feat(self, name: str, pos: int) -> None:
        if name not in self.feats:
            self.feats[name] = pos

    def operand_done(self, kind: str, text: str, tok: Token) -> None:
        """An operand is complete at the current level."""
        fr = self.frames[-1]
        if fr.cmp_left is not None:
            lk, lt = fr.cmp_left
            fr.cmp_left = None
            if (lk in _LITS and kind in _LITS) or (lk == kind == "ident" and lt == text):
                self.feat("litcmp", tok.start)
                self._logic_mark("litcmp")
        fr.ops += 1
        if fr.ops == 1:
            fr.first = kind
        if kind != "str" and kind != "strt":
            self.nonstr = True
        lg = fr.logic
        if lg is not None:
            lg.operands += 1
            if kind in _LITS:
                lg.lits += 1
            lg.lone_literal = lg.operands == 1 and kind in ("num", "lit", "strt")
        self.last_operand = (kind, text)
        self.st = _OPR
        self.alias_ok = fr.clause in ("select", "from") or kind == "sub"
        self.after_breakout = False

    def _logic_mark(self, what: str) -> None:
        for fr in self.frames:
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

    def close_logic(self, fr: _Frame) -> None:
        lg = fr.logic
        if lg is None:
            return
        fr.logic = None
        if lg.litcmp:
            self.feat("bool_taut", lg.start)
        if lg.sub:
            self.feat("bool_sub", lg.start)
        if lg.fn:
            self.feat("bool_fn", lg.start)
        if lg.cmp:
            self.feat("bool_cmp", lg.start)
        elif lg.operands == 1 and lg.lone_literal:
            self.feat("bool_lit", lg.start)
        elif lg.operands >= 2 and lg.lits == lg.operands:
            self.feat("bool_arith", lg.start)  # ' or ''-'  (arithmetic on literals)

    def begin_select(self, origin: str, tok: Token) -> None:
        fr = self.frames[-1]
        if origin in ("union", "stack"):
            self.feat(origin + "_any", tok.start)
        fr.select = _Select(origin, tok.start)
        fr.clause = "select"
        self.st = _OPD
        self.after_breakout = False

    def select_real(self) -> None:
        sel = self.frames[-1].select
        if sel is not None:
            sel.real = True

    def end_select(self, fr: _Frame) -> None:
        sel = fr.select
        if sel is None:
            return
        fr.select = None
        if sel.real:
            name = {"union": "union", "stack": "stack", "sub": "subq"}.get(sel.origin, "select")
            self.feat(name, sel.start)

    def fn_call(self, name: str, pos: int, args: _Frame) -> None:
        self.feat("fn_any", pos)
        if name in _WORD_FNS and args.ops == 1 and args.first == "ident":
            # "user (admin)", "sleep (well)": a word and a parenthesis, not a call anyone sends.
            self._logic_mark("fn")
            return
        if name in _FN_SQL:
            self.feat("fn_sql", pos)
        if name in _FN_ALONE:
            self.feat("fn_alone", pos)
        if name in _FN_ATTACK:
            self.feat("fn_strong", pos)
        self._logic_mark("fn")
        self.select_real()

    def word_info(self, word: str, tok: Token) -> None:
        if "_" in word and word in _FN_SQL:
            self.feat("fn_named", tok.start)  # SELECT pg_sleep
            self.select_real()
        if word in _SYSOBJ:
            self.feat("sysobj", tok.start)
        if word in _SYSOBJ_ALONE:
            self.feat("sysobj_alone", tok.start)
        if word in _SYSPROC:
            self.feat("sysproc", tok.start)

    # ------------------------------------------------------------------ driver
    def run(self, tokens: Iterator[Token], limit: int) -> None:
        for tok in tokens:
            self.n += 1
            last = self.last
            if (
                tok.kind == STR
                and last is not None
                and last.kind == STR
                and last.end == tok.start
                and last.closed
                and tok.text[0] == last.text[-1]
            ):
                # 'O''Brien': the doubled quote escapes, the string goes on.
                last.end, last.closed = tok.end, tok.closed
                self.end = tok.end
                continue
            if tok.kind == COMMENT:
                if not self.comment(tok):
                    return
                continue
            if tok.kind == NUM and tok.text[-2:].lower() == ".e":
                # MySQL reads "1.e" glued before "(", "," or a name as nothing: an evasion
                # ("1.e(ascii", "1.e,1"). "Question 1.e" ends there and is just skipped.
                self.glue = tok.end
                continue
            if self.glue == tok.start and (tok.kind == WORD or tok.text in ("(", ",")):
                self.feat("sci_glue", tok.start)
            if tok.kind == WORD and tok.text in _KEYWORDS:
                self.keywords += 1
                word = self.value[tok.start : tok.end]
                if tok.text in _PREFILTER_WORDS and not (word.islower() or word.isupper() or word.istitle()):
                    self.odd += 1
                    self.feat("oddcase", tok.start)  # UnIoN SeLeCt: case games are evasion
            if self.quote and not self.sqlish and (tok.kind != WORD or tok.text in _KEYWORDS):
                self.sqlish = tok.kind != WORD or tok.text not in _PROSE_KEYWORDS
            if self.st == _OPD:
                ok = self.operand(tok)
            elif self.st == _OPR:
                ok = self.operator(tok)
            elif self.st == _START:
                ok = self.start(tok)
            elif self.st == _NEED:
                ok = self.needed(tok)
            elif self.st == _DOT:
                ok = self.dotted(tok)
            elif self.st == _TYPE:
                ok = self.typename(tok)
            else:
                ok = self.statement(tok)
            if not ok:
                if tok.kind == OTHER and tok.end >= len(self.value.rstrip()):
                    break  # one stray character at the very end: ' or 1=1 \u2013 (a mangled --)
                self.fail = tok
                self.stop = "fail"
                return
            if self.stop:
                return
            self.last = tok
            self.end = tok.end
        self.stop = "cap" if self.n >= limit else "end"
        self.finish()

    def finish(self, closing: bool = True) -> None:
        """End of the pass: judge what is still open. ``closing``: the value ended (rather
        than failed), so the application closes its open calls and parentheses."""
        frames = self.frames
        self.open_calls = any(f.kind in (_FUNC, _CASE) for f in frames)
        last = self.last
        if closing and self.st == _OPD and last is not None:
            # AND 7639=(  OR 120=121=  : a condition cut where its right operand begins.
            at_operator = last.kind == OP and last.text in _CMP_OPS and frames[-1].cmp_left is not None
            at_paren = (
                last.text == "("
                and len(frames) > 1
                and frames[-1].kind == _GROUP
                and frames[-1].start == last.start
                and frames[-2].cmp_left is not None
            )
            if at_operator or at_paren:
                self.feat("cmp_cut", last.start)
        sel = frames[-1].select
        cut_after_select = last is not None and last.text == "select" and self.st == _OPD
        if closing and cut_after_select and sel is not None and sel.origin in ("union", "stack"):
            # ' UNION SELECT  (the columns cut off)
            self.feat("union_bare" if sel.origin == "union" else "stack_bare", sel.start)
        # The application closes what the value leaves open: ') or (('x'))=(('x' compares literals.
        for i in range(len(frames) - 1, 0, -1):
            fr, parent = frames[i], frames[i - 1]
            if fr.kind != _GROUP or fr.ops != 1 or fr.first not in _LITS:
                break
            if parent.cmp_left is not None and parent.cmp_left[0] in _LITS:
                self.feat("litcmp", fr.start)
                for f in frames[:i]:
                    if f.logic is not None:
                        f.logic.litcmp = True
                break
        while len(frames) > 1:
            fr = frames.pop()
            self.close_logic(fr)
            self.end_select(fr)
            if fr.kind == _FUNC and closing:
                self.fn_call(fr.fn, fr.start, fr)  # "benchmark(", "load_file(": the application closes it
            elif fr.kind == _SUBQ and closing:
                self._logic_mark("sub")
                self.select_real()
        self.close_logic(frames[0])
        self.end_select(frames[0])

    def complete(self) -> bool:
        """The pass ended on something SQL accepts (or a truncating comment)."""
        if self.stop == "stmt":
            return True
        if self.stop not in ("end", "comment", "cap"):
            return False
        if self.st == _OPD and self.last is not None:
            if "cmp_cut" in self.feats:
                return True
            # A value that stops inside a call ("concat(0x7e,") or right after UNION SELECT:
            # the fragment of an injection whose rest the attacker did not need to send.
            if self.last.text in ("(", ",", "case") and self.open_calls:
                return True
            if self.last.text in _CLAUSE_WORDS or self.last.text == "by":
                return True  # FROM information_schema.tables LIMIT  (cut at a clause)
            if "union_bare" in self.feats or "stack_bare" in self.feats:
                return True
        if self.st == _DOT:
            return True  # FROM information_schema.  (a name cut off after its schema)
        return self.st in (_OPR, _START) or (self.st == _STMT and self.stop != "cap")

    # ------------------------------------------------------------------ comments
    def comment(self, tok: Token) -> bool:
        if tok.text == "/*!":
            self.feat("inline_comment", tok.start)
            return True
        line = tok.text != "/*"
        if not line and tok.closed:
            # An inline comment is whitespace to SQL, and a tell: prose has none between words.
            if self.n > 1:
                self.feat("inline_comment", tok.start)
            return True
        if self.after_breakout:
            self.feat("trunc", tok.start)
        elif self.st == _STMT and self.quote:
            self.feat("trunc", tok.start)  # x'; --
        if line and self.value[tok.end : tok.end + 1] == "\n" and self.value[tok.end + 1 :].strip():
            return True  # the comment ends at the newline and SQL goes on: UNION#\nSELECT
        if self.st in (_OPR, _START, _STMT):
            self.feat("comment_end", tok.start)
            if self.quote and self.sqlish:
                self.feat("sql_comment", tok.start)  # user'collate nocase--
            self.stop = "comment"
            self.end = tok.end
            self.finish()
            return False
        # A comment where an operand is missing: the expression is incomplete.
        self.stop = "fail"
        self.fail = tok
        return False

    # ------------------------------------------------------------------ states
    def start(self, tok: Token) -> bool:
        """Start of an unquoted value: an operand, a statement, or a continuation."""
        k, t = tok.kind, tok.text
        if k == WORD:
            if t == "select":
                self.begin_select("start", tok)
                return True
            if t in _STMT_NEXT and t not in _NOT_AT_START:
                self.feat("stmt_start", tok.start)
                self.stmt_start = True
                return self.statement(tok)
            if t in _LOGIC_WORDS:
                self.feat("logic_start", tok.start)  # AND x=1: the continuation of a condition
                return self.operator(tok)
            if t in ("union", "intersect", "except") or t in _CLAUSE_WORDS:
                return self.operator(tok)
            if t in ("not", "like", "rlike", "regexp", "is", "in", "between", "as", "div", "mod"):
                return self.operator(tok) if t != "not" else self.operand(tok)
        elif (k == PUNCT and t in ");,") or (k == OP and t in _LOGIC_OPS) or (k == OP and t in _CMP_OPS):
            if k == OP and t in _LOGIC_OPS:
                self.feat("logic_start", tok.start)
            return self.operator(tok)
        return self.operand(tok)

    def operand(self, tok: Token) -> bool:
        k, t = tok.kind, tok.text
        fr = self.frames[-1]
        if len(self.frames) > MAX_DEPTH:
            return False
        if k == NUM:
            if len(t) > 6 and t[1:2] in ("x", "X"):
                self.feat("hex", tok.start)  # 0x7162766a71: strings smuggled as numbers
            self.select_real()
            if fr.clause == "order":
                self.feat("order_n", tok.start)
            self.operand_done("num", t, tok)
            return True
        if k == STR:
            if not tok.closed and self.quote and t[0] != self.quote and t[:1] not in "xXbBnNeE_":
                return False  # would swallow the application's closing quote
            if not tok.closed and len(t) == 1 and fr.cmp_left is not None:
                self.feat("cmp_cut", tok.start)  # AND name = '  (the application's quote follows)
            self.select_real()
            body = t[t.index(t[-1] if tok.closed else t[0]) + 1 :] if t[0] in "'\"" else t
            if self.quote and any(c.isspace() for c in body):
                self.spaced_str = True
            self.operand_done("strt" if _TRUTHY.match(body) else "str", t, tok)
            return True
        if k == VAR:
            if t.startswith("@@"):
                self.feat("var", tok.start)
            self.select_real()
            self.operand_done("var", t, tok)
            return True
        if k == NAME:
            name = t.strip("`[]").lower()
            self.word_info(name, tok)
            self.operand_done("ident", name, tok)
            return True
        if k == WORD:
            return self.operand_word(tok)
        if k == PUNCT:
            if t == "(":
                self.frames.append(_Frame(_GROUP, "where" if fr.clause != "from" else "from", tok.start))
                self.st = _OPD
                self.after_breakout = False
                return True
            if t == ")" and self.last is not None and self.last.text == "(" and fr.kind == _FUNC:
                return self.close_paren(tok)  # version()
            if t == "{":  # {if expr}, {fn expr}: MySQL and ODBC escapes around an expression
                self.frames.append(_Frame(_GROUP, "where", tok.start, "{"))
                self.st, self.need = _NEED, "escape"
                return True
            return False
        if k == OP:
            if t in _UNARY_OPS:
                return True
            if t == "*" and (fr.clause == "select" or fr.kind == _FUNC):
                self.select_real()
                self.operand_done("star", t, tok)
                return True
        return False

    def operand_word(self, tok: Token) -> bool:
        t = tok.text
        fr = self.frames[-1]
        if t in _LITERAL_WORDS:
            self.select_real()
            self.operand_done("lit", t, tok)
            return True
        if t in _INFO_WORDS:
            self.feat("info", tok.start)
            self.select_real()
            self.operand_done("ident", t, tok)
            self.last_fn = t
            return True
        if t == "select":
            last = self.last
            if last is not None and last.text == "(" and fr.kind == _GROUP:
                fr.kind = _SUBQ
                self.begin_select("sub", tok)
                return True
            return False
        if (
            t == "top"
            and fr.clause == "select"
            and self.last is not None
            and self.last.text in ("select", "distinct")
        ):
            self.st, self.need = _NEED, "top"  # MS-SQL SELECT TOP 1 ...: a count, then the select list
            return True
        if t in _UNARY_WORDS:
            if t in ("distinct", "all", "any", "some") and not (fr.kind == _FUNC or fr.clause == "select"):
                return t in ("all", "any", "some") and fr.cmp_left is not None
            return True
        if t == "exists":
            self.st = _NEED
            self.need = "("
            return True
        if t == "case":
            self.select_real()
            self.frames.append(_Frame(_CASE, "where", tok.start))
            self.st = _OPD
            return True
        if t == "when" and fr.kind == _CASE and self.last is not None and self.last.text == "case":
            return True  # CASE WHEN cond THEN ...
        if t in _CALLABLE_RESERVED:
            # LIKE('a', b), IF(c, x, y), REPLACE(...): reserved words that are also functions.
            self.operand_done("ident", t, tok)
            self.must_call = True
            return True
        if t in _RESERVED:
            return False  # a reserved word where an operand belongs: prose, not SQL
        self.word_info(t, tok)
        self.operand_done("ident", t, tok)
        self.last_fn = t
        return True

    def operator(self, tok: Token) -> bool:
        k, t = tok.kind, tok.text
        fr = self.frames[-1]
        last = self.last
        if self.exec_args and len(self.frames) == 1 and t != ".":
            self.exec_args = False
            if k in (STR, NUM, VAR):
                return self.operand(tok)
        if self.must_call:
            self.must_call = False
            if t != "(":
                return False
        if len(self.frames) > MAX_DEPTH:
            return False
        if k == PUNCT:
            if t in (")", "]", "}"):
                closer = _CLOSERS.get(fr.fn, ")") if fr.kind == _GROUP else ")"
                if t != closer:
                    return False  # "(]" is not SQL; ")" alone closes the application's "("
                return self.close_paren(tok)
            if t == "[":  # a[1], ARRAY['a','b']
                self.frames.append(_Frame(_GROUP, "where", tok.start, "["))
                self.st = _OPD
                return True
            if t == ",":
                if fr.kind == _CASE:
                    return False
                self.close_logic(fr)
                self.st = _OPD
                return True
            if t == ";":
                self.feat("semicolon", tok.start)
                for f in reversed(self.frames):
                    self.close_logic(f)
                    self.end_select(f)
                del self.frames[1:]
                self.frames[0].clause = "where"
                self.st = _STMT
                return True
            if t == "(":
                # A call: a name directly before the parenthesis.
                if last is not None and last.kind in (WORD, NAME) and self.last_operand[0] == "ident":
                    name = self.last_operand[1]
                    if self.last_fn == "procedure" and name in ("analyse", "analyze"):
                        self.feat("procedure", last.start)  # PROCEDURE ANALYSE(: MySQL error-based
                    self.frames.append(_Frame(_FUNC, "args", last.start, name))
                    self.st = _OPD
                    return True
                # "1 (select ...)", "') (select ...)": a sub-query right after an operand.
                self.frames.append(_Frame(_GROUP, "where", tok.start))
                self.st, self.need = _NEED, "subselect"
                return True
            if t == ".":
                if self.last_operand[0] in ("ident", "var") or (last is not None and last.text == "."):
                    self.st = _DOT
                    return True
                return False
            return False
        if k == OP:
            if t in _LOGIC_OPS:
                return self.logic(tok)
            if t in _CMP_OPS:
                if self.after_breakout:
                    self.feat("cmp_first", tok.start)
                if t in _JSON_OPS:
                    self.feat("json_op", tok.start)
                self.compare(tok)
                return True
            if t == "::":
                self.st = _TYPE
                self.type_words = 0
                return True
            if t in _BIN_OPS:
                if self.after_breakout:
                    self.feat("op_first", tok.start)
                self.st = _OPD
                self.after_breakout = False
                return True
            return False
        if k == WORD:
            return self.operator_word(tok)
        if k == NAME and self.alias_ok:
            self.alias_ok = False
            return True
        return False

    def operator_word(self, tok: Token) -> bool:
        t = tok.text
        fr = self.frames[-1]
        if t in _LOGIC_WORDS:
            if t == "and" and self.between:
                self.between -= 1
                self.st = _OPD
                return True
            return self.logic(tok)
        if t in _CMP_WORDS:
            self.compare(tok)
            return True
        if t == "sounds":
            self.st, self.need = _NEED, "like"
            return True
        if t == "is":
            self.st, self.need = _NEED, "is"
            self.compare_done(tok)
            return True
        if t in _POSTFIX_WORDS:
            self.compare_done(tok)
            return True
        if t == "in":
            self.st, self.need = _NEED, "in"
            self.compare_done(tok)
            return True
        if t == "between":
            # x BETWEEN a AND b compares x with a (then b): literals on both sides are a
            # tautology or a contradiction like x=a (sqlmap's "between" tamper writes 1=1 so).
            self.between += 1
            self.compare(tok)
            return True
        if t == "not":
            self.st, self.need = _NEED, "not"
            return True
        if t in _BIN_WORDS:
            self.st = _OPD
            return True
        if t == "as":
            if fr.kind == _FUNC:
                self.st, self.type_words = _TYPE, 0
            else:
                self.st, self.need = _NEED, "alias"
                last = self.last
                self.as_close = last is not None and last.end == self.app_close_end
                self.as_strong = (
                    self.after_breakout
                    or self.as_close
                    or self.last_operand[0] in ("num", "fn")
                    or (last is not None and last.kind == NAME)
                )
            return True
        if t in ("union", "intersect", "except", "minus"):
            if fr.kind not in (_TOP, _GROUP, _SUBQ):
                return False
            self.close_logic(fr)
            self.end_select(fr)
            self.st, self.need = _NEED, "union"
            self.after_breakout = False
            return True
        if t in ("order", "group"):
            self.clause_word(tok)
            self.st, self.need = _NEED, "by"
            return True
        if t in ("where", "having"):
            self.clause_word(tok)
            fr.clause = "where"
            self.st = _OPD
            return True
        if t in ("limit", "offset"):
            self.clause_word(tok)
            fr.clause = "limit"
            self.st = _OPD
            return True
        if t == "from":
            if fr.kind == _FUNC:  # SUBSTRING(x FROM 2), TRIM(' ' FROM x)
                self.st = _OPD
                return True
            if fr.select is None and not (self.quote or len(self.frames) == 1):
                return False
            if fr.select is not None:
                fr.select.real = True
            self.select_tail(tok)
            self.clause_word(tok)
            fr.clause = "from"
            self.st = _OPD
            return True
        if t in ("for", "using", "placing", "separator") and fr.kind == _FUNC:
            self.st = _OPD
            return True
        if t == "into":
            self.clause_word(tok)
            self.st, self.need = _NEED, "into"
            return True
        if t == "procedure":
            self.clause_word(tok)
            self.st, self.need = _NEED, "name"
            return True
        if t in ("asc", "desc") and fr.clause == "order":
            return True
        if t in ("join", "inner", "left", "right", "outer", "cross", "natural", "straight_join", "full"):
            if fr.clause != "from" and not (self.alias_ok and t in ("left", "right", "full")):
                return False
            self.st = _OPD if t in ("join", "straight_join") else _OPR
            return True
        if t in ("on", "using") and fr.clause == "from":
            fr.clause = "where"
            self.st = _OPD
            return True
        if fr.kind == _CASE:
            if t in ("when", "then", "else"):
                self.st = _OPD
                return True
            if t == "end":
                self.frames.pop()
                self.feat("case", fr.start)
                self.operand_done("case", t, tok)
                return True
            return False
        if self.stmt == "if" and len(self.frames) == 1 and (t in _STMT_NEXT or t == "else"):
            # IF (cond) SELECT ... ELSE DROP ...: a statement follows the condition.
            self.close_logic(fr)
            if t == "else":
                self.st = _STMT
                return True
            return self.statement(tok)
        if len(self.frames) == 1 and (t in _IMPLICIT_STMT or (self.after_breakout and t in _STMT_NEXT)):
            self.close_logic(fr)
            return self.statement(tok)
        if t == "with" and fr.clause == "group":
            self.st, self.need = _NEED, "rollup"
            return True
        if self.alias_ok and t not in _RESERVED:
            self.alias_ok = False
            return True
        return False

    def select_tail(self, tok: Token) -> None:
        """``) AS total FROM``, ``1234 AS "x" FROM t``: the end of a select list, then FROM.

        Prose says "known as Bob from Texas"; SQL aliases something SQL-like (a number, a
        call, a closing parenthesis, a `name`) and quotes an alias as one token."""
        alias = self.alias_tok
        if alias is None or self.last is not alias or not self.as_strong:
            return
        if alias.kind in (NAME, STR) and alias.closed and not any(c.isspace() for c in alias.text):
            self.feat("select_tail", alias.start)
        elif self.as_close:
            self.feat("select_tail_cut", alias.start)  # decisive only when the value ends here

    def clause_word(self, tok: Token) -> None:
        fr = self.frames[-1]
        self.close_logic(fr)
        if len(self.frames) == 1 or self.after_breakout:
            self.feat("clause", tok.start)
        self.after_breakout = False

    def logic(self, tok: Token) -> bool:
        fr = self.frames[-1]
        if self.after_breakout and tok.kind == OP:
            self.feat("op_first", tok.start)  # 1'||'x
        self.close_logic(fr)
        fr.logic = _Logic(tok.start)
        fr.cmp_left = None
        self.st = _OPD
        self.after_breakout = False
        return True

    def compare(self, tok: Token) -> None:
        fr = self.frames[-1]
        kind, text = self.last_operand
        if kind == "paren" and self.closed_first in _LITS:
            kind = self.closed_first  # ("x")=("x")
        fr.cmp_left = (kind, text) if kind else ("lit", "")
        self._logic_mark("cmp")
        self.st = _OPD
        self.after_breakout = False

    def compare_done(self, tok: Token) -> None:
        # IS NULL, IN (...), BETWEEN: a condition without a literal comparison.
        self._logic_mark("cmp")
        self.after_breakout = False

    def close_paren(self, tok: Token) -> bool:
        fr = self.frames[-1]
        if fr.kind == _CASE:
            return False
        if fr.kind == _TOP:
            # Closes a parenthesis of the application's query: fine before anything else.
            self.feat("app_close", tok.start)
            self.app_close_end = tok.end
            self.close_logic(fr)
            self.st = _OPR
            self.alias_ok = False
            self.last_operand = ("paren", ")")
            return True
        self.close_logic(fr)
        self.end_select(fr)
        self.frames.pop()
        if fr.kind == _FUNC:
            self.fn_call(fr.fn, fr.start, fr)
            self.operand_done("fn", fr.fn, tok)
        elif fr.kind == _SUBQ:
            self._logic_mark("sub")
            self.select_real()
            self.operand_done("sub", ")", tok)
        else:
            self.closed_first = fr.first if fr.ops == 1 else ""
            self.operand_done("paren", ")", tok)
        return True

    def needed(self, tok: Token) -> bool:
        need, k, t = self.need, tok.kind, tok.text
        self.need = ""
        fr = self.frames[-1]
        if need == "(":
            if t == "(":
                self.st = _OPD
                return self.operand(tok)
            return False
        if need == "top":
            if k == NUM:
                self.st = _OPD  # the select list follows the count
                return True
            return False
        if need == "escape":
            if k == WORD:
                self.st = _OPD  # the escape's keyword, then an expression
                return True
            return False
        if need == "by":
            if t != "by":
                return False
            fr.clause = "order"
            self.st = _OPD
            return True
        if need == "union":
            if k == WORD and t in ("all", "distinct", "distinctrow"):
                self.st, self.need = _NEED, "union"
                return True
            if k == WORD and t == "select":
                self.begin_select("union", tok)
                return True
            if t == "(":
                self.frames.append(_Frame(_GROUP, "where", tok.start))
                self.st, self.need = _NEED, "select"
                return True
            return False
        if need in ("select", "subselect"):
            if t == "select":
                self.frames[-1].kind = _SUBQ
                self.begin_select("union" if need == "select" else "sub", tok)
                return True
            return False
        if need in ("is", "isnot"):
            if t == "not" and need == "is":
                self.st, self.need = _NEED, "isnot"
                return True
            if t in ("null", "true", "false", "unknown"):
                self.operand_done("lit", t, tok)
                return True
            if t == "distinct":
                self.st, self.need = _NEED, "from"
                return True
            return False
        if need == "from":
            if t == "from":
                self.st = _OPD
                return True
            return False
        if need == "not":
            if t in _CMP_WORDS:  # NOT LIKE, NOT REGEXP: a comparison like the others
                self.compare(tok)
                return True
            if t == "between":
                self.between += 1
                self.compare(tok)
                return True
            if t == "in":
                self.st, self.need = _NEED, "in"
                return True
            if t == "exists":
                self.st, self.need = _NEED, "("
                return True
            return False
        if need == "like":
            if t == "like":
                self.compare(tok)
                return True
            return False
        if need == "in":
            if t == "(":
                self.frames.append(_Frame(_GROUP, "where", tok.start))
                self.st = _OPD
                return True
            if t == "boolean":  # AGAINST('...' IN BOOLEAN MODE)
                self.st, self.need = _NEED, "mode"
                return True
            return False
        if need == "mode":
            if t == "mode":
                self.st = _OPR
                self.alias_ok = False
                return True
            return False
        if need == "alias":
            if (k in (WORD, NAME) and t not in _STRUCTURAL) or k == STR:
                self.st = _OPR
                self.alias_ok = False
                self.alias_tok = tok
                return True
            return False
        if need == "into":
            if t in ("outfile", "dumpfile"):
                self.feat("into_file", tok.start)
                self.st, self.need = _NEED, "file"
                return True
            if k == VAR:
                fr.clause = "select"  # INTO @a, @b
                self.operand_done("var", t, tok)
                return True
            if k in (WORD, NAME) and t not in _RESERVED:
                self.operand_done("ident", t, tok)
                return True
            return False
        if need == "file":
            if k == STR:
                self.operand_done("str", t, tok)
                return True
            return False
        if need == "name":  # PROCEDURE analyse(
            if k == WORD and t not in _RESERVED:
                self.operand_done("ident", t, tok)
                self.last_fn = "procedure"  # remembered until the call: see fn_call
                return True
            return False
        if need == "rollup":
            if t == "rollup":
                self.st = _OPR
                return True
            return False
        if need == "delay":  # WAITFOR DELAY '0:0:5'
            if k in (STR, NUM, VAR):
                self.feat("waitfor", tok.start)
                self.operand_done("str", t, tok)
                return True
            return False
        if need == "stmt":  # a statement head's next word
            return self.statement_next(tok)
        return False

    def dotted(self, tok: Token) -> bool:
        k, t = tok.kind, tok.text
        if k in (WORD, NAME):
            name = t if k == WORD else t.strip("`[]").lower()
            self.word_info(name, tok)
            qualified = self.last_operand[1] + "." + name
            if qualified in _SYSOBJ_ALONE:
                self.feat("sysobj_alone", tok.start)
            self.operand_done("ident", name, tok)
            self.last_fn = name
            return True
        if k == PUNCT and t == ".":  # master..xp_cmdshell
            return True
        if k == OP and t == "*":
            self.operand_done("star", t, tok)
            return True
        if k in (VAR, NUM):  # @@global.version, t.1e0
            self.operand_done("ident", t, tok)
            return True
        return False

    def typename(self, tok: Token) -> bool:
        k, t = tok.kind, tok.text
        if k == WORD and self.type_words == 0 and self.last is not None and self.last.text == "::":
            if t in _SQL_TYPES:
                self.feat("cast", tok.start)  # password::int  (PostgreSQL error-based extraction)
            else:
                return False  # std::string is C++, not SQL
        if k == WORD and self.type_words < 2:
            self.type_words += 1
            self.last_operand = ("ident", t)
            self.after_breakout = False
            # A type is an operand: what follows is an operator, ")" or "(n)".
            self.st = _OPR
            self.alias_ok = self.type_words < 2  # "double precision", "signed integer"
            return True
        return False

    # ------------------------------------------------------------------ statements
    def statement(self, tok: Token) -> bool:
        """After ``;`` (or an implicit boundary): a statement must start here."""
        k, t = tok.kind, tok.text
        self.after_breakout = False
        if k == PUNCT and t == ";":
            return True  # empty statement
        if k == PUNCT and t == "(":  # ;(select ...)
            self.frames.append(_Frame(_GROUP, "where", tok.start))
            self.st = _OPD
            return True
        if k == WORD and t not in _STMT_NEXT and t in _FN_SQL:
            # ;IIF(1=1,1,1/0), ;SLEEP(5): a call standing as a statement.
            self.st = _OPD
            self.feat("stack_call", tok.start)
            return self.operand(tok)
        if k != WORD or t not in _STMT_NEXT:
            return False
        if t == "shutdown":  # takes nothing: "; SHUTDOWN --", "'; shutdown with nowait"
            return self._stacked(tok)
        if t == "select":
            self.begin_select("stack", tok)
            return True
        self.st, self.need = _NEED, "stmt"
        self.stmt = t
        return True

    def statement_next(self, tok: Token) -> bool:
        head = self.stmt
        k, t = tok.kind, tok.text
        allowed = _STMT_NEXT.get(head) if head != "update_set" else frozenset({"set"})
        if allowed is not None:
            if k != WORD or t not in allowed:
                return False
            if head == "waitfor":
                self.st, self.need = _NEED, "delay"
                return True
            return self._stacked(tok)
        if head in ("declare",):
            return k == VAR and self._stacked(tok)
        if head == "set":
            if k == VAR or (k == WORD and t not in _RESERVED):
                return self._stacked(tok)
            return False
        if head in ("exec", "execute"):
            if k == VAR or (k == PUNCT and t == "("):
                return self._stacked(tok)
            if k == WORD and t == "immediate":  # Oracle dynamic SQL
                self.feat("exec_dynamic", tok.start)
                if self.stmt_start:
                    self.stmt_start = False
                    self.feat("stmt_head", tok.start)
                    self.stmt = ""
                    self.st = _OPD
                    return True
                return self._stacked(tok)
            if k == WORD and (t.startswith(("xp_", "sp_")) or t in ("master", "dbo", "sys")):
                self.exec_args = True
                return self._stacked(tok)
            return False
        if head in ("shutdown",):
            return False  # SHUTDOWN takes no operand; handled at the end of the pass
        if head in ("truncate", "replace"):
            if k == NAME or (k == WORD and (t not in _RESERVED or t in ("table", "into"))):
                return self._stacked(tok)
            return False
        if head == "copy":
            if k == WORD and t not in _RESERVED:
                self.st, self.need = _NEED, "stmt"
                self.stmt = "copy_dir"
                return True
            return False
        if head == "copy_dir":
            if t in ("from", "to"):
                return self._stacked(tok)
            return False
        if head in ("call", "begin", "prepare", "update", "grant", "revoke", "dbcc", "kill"):
            # A name must follow; the call or the rest is read as an expression.
            if k == WORD and t not in _RESERVED:
                if head == "update":  # UPDATE users SET ...
                    self.st, self.need = _NEED, "stmt"
                    self.stmt = "update_set"
                    return True
                self.feat("stack_weak", tok.start)
                self.operand_done("ident", t, tok)
                self.last_fn = t
                return True
            return False
        if head in ("if", "do", "use", "handler"):
            self.st = _OPD
            if head != "if":
                self.stmt = ""
            return self.operand(tok)
        return False

    def _stacked(self, tok: Token) -> bool:
        if self.stmt_start:
            # "DELETE FROM users;--" is an injection, "delete from cart" a button label:
            # read on (a table name, then ";" or a comment) and judge on what follows.
            self.stmt_start = False
            self.feat("stmt_head", tok.start)
            self.stmt = ""
            if tok.kind == WORD and tok.text in _SYSPROC:
                self.feat("sysproc", tok.start)
                self.operand_done("ident", tok.text, tok)
                self.exec_args = True
            elif tok.kind == WORD and tok.text not in _RESERVED:
                self.operand_done("ident", tok.text, tok)
                self.frames[0].clause = "from"
            elif tok.kind == VAR:
                self.feat("stmt_var", tok.start)  # DECLARE @x, SET @x: SQL-only syntax
                self.operand_done("var", tok.text, tok)
            elif tok.kind == PUNCT and tok.text == "(":  # EXEC (@q)
                self.feat("stmt_var", tok.start)
                self.frames.append(_Frame(_GROUP, "where", tok.start))
                self.st = _OPD
            else:
                self.st = _OPD
                self.frames[0].clause = "from"
            return True
        self.feat("stack", tok.start)
        self.stop = "stmt"
        self.end = tok.end
        self.finish()
        return True


# --------------------------------------------------------------------------- judging
# Features that make an injection in any context when the SQL around them holds.
_DECISIVE = (
    "union", "stack", "stack_call", "fn_strong", "var", "into_file", "waitfor", "sysproc",
    "bool_taut", "bool_sub", "case", "sci_glue", "exec_dynamic",
)  # fmt: skip
# Features that make an injection once a quote has been broken out of.
_QUOTED = (
    "bool_fn", "bool_cmp", "bool_lit", "bool_arith", "litcmp", "fn_sql", "fn_any", "sysobj",
    "subq", "cmp_first", "cast", "procedure", "order_n", "info", "stack_weak", "select",
    "union_any", "stack_any", "hex",
)  # fmt: skip


def _judge(p: _Parse) -> int | None:
    """The position of the injection this pass found, or None."""
    if not p.complete():
        return None
    f = p.feats
    if not f:
        return None
    for name in _DECISIVE:
        if name in f:
            return f[name]
    if "oddcase" in f and p.keywords >= 2 and (p.odd >= 2 or "union_bare" in f or "sysobj" in f):
        return f["oddcase"]
    if "union_any" in f and ("inline_comment" in f or "oddcase" in f):
        return f["union_any"]  # 0/**/union/*!50000select*/name
    if "select_tail" in f or ("select_tail_cut" in f and p.last is not None and p.last.text == "from"):
        return f.get("select_tail", f.get("select_tail_cut"))  # ) AS total FROM
    if p.quote == "`":
        return None  # a break-out of a `name`: only what is decisive anywhere
    ended_by_comment = p.stop == "comment" or "comment_end" in f
    if p.quote:
        for name in _QUOTED:
            if name in f:
                return f[name]
        if "trunc" in f and _trunc_plausible(p):
            return f["trunc"]
        if (
            "op_first" in f
            and not (p.spaced_str or p.nonstr)
            and not any(c.isspace() for c in p.value[: f["op_first"]])
        ):
            return f["op_first"]  # '-'  1'||'x'||'  (operators on short strings, nothing else)
        if "union_bare" in f:
            return f["union_bare"]  # ' UNION SELECT  (the columns cut off)
        if "sql_comment" in f:
            return f["sql_comment"]  # SQL after the break-out, the rest commented out
        if "clause" in f and ended_by_comment:
            return f["clause"]
        return None
    # Unquoted: the value itself is the SQL, so prose-like SQL needs more evidence.
    for name in ("fn_alone", "sysobj_alone", "procedure", "order_n", "cast"):
        if name in f:
            return f[name]
    if "logic_start" in f and (
        "cmp_cut" in f or ("bool_cmp" in f and "app_close" in f and p.last is not None and p.last.text == ")")
    ):
        # AND 7639=(  OR name = '  AND deleted = 0) : a condition added to the application's,
        # cut where the query goes on, or closing its parenthesis.
        return f["logic_start"]
    if "stmt_head" in f and (ended_by_comment or "semicolon" in f or "stmt_var" in f):
        return f["stmt_head"]
    if "select" in f and ("sysobj" in f or "fn_sql" in f or "info" in f or "hex" in f or "fn_named" in f):
        return f["select"]
    if "sysobj_alone" in f and ("clause" in f or "select" in f):
        return f["sysobj_alone"]  # FROM information_schema.tables
    if "inline_comment" in f:
        # SELECT/**/password/**/FROM/**/members: comments between keywords are evasion.
        for name in ("select", "bool_cmp", "bool_lit", "bool_fn", "stmt_head", "subq"):
            if name in f:
                return f[name]
    if "subq" in f and ("fn_sql" in f or "sysobj" in f or "bool_cmp" in f or "litcmp" in f):
        return f["subq"]
    if "fn_sql" in f and ("bool_fn" in f or "litcmp" in f):
        return f["fn_sql"]
    if "json_op" in f and ("bool_cmp" in f or "cast" in f):
        return f["json_op"]  # OR '{"a":1}' ?| array['a']  (PostgreSQL JSON operators)
    if ended_by_comment:
        for name in ("bool_cmp", "bool_lit", "bool_fn", "litcmp", "clause"):
            if name in f:
                return f[name]
    if "clause" in f and "litcmp" in f:
        return f["clause"]
    return None


def _judge_strict(p: _Parse) -> int | None:
    """Paranoia 2: also fragments that are SQL but change little on their own, which
    probes and chained attacks send and ordinary values seldom are: a comparison of two
    literals ("11!=1"), any UNION SELECT, a statement head ("DELETE FROM users"), a
    clause after a value ("1 ORDER BY name"), a condition on a column ("x OR a=b"), a
    bare call of an SQL function, a break-out that only ends the statement ("x';")."""
    at = _judge(p)
    if at is not None or not p.complete():
        return at
    f = p.feats
    names = ("litcmp", "union_any", "stack_any", "stmt_head", "bool_cmp", "fn_sql", "sysobj", "json_op")
    for name in names:
        if name in f:
            return f[name]
    if "clause" in f and p.keywords >= 2 and not p.quote:
        return f["clause"]
    if p.quote and "semicolon" in f and p.n <= 3:
        return f["semicolon"]  # x';  x'/* c */;
    return None


def _trunc_plausible(p: _Parse) -> bool:
    # "admin'--" truncates a query; "the students' -- all of them" is prose with a dash.
    # A break-out right before a comment counts when what precedes the quote is one
    # word (a login, an id) or the comment is short (sqlmap's "-- xyzw").
    v = p.value
    qpos = p.feats.get("trunc", 0)
    prefix = v[: p.origin - 1]
    if not prefix.strip() or len(prefix.split()) <= 1:
        return True
    nl = v.find("\n", qpos)
    rest = v[qpos : nl if nl >= 0 else len(v)]
    return len(rest.strip()) <= 8


# --------------------------------------------------------------------------- embedded pass
# Unmistakable heads of an injection appended to larger text: the pass starts at each.
# (A short inline comment, or a versioned comment's markers, count as blanks: WAITFOR/**/DELAY,
# /*!50000SLEEP*/(5): sqlmap's space2comment and versionedkeywords.)
_B = r"(?:\s|/\*[^*!]{0,64}\*/|/\*!\d{0,5}|\*/)"
_ANCHOR_PATTERN = (
    r"(?i)(?:\b|/\*!\d{0,5})(?:union"
    + _B
    + r"+(?:all|distinct)"
    + _B
    + r"+select|union\b|waitfor"
    + _B
    + r"+delay\b|"
    r"into" + _B + r"+(?:out|dump)file\b|"
    r"(?:sleep|benchmark|pg_sleep|extractvalue|updatexml|load_file)" + _B + r"*\(|"
    r"exec(?:ute)?" + _B + r"+(?:master\.|xp_|sp_))"
)
_ANCHOR_RE: Any = _re2.compile(_ANCHOR_PATTERN) if _re2 is not None else re.compile(_ANCHOR_PATTERN)
_EMBEDDED = frozenset({"union", "fn_strong", "waitfor", "into_file", "stack"})


_ANCHOR_WORDS = (
    "union",
    "waitfor",
    "into",
    "sleep",
    "benchmark",
    "extractvalue",
    "updatexml",
    "load_file",
    "exec",
)


def _anchors(value: str) -> Iterator[tuple[int, int, str]]:
    # Most values hold none of the words: a substring test is cheaper than a call into RE2.
    low = value.lower()
    if not any(w in low for w in _ANCHOR_WORDS):
        return
    # search() from a position: google-re2's finditer is slow on long values.
    pos = 0
    for _ in range(MAX_ANCHORS):
        m = _ANCHOR_RE.search(value, pos)
        if m is None:
            return
        yield m.start(), m.end(), m.group()
        pos = m.end()


def _embedded(value: str, budget: int) -> Span | None:
    for start, end, text in _anchors(value):
        if budget <= 0:
            break
        if end - start > 6 and text[:5].lower() == "union":
            # UNION ALL SELECT is the technique even when what follows is mangled
            # (SELECTCHAR(88)): these three words do not meet in prose.
            return (start, end)
        p = _Parse(value, "")
        limit = min(ANCHOR_TOKENS, budget)
        p.run(_tokens(value, start, limit), limit)
        budget -= p.n
        if p.stop == "fail":
            # Text may follow an appended payload, as long as the payload itself is whole:
            # what is still open when the text starts does not count ("sleep(8 hours)").
            p.finish(closing=False)
        for name in _EMBEDDED:
            if name in p.feats:
                return (start, max(p.end, end))
    return None


# --------------------------------------------------------------------------- entry points
# Typographic quotes that "best fit" code-page conversions (MSSQL varchar, some drivers)
# turn into ASCII ones: \u2019 OR \u20191\u2019=\u20191 breaks out of a string there.
_BEST_FIT = str.maketrans(
    {
        "\u2018": "'",  # left single quotation mark
        "\u2019": "'",  # right single quotation mark
        "\u02bc": "'",  # modifier letter apostrophe
        "\u00b4": "'",  # acute accent
        "\uff07": "'",  # fullwidth apostrophe
        "\u2032": "'",  # prime
        "\u201c": '"',  # left double quotation mark
        "\u201d": '"',  # right double quotation mark
        "\uff02": '"',  # fullwidth quotation mark
        "\u2033": '"',  # double prime
    }
)


# Runs of one quote character: an even run is escaped quotes, an odd one ends the string.
_RUNS = {q: re.compile(re.escape(q) + "+") for q in ("'", '"', "`")}
#: Runs of doubled quotes looked through before giving up on a break-out.
MAX_QUOTE_RUNS = 32


def _break_out(text: str, q: str) -> int:
    """Where a value pasted between ``q`` quotes ends the string: the first ``q`` that is
    not doubled ('O''Brien' is one string), or -1."""
    i = text.find(q)
    if i < 0 or not text.startswith(q, i + 1):
        return i  # the common case: a single quote
    run = _RUNS[q]
    for _ in range(MAX_QUOTE_RUNS):
        m = run.match(text, i)
        if m is None:  # pragma: no cover - text[i] is q
            return -1
        if (m.end() - i) % 2:
            return m.end() - 1
        i = text.find(q, m.end())
        if i < 0:
            return -1
    return -1


def _contexts(value: str) -> Iterator[tuple[str, int, str]]:
    """``(quote, start, text)`` of each reading: as-is, after the break-out of ' and of "."""
    yield "", 0, value
    seen = []
    for q in ("'", '"', "`"):
        i = _break_out(value, q)
        if i >= 0:
            seen.append((q, i))
            yield q, i + 1, value
    if not value.isascii():
        alt = value.translate(_BEST_FIT)
        if alt != value:
            for q in ("'", '"'):
                i = _break_out(alt, q)
                if i >= 0 and (q, i) not in seen:
                    yield q, i + 1, alt


def _run(value: str, quote: str, pos: int, limit: int = MAX_TOKENS) -> _Parse:
    p = _Parse(value, quote)
    p.origin = pos
    p.run(_tokens(value, pos, limit), limit)
    return p


def detect(value: str) -> Span | None:
    """The span of SQL injection evidence in ``value``, or None."""
    return _detect(value, _judge)


def detect_strict(value: str) -> Span | None:
    """:func:`detect`, plus the fragments paranoia level 2 reports (see :func:`_judge_strict`)."""
    return _detect(value, _judge_strict)


#: Texts at least this long remember their last answer: a body of one field is judged as
#: that field (942100) and as the body (942102), the same text twice.
MEMO_FROM = 4096
_last: tuple[object, str, Span | None] = (None, "", None)  # (judge, text, answer); one slot


def _detect(value: str, judge: Callable[[_Parse], int | None]) -> Span | None:
    global _last
    if len(value) >= MEMO_FROM:
        last_judge, last_text, last_span = _last  # one tuple: consistent whatever other threads do
        if last_judge is judge and last_text == value:
            return last_span
        span = _detect_uncached(value, judge)
        _last = (judge, value, span)
        return span
    return _detect_uncached(value, judge)


def _detect_uncached(value: str, judge: Callable[[_Parse], int | None]) -> Span | None:
    budget = TOTAL_TOKENS
    for quote, pos, text in _contexts(value):
        p = _run(text, quote, pos, min(MAX_TOKENS, budget))
        budget -= p.n
        at = judge(p)
        if at is not None:
            start = pos - 1 if quote else at
            return (max(0, min(start, at)), max(p.end, at + 1))
    return _embedded(value, budget)


def explain(value: str) -> list[dict[str, object]]:
    """Per context: where the pass stopped, why, and the features it saw (for tests and tuning)."""
    out: list[dict[str, object]] = []
    for quote, pos, text in _contexts(value):
        p = _run(text, quote, pos)
        out.append(
            {
                "context": quote or "as-is",
                "stop": p.stop,
                "complete": p.complete(),
                "fail": None if p.fail is None else (p.fail.text, p.fail.start),
                "features": dict(p.feats),
                "verdict": _judge(p),
                "tokens": p.n,
            }
        )
    return out


def _detect_path(value: str) -> Span | None:
    # "/items/1 OR 1=1", "/get/if(now()=sysdate(),sleep(12),0)": each segment is a value.
    pos = 0
    for seg in value.split("/"):
        if seg and len(seg) > 2:
            span = detect(seg)
            if span is not None:
                return (pos + span[0], pos + span[1])
        pos += len(seg) + 1
    return None


#: Attribute values and text of an XML body: what an application reads out of it.
_XML_VALUES = re.compile(r"""=\s*"([^"<]*)"|=\s*'([^'<]*)'|>([^<]+)<""")
MAX_XML_VALUES = 256


def _detect_xml(value: str) -> Span | None:
    for n, m in enumerate(_XML_VALUES.finditer(value)):
        if n >= MAX_XML_VALUES:
            break
        group = m.lastindex or 1
        text = m.group(group)
        if not text.strip():
            continue
        decoded = unescape_html(text) if "&" in text else text
        span = detect(decoded)
        if span is not None:
            return m.span(group)
    return None


def _detect_raw_body(value: str) -> Span | None:
    # A body read as one value (decoded by the rule's transforms): JSON, urlencoded and
    # multipart bodies are parsed into fields that 942100 reads, so only what the body
    # parser could not split is judged here (text/plain, no Content-Type). An XML
    # body's values are its attributes and text.
    head = value.lstrip()[:1]
    if head == "<":
        return _detect_xml(value)
    if head in ("{", "[") or value.startswith("--") or looks_urlencoded(value):
        return None
    return detect(value.replace("+", " "))  # a form parser's space; same length, same spans


_MODES: dict[str, Callable[[str], Span | None]] = {
    "path": _detect_path,
    "raw_body": _detect_raw_body,
    "strict": detect_strict,
}


def make_detector(param: object) -> Callable[[str], Span | None]:
    """The detector for a rule's ``value``: none, or ``{"mode": "path" | "raw_body" | "strict"}``.

    ``path`` judges each ``/``-separated segment; ``raw_body`` skips bodies that are
    JSON, urlencoded or multipart (their fields are arguments) and judges the rest
    whole, or an XML body's values; ``strict`` is :func:`detect_strict` (paranoia 2).
    """
    if param is None:
        return detect
    mode = param.get("mode") if isinstance(param, dict) else None
    if not isinstance(mode, str) or mode not in _MODES:
        raise ValueError(
            f"invalid detect_sqli parameter {param!r} (mode must be one of {', '.join(sorted(_MODES))})"
        )
    return _MODES[mode]

"""Judgement: which features, in SQL that holds, make an injection in a quoting context.

A verdict needs both: SQL that stays valid (to the end of the value, to a truncating
comment, or through a stacked statement's head: :func:`complete`) and a feature that
makes an injection there. Some features do anywhere (``_DECISIVE``), some once a quote
was broken out of (``_QUOTED``); an unquoted value is SQL itself, so prose-like SQL
needs more evidence there.
"""

from __future__ import annotations

from .grammar.closing import complete
from .grammar.state import ParseState

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


def judge(p: ParseState) -> int | None:
    """The position of the injection this pass found, or None."""
    if not complete(p):
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
    if p.quote:
        return _judge_quoted(p)
    return _judge_unquoted(p)


def _judge_quoted(p: ParseState) -> int | None:
    f = p.feats
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
    if "clause" in f and (p.stop == "comment" or "comment_end" in f):
        return f["clause"]
    return None


def _judge_unquoted(p: ParseState) -> int | None:
    # Unquoted: the value itself is the SQL, so prose-like SQL needs more evidence.
    f = p.feats
    ended_by_comment = p.stop == "comment" or "comment_end" in f
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


def judge_strict(p: ParseState) -> int | None:
    """Paranoia 2: also fragments that are SQL but change little on their own, which
    probes and chained attacks send and ordinary values seldom are: a comparison of two
    literals ("11!=1"), any UNION SELECT, a statement head ("DELETE FROM users"), a
    clause after a value ("1 ORDER BY name"), a condition on a column ("x OR a=b"), a
    bare call of an SQL function, a break-out that only ends the statement ("x';")."""
    at = judge(p)
    if at is not None or not complete(p):
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


def _trunc_plausible(p: ParseState) -> bool:
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

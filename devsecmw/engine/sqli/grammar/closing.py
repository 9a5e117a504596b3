"""The end of a pass: what is cut off, what the application closes, and whether the
SQL read so far is whole enough to judge."""

from __future__ import annotations

from ..tokens import OP
from ..vocabulary import CLAUSE_WORDS, CMP_OPS, LITS
from .conditions import close_logic, mark
from .functions import fn_call
from .selects import end_select, select_real
from .state import CASE, DOT, FUNC, GROUP, OPD, OPR, START, STMT, SUBQ, ParseState


def finish(p: ParseState, closing: bool = True) -> None:
    """End of the pass: judge what is still open. ``closing``: the value ended (rather
    than failed), so the application closes its open calls and parentheses."""
    frames = p.frames
    p.open_calls = any(f.kind in (FUNC, CASE) for f in frames)
    if closing:
        _cut(p)
        _literal_groups(p)
    while len(frames) > 1:
        fr = frames.pop()
        close_logic(p, fr)
        end_select(p, fr)
        if fr.kind == FUNC and closing:
            fn_call(p, fr.fn, fr.start, fr)  # "benchmark(", "load_file(": the application closes it
        elif fr.kind == SUBQ and closing:
            mark(p, "sub")
            select_real(p)
    close_logic(p, frames[0])
    end_select(p, frames[0])


def _cut(p: ParseState) -> None:
    """A condition or a UNION SELECT cut where the rest of the query begins."""
    frames = p.frames
    last = p.last
    if p.st == OPD and last is not None:
        # AND 7639=(  OR 120=121=  : a condition cut where its right operand begins.
        at_operator = last.kind == OP and last.text in CMP_OPS and frames[-1].cmp_kind != ""
        at_paren = (
            last.text == "("
            and len(frames) > 1
            and frames[-1].kind == GROUP
            and frames[-1].start == last.start
            and frames[-2].cmp_kind != ""
        )
        if at_operator or at_paren:
            p.feat("cmp_cut", last.start)
    sel = frames[-1].select
    cut_after_select = last is not None and last.text == "select" and p.st == OPD
    if cut_after_select and sel is not None and sel.origin in ("union", "stack"):
        # ' UNION SELECT  (the columns cut off)
        p.feat("union_bare" if sel.origin == "union" else "stack_bare", sel.start)


def _literal_groups(p: ParseState) -> None:
    # The application closes what the value leaves open: ') or (('x'))=(('x' compares literals.
    frames = p.frames
    for i in range(len(frames) - 1, 0, -1):
        fr, parent = frames[i], frames[i - 1]
        if fr.kind != GROUP or fr.ops != 1 or fr.first not in LITS:
            break
        if parent.cmp_kind in LITS:
            p.feat("litcmp", fr.start)
            for f in frames[:i]:
                if f.logic is not None:
                    f.logic.litcmp = True
            break


def complete(p: ParseState) -> bool:
    """The pass ended on something SQL accepts (or a truncating comment)."""
    if p.stop == "stmt":
        return True
    if p.stop not in ("end", "comment", "cap"):
        return False
    last = p.last
    if p.st == OPD and last is not None:
        if "cmp_cut" in p.feats:
            return True
        # A value that stops inside a call ("concat(0x7e,") or right after UNION SELECT:
        # the fragment of an injection whose rest the attacker did not need to send.
        if last.text in ("(", ",", "case") and p.open_calls:
            return True
        if last.text in CLAUSE_WORDS or last.text == "by":
            return True  # FROM information_schema.tables LIMIT  (cut at a clause)
        if "union_bare" in p.feats or "stack_bare" in p.feats:
            return True
    if p.st == DOT:
        return True  # FROM information_schema.  (a name cut off after its schema)
    return p.st in (OPR, START) or (p.st == STMT and p.stop != "cap")

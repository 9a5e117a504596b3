"""Adapters only translate: no module but ``core`` writes the per-request inspection state
or reaches into its span (``insp.handle``: span ownership is core's).

Read from the source (``ast``): outside ``devsecmw/core.py`` (and ``core_reads.py``, a base
class of ``Inspection``), no assignment (plain, augmented, annotated, ``del``, ``setattr``)
may target an attribute of an inspection object or of anything reached through it
(``insp.status = ...``, ``insp.request.route = ...``, ``self._insp.blocked = ...``). Adapters
call ``Inspection`` methods instead. An inspection object is a name or attribute called
``insp``/``_insp``/``inspection``, a parameter or variable annotated ``Inspection``, or a
variable bound to ``....begin(...)`` (``Runtime.begin`` returns it).
"""

from __future__ import annotations

import ast
from pathlib import Path

import devsecmw

PACKAGE = Path(devsecmw.__file__).parent
#: Where the inspection state is written: the request path itself.
OWNERS = frozenset({"core.py", "core_reads.py"})
_NAMES = frozenset({"insp", "_insp", "inspection"})


def _chain(node: ast.expr) -> list[str]:
    """``a.b.c`` -> ``["a", "b", "c"]``; other bases (calls, subscripts) end the chain."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return parts[::-1]


def _inspection_names(tree: ast.AST) -> set[str]:
    names = set(_NAMES)
    for node in ast.walk(tree):
        if isinstance(node, ast.arg) and node.annotation is not None:
            if "Inspection" in ast.unparse(node.annotation):
                names.add(node.arg)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if "Inspection" in ast.unparse(node.annotation):
                names.add(node.target.id)
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            func = node.value.func
            if isinstance(func, ast.Attribute) and func.attr in ("begin", "_begin"):
                names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def _targets(node: ast.AST) -> list[ast.expr]:
    if isinstance(node, ast.Assign):
        out: list[ast.expr] = []
        for t in node.targets:
            out.extend(t.elts if isinstance(t, ast.Tuple | ast.List) else [t])
        return out
    if isinstance(node, ast.AugAssign | ast.AnnAssign):
        return [node.target]
    if isinstance(node, ast.Delete):
        return list(node.targets)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("setattr", "delattr")
    ):
        # setattr(obj, name, value): obj's chain plus a placeholder for the attribute written
        return [ast.Attribute(value=node.args[0], attr="?", ctx=ast.Store())] if node.args else []
    return []


def writes_to_inspection(source: str) -> list[str]:
    """The statements of ``source`` that write inspection state, as ``line: code``."""
    tree = ast.parse(source)
    names = _inspection_names(tree)
    found = []
    for node in ast.walk(tree):
        for target in _targets(node):
            if not isinstance(target, ast.Attribute):
                continue
            owner = _chain(target.value)
            if any(part in names for part in owner):
                found.append(f"{node.lineno}: {ast.unparse(node).splitlines()[0]}")
    return found


def test_the_checker_finds_each_kind_of_write() -> None:
    source = """
def f(insp, runtime, request, x: Inspection, y: int):
    insp.status = 403
    insp.request.route = "/r"
    x.blocked = False
    self._insp.exception = None
    insp.signals += []
    setattr(insp, "flagged", "")
    z = runtime.begin(request)
    z.would_block = True
    a, insp.finished = 1, True
    del insp.handle
    y.status = 1          # not an inspection
    request.route = "/x"  # not reached through one
    insp.finish()         # a method call: fine
"""
    lines = sorted(int(w.split(":")[0]) for w in writes_to_inspection(source))
    assert lines == [3, 4, 5, 6, 7, 8, 10, 11, 12]


def test_no_module_outside_core_writes_inspection_state() -> None:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = path.relative_to(PACKAGE).as_posix()
        if name in OWNERS:
            continue
        writes = writes_to_inspection(path.read_text(encoding="utf-8"))
        if writes:
            found[name] = writes
    assert not found, f"inspection state written outside core (call an Inspection method): {found}"


def test_the_adapters_and_taps_are_checked() -> None:
    """The check reads the modules that hold an inspection (not vacuous)."""
    for name in ("asgi.py", "wsgi.py", "django.py", "bodytap/receive.py", "bodytap/response.py"):
        tree = ast.parse((PACKAGE / name).read_text(encoding="utf-8"))
        uses = [
            n for n in ast.walk(tree) if isinstance(n, ast.Attribute) and _chain(n.value)[-1:] == ["insp"]
        ]
        assert uses, name


def reads_of_the_span_handle(source: str) -> list[str]:
    """Reads of ``<inspection>.handle`` (the span): span ownership belongs to core."""
    tree = ast.parse(source)
    names = _inspection_names(tree)
    return [
        f"{node.lineno}: {ast.unparse(node)}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr == "handle" and set(_chain(node.value)) & names
    ]


def test_no_module_outside_core_reaches_into_the_span() -> None:
    assert reads_of_the_span_handle("def f(insp):\n    return insp.handle.owned\n") == ["2: insp.handle"]
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = path.relative_to(PACKAGE).as_posix()
        if name not in OWNERS:
            reads = reads_of_the_span_handle(path.read_text(encoding="utf-8"))
            if reads:
                found[name] = reads
    assert not found, f"the span handle used outside core (owns_span, sending_last, with insp): {found}"

"""The package's import graph: every module imports alone, no cycle, and the layers hold.

The graph is read from the source (``ast``), not from a running interpreter, so an import
that only runs in a function counts too. Two graphs:

- module level: the imports that run when the module is imported (in ``try``/``if`` blocks
  and class bodies too, not under ``if TYPE_CHECKING``), plus the implicit import of each
  parent package (``import devsecmw.engine.matcher`` runs ``devsecmw/engine/__init__.py``);
- all imports: module level and function level (lazy imports), the modules named.

Layers (what each may import) are those of ``docs/architecture.md``.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path

import pytest

import devsecmw

PACKAGE = Path(devsecmw.__file__).parent
ROOT = "devsecmw"

#: The framework adapters; ``apps`` is the Django adapter's ``AppConfig``.
ADAPTERS = frozenset(
    {
        "devsecmw.asgi",
        "devsecmw.wsgi",
        "devsecmw.django",
        "devsecmw.apps",
        "devsecmw.flask",
        "devsecmw.falcon",
        "devsecmw.instrumentation",
    }
)
#: Adapter-to-adapter imports that are the design, with why.
ADAPTER_EDGES = {
    ("devsecmw.flask", "devsecmw.wsgi"): "init_app wraps app.wsgi_app in the WSGI middleware",
    ("devsecmw.falcon", "devsecmw.wsgi"): "instrument wraps a falcon.App in the WSGI middleware",
    ("devsecmw.falcon", "devsecmw.asgi"): "instrument wraps a falcon.asgi.App in the ASGI middleware",
    ("devsecmw.apps", "devsecmw.django"): "the Django adapter's AppConfig registers its system check",
    ("devsecmw.instrumentation", "devsecmw.asgi"): "the instrumentor installs each adapter",
    ("devsecmw.instrumentation", "devsecmw.wsgi"): "the instrumentor installs each adapter",
    ("devsecmw.instrumentation", "devsecmw.django"): "the instrumentor installs each adapter",
    ("devsecmw.instrumentation", "devsecmw.flask"): "the instrumentor installs each adapter",
    ("devsecmw.instrumentation", "devsecmw.falcon"): "the instrumentor installs each adapter",
}
#: What sits above the engine: the engine imports none of it.
ABOVE_ENGINE = ADAPTERS | {
    "devsecmw.bodytap",
    "devsecmw.core",
    "devsecmw.core_reads",
    "devsecmw.routes",
    "devsecmw.django_settings",
    "devsecmw.telemetry",
    "devsecmw.cli",
    "devsecmw.__main__",
    "devsecmw.demo",
    "devsecmw.gameday",
    "devsecmw.report",
}
#: The framework-free request model.
MODEL = frozenset({"devsecmw.request", "devsecmw.body"})
#: Who may import an adapter at all: adapters, and the apps built on them (the demo app, the CLI).
ADAPTER_USERS = ADAPTERS | {"devsecmw.demo", "devsecmw.cli", "devsecmw.__main__"}


def _in(module: str, group: Iterable[str]) -> bool:
    return any(module == g or module.startswith(g + ".") for g in group)


@cache
def modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = [ROOT, *path.relative_to(PACKAGE).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _targets(module: str, is_package: bool, node: ast.Import | ast.ImportFrom) -> set[str]:
    """The package modules an import statement loads."""
    known = modules()
    if isinstance(node, ast.Import):
        return {a.name for a in node.names if _in(a.name, [ROOT])}
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join([*base, *([node.module] if node.module else [])])
    else:
        target = node.module or ""
    if not _in(target, [ROOT]):
        return set()
    # ``from .engine import matcher`` loads a module; ``from .engine import Engine`` a name.
    return {f"{target}.{a.name}" if f"{target}.{a.name}" in known else target for a in node.names}


def _is_type_checking(test: ast.expr) -> bool:
    return "TYPE_CHECKING" in ast.unparse(test)


@cache
def edges() -> dict[str, tuple[frozenset[str], frozenset[str]]]:
    """Per module: (module-level imports, function-level imports), package modules only."""
    graph = {}
    for module, path in modules().items():
        is_package = path.name == "__init__.py"
        top: set[str] = set()
        late: set[str] = set()

        def walk(body: list[ast.stmt], module_level: bool) -> None:
            for node in body:
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    (top if module_level else late).update(_targets(module, is_package, node))  # noqa: B023
                elif isinstance(node, ast.If) and _is_type_checking(node.test):
                    walk(node.orelse, module_level)  # the body is for the type checker only
                elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    walk(node.body, False)
                else:  # class bodies, try/if/with/for blocks run at import time
                    for name in ("body", "orelse", "finalbody"):
                        walk(getattr(node, name, None) or [], module_level)
                    for handler in getattr(node, "handlers", None) or []:
                        walk(handler.body, module_level)

        walk(ast.parse(path.read_text(encoding="utf-8")).body, True)
        graph[module] = (frozenset(top - {module}), frozenset(late - {module}))
    return graph


def _parents(module: str) -> set[str]:
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def module_level_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, (top, _) in edges().items():
        loads = set(top)
        for target in top:
            loads |= _parents(target)
        graph[module] = loads - {module} - _parents(module)  # a package's own parents are loaded first
    return graph


def full_graph() -> dict[str, set[str]]:
    return {module: set(top | late) for module, (top, late) in edges().items()}


def find_cycle(graph: Mapping[str, Iterable[str]]) -> list[str] | None:
    """A cycle of ``graph`` as a path (first node repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


# --------------------------------------------------------------------------- the graph reader
def test_the_reader_sees_relative_absolute_lazy_and_type_checking_imports() -> None:
    graph = edges()
    top, late = graph["devsecmw.core"]
    assert {"devsecmw.config", "devsecmw.engine", "devsecmw.engine.matcher", "devsecmw.telemetry"} <= top
    assert "devsecmw.blocking" in late  # imported in block_response() only
    assert "devsecmw.core" not in graph["devsecmw.bodytap"][0]  # under TYPE_CHECKING: not an import
    assert "devsecmw.wsgi" in graph["devsecmw.flask"][1]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


# --------------------------------------------------------------------------- cycles
def test_no_cycle_among_module_level_imports() -> None:
    assert find_cycle(module_level_graph()) is None


def test_no_cycle_even_counting_imports_inside_functions() -> None:
    assert find_cycle(full_graph()) is None


# --------------------------------------------------------------------------- layers
def test_the_engine_imports_nothing_above_it() -> None:
    bad = {
        (m, t)
        for m, targets in full_graph().items()
        if _in(m, ["devsecmw.engine"])
        for t in targets
        if _in(t, ABOVE_ENGINE)
    }
    assert not bad


def test_the_request_model_imports_no_adapter_and_nothing_above_it() -> None:
    bad = {(m, t) for m in MODEL for t in full_graph()[m] if _in(t, ABOVE_ENGINE)}
    assert not bad


def test_adapters_import_no_other_adapter() -> None:
    bad = {
        (m, t)
        for m in ADAPTERS
        for t in full_graph()[m]
        if _in(t, ADAPTERS) and t != m and (m, t) not in ADAPTER_EDGES
    }
    assert not bad
    # The WSGI adapter knows no framework: Flask's route comes through the environ.
    assert "devsecmw.flask" not in full_graph()["devsecmw.wsgi"]
    # Django takes the body taps from their own module, not from the WSGI adapter.
    assert "devsecmw.bodytap" in full_graph()["devsecmw.django"]


def test_nothing_below_the_adapters_imports_one() -> None:
    bad = {
        (m, t)
        for m, targets in full_graph().items()
        if not _in(m, ADAPTER_USERS)
        for t in targets
        if _in(t, ADAPTERS)
    }
    assert not bad


def test_every_allowed_adapter_edge_exists() -> None:
    """The allow-list stays honest: an edge that went away is removed from it."""
    graph = full_graph()
    assert {(m, t) for m, t in ADAPTER_EDGES if t not in graph[m]} == set()


# --------------------------------------------------------------------------- import alone
_ALONE = """
import importlib, json, sys
results = {}
for name in json.loads(sys.argv[1]):
    for loaded in [m for m in sys.modules if m == "devsecmw" or m.startswith("devsecmw.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        results[name] = ("bug" if missing.split(".")[0] == "devsecmw" else "missing") + ": " + repr(exc)
    except BaseException as exc:
        results[name] = "bug: " + repr(exc)
print(json.dumps(results))
"""


def test_each_module_imports_alone_in_a_fresh_interpreter() -> None:
    """One interpreter for all modules (fast): before each import, every devsecmw module is
    dropped from ``sys.modules``, so each is imported as if first, with only what it imports
    itself (third-party modules stay loaded: they are not what this tests)."""
    names = sorted(modules())
    out = subprocess.run(
        [sys.executable, "-c", _ALONE, json.dumps(names)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PACKAGE.parent,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    results: dict[str, str] = json.loads(out.stdout.strip().splitlines()[-1])
    bugs = {k: v for k, v in results.items() if v.startswith("bug")}
    assert bugs == {}
    missing = {k: v for k, v in results.items() if v.startswith("missing")}
    if missing:  # an optional extra absent here: its module is not importable, by design
        pytest.skip(f"optional dependencies absent: {missing}")
    assert len(names) > 40  # the walk saw the package

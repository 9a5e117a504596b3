"""The shape of ``devsecmw.engine.sqli``: its modules form layers without cycles, and the
grammar's per-clause tables of expected words do not shadow one another."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

from devsecmw.engine import sqli
from devsecmw.engine.sqli.grammar import conditions, operands, parser, selects, statements

PACKAGE = Path(sqli.__file__).parent


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join(["devsecmw.engine.sqli", *parts])


def _imports() -> dict[str, set[str]]:
    """Module -> the modules of the package it imports (relative imports resolved)."""
    paths = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
                # "from . import conditions" imports a module, "from .state import X" a name.
                subs = {f"{base}.{alias.name}" for alias in node.names} & set(paths)
                deps |= subs or {base}
        graph[name] = {d for d in deps if d in paths} - {name}
    return graph


def test_sqli_modules_import_without_cycles() -> None:
    graph = _imports()
    assert "devsecmw.engine.sqli.grammar.parser" in graph
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"import cycle: {' -> '.join((*path, name))}"
        if name in done:
            return
        for dep in graph.get(name, ()):
            visit(dep, (*path, name))
        done.add(name)

    for name in graph:
        visit(name, ())


def test_sqli_layers() -> None:
    # The lexer and the words know nothing of the grammar; the grammar nothing of the judgement
    # or the entry points.
    graph = _imports()
    below = {"devsecmw.engine.sqli.tokens", "devsecmw.engine.sqli.vocabulary"}
    for name in below:
        assert graph[name] <= below, name
    for name, deps in graph.items():
        if ".grammar" in name:
            assert not {d for d in deps if d.endswith((".judgement", ".contexts", ".embedded"))}, name
            assert "devsecmw.engine.sqli" not in deps, name


def test_each_expected_word_has_one_owner() -> None:
    tables = [conditions.NEEDS, selects.NEEDS, operands.NEEDS, statements.NEEDS]
    keys = [key for table in tables for key in table]
    assert len(keys) == len(set(keys))
    assert set(parser._NEEDS) == set(keys)


def test_public_names() -> None:
    for name in sqli.__all__:
        assert getattr(sqli, name) is not None, name
    assert sqli.detect("1 UNION SELECT password FROM users--") is not None
    assert sqli.detect("union of workers") is None

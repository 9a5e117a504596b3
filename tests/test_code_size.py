"""Size limits of issue 9: no module over 600 lines, no function over 80 lines in ``devsecmw/``,
no framework adapter over 300 lines (an adapter only translates; the request path is in core).

Read from the source (``ast``), so a function counts from its ``def`` line to its last line
(docstring included, decorators not); a nested function counts on its own and inside its parent.
"""

from __future__ import annotations

import ast
from pathlib import Path

import devsecmw

PACKAGE = Path(devsecmw.__file__).parent
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80
MAX_ADAPTER_LINES = 300
#: The framework adapters: each translates its framework's events into calls on core.Inspection.
ADAPTERS = ("asgi.py", "wsgi.py", "django.py", "flask.py", "falcon.py")

#: Modules over the limit, with why (none today). The last test fails on an entry that is no
#: longer needed, so the list only shrinks.
MODULE_EXCEPTIONS: dict[str, str] = {}
#: Functions over the limit today (``path:qualname``), with why. None left.
FUNCTION_EXCEPTIONS: dict[str, str] = {}


def _sources() -> dict[str, str]:
    return {
        path.relative_to(PACKAGE).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def _module_sizes() -> dict[str, int]:
    return {name: len(text.splitlines()) for name, text in _sources().items()}


def _function_sizes() -> dict[str, int]:
    sizes: dict[str, int] = {}

    def walk(node: ast.AST, module: str, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    sizes[f"{module}:{name}"] = (child.end_lineno or child.lineno) - child.lineno + 1
                walk(child, module, name + ".")
            else:
                walk(child, module, prefix)

    for module, text in _sources().items():
        walk(ast.parse(text), module, "")
    return sizes


def test_the_size_reader_counts_lines_and_nested_functions() -> None:
    sizes = _function_sizes()
    # Known shapes of the package: a method by its qualified name, a module by its lines.
    assert sizes["config.py:Config.__post_init__"] < MAX_FUNCTION_LINES
    assert "cli.py:build_parser" in sizes
    assert _module_sizes()["__init__.py"] > 0


def test_no_module_over_the_limit() -> None:
    over = {
        name: n
        for name, n in _module_sizes().items()
        if n > MAX_MODULE_LINES and name not in MODULE_EXCEPTIONS
    }
    assert not over, f"modules over {MAX_MODULE_LINES} lines: {over}"


def test_no_adapter_over_the_limit() -> None:
    sizes = _module_sizes()
    missing = [name for name in ADAPTERS if name not in sizes]
    assert not missing, f"adapters not found (renamed? update ADAPTERS): {missing}"
    over = {name: sizes[name] for name in ADAPTERS if sizes[name] > MAX_ADAPTER_LINES}
    assert not over, f"adapters over {MAX_ADAPTER_LINES} lines (move what is not translation to core): {over}"


def test_no_function_over_the_limit() -> None:
    over = {
        name: n
        for name, n in _function_sizes().items()
        if n > MAX_FUNCTION_LINES and name not in FUNCTION_EXCEPTIONS
    }
    assert not over, f"functions over {MAX_FUNCTION_LINES} lines: {over}"


def test_every_exception_is_still_needed() -> None:
    """The allow-lists stay honest: an entry whose module or function is now small goes."""
    modules, functions = _module_sizes(), _function_sizes()
    stale = [m for m in MODULE_EXCEPTIONS if modules.get(m, 0) <= MAX_MODULE_LINES]
    stale += [f for f in FUNCTION_EXCEPTIONS if functions.get(f, 0) <= MAX_FUNCTION_LINES]
    assert not stale, f"remove from the allow-list: {stale}"

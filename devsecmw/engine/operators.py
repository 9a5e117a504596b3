"""Operators: how a rule decides that a (transformed) value matches.

Each operator is built once from the rule's parameters and offers:

- ``prefilter``: an RE2 pattern that must occur in the value for the operator
  to possibly match. The engine compiles the prefilters of all rules of a view
  into one multi-pattern matcher and scans all values at once, so the common
  case (nothing suspicious) costs one linear scan per view.
- ``evaluate(value, item)``: the exact decision, run only on prefilter hits,
  returning the ``(start, end)`` of the evidence or ``None``.

Registries are by name; an unknown name is an error that quotes it.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from typing import Any, Protocol

from .matcher import Pattern, compile_pattern

Span = tuple[int, int]


class ItemLike(Protocol):
    utf8: bool


class Operator(Protocol):
    prefilter: str | None

    def evaluate(self, value: str, item: ItemLike) -> Span | None: ...


class Regex:
    """``rx``: an RE2 regular expression (use ``(?i)`` for case-insensitive rules)."""

    __slots__ = ("_compiled", "prefilter")

    def __init__(self, pattern: str) -> None:
        if not isinstance(pattern, str) or not pattern:
            raise ValueError("rx needs a non-empty pattern string")
        self._compiled: Pattern = compile_pattern(pattern)
        self.prefilter: str | None = pattern

    def evaluate(self, value: str, item: ItemLike) -> Span | None:
        return self._compiled.search(value)


def _phrase_pattern(phrases: list[str], words: bool) -> str:
    if not isinstance(phrases, list) or not phrases or not all(isinstance(p, str) and p for p in phrases):
        raise ValueError("pm needs a non-empty list of non-empty strings")
    # Longest first so the evidence shows the most specific phrase; ties in a stable order (the
    # pattern is part of a cache key, see hsscan).
    alts = "|".join(re.escape(p) for p in sorted(set(phrases), key=lambda p: (-len(p), p)))
    if words:
        return rf"(?i)(?:^|[^a-z0-9_])(?:{alts})(?:[^a-z0-9_]|$)"
    return rf"(?i)(?:{alts})"


class PhraseMatch(Regex):
    """``pm``: any of a list of phrases, case-insensitive (``pm_words``: whole words only)."""

    def __init__(self, phrases: list[str], words: bool = False) -> None:
        super().__init__(_phrase_pattern(phrases, words))


class InvalidUtf8:
    """The value's bytes were not valid UTF-8 (emits the ``not_utf8`` anomaly)."""

    prefilter: str | None = None

    def __init__(self, _param: Any = None) -> None:
        pass

    def evaluate(self, value: str, item: ItemLike) -> Span | None:
        return None if item.utf8 else (0, min(len(value), 64))


class Lazy:
    """An operator implemented in its own module (tokenizers, URL parsers), imported on first use.

    The module exposes ``PREFILTER`` (an RE2 pattern, or None) and
    ``detect(value: str) -> (start, end) | None``.
    """

    __slots__ = ("_detect", "prefilter")

    def __init__(self, module: str, param: Any = None) -> None:
        mod = importlib.import_module(f"devsecmw.engine.{module}")
        factory = getattr(mod, "make_detector", None)
        self._detect: Callable[[str], Span | None]
        if factory is not None:
            self._detect = factory(param)
        else:
            self._detect = mod.detect
        prefilter = param.get("prefilter") if isinstance(param, dict) else None
        self.prefilter = prefilter or getattr(mod, "PREFILTER", None)

    def evaluate(self, value: str, item: ItemLike) -> Span | None:
        return self._detect(value)


def _lazy(module: str) -> Callable[[Any], Operator]:
    return lambda param: Lazy(module, param)


OPERATORS: dict[str, Callable[[Any], Operator]] = {
    "rx": Regex,
    "pm": lambda p: PhraseMatch(p, words=False),
    "pm_words": lambda p: PhraseMatch(p, words=True),
    "contains": lambda p: Regex(re.escape(p)),
    "invalid_utf8": lambda p: InvalidUtf8(p),
    "detect_sqli": _lazy("sqli"),
    "detect_xss": _lazy("xss"),
    "detect_ssrf": _lazy("ssrf"),
    "detect_protocol": _lazy("protocol"),
    "detect_param_guessing": _lazy("scanner"),
}


def build(name: str, param: Any) -> Operator:
    try:
        factory = OPERATORS[name]
    except KeyError:
        allowed = ", ".join(sorted(OPERATORS))
        raise ValueError(f"invalid operator {name!r} (must be one of {allowed})") from None
    return factory(param)


__all__ = ["OPERATORS", "InvalidUtf8", "Operator", "PhraseMatch", "Regex", "Span", "build"]

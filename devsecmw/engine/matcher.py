"""Linear-time pattern matching.

All patterns of one view are compiled once into a multi-pattern matcher: one
scan of the text says which patterns occur anywhere in it. RE2 (``google-re2``)
is the engine: it guarantees time linear in the input for every pattern, so no
request can make a rule backtrack catastrophically. The standard ``re`` module
is a fallback for platforms without an RE2 wheel; it is only used when RE2 is
missing, and says so in the log.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Protocol

logger = logging.getLogger("devsecmw")

try:  # pragma: no cover - import-time platform probe
    import re2 as _re2

    _opts = _re2.Options()
    _opts.max_mem = 64 << 20
    _opts.log_errors = False
    HAVE_RE2 = True
except ImportError:  # pragma: no cover
    _re2 = None
    HAVE_RE2 = False


class Pattern(Protocol):
    def search(self, text: str) -> tuple[int, int] | None: ...


class MultiMatcher(Protocol):
    def match(self, text: str) -> list[int]: ...


class _Re2Pattern:
    __slots__ = ("_rx",)

    def __init__(self, pattern: str) -> None:
        assert _re2 is not None
        self._rx = _re2.compile(pattern, _opts)

    def search(self, text: str) -> tuple[int, int] | None:
        m = self._rx.search(text)
        return m.span() if m is not None else None


class _RePattern:
    __slots__ = ("_rx",)

    def __init__(self, pattern: str) -> None:
        self._rx = re.compile(pattern)

    def search(self, text: str) -> tuple[int, int] | None:
        m = self._rx.search(text)
        return m.span() if m is not None else None


class _Re2Set:
    __slots__ = ("_set",)

    def __init__(self, patterns: Sequence[str]) -> None:
        assert _re2 is not None
        self._set = _re2.Set.SearchSet(_opts)
        for p in patterns:
            self._set.Add(p)
        self._set.Compile()

    def match(self, text: str) -> list[int]:
        return self._set.Match(text) or []


class _ReSet:
    """Fallback: one alternation tells whether anything matches, then each pattern is tried."""

    __slots__ = ("_any", "_each")

    def __init__(self, patterns: Sequence[str]) -> None:
        self._each = [re.compile(p) for p in patterns]
        self._any = re.compile("|".join(f"(?:{p})" for p in patterns)) if patterns else None

    def match(self, text: str) -> list[int]:
        if self._any is None or not self._any.search(text):
            return []
        return [i for i, rx in enumerate(self._each) if rx.search(text)]


def compile_pattern(pattern: str) -> Pattern:
    """Compile one pattern (RE2 syntax). Raises ``ValueError`` with RE2's complaint."""
    if HAVE_RE2:
        try:
            return _Re2Pattern(pattern)
        except _re2.error as exc:
            raise ValueError(f"invalid pattern {pattern!r}: {exc}") from None
    try:
        return _RePattern(pattern)
    except re.error as exc:
        raise ValueError(f"invalid pattern {pattern!r}: {exc}") from None


def compile_set(patterns: Sequence[str]) -> MultiMatcher:
    if HAVE_RE2:
        return _Re2Set(patterns)
    logger.warning("devsecmw: google-re2 is not installed; falling back to re (not linear-time)")
    return _ReSet(patterns)


__all__ = ["HAVE_RE2", "MultiMatcher", "Pattern", "compile_pattern", "compile_set"]

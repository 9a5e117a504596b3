"""Fail open: devsecmw's own errors are logged once per kind, counted, and swallowed.

Application exceptions are never handled here; adapters re-raise them untouched.
Tests register an observer that turns every swallowed error into a failure,
so the safety net cannot hide a bug (the sentry-python pattern).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

logger = logging.getLogger("devsecmw")

Observer = Callable[[str, BaseException], None]

_logged: set[tuple[str, str]] = set()
_observers: list[Observer] = []
_MAX_LOGGED = 256  # bounded: a flood of distinct errors cannot grow this set forever


def add_observer(observer: Observer) -> None:
    _observers.append(observer)


def remove_observer(observer: Observer) -> None:
    if observer in _observers:
        _observers.remove(observer)


def report(stage: str, exc: BaseException, count: Callable[[str, str], None] | None = None) -> None:
    """Record an internal error of ``stage``; never raises."""
    try:
        kind = (stage, type(exc).__name__)
        if kind not in _logged and len(_logged) < _MAX_LOGGED:
            _logged.add(kind)
            logger.error(
                "devsecmw internal error in %s (request continues unaffected; "
                "further %s errors here are only counted)",
                stage,
                type(exc).__name__,
                exc_info=exc,
            )
        if count is not None:
            count(stage, type(exc).__name__)
        for observer in list(_observers):
            observer(stage, exc)
    except Exception:  # pragma: no cover - logging itself failed; nothing safer to do
        pass


__all__ = ["add_observer", "logger", "remove_observer", "report"]

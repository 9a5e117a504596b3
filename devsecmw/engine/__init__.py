"""Detection: turn a :class:`~devsecmw.request.HttpRequest` into signals.

The adapters only know the :class:`Detector` protocol; :class:`Engine` is the
default implementation (rules as data, linear-time matching).
"""

from __future__ import annotations

from typing import Protocol

from ..request import HttpRequest
from ..signals import Signal
from .engine import Budget, Engine
from .rules import Rule, RuleError

PHASES = ("head", "body")


class Detector(Protocol):
    """What the middleware calls. ``phase`` is ``"head"`` (request line, query, headers,
    cookies: before the app runs) or ``"body"`` (what the app read of the body)."""

    def inspect(self, request: HttpRequest, phase: str, budget: Budget | None = None) -> list[Signal]: ...


__all__ = ["PHASES", "Budget", "Detector", "Engine", "Rule", "RuleError"]

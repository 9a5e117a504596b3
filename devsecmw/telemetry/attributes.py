"""Bounded attribute values derived from a request or its signals: the normalised method, the
primary attack type, the game-day run id, and reading an attribute another instrumentation set."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry import trace

from ..request import HttpRequest
from ..signals import ATTACK_TYPES, Signal
from .names import EVENT_NAME, GAMEDAY_HEADER, KNOWN_METHODS

_RUN_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")

#: Attack types that say how a request was sent rather than what it tried: on a request that also
#: carries a specific attack (a sqlmap user agent and its SQL injection), the specific one is primary.
_GENERIC_ATTACKS = frozenset({"scanner", "protocol"})
#: Tie-break among equally severe specific attacks: the order of SPEC.md's vocabulary.
_ATTACK_ORDER = {
    t: i
    for i, t in enumerate(
        (
            "sqli", "xss", "cmdi", "traversal", "rfi", "ssrf", "xxe", "ssti", "nosqli", "log4shell",
            "php", "java", "nodejs", "code_injection", "scanner", "protocol", "session_fixation",
            "backdoor",
        )
    )
}  # fmt: skip


def primary_attack_type(signals: Iterable[Signal]) -> str | None:
    """The one attack type a request is counted under on ``devsecmw.requests``, or ``None``.

    A specific attack before ``scanner``/``protocol``, then the highest severity, then SPEC.md's
    order: deterministic for a given set of signals, and always a member of the attack vocabulary
    (a type outside it, from a custom detector, is never a label value).
    """
    best: tuple[bool, int, int] | None = None
    best_type: str | None = None
    for s in signals:
        t = s.type
        if t not in ATTACK_TYPES:
            continue
        rank = (t not in _GENERIC_ATTACKS, int(s.severity), -_ATTACK_ORDER.get(t, len(_ATTACK_ORDER)))
        if best is None or rank > best:
            best, best_type = rank, t
    return best_type


def gameday_run_id(request: HttpRequest) -> str | None:
    """The game-day run id a request carries, or ``None``: 1 to 64 of ``A-Z a-z 0-9 . _ -``,
    starting with a letter or digit. Anyone can send the header: it labels a span, it
    exempts nothing; anything else (too long, repeated, other characters) is ignored."""
    value = request.header(GAMEDAY_HEADER)
    if value is None or not 0 < len(value) <= 64 or not value[0].isalnum():
        return None
    return value if _RUN_ID_CHARS.issuperset(value) else None


def normalize_method(method: str) -> str:
    upper = method.upper()
    return upper if upper in KNOWN_METHODS else "_OTHER"


def _attr(span: trace.Span, *names: str) -> Any:
    attrs = getattr(span, "attributes", None)
    if not attrs:
        return None
    for n in names:
        v = attrs.get(n)
        if v is not None:
            return v
    return None


def event_attributes(span_events: Iterable[Any]) -> list[Mapping[str, Any]]:
    """The attributes of ``devsecmw.signal`` events of a finished SDK span (for tests and tools)."""
    return [e.attributes for e in span_events if e.name == EVENT_NAME]

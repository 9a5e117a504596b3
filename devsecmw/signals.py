"""The signal vocabulary of SPEC.md and the engine's output types.

A :class:`Signal` is one finding (an attack pattern in a parameter, a 5xx, a
flagged client). A :class:`Verdict` is the decision over all signals of one
request. Detection produces signals; :mod:`devsecmw.scoring` turns them into a
verdict; :mod:`devsecmw.telemetry` emits both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

ATTACK_TYPES: frozenset[str] = frozenset(
    {
        "sqli",
        "xss",
        "cmdi",
        "traversal",
        "rfi",
        "ssrf",
        "xxe",
        "ssti",
        "nosqli",
        "log4shell",
        "php",
        "java",
        "nodejs",
        "code_injection",
        "scanner",
        "protocol",
        "session_fixation",
        "backdoor",
    }
)

ANOMALY_TYPES: frozenset[str] = frozenset(
    {
        "http_5xx",
        "http_404",
        "auth_failure",
        "rate_limited",
        "attack_5xx",
        "response_leak",
        "not_utf8",
        "null_byte",
        "double_encoding",
        "private_file",
        "client_flagged",
        "inspection_incomplete",
    }
)

#: A cap or the time budget stopped inspection before the whole request was read; the
#: location says where (``query``, ``query.count``, ``header:x-foo``, ``body``, ``budget``).
INSPECTION_INCOMPLETE = "inspection_incomplete"

SIGNAL_TYPES: frozenset[str] = ATTACK_TYPES | ANOMALY_TYPES


class Severity(IntEnum):
    """Points a signal adds to the request score (the CRS anomaly-scoring scale)."""

    INFO = 0
    NOTICE = 2
    WARNING = 3
    ERROR = 4
    CRITICAL = 5

    @classmethod
    def parse(cls, value: str | int) -> Severity:
        if isinstance(value, int):
            return cls(value)
        try:
            return cls[value.upper()]
        except KeyError:
            allowed = ", ".join(m.name.lower() for m in cls)
            raise ValueError(f"invalid severity {value!r} (must be one of {allowed})") from None


class Classification:
    ATTACK = "attack"
    ANOMALY = "anomaly"
    BENIGN = "benign"


@dataclass(frozen=True, slots=True)
class Signal:
    """One finding on one request.

    ``evidence`` is already redacted and at most 64 characters long: a signal
    can be handed to telemetry as it is.
    """

    type: str
    location: str
    evidence: str = ""
    severity: Severity = Severity.WARNING
    rule_id: str | None = None
    rule_name: str | None = None
    category: str | None = None
    ruleset: str | None = None

    @property
    def is_attack(self) -> bool:
        return self.type in ATTACK_TYPES

    @property
    def key(self) -> tuple[str, str, str | None]:
        """What makes two signals the same finding (for de-duplication)."""
        return (self.type, self.location, self.rule_id)


@dataclass(slots=True)
class Verdict:
    """The decision over one request's signals."""

    classification: str = Classification.BENIGN
    score: int = 0
    signals: list[Signal] = field(default_factory=list)
    blocked: bool = False
    would_block: bool = False

    @property
    def types(self) -> list[str]:
        seen: dict[str, None] = {}
        for s in self.signals:
            seen.setdefault(s.type, None)
        return list(seen)

    @property
    def is_attack(self) -> bool:
        return any(s.is_attack for s in self.signals)


__all__ = [
    "ANOMALY_TYPES",
    "ATTACK_TYPES",
    "INSPECTION_INCOMPLETE",
    "SIGNAL_TYPES",
    "Classification",
    "Severity",
    "Signal",
    "Verdict",
]

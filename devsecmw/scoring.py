"""Decision, kept apart from detection (CRS 949 beside the 9xx detection files).

The score is the visible sum of the signals' severities: each distinct rule
counts once per request, however many parameters it fired on.
"""

from __future__ import annotations

from collections.abc import Iterable

from .config import Config
from .signals import Classification, Signal, Verdict


def score(signals: Iterable[Signal]) -> int:
    seen: dict[tuple[str, str | None], int] = {}
    for s in signals:
        key = (s.type, s.rule_id)
        seen[key] = max(seen.get(key, 0), int(s.severity))
    return sum(seen.values())


def decide(signals: list[Signal], config: Config, blocking_possible: bool = True) -> Verdict:
    """Classify and, in block mode, decide whether to block (only attack signals can block)."""
    total = score(signals)
    attack_score = score(s for s in signals if s.is_attack)
    if not signals:
        cls = Classification.BENIGN
    elif attack_score >= config.attack_threshold:
        cls = Classification.ATTACK
    else:
        cls = Classification.ANOMALY
    over = attack_score >= config.block_threshold
    return Verdict(
        classification=cls,
        score=total,
        signals=signals,
        blocked=over and blocking_possible and config.mode == "block",
        would_block=over,
    )


__all__ = ["decide", "score"]

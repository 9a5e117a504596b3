"""Decision, kept apart from detection (CRS 949 beside the 9xx detection files).

The score is the visible sum of the signals' severities: each distinct rule
counts once per request, however many parameters it fired on.
"""

from __future__ import annotations

from collections.abc import Iterable

from .config import Config
from .signals import INSPECTION_INCOMPLETE, Classification, Signal, Verdict


def score(signals: Iterable[Signal]) -> int:
    seen: dict[tuple[str, str | None], int] = {}
    for s in signals:
        key = (s.type, s.rule_id)
        seen[key] = max(seen.get(key, 0), int(s.severity))
    return sum(seen.values())


def decide(signals: list[Signal], config: Config) -> Verdict:
    """Classify a request from all its signals (request, response, client)."""
    if not signals:  # most requests: nothing to score
        return Verdict(classification=Classification.BENIGN, score=0, signals=signals)
    total = score(signals)
    attack_score = score(s for s in signals if s.is_attack)
    if not signals:
        cls = Classification.BENIGN
    elif attack_score >= config.attack_threshold:
        cls = Classification.ATTACK
    else:
        cls = Classification.ANOMALY
    return Verdict(classification=cls, score=total, signals=signals)


def should_block(signals: list[Signal], config: Config, flagged: bool = False) -> bool:
    """Whether the request's own signals (or its flagged client) call for a block.

    Anomaly signals alone never block, but ``inspection_incomplete`` when ``block_incomplete``
    is set; ``block_types`` narrows which attacks count.
    Mode is not considered here: monitor mode reports this as ``would_block``.
    """
    if flagged and config.block_flagged:
        return True
    if not signals:
        return False
    if config.block_incomplete and any(s.type == INSPECTION_INCOMPLETE for s in signals):
        return True
    attacks = [s for s in signals if s.is_attack and (not config.block_types or s.type in config.block_types)]
    return bool(attacks) and score(attacks) >= config.block_threshold


__all__ = ["decide", "score", "should_block"]

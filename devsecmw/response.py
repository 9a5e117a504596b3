"""Response analysis: what the application answered, as signals.

Status classes become anomaly signals; an attack on a request that ended in a
5xx (or an exception) becomes ``attack_5xx``: an attacker who found a real bug,
on one span.
"""

from __future__ import annotations

from .signals import Severity, Signal

HTTP_5XX = Signal("http_5xx", "response:status", "", Severity.INFO)
HTTP_404 = Signal("http_404", "response:status", "404", Severity.INFO)
RATE_LIMITED = Signal("rate_limited", "response:status", "429", Severity.INFO)


def status_signals(status: int | None, exception: BaseException | None = None) -> list[Signal]:
    """Anomaly signals for a response status; an escaped exception counts as a 500."""
    if exception is not None and (status is None or status < 500):
        return [Signal("http_5xx", "response:exception", type(exception).__name__, Severity.INFO)]
    if status is None:
        return []
    if status >= 500:
        return [Signal("http_5xx", "response:status", str(status), Severity.INFO)]
    if status == 404:
        return [HTTP_404]
    if status in (401, 403):
        return [Signal("auth_failure", "response:status", str(status), Severity.INFO)]
    if status == 429:
        return [RATE_LIMITED]
    return []


def correlate(signals: list[Signal]) -> list[Signal]:
    """``attack_5xx`` when the request carried an attack signal and ended in a 5xx."""
    if not any(s.type == "http_5xx" for s in signals):
        return []
    attacks = [s for s in signals if s.is_attack]
    if not attacks:
        return []
    types = sorted({s.type for s in attacks})
    return [Signal("attack_5xx", "response:status", ",".join(types)[:64], Severity.ERROR)]


def leak_after_attack(signals: list[Signal]) -> bool:
    """The strongest evidence of a working exploit: an attack answered with a leak."""
    return any(s.type == "response_leak" for s in signals) and any(s.is_attack for s in signals)


__all__ = ["correlate", "status_signals"]

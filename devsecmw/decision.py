"""The decision on one request, written once: used by the middleware (``core.Inspection``),
``devsecmw scan`` and so the demo (whose summary reads the middleware's verdicts).

Pure functions of the signals and the configuration: state (the client windows, the user's
``before_emit`` hook) comes in as callbacks, so each caller passes what it has and none can
combine the steps in another order.

Steps, in order: exclusions (on the request's own signals, at the route once routed, else the
path); status signals of the app's answer (not of a block response); response leaks, less their
exclusions (raised to critical after an attack: the exploit worked); ``attack_5xx``; the
client's windows (which may add ``client_flagged``); the ``before_emit`` hook; then score and
classification (:func:`devsecmw.scoring.decide`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from .config import Config, Exclusion
from .response import correlate, status_signals
from .scoring import decide, should_block
from .signals import Severity, Signal, Verdict

#: The client step: told whether the request was an attack, returns a ``client_flagged``
#: signal when the client's windows cross a threshold now.
ObserveClient = Callable[[bool], "Signal | None"]
#: The ``before_emit`` step over the final list of signals (non-empty).
Hook = Callable[[list[Signal]], list[Signal]]


def excluded(
    signals: list[Signal], config: Config, where: str, exclusions: Sequence[Exclusion] | None = None
) -> list[Signal]:
    """``signals`` less those an exclusion switches off at ``where`` (the route, else the path).

    ``exclusions`` defaults to ``config.exclusions``; a caller that prepared them at start-up
    (the runtime) passes its own.
    """
    rules = config.exclusions if exclusions is None else exclusions
    if not rules or not signals:
        return signals
    return [s for s in signals if not any(x.applies(s.rule_id, s.type, where, s.location) for x in rules)]


def block_wanted(
    signals: list[Signal],
    config: Config,
    where: str,
    flagged: bool = False,
    exclusions: Sequence[Exclusion] | None = None,
) -> bool:
    """Whether the request's signals, less exclusions, or its flagged client call for a block.

    Mode and allow-lists are the caller's: monitor mode records this as ``would_block``.
    """
    return should_block(excluded(signals, config, where, exclusions), config, flagged)


def decide_request(
    signals: list[Signal],
    config: Config,
    *,
    where: str,
    status: int | None = None,
    exception: BaseException | None = None,
    blocked: bool = False,
    leaked: Sequence[Signal] = (),
    observe: ObserveClient | None = None,
    hook: Hook | None = None,
    exclusions: Sequence[Exclusion] | None = None,
) -> Verdict:
    """The verdict on a request from its detection signals and how it was answered.

    ``signals`` is never mutated. A request with no signal, a 2xx/3xx answer and no leak has
    nothing to combine: each step skips on empty input, and no list is built for it.
    """
    signals = excluded(signals, config, where, exclusions)
    if not blocked and (exception is not None or (status is not None and status >= 400)):
        # A block response's status is devsecmw's, not the app's answer; below 400 nothing.
        answered = status_signals(status, exception)
        if answered:
            signals = signals + answered
    if leaked:  # response rules are excluded (id, type, tag, route, location) as request rules are
        leaked = excluded(list(leaked), config, where, exclusions)
    if leaked:
        if any(s.is_attack for s in signals):
            # An attack answered with a database error or a stack trace: the exploit worked.
            signals = signals + [dataclasses.replace(s, severity=Severity.CRITICAL) for s in leaked]
        else:
            signals = signals + list(leaked)
    attack = False
    if signals:
        correlated = correlate(signals)
        if correlated:
            signals = signals + correlated
        attack = any(s.is_attack for s in signals)
    if observe is not None:
        flag = observe(attack)
        if flag is not None:
            signals = [*signals, flag]
    if hook is not None and signals:
        signals = hook(signals)
    return decide(signals, config)


__all__ = ["Hook", "ObserveClient", "block_wanted", "decide_request", "excluded"]

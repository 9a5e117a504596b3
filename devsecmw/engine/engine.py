"""The rule engine: runs every enabled rule on every value it targets, in linear time.

Per phase (``head``: request line, query, cookies, headers; ``body``: the parsed
body) and per transform chain ("view"), the values are transformed once and
scanned together by one multi-pattern matcher built from the rules'
prefilters. Only rules whose prefilter occurs are then evaluated, value by
value. Detection ends here: scoring and blocking decisions live in
:mod:`devsecmw.scoring`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from .. import redact
from ..config import Config
from ..request import HttpRequest
from ..signals import Signal
from . import transforms as tf
from .matcher import MultiMatcher, compile_set
from .rules import Rule, load_all
from .targets import Item, body_items, head_items

_SEP = "\n\x00\n"  # between values in a scan: rules rarely span it, and hits are re-checked per value


@dataclass(slots=True)
class Budget:
    """Per-request inspection time budget; the engine stops early once past ``deadline``."""

    deadline: float
    exhausted: bool = False

    def expired(self) -> bool:
        if time.perf_counter() > self.deadline:
            self.exhausted = True
        return self.exhausted


@dataclass(slots=True)
class _View:
    chain: tuple[str, ...]
    rules: list[Rule]
    always: list[Rule]  # rules without a prefilter: evaluated on every value they target
    matcher: MultiMatcher | None
    keys: frozenset[str]
    any_header: bool
    excluded_from_all: frozenset[str] = field(default_factory=frozenset)

    def wants(self, key: str) -> bool:
        if key in self.keys:
            return True
        return self.any_header and key.startswith("header:")


def _build_views(rules: Sequence[Rule], phase: str) -> list[_View]:
    by_chain: dict[tuple[str, ...], list[Rule]] = {}
    for r in rules:
        if phase in r.phases:
            by_chain.setdefault(r.transforms, []).append(r)
    views = []
    for chain, rs in by_chain.items():
        pre = [r for r in rs if r.operator.prefilter]
        always = [r for r in rs if not r.operator.prefilter]
        keys: set[str] = set()
        for r in rs:
            keys.update(r.targets)
        # Values are scanned joined by _SEP (which holds newlines): multi-line mode lets "^" and
        # "$" match at every value's edges, a superset of the per-value match that decides.
        prefilters = ["(?m)" + r.operator.prefilter for r in pre if r.operator.prefilter]
        matcher = compile_set(prefilters) if pre else None
        views.append(_View(chain, pre, always, matcher, frozenset(keys), any_header="headers" in keys))
    return views


class Engine:
    """The default :class:`~devsecmw.engine.Detector`: packaged rules plus the user's."""

    def __init__(self, config: Config | None = None, rules: Sequence[Rule] | None = None) -> None:
        self.config = config or Config()
        if rules is None:
            rules = load_all(self.config.rule_files, self.config.disabled_rules)
        self.rules = [r for r in rules if r.paranoia <= self.config.paranoia_level]
        self._views = {"head": _build_views(self.rules, "head"), "body": _build_views(self.rules, "body")}
        self._extra_secret_names = self.config.redact_names

    def inspect(self, request: HttpRequest, phase: str, budget: Budget | None = None) -> list[Signal]:
        items = head_items(request) if phase == "head" else body_items(request)
        if not items:
            return []
        signals: list[Signal] = []
        for view in self._views[phase]:
            if budget is not None and budget.expired():
                break
            self._run_view(view, items, signals, budget)
        return signals

    def _run_view(self, view: _View, items: list[Item], out: list[Signal], budget: Budget | None) -> None:
        chain = view.chain
        texts: list[tuple[Item, str]] = []
        for it in items:
            if view.wants(it.key):
                v = it.value
                for name in chain:
                    v = tf.TRANSFORMS[name](v)[0]
                texts.append((it, v))
        if not texts:
            return
        candidates: list[Rule] = list(view.always)
        if view.matcher is not None:
            hits = view.matcher.match(_SEP.join(t for _, t in texts))
            candidates.extend(view.rules[i] for i in hits)
        for rule in candidates:
            if budget is not None and budget.expired():
                return
            for it, text in texts:
                if not rule.applies_to(it.key):
                    continue
                span = rule.operator.evaluate(text, it)
                if span is None:
                    continue
                out.append(
                    Signal(
                        type=rule.type,
                        location=it.location,
                        evidence=redact.evidence(
                            it.location, text, span[0], span[1], self._extra_secret_names
                        ),
                        severity=rule.severity,
                        rule_id=rule.id,
                        rule_name=rule.name,
                        category=rule.category,
                        ruleset=rule.ruleset,
                    )
                )


__all__ = ["Budget", "Engine"]

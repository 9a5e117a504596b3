"""``devsecmw tune``: exclusions proposed from what devsecmw saw on real traffic.

Reads span records (``devsecmw gameday --save``, the OpenTelemetry Collector's file
exporter as OTLP JSON lines: anything :func:`devsecmw.gameday.records.iter_file` reads)
or the JSON lines of ``devsecmw scan --json``, and proposes exclusions
(``rules``/``route``/``location``, the shape of the ``exclusions`` option) for the
noisiest locations that look benign.

What "looks benign" means, without labels: a false positive is a rule that fires on a
parameter of ordinary traffic, so it fires on a sizeable share of its route's requests,
alone (no other attack rule on the same request), and the application answers normally.
An attacker's probes are a small share, fire several rules, and end in errors. So a
(rule, route, location) is proposed when it fired on at least ``min_count`` requests and
``min_share`` of its route's requests, at least ``quiet`` of them with that one attack
rule and no 5xx. Requests of a game day (``devsecmw.gameday.run_id``) and requests whose
attack ended in a 5xx or a response leak are never counted as noise. Rows of
``devsecmw scan`` labeled ``benign`` are false positives by definition: each location
where they fired is proposed; rows labeled ``attack`` are skipped.

Proposals are printed as a table and, with ``--format``, as TOML for ``[tool.devsecmw]``
or as JSON for ``DEVSECMW_EXCLUSIONS``. Review them before use: an exclusion is a blind
spot by design.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .signals import ATTACK_TYPES

#: A numeric segment of a JSON/form path (``items.3.name``, ``items[3]``): values of one
#: array are one location for an exclusion (``body:json:items.*``).
_INDEX = re.compile(r"(?:\.|\[)\d+(?:\]|(?=\.|$))")


@dataclass(frozen=True, slots=True)
class Seen:
    """One request as tuning needs it: route, status, and its attack signals."""

    route: str | None
    status: int | None
    #: (rule id or signal type, signal type, location) of each attack signal.
    signals: tuple[tuple[str, str, str], ...]
    #: Known false positive (a ``scan`` row labeled benign).
    benign: bool = False
    #: Not counted as noise whatever it carries (game day, exploit that worked).
    excluded: bool = False


@dataclass(slots=True)
class Proposal:
    rule: str
    signal_type: str
    route: str | None
    location: str
    count: int
    share: float
    quiet: float

    def as_exclusion(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rules": [self.rule]}
        if self.route is not None:
            out["route"] = self.route
        out["location"] = self.location
        return out


def generalise(location: str) -> str:
    """``body:json:items.3.name`` -> ``body:json:items.*``: one exclusion for an array's values."""
    m = _INDEX.search(location)
    return location[: m.start()] + ".*" if m else location


def from_span_record(record: dict[str, Any]) -> Seen | None:
    attrs = record.get("attributes") or {}
    if not isinstance(attrs, dict) or "devsecmw.classification" not in attrs:
        return None  # not a span devsecmw finished
    signals = []
    other: set[str] = set()
    for event in record.get("events") or []:
        if not isinstance(event, dict) or event.get("name") != "devsecmw.signal":
            continue
        ea = event.get("attributes") or {}
        stype = str(ea.get("devsecmw.signal.type", ""))
        if stype in ATTACK_TYPES:
            rule = str(ea.get("security_rule.uuid") or stype)
            signals.append((rule, stype, str(ea.get("devsecmw.signal.location", ""))))
        else:
            other.add(stype)
    status = attrs.get("http.response.status_code")
    route = attrs.get("http.route")
    return Seen(
        route=str(route) if route else None,
        status=status if isinstance(status, int) else None,
        signals=tuple(signals),
        excluded=bool(attrs.get("devsecmw.gameday.run_id")) or bool({"attack_5xx", "response_leak"} & other),
    )


def from_scan_row(row: dict[str, Any]) -> Seen | None:
    if "classification" not in row or not isinstance(row.get("signals"), list):
        return None
    signals = tuple(
        (str(s.get("rule") or s.get("type")), str(s.get("type")), str(s.get("location", "")))
        for s in row["signals"]
        if isinstance(s, dict) and s.get("type") in ATTACK_TYPES
    )
    return Seen(
        None, None, signals, benign=row.get("expect") == "benign", excluded=row.get("expect") == "attack"
    )


def read(paths: Iterable[str | Path]) -> Iterator[Seen]:
    """Requests from span-record / OTLP JSON files and ``scan --json`` output, line by line."""
    from .gameday import records

    for path in paths:
        for doc in records.iter_json_lines(path):
            if isinstance(doc, dict) and "classification" in doc and "signals" in doc:
                seen = from_scan_row(doc)
                if seen is not None:
                    yield seen
                continue
            for record in records.parse_line(doc):
                seen = from_span_record(record)
                if seen is not None:
                    yield seen


def propose(
    requests: Iterable[Seen],
    min_count: int = 10,
    min_share: float = 0.02,
    quiet: float = 0.9,
    limit: int = 20,
) -> list[Proposal]:
    """The exclusions worth proposing, noisiest first (see the module docstring)."""
    per_route: Counter[str | None] = Counter()
    hits: Counter[tuple[str, str, str | None, str]] = Counter()
    calm: Counter[tuple[str, str, str | None, str]] = Counter()
    known: Counter[tuple[str, str, str | None, str]] = Counter()
    for req in requests:
        per_route[req.route] += 1
        if req.excluded or not req.signals:
            continue
        rules = {rule for rule, _, _ in req.signals}
        ok = len(rules) == 1 and (req.status is None or req.status < 500)
        for key in {(rule, stype, req.route, generalise(loc)) for rule, stype, loc in req.signals}:
            hits[key] += 1
            calm[key] += ok
            known[key] += req.benign
    out = []
    for key, n in hits.items():
        rule, stype, route, location = key
        share = n / per_route[route] if per_route[route] else 0.0
        calm_share = calm[key] / n
        if known[key] or (n >= min_count and share >= min_share and calm_share >= quiet):
            out.append(Proposal(rule, stype, route, location, n, share, calm_share))
    out.sort(key=lambda p: (-p.count, p.rule, p.route or "", p.location))
    return out[:limit]


def as_toml(proposals: Iterable[Proposal]) -> str:
    lines = []
    for p in proposals:
        lines.append(f"# {p.signal_type} rule {p.rule}: {p.count} requests, {p.share:.0%} of the route's")
        lines.append("[[tool.devsecmw.exclusions]]")
        for k, v in p.as_exclusion().items():
            lines.append(f"{k} = {json.dumps(v)}")
        lines.append("")
    return "\n".join(lines)


def as_json(proposals: Iterable[Proposal]) -> str:
    return json.dumps([p.as_exclusion() for p in proposals])


def as_table(proposals: list[Proposal]) -> str:
    if not proposals:
        return "no exclusion to propose: no location fired often, alone and quietly enough"
    rows = [("rule", "type", "route", "location", "requests", "share", "alone+ok")]
    rows += [
        (p.rule, p.signal_type, p.route or "*", p.location, str(p.count), f"{p.share:.1%}", f"{p.quiet:.0%}")
        for p in proposals
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


__all__ = ["Proposal", "Seen", "as_json", "as_table", "as_toml", "generalise", "propose", "read"]

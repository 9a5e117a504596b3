"""The game-day scorecard: what was sent per category, and what the telemetry showed.

Pure functions of the suite, what each request got back, and the evidence (span
records received over OTLP, or signal counts read from Prometheus): tested on their
own, and the JSON they produce is what ``devsecmw report`` reads.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..signals import ATTACK_TYPES
from .records import Record
from .suite import BURST_404, BURST_AUTH, PARAM, Probe

#: The client-side statuses that make a burst row required: the service answered that way,
#: so devsecmw should have reported it.
_EXPECTED = {BURST_404: frozenset({404}), BURST_AUTH: frozenset({401, 403})}


@dataclass(slots=True)
class Outcome:
    """What became of one probe on the wire."""

    probe: Probe
    sent_at: float  # Unix seconds
    status: int | None = None
    error: str | None = None
    #: The response looked like devsecmw's block response (JSON ``{"error": "request blocked"}``).
    blocked: bool = False


@dataclass(slots=True)
class Row:
    category: str
    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    seen: int = 0
    right_type: int = 0
    blocked: int = 0
    #: Seconds from the first request of the category to the first right-typed evidence.
    time_to_appear: float | None = None
    #: Whether the row decides the exit code (always for attacks; bursts when answered 404/401/403).
    required: bool = True
    other_types: Counter[str] = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        return self.right_type > 0 or not self.required

    def as_dict(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "kind": "attack" if self.category in ATTACK_TYPES else "anomaly",
            "sent": self.sent,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items(), key=lambda kv: str(kv[0]))},
            "seen": self.seen,
            "right_type": self.right_type,
            "blocked": self.blocked,
            "time_to_appear": None if self.time_to_appear is None else round(self.time_to_appear, 3),
            "required": self.required,
            "ok": self.ok,
            "other_types": dict(self.other_types.most_common(8)),
        }


def span_types(record: Mapping[str, Any]) -> set[str]:
    """Signal types of a span record: its ``devsecmw.signal.types`` and its signal events."""
    attrs = record.get("attributes") or {}
    listed = attrs.get("devsecmw.signal.types")
    types = {str(t) for t in listed} if isinstance(listed, list | tuple) else set()
    for e in record.get("events") or ():
        if isinstance(e, Mapping) and e.get("name") == "devsecmw.signal":
            t = (e.get("attributes") or {}).get("devsecmw.signal.type")
            if t:
                types.add(str(t))
    return types


def has_verdict(record: Mapping[str, Any]) -> bool:
    return "devsecmw.classification" in (record.get("attributes") or {})


def _seq_of(record: Mapping[str, Any], run_id: str) -> int | None:
    """The probe number in the span's ``url.query`` (when a proxy replaced the trace context)."""
    attrs = record.get("attributes") or {}
    query = str(attrs.get("url.query") or attrs.get("http.target") or attrs.get("url.full") or "")
    marker = f"{PARAM}={run_id}."
    at = query.find(marker)
    if at < 0:
        return None
    digits = query[at + len(marker) : at + len(marker) + 8].split("&", 1)[0]
    return int(digits) if digits.isdigit() else None


def match(probes: Sequence[Probe], spans: Iterable[Record], run_id: str) -> dict[int, Record]:
    """The span record of each probe (by ``seq``): same trace id, or the probe tag in the query.

    Where several spans of one trace arrive (an instrumentation's span and devsecmw's), the
    one with devsecmw's verdict wins.
    """
    by_trace = {p.trace_id: p.seq for p in probes}
    seqs = {p.seq for p in probes}
    out: dict[int, Record] = {}
    for r in spans:
        seq = by_trace.get(str(r.get("trace_id") or ""))
        if seq is None:
            seq = _seq_of(r, run_id)
            if seq not in seqs:
                continue
        assert seq is not None
        if seq not in out or (has_verdict(r) and not has_verdict(out[seq])):
            out[seq] = r
    return out


def _rows(outcomes: Sequence[Outcome]) -> dict[str, Row]:
    rows: dict[str, Row] = {}
    answered: dict[str, set[int]] = {}
    for o in outcomes:
        row = rows.setdefault(o.probe.category, Row(o.probe.category))
        row.sent += 1
        row.statuses[o.status if o.status is not None else 0] += 1
        row.blocked += o.blocked
        if not o.blocked and o.status is not None:  # devsecmw's own 403 is not the app's answer
            answered.setdefault(o.probe.category, set()).add(o.status)
    for cat, row in rows.items():
        if cat in _EXPECTED:
            row.required = bool(answered.get(cat, set()) & _EXPECTED[cat])
    return rows


def from_spans(outcomes: Sequence[Outcome], spans: Iterable[Record], run_id: str) -> list[Row]:
    """Rows from span records (OTLP): per probe, its span, its types, when it arrived."""
    matched = match([o.probe for o in outcomes], spans, run_id)
    rows = _rows(outcomes)
    first_sent: dict[str, float] = {}
    for o in outcomes:
        first_sent.setdefault(o.probe.category, o.sent_at)
    for o in outcomes:
        record = matched.get(o.probe.seq)
        if record is None or not has_verdict(record):
            continue
        row = rows[o.probe.category]
        row.seen += 1
        types = span_types(record)
        if (record.get("attributes") or {}).get("devsecmw.blocked") is True and not o.blocked:
            row.blocked += 1
        if o.probe.category in types:
            row.right_type += 1
            arrived = float(record.get("received") or record.get("end_time") or o.sent_at)
            delay = max(arrived - first_sent[o.probe.category], 0.0)
            if row.time_to_appear is None or delay < row.time_to_appear:
                row.time_to_appear = delay
        row.other_types.update(t for t in types if t != o.probe.category)
    return list(rows.values())


def from_counts(
    outcomes: Sequence[Outcome], increase: Mapping[str, float], first_increase: Mapping[str, float]
) -> list[Row]:
    """Rows from signal counts (Prometheus): a category is seen when its series grew.

    ``increase``: growth of ``devsecmw_signals_total`` per signal type since before the run;
    ``first_increase``: Unix time each type's growth was first observed.
    """
    rows = _rows(outcomes)
    first_sent: dict[str, float] = {}
    for o in outcomes:
        first_sent.setdefault(o.probe.category, o.sent_at)
    for cat, row in rows.items():
        grown = round(increase.get(cat, 0.0))
        row.seen = row.right_type = min(max(grown, 0), row.sent)
        if row.right_type and cat in first_increase:
            row.time_to_appear = max(first_increase[cat] - first_sent[cat], 0.0)
    return list(rows.values())


def missing(rows: Iterable[Row]) -> list[str]:
    return sorted(r.category for r in rows if not r.ok)


def _order(row: Row) -> tuple[int, str]:
    return (0 if row.category in ATTACK_TYPES else 1, row.category)


def render(rows: Iterable[Row], title: str) -> str:
    """The scorecard as a terminal table."""
    ordered = sorted(rows, key=_order)
    head = f"{'category':<17} {'sent':>4} {'seen':>4} {'type ok':>7} {'blocked':>7} {'appeared':>9}  result"
    lines = [title, "", head, "-" * len(head)]
    for r in ordered:
        appear = "-" if r.time_to_appear is None else f"{r.time_to_appear:.1f} s"
        if r.ok and r.required:
            verdict = "ok"
        elif r.ok:
            answered = ",".join(str(s) for s in sorted(r.statuses)) or "-"
            verdict = f"not checked (answered {answered})"
        else:
            verdict = "MISSING"
        counts = f"{r.sent:>4} {r.seen:>4} {r.right_type:>7} {r.blocked:>7}"
        lines.append(f"{r.category:<17} {counts} {appear:>9}  {verdict}")
    gone = missing(ordered)
    lines.append("")
    lines.append(f"missing: {', '.join(gone)}" if gone else "every category arrived")
    return "\n".join(lines) + "\n"


__all__ = [
    "Outcome",
    "Row",
    "from_counts",
    "from_spans",
    "has_verdict",
    "match",
    "missing",
    "render",
    "span_types",
]

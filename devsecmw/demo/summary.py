"""Turn what the demo's SDK collected into a summary readable at a glance.

:func:`summarize` is a pure function of finished spans (and, optionally,
the metrics and what the traffic generator sent): no I/O, so it is tested on
its own and could summarise spans from any source.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..signals import ATTACK_TYPES
from .traffic import ATTACK, Sent

CLASSIFICATIONS = ("attack", "anomaly", "benign")
MAX_TRACE_IDS = 12
_COLORS = {"attack": "31", "anomaly": "33", "benign": "32", "bold": "1", "dim": "2"}


@dataclass
class _Route:
    requests: int = 0
    attacks: int = 0
    errors: int = 0  # 5xx
    attack_5xx: int = 0
    auth: int = 0  # 401/403
    not_found: int = 0


@dataclass
class _Request:
    trace_id: str
    route: str
    status: int | None
    classification: str
    types: list[str] = field(default_factory=list)
    client: str | None = None


def _paint(text: str, style: str, color: bool) -> str:
    return f"\x1b[{_COLORS[style]}m{text}\x1b[0m" if color else text


def _attrs(obj: Any) -> Mapping[str, Any]:
    return getattr(obj, "attributes", None) or {}


def _requests(spans: Iterable[Any]) -> list[_Request]:
    """One entry per span that carries devsecmw's verdict (its own span or the one it enriched)."""
    out = []
    for span in spans:
        attrs = _attrs(span)
        cls = attrs.get("devsecmw.classification")
        if cls is None:
            continue
        method = str(attrs.get("http.request.method", "?"))
        route = attrs.get("http.route")
        status = attrs.get("http.response.status_code")
        types = [
            str(_attrs(e).get("devsecmw.signal.type"))
            for e in getattr(span, "events", ())
            if e.name == "devsecmw.signal"
        ]
        out.append(
            _Request(
                trace_id=f"{span.context.trace_id:032x}" if span.context is not None else "?",
                route=f"{method} {route}" if route else f"{method} (no route)",
                status=int(status) if isinstance(status, int) else None,
                classification=str(cls),
                types=types,
                client=str(attrs["client.address"]) if "client.address" in attrs else None,
            )
        )
    return out


def _metric_points(metrics: Any, name: str) -> list[Any]:
    points: list[Any] = []
    if metrics is None:
        return points
    for rm in metrics.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                if m.name == name:
                    points.extend(m.data.data_points)
    return points


def _histogram_line(metrics: Any) -> str | None:
    points = _metric_points(metrics, "devsecmw.inspection.duration")
    total = sum(p.count for p in points)
    if not total:
        return None
    mean = sum(p.sum for p in points) / total
    bounds = list(points[0].explicit_bounds)
    counts = [0] * (len(bounds) + 1)
    for p in points:
        if list(p.explicit_bounds) == bounds:
            for i, c in enumerate(p.bucket_counts):
                counts[i] += c

    def quantile(q: float) -> str:
        seen = 0
        for i, c in enumerate(counts):
            seen += c
            if seen >= q * total:
                return f"<= {bounds[i] * 1e6:g} us" if i < len(bounds) else f"> {bounds[-1] * 1e6:g} us"
        return "?"  # pragma: no cover - the loop always reaches total

    return (
        f"inspection time (devsecmw.inspection.duration): mean {mean * 1e6:.0f} us, "
        f"p50 {quantile(0.5)}, p99 {quantile(0.99)} over {total} requests"
    )


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]], indent: str = "  ") -> list[str]:
    cells = [list(headers)] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for r in cells:
        first = r[0].ljust(widths[0])
        rest = "  ".join(c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True))
        lines.append(f"{indent}{first}  {rest}".rstrip())
    return lines


def _heading(text: str, color: bool) -> list[str]:
    return ["", _paint(text, "bold", color)]


def _classification_lines(reqs: Sequence[_Request], color: bool) -> list[str]:
    by_cls = Counter(r.classification for r in reqs)
    out = _heading(f"Requests by classification ({len(reqs)} inspected)", color)
    widest = max(by_cls.values(), default=0)
    for cls in CLASSIFICATIONS:
        n = by_cls.get(cls, 0)
        bar = "#" * (round(30 * n / widest) if widest else 0)
        out.append(f"  {_paint(cls.ljust(8), cls, color)} {n:5d}  {_paint(bar, cls, color)}")
    return out


def _signal_type_lines(reqs: Sequence[_Request], color: bool) -> list[str]:
    by_type = Counter(t for r in reqs for t in r.types)
    out = _heading("Signals by type (devsecmw.signal span events)", color)
    if not by_type:
        out.append("  (none)")
    for group, style in (("attack", "attack"), ("anomaly", "anomaly")):
        items = sorted(
            ((t, n) for t, n in by_type.items() if (t in ATTACK_TYPES) == (group == "attack")),
            key=lambda tn: (-tn[1], tn[0]),
        )
        if not items:
            continue
        type_cells = [f"{t} {n}" for t, n in items]
        width = max(len(c) for c in type_cells) + 2
        for i in range(0, len(type_cells), 4):
            row = "".join(c.ljust(width) for c in type_cells[i : i + 4]).rstrip()
            out.append(f"  {_paint(group.ljust(8), style, color)} {row}" if i == 0 else f"  {'':8} {row}")
    return out


def _route_lines(reqs: Sequence[_Request], color: bool) -> list[str]:
    """Per route: attacks next to 5xx."""
    routes: dict[str, _Route] = {}
    for r in reqs:
        rt = routes.setdefault(r.route, _Route())
        rt.requests += 1
        rt.attacks += r.classification == "attack"
        rt.errors += r.status is not None and r.status >= 500
        rt.attack_5xx += "attack_5xx" in r.types
        rt.auth += r.status in (401, 403)
        rt.not_found += r.status == 404
    out = _heading("Per route: attacks next to errors (why do 5xx spike when attacks spike?)", color)
    ordered = sorted(routes.items(), key=lambda kv: (-kv[1].attack_5xx, -kv[1].errors, -kv[1].attacks, kv[0]))
    out.extend(
        _table(
            ["route", "requests", "attacks", "5xx", "attack_5xx", "401/403", "404"],
            [
                [name, v.requests, v.attacks, v.errors, v.attack_5xx, v.auth, v.not_found]
                for name, v in ordered
            ],
        )
    )
    total_5xx = sum(v.errors for v in routes.values())
    total_a5 = sum(v.attack_5xx for v in routes.values())
    if total_5xx:
        out.append(
            f"  {total_a5} of {total_5xx} server errors ({100 * total_a5 // total_5xx}%) "
            "came with an attack on the same request."
        )
    return out


def _attack_5xx_lines(reqs: Sequence[_Request], color: bool) -> list[str]:
    """The attack_5xx trace ids."""
    a5 = [r for r in reqs if "attack_5xx" in r.types]
    out = _heading(f"Attacks that ended in a 5xx (attack_5xx): {len(a5)} - look them up by trace id", color)
    if not a5:
        out.append("  (none)")
    for r in a5[:MAX_TRACE_IDS]:
        attack_kinds = ",".join(sorted({t for t in r.types if t in ATTACK_TYPES}))
        out.append(f"  {_paint(r.trace_id, 'attack', color)}  {r.route}  {r.status}  {attack_kinds}")
    if len(a5) > MAX_TRACE_IDS:
        out.append(f"  ... and {len(a5) - MAX_TRACE_IDS} more")
    return out


def _flagged_client_lines(reqs: Sequence[_Request], color: bool) -> list[str]:
    """Clients over a threshold (no section when there are none)."""
    flagged: dict[str, list[_Request]] = {}
    for r in reqs:
        if r.client is not None and "client_flagged" in r.types:
            flagged.setdefault(r.client, [])
    if not flagged:
        return []
    for r in reqs:
        if r.client in flagged:
            flagged[r.client].append(r)
    out = _heading(f"Clients over a per-client threshold (client_flagged): {len(flagged)}", color)
    out.extend(
        _table(
            ["client.address", "requests", "attacks", "flagged"],
            [
                [
                    c,
                    len(rs),
                    sum(x.classification == "attack" for x in rs),
                    sum("client_flagged" in x.types for x in rs),
                ]
                for c, rs in sorted(flagged.items(), key=lambda kv: -len(kv[1]))
            ],
        )
    )
    return out


def _category_grid(sent_n: Counter[str], seen_n: Counter[str], color: bool) -> list[str]:
    out = _heading(
        f"Attacks sent, by category: {sum(seen_n.values())} of {sum(sent_n.values())} "
        f"carried an attack signal",
        color,
    )
    grid = []
    for cat in sorted(sent_n):
        ok = seen_n[cat] == sent_n[cat]
        grid.append((f"{cat} {seen_n[cat]}/{sent_n[cat]}", "benign" if ok else "attack"))
    width = max(len(c) for c, _ in grid) + 2
    for i in range(0, len(grid), 4):
        out.append(
            "  " + "".join(_paint(c.ljust(width), style, color) for c, style in grid[i : i + 4]).rstrip()
        )
    missed = sorted(c for c in sent_n if seen_n[c] < sent_n[c])
    if missed:
        out.append(f"  not detected every time: {', '.join(missed)}")
    return out


def _detection_lines(reqs: Sequence[_Request], sent: Sequence[Sent], color: bool) -> list[str]:
    """Detection per attack category, matched on trace ids with what was sent."""
    out: list[str] = []
    by_trace = {r.trace_id: r for r in reqs}
    sent_n: Counter[str] = Counter()
    seen_n: Counter[str] = Counter()
    for s in sent:
        if s.probe.kind != ATTACK:
            continue
        sent_n[s.probe.label] += 1
        got = by_trace.get(s.probe.trace_id)
        if got is not None and any(t in ATTACK_TYPES for t in got.types):
            seen_n[s.probe.label] += 1
    if sent_n:
        out.extend(_category_grid(sent_n, seen_n, color))
    false_pos = [
        s
        for s in sent
        if s.probe.kind != ATTACK
        and (got := by_trace.get(s.probe.trace_id)) is not None
        and any(t in ATTACK_TYPES for t in got.types)
    ]
    if false_pos:
        labels = ", ".join(sorted({s.probe.label for s in false_pos}))
        out.append(f"  benign requests with an attack signal (false positives): {len(false_pos)} ({labels})")
    unanswered = [s for s in sent if s.status is None]
    if unanswered:
        out.append(f"  {len(unanswered)} requests got no response ({unanswered[0].error})")
    return out


def _metrics_footer(metrics: Any, color: bool) -> list[str]:
    footer = []
    line = _histogram_line(metrics)
    if line:
        footer.append(line)
    if metrics is not None:
        errors_by_kind: Counter[str] = Counter()
        for p in _metric_points(metrics, "devsecmw.errors"):
            errors_by_kind[str(_attrs(p).get("error.type", "?"))] += int(p.value)
        detail = (
            f" ({', '.join(f'{k} {n}' for k, n in sorted(errors_by_kind.items()))})" if errors_by_kind else ""
        )
        footer.append(
            "devsecmw internal errors and cut-short inspections (devsecmw.errors): "
            f"{errors_by_kind.total()}{detail}"
        )
    if not footer:
        return []
    return ["", *(_paint(f, "dim", color) for f in footer)]


def summarize(
    spans: Iterable[Any],
    metrics: Any = None,
    sent: Sequence[Sent] | None = None,
    *,
    color: bool = False,
    title: str | None = None,
) -> str:
    """The demo's terminal summary.

    ``spans``: finished SDK spans (``ReadableSpan``); ``metrics``: the SDK's
    ``MetricsData`` (adds inspection time and internal errors); ``sent``: the
    traffic generator's record (adds detection per attack category, matched on
    trace ids).
    """
    reqs = _requests(spans)
    out: list[str] = []
    if title:
        out.append(_paint(title, "bold", color))
    out.extend(_classification_lines(reqs, color))
    out.extend(_signal_type_lines(reqs, color))
    out.extend(_route_lines(reqs, color))
    out.extend(_attack_5xx_lines(reqs, color))
    out.extend(_flagged_client_lines(reqs, color))
    if sent is not None:
        out.extend(_detection_lines(reqs, sent, color))
    out.extend(_metrics_footer(metrics, color))
    return "\n".join(out) + "\n"


__all__ = ["summarize"]

"""``devsecmw report``: spans, or a game-day run, as one self-contained HTML page.

Inputs (any mix, one or more files):

- span records as JSON lines (``devsecmw gameday --save``; see :mod:`devsecmw.gameday.records`);
- OTLP JSON trace exports, one ``ExportTraceServiceRequest`` a line (the OpenTelemetry
  Collector's ``file`` exporter);
- a ``devsecmw gameday --json`` document (its scorecard, and the spans it matched).

The page needs no network: CSS, the chart's script and the data are inline, and a
Content-Security-Policy forbids every fetch. Everything taken from spans is attacker
controlled (routes, evidence, user agents): the tables are escaped here, and the script
writes text only with ``textContent``, never as markup.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from ..gameday.records import Record, iter_json_lines, parse_line
from ..signals import ATTACK_TYPES

MAX_ROUTES = 6  # lines on the chart; the rest are summed into "other routes"
MAX_ROWS = 50  # rows per table
BUCKETS = 24
_MAX_WHOLE_FILE = 64 * 1024 * 1024  # larger files are read line by line
_NICE_STEPS = (
    0.05,
    0.1,
    0.2,
    0.5,
    1,
    2,
    5,
    10,
    15,
    30,
    60,
    120,
    300,
    600,
    900,
    1800,
    3600,
    7200,
    21600,
    43200,
    86400,
)


# --------------------------------------------------------------------------- inputs
def load(paths: Sequence[str | Path]) -> tuple[list[Record], list[dict[str, Any]]]:
    """Span records and game-day documents of the input files.

    A file is one JSON document (a gameday ``--json``, an OTLP JSON export) or JSON lines
    (span records, OTLP JSON exports, compact gameday documents), in any mix.
    """
    spans: list[Record] = []
    gamedays: list[dict[str, Any]] = []

    def add(doc: Any) -> None:
        if isinstance(doc, dict) and "devsecmw_gameday" in doc:
            gamedays.append(doc)
            spans.extend(r for s in doc.get("spans") or () for r in parse_line(s))
        else:
            spans.extend(parse_line(doc))

    for path in paths:
        p = Path(path)
        if p.stat().st_size <= _MAX_WHOLE_FILE:
            text = p.read_bytes()
            try:
                add(json.loads(text))
                continue
            except ValueError:
                pass  # not one document: JSON lines
        for doc in iter_json_lines(p):
            add(doc)
    return spans, gamedays


# --------------------------------------------------------------------------- summary
def _attrs(r: Mapping[str, Any]) -> Mapping[str, Any]:
    a = r.get("attributes")
    return a if isinstance(a, Mapping) else {}


def _types(r: Mapping[str, Any]) -> list[str]:
    seen: dict[str, None] = {}
    listed = _attrs(r).get("devsecmw.signal.types")
    for t in listed if isinstance(listed, list | tuple) else ():
        seen[str(t)] = None
    events = r.get("events")
    for e in events if isinstance(events, list) else ():
        if isinstance(e, Mapping) and e.get("name") == "devsecmw.signal":
            t = _attrs(e).get("devsecmw.signal.type")
            if t:
                seen[str(t)] = None
    return list(seen)


def _status(a: Mapping[str, Any]) -> int | None:
    s = a.get("http.response.status_code", a.get("http.status_code"))
    if isinstance(s, bool) or not isinstance(s, int | str):
        return None
    try:
        status = int(s)
    except ValueError:
        return None
    return status if 100 <= status <= 999 else None


def _route(a: Mapping[str, Any]) -> str:
    method = str(a.get("http.request.method") or a.get("http.method") or "?")
    route = a.get("http.route")
    return f"{method} {route}" if route else f"{method} (no route)"


def _num(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return 0.0
    return number if math.isfinite(number) and abs(number) < 1e11 else 0.0  # a time or a count


def _step(span_s: float) -> float:
    want = span_s / BUCKETS
    for s in _NICE_STEPS:
        if s >= want:
            return s
    return float(math.ceil(want / 86400) * 86400)


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t)) + "Z" if t else "-"


def _inspected(spans: Iterable[Record]) -> list[tuple[Record, Mapping[str, Any]]]:
    """The records that carry devsecmw's verdict, with their attributes, oldest first."""
    reqs = []
    for r in spans:
        a = _attrs(r)
        if "devsecmw.classification" not in a:
            continue
        reqs.append((r, a))
    reqs.sort(key=lambda ra: _num(ra[0].get("start_time")))
    return reqs


def _add_flagged(clients: dict[str, dict[str, Any]], r: Record, a: Mapping[str, Any], ts: list[str]) -> None:
    """Count a ``client_flagged`` request against its client (at most ``MAX_ROWS`` clients)."""
    who = str(a.get("client.address") or "(not on the span)")
    entry = clients.get(who)
    if entry is None:
        if len(clients) >= MAX_ROWS:
            return
        entry = clients[who] = {
            "client": who,
            "requests": 0,
            "first": 0.0,
            "last": 0.0,
            "types": Counter(),
        }
    entry["requests"] += 1
    t = _num(r.get("start_time"))
    entry["first"] = min(entry["first"] or t, t)
    entry["last"] = max(entry["last"], t)
    entry["types"].update(x for x in ts if x in ATTACK_TYPES)


def _summary_doc(
    reqs: Sequence[tuple[Record, Mapping[str, Any]]],
    totals: Counter[str],
    types: Counter[str],
    per_route: dict[str, Counter[str]],
    attack_5xx: list[dict[str, Any]],
    clients: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """The counts, as the page reads them (top rows only)."""
    chart = _chart(reqs)
    return {
        "totals": dict(totals),
        "types": [
            {"type": t, "kind": "attack" if t in ATTACK_TYPES else "anomaly", "requests": n}
            for t, n in types.most_common(MAX_ROWS)
        ],
        "routes": [
            {"route": k, **dict(v)}
            for k, v in sorted(per_route.items(), key=lambda kv: (-kv[1]["attacks"] - kv[1]["5xx"], kv[0]))[
                :MAX_ROWS
            ]
        ],
        "attack_5xx": attack_5xx,
        "clients": [
            {
                "client": e["client"],
                "requests": e["requests"],
                "first": _when(e["first"]),
                "last": _when(e["last"]),
                "types": [t for t, _ in e["types"].most_common(5)],
            }
            for e in sorted(clients.values(), key=lambda e: -int(e["requests"]))
        ],
        "chart": chart,
        "first": _when(_num(reqs[0][0].get("start_time"))) if reqs else "-",
        "last": _when(_num(reqs[-1][0].get("start_time"))) if reqs else "-",
    }


def summarize(spans: Iterable[Record]) -> dict[str, Any]:
    """What the page shows, from span records (only those with devsecmw's verdict count)."""
    reqs = _inspected(spans)
    totals: Counter[str] = Counter()
    types: Counter[str] = Counter()
    per_route: dict[str, Counter[str]] = {}
    attack_5xx: list[dict[str, Any]] = []
    clients: dict[str, dict[str, Any]] = {}
    for r, a in reqs:
        cls = str(a.get("devsecmw.classification"))
        status = _status(a)
        ts = _types(r)
        route = _route(a)
        totals["requests"] += 1
        totals[cls] += 1
        c = per_route.setdefault(route, Counter())
        c["requests"] += 1
        if cls == "attack":
            c["attacks"] += 1
        if status is not None and status >= 500:
            totals["5xx"] += 1
            c["5xx"] += 1
        if a.get("devsecmw.blocked") is True:
            totals["blocked"] += 1
        types.update(ts)
        if "attack_5xx" in ts:
            totals["attack_5xx"] += 1
            if len(attack_5xx) < MAX_ROWS:
                attack_5xx.append(
                    {
                        "time": _when(_num(r.get("start_time"))),
                        "trace_id": str(r.get("trace_id") or ""),
                        "route": route,
                        "status": status,
                        "types": [t for t in ts if t in ATTACK_TYPES],
                    }
                )
        if "client_flagged" in ts:
            _add_flagged(clients, r, a, ts)
    return _summary_doc(reqs, totals, types, per_route, attack_5xx, clients)


def _chart(reqs: Sequence[tuple[Record, Mapping[str, Any]]]) -> dict[str, Any]:
    """Attacks and 5xx per route per time bucket: the data the page's script draws."""
    if not reqs:
        return {"start": 0, "step": 1, "buckets": 0, "series": []}
    t0 = _num(reqs[0][0].get("start_time"))
    t1 = _num(reqs[-1][0].get("start_time"))
    step = _step(max(t1 - t0, 0.5))
    start = math.floor(t0 / step) * step
    n = int((t1 - start) // step) + 1
    weight: Counter[str] = Counter()
    for _, a in reqs:
        status = _status(a)
        if a.get("devsecmw.classification") == "attack" or (status is not None and status >= 500):
            weight[_route(a)] += 1
    top = [r for r, _ in weight.most_common(MAX_ROUTES)]
    names = [*top, "other routes"] if len(weight) > len(top) else top
    attacks = {r: [0] * n for r in names}
    errors = {r: [0] * n for r in names}
    for r, a in reqs:
        route = _route(a)
        if route not in weight:
            continue
        key = route if route in attacks else "other routes"
        b = min(int((_num(r.get("start_time")) - start) // step), n - 1)
        if a.get("devsecmw.classification") == "attack":
            attacks[key][b] += 1
        status = _status(a)
        if status is not None and status >= 500:
            errors[key][b] += 1
    return {
        "start": start,
        "step": step,
        "buckets": n,
        "series": [{"route": r, "attacks": attacks[r], "errors": errors[r]} for r in names],
    }


# --------------------------------------------------------------------------- HTML
def _asset(name: str) -> str:
    return resources.files(__package__ or "devsecmw.report").joinpath(name).read_text(encoding="utf-8")


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], table_id: str, empty: str) -> str:
    """``rows`` are cells already escaped (some carry markup made here)."""
    body = "".join("<tr>" + "".join(cell for cell in row) + "</tr>" for row in rows)
    if not body:
        return f'<p class="muted" id="{table_id}-empty">{_e(empty)}</p>'
    head = "".join(
        f'<th class="n">{_e(h[1:])}</th>' if h.startswith("#") else f"<th>{_e(h)}</th>" for h in headers
    )
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _td(value: Any, cls: str = "") -> str:
    return f'<td class="{cls}">{_e(value)}</td>' if cls else f"<td>{_e(value)}</td>"


def _scorecard_html(doc: Mapping[str, Any]) -> str:
    rows = []
    for c in doc.get("categories") or ():
        if not isinstance(c, Mapping):
            continue
        ok = bool(c.get("ok"))
        required = bool(c.get("required", True))
        verdict = "ok" if ok and required else ("not checked" if ok else "MISSING")
        appear = c.get("time_to_appear")
        rows.append(
            [
                _td(c.get("category")),
                _td(c.get("sent"), "n"),
                _td(c.get("seen"), "n"),
                _td(c.get("right_type"), "n"),
                _td(c.get("blocked"), "n"),
                _td("-" if appear is None else f"{_num(appear):.1f} s", "n"),
                f'<td class="{"good" if ok else "bad"}">{_e(verdict)}</td>',
            ]
        )
    missing = doc.get("missing") if isinstance(doc.get("missing"), list) else []
    status = (
        f'<p class="bad">missing: {_e(", ".join(map(str, missing)))}</p>'
        if missing
        else '<p class="good">every category arrived</p>'
    )
    title = f"Game day {doc.get('run_id', '')} against {doc.get('target', '')} ({doc.get('mode', '')})"
    table = _table(
        ["category", "#sent", "#seen", "#right type", "#blocked", "#appeared after", "result"],
        rows,
        "scorecard",
        "no categories",
    )
    return f"<section><h2>{_e(title)}</h2>{status}{table}</section>"


def _tiles(t: Mapping[str, Any]) -> str:
    return "".join(
        f'<div class="tile"><b>{_e(t.get(k, 0))}</b><span>{_e(label)}</span></div>'
        for k, label in (
            ("requests", "requests inspected"),
            ("attack", "attacks"),
            ("5xx", "5xx responses"),
            ("attack_5xx", "attacks that ended in a 5xx"),
            ("blocked", "blocked"),
        )
    )


def _types_table(s: Mapping[str, Any]) -> str:
    top = max((row["requests"] for row in s["types"]), default=1)
    type_rows = [
        [
            _td(row["type"]),
            _td(row["kind"]),
            f'<td class="n">{_e(row["requests"])}</td>',
            f'<td><span class="bar{" attack" if row["kind"] == "attack" else ""}" '
            f'style="width:{max(2, int(160 * row["requests"] / top))}px"></span></td>',
        ]
        for row in s["types"]
    ]
    return _table(["type", "kind", "#requests", ""], type_rows, "types", "no signals")


def _routes_table(s: Mapping[str, Any]) -> str:
    route_rows = [
        [
            _td(r["route"]),
            _td(r.get("requests", 0), "n"),
            _td(r.get("attacks", 0), "n"),
            _td(r.get("5xx", 0), "n"),
        ]
        for r in s["routes"]
    ]
    return _table(["route", "#requests", "#attacks", "#5xx"], route_rows, "routes", "no requests")


def _attack_5xx_table(s: Mapping[str, Any]) -> str:
    a5_rows = [
        [
            _td(r["time"]),
            f"<td><code>{_e(r['trace_id'])}</code></td>",
            _td(r["route"]),
            _td(r["status"], "n"),
            _td(", ".join(r["types"])),
        ]
        for r in s["attack_5xx"]
    ]
    return _table(["time", "trace id", "route", "#status", "attack types"], a5_rows, "attack5xx", "none")


def _clients_table(s: Mapping[str, Any]) -> str:
    client_rows = [
        [
            _td(c["client"]),
            _td(c["requests"], "n"),
            _td(c["first"]),
            _td(c["last"]),
            _td(", ".join(c["types"])),
        ]
        for c in s["clients"]
    ]
    return _table(["client", "#requests", "first", "last", "attack types"], client_rows, "clients", "none")


def _script_data(chart: Any) -> str:
    """The chart's data as JSON safe inside a ``<script>`` element."""
    data = json.dumps({"chart": chart}, separators=(",", ":"))
    # Inside <script>: no "</script>", no "<!--", no line separators that end a JS string.
    data = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return data.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def render_html(
    spans: Sequence[Record], gamedays: Sequence[Mapping[str, Any]] = (), title: str | None = None
) -> str:
    """The page (a complete HTML document)."""
    s = summarize(spans)
    t = s["totals"]
    title = title or "devsecmw report"
    tiles = _tiles(t)
    data = _script_data(s["chart"])
    css, js = _asset("report.css"), _asset("report.js")
    digest = base64.b64encode(hashlib.sha256(js.encode()).digest()).decode()
    csp = f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{digest}'; img-src data:"
    scorecards = "".join(_scorecard_html(g) for g in gamedays)
    generated = "generated " + time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())
    routes = _routes_table(s)
    types = _types_table(s)
    a5 = _attack_5xx_table(s)
    clients = _clients_table(s)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_e(csp)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title><style>{css}</style></head>
<body><header><h1>{_e(title)}</h1>
<p>{_e(t.get("requests", 0))} requests from {_e(s["first"])} to {_e(s["last"])} &middot; {generated}</p>
</header><main>
<div class="tiles">{tiles}</div>
{scorecards}
<section><h2>Attacks and 5xx per route over time</h2><div id="chart"></div><div id="legend"></div>
<noscript><p class="muted">The chart needs JavaScript; the tables below do not.</p></noscript></section>
<section><h2>Routes</h2>{routes}</section>
<section><h2>Top signal types</h2>{types}</section>
<section><h2>Attacks that ended in a 5xx (attack_5xx)</h2>{a5}</section>
<section><h2>Flagged clients</h2><p class="muted">Addresses as the spans carry them.</p>{clients}</section>
</main>
<script type="application/json" id="report-data">{data}</script>
<script>{js}</script>
</body></html>
"""


def write_report(inputs: Sequence[str | Path], output: str | Path, title: str | None = None) -> Path:
    """Read ``inputs``, write the page to ``output``; returns its path."""
    spans, gamedays = load(inputs)
    if title is None and len(gamedays) == 1:
        title = f"devsecmw game day {gamedays[0].get('run_id', '')}"
    page = render_html(spans, gamedays, title)
    out = Path(output)
    out.write_text(page, encoding="utf-8")
    return out.resolve()


__all__ = ["load", "render_html", "summarize", "write_report"]

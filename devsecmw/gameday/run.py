"""Run a game day: check the target, send the suite at a bounded rate, collect the evidence.

Only the standard library sends requests (``http.client``): the command works with the
base install; decoding OTLP needs ``opentelemetry-proto`` (installed with the OTLP
exporter, and with the ``demo`` extra).
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import ssl
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from . import scorecard
from .records import Record, dump
from .suite import USER_AGENT, Probe, build, new_run_id, valid_run_id

FORMAT = 1  # version of the JSON document
MAX_REQUESTS = 1000
MAX_RATE = 200.0
MAX_BURST = 100
REQUEST_TIMEOUT = 10.0
_MAX_READ = 1024 * 1024
#: Seconds to keep receiving once every category arrived, for the spans of the other requests.
GRACE = 2.0


class UsageError(ValueError):
    """A refused or invalid option: the message says which and why."""


@dataclass
class Options:
    target: str
    allow_hosts: Sequence[str] = ()
    path: str | None = None
    auth_path: str | None = None
    run_id: str | None = None
    rate: float = 20.0
    burst: int = 10
    max_requests: int = 200
    wait: float = 60.0
    otlp_listen: str | None = None
    prometheus: str | None = None
    prometheus_selector: str = ""
    json_path: str | None = None
    save_path: str | None = None


def is_loopback(host: str) -> bool:
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: never resolved here, so never assumed local


def check_host(host: str, allow_hosts: Sequence[str], what: str) -> None:
    if is_loopback(host) or host.lower() in {h.lower() for h in allow_hosts}:
        return
    raise UsageError(
        f"refusing {what} {host!r}: only loopback addresses unless named with --allow-host {host}"
    )


def parse_target(target: str, allow_hosts: Sequence[str]) -> urllib.parse.SplitResult:
    url = urllib.parse.urlsplit(target)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise UsageError(f"--target must be an http(s) URL such as http://127.0.0.1:8000, got {target!r}")
    if url.username or url.password:
        raise UsageError("--target must not carry credentials")
    check_host(url.hostname, allow_hosts, "target")
    try:
        url.port  # noqa: B018 - validates the port
    except ValueError as exc:
        raise UsageError(f"--target: {exc}") from None
    return url


def parse_listen(listen: str, allow_hosts: Sequence[str]) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise UsageError(f"--otlp-listen must be HOST:PORT, got {listen!r}")
    host = host.strip("[]") or "127.0.0.1"
    check_host(host, allow_hosts, "listen address")
    return host, int(port)


# --------------------------------------------------------------------------- sending
class _Sender:
    """One keep-alive connection, reopened after an error or an unread large response."""

    def __init__(self, url: urllib.parse.SplitResult) -> None:
        self.url = url
        self.conn: http.client.HTTPConnection | None = None

    def _connect(self) -> http.client.HTTPConnection:
        host, port = self.url.hostname or "", self.url.port
        if self.url.scheme == "https":
            return http.client.HTTPSConnection(
                host, port, timeout=REQUEST_TIMEOUT, context=ssl.create_default_context()
            )
        return http.client.HTTPConnection(host, port, timeout=REQUEST_TIMEOUT)

    def send(self, probe: Probe) -> scorecard.Outcome:
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        for k, v in probe.headers:
            headers[k] = v
        headers["traceparent"] = probe.traceparent()
        outcome = scorecard.Outcome(probe, sent_at=time.time())
        for attempt in (1, 2):
            try:
                if self.conn is None:
                    self.conn = self._connect()
                if probe.body:
                    headers["Content-Type"] = "application/x-www-form-urlencoded"
                self.conn.request(probe.method, probe.target, body=probe.body or None, headers=headers)
                resp = self.conn.getresponse()
                body = resp.read(_MAX_READ + 1)
                outcome.status, outcome.error = resp.status, None
                outcome.blocked = _looks_blocked(resp.status, body)
                if len(body) > _MAX_READ or resp.will_close:
                    self.close()
                return outcome
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                outcome.error = f"{type(exc).__name__}: {exc}"
                if attempt == 2:
                    break
        return outcome

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def _looks_blocked(status: int, body: bytes) -> bool:
    if status < 400 or not body.startswith(b"{"):
        return False
    try:
        doc = json.loads(body)
    except ValueError:
        return False
    return isinstance(doc, dict) and doc.get("error") == "request blocked"


def send_all(url: urllib.parse.SplitResult, probes: Sequence[Probe], rate: float) -> list[scorecard.Outcome]:
    """Send in order, no faster than ``rate`` requests per second."""
    sender = _Sender(url)
    out = []
    start = time.monotonic()
    try:
        for i, probe in enumerate(probes):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            out.append(sender.send(probe))
    finally:
        sender.close()
    return out


# --------------------------------------------------------------------------- Prometheus
def _prom_query(base: str, query: str) -> dict[str, float]:
    """``sum by (devsecmw_signal_type)`` values of an instant query."""
    url = f"{base.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
    with urllib.request.urlopen(url, timeout=REQUEST_TIMEOUT) as resp:
        doc = json.loads(resp.read(16 * 1024 * 1024))
    if doc.get("status") != "success":
        raise RuntimeError(f"Prometheus query failed: {doc.get('error') or doc}")
    out: dict[str, float] = {}
    for item in doc.get("data", {}).get("result", ()):
        t = item.get("metric", {}).get("devsecmw_signal_type")
        if t:
            out[str(t)] = float(item["value"][1])
    return out


def prometheus_query(selector: str) -> str:
    inner = f"{{{selector}}}" if selector else ""
    return f"sum by (devsecmw_signal_type) (devsecmw_signals_total{inner})"


# --------------------------------------------------------------------------- the run
def run(options: Options, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """The whole game day; returns the exit code (0: every required category seen)."""
    out = out or sys.stdout
    err = err or sys.stderr
    url = parse_target(options.target, options.allow_hosts)
    if (options.otlp_listen is None) == (options.prometheus is None):
        raise UsageError("name one way to verify arrival: --otlp-listen HOST:PORT or --prometheus URL")
    if not 0 < options.rate <= MAX_RATE:
        raise UsageError(f"--rate must be in (0, {MAX_RATE:g}] requests per second, got {options.rate:g}")
    if not 0 <= options.burst <= MAX_BURST:
        raise UsageError(f"--burst must be between 0 and {MAX_BURST}, got {options.burst}")
    if options.wait < 0:
        raise UsageError(f"--wait must be >= 0, got {options.wait:g}")
    if options.prometheus is not None:
        purl = urllib.parse.urlsplit(options.prometheus)
        if purl.scheme not in ("http", "https") or not purl.hostname:
            raise UsageError(f"--prometheus must be an http(s) URL, got {options.prometheus!r}")
    run_id = options.run_id or new_run_id()
    if not valid_run_id(run_id):
        raise UsageError(f"--run-id {run_id!r}: 1-64 of A-Z a-z 0-9 . _ - starting with a letter or digit")
    path = options.path or (url.path if url.path not in ("", "/") else "/")
    try:
        probes = build(run_id, path, options.burst, options.auth_path)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if len(probes) > min(options.max_requests, MAX_REQUESTS):
        raise UsageError(
            f"the suite has {len(probes)} requests, more than --max-requests {options.max_requests}"
        )
    base = f"{url.scheme}://{url.netloc}"
    if options.otlp_listen is not None:
        return _run_otlp(options, url, base, path, run_id, probes, out, err)
    return _run_prometheus(options, url, base, path, run_id, probes, out, err)


def _header(base: str, run_id: str, n: int, rate: float, how: str) -> str:
    return (
        f"devsecmw gameday {run_id}: {n} requests to {base} at up to {rate:g}/s; {how}\n"
        f"search your traces for devsecmw.gameday.run_id = {run_id}"
    )


def _run_otlp(
    options: Options,
    url: urllib.parse.SplitResult,
    base: str,
    path: str,
    run_id: str,
    probes: list[Probe],
    out: TextIO,
    err: TextIO,
) -> int:
    from .receiver import Receiver

    assert options.otlp_listen is not None
    host, port = parse_listen(options.otlp_listen, options.allow_hosts)
    receiver = Receiver(host, port)
    endpoint = receiver.start()
    try:
        print(
            _header(base, run_id, len(probes), options.rate, f"receiving OTLP/HTTP on {endpoint}"),
            file=err,
            flush=True,
        )
        started = time.time()
        outcomes = send_all(url, probes, options.rate)

        complete_at: list[float] = []

        def done(spans: list[Record], _points: list[Record]) -> bool:
            # Every request's span arrived; or every category did and stragglers had a grace period.
            rows = scorecard.from_spans(outcomes, spans, run_id)
            if sum(r.seen for r in rows) >= len(outcomes):
                return True
            if scorecard.missing(rows):
                return False
            complete_at[:1] = complete_at[:1] or [time.monotonic()]
            return time.monotonic() - complete_at[0] >= GRACE

        receiver.wait_until(done, options.wait)
        spans, points = receiver.snapshot()
    finally:
        receiver.stop()
    rows = scorecard.from_spans(outcomes, spans, run_id)
    matched = scorecard.match(probes, spans, run_id)
    if options.save_path:
        dump(spans, options.save_path)
    doc = _document(options, base, path, run_id, "otlp", started, rows, outcomes, matched)
    doc["received"] = {"spans": len(spans), "metric_points": len(points), "rejected": receiver.rejected}
    return _finish(options, doc, rows, run_id, out)


def _run_prometheus(
    options: Options,
    url: urllib.parse.SplitResult,
    base: str,
    path: str,
    run_id: str,
    probes: list[Probe],
    out: TextIO,
    err: TextIO,
) -> int:
    assert options.prometheus is not None
    query = prometheus_query(options.prometheus_selector)
    try:
        before = _prom_query(options.prometheus, query)
    except (OSError, ValueError, RuntimeError) as exc:
        raise UsageError(f"--prometheus {options.prometheus}: {exc}") from None
    print(
        _header(base, run_id, len(probes), options.rate, f"then querying {options.prometheus}: {query}"),
        file=err,
        flush=True,
    )
    started = time.time()
    outcomes = send_all(url, probes, options.rate)
    increase: dict[str, float] = {}
    first: dict[str, float] = {}
    deadline = time.monotonic() + options.wait
    while True:
        try:
            now = _prom_query(options.prometheus, query)
        except (OSError, ValueError, RuntimeError) as exc:
            print(f"devsecmw gameday: Prometheus query failed: {exc}", file=err)
            now = {}
        for t, v in now.items():
            grown = v - before.get(t, 0.0)
            if grown < 0:  # a counter reset (the service restarted): count from zero
                grown = v
            if grown > 0:
                increase[t] = grown
                first.setdefault(t, time.time())
        rows = scorecard.from_counts(outcomes, increase, first)
        if not scorecard.missing(rows) or time.monotonic() >= deadline:
            break
        time.sleep(min(2.0, max(deadline - time.monotonic(), 0.0)))
    rows = scorecard.from_counts(outcomes, increase, first)
    doc = _document(options, base, path, run_id, "prometheus", started, rows, outcomes, {})
    doc["prometheus"] = {"url": options.prometheus, "query": query, "increase": increase}
    return _finish(options, doc, rows, run_id, out)


def _document(
    options: Options,
    base: str,
    path: str,
    run_id: str,
    mode: str,
    started: float,
    rows: list[scorecard.Row],
    outcomes: list[scorecard.Outcome],
    matched: dict[int, Record],
) -> dict[str, Any]:
    requests = []
    for o in outcomes:
        record = matched.get(o.probe.seq)
        requests.append(
            {
                "seq": o.probe.seq,
                "category": o.probe.category,
                "method": o.probe.method,
                "target": o.probe.target,
                "trace_id": o.probe.trace_id,
                "sent_at": round(o.sent_at, 3),
                "status": o.status,
                "error": o.error,
                "blocked": o.blocked,
                "seen": record is not None and scorecard.has_verdict(record),
                "types": sorted(scorecard.span_types(record)) if record is not None else [],
            }
        )
    gone = scorecard.missing(rows)
    return {
        "devsecmw_gameday": FORMAT,
        "run_id": run_id,
        "target": base,
        "path": path,
        "mode": mode,
        "rate": options.rate,
        "wait": options.wait,
        "started": round(started, 3),
        "finished": round(time.time(), 3),
        "ok": not gone,
        "missing": gone,
        "categories": [r.as_dict() for r in sorted(rows, key=scorecard._order)],
        "requests": requests,
        "spans": [matched[s] for s in sorted(matched)],
    }


def _finish(
    options: Options, doc: dict[str, Any], rows: list[scorecard.Row], run_id: str, out: TextIO
) -> int:
    if options.json_path:
        with open(options.json_path, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=1, default=str)
            fh.write("\n")
    title = f"devsecmw gameday {run_id} against {doc['target']} ({doc['mode']})"
    out.write(scorecard.render(rows, title))
    out.flush()
    return 0 if doc["ok"] else 1


__all__ = [
    "FORMAT",
    "MAX_REQUESTS",
    "Options",
    "UsageError",
    "check_host",
    "is_loopback",
    "parse_target",
    "run",
]

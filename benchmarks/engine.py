"""Time of the detection engine alone, per request and phase, on the referee's request mixes.

    python benchmarks/engine.py [--repeat 5]

Requests are the ones ``../shared/eval/overhead.py`` sends (a browser GET, a 2 KiB JSON
order, a SQL injection, a 64 KiB adversarial form body), plus ``random_64k``: 64 KiB of
random attack fragments, the input that makes a lazily built automaton create a new state
for nearly every byte. Columns, in microseconds per request (best of ``--repeat`` runs of
many requests, CPU time of this process, so other load on the machine inflates it less):

- ``model``: the request model; ``parse``: parsing its body (by the engine, when needed);
- ``head``/``body`` ``warm``: inspection of the same request again and again, as a
  benchmark client sends it: the engine's caches of clean head parts and small bodies
  answer (``body`` includes parsing, which a cached body skips);
- ``head``/``body`` ``cold``: every request new to the engine, as no cache helps: a
  fresh query parameter, cookie, request-id header and (for the JSON order) coupon code
  per request. Header names, parameter names and the browser's other header values still
  repeat, as they do in real traffic;
- ``stopped``: share of cold bodies the time budget stopped;
- ``first``: head and body of the first request seen by a freshly compiled engine.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import BROWSER, GET_QUERY, json_order

from devsecmw.config import Config
from devsecmw.engine import Budget, Engine
from devsecmw.engine import engine as engine_module
from devsecmw.engine.rules import load_all
from devsecmw.request import HttpRequest, from_asgi_scope


def repeated(unit: bytes, size: int = 65536) -> bytes:
    return (unit * (size // len(unit) + 1))[:size]


def random_fragments(size: int = 65536) -> bytes:
    rng = random.Random(1)
    words = ["select", "{{", "${", "<", "'", "../", "union", " ", "a", "%", "(", "jndi", "}", "<svg", "on",
             "=", "\n", "x-", ":", "java.", "class", "__", "|", ";", "`", "$(", "cat", "/etc", "1", "or",
             "\\", "*/", "/*", "&#", "script"]  # fmt: skip
    return "".join(rng.choice(words) for _ in range(size // 2)).encode()[:size]


FORM = [(b"content-type", b"application/x-www-form-urlencoded")]
ADVERSARIAL = repeated(b"'/*<a \"||(select ../ ${jndi: %2e%2e <svg on ")
MIXES = {
    "get": ("GET", GET_QUERY, BROWSER, b""),
    "post_json": ("POST", b"", [*BROWSER, (b"content-type", b"application/json")], json_order()),
    "attack": ("GET", b"id=1%27%20UNION%20SELECT%20password%20FROM%20users--%20", BROWSER, b""),
    "adversarial_64k": (
        "POST",
        b"",
        BROWSER + FORM,
        repeated(b"'/*<a \"||(select ../ ${jndi: %2e%2e <svg on "),
    ),
    "random_64k": ("POST", b"", BROWSER + FORM, random_fragments()),
}


def build(mix: str, fresh: random.Random | None = None) -> HttpRequest:
    """The mix's request; with ``fresh``, with values no request had before (see module doc)."""
    method, qs, headers, body = MIXES[mix]
    if fresh is not None:
        token = f"{fresh.getrandbits(64):016x}"
        qs = qs + (b"&" if qs else b"") + f"r={token}".encode()
        headers = [(k, v + f"; r={token}".encode()) if k == b"cookie" else (k, v) for k, v in headers]
        headers.append((b"x-request-id", token.encode()))
        body = body.replace(b"WINTER-10", token.encode())
    scope = {"type": "http", "method": method, "path": "/api/items", "raw_path": b"/api/items",
             "query_string": qs, "headers": headers}  # fmt: skip
    req = from_asgi_scope(scope)
    if body:
        req.add_body(body, 65536)
        req.body_complete = True
    return req


def cpu_us(fn: Callable[[], object], n: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        for _ in range(n):
            fn()
        best = min(best, (time.process_time() - t0) / n)
    return best * 1e6


TIME_BUDGET = Config().time_budget


def _budget() -> Budget:
    # What the middleware gives each request (Config.time_budget): inspection stops past it.
    return Budget(deadline=time.perf_counter() + TIME_BUDGET)


def measure(engine: Engine, mix: str, n: int, repeat: int, cold: bool) -> tuple[float, float, float]:
    """(head, body, share of bodies stopped by the budget), µs per request; warm or cold."""
    rng = random.Random(7) if cold else None
    reqs = iter([build(mix, rng) for _ in range(n * repeat * 2 + 1)])
    base = cpu_us(lambda: next(reqs), n, repeat)
    head = cpu_us(lambda: engine.inspect(next(reqs), "head", _budget()), n, repeat) - base
    bodies = iter([build(mix, rng) for _ in range(n * repeat)])  # built beforehand, parsed when inspected
    budgets: list[Budget] = []

    def body_once() -> None:
        budgets.append(_budget())
        engine.inspect(next(bodies), "body", budgets[-1])

    body = cpu_us(body_once, n, repeat)
    return head, body, sum(b.exhausted for b in budgets) / len(budgets)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    rules = load_all()
    print(f"# {len(rules)} rules; time budget {Config().time_budget * 1e3:.0f} ms per request")
    print(f"{'':16} {'':>7} {'':>7} {'warm':^17} {'cold':^17}")
    print(f"{'mix':16} {'model':>7} {'parse':>7} {'head':>8} {'body':>8} {'head':>8} {'body':>8} "
          f"{'stopped':>8} {'first':>8}")  # fmt: skip
    for mix in MIXES:
        engine_module._shared.clear()  # a freshly compiled engine (warmed on its examples only)
        engine = Engine(rules=rules)
        first_req = build(mix)
        t0 = time.process_time()
        engine.inspect(first_req, "head", _budget())
        engine.inspect(first_req, "body", _budget())
        first = (time.process_time() - t0) * 1e6
        n = 20 if "64k" in mix else 500
        model = cpu_us(lambda m=mix: build(m), n, args.repeat)
        parse = cpu_us(lambda m=mix: build(m).parsed_body, n, args.repeat) - model
        warm_head, warm_body, _ = measure(engine, mix, n, args.repeat, cold=False)
        cold_head, cold_body, stopped = measure(engine, mix, n, args.repeat, cold=True)
        print(f"{mix:16} {model:7.1f} {parse:7.1f} {warm_head:8.1f} {warm_body:8.1f} {cold_head:8.1f} "
              f"{cold_body:8.1f} {stopped:8.0%} {first:8.0f}")  # fmt: skip


if __name__ == "__main__":
    main()

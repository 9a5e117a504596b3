#!/usr/bin/env python3
"""The engine's per-value cost: what each value of a large request costs before its scan.

    python benchmarks/values.py [--repeat 7]

For N query parameters, N form fields and a JSON body of about N fields (ordinary content:
words, numbers, e-mail addresses, sentences), every request new to the engine (its caches
cleared), in one run:

- ``values``: how many values the request holds (parameter values and names, JSON keys:
  a name is one value, also on a request from elsewhere, as these are);
- ``views 1by1`` / ``views batch``: nanoseconds per value of ``Engine._views`` (which views each
  value needs, the transforms, the entries and texts of the scan), asking each value alone
  (``chains.BATCH_FROM`` set out of reach) and asking all of a key's values at once (as
  shipped: one search over them all tells the quiet ones apart), and their ratio;
- ``inspect``: microseconds of the whole inspection of that phase (values, views, scans,
  confirmation), as shipped.

Milliseconds of this thread's CPU time, median of ``--repeat``; other load on the machine
inflates every column alike, so read the ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devsecmw.engine import Engine, chains
from devsecmw.engine.targets import Value, body_values, line_values
from devsecmw.request import HttpRequest

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo"]


def _word(i: int) -> str:
    return WORDS[(i * 7919) % len(WORDS)]


def query(n: int, salt: int) -> HttpRequest:
    qs = "&".join(f"{_word(i)}{i}={_word(i + salt)}+{i * 13 + salt}" for i in range(n))
    return HttpRequest("GET", "/search?" + qs, "/search", query_string=qs, headers=[("host", "shop.test")])


def form(n: int, salt: int) -> HttpRequest:
    body = "&".join(f"field{i}={_word(i + salt)}+{_word(i)}+{salt}" for i in range(n)).encode()
    return _post(body, "application/x-www-form-urlencoded")


def json_body(n: int, salt: int) -> HttpRequest:
    records = [
        {
            "id": 100000 + i * 37 + salt,
            "name": f"{_word(i).title()} {_word(i + 3).title()}",
            "email": f"{_word(i)}.{_word(i + 1)}{salt % 97}@example.com",
            "note": f"Please deliver to the {_word(i + 2)} entrance after {8 + i % 10} am, ref {salt}-{i}.",
            "tags": [_word(i + 6), _word(i + 7)],
        }
        for i in range(max(1, n // 6))
    ]
    return _post(json.dumps({"items": records}).encode(), "application/json")


def _post(body: bytes, ctype: str) -> HttpRequest:
    req = HttpRequest("POST", "/p", "/p", headers=[("host", "shop.test"), ("content-type", ctype)])
    req.add_body(body, 1 << 20)
    req.body_complete = True
    return req


KINDS: dict[str, tuple[Callable[[int, int], HttpRequest], str]] = {
    "query": (query, "head"),
    "form": (form, "body"),
    "json": (json_body, "body"),
}


def values_of(req: HttpRequest, phase: str) -> list[Value]:
    return line_values(req) if phase == "head" else body_values(req)


def clear(engine: Engine) -> None:
    for cache in (engine.clean_values, engine.clean_parts, engine.clean_bodies):
        cache.clear()


Make = Callable[[int], HttpRequest]


def views_ns(engine: Engine, phase: str, make: Make, repeat: int, batch: int) -> float:
    saved = chains.BATCH_FROM
    chains.BATCH_FROM = batch
    try:
        ph = engine._phases[phase]
        times: list[float] = []
        for i in range(repeat):
            vals = values_of(make(i), phase)
            clear(engine)
            t0 = time.thread_time()
            engine._views(ph, vals, None)
            times.append((time.thread_time() - t0) / len(vals))
        return statistics.median(times) * 1e9
    finally:
        chains.BATCH_FROM = saved


def inspect_us(engine: Engine, phase: str, make: Make, repeat: int) -> float:
    times: list[float] = []
    for i in range(repeat):
        req = make(i)
        values_of(req, phase)  # parsing is not the engine's
        clear(engine)
        t0 = time.thread_time()
        engine.inspect(req, phase)
        times.append(time.thread_time() - t0)
    return statistics.median(times) * 1e6


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeat", type=int, default=7)
    args = p.parse_args()
    engine = Engine()
    for i in range(5):  # first-call costs (automata states, caches of reductions) are not the figure
        engine.inspect(query(50, i), "head")
        engine.inspect(json_body(50, i), "body")
    head = f"{'kind':<6} {'n':>6} {'values':>7} {'views 1by1':>11} {'views batch':>12} {'ratio':>6}"
    print(f"{head} {'inspect':>9}")
    for kind, (build, phase) in KINDS.items():
        for n in (10, 100, 1000):
            make: Make = lambda i, b=build, n=n: b(n, 1000 + i)  # noqa: E731
            count = len(values_of(make(0), phase))
            one = views_ns(engine, phase, make, args.repeat, 1 << 62)
            batch = views_ns(engine, phase, make, args.repeat, chains.BATCH_FROM)
            whole = inspect_us(engine, phase, make, args.repeat)
            row = f"{kind:<6} {n:>6} {count:>7} {one:>8.0f} ns {batch:>9.0f} ns {batch / one:>6.2f}"
            print(f"{row} {whole:>6.0f} µs")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

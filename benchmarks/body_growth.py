#!/usr/bin/env python3
"""Growth curves on benign content: what a structured body, many parameters or a long header cost.

    python benchmarks/body_growth.py             # JSON 1 KB .. 1 MB, 10 .. 10,000 query parameters,
                                                 # header values 1 .. 64 KB, form fields 10 .. 10,000
    python benchmarks/body_growth.py --quick     # 3 repeats, smaller axes
    python benchmarks/body_growth.py --only json

``growth.py`` fills each location with adversarial shapes; here the content is what an API
receives: JSON documents of varied records (names, e-mail addresses, notes, numbers, nested
objects and arrays), query strings and forms of ordinary parameters, a long header of
comma-separated tokens. Every request is new (its values change, and the engine's caches are
cleared before each one). For each point the bare app's figure of the same run is printed
beside devsecmw's: milliseconds of this thread's CPU time per request (median of
``--repeat``), the added time, and the added time per KB or per field. ``x16`` is the growth
of the added time over 16 times the input (linear: about 16). JSON bodies over the 64 KiB
cap are cut there and read field by field up to the cut (the flat part of the curve).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from growth import BASE_HEADERS, Driver, Request, bare

_WORDS = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa"
WORDS = [*_WORDS.split(" "), "quebec", "romeo", "sierra", "tango", "uniform", "victor", "whiskey", "xray"]


def _word(i: int) -> str:
    return WORDS[(i * 7919) % len(WORDS)]


def json_record(i: int, salt: int) -> dict[str, object]:
    """One record of an API payload: strings, numbers, a nested object, a short array."""
    return {
        "id": 100000 + i * 37 + salt,
        "name": f"{_word(i).title()} {_word(i + 3).title()}",
        "email": f"{_word(i)}.{_word(i + 1)}{salt % 97}@example.com",
        "active": i % 3 != 0,
        "score": round((i * 1.37 + salt) % 100, 2),
        "note": f"Please deliver to the {_word(i + 2)} entrance after {8 + i % 10} am, ref {salt}-{i}.",
        "address": {"street": f"{i % 300} {_word(i + 4).title()} Street", "city": _word(i + 5).title()},
        "tags": [_word(i + 6), _word(i + 7)],
    }


def json_body(size: int, salt: int) -> bytes:
    """A JSON document of about ``size`` bytes: ``{"items": [records...], "page": n}``."""
    one = len(json.dumps(json_record(0, salt)))
    count = max(1, size // (one + 2))
    return json.dumps({"items": [json_record(i, salt) for i in range(count)], "page": salt % 50}).encode()


def query(count: int, salt: int) -> bytes:
    return "&".join(f"{_word(i)}{i}={_word(i + salt)}+{i * 13 + salt}" for i in range(count)).encode()


def header_value(size: int, salt: int) -> bytes:
    unit = [f"{_word(i)}-{i + salt};q=0.{i % 10}" for i in range(size // 10 + 1)]
    return ", ".join(unit).encode()[:size]


def form(count: int, salt: int) -> bytes:
    return "&".join(f"field{i}={_word(i + salt)}+{_word(i)}+{salt}" for i in range(count)).encode()


def make(kind: str, n: int, salt: int) -> Request:
    if kind == "json":
        ctype = (b"content-type", b"application/json")
        return ("POST", b"/api/items", b"", [*BASE_HEADERS, ctype], json_body(n, salt))
    if kind == "query":
        return ("GET", b"/search", query(n, salt), BASE_HEADERS, b"")
    if kind == "header":
        return ("GET", b"/", b"", [*BASE_HEADERS, (b"x-client-hints", header_value(n, salt))], b"")
    if kind == "form":
        ctype = (b"content-type", b"application/x-www-form-urlencoded")
        return ("POST", b"/form", b"", [*BASE_HEADERS, ctype], form(n, salt))
    raise ValueError(kind)


KB = 1 << 10
AXES: dict[str, tuple[list[int], str]] = {
    "json": ([KB, 4 * KB, 16 * KB, 64 * KB, 256 * KB, 1024 * KB], "size"),
    "query": ([10, 100, 1000, 10_000], "count"),
    "header": ([KB, 4 * KB, 16 * KB, 64 * KB], "size"),
    "form": ([10, 100, 1000, 10_000], "count"),
}
QUICK: dict[str, list[int]] = {
    "json": [KB, 4 * KB, 16 * KB, 64 * KB, 256 * KB],
    "query": [10, 100, 1000],
    "header": [KB, 4 * KB, 16 * KB, 64 * KB],
    "form": [10, 100, 1000],
}


def median_ms(driver: Driver, app: object, build: Callable[[int], Request], repeat: int) -> float:
    return statistics.median(driver.call(app, build(i)) for i in range(repeat)) * 1000


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--only", action="append", choices=sorted(AXES))
    p.add_argument("--wall", action="store_true", help="wall-clock time instead of CPU time")
    args = p.parse_args()
    repeat = 3 if args.quick else args.repeat
    driver = Driver(args.wall)
    for i in range(20):  # first-call costs are not the curve's
        driver.call(driver.mw, make("json", 2 * KB, i))
        driver.call(driver.mw, make("query", 20, i))
    print(f"ms of {'wall' if args.wall else 'CPU'} time per request, median of {repeat}; every request new")
    for kind, (axis, unit) in AXES.items():
        if args.only and kind not in args.only:
            continue
        if args.quick:
            axis = QUICK[kind]
        print(f"\n{kind:<7} {unit:>9} {'bytes':>9} {'bare':>8} {'devsecmw':>9} {'added':>8} {'per unit':>11}")
        added_at: dict[int, float] = {}
        for n in axis:
            sample = make(kind, n, 0)
            size = len(sample[4]) or len(sample[2]) or len(sample[3][-1][1])
            bare_ms = median_ms(driver, bare, lambda i, k=kind, n=n: make(k, n, 1000 + i), repeat)
            mw_ms = median_ms(driver, driver.mw, lambda i, k=kind, n=n: make(k, n, 2000 + i), repeat)
            added = mw_ms - bare_ms
            added_at[n] = added
            per = f"{added * 1000 / (size / KB):7.1f} µs/KB"
            if unit == "count":
                per = f"{added * 1000 / n:6.2f} µs/f"
            label = f"{n >> 10}K" if unit == "size" else str(n)
            print(f"{'':<7} {label:>9} {size:9d} {bare_ms:8.3f} {mw_ms:9.3f} {added:8.3f} {per:>11}")
            sys.stdout.flush()
        pairs = [(a, a * 16) for a in axis if a * 16 in added_at and added_at[a] > 0]
        if pairs:
            ratios = ", ".join(f"{a}->{b}: {added_at[b] / added_at[a]:.1f}" for a, b in pairs)
            print(f"        added time over 16 times the input: {ratios}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

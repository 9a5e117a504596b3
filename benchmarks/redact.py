"""Redaction cost as the input grows: the ``eyJ`` query of issue 8 and its relatives.

    python benchmarks/redact.py [--repeat 5]

Issue 8, reproducer 1: ``GET /?q=`` + ``eyJ`` x 5300 cost ~850 ms, because the query
scrub for ``url.query`` ran a backtracking pattern over the whole query (3/6/12/24 KB:
53/134/493/2093 ms). Redaction is now hand-written linear scans behind one RE2 gate, and
every attribute is capped before it is scrubbed, so the cost stops growing at the cap.

Printed, per input size (3, 6, 12, 24, 64 KiB and 1 MiB), microseconds per call (median of
``--repeat`` runs) of:

- ``url.query``: :func:`devsecmw.redact.scrub_query` of ``q=eyJeyJ...``;
- ``url.path``: :func:`~devsecmw.redact.scrub_path` of ``/`` + ``eyJ...;jsessionid=x``;
- ``user_agent``: :func:`~devsecmw.redact.scrub_header` of ``sqlmap/1.0 eyJ... Bearer x``;
- ``evidence``: :func:`~devsecmw.redact.evidence` of a match at the end of the value,
  after a secret name at its start (the worst case: names are searched before the excerpt);
- ``evidence %``: the same value percent-encoded (names are also searched decoded);

then the growth factor from 3 KiB to 24 KiB and from 4 KiB-ish to 1 MiB (linear would be
8x and ~340x; bounded work stays near 1x).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devsecmw import redact

SIZES_KIB = (3, 6, 12, 24, 64, 1024)


def _time(fn: Callable[[], object], repeat: int) -> float:
    """Median microseconds per call over ``repeat`` runs, each long enough to time."""
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        if time.perf_counter() - t0 > 0.05 or n >= 1 << 16:
            break
        n *= 2
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        runs.append((time.perf_counter() - t0) / n)
    return statistics.median(runs) * 1e6


def cases(kib: int) -> dict[str, Callable[[], object]]:
    run = "eyJ" * (kib * 1024 // 3)
    query = "q=" + run
    path = "/" + run + ";jsessionid=x"
    ua = "sqlmap/1.0 " + run + " Authorization: Bearer x"
    value = "password=" + run + "' or 1=1 --"
    encoded = "password%3D" + "%41" * (kib * 1024 // 3) + "%27%20or%201%3D1"
    return {
        "url.query": lambda: redact.scrub_query(query),
        "url.path": lambda: redact.scrub_path(path),
        "user_agent": lambda: redact.scrub_header(ua),
        "evidence": lambda: redact.evidence("query:q", value, len(value) - 11, len(value)),
        "evidence %": lambda: redact.evidence("query:q", encoded, len(encoded) - 16, len(encoded)),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    table: dict[str, dict[int, float]] = {}
    for kib in SIZES_KIB:
        for name, fn in cases(kib).items():
            table.setdefault(name, {})[kib] = _time(fn, args.repeat)
    head = f"{'µs per call':<12}" + "".join(f"{f'{k} KiB':>10}" for k in SIZES_KIB)
    print(head + f"{'24/3':>8}{'1M/3':>8}")
    for name, row in table.items():
        cells = "".join(f"{row[k]:>10.1f}" for k in SIZES_KIB)
        print(f"{name:<12}{cells}{row[24] / row[3]:>7.1f}x{row[1024] / row[3]:>7.1f}x")


if __name__ == "__main__":
    main()

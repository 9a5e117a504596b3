#!/usr/bin/env python3
"""Detection under CPU contention: attacks replayed by many threads at once, with the default budget.

    python benchmarks/contention.py                    # 16 threads x 1,000 attacks, ../shared/corpus/dev
    python benchmarks/contention.py --threads 32 --per-thread 500 FILE.jsonl ...

Attack rows of the corpus that the engine detects when run alone are replayed by
``--threads`` threads at once through :class:`devsecmw.core.Runtime` (the request path
the middleware runs, with no-op OpenTelemetry providers), in two configurations:

- ``cpu budget``: as shipped, ``time_budget`` (50 ms) of this thread's CPU time with the
  wall-clock ceiling (10 x) as the safety net;
- ``wall budget``: the same 50 ms as a wall-clock limit (``time_ceiling=time_budget``), how
  devsecmw counted before: a thread waiting for a core, or for the GIL, spends it.

Printed per configuration: how many replayed attacks came back with no attack signal, and
how many were reported ``inspection_incomplete`` (a budget stopped inspection: visible, not
silent). On a loaded machine the wall budget loses attacks; the CPU budget should lose
none. Exits cleanly, printing a note, when no corpus is found.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import NO_CORPUS, corpus_files
from detection import request_of

from devsecmw.config import Config
from devsecmw.core import Runtime
from devsecmw.engine import Engine
from devsecmw.signals import ATTACK_TYPES, INSPECTION_INCOMPLETE


def replay(runtime: Runtime, row: dict[str, Any]) -> set[str]:
    """The signal types of one row through the request path (head, body, decision)."""
    insp = runtime.begin(request_of(row))
    if insp is None:
        return set()
    insp.inspect_body()
    types = {s.type for s in insp.signals}
    insp.finish()
    return types


def run(
    runtime: Runtime, rows: list[dict[str, Any]], threads: int, per_thread: int
) -> tuple[int, int, float]:
    missed = [0] * threads
    cut = [0] * threads

    def worker(k: int) -> None:
        for j in range(per_thread):
            types = replay(runtime, rows[(j * threads + k) % len(rows)])
            missed[k] += not types & ATTACK_TYPES
            cut[k] += INSPECTION_INCOMPLETE in types

    t0 = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return sum(missed), sum(cut), time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="*")
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--per-thread", type=int, default=1000)
    ap.add_argument("--every", type=int, default=7, help="only every n-th attack row")
    args = ap.parse_args(argv)
    files = corpus_files(args.files)
    if not files:
        print(NO_CORPUS)
        return 0
    rows = []
    for path in files:
        with open(path, "rb") as fh:
            rows += [r for r in map(json.loads, filter(bytes.strip, fh)) if r.get("expect") == "attack"]
    rows = rows[:: args.every]
    engine = Engine(Config())
    configs = {
        "cpu budget": Runtime(Config(), detector=engine),
        "wall budget": Runtime(Config(time_ceiling=Config().time_budget), detector=engine),
    }
    alone = [r for r in rows if replay(configs["cpu budget"], r) & ATTACK_TYPES]
    total = args.threads * args.per_thread
    print(f"{len(alone)} attack rows detected alone; {args.threads} threads x {args.per_thread} replays each")
    for name, runtime in configs.items():
        missed, cut, took = run(runtime, alone, args.threads, args.per_thread)
        print(
            f"{name:<12} {missed:6d} of {total} attacks benign, {cut:6d} inspection_incomplete ({took:.1f} s)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Start-up cost: import, construction and first request, each in a fresh interpreter.

    python benchmarks/startup.py [--runs 3] [--traffic 20000]

Every worker process pays these once (a server that imports the app before forking pays
them once for all its workers). Printed, median of ``--runs`` fresh interpreters:
CPU seconds and resident memory added by ``import devsecmw.asgi``, by building the
middleware (rules loaded and validated, patterns compiled, automata warmed), and by the
first request; when Hyperscan is installed, when its database is ready (compiled in a
background thread, or loaded from ``DEVSECMW_CACHE_DIR``: the first run on a machine
compiles, the next ones load) and what it added; then the resident memory after
``--traffic`` distinct benign corpus requests (``../shared/corpus/dev`` when present),
beside the bare app's after the same. ``DEVSECMW_HYPERSCAN=off`` measures RE2 alone.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Issue 10's targets: import plus construction, and RSS over the bare app after the traffic.
TARGET_S, TARGET_MIB, TARGET_TRAFFIC_MB = 0.3, 20.0, 40.0

CHILD = r"""
import asyncio, json, sys, time
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, sys.argv[1] + "/benchmarks")

def rss():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return 0.0

guarded = sys.argv[2] == "devsecmw"
traffic = int(sys.argv[3])
import varied
from _common import providers
tp, mp = providers()
out = {}
# The app first: its own imports (Starlette, ~4 MiB) are the bare app's, not the middleware's.
app = varied.make_app()
r0, t0 = rss(), time.process_time()
if guarded:
    import devsecmw.asgi
r1, t1 = rss(), time.process_time()
if guarded:
    app = devsecmw.asgi.SecurityMiddleware(app, tracer_provider=tp, meter_provider=mp)
r2, t2 = rss(), time.process_time()
w2 = time.perf_counter()
loop = asyncio.new_event_loop()
first = (("GET", b"/api/items", b"q=shirt", [(b"host", b"x"), (b"user-agent", b"curl/8")], b""))
loop.run_until_complete(varied.once(app, first, 0))
r3, t3 = rss(), time.process_time()
out.update(import_s=t1 - t0, import_mib=r1 - r0, construct_s=t2 - t1, construct_mib=r2 - r1,
           first_s=t3 - t2, first_mib=r3 - r2, after_first_mib=r3)
if guarded:
    # Hyperscan's database (optional): built in the background, or loaded from the cache.
    from devsecmw.engine import plan
    dbs = [d for d in getattr(plan, "databases", {}).values() if d is not None]
    if dbs and dbs[0].wait(600):
        out.update(hs_ready_s=time.perf_counter() - w2, hs_source=dbs[0].source,
                   hs_cpu_s=time.process_time() - t3, hs_mib=rss() - r3)
if traffic:
    from _common import corpus_files
    files = corpus_files()
    rows = varied.load(files, "benign")[:traffic] if files else []
    for i, req in enumerate(rows):
        loop.run_until_complete(varied.once(app, req, i))
    out.update(traffic=len(rows), after_traffic_mib=rss())
print(json.dumps(out))
"""


def run(kind: str, traffic: int) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(ROOT), kind, str(traffic)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--traffic", type=int, default=20_000)
    args = ap.parse_args(argv)
    runs = [run("devsecmw", 0) for _ in range(args.runs)]

    def med(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    print(f"{'step':16} {'CPU s':>8} {'RSS MiB':>8}")
    for step in ("import", "construct", "first"):
        print(f"{step:16} {med(step + '_s'):8.3f} {med(step + '_mib'):8.1f}")
    total_s = med("import_s") + med("construct_s")
    total_mib = med("import_mib") + med("construct_mib")
    target = f"(target {TARGET_S} s, {TARGET_MIB:.0f} MiB)"
    print(f"{'import+construct':16} {total_s:8.3f} {total_mib:8.1f}   {target}")
    if all("hs_source" in r for r in runs):
        sources = ",".join(sorted({str(r["hs_source"]) for r in runs}))
        print(
            f"hyperscan database ({sources}): ready {med('hs_ready_s'):.2f} s after construction "
            f"(background thread, {med('hs_cpu_s'):.2f} s CPU), +{med('hs_mib'):.1f} MiB"
        )
    else:
        print("hyperscan: not installed or DEVSECMW_HYPERSCAN=off (RE2 answers every scan)")
    if args.traffic:
        bare, guarded = run("bare", args.traffic), run("devsecmw", args.traffic)
        if guarded.get("traffic"):
            over = guarded["after_traffic_mib"] - bare["after_traffic_mib"]
            print(
                f"RSS after {guarded['traffic']:.0f} distinct benign requests: bare app "
                f"{bare['after_traffic_mib']:.1f} MiB, devsecmw {guarded['after_traffic_mib']:.1f} MiB "
                f"(+{over:.1f} MiB = {over * 1.048576:.1f} MB; target {TARGET_TRAFFIC_MB:.0f} MB)"
            )
        else:
            print(
                "# no corpus: the memory-after-traffic figure needs ../shared/corpus/dev or fetch_corpora.py"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

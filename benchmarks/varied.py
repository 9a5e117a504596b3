"""Cost on real traffic, where every request is new: distinct corpus requests per request class.

    python benchmarks/varied.py                      # benign and attack rows of ../shared/corpus/dev
    python benchmarks/varied.py --n 3000 --rounds 3 FILES.jsonl ...

The referee's fixed mixes send one request over and over and so measure the warm path;
here each request is replayed once, as traffic is. Rows are shuffled (seeded), split
into classes by what they carry (no body, a query, a JSON / form / multipart / other
body), and each request is sent through the bare Starlette app and through devsecmw
(spans recorded then dropped), alternately, timing CPU time (``time.thread_time``:
other processes on a shared machine do not count). Printed per class and for all: the
number of requests, the bare app's mean, and devsecmw's mean, median and p90 added µs,
for benign rows and for attack rows. The mean over requests is the figure a service
pays; the median is the typical request. ``--rounds`` replays the same slice again
(warm caches) after the first, new-traffic, round.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import random
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import NO_CORPUS, corpus_files, providers

Request = tuple[str, bytes, bytes, list[tuple[bytes, bytes]], bytes]


def load(paths: list[str], want: str) -> list[Request]:
    out: list[Request] = []
    for path in paths:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                row = json.loads(line)
                if row.get("expect") != want:
                    continue
                target = str(row["uri"]).encode("latin-1", "replace")
                if target.startswith((b"http://", b"https://")):
                    rest = target.split(b"//", 1)[1]
                    target = b"/" + rest.split(b"/", 1)[1] if b"/" in rest else b"/"
                path_, _, query = target.partition(b"?")
                headers = [
                    (str(k).lower().encode("latin-1", "replace"), str(v).encode("latin-1", "replace"))
                    for k, v in row.get("headers") or []
                ]
                body = row.get("body") or ""
                raw = (
                    base64.b64decode(body) if row.get("body_b64") else str(body).encode("latin-1", "replace")
                )
                out.append((str(row["method"]), path_ or b"/", query, headers, raw))
    random.Random(7).shuffle(out)
    return out


def kind(req: Request) -> str:
    _, _, query, headers, body = req
    if not body:
        return "query" if query else "no body"
    ctype = next((v for k, v in headers if k == b"content-type"), b"").lower()
    for name in (b"json", b"multipart", b"form"):
        if name in ctype:
            return name.decode()
    return "other body"


def make_app() -> Any:
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def anything(request: Any) -> JSONResponse:
        body = await request.body()
        return JSONResponse({"ok": True, "n": len(body)})

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    return Starlette(routes=[Route("/{path:path}", anything, methods=methods)])


async def once(app: Any, req: Request, i: int) -> None:
    method, path, query, headers, body = req
    chunks = [body[j : j + 65536] for j in range(0, len(body), 65536)] or [b""]
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path.decode("latin-1"), "raw_path": path, "query_string": query,
        "root_path": "", "headers": headers, "client": ("198.18.0.1", 40000 + i % 1000),
        "server": ("127.0.0.1", 8000),
    }  # fmt: skip

    async def receive() -> dict[str, Any]:
        if chunks:
            c = chunks.pop(0)
            return {"type": "http.request", "body": c, "more_body": bool(chunks)}
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        return None

    await app(scope, receive, send)


def measure(requests: list[Request], rounds: int) -> dict[str, dict[str, list[float]]]:
    from devsecmw.asgi import SecurityMiddleware

    tp, mp = providers()
    bare, guarded = make_app(), SecurityMiddleware(make_app(), tracer_provider=tp, meter_provider=mp)
    loop = asyncio.new_event_loop()
    for i, req in enumerate(requests[:20]):  # imports and first-call costs, not the traffic's
        loop.run_until_complete(once(bare, req, i))
        loop.run_until_complete(once(guarded, req, i))
    requests = requests[20:]
    out: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    clock = time.thread_time
    for r in range(rounds):
        label = "new" if r == 0 else "again"
        for i, req in enumerate(requests):
            t0 = clock()
            loop.run_until_complete(once(bare, req, i))
            t1 = clock()
            loop.run_until_complete(once(guarded, req, i))
            t2 = clock()
            out[label][kind(req)].append((t2 - t1 - (t1 - t0)) * 1e6)
            out[label]["bare " + kind(req)].append((t1 - t0) * 1e6)
    return out


def report(title: str, data: dict[str, dict[str, list[float]]]) -> None:
    for label, classes in data.items():
        print(f"\n{title}, {label} traffic: devsecmw's added CPU µs per request")
        print(f"{'class':12} {'n':>6} {'bare':>8} {'mean':>8} {'median':>8} {'p90':>8}")
        names = sorted(k for k in classes if not k.startswith("bare "))
        every = [x for k in names for x in classes[k]]
        for name in [*names, "ALL"]:
            added = every if name == "ALL" else classes[name]
            bare = (
                [x for k in names for x in classes["bare " + k]] if name == "ALL" else classes["bare " + name]
            )
            if not added:
                continue
            p90 = sorted(added)[int(len(added) * 0.9)]
            print(
                f"{name:12} {len(added):6d} {statistics.mean(bare):8.1f} {statistics.mean(added):8.1f} "
                f"{statistics.median(added):8.1f} {p90:8.1f}"
            )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("files", nargs="*")
    ap.add_argument("--n", type=int, default=2400, help="requests per kind of row (benign, attack)")
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args(argv)
    files = corpus_files(args.files)
    if not files:
        print(NO_CORPUS)
        return 0
    for want in ("benign", "attack"):
        rows = load(files, want)[: args.n + 20]
        if rows:
            report(f"{want} rows", measure(rows, args.rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())

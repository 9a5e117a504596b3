"""Detection unchanged? The signals of every corpus row, this tree beside another one.

    python benchmarks/same_signals.py --base ../main [--hyperscan on|off] [FILES.jsonl ...]

Each tree runs in its own interpreter (``PYTHONPATH`` = the tree) and replays every row of
the corpus (default ``../shared/corpus/dev``) through its ASGI middleware, the way the
referee ``detect_eval.py`` does; the (signal type, rule id) set of each row is compared.
Printed: rows, signals on each side, and the rows that differ. A row that differs only by
``inspection_incomplete`` (the time budget stopped inspection on a loaded machine) is
counted apart: run it again alone to tell. When Hyperscan is installed, this tree's
database is waited for before the first row (``--hyperscan off``: RE2 alone).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import asyncio, base64, json, logging, sys
from urllib.parse import unquote_to_bytes
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from devsecmw.asgi import SecurityMiddleware

logging.getLogger("devsecmw").setLevel(logging.ERROR)  # the corpus's proxy headers: one warning
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))


async def app(scope, receive, send):
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


mw = SecurityMiddleware(app, tracer_provider=provider)
try:
    from devsecmw.engine import plan
    for db in getattr(plan, "databases", {}).values():
        if db is not None:
            db.wait(600)
except ImportError:
    pass


async def one(row, i):
    uri = row["uri"]
    path, _, query = uri.partition("?")
    body = base64.b64decode(row.get("body") or "") if row.get("body_b64") else (row.get("body") or "").encode(
        "latin-1", "replace")
    headers = [(k.lower().encode("latin-1", "replace"), v.encode("latin-1", "replace"))
               for k, v in row.get("headers", [])]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": row.get("method", "GET"), "scheme": "http",
             "path": unquote_to_bytes(path).decode("utf-8", "replace"),
             "raw_path": path.encode("latin-1", "replace"),
             "query_string": query.encode("latin-1", "replace"), "root_path": "", "headers": headers,
             "client": (f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", 5000), "server": ("127.0.0.1", 8000)}
    chunks = [body[j:j + 1024] for j in range(0, len(body), 1024)] or [b""]

    async def receive():
        if chunks:
            chunk = chunks.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}
        return {"type": "http.disconnect"}

    async def send(message):
        pass

    await mw(scope, receive, send)


loop = asyncio.new_event_loop()
out = []
i = 0
for name in sys.argv[2:]:
    with open(name, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            row = json.loads(line)
            loop.run_until_complete(one(row, i))
            i += 1
            events = [e.attributes for s in exporter.get_finished_spans() for e in s.events
                      if e.name == "devsecmw.signal"]
            signals = sorted({(str(a.get("devsecmw.signal.type")), str(a.get("devsecmw.rule.id")))
                              for a in events})
            exporter.clear()
            out.append([row.get("id", str(i)), signals])
with open(sys.argv[1], "w") as fh:
    json.dump(out, fh)
"""


def run(tree: Path, files: list[str], env: dict[str, str]) -> list[tuple[str, list[list[str]]]]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rows.json"
        subprocess.run(
            [sys.executable, "-c", CHILD, str(out), *files],
            env={**os.environ, **env, "PYTHONPATH": str(tree)}, check=True, cwd=tmp,
        )  # fmt: skip
        rows: list[tuple[str, list[list[str]]]] = json.loads(out.read_text())
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("files", nargs="*")
    ap.add_argument("--base", required=True, type=Path, help="the other tree (e.g. ../main)")
    ap.add_argument("--hyperscan", choices=("on", "off"), default="on")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import corpus_files

    files = corpus_files(args.files)
    if not files:
        print("# no corpus (../shared/corpus/dev): nothing to compare")
        return 0
    env = {"DEVSECMW_HYPERSCAN": args.hyperscan}
    base, mine = run(args.base.resolve(), files, env), run(ROOT, files, env)
    assert [r[0] for r in base] == [r[0] for r in mine], "the two runs read different rows"
    differ = [(a[0], a[1], b[1]) for a, b in zip(base, mine, strict=True) if a[1] != b[1]]
    budget = [d for d in differ if any(sig[0] == "inspection_incomplete" for sig in d[1] + d[2])]
    counts = sum(len(r[1]) for r in base), sum(len(r[1]) for r in mine)
    print(f"rows {len(base)}; signals: base {counts[0]}, this tree {counts[1]}")
    print(f"rows that differ: {len(differ)} (of which with inspection_incomplete on one side: {len(budget)})")
    for row_id, a, b in differ[:50]:
        print(f"  {row_id}: base {a} / this tree {b}")
    return 1 if len(differ) > len(budget) else 0


if __name__ == "__main__":
    sys.exit(main())

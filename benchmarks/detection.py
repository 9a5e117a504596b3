"""Detection quality of the engine alone: recall per category and the false-positive rate.

    python benchmarks/detection.py                         # ../shared/corpus/dev/*.jsonl if present
    python benchmarks/detection.py FILE.jsonl ... [--misses out.json] [--paranoia 2]

Rows (format: ``../shared/corpus/FORMAT.md``) are turned into the request model and
given to :class:`devsecmw.engine.Engine` directly: no middleware, no telemetry, so a
whole corpus takes seconds. A row is *detected* when any attack-type signal fires,
*right* when one of the types accepted for its label fires (the same table as the
referee, ``../shared/eval/detect_eval.py``, which replays through the middleware and
should print the same figures); a benign row with an attack signal is a false positive.
Exits cleanly, printing a note, when no corpus is found.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import NO_CORPUS, corpus_files

from devsecmw.config import Config
from devsecmw.engine import Engine
from devsecmw.request import HttpRequest, percent_decode
from devsecmw.signals import ATTACK_TYPES

# Signal types accepted as the right category for each label (as the referee accepts them).
ACCEPT: dict[str, set[str]] = {
    "sqli": {"sqli"},
    "xss": {"xss"},
    "cmdi": {"cmdi", "code_injection"},
    "traversal": {"traversal", "private_file"},
    "rfi": {"rfi", "ssrf"},
    "ssrf": {"ssrf", "rfi"},
    "xxe": {"xxe"},
    "ssti": {"ssti", "code_injection"},
    "nosqli": {"nosqli"},
    "log4shell": {"log4shell", "java"},
    "php": {"php", "code_injection"},
    "java": {"java", "log4shell", "code_injection"},
    "nodejs": {"nodejs", "code_injection", "ssrf"},
    "code_injection": {"code_injection", "php", "nodejs", "java", "cmdi", "ssti"},
    "scanner": {"scanner", "backdoor", "private_file"},
    "protocol": {"protocol", "not_utf8", "null_byte", "double_encoding"},
    "session_fixation": {"session_fixation"},
    "backdoor": {"backdoor", "private_file"},
}


def request_of(row: dict[str, Any]) -> HttpRequest:
    uri = str(row.get("uri") or "/")
    if uri.startswith(("http://", "https://")):  # absolute-form: keep what routing sees
        rest = uri.split("//", 1)[1]
        uri = "/" + rest.split("/", 1)[1] if "/" in rest else "/"
    raw_path, _, query = uri.partition("?")
    path, _ = percent_decode(raw_path)
    headers = [(str(k).lower(), str(v)) for k, v in row.get("headers") or []]
    req = HttpRequest(str(row.get("method") or "GET"), uri, path or "/", query_string=query, headers=headers)
    body = row.get("body") or ""
    raw = base64.b64decode(body) if row.get("body_b64") else str(body).encode("latin-1", "replace")
    if raw:
        req.add_body(raw, Config().body_limit)
        req.body_complete = True
    return req


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="*")
    ap.add_argument("--paranoia", type=int, default=1)
    ap.add_argument("--every", type=int, default=1, help="only every n-th row (the referee's sample)")
    ap.add_argument("--misses", help="write missed attacks and false positives (JSON) here")
    args = ap.parse_args(argv)
    files = corpus_files(args.files)
    if not files:
        print(NO_CORPUS)
        return 0
    engine = Engine(Config(paranoia_level=args.paranoia))
    stats: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    misses: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    n = seen = 0
    for path in files:
        with open(path, "rb") as fh:
            for line in fh:
                if not line.strip():
                    continue
                seen += 1  # counted across files, as the referee samples
                if (seen - 1) % args.every:
                    continue
                row = json.loads(line)
                n += 1
                req = request_of(row)
                signals = engine.inspect(req, "head") + engine.inspect(req, "body")
                attacks = {s.type for s in signals if s.type in ATTACK_TYPES}
                label = str(row.get("category") or "benign")
                benign = row.get("expect") == "benign" or label == "benign"
                for key in (
                    (Path(path).name, "benign" if benign else label),
                    ("ALL", "benign" if benign else label),
                ):
                    c = stats[key]
                    c["rows"] += 1
                    if benign:
                        c["fp"] += bool(attacks)
                    else:
                        c["any"] += bool(attacks)
                        c["right"] += bool(attacks & ACCEPT.get(label, {label}))
                if (benign and attacks) or (not benign and not attacks & ACCEPT.get(label, {label})):
                    found = sorted({f"{s.rule_id}:{s.type}@{s.location}" for s in signals})
                    misses.append({"id": row.get("id"), "file": Path(path).name, "category": label})
                    misses[-1]["found"] = found
    elapsed = time.perf_counter() - t0
    print(f"{'file':28} {'category':16} {'rows':>6} {'any%':>7} {'right%':>7} {'fp%':>7}")
    for (f, cat), c in sorted(stats.items(), key=lambda kv: (kv[0][0] == "ALL", kv[0])):
        rows = c["rows"]
        if cat == "benign":
            print(f"{f:28} {cat:16} {rows:6} {'':>7} {'':>7} {100 * c['fp'] / rows:6.2f}%")
        else:
            print(f"{f:28} {cat:16} {rows:6} {100 * c['any'] / rows:6.1f}% {100 * c['right'] / rows:6.1f}%")
    print(f"\n# {n} rows in {elapsed:.1f} s ({elapsed / max(n, 1) * 1e6:.0f} µs per row, engine only)")
    if args.misses:
        Path(args.misses).write_text(json.dumps(misses, indent=1))
        print(f"# {len(misses)} misses and false positives written to {args.misses}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

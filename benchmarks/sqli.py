"""Cost of the SQL injection detector (``devsecmw.engine.sqli``), per value.

    python benchmarks/sqli.py [--repeat 5] [--limit 20000]

Printed, in microseconds per value (best of ``--repeat`` runs):

- ``benign, all``: every value the paranoia-1 ``detect_sqli`` rules target in the benign rows of the shared
  corpus (``../shared/corpus/dev``: csic, httpparams, modern_benign), after the
  rules' transforms; most of them never reach the tokenizer because the RE2
  ``PREFILTER`` does not match (its cost is included);
- ``benign, past prefilter``: only those the prefilter lets through (prose with an
  apostrophe, ``a=b&c=d``...): the tokenizer's cost on ordinary text;
- ``attack``: the SQLi rows' values (sqlmap, PayloadsAllTheThings, CRS);
- adversarial single values of 64 KiB (the referee's fragment mix, long valid SQL,
  deep parentheses, runs of quotes): the bounded worst cases, in milliseconds.

A calibration loop is printed first: on a shared or throttled machine compare the
ratios between lines, not the absolute numbers. The corpus lines are skipped when
the corpus is absent.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from urllib.parse import unquote_to_bytes

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from devsecmw.engine import sqli  # noqa: E402
from devsecmw.engine import transforms as tf  # noqa: E402
from devsecmw.engine.matcher import compile_pattern  # noqa: E402
from devsecmw.engine.rules import Rule, load_packaged  # noqa: E402
from devsecmw.engine.targets import NAMES_OF, Item, body_items, head_items  # noqa: E402
from devsecmw.request import from_asgi_scope  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus" / "dev"
FRAGMENT = "'/*<a \"||(select ../ ${jndi: %2e%2e <svg on"


def best(fn: Callable[[], object], repeat: int) -> float:
    out = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out = min(out, time.perf_counter() - t0)
    return out


def calibrate() -> float:
    t0 = time.perf_counter()
    x = 0
    for i in range(1_000_000):
        x += i
    return (time.perf_counter() - t0) * 1e3


def rows(name: str) -> Iterator[dict[str, object]]:
    path = CORPUS / name
    if not path.exists():
        return
    with path.open("rb") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def items(row: dict[str, object]) -> list[Item]:
    uri = str(row["uri"]).encode("latin-1", "replace")
    if uri.startswith((b"http://", b"https://")):
        rest = uri.split(b"//", 1)[1]
        uri = b"/" + rest.split(b"/", 1)[1] if b"/" in rest else b"/"
    path, _, query = uri.partition(b"?")
    headers = row.get("headers") or []
    assert isinstance(headers, list)
    scope = {
        "type": "http",
        "method": row.get("method", "GET"),
        "path": unquote_to_bytes(path).decode("utf-8", "replace"),
        "raw_path": path,
        "query_string": query,
        "headers": [
            (str(k).lower().encode("latin-1"), str(v).encode("latin-1", "replace")) for k, v in headers
        ],
    }
    req = from_asgi_scope(scope)
    body = str(row.get("body") or "")
    raw = base64.b64decode(body) if row.get("body_b64") else body.encode("latin-1", "replace")
    if raw:
        req.add_body(raw, 64 * 1024)
        req.body_complete = True
    return head_items(req) + body_items(req)


def values(files: list[str], category: str, rules: list[Rule], limit: int) -> list[tuple[Rule, str]]:
    out: list[tuple[Rule, str]] = []
    for name in files:
        for row in rows(name):
            if row.get("category") != category:
                continue
            for it in items(row):
                for rule in rules:
                    # An offsite name stands for a plain name as well (see NAMES_OF).
                    if rule.applies_to(it.key) or rule.applies_to(NAMES_OF.get(it.key, it.key)):
                        out.append((rule, tf.apply_chain(it.value, rule.transforms)))
            if len(out) >= limit:
                return out
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--limit", type=int, default=20000, help="values per corpus line at most")
    args = ap.parse_args()

    # The default configuration's rules (paranoia 1); 942103 is the paranoia-2 variant.
    rules = [r for r in load_packaged() if r.operator_name == "detect_sqli" and r.paranoia == 1]
    prefilter = compile_pattern(sqli.PREFILTER)
    print(f"calibration: 1M-iteration Python loop = {calibrate():.0f} ms (~50 ms on an idle laptop)")

    benign = values(["csic.jsonl", "httpparams.jsonl", "modern_benign.jsonl"], "benign", rules, args.limit)
    attack = values(["httpparams.jsonl", "pat.jsonl", "crs.jsonl"], "sqli", rules, args.limit)
    if not benign:
        print("shared corpus not found: corpus lines skipped")
    else:

        def run(vals: list[tuple[Rule, str]]) -> Callable[[], object]:
            def go() -> None:
                for rule, v in vals:
                    if prefilter.search(v) is not None:
                        rule.operator.evaluate(v, Item("", "", v))

            return go

        passed = [(r, v) for r, v in benign if prefilter.search(v) is not None]
        for label, vals in (
            ("benign, all", benign),
            ("benign, past prefilter", passed),
            ("attack", attack),
        ):
            dt = best(run(vals), args.repeat)
            print(f"{label:24} {len(vals):7} values  {1e6 * dt / max(len(vals), 1):8.2f} us/value")

    adversarial = {
        "fragments_64k": (FRAGMENT * (65536 // len(FRAGMENT) + 1))[:65536],
        "fragments_no_comment": (FRAGMENT.replace("/*", "/") * (65536 // len(FRAGMENT) + 1))[:65536],
        "valid_sql_64k": ("1+" * 32768)[:65536],
        "union_select_64k": ("union select 1 " * 4400)[:65536],
        "parentheses_64k": "(" * 65536,
        "quotes_64k": "'" * 65536,
        "prose_64k": ("it's a union of workers, don't -- really; select the best one. " * 1100)[:65536],
    }
    for label, v in adversarial.items():
        dt = best(partial(sqli.detect, v), args.repeat)
        print(f"{label:24} {len(v):7} chars   {1e3 * dt:8.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())

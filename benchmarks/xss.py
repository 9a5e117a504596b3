"""The XSS detector (``devsecmw/engine/xss/``) on its own: microseconds per value.

    python benchmarks/xss.py [--repeat 5]

Values, after the rule's transforms (``url_decode_deep``, ``remove_nulls``):

- ``benign``: every benign corpus value the engine would hand to the detector (its
  prefilter occurs: rich text, Markdown, data URLs...), from ``../shared/corpus/dev``;
- ``attack``: the values of the corpus's ``xss`` rows that carry the payload;
- 64 KiB adversarial strings: fragments that start many candidates and finish none
  (``fragments`` is the referee's mix), decoys of each check, random punctuation, and a
  long benign rich text for comparison.

Printed: microseconds per value (best of ``--repeat`` rounds, process time), the
detector's own work counter (``steps`` per character), and what it reported. The
corpus figures are skipped when the corpus is absent.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import parse_qsl, unquote_plus

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devsecmw.engine import xss
from devsecmw.engine.matcher import compile_pattern
from devsecmw.engine.transforms import apply_chain

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "dev"
CHAIN = ("url_decode_deep", "remove_nulls")
SIZE = 65536


def fill(fragment: str, size: int = SIZE) -> str:
    return (fragment * (size // len(fragment) + 1))[:size]


def adversarial() -> dict[str, str]:
    rnd = random.Random(7)
    return {
        "fragments (referee mix)": fill("'/*<a \"||(select ../ ${jndi: %2e%2e <svg on"),
        "tag soup '<a '": fill("<a "),
        "unterminated attribute": fill('<a title="x '),
        "handler decoys": fill("x onclick=1 "),
        "escaped handlers": fill("&lt;img onerror=alert(1) "),
        "URL attribute decoys": fill("<a href=javascript "),
        "quote-operator decoys": fill("'-foo bar(1) "),
        "sink decoys": fill("please alert(the bank) "),
        "global decoys": fill("window[ "),
        "character references": fill("&#1"),
        "CSS decoys": fill("style=x:expression(a b) "),
        "JS escapes": fill("\\x41\\u0042"),
        "random punctuation": "".join(rnd.choice("abcdefghij<>\"'=/ ;:()&#{}[]`\\on") for _ in range(SIZE)),
        "benign rich text": fill(
            '<p>Hello <strong>world</strong> &amp; <a href="https://example.com/x?a=1&amp;b=2">link</a>, '
            '<img src="https://cdn.example.com/a.png" alt="x"> <span style="color:#333">t</span></p>\n'
        ),
        "benign prose": fill("The quick brown fox (really) jumps over the 'lazy' dog; it's 5 o'clock. "),
    }


def row_values(row: dict[str, object]) -> Iterable[str]:
    """The parameter values of a corpus row (query, form or JSON body), decoded once like the parser."""
    uri = str(row.get("uri", ""))
    if "?" in uri:
        yield from (v for _, v in parse_qsl(uri.split("?", 1)[1], keep_blank_values=True))
    body = str(row.get("body") or "")
    if row.get("body_b64"):
        body = base64.b64decode(body).decode("utf-8", "replace")
    if body.lstrip().startswith(("{", "[")):
        try:
            yield from leaves(json.loads(body))
        except ValueError:
            yield body
    elif "=" in body and "<" not in body.split("=", 1)[0]:
        yield from (unquote_plus(v) for _, v in parse_qsl(body, keep_blank_values=True))


def leaves(doc: object) -> Iterable[str]:
    if isinstance(doc, str):
        yield doc
    elif isinstance(doc, dict):
        for v in doc.values():
            yield from leaves(v)
    elif isinstance(doc, list):
        for v in doc:
            yield from leaves(v)


def corpus_values() -> tuple[list[str], list[str]]:
    prefilter = compile_pattern(xss.PREFILTER)
    benign: list[str] = []
    attack: list[str] = []
    for path in sorted(CORPUS.glob("*.jsonl")):
        with path.open("rb") as fh:
            for line in fh:
                row = json.loads(line)
                if row["expect"] == "attack" and row["category"] != "xss":
                    continue
                for value in row_values(row):
                    view = apply_chain(value, CHAIN)
                    if prefilter.search(view) is None:
                        continue
                    (benign if row["expect"] == "benign" else attack).append(view)
    return benign, attack


def best(fn: Callable[[], object], repeat: int) -> float:
    out = float("inf")
    for _ in range(repeat):
        t = time.process_time()
        fn()
        out = min(out, time.process_time() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    if CORPUS.exists():
        benign, attack = corpus_values()
        for name, values in (("benign (prefilter hits)", benign), ("attack (xss rows)", attack)):
            for strict in (False, True):
                secs = best(lambda v=values, s=strict: [xss.scan(x, s) for x in v], args.repeat)
                found = sum(xss.scan(x, strict).span is not None for x in values)
                avg = sum(map(len, values)) / max(len(values), 1)
                label = f"{name}{' strict' if strict else ''}"
                print(
                    f"{label:34} {1e6 * secs / max(len(values), 1):8.1f} us/value  "
                    f"n={len(values)} avg_len={avg:.0f} reported={found}"
                )
    else:
        print(f"(corpus not found at {CORPUS}: corpus figures skipped)")
    print()
    print(f"{'64 KiB value':34} {'ms':>8}  steps/char  reported  | strict ms")
    for name, value in adversarial().items():
        view = apply_chain(value, CHAIN)
        secs = best(lambda v=view: xss.scan(v), args.repeat)
        ssecs = best(lambda v=view: xss.scan(v, True), args.repeat)
        res = xss.scan(view)
        print(
            f"{name:34} {1e3 * secs:8.3f}  {res.steps / len(view):10.2f}  {res.span is not None!s:8}  "
            f"| {1e3 * ssecs:8.3f}"
        )


if __name__ == "__main__":
    main()

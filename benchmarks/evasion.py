"""Generalisation: recall under technique-level evasions, and per source.

    python benchmarks/evasion.py [FILES...] [--every 2] [--paranoia 1]

Every attack row of the dev corpus (``../shared/corpus/dev``; nothing is printed but a note
when it is absent) is replayed once as it is and once per mutation that applies to its
category. A mutation rewrites the row's parameter values (query, urlencoded form, JSON string
leaves) the way an evasion tool would, keeping what the payload means to its target
(a shell, a SQL parser, a browser): extra encoding layers, random case, control whitespace,
comments for spaces, quote concatenation inside shell words, sqlmap-style tamper rewrites.
Rows with no parameter to rewrite are not counted for that mutation. The figure printed is
recall in the right category (the referee's acceptance table), next to the recall of the
same rows unmutated: the drop is what the evasion costs.

Then, leave-one-source-out: recall and false positives per corpus ``source`` (crs, pat,
csic, ...). A rule changed while looking at one source shows its effect on the others here.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote_plus

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import NO_CORPUS, corpus_files
from detection import ACCEPT, request_of

from devsecmw.config import Config
from devsecmw.engine import Engine
from devsecmw.signals import ATTACK_TYPES

Mutation = Callable[[str, random.Random], str]

_WORD = re.compile(r"[A-Za-z]{3,}")
_SQL_WORD = re.compile(
    r"(?i)\b(select|union|from|where|and|or|not|order|by|group|having|sleep|benchmark|waitfor|delay|"
    r"insert|update|delete|drop|exec|null|like|between|case|when|then|else|end|if|concat|char|ascii|substring)\b"
)
_CMP = re.compile(r"\b(\d+)\s*=\s*(\d+)\b")
_SINKS = re.compile(r"(alert|prompt|confirm|eval)")


def _case(v: str, rng: random.Random) -> str:
    return "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in v)


def _ctrl_ws(v: str, rng: random.Random) -> str:
    return "".join(rng.choice(["\t", "\n", "\x0c", "\r"]) if c == " " else c for c in v)


def _xss_ctrl_ws(v: str, rng: random.Random) -> str:
    # Between a tag name and its attributes, any of tab, LF, FF or "/" separates them in HTML.
    seps = ["\t", "\n", "\x0c", "/"]
    v = re.sub(r"(<[A-Za-z][A-Za-z0-9]*)[ /]+", lambda m: m.group(1) + rng.choice(seps), v)
    return _ctrl_ws(v, rng)


def _sql_comments(v: str, rng: random.Random) -> str:
    return v.replace(" ", "/**/")


def _sql_versioned(v: str, rng: random.Random) -> str:
    return _SQL_WORD.sub(lambda m: f"/*!50000{m.group(1)}*/", v)


def _sql_between(v: str, rng: random.Random) -> str:
    return _CMP.sub(lambda m: f"{m.group(1)} BETWEEN {m.group(2)} AND {m.group(2)}", v)


def _sql_percent(v: str, rng: random.Random) -> str:
    # sqlmap "percentage": a % before each letter of the keywords (ASP drops it).
    return _SQL_WORD.sub(lambda m: "".join("%" + c for c in m.group(1)), v)


def _shell_quotes(v: str, rng: random.Random) -> str:
    return _WORD.sub(lambda m: m.group(0)[0] + "''" + m.group(0)[1:], v)


def _shell_ifs(v: str, rng: random.Random) -> str:
    return v.replace(" ", "${IFS}")


def _js_unicode(v: str, rng: random.Random) -> str:
    return _SINKS.sub(lambda m: f"\\u{ord(m.group(1)[0]):04x}" + m.group(1)[1:], v)


def _html_entities(v: str, rng: random.Random) -> str:
    # Entities inside attribute values: "javascript:" and the handler's code spelled with &#x..;
    return re.sub(r"[():]", lambda m: f"&#x{ord(m.group(0)):x};", v)


#: name -> (mutation of a decoded value, categories it applies to, extra percent-encoding layers)
MUTATIONS: dict[str, tuple[Mutation, frozenset[str] | None, int]] = {
    "double_url": (lambda v, r: v, None, 1),
    "triple_url": (lambda v, r: v, None, 2),
    "random_case": (_case, frozenset({"sqli", "xss"}), 0),
    "control_whitespace": (_ctrl_ws, frozenset({"sqli"}), 0),
    "xss_tag_separators": (_xss_ctrl_ws, frozenset({"xss"}), 0),
    "js_unicode_escape": (_js_unicode, frozenset({"xss"}), 0),
    "html_entities": (_html_entities, frozenset({"xss"}), 0),
    "sql_comment_spaces": (_sql_comments, frozenset({"sqli"}), 0),
    "sql_versioned_comments": (_sql_versioned, frozenset({"sqli"}), 0),
    "sql_between": (_sql_between, frozenset({"sqli"}), 0),
    "sql_percent_letters": (_sql_percent, frozenset({"sqli"}), 0),
    "shell_quote_concat": (_shell_quotes, frozenset({"cmdi"}), 0),
    "shell_ifs": (_shell_ifs, frozenset({"cmdi"}), 0),
}


def _encode(v: str, layers: int) -> str:
    out = quote(v, safe="")
    for _ in range(layers):
        out = quote(out, safe="")
    return out


def _mutate_pairs(text: str, fn: Mutation, rng: random.Random, layers: int) -> tuple[str, bool]:
    parts = []
    changed = False
    for part in text.split("&"):
        name, eq, value = part.partition("=")
        if not eq:
            parts.append(part)
            continue
        decoded = unquote_plus(value)
        new = fn(decoded, rng)
        if new != decoded or layers:
            changed = True
        parts.append(f"{name}={_encode(new, layers)}")
    return "&".join(parts), changed


def _mutate_json(doc: Any, fn: Mutation, rng: random.Random) -> tuple[Any, bool]:
    if isinstance(doc, str):
        new = fn(doc, rng)
        return new, new != doc
    if isinstance(doc, list):
        items = [_mutate_json(x, fn, rng) for x in doc]
        return [x for x, _ in items], any(c for _, c in items)
    if isinstance(doc, dict):
        pairs = {k: _mutate_json(v, fn, rng) for k, v in doc.items()}
        return {k: v for k, (v, _) in pairs.items()}, any(c for _, c in pairs.values())
    return doc, False


def mutate(row: dict[str, Any], name: str, rng: random.Random) -> dict[str, Any] | None:
    """The row with its parameter values rewritten, or None when the mutation changes nothing."""
    fn, cats, layers = MUTATIONS[name]
    if cats is not None and row.get("category") not in cats:
        return None
    out = dict(row)
    changed = False
    uri = str(row.get("uri") or "/")
    path, q, query = uri.partition("?")
    if q and "=" in query:
        query, c = _mutate_pairs(query, fn, rng, layers)
        out["uri"] = f"{path}?{query}"
        changed |= c
    body = row.get("body") or ""
    ctype = next((v.lower() for k, v in row.get("headers") or [] if k.lower() == "content-type"), "")
    if body and not row.get("body_b64"):
        if "json" in ctype:
            try:
                doc, c = _mutate_json(json.loads(body), fn, rng)
            except ValueError:
                doc, c = None, False
            if c and not layers:  # JSON carries no percent-encoding layer
                out["body"] = json.dumps(doc)
                changed = True
        elif "urlencoded" in ctype or (not ctype and "=" in body):
            new_body, c = _mutate_pairs(body, fn, rng, layers)
            if c:
                out["body"] = new_body
                out["headers"] = [
                    (k, str(len(new_body.encode("latin-1", "replace"))))
                    if k.lower() == "content-length"
                    else (k, v)
                    for k, v in row.get("headers") or []
                ]
                changed = True
    return out if changed else None


def _right(engine: Engine, row: dict[str, Any]) -> tuple[bool, bool]:
    req = request_of(row)
    signals = engine.inspect(req, "head") + engine.inspect(req, "body")
    found = {s.type for s in signals}
    label = str(row.get("category"))
    return bool(found & ACCEPT.get(label, {label})), bool(found & ATTACK_TYPES)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="*")
    ap.add_argument("--every", type=int, default=1, help="only every n-th row")
    ap.add_argument("--paranoia", type=int, default=1)
    ap.add_argument("--show", type=int, default=0, help="print this many lost rows per mutation")
    args = ap.parse_args(argv)
    files = corpus_files(args.files)
    if not files:
        print(NO_CORPUS)
        return 0
    engine = Engine(Config(paranoia_level=args.paranoia))
    rng = random.Random(11)
    per_mut: dict[str, Counter[str]] = defaultdict(Counter)
    per_src: dict[str, Counter[str]] = defaultdict(Counter)
    n = 0
    for path in files:
        with open(path, "rb") as fh:
            for line in fh:
                if not line.strip():
                    continue
                n += 1
                if (n - 1) % args.every:
                    continue
                row = json.loads(line)
                src = str(row.get("source") or Path(path).stem)
                right, attack = _right(engine, row)
                if row.get("expect") != "attack":
                    per_src[src]["benign"] += 1
                    per_src[src]["fp"] += attack
                    continue
                per_src[src]["attacks"] += 1
                per_src[src]["right"] += right
                for name in MUTATIONS:
                    mutated = mutate(row, name, rng)
                    if mutated is None:
                        continue
                    c = per_mut[name]
                    c["rows"] += 1
                    c["before"] += right
                    after = _right(engine, mutated)[0]
                    c["after"] += after
                    if right and not after and c["shown"] < args.show:
                        c["shown"] += 1
                        uri, body = str(mutated.get("uri")), str(mutated.get("body"))
                        print(f"# {name} lost {row.get('id')}: {uri:.160} {body:.80}")
    print(f"{'mutation':24} {'rows':>6} {'before':>8} {'after':>8} {'drop':>7}")
    for name, c in per_mut.items():
        rows = max(c["rows"], 1)
        before, after = c["before"] / rows, c["after"] / rows
        print(f"{name:24} {c['rows']:6} {before:8.3f} {after:8.3f} {before - after:7.3f}")
    print(f"\n{'source':16} {'attacks':>8} {'recall':>8} {'benign':>8} {'fp%':>7}")
    for src, c in sorted(per_src.items()):
        recall = f"{c['right'] / c['attacks']:8.3f}" if c["attacks"] else f"{'':>8}"
        fp = f"{100 * c['fp'] / c['benign']:6.2f}%" if c["benign"] else f"{'':>7}"
        print(f"{src:16} {c['attacks']:8} {recall} {c['benign']:8} {fp}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

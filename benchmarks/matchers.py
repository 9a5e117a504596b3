"""Multi-pattern matchers compared on devsecmw's own rule set: RE2 ``Set``, Hyperscan, ``re``.

    python benchmarks/matchers.py [--repeat 5]

For every packaged rule's prefilter (the patterns the engine scans with), each
backend is compiled once, then asked "which patterns occur in this text?" on:

- ``get``: the values of a benign browser GET (query, cookies, headers), joined;
- ``json_2k``: the string leaves of a 2 KiB JSON order, joined;
- ``adversarial_64k``: 64 KiB of fragments that start many rules' matches
  without finishing them (the referee's adversarial body);
- ``patho_N``: ``"a" * N + "!"`` with one extra ``(a+)+$``-shaped rule added,
  the input that makes a backtracking engine take exponential time.

Then (``--varied N``, default 3000, needs ``../shared/corpus/dev``) the figure that matters
on real traffic, where every request is new: the engine's own set scans of ``N`` distinct
benign corpus requests are recorded, then replayed through fresh matchers, cold (the first
pass: RE2 builds its DFA states as it goes) and warm (the same texts again): RE2 sets of
12,000, 3,000 and 2,000 instructions (the default) and the Hyperscan database devsecmw builds
(``engine/hsscan.py``), with each one's compile time.

Printed: microseconds per scan (median of ``--repeat`` runs, each long enough
to time), compile time, resident memory added by compilation, and on which
platforms each library ships a binary wheel (as checked on PyPI). ``re`` runs
the pathological input only at small N, with a time cap: it is exponential.
"""

from __future__ import annotations

import argparse
import gc
import json
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devsecmw.engine.rules import load_packaged

PATHO_RULE = r"(a+)+$"

#: Binary wheels on PyPI (checked with ``pip download --only-binary=:all: --platform ...``
#: for CPython 3.11-3.14; google-re2 1.1.20251105, hyperscan 0.9.1).
WHEELS = {
    "google-re2": "linux x86_64/aarch64 (glibc), macOS 13+ x86_64/arm64, Windows amd64/arm64; "
    "no musllinux (Alpine builds from source, needs abseil + a C++ toolchain)",
    "hyperscan": "linux x86_64/aarch64 (glibc and musl), macOS x86_64/arm64, Windows amd64; "
    "no Windows arm64; x86 needs SSSE3 at run time",
    "re": "everywhere (standard library), but backtracking: not linear-time",
}

BROWSER = [
    ("user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0"),
    ("accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
    ("accept-language", "en-US,en;q=0.9"),
    ("accept-encoding", "gzip, deflate, br"),
    ("referer", "https://shop.example.com/catalog?page=1"),
    ("sec-fetch-mode", "navigate"),
]


def get_text() -> str:
    values = ["GET", "/api/items?category=books&page=2&sort=price&q=python+cookbook", "/api/items"]
    values += ["books", "category", "2", "page", "price", "sort", "python cookbook", "q"]
    values += ["8f14e45fceea167a5a36dedd4bea2543", "session", "dark", "theme", "GA1.2.1234567890.1700000000"]
    for name, value in BROWSER:
        values += [name, value, value.lower()]
    return "\n".join(values)


def json_text(size: int = 2048) -> str:
    leaves: list[str] = []
    i = 0
    while sum(map(len, leaves)) < size:
        leaves += [
            f"SKU-{i:05d}",
            f"Blue cotton shirt, size {i % 5}",
            "Leave it at the door, please; ring twice.",
        ]
        i += 1
    return "\n".join(leaves)


def adversarial(size: int = 65536) -> str:
    unit = "'/*<a \"||(select ../ ${jndi: %2e%2e <svg on "
    return (unit * (size // len(unit) + 1))[:size]


def random_fragments(size: int = 65536) -> str:
    """Random attack fragments: nearly every byte leads a lazy DFA to a state it has not built."""
    import random

    rng = random.Random(1)
    words = ["select", "{{", "${", "<", "'", "../", "union", " ", "a", "%", "(", "jndi", "}", "<svg", "on",
             "=", "\n", "x-", ":", "java.", "class", "__", "|", ";", "`", "$(", "cat", "/etc", "1", "or",
             "\\", "*/", "/*", "&#", "script"]  # fmt: skip
    return "".join(rng.choice(words) for _ in range(size // 2))[:size]


def rss_kib() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


# ---------------------------------------------------------------------------- backends
Scan = Callable[[str], list[int]]


def build_re2_str(patterns: Sequence[str]) -> Scan:
    import re2

    opts = re2.Options()
    opts.max_mem = 64 << 20
    opts.log_errors = False
    s = re2.Set.SearchSet(opts)
    for p in patterns:
        s.Add(f"(?m:{p})")
    s.Compile()
    return lambda text: s.Match(text) or []


def build_re2_bytes(patterns: Sequence[str]) -> Scan:
    """What devsecmw does: the C extension directly, text encoded once by the caller."""
    import re2
    from re2 import _re2

    opts = re2.Options()
    opts.max_mem = 64 << 20
    opts.log_errors = False
    s = _re2.Set(_re2.RE2.Anchor.UNANCHORED, opts)
    for p in patterns:
        s.Add(f"(?m:{p})".encode())
    s.Compile()
    match = s.Match
    return lambda text: match(text.encode("utf-8", "surrogatepass"))


def build_hyperscan(patterns: Sequence[str]) -> Scan:
    """Block-mode database, one report per pattern; patterns Hyperscan rejects in UTF-8 mode
    ("Pattern is too large": long bounded repeats) are compiled in byte mode."""
    import hyperscan

    base = hyperscan.HS_FLAG_SINGLEMATCH | hyperscan.HS_FLAG_MULTILINE | hyperscan.HS_FLAG_ALLOWEMPTY
    exprs, ids, flags = [], [], []
    for i, p in enumerate(patterns):
        expr = p.replace("\x00", "\\x00").encode()  # a raw NUL would end the C string
        for f in (base | hyperscan.HS_FLAG_UTF8, base):
            try:
                hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK).compile(
                    expressions=[expr], ids=[0], elements=1, flags=f
                )
            except hyperscan.error:
                continue
            exprs.append(expr)
            ids.append(i)
            flags.append(f)
            if f == base:
                BYTE_MODE.append(i)
            break
    db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    db.compile(expressions=exprs, ids=ids, elements=len(exprs), flags=flags)
    scratch = hyperscan.Scratch(db)

    def on_match(i: int, _from: int, _to: int, _flags: int, hits: list[int]) -> None:
        hits.append(i)

    def scan(text: str) -> list[int]:
        hits: list[int] = []
        db.scan(
            text.encode("utf-8", "surrogatepass"), match_event_handler=on_match, context=hits, scratch=scratch
        )
        return hits

    return scan


BYTE_MODE: list[int] = []


def _scoped(p: str) -> str:
    # Python wants global flags first: "(?i)x" becomes "(?i:x)" inside the alternation.
    m = re.match(r"\(\?([aiLmsux]+)\)", p)
    return f"(?{m.group(1)}:{p[m.end() :]})" if m else f"(?:{p})"


def build_re(patterns: Sequence[str]) -> Scan:
    each = []
    for p in patterns:
        try:
            each.append(re.compile(p, re.M))
        except re.error:
            each.append(re.compile(r"(?!x)x"))  # RE2-only syntax: counted as never matching
    any_ = re.compile("|".join(_scoped(rx.pattern) for rx in each), re.M)

    def scan(text: str) -> list[int]:
        if not any_.search(text):
            return []
        return [i for i, rx in enumerate(each) if rx.search(text)]

    return scan


def build_devsecmw(patterns: Sequence[str]) -> Scan:
    """What the engine runs: loosened, separator-aware patterns in sets of bounded size."""
    from devsecmw.engine.engine import joined_pattern
    from devsecmw.engine.matcher import compile_set, encode

    s = compile_set([joined_pattern(p) for p in patterns])
    return lambda text: s.match(encode(text))


BACKENDS: dict[str, Callable[[Sequence[str]], Scan]] = {
    "devsecmw (RE2 sets)": build_devsecmw,
    "re2 Set (str, wrapper)": build_re2_str,
    "re2 Set (bytes, direct)": build_re2_bytes,
    "hyperscan (bytes)": build_hyperscan,
    "re (alternation+confirm)": build_re,
}


FIRST: dict[tuple[str, str], float] = {}  # (backend, input) -> µs of the very first scan (cold)


def per_scan_us(
    scan: Scan, text: str, repeat: int, cap: float = 2.0, key: tuple[str, str] = ("", "")
) -> tuple[float, int]:
    """Median µs per scan; each sample loops until it lasts ~20 ms (one call if slower)."""
    t0 = time.perf_counter()
    hits = scan(text)
    one = time.perf_counter() - t0
    FIRST[key] = one * 1e6
    if one > cap:
        return one * 1e6, len(hits)
    n = max(1, int(0.02 / max(one, 1e-7)))
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(n):
            scan(text)
        samples.append((time.perf_counter() - t0) / n * 1e6)
    return statistics.median(samples), len(hits)


def record_varied(n: int) -> list[tuple[tuple[str, ...], bytes]]:
    """The set scans (patterns of the set, text) the engine runs on ``n`` distinct benign
    corpus requests, through the ASGI middleware, RE2 only."""
    import asyncio
    import os

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import corpus_files, providers
    from varied import load, make_app, once

    os.environ["DEVSECMW_HYPERSCAN"] = "off"
    from devsecmw.asgi import SecurityMiddleware
    from devsecmw.engine import matcher

    files = corpus_files()
    if not files:
        return []
    calls: list[tuple[tuple[str, ...], bytes]] = []
    original_init, original_match = matcher._Re2Set.__init__, matcher._Re2Set.match
    names: dict[int, tuple[str, ...]] = {}

    def init(self: Any, patterns: Sequence[str]) -> None:
        original_init(self, patterns)
        names[id(self)] = tuple(patterns)

    def match(self: Any, data: Any) -> list[int]:
        if id(self) in names:  # else a set made at import (the transforms' trigger set)
            calls.append((names[id(self)], data if isinstance(data, bytes) else matcher.encode(data)))
        return original_match(self, data)

    matcher._Re2Set.__init__ = init  # type: ignore[method-assign]
    matcher._Re2Set.match = match  # type: ignore[method-assign]
    matcher._compile_set.cache_clear()  # sets built above (build_devsecmw) are made again
    try:
        tp, mp = providers()
        app = SecurityMiddleware(make_app(), tracer_provider=tp, meter_provider=mp)
        loop = asyncio.new_event_loop()
        rows = load(files, "benign")[:n]
        calls.clear()
        for i, req in enumerate(rows):
            loop.run_until_complete(once(app, req, i))
    finally:
        matcher._Re2Set.__init__ = original_init  # type: ignore[method-assign]
        matcher._Re2Set.match = original_match  # type: ignore[method-assign]
    return calls


def varied_section(n: int) -> dict[str, dict[str, float]]:
    from devsecmw.engine import hsscan, matcher

    calls = record_varied(n)
    if not calls:
        print("# varied: no corpus (../shared/corpus/dev): skipped")
        return {}
    distinct = sorted({p for p, _ in calls})
    size = sum(len(d) for _, d in calls)
    print()
    print(f"# varied: {len(calls)} set scans of {n} distinct benign requests, {size} B, {len(distinct)} sets")
    print(f"{'backend':34} {'compile s':>9} {'cold us/req':>11} {'ns/B':>6} {'warm us/req':>11}")

    def replay(build: Callable[[tuple[str, ...]], Any]) -> tuple[float, float]:
        made = {p: build(p) for p in distinct}
        out = []
        for _ in range(2):
            t0 = time.perf_counter()
            for p, data in calls:
                made[p].match(data)
            out.append(time.perf_counter() - t0)
        return out[0], out[1]

    results: dict[str, dict[str, float]] = {}

    def row(name: str, compile_s: float, cold: float, warm: float) -> None:
        results[name] = {"compile_s": compile_s, "cold_us": cold / n * 1e6, "warm_us": warm / n * 1e6}
        per_byte = cold / size * 1e9
        print(f"{name:34} {compile_s:9.2f} {cold / n * 1e6:11.1f} {per_byte:6.1f} {warm / n * 1e6:11.1f}")

    for program in (12000, 3000, 2000):
        old = matcher.SET_PROGRAM_SIZE
        matcher.SET_PROGRAM_SIZE = program
        try:
            t0 = time.perf_counter()
            sets = {p: matcher._Re2Set(p) for p in distinct}
            compile_s = time.perf_counter() - t0
            cold, warm = replay(sets.__getitem__)
        finally:
            matcher.SET_PROGRAM_SIZE = old
        row(f"RE2 sets of {program} instructions", compile_s, cold, warm)
    if hsscan.HAVE_HYPERSCAN:
        t0 = time.perf_counter()
        # cache_dir "off": measure the compilation, not a cached file
        matchers, db = hsscan.accelerate([(p, matcher._Re2Set(p)) for p in distinct], True, "off")
        assert db is not None and db.wait(600)
        compile_s = time.perf_counter() - t0
        by = dict(zip(distinct, matchers, strict=True))
        cold, warm = replay(by.__getitem__)
        row("Hyperscan, one database (devsecmw)", compile_s, cold, warm)
    else:
        print("hyperscan: not installed (pip install devsecmw[hyperscan])")
    return results


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--varied", type=int, default=3000, help="distinct benign requests (0: skip)")
    args = ap.parse_args(argv)

    rules = load_packaged()
    patterns = [r.operator.prefilter for r in rules if r.operator.prefilter]
    patterns_p = [*patterns, PATHO_RULE]
    inputs = {
        "get": get_text(),
        "json_2k": json_text(),
        "adversarial_64k": adversarial(),
        "random_64k": random_fragments(),
    }
    patho = {f"patho_{n}": "a" * n + "!" for n in (16, 22, 1024, 65536)}
    print(f"# {len(rules)} packaged rules, {len(patterns)} prefilters; python {sys.version.split()[0]}")
    for name, text in inputs.items():
        print(f"# input {name}: {len(text.encode())} bytes")
    print()
    print(
        f"{'backend':26} {'compile ms':>10} {'rss KiB':>8} " + " ".join(f"{k:>16}" for k in [*inputs, *patho])
    )
    results: dict[str, dict[str, float]] = {}
    for bname, build in BACKENDS.items():
        try:
            gc.collect()
            r0 = rss_kib()
            t0 = time.perf_counter()
            scan = build(patterns)
            compile_ms = (time.perf_counter() - t0) * 1e3
            rss = rss_kib() - r0
            scan_p = build(patterns_p)
        except ImportError as exc:
            print(f"{bname:26} unavailable: {exc}")
            continue
        row = {}
        cells = []
        for iname, text in inputs.items():
            us, hits = per_scan_us(scan, text, args.repeat, key=(bname, iname))
            row[iname] = us
            cells.append(f"{us:9.1f} ({hits:2d}h)")
        row["random_64k_first"] = FIRST[(bname, "random_64k")]
        for iname, text in patho.items():
            n = len(text) - 1
            if bname.startswith("re ") and n > 22:
                cells.append(f"{'(exponential)':>16}")
                continue
            us, hits = per_scan_us(scan_p, text, args.repeat)
            row[iname] = us
            cells.append(f"{us:9.1f} ({hits:2d}h)")
        results[bname] = row
        print(f"{bname:26} {compile_ms:10.1f} {rss:8d} " + " ".join(cells))
    print()
    print("µs per scan, warm (h = patterns reported as present). First (cold) scan of random_64k, µs:")
    for bname, row in results.items():
        print(f"  {bname:26} {row['random_64k_first']:12.0f}")
    print("Binary wheels:")
    for lib, where in WHEELS.items():
        print(f"  {lib:11} {where}")
    varied = varied_section(args.varied) if args.varied else {}
    print("SUMMARY " + json.dumps({**results, "varied": varied}))


if __name__ == "__main__":
    main()

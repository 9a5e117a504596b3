"""Time of the detection engine alone, per request and phase, on the referee's request mixes.

    python benchmarks/engine.py [--repeat 5]

Requests are the ones ``../shared/eval/overhead.py`` sends (a browser GET, a 2 KiB JSON
order, a SQL injection, a 64 KiB adversarial form body), plus ``random_64k``: 64 KiB of
random attack fragments, the input that makes a lazily built automaton create a new state
for nearly every byte. For each: the request model and body parsing, then the ``head``
and ``body`` inspection, in microseconds (best of ``--repeat`` runs of many requests,
CPU time of this process, so other load on the machine inflates it less). ``cold`` is
the first inspection by a freshly compiled engine with nothing cached.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devsecmw.config import Config
from devsecmw.engine import Budget, Engine
from devsecmw.engine import engine as engine_module
from devsecmw.engine.rules import load_all
from devsecmw.request import HttpRequest, from_asgi_scope

BROWSER = [
    (b"host", b"shop.example.com"),
    (b"user-agent", b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0"),
    (b"accept", b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
    (b"accept-language", b"en-US,en;q=0.9"),
    (b"accept-encoding", b"gzip, deflate, br"),
    (b"referer", b"https://shop.example.com/catalog?page=1"),
    (b"cookie", b"session=8f14e45fceea167a5a36dedd4bea2543; theme=dark; _ga=GA1.2.1234567890.1700000000"),
    (b"sec-fetch-mode", b"navigate"),
    (b"connection", b"keep-alive"),
]


def json_body(size: int = 2048) -> bytes:
    items: list[str] = []
    i = 0
    while sum(len(x) for x in items) < size:
        items.append(
            f'{{"sku":"SKU-{i:05d}","name":"Blue cotton shirt, size {i % 5}","qty":{i % 7},'
            '"note":"Leave it at the door, please; ring twice."}'
        )
        i += 1
    return ('{"order":[' + ",".join(items) + '],"coupon":"WINTER-10"}').encode()


def repeated(unit: bytes, size: int = 65536) -> bytes:
    return (unit * (size // len(unit) + 1))[:size]


def random_fragments(size: int = 65536) -> bytes:
    rng = random.Random(1)
    words = ["select", "{{", "${", "<", "'", "../", "union", " ", "a", "%", "(", "jndi", "}", "<svg", "on",
             "=", "\n", "x-", ":", "java.", "class", "__", "|", ";", "`", "$(", "cat", "/etc", "1", "or",
             "\\", "*/", "/*", "&#", "script"]  # fmt: skip
    return "".join(rng.choice(words) for _ in range(size // 2)).encode()[:size]


FORM = [(b"content-type", b"application/x-www-form-urlencoded")]
ADVERSARIAL = repeated(b"'/*<a \"||(select ../ ${jndi: %2e%2e <svg on ")
MIXES = {
    "get": ("GET", b"category=books&page=2&sort=price&q=python+cookbook", BROWSER, b""),
    "post_json": ("POST", b"", [*BROWSER, (b"content-type", b"application/json")], json_body()),
    "attack": ("GET", b"id=1%27%20UNION%20SELECT%20password%20FROM%20users--%20", BROWSER, b""),
    "adversarial_64k": (
        "POST",
        b"",
        BROWSER + FORM,
        repeated(b"'/*<a \"||(select ../ ${jndi: %2e%2e <svg on "),
    ),
    "random_64k": ("POST", b"", BROWSER + FORM, random_fragments()),
}


def build(mix: str) -> HttpRequest:
    method, qs, headers, body = MIXES[mix]
    scope = {"type": "http", "method": method, "path": "/api/items", "raw_path": b"/api/items",
             "query_string": qs, "headers": headers}  # fmt: skip
    req = from_asgi_scope(scope)
    if body:
        req.add_body(body, 65536)
        req.body_complete = True
    return req


def cpu_us(fn: Callable[[], object], n: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        for _ in range(n):
            fn()
        best = min(best, (time.process_time() - t0) / n)
    return best * 1e6


TIME_BUDGET = Config().time_budget


def _budget() -> Budget:
    # What the middleware gives each request (Config.time_budget): inspection stops past it.
    return Budget(deadline=time.perf_counter() + TIME_BUDGET)


def measure(engine: Engine, mix: str, n: int, repeat: int) -> tuple[float, float, float, float]:
    """(model+parse, head, body, share of bodies stopped by the budget), µs per request."""
    model = cpu_us(lambda: build(mix).parsed_body, n, repeat)
    base = cpu_us(lambda: build(mix), n, repeat)
    head = cpu_us(lambda: engine.inspect(build(mix), "head", _budget()), n, repeat) - base
    reqs = iter([build(mix) for _ in range(n * repeat)])
    parsed = [r for r in reqs if r.parsed_body is not None]  # parsed beforehand: "body" is inspection
    it = iter(parsed)
    budgets: list[Budget] = []

    def body_once() -> None:
        budgets.append(_budget())
        engine.inspect(next(it), "body", budgets[-1])

    body = cpu_us(body_once, n, repeat)
    return model, head, body, sum(b.exhausted for b in budgets) / len(budgets)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    rules = load_all()
    print(f"# {len(rules)} rules; time budget {Config().time_budget * 1e3:.0f} ms per request")
    print(f"{'mix':16} {'model+parse':>12} {'head':>9} {'body':>9} {'stopped':>8} {'cold head+body':>15}")
    for mix in MIXES:
        engine_module._shared.clear()  # a freshly compiled engine (warmed on its examples only)
        engine = Engine(rules=rules)
        cold_req = build(mix)
        t0 = time.process_time()
        engine.inspect(cold_req, "head", _budget())
        engine.inspect(cold_req, "body", _budget())
        cold = (time.process_time() - t0) * 1e6
        model, head, body, stopped = measure(engine, mix, 20 if "64k" in mix else 500, args.repeat)
        print(f"{mix:16} {model:12.1f} {head:9.1f} {body:9.1f} {stopped:8.0%} {cold:15.0f}")


if __name__ == "__main__":
    main()

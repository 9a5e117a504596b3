#!/usr/bin/env python3
"""How devsecmw's cost grows with the size of each part of a request: superlinear cost caught by a number.

    python benchmarks/growth.py                 # every location and shape, 1 KB .. 1 MB (a few minutes)
    python benchmarks/growth.py --quick         # 3 repeats, up to 256 KB
    python benchmarks/growth.py --location query --shape eyJ

Every request location is probed with growing inputs through the ASGI middleware (called
in process: no server, no socket), beside the bare app in the same run:

- sizes 1 KB to 1 MB: a query value, the path, a header value, a cookie, a JSON body, a
  form body, a multipart part, an XML body, a raw text body;
- counts 10 to 10,000: query parameters, headers, cookies, form fields, JSON members,
  multipart parts.

Each sized location is filled with adversarial shapes: ``plain`` (one letter repeated),
``eyJ`` (the start of a base64 JSON token, repeated), ``quotes`` (``'"`` repeated: every
quote opens a string), ``lt`` (``<`` repeated: every one may open a tag), ``pct25``
(``%25`` repeated: each decoding pass yields a new ``%``), ``token`` (one long token of the
base64url alphabet, no separator). Counted locations use short ``plain`` and ``quotes``
values.

Figures are milliseconds of this thread's CPU time per request (the median of
``--repeat`` requests, each new to the engine: its caches are cleared and the value
changes), so that other load on the machine inflates them less (``--wall`` for wall-clock
time). ``x16`` is the growth factor from 4 KB to 64 KB (from 64 to 1,024 for counts): 16
times the input; linear cost gives at most 16, plus noise; the issue asks for at most ~20.
Above the caps (``query_limit``, ``body_limit`` ... 64 KiB, 1,000 parameters by default)
the cost must stay flat: ``incomplete`` lists where the largest input was reported
``inspection_incomplete``. A row whose request takes longer than ``--stop`` seconds is not
grown further (``-``): that is a finding in itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Callable, MutableMapping
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import providers
from opentelemetry.sdk.trace import SpanProcessor

from devsecmw.asgi import SecurityMiddleware
from devsecmw.config import Config
from devsecmw.engine import Engine

Header = tuple[bytes, bytes]
#: (method, raw path, query, headers, body)
Request = tuple[str, bytes, bytes, list[Header], bytes]

SIZES = [1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20]
COUNTS = [10, 64, 256, 1024, 4096, 10_000]
GROWTH_FROM = {"size": 4 << 10, "count": 64}  # x16 is measured from here to 16 times it
BASE_HEADERS: list[Header] = [
    (b"host", b"shop.example.com"),
    (b"user-agent", b"Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0 Safari/537.36"),
    (b"accept", b"*/*"),
]
_TOKEN_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _token(n: int) -> str:
    # Deterministic, no repeat at a short period (a linear congruential walk over the alphabet).
    x, out = 12345, []
    for _ in range(n):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        out.append(_TOKEN_ALPHABET[(x >> 16) & 63])
    return "".join(out)


_TOKEN_CACHE: dict[int, str] = {}


def filler(shape: str, n: int) -> str:
    """``n`` characters of ``shape``."""
    if shape == "token":
        if n not in _TOKEN_CACHE:
            _TOKEN_CACHE[n] = _token(n)
        return _TOKEN_CACHE[n]
    unit = {"plain": "a", "eyJ": "eyJ", "quotes": "'\"", "lt": "<", "pct25": "%25"}[shape]
    return (unit * (n // len(unit) + 1))[:n]


SHAPES = ["plain", "eyJ", "quotes", "lt", "pct25", "token"]


def _post(path: bytes, ctype: bytes, body: bytes) -> Request:
    return ("POST", path, b"", [*BASE_HEADERS, (b"content-type", ctype)], body)


def sized(location: str, text: str) -> Request:
    """A request whose ``location`` holds ``text``."""
    raw = text.encode("latin-1")
    if location == "query":
        return ("GET", b"/search", b"q=" + raw, BASE_HEADERS, b"")
    if location == "path":
        return ("GET", b"/files/" + raw, b"", BASE_HEADERS, b"")
    if location == "header":
        return ("GET", b"/", b"", [*BASE_HEADERS, (b"x-pad", raw)], b"")
    if location == "cookie":
        return ("GET", b"/", b"", [*BASE_HEADERS, (b"cookie", b"c=" + raw)], b"")
    if location == "json":
        return _post(b"/api", b"application/json", json.dumps({"q": text}).encode())
    if location == "form":
        return _post(b"/form", b"application/x-www-form-urlencoded", b"q=" + raw)
    if location == "multipart":
        body = (
            b'--b0undary\r\nContent-Disposition: form-data; name="q"\r\nContent-Type: text/plain\r\n\r\n'
            + raw
            + b"\r\n--b0undary--\r\n"
        )
        return _post(b"/upload", b"multipart/form-data; boundary=b0undary", body)
    if location == "xml":
        return _post(b"/xml", b"application/xml", b'<?xml version="1.0"?><a>' + raw + b"</a>")
    if location == "text":
        return _post(b"/text", b"text/plain", raw)
    raise ValueError(location)


def counted(location: str, n: int, value: str) -> Request:
    """A request with ``n`` named values at ``location``, each ``value`` plus its index."""
    v = value.encode("latin-1")
    if location == "query.count":
        return ("GET", b"/search", b"&".join(b"p%d=%s%d" % (i, v, i) for i in range(n)), BASE_HEADERS, b"")
    if location == "headers.count":
        return ("GET", b"/", b"", [*BASE_HEADERS, *((b"x-h%d" % i, v + b"%d" % i) for i in range(n))], b"")
    if location == "cookie.count":
        cookie = b"; ".join(b"c%d=%s%d" % (i, v, i) for i in range(n))
        return ("GET", b"/", b"", [*BASE_HEADERS, (b"cookie", cookie)], b"")
    if location == "form.count":
        body = b"&".join(b"f%d=%s%d" % (i, v, i) for i in range(n))
        return _post(b"/form", b"application/x-www-form-urlencoded", body)
    if location == "json.count":
        return _post(
            b"/api", b"application/json", json.dumps({f"k{i}": f"{value}{i}" for i in range(n)}).encode()
        )
    if location == "multipart.count":
        parts = [
            b'--b0undary\r\nContent-Disposition: form-data; name="f%d"\r\n\r\n%s%d\r\n' % (i, v, i)
            for i in range(n)
        ]
        return _post(
            b"/upload", b"multipart/form-data; boundary=b0undary", b"".join(parts) + b"--b0undary--\r\n"
        )
    raise ValueError(location)


def bare_sized(location: str, n: int, i: int) -> Request:
    return sized(location, f"{i:04d}" + filler("plain", n - 4))


def bare_counted(location: str, n: int, i: int) -> Request:
    return counted(location, n, f"v{i}")


SIZED = ["query", "path", "header", "cookie", "json", "form", "multipart", "xml", "text"]
COUNTED = ["query.count", "headers.count", "cookie.count", "form.count", "json.count", "multipart.count"]
COUNT_VALUES = {"plain": "v", "quotes": "'\""}


# --------------------------------------------------------------------------- the app, the call
async def bare(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
    """Reads the whole body, answers 200."""
    more = True
    while more:
        message = await receive()
        more = bool(message.get("more_body"))
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


class Recorder(SpanProcessor):
    """Keeps the ``inspection_incomplete`` locations of the last span (what a cap or the budget cut)."""

    def __init__(self) -> None:
        self.locations: list[str] = []

    def on_end(self, span: Any) -> None:
        self.locations = [
            str(e.attributes.get("devsecmw.signal.location"))
            for e in span.events
            if e.attributes and e.attributes.get("devsecmw.signal.type") == "inspection_incomplete"
        ]


def scope_of(req: Request) -> dict[str, Any]:
    method, path, query, headers, _ = req
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path.decode("latin-1"), "raw_path": path, "query_string": query,
        "root_path": "", "headers": headers, "client": ("198.18.0.1", 40000), "server": ("127.0.0.1", 8000),
    }  # fmt: skip


class Driver:
    def __init__(self, wall: bool) -> None:
        self.loop = asyncio.new_event_loop()
        self.clock: Callable[[], float] = time.perf_counter if wall else time.thread_time
        tp, mp = providers()
        self.recorder = Recorder()
        tp.add_span_processor(self.recorder)
        config = Config()
        self.engine = Engine(config)
        self.mw = SecurityMiddleware(bare, tracer_provider=tp, meter_provider=mp, detector=self.engine)

    def call(self, app: Any, req: Request) -> float:
        body = req[4]
        chunks = [body[i : i + 65536] for i in range(0, len(body), 65536)] or [b""]
        messages = [
            {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
            for i, c in enumerate(chunks)
        ]
        statuses: list[int] = []

        async def receive() -> dict[str, Any]:
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        scope = scope_of(req)
        for cache in (self.engine.clean_values, self.engine.clean_parts, self.engine.clean_bodies):
            cache.clear()  # every request new to the engine: no cache answers for it
        t0 = self.clock()
        self.loop.run_until_complete(app(scope, receive, send))
        spent = self.clock() - t0
        if statuses != [200]:
            raise RuntimeError(f"answered {statuses}, not 200")
        return spent

    def median(self, app: Any, make: Callable[[int], Request], repeat: int) -> float:
        return statistics.median(self.call(app, make(i)) for i in range(repeat))


# --------------------------------------------------------------------------- the table
def row(
    driver: Driver, label: str, axis: list[int], make: Callable[[int, int], Request], repeat: int, stop: float
) -> tuple[list[float | None], list[str]]:
    """Median ms per axis point (``None`` once stopped), and the incomplete locations at the largest."""
    out: list[float | None] = []
    stopped = False
    for n in axis:
        if stopped:
            out.append(None)
            continue
        t = driver.median(driver.mw, partial(make, n), repeat)
        out.append(t * 1000)
        stopped = t > stop
    incomplete = list(driver.recorder.locations) if out[-1] is not None else []
    return out, incomplete


def fmt(values: list[float | None]) -> str:
    return " ".join(f"{v:9.2f}" if v is not None else f"{'-':>9}" for v in values)


def growth(axis: list[int], values: list[float | None], start: int) -> str:
    i = axis.index(start)
    j = axis.index(start * 16) if start * 16 in axis else None
    if j is None or values[i] is None or values[j] is None or not values[i]:
        return "    -"
    return f"{values[j] / values[i]:5.1f}"  # type: ignore[operator]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="3 repeats, inputs up to 256 KB / 4,096")
    p.add_argument("--wall", action="store_true", help="wall-clock time instead of this thread's CPU time")
    p.add_argument("--location", action="append", help="only these locations (repeatable)")
    p.add_argument("--shape", action="append", help="only these shapes (repeatable)")
    p.add_argument(
        "--stop", type=float, default=2.0, help="seconds per request after which a row stops growing"
    )
    args = p.parse_args()
    sizes, counts, repeat = SIZES, COUNTS, args.repeat
    if args.quick:
        sizes, counts, repeat = SIZES[:-1], COUNTS[:-1], 3
    shapes = args.shape or SHAPES
    driver = Driver(args.wall)
    driver.median(driver.mw, lambda i: sized("query", filler("plain", 100 + i)), 20)  # warm up
    unit = "wall" if args.wall else "CPU"
    worst: list[tuple[float, str]] = []

    def table(kind: str, locations: list[str], axis: list[int], shapes_here: list[str]) -> None:
        head = " ".join(f"{(f'{n >> 10}K' if kind == 'size' else str(n)):>9}" for n in axis)
        print(f"\n{'location':<16} {'shape':<7} {head}   x16  incomplete at the largest")
        for loc in locations:
            if args.location and loc not in args.location:
                continue
            bare_make = bare_sized if kind == "size" else bare_counted
            bare_ms = [driver.median(bare, partial(bare_make, loc, n), repeat) * 1000 for n in axis]
            print(f"{loc:<16} {'(bare)':<7} {fmt(list(bare_ms))}")
            for shape in shapes_here:
                if kind == "size":

                    def make(n: int, i: int, loc: str = loc, shape: str = shape) -> Request:
                        return sized(loc, f"{i:04d}" + filler(shape, n - 4))  # a new value per request
                else:

                    def make(n: int, i: int, loc: str = loc, shape: str = shape) -> Request:
                        return counted(loc, n, f"{COUNT_VALUES[shape]}{i}")

                values, incomplete = row(driver, f"{loc}/{shape}", axis, make, repeat, args.stop)
                g = growth(axis, values, GROWTH_FROM[kind])
                if g.strip() != "-":
                    worst.append((float(g), f"{loc}/{shape}"))
                else:
                    worst.append((float("inf"), f"{loc}/{shape} (stopped)"))
                print(f"{'':<16} {shape:<7} {fmt(values)} {g}  {', '.join(incomplete) or '-'}")
            sys.stdout.flush()

    print(f"devsecmw growth: ms of {unit} time per request, median of {repeat}; bare = the app alone")
    table("size", SIZED, sizes, shapes)
    table("count", COUNTED, counts, [s for s in ("plain", "quotes") if not args.shape or s in args.shape])
    worst.sort(reverse=True)
    if worst:
        print("\nlargest x16 growth: " + ", ".join(f"{label} {g:.1f}" for g, label in worst[:5]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

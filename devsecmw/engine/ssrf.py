"""Server-side request forgery: URLs and hosts that point inside the network.

A pattern list of "internal addresses" is always one spelling short:
``127.0.0.1`` is also ``2130706433``, ``0x7f.1``, ``0177.0.0.1``, ``127.1``,
``[::1]``, ``[::ffff:7f00:1]``, ``①②⑦.⓪.⓪.①`` and ``127.0.0.1.nip.io``. This
module parses what a URL parser would: it finds the URLs in a value (a known
scheme followed by ``:``, with or without ``//``; scheme-relative ``//host``;
or a bare ``host:port``), reads every host an HTTP client could end up
connecting to (parsers disagree on ``http://a@b#@c``, so each candidate is
judged) and classifies it:

- an IP literal in any spelling inet_aton accepts (one to four parts, each
  decimal, octal or hex; oversized values truncated to 32 bits as some clients
  do), or an IPv6 literal (zone ids, IPv4-mapped/-compatible, NAT64 and 6to4
  forms unwrapped), classified with :mod:`ipaddress`: not globally routable
  (loopback, private, link-local, shared, reserved, unspecified) is internal.
  An IPv4 written in anything but dotted decimal is an evasion in itself;
- host names that resolve inside by design: ``localhost`` and ``*.localhost``,
  cloud metadata names (``metadata.google.internal``, ``metadata.packet.net``,
  ...), wildcard-DNS services that embed an IP (``nip.io``, ``xip.io``,
  ``sslip.io``: the embedded address is classified) and ``localtest.me``.

Ordinary public URLs (webhooks, redirects, image URLs in JSON) pass. Every
step is a bounded scan of the value; :func:`detect` never raises.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from itertools import islice
from typing import Protocol

Span = tuple[int, int]

#: At most this many URL candidates are judged per value (bounded work on hostile input).
MAX_CANDIDATES = 32
#: The authority part judged per URL (userinfo confusion needs the text up to the path).
MAX_AUTHORITY = 256

_SCHEMES = (
    r"https?|ftps?|gopher|dict|ldaps?|tftp|jar|netdoc|file|local_file|sftp|ssh|scp|smb|telnet|rsync|xri|acap|imap|"
    r"pop3|irc|rtmp|wss?|redis|mongodb|postgres(?:ql)?|mysql|memcached?|jdbc:[a-z]+|url"
)
#: RE2 pattern (engine prefilter): a URL scheme, a scheme-relative or bare address, a special name.
PREFILTER = (
    r"(?i)(?:^|[^a-z0-9+.-])(?:" + _SCHEMES + r")\s*:|(?:^|[\s\"'=<>])[/\\][/\\]|"
    r"localhost|metadata|\.internal|nip\.io|xip\.io|sslip\.io|localtest\.me|169\.254\.|100\.100\.100\.200|"
    r"fd00:ec2|\[[0-9a-f:.%]*:|(?:^|[^\w.])(?:\d{1,3}\.){1,3}\d{1,5}:\d{2,5}"
)

# A URL at a given position: a known scheme (chains such as "jar:http:" and "url:file:" are one
# URL), then ":" and up to three slashes or backslashes; or "//" (scheme-relative). Used with
# ``match(value, pos)`` on candidate positions only, so no scan tries every scheme everywhere.
_SCHEME = r"(?:" + _SCHEMES + r")\s*:\s*"
_URL_AT = re.compile(r"(?i)(" + _SCHEME + r"(?:" + _SCHEME + r"){0,2})([/\\]{0,3})|[/\\]{2,3}")
# Where a URL may start a value: after leading blanks, or after markup/assignment characters.
_LEADS = re.compile(r"[\"'>=\r\n][ \t]*")
_SCHEME_WORDS = frozenset(
    [
        "http",
        "https",
        "ftp",
        "ftps",
        "gopher",
        "dict",
        "ldap",
        "ldaps",
        "tftp",
        "jar",
        "netdoc",
        "file",
        "local_file",
        "sftp",
        "ssh",
        "scp",
        "smb",
        "telnet",
        "rsync",
        "xri",
        "acap",
        "imap",
        "pop3",
        "irc",
        "rtmp",
        "ws",
        "wss",
        "redis",
        "mongodb",
        "postgres",
        "postgresql",
        "mysql",
        "memcache",
        "memcached",
        "jdbc",
        "url",
    ]
)
_WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
#: Candidate positions examined per value (leads or colons): bounded work on hostile input.
MAX_POSITIONS = 1024
_AUTH_END = re.compile(r"[/?\r\n\"'<>]")
_BLANK = re.compile(r"\s")
_SCHEME_SEP = re.compile(r"\s*:\s*")
_HOST_PARTS = re.compile(r"[@#&\s]+")
_DANGEROUS = frozenset(
    {"gopher", "dict", "ldap", "ldaps", "tftp", "jar", "netdoc", "file", "local_file", "url"}
)
_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": ".", "\u2024": ".", "\\": None})

_METADATA_NAMES = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "metadata.packet.net",
        "metadata.platformequinix.com",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.azure.com",
        "metadata.tencentyun.com",
        "kubernetes.default",
        "kubernetes.default.svc",
    }
)
_LOOPBACK_NAMES = frozenset(
    {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback", "localtest.me"}
)
_WILDCARD_DNS = (
    "nip.io",
    "xip.io",
    "sslip.io",
    "nip.direct",
    "traefik.me",
    "lvh.me",
    "vcap.me",
    "localtest.me",
)
_EMBEDDED_V4 = re.compile(
    r"(?:^|[.-])((?:\d{1,3}[.-]){3}\d{1,3})(?:[.-]|$)|(?:^|[.-])([0-9a-f]{8})(?:[.-]|$)"
)


_METADATA_IPS = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),
        ipaddress.ip_address("169.254.170.2"),
        ipaddress.ip_address("100.100.100.200"),
        ipaddress.ip_address("192.0.0.192"),
        ipaddress.ip_address("fd00:ec2::254"),
    }
)


def _number(part: str) -> int | None:
    """One inet_aton part: decimal, octal (leading 0) or hex (0x)."""
    if not part:
        return None
    try:
        if part[:2] in ("0x", "0X"):
            return int(part[2:] or "0", 16)
        if len(part) > 1 and part[0] == "0":
            return int(part, 8)
        return int(part, 10)
    except ValueError:
        return None


def parse_ipv4(host: str) -> tuple[ipaddress.IPv4Address, bool] | None:
    """The IPv4 address ``host`` spells for inet_aton-style parsers, and whether it is unusual.

    ``127.1``, ``2130706433``, ``0x7f.0.0.1``, ``0177.0.0.1`` and oversized numbers
    (kept to their low 32 bits) are accepted; "unusual" is anything but four decimal parts.
    """
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or len(host) > 64:
        return None
    nums = [_number(p) for p in parts]
    if any(n is None for n in nums):
        return None
    values = [n for n in nums if n is not None]
    unusual = len(parts) != 4 or any(p[:1] == "0" and p != "0" for p in parts)
    head, last = values[:-1], values[-1]
    if any(n > 255 for n in head):
        return None
    room = 8 * (4 - len(head))
    if last >= 1 << room:
        unusual = True
        last &= (1 << room) - 1
    value = 0
    for n in head:
        value = (value << 8) | n
    value = (value << room) | last
    return ipaddress.IPv4Address(value), unusual


def _unwrap_v6(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    packed = ip.packed
    if packed[:12] == bytes(12) and packed[12:] != bytes(4) and packed[12:] != b"\x00\x00\x00\x01":
        return ipaddress.IPv4Address(packed[12:])  # IPv4-compatible ::a.b.c.d
    if packed[:12] == b"\x00\x64\xff\x9b" + bytes(8):
        return ipaddress.IPv4Address(packed[12:])  # NAT64
    return None


def _internal(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return not ip.is_global or ip.is_multicast


def classify(host: str) -> str | None:
    """Why ``host`` (no port, no brackets) is an SSRF target, or ``None`` when it is not."""
    h = host.strip().strip(".").lower()
    if not h:
        return None
    if "\\" in h and h.replace("\\", ""):
        return "backslash in host"  # h\o\s\t: parsers disagree on what it names
    if not h.isascii():
        h = unicodedata.normalize("NFKC", h).translate(_DOTS).lower()
    if ":" in h:
        try:
            ip6 = ipaddress.IPv6Address(h.split("%", 1)[0])
        except ValueError:
            return None
        if "%" in h:
            return "ipv6 zone"
        if ip6 in _METADATA_IPS:
            return "metadata address"
        inner = _unwrap_v6(ip6)
        if inner is not None and _internal(inner):
            return "internal ipv4 inside ipv6"
        if _internal(ip6):
            return "internal ipv6"
        return None if (ip6.packed[0] & 0xE0) == 0x20 else "non-unicast ipv6"
    if h[0].isdigit() or h[:2] == "0x":
        parsed = parse_ipv4(h)
        if parsed is not None:
            ip4, unusual = parsed
            if ip4 in _METADATA_IPS:
                return "metadata address"
            if _internal(ip4):
                return "internal ipv4"
            return "obfuscated ipv4" if unusual else None
    if h in _LOOPBACK_NAMES or h.endswith(".localhost"):
        return "loopback name"
    if h in _METADATA_NAMES or h.endswith((".internal", ".svc.cluster.local")):
        return "metadata name"
    for suffix in _WILDCARD_DNS:
        if h == suffix or h.endswith("." + suffix):
            label = h[: -len(suffix)].rstrip(".")
            if suffix in ("localtest.me", "lvh.me", "vcap.me"):
                return "loopback name"
            m = _EMBEDDED_V4.search(label)
            if m is None:
                return None
            if m.group(1):
                inner4 = parse_ipv4(m.group(1).replace("-", "."))
            else:
                inner4 = (ipaddress.IPv4Address(int(m.group(2), 16)), True)
            if inner4 is not None and _internal(inner4[0]):
                return "wildcard dns to internal ipv4"
            return None
    return None


def _pieces(authority: str) -> Iterator[str]:
    """Every host a parser could read in ``authority``: each ``@``/``#``/``&``/blank-separated piece."""
    start = 0
    for m in _HOST_PARTS.finditer(authority):
        yield authority[start : m.start()]
        start = m.end()
    yield authority[start:]


def _host_of(piece: str) -> str:
    """The host of ``user:pass@host:port`` style pieces (userinfo already split off)."""
    piece = piece.strip()
    if piece.startswith("["):
        end = piece.find("]")
        return piece[1:end] if end > 0 else piece[1:]
    if piece.count(":") >= 2 and "." not in piece.rsplit(":", 1)[-1]:
        # An unbracketed IPv6 literal (lenient parsers accept it); a trailing :port is ambiguous.
        try:
            ipaddress.IPv6Address(piece.split("%", 1)[0])
            return piece
        except ValueError:
            head = piece.rsplit(":", 1)[0]
            return head
    return piece.split(":", 1)[0]


class _Headers(Protocol):
    def header(self, name: str, default: str | None = None) -> str | None: ...


#: The request being judged: a URL naming the application's own host is a link, not a
#: forgery. Set by the engine for the duration of one ``inspect`` call (and reset after it,
#: so no request outlives its inspection); its headers are read only when a URL is judged.
REQUEST_ORIGIN: ContextVar[_Headers | None] = ContextVar("devsecmw_request_origin", default=None)

_DEFAULT_PORTS = ("", "80", "443")


def _split_port(authority: str) -> tuple[str, str]:
    """``host[:port]`` or ``[v6]:port`` into lower-case host (no brackets) and port."""
    a = authority.strip().lower()
    if a.startswith("["):
        end = a.find("]")
        if end < 0:
            return a[1:], ""
        rest = a[end + 1 :]
        return a[1:end], rest[1:] if rest.startswith(":") else ""
    if a.count(":") == 1:
        host, port = a.split(":")
        return host, port
    return a, ""


def _loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES or host.endswith(".localhost") or host == "::1":
        return True
    parsed = parse_ipv4(host) if host[:1].isdigit() else None
    return parsed is not None and parsed[0].is_loopback


def _same_site(host: str, referer: str) -> bool:
    """The Referer/Origin names ``host`` (any port): the request came from a page of this site."""
    i = referer.find("://")
    if i < 0:
        return False
    auth = referer[i + 3 :]
    for stop in "/?#":
        j = auth.find(stop)
        if j >= 0:
            auth = auth[:j]
    return "@" not in auth and _split_port(auth)[0] == host


def is_own(piece: str) -> bool:
    """``host[:port]`` names the application itself: the request's Host (same port, a default
    port counting as none), or, when the application is itself reached on a loopback name from
    one of its own pages (a development or admin set-up), any loopback host."""
    request = REQUEST_ORIGIN.get()
    host_header = request.header("host") if request is not None else None
    if request is None or not host_header:
        return False
    own_host, own_port = _split_port(host_header)
    host, port = _split_port(piece)
    if not host:
        return False
    if host == own_host and (port == own_port or (port in _DEFAULT_PORTS and own_port in _DEFAULT_PORTS)):
        return True
    if not (_loopback(own_host) and _loopback(host)):
        return False
    return _same_site(own_host, request.header("referer") or request.header("origin") or "")


def _judge_authority(authority: str) -> str | None:
    for piece in _pieces(authority):
        if piece:
            why = classify(_host_of(piece))
            if why and not is_own(piece):
                return why
    return None


def _positions(value: str, anywhere: bool) -> Iterator[int]:
    """Where a URL may start: the value's start and markup leads; with ``anywhere``, also each
    scheme word before a ":" and each "//" (each kind bounded by :data:`MAX_POSITIONS`)."""
    yield len(value) - len(value.lstrip(" \t\r\n"))
    for m in islice(_LEADS.finditer(value), MAX_POSITIONS):
        yield m.end()
    if not anywhere:
        return
    for pos in islice(_find_all(value, ":"), MAX_POSITIONS):
        start = _scheme_before(value, pos)
        if start >= 0:
            yield start
    yield from islice(_find_all(value, "//"), MAX_POSITIONS)


def _scheme_before(value: str, colon: int) -> int:
    """Start of the scheme word right before the ``:`` at ``colon``, or -1 (looks back <= 24 chars)."""
    end = colon
    while end > 0 and colon - end < 4 and value[end - 1] in " \t":
        end -= 1
    start = end
    while start > 0 and end - start < 20 and value[start - 1] in _WORD_CHARS:
        start -= 1
    word = value[start:end].lower()
    if word in _SCHEME_WORDS and (start == 0 or value[start - 1] not in "+.-"):
        return start
    return -1


def _find_all(value: str, needle: str) -> Iterator[int]:
    pos = value.find(needle)
    while pos >= 0:
        yield pos
        pos = value.find(needle, pos + len(needle))


def _urls(value: str, anywhere: bool) -> Iterator[tuple[int, int, str, str]]:
    """``(start, end, scheme, authority)`` of each URL in ``value`` (bounded). A doubled scheme
    (``http://http://127.0.0.1``: some parsers read the host ``http``, others the inner URL)
    yields the inner URL too."""
    found = 0
    for pos in _nested(value, _positions(value, anywhere)):
        m = _URL_AT.match(value, pos)
        if m is None:
            continue
        found += 1
        if found > MAX_CANDIDATES:
            return
        schemes = (m.group(1) or "").lower().strip()
        scheme = _SCHEME_SEP.split(schemes, 1)[0] if schemes else ""
        rest = m.end()
        tail = value[rest : rest + MAX_AUTHORITY]
        stop = _AUTH_END.search(tail)
        authority = tail[: stop.start()] if stop else tail
        if m.group(1) is None and "\\" in m.group(0) and "\\" in authority:
            authority = authority.split("\\", 1)[0]  # a UNC path: \\host\share
        # Blanks end the host, unless an "@" later on makes parsers disagree on which host it is.
        blank = _BLANK.search(authority)
        if blank and "@" not in authority[blank.start() :]:
            authority = authority[: blank.start()]
        yield m.start(), rest + len(authority), scheme, authority


_DOUBLED = re.compile(r"(?i)(" + _SCHEMES + r")\s*:[/\\]{0,3}(" + _SCHEMES + r")\s*:")


def _nested(value: str, positions: Iterator[int]) -> Iterator[int]:
    """``positions``, each followed by the start of an inner URL when a scheme is doubled there."""
    for pos in positions:
        yield pos
        m = _DOUBLED.match(value, pos)
        if m is not None:
            yield m.start(2)


def _bare(value: str) -> Span | None:
    """A value that is only an address: judged strictly (metadata, or internal with a port)."""
    v = value.strip()
    if not 2 <= len(v) <= 100 or not ("." in v or ":" in v):
        return None
    host, port = v, ""
    if v.startswith("["):
        end = v.find("]")
        if end < 0:
            return None
        host, rest = v[1:end], v[end + 1 :]
        if rest.startswith(":") and rest[1:].isdigit():
            port = rest[1:]
        elif rest:
            return None
    elif v.count(":") == 1:
        host, port = v.split(":")
        if not port.isdigit():
            return None
    why = classify(host)
    if why and (port or why == "metadata name" or _is_metadata_ip(host)) and not is_own(v):
        start = value.find(v)
        return start, start + len(v)
    return None


def _detect(value: str, anywhere: bool) -> Span | None:
    for start, end, scheme, authority in _urls(value, anywhere):
        if scheme in _DANGEROUS or scheme.startswith("jdbc"):
            return start, max(end, start + len(scheme) + 1)
        if _judge_authority(authority):
            return start, end
    return _bare(value)


def _is_metadata_ip(host: str) -> bool:
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.IPv6Address(host.split("%", 1)[0])
    except ValueError:
        parsed = parse_ipv4(host)
        if parsed is None:
            return False
        ip = parsed[0]
    return ip in _METADATA_IPS


def detect(value: str) -> Span | None:
    """The first URL that points inside, or None. The URL must start the value, a line, or follow
    a quote, ``>`` or ``=`` (``<url>http://..</url>``, ``href="http://..``); prose such as
    "my app runs on http://localhost:3000" is left to :func:`detect_anywhere`."""
    try:
        return _detect(value, anywhere=False)
    except (ValueError, RecursionError):  # pragma: no cover - parsers above are total
        return None


def detect_anywhere(value: str) -> Span | None:
    """Like :func:`detect`, for URLs anywhere in a text (prose, raw bodies)."""
    try:
        return _detect(value, anywhere=True)
    except (ValueError, RecursionError):  # pragma: no cover
        return None


def _ip_literal(host: str) -> bool:
    if ":" in host:
        try:
            ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            return False
        return True
    return host[:1].isdigit() and parse_ipv4(host) is not None and host.count(".") == 3


def detect_ip_host(value: str) -> Span | None:
    """Remote file inclusion by address: a URL (at the start of the value or after a quote,
    ``>`` or ``=``) whose host is an IP literal, other than the application's own address."""
    try:
        for start, end, scheme, authority in _urls(value, anywhere=False):
            if scheme not in ("http", "https", "ftp", "ftps", "file"):
                continue
            for piece in _pieces(authority):
                if piece and _ip_literal(_host_of(piece)) and not is_own(piece):
                    return start, end
    except (ValueError, RecursionError):  # pragma: no cover - parsers above are total
        return None
    return None


def make_detector(param: object) -> Callable[[str], Span | None]:
    """``None`` or ``{"where": "start"}``: URLs that start the value; ``{"where": "anywhere"}``;
    ``{"hosts": "ip"}``: URLs whose host is any IP literal (remote file inclusion)."""
    if isinstance(param, dict) and param.get("hosts") == "ip":
        return detect_ip_host
    where = param.get("where", "start") if isinstance(param, dict) else "start"
    if where == "start":
        return detect
    if where == "anywhere":
        return detect_anywhere
    raise ValueError(
        f"invalid detect_ssrf parameter {param!r} (use {{'where': 'start'}} or {{'where': 'anywhere'}})"
    )


__all__ = [
    "MAX_CANDIDATES",
    "MAX_POSITIONS",
    "PREFILTER",
    "REQUEST_ORIGIN",
    "classify",
    "detect",
    "detect_anywhere",
    "detect_ip_host",
    "is_own",
    "make_detector",
    "parse_ipv4",
]

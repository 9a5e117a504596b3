"""Address extraction: the request model as ``(key, location, value, utf8)`` values per phase.

``key`` is what rules target (``query``, ``header:user-agent``, ``body.raw``);
``location`` is what a signal reports (``query:id``, ``body:json:user.name``).
Values are plain tuples: a GET has forty of them and this runs on every request.
:class:`Item` is the object operators receive (``evaluate(value, item)``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import islice
from urllib.parse import urlsplit

from ..request import HttpRequest, percent_decode

#: Headers never inspected by generic header rules: cookies have their own target,
#: and these carry opaque credentials or negotiated values no attack hides in usefully.
SKIP_HEADERS = frozenset({"cookie", "authorization", "proxy-authorization", "content-length", "host"})

#: ``(key, location, value, utf8)``
Value = tuple[str, str, str, bool]

_header_keys: dict[str, str] = {}  # "user-agent" -> "header:user-agent", bounded below


#: The names of a request from elsewhere (see :func:`offsite`) come under a key of their own, and
#: stand for the plain names as well: the rules of both keys judge them (one value per name,
#: not two copies; the key keeps the clean-value caches of the two kinds of request apart).
NAMES_OF = {
    "query.names.offsite": "query.names",
    "body.names.offsite": "body.names",
    "body.json.names.offsite": "body.names",
}


def header_key(name: str) -> str:
    key = _header_keys.get(name)
    if key is None:
        key = "header:" + name
        if len(_header_keys) < 512:  # header names are client-chosen: never grow without bound
            _header_keys[name] = key
    return key


@dataclass(slots=True)
class Item:
    key: str
    location: str
    value: str
    utf8: bool = True


def head_values(request: HttpRequest) -> list[Value]:
    """Request line, query, cookies and headers (names and values)."""
    return [*line_values(request), *cookie_values(request), *header_values(request)]


def line_values(request: HttpRequest, away: bool | None = None) -> list[Value]:
    """Method, target, path, query parameters and their names, the names under
    ``query.names.offsite`` when the request came from elsewhere (``away``, computed
    when not given: see :func:`offsite` and :data:`NAMES_OF`)."""
    target = request.inspected_target  # within the path and query caps
    out: list[Value] = [("method", "method", request.method, True), ("uri", "uri", target, True)]
    q = target.find("?")
    path, ok = percent_decode(target if q < 0 else target[:q])
    out.append(("path", "path", path, ok))
    query = request.query
    # One value per name: on a request from elsewhere its key says so, and the rules of both
    # keys judge it (see NAMES_OF), rather than a second copy of every name.
    names = "query.names.offsite" if query and (offsite(request) if away is None else away) else "query.names"
    for f in query:
        out.append(("query", f.location, f.value, f.utf8))
        if f.name:
            out.append((names, f.location, f.name, f.utf8))
    return out


def cookie_values(request: HttpRequest) -> list[Value]:
    """Cookie values and names."""
    out: list[Value] = []
    for f in request.cookies:
        out.append(("cookies", f.location, f.value, True))
        if f.name:
            out.append(("cookies.names", f.location, f.name, True))
    return out


def header_values(request: HttpRequest) -> list[Value]:
    """Header values (but :data:`SKIP_HEADERS`), header names, and ``headers.raw``."""
    out: list[Value] = []
    skip = SKIP_HEADERS
    for name, value in request.inspected_headers:  # within the header caps
        key = _header_keys.get(name) or header_key(name)
        if name not in skip:
            out.append((key, key, value, True))
            if name == "referer" and "?" in value:
                out.extend(referer_params(key, value))
        out.append(("headers.names", key, name, True))
    out.append(("headers.raw", "headers", head_raw(request), True))
    return out


#: Query parameters of a Referer judged one by one (bounded work per request).
MAX_REFERER_PARAMS = 32


def referer_params(key: str, referer: str) -> list[Value]:
    """The decoded query values of a Referer URL, as values of the Referer header: a tool that
    injects into the Referer appends its payload to a URL (``/list?id=1 AND 53=53``), where
    a detector reading the whole URL from its start sees a URL, not the value."""
    query = referer.split("?", 1)[1].split("#", 1)[0]
    out: list[Value] = []
    for part in query.split("&", MAX_REFERER_PARAMS)[:MAX_REFERER_PARAMS]:
        value = part.partition("=")[2]
        if value:
            text, ok = percent_decode(value.replace("+", " "))
            out.append((key, key, text, ok))
    return out


#: Headers whose values ``headers.raw`` carries: the ones that frame, route or qualify the
#: message. Every other header appears by name only (its value is inspected elsewhere).
FRAMING_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "content-type",
        "content-encoding",
        "content-range",
        "connection",
        "te",
        "trailer",
        "upgrade",
        "expect",
        "range",
        "if",
        "lock-token",
        "proxy",
    }
)


def head_raw(request: HttpRequest) -> str:
    """The request's head as structural checks need it: ``METHOD HTTP/version``, then one
    line per header in wire order, ``name: value`` for :data:`FRAMING_HEADERS` and the bare
    ``name:`` for the others (no credential, cookie or user-agent text, and short: this is
    scanned on every request)."""
    lines = [f"{request.method} HTTP/{request.http_version}"]
    framing = FRAMING_HEADERS
    for name, value in request.inspected_headers:
        lines.append(f"{name}: {value}" if name in framing else f"{name}:")
    return "\n".join(lines)


def _host(authority: str) -> str | None:
    try:
        return urlsplit("//" + authority).hostname
    except ValueError:
        return None


def offsite(request: HttpRequest) -> bool:
    """The request did not come from a page of this site: no Referer (nor Origin), or one
    naming another host than the Host header (CRS 943110/943120)."""
    ref = request.header("referer") or request.header("origin")
    if not ref:
        return True
    host_header = (request.header("host") or "").strip()
    # Fast path, the common case: "https://<Host>/..." from a page of this site.
    scheme_end = ref.find("://")
    if scheme_end > 0 and host_header:
        rest = ref[scheme_end + 3 :]
        n = len(host_header)
        if rest.startswith(host_header) and rest[n : n + 1] in ("", "/", "?", "#"):
            return False
    try:
        ref_host = urlsplit(ref.strip()).hostname
    except ValueError:
        return True
    host = _host(host_header)
    return ref_host is None or host is None or ref_host != host


#: File signatures of formats clients upload under any label (``text/plain`` included).
_MAGIC = (
    "\x89PNG",
    "\xff\xd8\xff",
    "GIF87a",
    "GIF89a",
    "PK\x03\x04",
    "%PDF-",
    "\xd0\xcf\x11\xe0",
    "\x1f\x8b",
    "7z\xbc\xaf",
    "Rar!\x1a",
    "OggS",
    "fLaC",
    "ID3",
    "wOFF",
    "wOF2",
    "\x00\x00\x01\x00",
)
#: Control characters (all but tab, LF and CR): deleted to count them (``str.translate`` runs
#: in C: no loop per character in Python).
_CONTROLS = [*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F]
#: A binary file's text view: its runs of printable ASCII, as ``strings -n 8`` shows them (a
#: script hidden in an image still reads as one; compressed noise does not). One character
#: class, so the scan is linear.
_STRINGS = re.compile(r"[\x20-\x7e\t\r\n]{8,}")
_DROP_CONTROLS: dict[int, str | None] = dict.fromkeys(_CONTROLS)
#: How much of a value the binary test reads (bounded, whatever the size).
_SNIFF = 512


def looks_binary(text: str) -> bool:
    """File content that is not text: a known file signature (or ``RIFF``/``ftyp`` containers),
    or more than one in twenty of its first characters are control characters. Decided on the
    first :data:`_SNIFF` characters only."""
    if text.startswith(_MAGIC) or (text[:4] == "RIFF") or text[4:8] == "ftyp":
        return True
    head = text[:_SNIFF]
    return (len(head) - len(head.translate(_DROP_CONTROLS))) * 20 > len(head) > 0


#: A key of a JSON object: ``"name" :`` (the name without quotes or escapes; bounded length).
_JSON_KEY = re.compile(r'"([^"\\\n]{1,128})"\s*:\s*')
#: Keys read from a body that does not parse as JSON (bounded work per request).
MAX_LENIENT_KEYS = 256


def lenient_json(text: str) -> list[tuple[str, str]]:
    """``(key, value)`` pairs of a JSON body left malformed (often by the payload itself:
    ``{"id": "1" AND 1=1-- "}``): each value is the text from its key up to the next key or the
    end, without the surrounding quotes, comma and brackets. One linear scan."""
    keys = [(m.group(1), m.start(), m.end()) for m in islice(_JSON_KEY.finditer(text), MAX_LENIENT_KEYS)]
    out: list[tuple[str, str]] = []
    for i, (name, _, end) in enumerate(keys):
        stop = keys[i + 1][1] if i + 1 < len(keys) else len(text)
        value = text[end:stop].strip().rstrip(",}] \t\r\n")
        if value.startswith('"'):
            value = value[1:]
        if value.endswith('"'):
            value = value[:-1]
        if value:
            out.append((name, value))
    return out


def body_values(request: HttpRequest) -> list[Value]:
    """The captured body: raw text, then fields, field/key names (under an offsite key when the
    request came from elsewhere: see :data:`NAMES_OF`) and file names.

    File content is judged by what it is: a binary file (an image or a spreadsheet labelled
    ``text/plain``) is not a text parameter, so its control characters and stray bytes are not
    protocol anomalies. A whole body that is a binary file is not inspected as text; a binary
    file part of a multipart body is inspected with its control characters as blanks (a script
    hidden in an image still reads as one)."""
    if not request.body:
        return []
    pb = request.parsed_body
    if pb.kind == "binary" or (pb.kind == "text" and looks_binary(pb.text)):
        return []
    out: list[Value] = [("body.raw", "body", pb.text, pb.utf8)]
    if pb.files:
        files = {f.location[: -len(":filename")] for f in pb.files}
        raw = pb.text
        for f in pb.fields:
            if f.location in files and looks_binary(f.value):
                view = "\n".join(_STRINGS.findall(f.value))
                raw = raw.replace(f.value, view, 1)
                out.append(("body", f.location, view, True))
            else:
                out.append(("body", f.location, f.value, f.utf8))
        if raw is not pb.text:  # the raw body with its binary files as their text views
            out[0] = ("body.raw", "body", raw, True)
    else:
        for f in pb.fields:
            out.append(("body", f.location, f.value, f.utf8))
    if pb.kind == "text" and not pb.fields and pb.text.lstrip()[:1] in ("{", "["):
        # JSON that does not parse: its values as the application's lenient parser would read them.
        for name, value in lenient_json(pb.text):
            out.append(("body", "body:json:" + name, value, pb.utf8))
    # A JSON body's keys apart from a form's: an analytics event's "session_id" is a field of
    # the event, while a session cookie's own name (PHPSESSID) in it is still a planted id.
    names = "body.names"
    if pb.keys and offsite(request):
        names = "body.json.names.offsite" if pb.kind == "json" else "body.names.offsite"
    for f in pb.keys:
        out.append((names, f.location, f.value, f.utf8))
    for f in pb.files:
        out.append(("body.files", f.location, f.value, f.utf8))
    return out


def head_items(request: HttpRequest) -> list[Item]:
    return [Item(*v) for v in head_values(request)]


def body_items(request: HttpRequest) -> list[Item]:
    return [Item(*v) for v in body_values(request)]


__all__ = [
    "FRAMING_HEADERS",
    "NAMES_OF",
    "SKIP_HEADERS",
    "Item",
    "Value",
    "body_items",
    "body_values",
    "cookie_values",
    "head_items",
    "head_raw",
    "head_values",
    "header_key",
    "header_values",
    "lenient_json",
    "line_values",
    "looks_binary",
    "offsite",
    "referer_params",
]

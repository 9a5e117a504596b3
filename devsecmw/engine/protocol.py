"""Protocol checks that a regular expression cannot say: comparisons, counts, allow-lists.

Each check is a small total function ``str -> (start, end) | None`` selected by the
rule's ``value`` (``{"check": "range", "max": 20}``), so one module serves the
``detect_protocol`` operator of several rules. Most checks read one header value;
the request-level ones read ``headers.raw``: ``METHOD HTTP/version`` then one line per
header in wire order, with the value for the headers that frame the message
(see :func:`devsecmw.engine.targets.head_raw`).
Every check is linear in its input and never raises on hostile text.

What these checks cannot see: a server in front of the application may already
have rejected or rewritten the request (duplicate ``Content-Length``, a
``Transfer-Encoding`` it does not know, an HTTP version it does not speak), and
WSGI servers merge repeated headers. The checks report what reached the app.

Legal but odd HTTP that real clients send is an anomaly, not an attack: a body on a
GET (digest-auth clients resend one), ``Content-Length`` beside ``Transfer-Encoding:
chunked`` (RFC 9112 lets the server go by the latter, and it did, or the request would
not be here), a body without ``Content-Type``. Their rules are notices, and one oddity
fires one rule, so together they stay below the default block threshold. Framing that
is really malformed, the stuff of smuggling (a conflicting or invalid ``Content-Length``,
an obfuscated or repeated ``Transfer-Encoding``, one on HTTP/1.0, a repeated Host),
keeps its own critical rules.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import unquote_plus

from ..body import looks_urlencoded

Span = tuple[int, int]
Check = Callable[[str], Span | None]

# ---------------------------------------------------------------- headers.raw
_HTTP_VERSIONS = frozenset({"1.0", "1.1", "2", "2.0", "3", "3.0"})
_NO_BODY_METHODS = frozenset({"GET", "HEAD", "TRACE"})
_WEBDAV_METHODS = frozenset(
    {"LOCK", "UNLOCK", "PROPFIND", "PROPPATCH", "COPY", "MOVE", "MKCOL", "PUT", "DELETE", "POST"}
)
#: Headers that must not repeat: a second one is how smuggling and cache poisoning start.
_SINGLE = ("host", "content-type", "transfer-encoding")


class _Head:
    """``headers.raw`` split into the request line and ``(name, value, start, end)`` lines."""

    __slots__ = ("lines", "method", "version")

    def __init__(self, raw: str) -> None:
        first, _, rest = raw.partition("\n")
        parts = first.split(" ")
        self.method = parts[0]
        self.version = parts[-1][5:] if len(parts) > 1 and parts[-1].startswith("HTTP/") else ""
        self.lines: list[tuple[str, str, int, int]] = []
        pos = len(first) + 1
        if not rest:
            return
        for line in rest.split("\n"):
            name, _, value = line.partition(":")
            self.lines.append((name, value.strip(" \t"), pos, pos + len(line)))
            pos += len(line) + 1

    def get(self, name: str) -> list[tuple[str, str, int, int]]:
        return [ln for ln in self.lines if ln[0] == name]

    def has_body(self) -> tuple[str, str, int, int] | None:
        for ln in self.lines:
            if ln[0] == "transfer-encoding":
                return ln
            if ln[0] == "content-length" and ln[1].strip("0") not in ("", ","):
                return ln
        return None


#: The last ``headers.raw`` split, and its split: the request-level checks of one request read
#: the same text (a body-carrying request runs several), and split it once. Immutable once made,
#: replaced whole (a thread reading the old pair still gets a text and its own split).
_last: tuple[str, _Head] | None = None


def _head(raw: str) -> _Head:
    global _last
    last = _last
    if last is not None and last[0] == raw:
        return last[1]
    head = _Head(raw)
    _last = (raw, head)
    return head


def _span(line: tuple[str, str, int, int]) -> Span:
    return line[2], line[3]


def _cl_te(raw: str) -> Span | None:
    head = _head(raw)
    te = head.get("transfer-encoding")
    return _span(te[0]) if te and head.get("content-length") else None


def _content_length(raw: str) -> Span | None:
    values: set[str] = set()
    cls = _head(raw).get("content-length")
    for ln in cls:
        for v in ln[1].split(","):
            v = v.strip()
            if not v.isdigit() or not v.isascii():
                return _span(ln)
            values.add(v.lstrip("0") or "0")
    return _span(cls[-1]) if len(values) > 1 else None


def _transfer_encoding(raw: str) -> Span | None:
    head = _head(raw)
    te = head.get("transfer-encoding")
    if not te:
        return None
    if len(te) > 1 or head.version == "1.0" or te[0][1].lower() != "chunked":
        return _span(te[-1])
    return None


def _body_on_get(raw: str) -> Span | None:
    head = _head(raw)
    if head.method not in _NO_BODY_METHODS:
        return None
    ln = head.has_body()
    return _span(ln) if ln else None


def _body_without_type(raw: str) -> Span | None:
    head = _head(raw)
    if head.method in _NO_BODY_METHODS:
        return None  # the body itself is the oddity there (body_on_get): one signal, not two
    ln = head.has_body()
    if ln is None or head.get("content-type"):
        return None
    return _span(ln)


def _duplicate_headers(raw: str) -> Span | None:
    if not any(raw.count(f"\n{name}:") > 1 for name in _SINGLE):
        return None
    head = _head(raw)
    for name in _SINGLE:
        same = head.get(name)
        if len(same) > 1:
            return _span(same[1])
    return None


def _http_version(raw: str) -> Span | None:
    first = raw.partition("\n")[0]
    version = first.rpartition(" ")[2]
    if version.startswith("HTTP/") and version[5:] in _HTTP_VERSIONS:
        return None
    return 0, len(first)


def _restricted_headers(raw: str) -> Span | None:
    """Headers with no business in this request: httpoxy's ``Proxy``, WebDAV lock
    headers outside WebDAV methods, body-describing headers on a request without a body."""
    head = _head(raw)
    body = None
    for ln in head.lines:
        name = ln[0]
        if name == "proxy":
            return _span(ln)
        if name in ("lock-token", "if") and head.method not in _WEBDAV_METHODS:
            return _span(ln)
        if name in ("content-range", "content-encoding"):
            if body is None:
                body = head.has_body() is not None
            if not body:
                return _span(ln)
    return None


# ---------------------------------------------------------------- single header values
_CHARSET = re.compile(r"(?i)charset\s*=\s*(\"[^\"]*\"|'[^']*'|[^;,\s]*)")
#: Encodings a WAF in front cannot read but a back end may decode: the classic bypass.
_BYPASS_CODECS = frozenset(
    {"cp037", "cp273", "cp424", "cp500", "cp875", "cp1026", "cp1140", "utf_7"}
    | {"utf_16", "utf_16_be", "utf_16_le", "utf_32", "utf_32_be", "utf_32_le"}
)


def _bad_charset(name: str) -> bool:
    name = name.strip("\"' ")
    if not name or len(name) > 40:
        return True
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):
        return True
    return info.name.replace("-", "_") in _BYPASS_CODECS


def _charset(value: str, single: bool = True) -> Span | None:
    found = list(_CHARSET.finditer(value))
    if not found:
        return None
    if single and len(found) > 1:
        return found[1].span()
    for m in found:
        if _bad_charset(m.group(1)):
            return m.span()
    return None


_CACHE_DIRECTIVES = {
    "max-age": "n",
    "min-fresh": "n",
    "stale-if-error": "n",
    "max-stale": "?",
    "no-cache": "",
    "no-store": "",
    "no-transform": "",
    "only-if-cached": "",
    "must-revalidate": "",
}


def _cache_control(value: str) -> Span | None:
    pos = 0
    for part in value.split(","):
        start, end = pos, pos + len(part)
        pos = end + 1
        name, eq, arg = part.strip().partition("=")
        kind = _CACHE_DIRECTIVES.get(name.strip().lower())
        if kind is None:
            return start, end
        arg = arg.strip()
        if kind == "" and eq:
            return start, end
        if kind == "n" and not (arg.isdigit() and arg.isascii()):
            return start, end
        if kind == "?" and eq and not (arg.isdigit() and arg.isascii()):
            return start, end
    return None


_QVALUE = r"(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)"
_CODING = re.compile(r"\s*(?:\*|[a-z0-9!#$%&'*+.^_`|~-]+)\s*(?:;\s*q\s*=\s*" + _QVALUE + r"\s*)?")


def _accept_encoding(value: str) -> Span | None:
    """CVE-2022-21907 sent over-long values; anything but ``coding[;q=x]`` lists is malformed."""
    if len(value) > 100:
        return 100, len(value)
    if not value.strip():
        return None
    pos = 0
    for part in value.lower().split(","):
        if part.strip() and not _CODING.fullmatch(part):
            return pos, pos + len(part)
        pos += len(part) + 1
    return None


_RANGE_SPEC = re.compile(r"\s*(\d{0,18})\s*-\s*(\d{0,18})\s*")


def _range(value: str, most: int = 20) -> Span | None:
    unit, eq, specs = value.partition("=")
    unit = unit.strip().lower()
    if not eq or not unit or not unit.replace("-", "").isalnum():
        return 0, len(value)
    if unit != "bytes":
        return None  # other units ("items=0-24") are the application's business
    parts = specs.split(",")
    if len(parts) > most:
        return 0, len(value)
    pos = len(unit) + 1
    for part in parts:
        m = _RANGE_SPEC.fullmatch(part)
        if m is None or not (m.group(1) or m.group(2)):
            return pos, pos + len(part)
        if m.group(1) and m.group(2) and int(m.group(1)) > int(m.group(2)):
            return pos, pos + len(part)
        pos += len(part) + 1
    return None


_OVERRIDE_NAMES = frozenset({"_method", "x-http-method-override", "x-http-method", "x-method-override"})


def _is_form(text: str) -> bool:
    """An urlencoded body (``a=b&c=d``), not JSON, XML or prose that merely holds a ``=``."""
    head = text.lstrip()[:1]
    return head not in ("{", "[", "<", "") and looks_urlencoded(text)


def _pairs(query: str, pos: int) -> Iterator[tuple[str, str, int, int]]:
    """``(name, value, start, end)`` of each ``name=value`` of ``query`` (offsets from ``pos``)."""
    for part in query.split("&"):
        name, eq, value = part.partition("=")
        if eq:
            yield unquote_plus(name), unquote_plus(value), pos, pos + len(part)
        pos += len(part) + 1


def _method_override(value: str, allow: frozenset[str], where: str) -> Span | None:
    """A method override to a method not in ``allow``: an override header's value
    (``where="header"``), ``_method=TRACE`` in a request target's query (``"uri"``) or in
    an urlencoded body (``"form"``)."""
    if where == "header":
        return None if value.strip().lower() in allow else (0, len(value))
    if where == "uri":
        q = value.find("?")
        if q < 0:
            return None
        pairs = _pairs(value[q + 1 :], q + 1)
    elif _is_form(value):
        pairs = _pairs(value, 0)
    else:
        return None
    for name, method, start, end in pairs:
        if name.strip().lower() in _OVERRIDE_NAMES and method.strip().lower() not in allow:
            return start, end
    return None


_BAD_ESCAPE = re.compile(r"%(?:[^0-9A-Fa-fu]|[0-9A-Fa-f](?:[^0-9A-Fa-f]|$)|$)|(?i:%uff[0-9a-f]{2})")


def _form_encoding(body: str) -> Span | None:
    """An urlencoded body with a malformed percent-escape or an IIS ``%uFFxx`` full-width one."""
    if "%" not in body or not _is_form(body):
        return None
    m = _BAD_ESCAPE.search(body)
    return m.span() if m else None


_TCHARS = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_MEDIA_TYPE = re.compile(
    rf"\s*{_TCHARS}/{_TCHARS}\s*"
    rf"(?:;\s*(?:{_TCHARS}\s*=\s*(?:\"(?:[^\"\\\r\n]|\\.)*\"|[^;\"\s]+)\s*)?)*"
)


def _content_type(value: str) -> Span | None:
    """``type/subtype`` then ``; name=value`` parameters (RFC 9110), nothing else."""
    return None if _MEDIA_TYPE.fullmatch(value) else (0, len(value))


# ---------------------------------------------------------------- multipart
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_FILENAME = re.compile(r"(?i)(?:^|;)\s*(file)?name\*?\s*=\s*(\"(?:[^\"\\\r\n]|\\.)*\"?|[^;\r\n]*)")


def _multipart(body: str, quote: bool = False) -> Span | None:
    """Part headers a strict parser would refuse, or that make parsers disagree: names
    with bytes outside the token set, folded lines, a second Content-Disposition,
    ``Content-Transfer-Encoding``, a charset used for filter evasion (in a part's
    Content-Type or the ``_charset_`` field), and quotes, ``;``, ``=`` or backslashes
    inside a file or field name."""
    start = 0
    while start < len(body) and body[start] in "\r\n":
        start += 1
    eol = body.find("\n", start)
    if not body.startswith("--", start) or eol < 0:
        return None
    delim = "\n" + body[start:eol].rstrip("\r")
    pos = eol + 1
    # The last result of each blank-line search, reused while it lies ahead (-1: none from
    # there on): searching afresh for each part a blank line that a CRLF body never has
    # ("\n\n") would scan to the end of the body once per part, quadratic in the parts.
    crlf = lf = -2
    while pos < len(body):
        if crlf != -1 and crlf < pos - 1:
            crlf = body.find("\n\r\n", pos - 1)
        if lf != -1 and lf < pos - 1:
            lf = body.find("\n\n", pos - 1)
        head_end, alt = crlf, lf
        if head_end < 0 or (0 <= alt < head_end):
            head_end = alt
        if head_end < 0:
            head_end = len(body)
        found = _part_headers(body, pos, head_end, quote)
        if found is not None:
            return found
        nxt = body.find(delim, head_end)
        if _CHARSET_FIELD.search(body, pos, head_end):
            # The "_charset_" field sets the charset of every other field (HTML 5).
            value_start = head_end + (3 if body.startswith("\n\r\n", head_end) else 2)
            value_end = nxt if nxt >= 0 else len(body)
            if _bad_charset(body[value_start:value_end].strip()):
                return value_start, value_end
        if nxt < 0:
            return None
        pos = body.find("\n", nxt + len(delim))
        if pos < 0 or body.startswith("--", nxt + len(delim)):
            return None
        pos += 1
    return None


_CHARSET_FIELD = re.compile(r"(?i)\bname\s*=\s*\"?_charset_[\";\r\n]")


def _part_headers(body: str, pos: int, end: int, quote: bool) -> Span | None:
    dispositions = 0
    for line in body[pos:end].split("\n"):
        span = (pos, pos + len(line))
        pos += len(line) + 1
        line = line.rstrip("\r")
        if not line:
            continue
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN.fullmatch(name):
            return span
        lname = name.lower()
        if lname == "content-transfer-encoding":
            return span
        if lname == "content-type" and _charset(value) is not None:
            return span
        if lname == "content-disposition":
            dispositions += 1
            if dispositions > 1:
                return span
            for m in _FILENAME.finditer(value.partition(";")[2]):
                inner = m.group(2)
                if inner.startswith('"'):
                    inner = inner[1:-1] if len(inner) > 1 and inner.endswith('"') else inner[1:]
                bad = "\\;=\"'" if quote else '\\;="'
                if any(c in inner for c in bad):
                    return span
    return None


# ---------------------------------------------------------------- registry
_RAW_CHECKS: dict[str, Check] = {
    "cl_te": _cl_te,
    "content_length": _content_length,
    "transfer_encoding": _transfer_encoding,
    "body_on_get": _body_on_get,
    "body_without_type": _body_without_type,
    "duplicate_headers": _duplicate_headers,
    "http_version": _http_version,
    "restricted_headers": _restricted_headers,
    "cache_control": _cache_control,
    "accept_encoding": _accept_encoding,
    "form_encoding": _form_encoding,
    "content_type": _content_type,
}


def make_detector(param: Any) -> Check:
    """The check named by ``param["check"]`` with its options; an unknown name is an error."""
    if not isinstance(param, dict) or not isinstance(param.get("check"), str):
        raise ValueError('detect_protocol needs {"check": name}')
    name = param["check"]
    if name in _RAW_CHECKS:
        return _RAW_CHECKS[name]
    if name == "charset":
        single = bool(param.get("single", True))
        return lambda v: _charset(v, single)
    if name == "range":
        most = int(param.get("max", 20))
        return lambda v: _range(v, most)
    if name == "method_override":
        allow = frozenset(str(m).lower() for m in param.get("allow", ()))
        where = str(param.get("in", "header"))
        if where not in ("header", "uri", "form"):
            raise ValueError(f"method_override: invalid 'in' {where!r} (must be header, uri or form)")
        return lambda v: _method_override(v, allow, where)
    if name == "multipart":
        quote = bool(param.get("quote", False))
        return lambda v: _multipart(v, quote)
    known = ", ".join(sorted([*_RAW_CHECKS, "charset", "method_override", "multipart", "range"]))
    raise ValueError(f"unknown protocol check {name!r} (must be one of {known})")


__all__ = ["make_detector"]

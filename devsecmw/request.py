"""The framework-free request model.

Adapters build one :class:`HttpRequest` at the boundary from an ASGI scope or a
WSGI environ; the detection engine only ever sees this object. Header names are
lower-cased, values kept as latin-1 text of the wire bytes (so no byte is lost
and none is invented); the raw request target is kept exactly as received.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from itertools import islice
from typing import Any
from urllib.parse import quote

from .body import Field, ParsedBody, is_binary, parse_body, unquote_bytes


def decode_bytes(raw: bytes) -> tuple[str, bool]:
    """UTF-8 text of ``raw``; invalid UTF-8 falls back to latin-1 so every byte stays visible.

    Returns ``(text, valid_utf8)``.
    """
    try:
        return raw.decode("utf-8"), True
    except UnicodeDecodeError:
        return raw.decode("latin-1"), False


def percent_decode(value: str, plus: bool = False) -> tuple[str, bool]:
    """Percent-decode once (``+`` to space for form encoding); returns ``(text, valid_utf8)``."""
    if plus and "+" in value:
        value = value.replace("+", " ")
    if "%" not in value and value.isascii():
        return value, True
    # ``value`` is the latin-1 text of wire bytes: raw UTF-8 (clients that do not percent-encode)
    # and escapes must both be read as the bytes they are, not re-encoded as UTF-8 characters.
    try:
        raw = value.encode("latin-1")
    except UnicodeEncodeError:  # already text, not wire bytes: keep its characters
        raw = value.encode("utf-8", "surrogatepass")
    return decode_bytes(unquote_bytes(raw) if "%" in value else raw)


@dataclass(frozen=True, slots=True)
class Limits:
    """How much of a request is parsed and inspected at most (the caps of the configuration).

    Beyond a cap the first part is inspected and the rest is not: the cost of a request to
    devsecmw is bounded whatever its size, and :meth:`HttpRequest.head_cuts` /
    :meth:`HttpRequest.body_cuts` say where a cap stopped inspection.
    """

    #: Characters of the query string.
    query: int = 64 * 1024
    #: Characters of the path (of the raw target, before ``?``).
    path: int = 8 * 1024
    #: Characters of each header value.
    header: int = 8 * 1024
    #: Headers.
    headers: int = 100
    #: Named values per location: query parameters, cookies, form fields, JSON members, parts.
    params: int = 1000
    #: Bytes of body.
    body: int = 64 * 1024


DEFAULT_LIMITS = Limits()


def parse_qsl(qs: str, location: str = "query", max_fields: int | None = None) -> list[Field]:
    """Split a query or urlencoded body into fields, repeated keys kept, blanks kept.

    Never raises; a malformed escape is left as it is (the way servers read it). At most
    ``max_fields`` fields (all when ``None``).
    """
    return _parse_qsl(qs, location, max_fields)[0]


def _parse_qsl(qs: str, location: str, max_fields: int | None) -> tuple[list[Field], bool]:
    """Fields, and whether ``max_fields`` stopped the parse before the end."""
    fields: list[Field] = []
    if not qs:
        return fields, False
    room = len(qs) if max_fields is None else max_fields
    for part in qs.split("&"):
        if not part:
            continue
        if room <= 0:
            return fields, True
        room -= 1
        name, _eq, value = part.partition("=")
        dname, ok1 = percent_decode(name, plus=True)
        dvalue, ok2 = percent_decode(value, plus=True)
        fields.append(Field(f"{location}:{dname}", dvalue, dname, raw=part, utf8=ok1 and ok2))
    return fields, False


def parse_cookies(header_values: list[str], max_fields: int | None = None) -> list[Field]:
    """The cookies of the Cookie header values, in order; at most ``max_fields``."""
    return _parse_cookies(header_values, max_fields)[0]


def _parse_cookies(header_values: list[str], max_fields: int | None) -> tuple[list[Field], bool]:
    fields: list[Field] = []
    room = sum(map(len, header_values)) if max_fields is None else max_fields
    for header in header_values:
        for part in header.split(";"):
            part = part.strip()
            if not part:
                continue
            if room <= 0:
                return fields, True
            room -= 1
            name, _, value = part.partition("=")
            name = name.strip()
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            fields.append(Field(f"cookie:{name}", value, name, raw=part))
    return fields, False


def _cap_headers(headers: list[tuple[str, str]], limits: Limits) -> list[tuple[str, str]]:
    """The first ``limits.headers`` headers, each value cut at ``limits.header`` (``headers``
    itself when nothing is over a cap: most requests, no copy)."""
    size = limits.header
    if len(headers) <= limits.headers:
        for _name, value in headers:
            if len(value) > size:
                break
        else:
            return headers
    return [(k, v[:size]) for k, v in headers[: limits.headers]]


@dataclass(slots=True, eq=False)
class HttpRequest:
    """One HTTP request as devsecmw inspects it. Mutable only while the body streams in."""

    method: str
    #: The request target exactly as received: path, ``?``, query, percent-encoding kept.
    target: str
    #: The decoded path (what routing sees).
    path: str
    query_string: str = ""
    #: ``(name, value)`` in wire order; names lower-cased, values latin-1 text of the bytes.
    headers: list[tuple[str, str]] = field(default_factory=list)
    scheme: str = "http"
    http_version: str = "1.1"
    #: The client: the connection's peer, or behind trusted proxies the forwarded address.
    client_address: str | None = None
    client_port: int | None = None
    server_address: str | None = None
    server_port: int | None = None
    #: The route template (``/items/{id}``) once the framework has routed the request.
    route: str | None = None
    #: Request body bytes captured so far, at most the inspection cap.
    body: bytearray = field(default_factory=bytearray)
    #: Total body bytes seen (may exceed ``len(body)`` when the cap was hit).
    body_seen: int = 0
    #: The app read the body to its end.
    body_complete: bool = False
    #: Protocol scope: ``"http"`` or ``"websocket"``.
    kind: str = "http"
    #: The connection's peer address (a proxy, when one is in front).
    peer_address: str | None = None
    #: The caps parsing and inspection observe (the middleware sets its configuration's).
    limits: Limits = DEFAULT_LIMITS
    _query: list[Field] | None = None
    _cookies: list[Field] | None = None
    _body: ParsedBody | None = None
    _header_map: dict[str, str] | None = None
    _inspected_headers: list[tuple[str, str]] | None = None
    #: Which parses a count cap stopped: ``query.count``, ``cookies.count``.
    _capped: set[str] | None = None

    # ------------------------------------------------------------------ headers
    def header(self, name: str, default: str | None = None) -> str | None:
        """The header value (repeated headers joined with ``, ``), by lower-case name."""
        hm = self._header_map
        if hm is None:
            hm = self._header_map = _header_map(self.headers)
        return hm.get(name, default)

    def header_values(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name]

    @property
    def content_type(self) -> str:
        return (self.header("content-type") or "").strip()

    @property
    def user_agent(self) -> str | None:
        return self.header("user-agent")

    # ------------------------------------------------------------------ what is inspected
    @property
    def inspected_headers(self) -> list[tuple[str, str]]:
        """The headers inspection reads: at most ``limits.headers``, values cut at ``limits.header``."""
        ih = self._inspected_headers
        if ih is None:
            headers, limits = self.headers, self.limits
            hm = self._header_map
            if hm is None:
                hm = self._header_map = _header_map(headers)
            # Most requests: no value over the cap, read in C over the map's (joined) values.
            if len(headers) <= limits.headers and (not hm or max(map(len, hm.values())) <= limits.header):
                ih = headers
            else:
                ih = _cap_headers(headers, limits)
            self._inspected_headers = ih
        return ih

    @property
    def inspected_target(self) -> str:
        """The raw target, its path cut at ``limits.path`` and its query at ``limits.query``."""
        target, limits = self.target, self.limits
        if len(target) <= limits.path and len(target) <= limits.query:
            return target
        q = target.find("?")
        if q < 0:
            return target[: limits.path]
        return target[: min(q, limits.path)] + "?" + target[q + 1 : q + 1 + limits.query]

    def _cap(self, what: str) -> None:
        if self._capped is None:
            self._capped = set()
        self._capped.add(what)

    # ------------------------------------------------------------------ parsed parts
    @property
    def query(self) -> list[Field]:
        """The query's parameters: of its first ``limits.query`` characters, at most ``limits.params``."""
        if self._query is None:
            limits = self.limits
            self._query, capped = _parse_qsl(self.query_string[: limits.query], "query", limits.params)
            if capped:
                self._cap("query.count")
        return self._query

    @property
    def cookies(self) -> list[Field]:
        """The cookies of the inspected Cookie headers, at most ``limits.params``."""
        if self._cookies is None:
            values = [v for k, v in self.inspected_headers if k == "cookie"]
            self._cookies, capped = _parse_cookies(values, self.limits.params)
            if capped:
                self._cap("cookies.count")
        return self._cookies

    @property
    def body_truncated(self) -> bool:
        return self.body_seen > len(self.body)

    @property
    def parsed_body(self) -> ParsedBody:
        """The captured body parsed by content type (re-parsed if more arrived since)."""
        pb = self._body
        if pb is None or pb.size != len(self.body):
            pb = parse_body(
                bytes(self.body),
                self.content_type,
                truncated=not self.body_complete or self.body_truncated,
                max_fields=self.limits.params,
            )
            self._body = pb
        return pb

    # ------------------------------------------------------------------ caps met
    def head_cuts(self) -> list[tuple[str, str]]:
        """Where a cap stops inspection of the head: ``(location, evidence)`` pairs.

        Read from sizes and counts alone (a few comparisons on an ordinary request), so it
        holds whether or not the detector had to parse the head. The evidence says sizes,
        never content.
        """
        limits = self.limits
        cuts: list[tuple[str, str]] = []
        target = self.target
        if len(target) > limits.path:
            q = target.find("?")
            n = q if q >= 0 else len(target)
            if n > limits.path:
                cuts.append(("path", f"{n} characters, cap {limits.path}"))
        qs = self.query_string
        if len(qs) > limits.query:
            cuts.append(("query", f"{len(qs)} characters, cap {limits.query}"))
        # More parameters than the cap need at least as many "&": count them (C speed) before
        # parsing (which the detector may have skipped, the query being known clean).
        if len(qs) > limits.params and qs.count("&", 0, limits.query) >= limits.params:
            self.query  # noqa: B018 - parses, bounded by the caps; marks query.count
        headers = self.headers
        if self.inspected_headers is not headers:  # some header over a cap (else: no copy made)
            if len(headers) > limits.headers:
                cuts.append(("headers.count", f"{len(headers)} headers, cap {limits.headers}"))
            size = limits.header
            for name, value in headers[: limits.headers]:
                if len(value) > size:
                    location = f"header:{name[:64]}"
                    if all(c[0] != location for c in cuts):
                        cuts.append((location, f"{len(value)} characters, cap {size}"))
        cookie = self._header_map.get("cookie") if self._header_map is not None else self.header("cookie")
        # (repeated Cookie headers joined by ", ")
        if (
            cookie is not None
            and len(cookie) > limits.params
            and cookie.count(";") + cookie.count(",") >= limits.params
        ):
            self.cookies  # noqa: B018 - parses, bounded by the caps; marks cookies.count
        if self._capped:
            for what in ("query.count", "cookies.count"):
                if what in self._capped:
                    cuts.append((what, f"more than {limits.params} parameters"))
        return cuts

    def body_cuts(self) -> list[tuple[str, str]]:
        """Where a cap stopped inspection of the body read so far: ``(location, evidence)``."""
        limits = self.limits
        cuts: list[tuple[str, str]] = []
        if not self.body or is_binary(self.content_type):
            return cuts  # nothing of it is inspected as text: no cap cuts inspection short
        kept = len(self.body)
        if self.body_seen > kept:
            cuts.append(("body", f"{self.body_seen} bytes or more, cap {limits.body}"))
        elif not self.body_complete and kept >= limits.body and self._declared_more(kept):
            cuts.append(("body", f"more than {kept} bytes, cap {limits.body}"))
        pb = self._body
        if pb is not None and pb.capped:
            cuts.append(("body.count", f"more than {limits.params} {pb.kind} fields"))
        return cuts

    def _declared_more(self, kept: int) -> bool:
        """Whether more body is announced than ``kept`` (unknown length: assumed so)."""
        length = self.header("content-length")
        if length is None:
            return True
        try:
            return int(length.strip()[:20]) > kept
        except ValueError:
            return True

    def add_body(self, chunk: bytes, limit: int) -> None:
        """Record a body chunk the app has read, keeping at most ``limit`` bytes."""
        self.body_seen += len(chunk)
        room = limit - len(self.body)
        if room > 0 and chunk:
            self.body += chunk[:room]


def _header_map(headers: list[tuple[str, str]]) -> dict[str, str]:
    """Name -> value; a repeated header's values joined by ``, `` in order (one join per name:
    concatenating as they come would copy the growing value again for every repeat)."""
    hmap = dict(headers)
    if len(hmap) == len(headers):
        return hmap
    many: dict[str, list[str]] = {}
    for name, value in headers:
        many.setdefault(name, []).append(value)
    return {name: values[0] if len(values) == 1 else ", ".join(values) for name, values in many.items()}


# ---------------------------------------------------------------------- builders
#: Lower-cased text of header names as servers send them: names repeat from request to request.
#: Bounded: past the limit (a client inventing names) new names are decoded, not remembered.
_HEADER_NAMES: dict[bytes, str] = {}
_MAX_HEADER_NAMES = 512


def _asgi_headers(raw_headers: Any) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """Header pairs in wire order, and the name -> joined value map."""
    names = _HEADER_NAMES
    try:  # ASGI headers are bytes; a server that hands anything else gets the general path below
        headers = [(names.get(k) or _header_name(k), v.decode("latin-1")) for k, v in raw_headers]
    except (AttributeError, TypeError):
        headers = [(_latin1(k).lower(), _latin1(v)) for k, v in raw_headers]
    return headers, _header_map(headers)


def _header_name(raw: bytes) -> str:
    name = raw.decode("latin-1").lower()
    if len(_HEADER_NAMES) < _MAX_HEADER_NAMES:
        _HEADER_NAMES[raw] = name
    return name


def _address(scope: Any, key: str) -> Any:
    """ASGI's ``client``/``server``: any two-item iterable. An iterator (``falcon.testing`` gives
    one) is read once into a tuple put back in the scope, so the app still gets the same items."""
    value = scope.get(key) or None
    if value is None or isinstance(value, tuple | list):
        return value
    scope[key] = value = tuple(islice(value, 2))
    return value


def _latin1(b: bytes | bytearray | str) -> str:
    return b if isinstance(b, str) else b.decode("latin-1")


def from_asgi_scope(scope: dict[str, Any] | Any) -> HttpRequest:
    """Build the request model from an ASGI ``http`` or ``websocket`` scope."""
    raw_path = scope.get("raw_path")
    path: str = scope.get("path") or "/"
    if raw_path:
        raw_target = raw_path if isinstance(raw_path, str) else raw_path.decode("latin-1")
    else:
        # Servers may omit raw_path; re-encode the decoded path the way a client would have.
        raw_target = quote(path.encode("utf-8", "surrogateescape"), safe="/:@!$&'()*+,;=-._~%")
    qs = scope.get("query_string") or ""
    if not isinstance(qs, str):
        qs = qs.decode("latin-1")
    target = f"{raw_target}?{qs}" if qs else raw_target
    headers, hmap = _asgi_headers(scope.get("headers") or ())
    client = _address(scope, "client")
    server = _address(scope, "server")
    kind = scope.get("type", "http")
    version = scope.get("http_version") or "1.1"
    request = HttpRequest(
        scope.get("method") or ("GET" if kind == "websocket" else ""),
        target,
        path,
        qs,
        headers,
        scope.get("scheme") or ("ws" if kind == "websocket" else "http"),
        version if isinstance(version, str) else str(version),
        str(client[0]) if client else None,
        int(client[1]) if client and len(client) > 1 and client[1] is not None else None,
        str(server[0]) if server else None,
        int(server[1]) if server and len(server) > 1 and server[1] is not None else None,
    )
    request.kind = kind
    request._header_map = hmap
    return request


#: Environ key -> ``(header name, always)`` for ``HTTP_*`` keys (always headers) and for
#: ``CONTENT_TYPE``/``CONTENT_LENGTH`` (headers only when not empty); ``None`` for every other
#: key. Keys repeat from request to request: no string work per key per request. Bounded
#: (client header names are the client's choice).
_ENVIRON_NAMES: dict[str, tuple[str, bool] | None] = {}
_UNKNOWN: Any = ()
#: A path made only of these characters is its own percent-encoding (what ``quote`` below keeps).
_QUOTE_SAFE = re.compile(r"[A-Za-z0-9/:@!$&'()*+,;=\-._~]*").fullmatch


def _environ_name(key: str) -> tuple[str, bool] | None:
    entry: tuple[str, bool] | None = None
    if key.startswith("HTTP_"):
        entry = (key[5:].replace("_", "-").lower(), True)
    elif key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        entry = (key.replace("_", "-").lower(), False)
    if len(_ENVIRON_NAMES) < _MAX_HEADER_NAMES * 2:
        _ENVIRON_NAMES[key] = entry
    return entry


def _wsgi_target(environ: dict[str, Any], path: str) -> str:
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw:
        raw = str(raw)
        if raw.startswith(("http://", "https://")):  # absolute-form; keep only what routing sees
            rest = raw.split("//", 1)[1]
            raw = "/" + rest.split("/", 1)[1] if "/" in rest else "/"
        return raw
    # PEP 3333 gives PATH_INFO as latin-1 text of the decoded bytes; re-encode it (most paths
    # need nothing: quote() would return them unchanged, at twice the cost of this check).
    if _QUOTE_SAFE(path):
        quoted = path
    else:
        quoted = quote(path.encode("latin-1", "replace"), safe="/:@!$&'()*+,;=-._~")
    qs = environ.get("QUERY_STRING") or ""
    return f"{quoted}?{qs}" if qs else quoted or "/"


def from_wsgi_environ(environ: dict[str, Any]) -> HttpRequest:
    """Build the request model from a PEP 3333 environ."""
    headers: list[tuple[str, str]] = []
    names = _ENVIRON_NAMES
    for key, value in environ.items():
        entry = names.get(key, _UNKNOWN)
        if entry is _UNKNOWN:
            entry = _environ_name(key)
        if entry is not None and (entry[1] or value not in (None, "")):
            headers.append((entry[0], value if isinstance(value, str) else str(value)))
    path_info = (environ.get("SCRIPT_NAME") or "") + (environ.get("PATH_INFO") or "")
    # latin-1 text of the bytes: ASCII is already its UTF-8 reading
    path = path_info if path_info.isascii() else decode_bytes(path_info.encode("latin-1", "replace"))[0]
    port = environ.get("REMOTE_PORT")
    sport = environ.get("SERVER_PORT")
    proto = str(environ.get("SERVER_PROTOCOL") or "HTTP/1.1")
    request = HttpRequest(  # positional, in field order: half the cost of keywords
        str(environ.get("REQUEST_METHOD") or "GET"),  # method
        _wsgi_target(environ, path_info),  # target
        path or "/",  # path
        str(environ.get("QUERY_STRING") or ""),  # query_string
        headers,
        str(environ.get("wsgi.url_scheme") or "http"),  # scheme
        proto.split("/", 1)[1] if "/" in proto else proto,  # http_version
        environ.get("REMOTE_ADDR") or None,  # client_address
        int(port) if port and str(port).isdigit() else None,  # client_port
        environ.get("SERVER_NAME") or None,  # server_address
        int(sport) if sport and str(sport).isdigit() else None,  # server_port
    )
    hmap = dict(headers)
    if len(hmap) == len(headers):  # no repeated name (a WSGI server joins them): the map is ready
        request._header_map = hmap
    return request


#: Methods whose HTTP/1 requests carry no body unless a Content-Length or Transfer-Encoding says so.
_BODYLESS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE", "TRACE"})


def may_have_body(req: HttpRequest) -> bool:
    """False when there is surely no body: ``Content-Length: 0``, or an HTTP/1 GET, HEAD, OPTIONS,
    DELETE or TRACE with neither ``Content-Length`` nor ``Transfer-Encoding``."""
    length = req.header("content-length")
    if req.header("transfer-encoding") is not None:
        return True
    if length is not None:
        return length.strip() != "0"
    return not (req.http_version in ("1.0", "1.1") and req.method in _BODYLESS)


def full_url(request: HttpRequest) -> str:
    """``scheme://host/target``, what ``OTEL_PYTHON_EXCLUDED_URLS`` patterns are searched in."""
    return f"{request.scheme}://{request.header('host') or request.server_address or ''}{request.target}"


__all__ = [
    "DEFAULT_LIMITS",
    "Field",
    "HttpRequest",
    "Limits",
    "decode_bytes",
    "from_asgi_scope",
    "from_wsgi_environ",
    "full_url",
    "may_have_body",
    "parse_cookies",
    "parse_qsl",
    "percent_decode",
]

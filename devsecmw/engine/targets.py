"""Address extraction: the request model as ``(key, location, value)`` items per phase.

``key`` is what rules target (``query``, ``header:user-agent``, ``body.raw``);
``location`` is what a signal reports (``query:id``, ``body:json:user.name``).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from ..request import HttpRequest, percent_decode

#: Headers never inspected by generic header rules: cookies have their own target,
#: and these carry opaque credentials or negotiated values no attack hides in usefully.
SKIP_HEADERS = frozenset({"cookie", "authorization", "proxy-authorization", "content-length", "host"})


@dataclass(slots=True)
class Item:
    key: str
    location: str
    value: str
    utf8: bool = True


def head_items(request: HttpRequest) -> list[Item]:
    items: list[Item] = [Item("method", "method", request.method)]
    items.append(Item("uri", "uri", request.target))
    raw_path = request.target.split("?", 1)[0]
    path, ok = percent_decode(raw_path)
    items.append(Item("path", "path", path, ok))
    for f in request.query:
        items.append(Item("query", f.location, f.value, f.utf8))
        if f.name:
            items.append(Item("query.names", f.location, f.name, f.utf8))
    for f in request.cookies:
        items.append(Item("cookies", f.location, f.value))
        if f.name:
            items.append(Item("cookies.names", f.location, f.name))
    for name, value in request.headers:
        if name not in SKIP_HEADERS:
            items.append(Item("header:" + name, "header:" + name, value))
        items.append(Item("headers.names", "header:" + name, name))
    items.append(Item("headers.raw", "headers", head_raw(request)))
    for f in request.query:
        items.append(Item("query.raw", f.location, f.raw))
    if request.query and offsite(request):
        for f in request.query:
            if f.name:
                items.append(Item("query.names.offsite", f.location, f.name, f.utf8))
    return items


#: Substrings of header names whose values ``headers.raw`` never carries (credentials).
_SECRET_HEADER_PARTS = ("auth", "cookie", "token", "key", "secret", "session", "pass", "signature")


def head_raw(request: HttpRequest) -> str:
    """The request line and one ``name: value`` line per header, in wire order.

    For checks on the header block as a whole (conflicting Content-Length and
    Transfer-Encoding, repeated headers). Credential values are replaced, names kept.
    """
    lines = [f"{request.method} {request.target} HTTP/{request.http_version}"]
    for name, value in request.headers:
        if any(p in name for p in _SECRET_HEADER_PARTS):
            value = "[redacted]"
        lines.append(f"{name}: {value}")
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
    try:
        ref_host = urlsplit(ref.strip()).hostname
    except ValueError:
        return True
    host = _host((request.header("host") or "").strip())
    return ref_host is None or host is None or ref_host != host


def body_items(request: HttpRequest) -> list[Item]:
    if not request.body:
        return []
    pb = request.parsed_body
    if pb.kind == "binary":
        return []
    items: list[Item] = [Item("body.raw", "body", pb.text, pb.utf8)]
    for f in pb.fields:
        items.append(Item("body", f.location, f.value, f.utf8))
    for f in pb.keys:
        items.append(Item("body.names", f.location, f.value, f.utf8))
    for f in pb.files:
        items.append(Item("body.files", f.location, f.value, f.utf8))
    if pb.fields and pb.fields[0].location.startswith("body:form:"):
        # Form fields and their names are parallel lists (body._form_fields).
        for f, k in zip(pb.fields, pb.keys, strict=False):
            items.append(Item("body.fields.raw", f.location, f"{k.raw}={f.raw}"))
    if pb.keys and offsite(request):
        for f in pb.keys:
            items.append(Item("body.names.offsite", f.location, f.value, f.utf8))
    return items


__all__ = ["SKIP_HEADERS", "Item", "body_items", "head_items", "head_raw", "offsite"]

"""Address extraction: the request model as ``(key, location, value)`` items per phase.

``key`` is what rules target (``query``, ``header:user-agent``, ``body.raw``);
``location`` is what a signal reports (``query:id``, ``body:json:user.name``).
"""

from __future__ import annotations

from dataclasses import dataclass

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
    return items


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
    return items


__all__ = ["SKIP_HEADERS", "Item", "body_items", "head_items"]

"""The HTML side: start tags read the way a browser's tokenizer reads them, and what makes a
URL or a piece of markup active where it lands."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

from .decoding import b64_text
from .words import (
    ACTIVE_DATA,
    DATA_HOST_TAGS,
    IMAGE_TAGS,
    MAX_ATTRS,
    SCRIPT_SCHEMES,
    VALUE_WINDOW,
)

_TAG_NAME = re.compile(r"[a-z][^\s/>]*")
_ATTR_SEP = re.compile(r"[\s/]*")
_ATTR_NAME = re.compile(r"[^\s/>][^\s/>=]*")
_ATTR_EQ = re.compile(r"\s*=\s*")
UNQUOTED = re.compile(r"[^\s>]*")


class Attr(NamedTuple):
    """An attribute of a :class:`Tag`: offsets into the text the tag was read from."""

    name: str
    start: int  # of the name
    value_start: int  # -1 without a value
    value_end: int


@dataclass(slots=True)
class Tag:
    """A start tag as an HTML5 tokenizer reads it (lower-cased)."""

    name: str
    attrs: list[Attr]
    #: Index after the tag (after ``>``, or where parsing stopped).
    end: int

    @property
    def local(self) -> str:
        """The name without its namespace prefix (``x:script`` -> ``script``)."""
        return self.name.rsplit(":", 1)[-1]

    def attr(self, name: str) -> Attr | None:
        for a in self.attrs:
            if a.name == name:
                return a
        return None


def parse_tag(low: str, lt: int, limit: int) -> Tag:
    """Parse the start tag at ``low[lt] == '<'`` up to ``limit`` (at most ``MAX_ATTRS`` attributes).

    The HTML5 rules that payloads play with are kept: ``/`` separates attributes
    (``<svg/onload=...>``), a quoted value may hold ``>`` (``<img alt=">" onerror=...>``),
    a name runs up to whitespace, ``/``, ``>`` or ``=`` whatever else it holds.
    """
    m = _TAG_NAME.match(low, lt + 1, limit)
    if m is None:
        return Tag("", [], lt + 1)
    i = m.end()
    tag = Tag(m.group(), [], i)
    attrs = tag.attrs
    while len(attrs) < MAX_ATTRS:
        sep = _ATTR_SEP.match(low, i, limit)
        i = sep.end() if sep is not None else i
        if i >= limit:
            break
        if low[i] == ">":
            tag.end = i + 1
            return tag
        n = _ATTR_NAME.match(low, i, limit)
        if n is None:  # pragma: no cover - low[i] is a name character here
            break
        start, i = i, n.end()
        eq = _ATTR_EQ.match(low, i, limit)
        if eq is None:
            attrs.append(Attr(n.group(), start, -1, -1))
            continue
        i = eq.end()
        if i < limit and low[i] in "\"'":
            j = low.find(low[i], i + 1, limit)
            end = j if j >= 0 else limit
            attrs.append(Attr(n.group(), start, i + 1, end))
            i = end + 1
        else:
            u = UNQUOTED.match(low, i, limit)
            end = u.end() if u is not None else i
            attrs.append(Attr(n.group(), start, i, end))
            i = end
    tag.end = min(i, limit)
    return tag


RX_ACTIVE_MARKUP = re.compile(
    r"<(?:script|svg|iframe|frame|img|object|embed|body|math|style|link|meta|base)[\s/>]"
    r"|\bon[a-z]{3,}\s*=|script:"
)


def dangerous_url(norm: str, tag: str = "") -> bool:
    """A normalised URL that runs script where ``tag`` would load or follow it."""
    if norm.startswith(SCRIPT_SCHEMES) or norm.startswith("mhtml:"):
        return True
    if not norm.startswith("data:"):
        return False
    mime = norm[5:69]
    if mime.startswith(ACTIVE_DATA):
        return not (mime.startswith("image/svg") and tag in IMAGE_TAGS)
    if mime.startswith(("image/", "audio/", "video/", "font/")):
        return False  # rendered as media whatever the payload says
    if tag in DATA_HOST_TAGS:
        return True
    comma = norm.find(",", 5, 200)
    if comma < 0:
        return False
    payload = norm[comma + 1 : comma + 400]
    if "base64" in norm[5:comma]:
        payload = b64_text(payload)
    return RX_ACTIVE_MARKUP.search(payload) is not None


def in_escaped_tag(low: str, p: int) -> bool:
    """Is ``low[p]`` inside markup written with entities (``&lt;img`` before it, no ``>`` since)?"""
    esc = low.rfind("&lt;", max(0, p - VALUE_WINDOW), p)
    if esc < 0 or not low[esc + 4 : esc + 5].isalpha():
        return False
    between = low[esc:p]
    return "<" not in between and ">" not in between and "&gt" not in between


def after_breakout(low: str, p: int) -> bool:
    """Is ``low[p]`` preceded (over spaces and ``/``) by a quote or the start of the value?"""
    j = p - 1
    stop = max(-1, p - 32)
    while j > stop and low[j] in " \t\n\r\f/":
        j -= 1
    return j < 0 or low[j] in "\"'`"

"""Decoding a value the way a browser would read it: case, character references, JS and CSS
escapes, URL schemes, base64 and 7-bit encodings.

Decoders that change lengths return :class:`Anchor` s so that offsets found in the
decoded text map back to the value (:func:`_map_back`).
"""

from __future__ import annotations

import base64
import binascii
import re
from bisect import bisect_right
from collections.abc import Callable
from html.entities import html5 as _HTML5

from .words import MAX_DECODES, VALUE_WINDOW, Span

#: ``(new, old)`` after a replacement: offset ``new`` in the rewritten text is ``old`` in the
#: original. A plain pair: a value can have hundreds, and they are sorted and bisected.
Anchor = tuple[int, int]


_ASCII_LOWER = {c: c + 32 for c in range(0x41, 0x5B)}
# Full-width forms of ASCII (U+FF01..U+FF5E) and look-alike angle brackets: an app that
# NFKC-normalises its input turns them into markup. Folding keeps the length (and offsets).
_FULLWIDTH: dict[int, int] = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)}
_FULLWIDTH.update({c: c - 0xFEE0 + 0x20 for c in range(0xFF21, 0xFF3B)})  # upper-case letters
_FULLWIDTH.update({0xFE64: 0x3C, 0xFE65: 0x3E, 0x2039: 0x3C, 0x203A: 0x3E})
_FULLWIDTH_ANY = re.compile("[\uff01-\uff5e\ufe64\ufe65\u2039\u203a]")


def lowered(value: str) -> str:
    """Lower-case without changing the length (so offsets stay valid); fold full-width ASCII."""
    low = value.lower()
    if len(low) != len(value):  # "İ" lowers to two code points: fold ASCII only
        low = value.translate(_ASCII_LOWER)
    if not low.isascii() and _FULLWIDTH_ANY.search(low):
        low = low.translate(_FULLWIDTH)
    return low


def rewrite(
    text: str, rx: re.Pattern[str], fn: Callable[[re.Match[str]], str | None], limit: int
) -> tuple[str, list[Anchor]]:
    """Replace matches of ``rx`` by ``fn(match)`` (None keeps the match), at most ``limit`` of them.

    Returns the new text and anchors ``(new_pos, old_pos)`` after each replacement, so
    that offsets found in the new text map back to the old one (:func:`_map_back`).
    """
    out: list[str] = []
    anchors: list[Anchor] = []
    pos = size = 0
    for n, m in enumerate(rx.finditer(text)):
        if n >= limit:
            break
        rep = fn(m)
        if rep is None:
            continue
        out.append(text[pos : m.start()])
        out.append(rep)
        size += m.start() - pos + len(rep)
        pos = m.end()
        anchors.append((size, pos))
    if not anchors:
        return text, anchors
    out.append(text[pos:])
    return "".join(out), anchors


def _map_back(anchors: list[Anchor], pos: int) -> int:
    i = bisect_right(anchors, (pos, 1 << 62)) - 1
    if i < 0:
        return pos
    new, old = anchors[i]
    return old + (pos - new)


def map_span(anchors: list[Anchor], span: Span, size: int) -> Span:
    if not anchors:
        return span
    a = max(0, min(_map_back(anchors, span[0]), size))
    return a, max(min(_map_back(anchors, span[1]), size), min(a + 1, size))


# Character references: numeric (with or without ``;``) and named (HTML5 table, case-folded
# because the detector reads lower-cased text; the lower-case spelling wins a collision).
RX_ENTITY = re.compile(r"&(?:#(?:x([0-9a-f]{1,8})|([0-9]{1,10}))|([a-z][a-z0-9]{1,31}))(;?)")
_ENTITIES: dict[str, str] = {}
for _name, _text in sorted(_HTML5.items(), key=lambda kv: kv[0] != kv[0].lower()):
    _ENTITIES.setdefault(_name.lower(), _text)


def _decode_entity(m: re.Match[str]) -> str | None:
    hx, dec, name, semi = m.groups()
    if name is not None:
        return _ENTITIES.get(name + ";") if semi else _ENTITIES.get(name)
    cp = int(hx, 16) if hx is not None else int(dec)
    return chr(cp) if 0 < cp <= 0x10FFFF and not 0xD800 <= cp <= 0xDFFF else "\ufffd"


def unescape(text: str, limit: int = MAX_DECODES) -> tuple[str, list[Anchor]]:
    """Decode character references (at most ``limit``) the way a browser does in attribute values.

    Returns the decoded text and anchors to map offsets back. A second round decodes what
    the first revealed (``&amp;#106;`` -> ``&#106;`` -> ``j``); its offsets map approximately.
    """
    if "&" not in text:
        return text, []
    decoded, anchors = rewrite(text, RX_ENTITY, _decode_entity, limit)
    if anchors and "&" in decoded and len(anchors) < limit:
        decoded = rewrite(decoded, RX_ENTITY, _decode_entity, limit - len(anchors))[0]
    return decoded, anchors


#: JS escapes (``\x3c``, ``\u0061``, ``\u{61}``). Not octal: that would eat CSS escapes
#: such as ``\0075``, which the CSS reader decodes itself.
RX_JS_ESCAPE = re.compile(r"\\(?:x([0-9a-fA-F]{2})|u\{([0-9a-fA-F]{1,6})\}|u([0-9a-fA-F]{4}))")


def decode_js_escape(m: re.Match[str]) -> str | None:
    cp = int(m.group(1) or m.group(2) or m.group(3), 16)
    return chr(cp) if cp <= 0x10FFFF and not 0xD800 <= cp <= 0xDFFF else None


#: What a URL parser ignores or strips from a scheme (C0 controls, space, DEL, C1), and what
#: XML-island tricks insert into one (``javas<!-- -->cript:``, ``javas]]><![CDATA[cript:``).
_URL_JUNK = re.compile(r"[\x00-\x20\x7f-\x9f]+|<!--.*?-->|<!\[cdata\[|\]\]>?", re.S)
_URL_LEAD_JUNK = re.compile(r"[^\x21-\x7e]+")


def url_norm(raw: str) -> str:
    """An attribute value as a URL parser reads its scheme: decoded, junk removed, lower-case."""
    v = raw[:VALUE_WINDOW]
    if "&" in v:
        v = lowered(unescape(v, 128)[0])
    v = _URL_JUNK.sub("", v)
    lead = _URL_LEAD_JUNK.match(v)
    return v[lead.end() :] if lead is not None else v


def b64_text(data: str) -> str:
    """The start of a base64 payload as lower-case text ('' when it is not base64)."""
    data = data[: len(data) - len(data) % 4]
    try:
        return base64.b64decode(data).decode("latin-1").lower()
    except (binascii.Error, ValueError):
        return ""


_CSS_COMMENT = re.compile(r"/\*.*?(?:\*/|\Z)", re.S)
_CSS_ESCAPE = re.compile(r"\\([0-9a-f]{1,6})\s?|\\(.)", re.S)


def _css_escape(m: re.Match[str]) -> str:
    hx, other = m.groups()
    if hx is not None:
        cp = int(hx, 16)
        return chr(cp) if 0 < cp <= 0x10FFFF and not 0xD800 <= cp <= 0xDFFF else ""
    return "" if other in "\r\n" else other


def css_norm(text: str) -> str:
    """CSS as a browser tokenises it: comments dropped, escapes decoded, lower-case."""
    if "/*" in text:
        text = _CSS_COMMENT.sub("", text)
    if "\\" in text:
        text = rewrite(text, _CSS_ESCAPE, _css_escape, MAX_DECODES)[0]
    return text.lower()


SCHEME_FIRST = frozenset("jvlmd&%\\") | frozenset(chr(c) for c in (*range(0x20), 0x7F))
#: UTF-7 (``+ADw-script+AD4-``; ``+`` may have become a space in a form) and US-ASCII
#: 7-bit (``¼script¾``: the high bit set on ``<`` and ``>``) encodings of markup.
RX_UTF7 = re.compile(r"(?:^|(?<=[+\s]))AD([w4IcC])-")
UTF7_MAP = {"w": "<", "4": ">", "I": '"', "c": "'", "C": "'"}
USASCII = str.maketrans({"\xbc": "<", "\xbe": ">", "\xa2": '"'})

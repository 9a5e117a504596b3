"""The operator's entry points: XML bodies, whole-value probes, and ``make_detector``."""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable
from typing import Any

from ..matcher import compile_pattern
from .decoding import lowered, unescape
from .judgement import detect, detect_strict, is_probe, is_script_url, scan
from .words import MAX_DECODES, PREFILTER, PROBE_MAX, Span

_XML_START = re.compile(r"\s*<(?:\?xml|[a-z_][\w.-]*:[\w.-]+[\s>/]|[a-z_][\w.-]*\s[^>]*xmlns)", re.I)
_XML_PIECES = re.compile(r"<!\[CDATA\[(.*?)(?:\]\]>|\Z)|=\s*\"([^\"]*)\"|=\s*'([^']*)'|>([^<]+)", re.S)
_PREFILTER = compile_pattern(PREFILTER)


def detect_raw_body(value: str, strict: bool = False) -> Span | None:
    """An XML document: its text nodes, CDATA sections and attribute values, entity-decoded.

    Form, JSON and multipart fields reach the value rule through the body parser; an XML
    document arrives whole, with its payloads behind ``&lt;`` and ``&quot;``. The decoded
    pieces are read as one text (separated by line breaks and a NUL, which no markup or
    script construct spans in benign documents): one linear scan whatever their number.
    Other bodies (JSON, forms, plain text) are left to the rules that see their fields.
    """
    try:
        if not _XML_START.match(value):
            return None
        parts: list[str] = []
        starts: list[int] = []  # offset of each piece in the joined text
        where: list[Span] = []  # the piece's span in the document
        size = 0
        decodes = 4 * MAX_DECODES  # character references decoded in the whole document
        for m in _XML_PIECES.finditer(value):
            k = m.lastindex or 1
            piece = m.group(k)
            if not piece or piece.isspace():
                continue
            if "&" in piece and decodes > 0:
                text, anchors = unescape(piece, decodes)
                decodes -= len(anchors)
            else:
                text = piece
            if is_script_url(lowered(text)):  # a piece that is a script URL on its own
                return m.span(k)
            starts.append(size)
            where.append(m.span(k))
            parts.append(text)
            size += len(text) + len(_PIECE_SEP)
        joined = _PIECE_SEP.join(parts)
        if not joined or _PREFILTER.search(joined) is None:
            return None
        span = scan(joined, strict).span
        return None if span is None else where[bisect_right(starts, span[0]) - 1]
    except Exception:  # pragma: no cover - defensive
        return None


_PIECE_SEP = "\n\x00\n"


def detect_probe(value: str) -> Span | None:
    """A filter probe sent alone: an event-handler name (``onmouseover``) or an encoded ``<``.

    Not active content by itself: the reconnaissance step of a fuzzer that fills a tag's
    attribute position with every handler name, or tests which encodings of ``<`` survive.
    Its own rule (941120), on parameter values only: a JSON key may well be ``onError``.
    """
    n = len(value)
    return (0, n) if 0 < n <= PROBE_MAX and is_probe(value) else None


def make_detector(param: Any = None) -> Callable[[str], Span | None]:
    """The detector for a rule's ``value``: ``{"strict": bool, "mode": "value" | "raw_body" | "probe"}``."""
    opts = param if isinstance(param, dict) else {}
    unknown = sorted(set(opts) - {"strict", "mode", "prefilter"})
    if unknown:
        raise ValueError(f"unknown detect_xss option {unknown[0]!r} (allowed: mode, prefilter, strict)")
    strict = bool(opts.get("strict", False))
    mode = opts.get("mode", "value")
    if mode == "raw_body":
        return (lambda v: detect_raw_body(v, True)) if strict else detect_raw_body
    if mode == "probe":
        return detect_probe
    if mode != "value":
        raise ValueError(f"invalid detect_xss mode {mode!r} (must be 'value', 'raw_body' or 'probe')")
    return detect_strict if strict else detect

"""Span attributes that copy request data (``url.path``, ``url.query``, ``user_agent.original``)
and signal locations: capped first, then every secret hidden."""

from __future__ import annotations

from collections.abc import Iterable

from .decode import _Fold
from .gate import _prepare
from .names import KV, PATHLIKE, STRICT, _extra, _name_cut, is_secret_name
from .tokens import _LOOKAHEAD, _token_spans

#: What replaces a secret inside a shown text.
MASK = "***"
#: Ends an attribute value cut at its cap.
TRUNCATED = "\u2026[truncated]"
#: Ends an evidence excerpt whose match runs past it (evidence is short: a one-character marker).
ELLIPSIS = "\u2026"
#: Default cap, in characters, of ``url.path``, ``url.query`` and ``user_agent.original``.
DEFAULT_ATTRIBUTE_LIMIT = 1024


def _apply(text: str, lo: int, hi: int, spans: list[tuple[int, int]]) -> str:
    """``text[lo:hi]`` with each span replaced by :data:`MASK` (overlapping spans merged)."""
    if not spans:
        return text[lo:hi]
    out: list[str] = []
    pos = lo
    for s, e in sorted(spans):
        s, e = max(s, pos), min(e, hi)
        if e <= s:
            continue
        if s > pos or not out or out[-1] != MASK:
            out.append(text[pos:s])
            out.append(MASK)
        pos = e
    out.append(text[pos:hi])
    return "".join(out)


def _redact(text: str, mode: int, extra: tuple[str, ...]) -> str:
    """The whole of ``text`` (already capped by the caller) with secrets hidden."""
    if not text:
        return text
    clean, fold = _prepare(text, extra)
    if clean:
        return text
    cut = _name_cut(text, len(text), mode, extra, 0, fold)
    hi = len(text) if cut is None else cut
    out = _apply(text, 0, hi, _token_spans(text, 0, hi))
    return out + MASK if cut is not None and not out.endswith(MASK) else out


def mask_inline(text: str, extra_names: Iterable[str] = ()) -> str:
    """``text`` with everything after a secret name cut and credential-shaped content masked."""
    return _redact(text, STRICT, _extra(extra_names))


def truncate(text: str, limit: int) -> str:
    """``text`` if it fits ``limit`` characters, else its start and :data:`TRUNCATED` (``limit`` in all)."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - len(TRUNCATED))] + TRUNCATED


def _capped(text: str, limit: int, mode: int, extra: tuple[str, ...]) -> str:
    """Redact only what can be shown: the first ``limit`` characters (and a look past them,
    so that a token straddling the cap is recognised), then cap."""
    if len(text) <= limit:
        return _redact(text, mode, extra)
    head = text[: limit + _LOOKAHEAD]
    clean, fold = _prepare(head, extra)
    if clean:
        return truncate(text, limit)
    cut = _name_cut(head, limit, mode, extra, 0, fold)
    hi = min(limit, cut) if cut is not None else limit
    shown = _apply(head, 0, hi, _token_spans(head, 0, hi))
    if cut is not None:
        return truncate(shown if shown.endswith(MASK) else shown + MASK, limit)
    return truncate(shown + TRUNCATED, limit)


def scrub_header(value: str, extra_names: Iterable[str] = (), limit: int = DEFAULT_ATTRIBUTE_LIMIT) -> str:
    """A header value as a span attribute (``user_agent.original``): capped, every secret hidden."""
    return _capped(value, limit, STRICT, _extra(extra_names))


def scrub_path(path: str, extra_names: Iterable[str] = (), limit: int = DEFAULT_ATTRIBUTE_LIMIT) -> str:
    """``url.path``: capped; path parameters (``;jsessionid=``) and other secrets hidden."""
    return _capped(path, limit, PATHLIKE, _extra(extra_names))


def scrub_location(location: str, limit: int = 128) -> str:
    """A signal location: names only, but a client chooses them (``a[password=x]``)."""
    return _capped(location, limit, KV, ())


def scrub_query(query: str, extra_names: Iterable[str] = (), limit: int = DEFAULT_ATTRIBUTE_LIMIT) -> str:
    """``url.query``: secret-named parameters' values replaced by ``REDACTED`` (semconv), secrets
    inside other values hidden, capped at ``limit`` characters."""
    if not query:
        return query
    extra = extra_names if isinstance(extra_names, tuple) else tuple(extra_names)
    lowered = _extra(extra)
    over = len(query) > limit
    head = query[: limit + _LOOKAHEAD] if over else query
    # Most queries hold nothing to hide: one look at the whole ("&" only separates here).
    whole = head.replace("&", " ")
    if _prepare(whole, lowered)[0]:
        return truncate(query, limit)
    parts = head.split("&")
    for i, part in enumerate(parts):
        name, eq, _ = part.partition("=")
        if eq and _query_name_secret(name, extra):
            parts[i] = name + "=REDACTED"
        elif part:
            parts[i] = _redact(part, PATHLIKE, lowered)
    out = "&".join(parts)
    if over:
        # A parameter cut by the cap keeps its start only: the look past the cap decided its fate.
        return truncate(out if len(out) > limit else out + TRUNCATED, limit)
    return out


def _query_name_secret(name: str, extra: tuple[str, ...]) -> bool:
    if is_secret_name(name, extra):
        return True
    if "%" in name or "&" in name or "+" in name or "\\" in name:
        fold = _Fold(name.replace("+", " "))
        return is_secret_name(fold.orig, extra)
    return False

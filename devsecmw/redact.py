"""Redaction: what may leave the process as telemetry.

Credentials, cookies, tokens and secret-named parameters never reach a span;
evidence is a short excerpt around the match with secret-looking parts masked.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

MAX_EVIDENCE = 64
REDACTED = "[redacted]"

#: Headers whose values are credentials or session state.
SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "x-auth-token",
        "x-csrf-token",
        "x-xsrf-token",
        "x-amz-security-token",
    }
)

#: Substrings of parameter names that mark the value as a secret.
SECRET_NAME_PARTS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "api_key",
    "api-key",
    "accesskey",
    "access_key",
    "privatekey",
    "private_key",
    "authorization",
    "credential",
    "session",
    "sessid",
    "csrf",
    "xsrf",
    "signature",
    "jwt",
    "bearer",
)

#: Whole words (after splitting on punctuation and camelCase) that mark a secret.
SECRET_NAME_WORDS = frozenset(
    {"pass", "pwd", "pw", "auth", "pin", "otp", "ssn", "cvv", "cvc", "sig", "sid", "key", "card"}
)

_WORDS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")

# Inline secrets inside otherwise harmless text: key=value pairs with secret names,
# bearer tokens, JWTs, cloud keys, private-key blocks.
_INLINE = re.compile(
    r"(?i)(?:"
    r"(?P<kv>(?:pass(?:word|wd)?|pwd|secret|token|api[_-]?key|access[_-]?key|session(?:id)?|auth)"
    r"[\"']?\s*[:=]\s*[\"']?)[^\s&;,\"']+"
    r"|bearer\s+[A-Za-z0-9._~+/=-]+"
    r"|eyJ[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]*"
    r"|(?:AKIA|ASIA)[A-Z0-9]{16}"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----"
    r")"
)


#: Every alternative of ``_INLINE`` contains one of these words (lower-cased): text without any
#: of them cannot match, which a few substring searches tell faster than the regex scan.
_INLINE_WORDS = ("pass", "pwd", "secret", "token", "key", "session", "auth", "bearer", "eyj", "akia", "asia")


def _may_hold_inline(text: str) -> bool:
    """False only when ``_INLINE`` cannot match ``text``.

    Non-ASCII text always goes to the regex: case-insensitive matching folds a few non-ASCII
    letters (the Kelvin sign, long s, dotted and dotless i) onto ASCII ones.
    """
    if not text.isascii():
        return True
    low = text.lower()
    for w in _INLINE_WORDS:  # noqa: SIM110 (a loop: half the cost of any() over a generator)
        if w in low:
            return True
    return False


def _name_of(location: str) -> str:
    # "query:user.password" -> "user.password"; "header:authorization" -> "authorization"
    return location.split(":", 1)[1] if ":" in location else location


def is_secret_name(name: str, extra: Iterable[str] = ()) -> bool:
    extra = extra if isinstance(extra, tuple) else tuple(extra)
    if len(name) <= 256:  # parameter names repeat from request to request: answers cached
        return _secret_name_cached(name, extra)
    return _secret_name(name, extra)


def _secret_name(name: str, extra: tuple[str, ...]) -> bool:
    low = name.lower()
    if low in SECRET_HEADERS:
        return True
    if any(part in low for part in SECRET_NAME_PARTS) or any(p.lower() in low for p in extra if p):
        return True
    # Short words only count whole ("pin" is a secret, "shipping" is not).
    return any(w.lower() in SECRET_NAME_WORDS for w in _WORDS.findall(name))


_secret_name_cached = functools.lru_cache(maxsize=4096)(_secret_name)


def is_secret_location(location: str, extra: Iterable[str] = ()) -> bool:
    """True when the value at ``location`` must never appear in telemetry."""
    kind, _, name = location.partition(":")
    if kind in ("cookie", "cookies"):
        return True
    if kind == "header":
        return name in SECRET_HEADERS or is_secret_name(name, extra)
    if not name:
        return False
    return is_secret_name(_name_of(location).rsplit(":", 1)[-1], extra)


def mask_inline(text: str) -> str:
    if not _may_hold_inline(text):
        return text
    return _INLINE.sub(_mask, text)


def _mask(m: re.Match[str]) -> str:
    kv = m.group("kv")
    return (kv + "***") if kv else "***"


def evidence(
    location: str,
    value: str,
    start: int = 0,
    end: int | None = None,
    extra_names: Iterable[str] = (),
) -> str:
    """A redacted excerpt of ``value`` around ``value[start:end]``, at most 64 characters."""
    if is_secret_location(location, extra_names):
        return REDACTED
    if end is None or end > len(value):
        end = len(value)
    start = max(0, min(start, end))
    if end - start >= MAX_EVIDENCE:
        snippet = value[start : start + MAX_EVIDENCE]
    else:
        pad = (MAX_EVIDENCE - (end - start)) // 2
        lo = max(0, start - pad)
        hi = min(len(value), lo + MAX_EVIDENCE)
        lo = max(0, hi - MAX_EVIDENCE)
        snippet = value[lo:hi]
    # Control characters make logs and UIs misbehave; show them escaped.
    snippet = "".join(c if c.isprintable() else repr(c)[1:-1] for c in snippet)
    snippet = mask_inline(snippet)
    return snippet[:MAX_EVIDENCE]


def scrub_query(query: str, extra_names: Iterable[str] = ()) -> str:
    """``url.query`` with secret-named parameters' values replaced (semconv: SHOULD scrub)."""
    if not query:
        return query
    # One search of the whole query (most need none): parts only need masking when it finds something.
    inline = _may_hold_inline(query) and _INLINE.search(query) is not None
    extra = extra_names if isinstance(extra_names, tuple) else tuple(extra_names)
    parts = query.split("&")
    for i, part in enumerate(parts):
        name, eq, _ = part.partition("=")
        if eq and is_secret_name(name, extra):
            parts[i] = name + "=REDACTED"
        elif inline:
            parts[i] = mask_inline(part)
    return "&".join(parts)


__all__ = [
    "MAX_EVIDENCE",
    "REDACTED",
    "SECRET_HEADERS",
    "evidence",
    "is_secret_location",
    "is_secret_name",
    "mask_inline",
    "scrub_query",
]

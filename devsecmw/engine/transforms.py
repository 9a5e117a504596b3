"""Normalisation transforms: small named functions, each ``str -> (str, changed)``.

Every transform is total (never raises) and linear in its input; loops are
bounded. Rules name their transform chain; the engine caches each chain's
output per value, so a chain shared by fifty rules runs once.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
import unicodedata
from collections.abc import Callable
from urllib.parse import unquote

Transform = Callable[[str], tuple[str, bool]]

MAX_DECODE_ROUNDS = 3

_PCT = re.compile(r"%[0-9A-Fa-f]{2}")
_PCT_U = re.compile(r"%u([0-9A-Fa-f]{4})")
_WS = re.compile(r"\s+")
_SQL_COMMENT = re.compile(r"/\*.*?(?:\*/|$)", re.S)
_JS_ESC = re.compile(r"\\(?:x([0-9A-Fa-f]{2})|u\{?([0-9A-Fa-f]{4,6})\}?|([0-7]{1,3}))")
_B64 = re.compile(r"[A-Za-z0-9+/_-]{16,}={0,2}")
_DUP_SLASH = re.compile(r"/{2,}")
_DOT_SEG = re.compile(r"/(?:\./)+")
_PATH_PARAM = re.compile(r";[^/?]*")


def _pct_once(value: str) -> str:
    # errors="surrogateescape" would leak surrogates into later steps; latin-1 keeps one char per byte.
    try:
        return unquote(value, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        return unquote(value, encoding="latin-1")


def url_decode(value: str) -> tuple[str, bool]:
    """Percent-decode repeatedly (bounded), so double and triple encodings are seen."""
    if "%" not in value:
        return value, False
    out = value
    for _ in range(MAX_DECODE_ROUNDS):
        if not _PCT.search(out):
            break
        out = _pct_once(out)
    return out, out != value


def url_decode_uni(value: str) -> tuple[str, bool]:
    """Like :func:`url_decode`, plus IIS-style ``%uXXXX``."""
    if "%" not in value:
        return value, False
    out = value
    for _ in range(MAX_DECODE_ROUNDS):
        before = out
        if "%u" in out or "%U" in out:
            out = _PCT_U.sub(lambda m: chr(int(m.group(1), 16)), out)
        if _PCT.search(out):
            out = _pct_once(out)
        if out == before:
            break
    return out, out != value


def plus_to_space(value: str) -> tuple[str, bool]:
    if "+" not in value:
        return value, False
    return value.replace("+", " "), True


def html_entity_decode(value: str) -> tuple[str, bool]:
    if "&" not in value:
        return value, False
    out = value
    for _ in range(2):  # &amp;lt; -> &lt; -> <
        nxt = html.unescape(out)
        if nxt == out:
            break
        out = nxt
    return out, out != value


def js_decode(value: str) -> tuple[str, bool]:
    if "\\" not in value:
        return value, False

    def repl(m: re.Match[str]) -> str:
        hx, uni, octal = m.groups()
        try:
            if hx:
                return chr(int(hx, 16))
            if uni:
                return chr(int(uni, 16))
            return chr(int(octal, 8))
        except (ValueError, OverflowError):
            return m.group(0)

    out = _JS_ESC.sub(repl, value)
    return out, out != value


def nfkc(value: str) -> tuple[str, bool]:
    """Unicode NFKC: full-width and compatibility forms to their plain letters."""
    if value.isascii():
        return value, False
    out = unicodedata.normalize("NFKC", value)
    return out, out != value


def lowercase(value: str) -> tuple[str, bool]:
    out = value.lower()
    return out, out != value


def remove_nulls(value: str) -> tuple[str, bool]:
    if "\x00" not in value:
        return value, False
    return value.replace("\x00", ""), True


def compress_whitespace(value: str) -> tuple[str, bool]:
    out = _WS.sub(" ", value)
    return out, out != value


def remove_whitespace(value: str) -> tuple[str, bool]:
    out = _WS.sub("", value)
    return out, out != value


def remove_comments(value: str) -> tuple[str, bool]:
    """Replace C-style comments with a space (``UNION/**/SELECT`` -> ``UNION SELECT``)."""
    if "/*" not in value:
        return value, False
    out = _SQL_COMMENT.sub(" ", value)
    return out, out != value


_CMD_DROP = str.maketrans("", "", "\\\"'^")


def cmd_line(value: str) -> tuple[str, bool]:
    """Shell evasions undone: quotes/backslashes/carets inside words, ``$IFS``, brace commas."""
    out = value.replace("${IFS}", " ").replace("$IFS$9", " ").replace("$IFS", " ")
    out = out.translate(_CMD_DROP)
    out = out.replace(",", " ")
    out = _WS.sub(" ", out).replace(" /", "/").replace(" (", "(").lower()
    return out, out != value


def normalize_path(value: str) -> tuple[str, bool]:
    """Backslashes to slashes, duplicate slashes and ``./`` segments removed, ``;params`` dropped.

    ``..`` segments are kept on purpose: they are what traversal rules look for.
    """
    out = value.replace("\\", "/")
    if "//" in out:
        out = _DUP_SLASH.sub("/", out)
    if "/./" in out:
        out = _DOT_SEG.sub("/", out)
    if ";" in out:
        out = _PATH_PARAM.sub("", out)
    return out, out != value


def base64_decode(value: str) -> tuple[str, bool]:
    """Decode a value that is clearly base64 (long, right alphabet, decodes to text)."""
    v = value.strip()
    if len(v) < 16 or not _B64.fullmatch(v):
        return value, False
    try:
        raw = base64.b64decode(v + "=" * (-len(v) % 4), altchars=b"-_" if ("-" in v or "_" in v) else None)
    except (binascii.Error, ValueError):
        return value, False
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return value, False
    printable = sum(c.isprintable() or c in "\r\n\t" for c in text)
    if not text or printable < 0.9 * len(text):
        return value, False
    return text, True


def trim(value: str) -> tuple[str, bool]:
    out = value.strip()
    return out, out != value


TRANSFORMS: dict[str, Transform] = {
    "url_decode": url_decode,
    "url_decode_uni": url_decode_uni,
    "plus_to_space": plus_to_space,
    "html_entity_decode": html_entity_decode,
    "js_decode": js_decode,
    "nfkc": nfkc,
    "lowercase": lowercase,
    "remove_nulls": remove_nulls,
    "compress_whitespace": compress_whitespace,
    "remove_whitespace": remove_whitespace,
    "remove_comments": remove_comments,
    "cmd_line": cmd_line,
    "normalize_path": normalize_path,
    "base64_decode": base64_decode,
    "trim": trim,
}


def get(name: str) -> Transform:
    try:
        return TRANSFORMS[name]
    except KeyError:
        allowed = ", ".join(sorted(TRANSFORMS))
        raise ValueError(f"invalid transform name {name!r} (must be one of {allowed})") from None


def apply_chain(value: str, chain: tuple[str, ...]) -> str:
    for name in chain:
        value = TRANSFORMS[name](value)[0]
    return value


__all__ = ["MAX_DECODE_ROUNDS", "TRANSFORMS", "Transform", "apply_chain", "get"]

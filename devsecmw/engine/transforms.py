"""Normalisation transforms: small named functions, each ``str -> (str, changed)``.

Every transform is total (never raises) and linear in its input; loops are
bounded. Rules name their transform chain; the engine caches each chain's
output per value, so a chain shared by fifty rules runs once.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import html
import html.entities
import re
import unicodedata
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from ..body import unquote_bytes

Transform = Callable[[str], tuple[str, bool]]

MAX_DECODE_ROUNDS = 3

_PCT = re.compile(r"%[0-9A-Fa-f]{2}")
_PCT_U = re.compile(r"%[uU]([0-9A-Fa-f]{4})")  # IIS reads %U0027 like %u0027
_WS = re.compile(r"\s+")
_SQL_COMMENT = re.compile(r"/\*.*?(?:\*/|$)", re.S)
_JS_ESC = re.compile(r"\\(?:x([0-9A-Fa-f]{2})|u\{?([0-9A-Fa-f]{4,6})\}?|([0-7]{1,3}))")
#: The shortest value ``base64_decode`` decodes (callers skip shorter values without a call).
B64_MIN = 16
_B64 = re.compile(r"[A-Za-z0-9+/_-]{16,}={0,2}")
_DUP_SLASH = re.compile(r"/{2,}")
_DOT_SEG = re.compile(r"/(?:\./)+")
_PATH_PARAM = re.compile(r";[^/?]*")


def _pct_once(value: str) -> str:
    # errors="surrogateescape" would leak surrogates into later steps; latin-1 keeps one char per byte.
    if value.isascii():  # the same answer as unquote's, from the faster byte decoder
        raw = unquote_bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("latin-1")
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
        if "%" not in out or not _PCT.search(out):  # `in` finds no "%" far faster than re
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
        if "%" not in out:
            break
        if "%u" in out or "%U" in out:
            out = _PCT_U.sub(lambda m: chr(int(m.group(1), 16)), out)
        if _PCT.search(out):
            out = _pct_once(out)
        if out == before:
            break
    if "%" in out and _PCT_LETTERS.search(out):
        # ASP drops a "%" that starts no escape: "%S%E%L%E%C%T" is SELECT there (sqlmap's
        # "percentage" tamper). Runs of two or more only: "100%a" stays as it is.
        out = _PCT_LETTERS.sub(lambda m: m.group(0).replace("%", ""), out)
    return out, out != value


#: A "%" before each of three or more letters in a row (no escape: see url_decode_uni).
_PCT_LETTERS = re.compile(r"(?:%[A-Za-z]){2,}")


# Overlong UTF-8 (``%c0%ae`` = ".", ``%e0%80%af`` = "/", ``%c1%9c`` = "\\"): old IIS/Tomcat decoders
# accepted them, so traversal filters must see the ASCII they spell. C0/C1 are never valid leads.
_OVERLONG = re.compile(
    rb"\xc0[\x00-\xff]|\xc1[\x1c\x80-\xbf]|\xe0[\x80\x81][\x80-\xbf]|\xf0\x80[\x80\x81][\x80-\xbf]"
    rb"|\xf8\x80\x80[\x80\x81][\x80-\xbf]|\xfc\x80\x80\x80[\x80\x81][\x80-\xbf]"
)
# Bytes that were not UTF-8 come back from "surrogateescape" as U+DC80..U+DCFF: show them as latin-1.
_ESCAPED_BYTES = {0xDC80 + i: 0x80 + i for i in range(128)}


def _overlong_char(m: re.Match[bytes]) -> bytes:
    b = m.group(0)
    low = b[-1] & 0x3F  # lax decoders keep the low six bits of the last byte (%c0%6e, %c0%ee are ".")
    if len(b) == 2 and b[0] == 0xC1 and low not in (0x1C, 0x2E, 0x2F):
        low |= 0x40  # the proper value; %c1%af and %c1%1c stay "/" and "\\" as in IIS
    elif len(b) > 2:
        low |= (b[-2] & 1) << 6
    return b"\\" if low == 0x1C else bytes((low,))


def _pct_u_char(m: re.Match[str]) -> str:
    code = int(m.group(1), 16)
    # A lone surrogate could not be encoded downstream (RE2 wants UTF-8): U+FFFD instead.
    return "\ufffd" if 0xD800 <= code <= 0xDFFF else chr(code)


# Nibble encoding: each hex digit of an escape encoded on its own (``%%32%%65`` -> ``%2%e`` ->
# ``%2e``). A "%" with one hex digit and then another escape is no valid escape: joined first.
_NIBBLE = re.compile(rb"%([0-9A-Fa-f])%(?=[0-9A-Fa-f])")
# IIS's non-hex digits: a letter g-z counts as 16-35 and the byte keeps the low eight bits
# (``%c0%qf`` = ``%c0%af`` = "/", ``%c1%pc`` = ``%c1%9c`` = "\\", ``%bg`` = ``%c0``). Read only
# as an overlong pair, a C0/C1 lead then a continuation byte, so "50%off" stays as it is.
_LAX_GATE = re.compile(rb"%(?:[cC][01]|[aAqQ][wWxX]|[bBrR][gGhH]|[sS][01])%")  # a lead, hex or not
_LAX_LEAD = re.compile(rb"%([aAqQ][wWxX]|[bBrR][gGhH]|[sS][01])(?=%[0-9A-Za-z]{2})")  # = %c0 / %c1
_LAX_PAIR = re.compile(rb"(%[cC][01])%([0-9A-Za-z]{2})")


# Text with a "%" but no valid escape is left alone unless it holds one of those two forms.
_ODD_FORM = re.compile(r"%(?:[0-9A-Fa-f]%[0-9A-Fa-f]|(?:[aAqQ][wWxX]|[bBrR][gGhH]|[sS][01])%)")


def _lax_byte(pair: bytes) -> int:
    return (int(pair[:1], 36) * 16 + int(pair[1:], 36)) & 0xFF


def _lax_pair(m: re.Match[bytes]) -> bytes:
    byte = _lax_byte(m.group(2))
    return m.group(1) + b"%%%02x" % byte if 0x80 <= byte <= 0xBF else m.group(0)


def _unquote_deep(raw: bytes) -> bytes:
    """``unquote_bytes``; when some "%" starts no escape, nibble and IIS forms are read first."""
    esc = raw.replace(b"\\", b"\\\\") if b"\\" in raw else raw
    try:  # every "%" an escape (nearly all text): the C decoder alone, as unquote_bytes does
        return codecs.escape_decode(esc.replace(b"%", b"\\x"))[0]
    except ValueError:
        pass
    raw = _NIBBLE.sub(rb"%\1", raw)
    if _LAX_GATE.search(raw):
        raw = _LAX_LEAD.sub(lambda m: b"%%%02x" % _lax_byte(m.group(1)), raw)
        raw = _LAX_PAIR.sub(_lax_pair, raw)
    return unquote_bytes(raw)


def _deep_round(value: str) -> str:
    out = value
    if "%" in out and ("%u" in out or "%U" in out):
        out = _PCT_U.sub(_pct_u_char, out)
    pct = "%" in out and (_PCT.search(out) is not None or _ODD_FORM.search(out) is not None)
    if not pct and out.isascii():
        return out
    try:
        raw = out.encode("latin-1")  # text that is one char per byte (latin-1 fallback of the parsers)
    except UnicodeEncodeError:
        raw = out.encode("utf-8", "surrogatepass")
    if pct:
        raw = _unquote_deep(raw)
    if raw.isascii():
        return raw.decode("ascii")
    raw = _OVERLONG.sub(_overlong_char, raw)
    text = raw.decode("utf-8", "surrogateescape")
    return text if text.isascii() else text.translate(_ESCAPED_BYTES)


def url_decode_deep(value: str) -> tuple[str, bool]:
    """Percent-decode repeatedly (bounded), with ``%uXXXX`` and overlong UTF-8 forms.

    Works on bytes, so ``%c0%ae`` and its already-decoded form (the latin-1 text a parser
    falls back to for invalid UTF-8) both read as ``.``; bytes still invalid afterwards stay
    visible as latin-1 characters, never as surrogates.
    """
    if "%" not in value and value.isascii():
        return value, False
    out = value
    for _ in range(MAX_DECODE_ROUNDS + 1):
        nxt = _deep_round(out)
        if nxt == out:
            break
        out = nxt
    return out, out != value


# Look-alikes of ".", "/" and "\\" that some decoders or file systems fold to ASCII: full-width
# and small forms, division slash, set minus, IIS's %uEFC8/%uF025 slashes, the ellipsis.
_PATH_FOLD = str.maketrans(
    {
        "\uff0e": ".",
        "\ufe52": ".",
        "\u2024": ".",
        "\u2025": "..",
        "\u2026": "...",
        "\uff0f": "/",
        "\u2215": "/",
        "\u2044": "/",
        "\u29f8": "/",
        "\uefc8": "/",
        "\uff3c": "\\",
        "\u2216": "\\",
        "\u29f9": "\\",
        "\ufe68": "\\",
        "\uf025": "\\",
        "\x00": None,
    }
)
# A run of ``0x2e``-style literals; fuzzers drop the "0" of later ones (``0x2e0x2ex2e``).
_HEX_PATH_CHAR = re.compile(r"0[xX](?:2[eEfF]|5[cC])(?:0?[xX](?:2[eEfF]|5[cC]))*")
_REGEX_ESCAPED = re.compile(r"\\\.\\\.|\\/")


def _hex_path_run(m: re.Match[str]) -> str:
    run = m.group(0).lower().replace("0x", "x")
    return "".join(chr(int(h, 16)) for h in run.split("x")[1:])


def fold_path_chars(value: str) -> tuple[str, bool]:
    """Spellings of ``.``, ``/`` and ``\\`` made plain: look-alike characters, ``0x2e``-style hex
    literals, regex-escaped ``\\.\\.`` and ``\\/``; null bytes dropped (``..%00/``)."""
    out = value
    if not out.isascii() or "\x00" in out:
        out = out.translate(_PATH_FOLD)
    if "0x" in out or "0X" in out:
        out = _HEX_PATH_CHAR.sub(_hex_path_run, out)
    if "\\" in out:
        out = _REGEX_ESCAPED.sub(lambda m: ".." if len(m.group(0)) == 4 else "/", out)
    return out, out != value


def plus_to_space(value: str) -> tuple[str, bool]:
    if "+" not in value:
        return value, False
    return value.replace("+", " "), True


_HTML5 = html.entities.html5
#: Names a browser decodes without their ``;`` (``amp``, ``lt``, ``frac34``), longest first.
_LEGACY = sorted((k for k in _HTML5 if not k.endswith(";")), key=len, reverse=True)


def _trie_rx(words: list[str]) -> str:
    """One regex for ``words`` that matches the longest of them, with one branch per letter:
    an alternation of 106 names costs ``re`` ~0.25 µs at every ``&``, the trie ~0.01 µs."""
    trie: dict[str, dict[str, Any]] = {}
    for w in words:
        node = trie
        for ch in w:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: dict[str, Any]) -> str:
        alts = [re.escape(ch) + emit(node[ch]) for ch in sorted(node) if ch]
        if not alts:
            return ""
        rx = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
        return f"(?:{rx})?" if "" in node else rx  # greedy: a longer name first

    return emit(trie)


#: The references ``html.unescape`` would replace, and no other ``&``. The stdlib's own pattern
#: matches every ``&`` followed by up to 32 characters and then tries each of their prefixes
#: as an entity name: 30 dict lookups in Python for each ``&name=value`` of a form body
#: (~13 ms for 64 KiB). Here a name needs its ``;``, or must begin with a legacy name, before
#: Python is called; the output is the stdlib's (a property test compares them).
_CHARREF = re.compile(
    r"&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[A-Za-z][A-Za-z0-9]{0,31};|" + _trie_rx(_LEGACY) + ")"
)


def _charref(m: re.Match[str]) -> str:
    s = m.group(1)
    if s[0] == "#":
        return html.unescape(m.group(0))  # numeric: the stdlib's rules for invalid code points
    if s in _HTML5:
        return _HTML5[s]
    # ``name;`` that is no entity: the longest legacy name it begins with, as the stdlib does.
    for x in range(min(len(s) - 1, len(_LEGACY[0])), 1, -1):
        if s[:x] in _HTML5:
            return _HTML5[s[:x]] + s[x:]
    return m.group(0)


def unescape_html(value: str) -> str:
    """``html.unescape``: the same output, without a Python call per ``&`` that starts no entity."""
    if "&" not in value:
        return value
    return _CHARREF.sub(_charref, value)


def html_entity_decode(value: str) -> tuple[str, bool]:
    if "&" not in value:
        return value, False
    out = value
    for _ in range(2):  # &amp;lt; -> &lt; -> <
        nxt = unescape_html(out)
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
_CMD_DROP_BYTES = b"\\\"'^"
# Shell expansions that are empty in an attacker's shell, used to split words: c$@at, cat$u /etc,
# ${x}, $(), ``, <() (special and one-letter variables are unset in a fresh ``sh -c``). The
# patterns start with a literal "$" so the scan skips to candidates.
_SHELL_EMPTY = re.compile(r"\$(?:[@*!?_$#0-9-]|\{[^}]{0,32}\}|\(\s*\)|[A-Za-z](?![A-Za-z0-9_]))")
_SHELL_VAR = re.compile(r"\$[A-Za-z_]\w*")
# Line breaks separate shell commands like ";": a run of whitespace holding one stays a line break.
# (Found by whole runs: "\s*[\r\n]\s*" backtracks quadratically over long blank runs without one.)


def _nl_run(m: re.Match[str]) -> str:
    run = m.group(0)
    return "\n" if "\n" in run or "\r" in run else run


# Runs of blanks other than one lone space (a regex scan of a large body is costly: only when needed).
_BLANKS = re.compile(r"  +|[\t\f\v\r][ \t\f\v\r]*")


def _glued_var(m: re.Match[str]) -> str:
    # $XX right after a letter (sh$XX, cat$u) splits a word; elsewhere it is a real variable.
    start = m.start()
    return "" if start and m.string[start - 1].isalpha() else m.group(0)


def cmd_line(value: str) -> tuple[str, bool]:
    """Shell evasions undone: quotes/backslashes/carets inside words, ``$IFS``, empty expansions
    (``c$@at``, ``pi``ng``, ``sh$XX``), brace commas; spaces compressed, line breaks kept."""
    out = value
    if "$" in out:
        if "IFS" in out:
            out = out.replace("${IFS}", " ").replace("$IFS$9", " ").replace("$IFS", " ")
        out = _SHELL_EMPTY.sub("", out)
        if "$" in out:
            out = _SHELL_VAR.sub(_glued_var, out)
    if "`" in out:
        out = out.replace("``", "")
    if "()" in out:
        out = out.replace("<()", "").replace(">()", "")
    if out.isascii():  # the bytes translation deletes at memory speed; str.translate per character
        out = out.encode("ascii").translate(None, _CMD_DROP_BYTES).decode("ascii")
    else:
        out = out.translate(_CMD_DROP)
    out = out.replace(",", " ")
    if "\n" in out or "\r" in out:
        out = _WS.sub(_nl_run, out)
    if "\t" in out or "\r" in out or "\f" in out or "\v" in out:
        out = _BLANKS.sub(" ", out)
    else:  # runs of spaces alone (", " became "  "): halved per pass, no match objects
        while "  " in out:
            out = out.replace("  ", " ")
    out = out.replace(" /", "/").replace(" (", "(").lower()
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
    if len(v) < B64_MIN or not _B64.fullmatch(v):
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
    "url_decode_deep": url_decode_deep,
    "fold_path_chars": fold_path_chars,
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


__all__ = ["B64_MIN", "MAX_DECODE_ROUNDS", "TRANSFORMS", "Transform", "apply_chain", "get"]

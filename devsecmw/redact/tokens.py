"""Credential-shaped content, masked wherever it appears: URL userinfo, JWTs, AWS access key
ids, ``Basic`` credentials, private-key blocks and long random-looking tokens."""

from __future__ import annotations

from .decode import _HEX, _LOWER, _Fold
from .gate import _TOKEN_MIN, _gate
from .names import _absent

#: Characters looked at past a cap, so a token that straddles it is still recognised as one.
_LOOKAHEAD = 256
#: it ends a parameter name, and as base64 padding it tells nothing.
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_-~")
#: Bytes that are not token characters become spaces (``split`` then cuts there).
_TOKEN_SPLIT = bytes(c if chr(c) in _TOKEN_CHARS else 32 for c in range(256))
_B64_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=_-")
_JWT_CHARS = _B64_CHARS | {"."}
_KEY_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
#: Shortest JWT segment; Basic credentials.
_JWT_MIN = 8
_BASIC_MIN = 8
_WHITESPACE = (" ", "\t", "\n", "\r", "\x0b", "\x0c")


def _run_end(text: str, i: int, chars: frozenset[str], limit: int) -> int:
    while i < limit and text[i] in chars:
        i += 1
    return i


def _is_uuid(tok: str) -> bool:
    if len(tok) != 36 or tok[8] != "-" or tok[13] != "-" or tok[18] != "-" or tok[23] != "-":
        return False
    return all(c in _HEX for c in tok.replace("-", ""))


def _looks_random(tok: str) -> bool:
    """A long token that reads like a key, a hash or an encoded secret: letters and digits,
    little punctuation, and the character class (lower, upper, digit) changing often (about
    every other character in random base16/62/64; every few characters in words and product
    names: ``Noise-Cancelling+Headphones+WH-1000XM5``). UUIDs are ids, and stay."""
    if len(tok) < _TOKEN_MIN or _is_uuid(tok):
        return False
    digits = letters = punct = changes = 0
    last = ""
    for c in tok:
        if c.isdigit():
            digits += 1
            cls = "d"
        elif c.isupper():
            letters += 1
            cls = "u"
        elif c.isalpha():
            letters += 1
            cls = "l"
        else:
            punct += 1
            continue
        if cls != last:
            changes += 1
            last = cls
    return digits > 0 and letters > 0 and punct * 8 <= len(tok) and changes * 3 >= len(tok)


def _token_spans(text: str, lo: int, hi: int) -> list[tuple[int, int]]:
    """Spans of credential-shaped content that overlap ``text[lo:hi]`` (their full extent)."""
    spans: list[tuple[int, int]] = []
    n = len(text)
    # Look a little around the window: a token that straddles an edge is judged whole.
    a = max(0, lo - _LOOKAHEAD)
    b = min(n, hi + _LOOKAHEAD)
    region = text[a:b]
    if _absent(region, _gate((), 2)):
        return spans
    low = region.lower() if region.isascii() else region.translate(_LOWER)
    # URL userinfo: "//" (or a backslash spelling) then an "@" before the next whitespace.
    _userinfo(region, low, a, spans)
    # JWTs (their header is base64 of '{"'), AWS key ids, Basic credentials, key blocks.
    i = low.find("eyj")
    while i >= 0:
        end = _run_end(region, i + 3, _JWT_CHARS, len(region))
        if end - i - 3 >= _JWT_MIN:
            spans.append((a + i, a + end))
        i = low.find("eyj", max(end, i + 3))
    for prefix in ("akia", "asia"):
        i = low.find(prefix)
        while i >= 0:
            end = _run_end(region, i + 4, _KEY_ID_CHARS, len(region))
            if end - i >= 20 and region[i : i + 4].isupper():
                spans.append((a + i, a + end))
            i = low.find(prefix, max(end, i + 4))  # past the run: each character looked at once
    i = low.find("basic")
    while i >= 0:
        k = i + 5
        while k < len(region) and region[k] in _WHITESPACE:
            k += 1
        end = k
        if k > i + 5:  # "Basic", whitespace, then the credentials
            end = _run_end(region, k, _B64_CHARS, len(region))
            tok = region[k:end]
            if len(tok) >= _BASIC_MIN and not tok.islower():
                spans.append((a + k, a + end))
        i = low.find("basic", max(end, i + 5))
    i = low.find("-----begin")
    if i >= 0:
        spans.append((a + i, n))
    # Long random-looking tokens.
    # (ASCII bytes of the same length: a non-ASCII character, "?" here, splits tokens.)
    pieces = region.encode("ascii", "replace").translate(_TOKEN_SPLIT).split(b" ")
    if max(map(len, pieces)) >= _TOKEN_MIN:
        pos = a
        for p in pieces:
            if len(p) >= _TOKEN_MIN:
                if p[:1] == b"/":  # a path: judge its segments ("/reset/<token>" keeps "/reset/")
                    sub = pos
                    for seg in p.split(b"/"):
                        if len(seg) >= _TOKEN_MIN and _looks_random(seg.decode("ascii")):
                            spans.append((sub, sub + len(seg)))
                        sub += len(seg) + 1
                elif _looks_random(p.decode("ascii")):
                    spans.append((pos, pos + len(p)))
            pos += len(p) + 1
    return [s for s in spans if s[0] < hi and s[1] > lo]


def _userinfo(region: str, low: str, base: int, spans: list[tuple[int, int]]) -> None:
    if "@" not in region and "%" not in region and "&" not in region and "\\" not in region:
        return
    # Backslashes are slashes to browsers and to many URL parsers.
    slashed = region.replace("\\", "/") if "\\" in region else region
    for s, e in _userinfo_spans(slashed):
        spans.append((base + s, base + e))
    if "%" in region or "&" in region or "\\" in region:  # %2F%2F, &sol;, %40, \u0040: judge it decoded
        fold = _Fold(region)
        if fold.maps:
            dec = fold.orig.replace("\\", "/") if "\\" in fold.orig else fold.orig
            for s, e in _userinfo_spans(dec):
                spans.append((base + fold.to_src(s), base + fold.to_src(e)))


def _userinfo_spans(text: str) -> list[tuple[int, int]]:
    """Userinfo spans: from the first ``//`` to the last ``@`` after it. No character ends it
    earlier: URL parsers drop tabs and newlines and percent-encode spaces and quotes inside
    userinfo, so ``http://admin:se cret@host`` still carries ``se cret``. (An ``@`` further on,
    an e-mail address in the same text, only makes the mask longer.) Without ``//``:
    ``user:password@host`` (a Host header, an SSH-style address), from the word's start."""
    out: list[tuple[int, int]] = []
    i = text.find("//")
    if i >= 0:
        at = text.rfind("@", i + 2)
        if at > i + 2:
            out.append((i + 2, at))
    prev = 0
    at = text.find("@")
    while at >= 0:  # each stretch between two "@" is looked at once
        start = prev
        for c in (" ", "\t", "\n", "\r", "/", ",", ";", "<", ">", "(", "["):
            k = text.rfind(c, prev, at)
            if k >= start:
                start = k + 1
        if text.find(":", start, at) >= 0:
            out.append((start, at))
        prev = at + 1
        at = text.find("@", prev)
    return out

"""Redaction: what may leave the process as telemetry.

Three rules, in this order:

1. A value whose *location* names a secret (``query:password``, ``header:authorization``,
   any cookie) is never shown: its evidence is :data:`REDACTED`.
2. **Cut at a secret name.** Text that follows a secret name (``password``, ``token``,
   ``jsessionid``, ``Authorization``...) is cut off: the name stays, what follows becomes
   :data:`MASK`. Where a secret value ends cannot be known (a quote, a tag, a brace or an
   encoding can close it early), so nothing after the name is shown. In evidence and header
   values any occurrence of a name cuts; in ``url.path`` and ``url.query`` values a name cuts
   where it is used as a key (followed by ``=``, ``:`` or ``>``, past quotes and brackets:
   ``;jsessionid=``, ``{"password": ``, ``<password>``), not where it is a word
   (``/auth/login``, ``q=gift+card``). Names are looked for as written and as the text reads
   after percent, HTML-entity, backslash and NUL decoding (rounds until stable), so
   ``%70assword`` or ``pass&#119;ord`` cut too.
3. **Credential-shaped content is masked wherever it appears**: URL userinfo
   (``scheme://user:pass@``), JWTs (``eyJ...``), AWS access key ids, ``Bearer`` and ``Basic``
   credentials, private-key blocks and long random-looking tokens (UUIDs excepted).

Evidence is an excerpt of at most :data:`MAX_EVIDENCE` characters around the match, cut at the
first secret before its end (never after it). Span attributes that copy request data
(``url.path``, ``url.query``, ``user_agent.original``) go through :func:`scrub_path`,
:func:`scrub_query` and :func:`scrub_header`, which cap them first (:func:`truncate`, with a
visible :data:`TRUNCATED` marker) so the work is bounded by the cap, not by the request.

No backtracking engine runs on request data here (the ``re`` module is not imported): RE2,
linear in its input, answers "can this text hold anything to hide?" and finds name
candidates; the rest are hand-written scans over ``str.find``/``split``/``translate``, each
resumed where the previous one stopped.
"""

from __future__ import annotations

import functools
from bisect import bisect_right
from collections.abc import Callable, Iterable
from typing import Any

try:  # pragma: no cover - import-time platform probe
    from re2 import _re2
except ImportError:  # pragma: no cover - no RE2 wheel: every text takes the full scan
    _re2 = None

MAX_EVIDENCE = 64
REDACTED = "[redacted]"
#: What replaces a secret inside a shown text.
MASK = "***"
#: Ends an attribute value cut at its cap.
TRUNCATED = "\u2026[truncated]"
#: Ends an evidence excerpt whose match runs past it (evidence is short: a one-character marker).
ELLIPSIS = "\u2026"
#: Default cap, in characters, of ``url.path``, ``url.query`` and ``user_agent.original``.
DEFAULT_ATTRIBUTE_LIMIT = 1024
#: Characters looked at past a cap, so a token that straddles it is still recognised as one.
_LOOKAHEAD = 256
#: Characters before an evidence window searched for secret names as written (a C-speed
#: ``find``), and for their decoded spellings (a loop per escape).
_SCAN_BACK = 4096
_DECODE_BACK = 1024
#: Decoding rounds (percent, entities, backslash escapes each count one) for name search.
_MAX_ROUNDS = 6

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
    "passcode",
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

#: Only in free text (evidence, headers): a cookie header copied into a value.
_STRICT_PARTS = ("cookie",)

# Modes of the name rule.
#: Any secret name hides what follows (evidence, header values).
STRICT = 0
#: Paths and query values: a name hides what follows when it is used as a key: followed (past
#: the rest of its identifier and a few quotes, brackets or spaces) by ``=``, ``:`` or ``>``
#: (``;jsessionid=``, ``password%3D``, ``{"password": ``, ``<password>``). A name used as a word
#: (``/auth/login``, ``q=gift+card``) hides nothing.
PATHLIKE = 1
#: Signal locations (names): only a name followed by ``=`` hides what follows.
KV = 2

_HEX = frozenset("0123456789abcdefABCDEF")
_ENTITIES = {
    "lt": "<",
    "gt": ">",
    "amp": "&",
    "quot": '"',
    "apos": "'",
    "sol": "/",
    "bsol": "\\",
    "colon": ":",
    "commat": "@",
    "equals": "=",
    "num": "#",
    "percnt": "%",
    "period": ".",
    "lowbar": "_",
    "hyphen": "-",
    "dash": "-",
    "nbsp": " ",
    "newline": "\n",
    "tab": "\t",
}
#: Length-preserving lower-casing (``str.lower`` may change a length: U+0130 becomes two
#: characters). Non-ASCII letters that applications fold onto ASCII ones are folded too.
_LOWER = str.maketrans(
    {
        **{chr(c): chr(c + 32) for c in range(ord("A"), ord("Z") + 1)},
        "\u212a": "k",  # Kelvin sign
        "\u0130": "i",
        "\u0131": "i",
        "\u017f": "s",  # long s
    }
)
#: Characters of a token (base64, base64url, hex, ids): everything else splits tokens. Not "=":
#: it ends a parameter name, and as base64 padding it tells nothing.
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_-~")
#: Bytes that are not token characters become spaces (``split`` then cuts there).
_TOKEN_SPLIT = bytes(c if chr(c) in _TOKEN_CHARS else 32 for c in range(256))
_B64_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=_-")
_JWT_CHARS = _B64_CHARS | {"."}
_KEY_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
#: Shortest run that counts as a random token; JWT segment; Basic credentials.
_TOKEN_MIN = 32
_JWT_MIN = 8
_BASIC_MIN = 8
_WHITESPACE = (" ", "\t", "\n", "\r", "\x0b", "\x0c")
#: What makes a text worth the full scan: escapes, URL authority marks, token prefixes.
_TRIGGERS = ("%", "&", "\\", "\x00", "//", "@", "eyj", "akia", "asia", "basic", "-----begin")


def _literal(word: str) -> str:
    """``word`` as an RE2 literal (every ASCII punctuation character escaped)."""
    return "".join("\\" + c if c.isascii() and not c.isalnum() else c for c in word)


def _compile(pattern: str) -> Any:
    if _re2 is None:  # pragma: no cover
        return None
    opts = _re2.RE2.Options()
    opts.never_capture = True
    opts.log_errors = False
    rx = _re2.RE2(pattern.encode("utf-8"), opts)
    if not rx.ok():  # pragma: no cover - names are escaped; a bad one only loses the shortcut
        return None
    return rx.Match


#: A run of token characters as long as a random token.
_TOKEN_RUN = f"[A-Za-z0-9+/_~-]{{{_TOKEN_MIN}}}"


@functools.lru_cache(maxsize=64)
def _gate(extra: tuple[str, ...], kind: int = 0) -> Any:
    """One RE2 search that tells whether a text can hold something to hide (``kind`` 0: a secret
    name, an escape, a token trigger or a run of token characters as long as a random token;
    1: a secret name only; 2: a token trigger or run only). RE2 is linear in the text. None
    without RE2: then every text takes the full scan (linear too)."""
    words: tuple[str, ...] = ()
    if kind in (0, 1):
        words = (*SECRET_NAME_PARTS, *SECRET_NAME_WORDS, *_STRICT_PARTS, *extra)
    if kind in (0, 2):
        words = (*words, *_TRIGGERS)
    pattern = "(?i)(?:" + "|".join(_literal(w) for w in words) + ")"
    return _compile(pattern if kind == 1 else pattern + "|" + _TOKEN_RUN)


_GATE = _gate(())
_UNANCHORED = _re2.RE2.Anchor.UNANCHORED if _re2 is not None else None


def _absent(text: str, match: Any) -> bool:
    """True when RE2's ``match`` certainly does not occur in ``text`` (False without RE2)."""
    if match is None:  # pragma: no cover
        return False
    # Names are ASCII: folded the way the scan folds, other characters can only split words.
    data = (text if text.isascii() else text.translate(_LOWER)).encode("ascii", "replace")
    return bool(match(_UNANCHORED, data, 0, len(data))[0][0] < 0)


def _clean(text: str, extra: tuple[str, ...]) -> bool:
    """True when ``text`` certainly holds nothing to hide (the common case, in about a microsecond)."""
    return _absent(text, _gate(extra) if extra else _GATE)


_UNESCAPE = str.maketrans("%&\\\x00", "    ")


def _prepare(text: str, extra: tuple[str, ...], decode_from: int = 0) -> tuple[bool, _Fold | None]:
    """Whether ``text`` certainly holds nothing to hide, and the decoded form of
    ``text[decode_from:]`` when it has escapes (made once: the name search reuses it). A text
    with escapes is clean when it is clean as written, escape characters aside (``card`` in
    ``%card`` counts), and clean once decoded."""
    if _clean(text, extra):
        return True, None
    tail = text[decode_from:] if decode_from else text
    if "%" not in tail and "&" not in tail and "\\" not in tail and "\x00" not in tail:
        return False, None
    fold = _Fold(tail)
    clean = bool(fold.maps) and _clean(text.translate(_UNESCAPE), extra) and _clean(fold.orig, extra)
    return clean, fold


# ---------------------------------------------------------------------- decoding (for name search)
#: What a piece of text after an escape character decodes to, and how many characters it used.
_Parser = Callable[[str], "tuple[str, int] | None"]


class _Fold:
    """``text`` decoded (percent, entities, backslash escapes; rounds until stable) and
    lower-cased, with a map from its indexes back to ``text``'s."""

    __slots__ = ("low", "maps", "orig")

    def __init__(self, text: str, decode: bool = True) -> None:
        self.maps: list[tuple[list[int], list[int]]] = []
        orig = text
        if decode:
            for _ in range(_MAX_ROUNDS):
                changed = False
                for step in (_pct_round, _entity_round, _backslash_round, _nul_round):
                    out = step(orig)
                    if out is not None:
                        orig, anchors = out
                        self.maps.append(anchors)
                        changed = True
                if not changed:
                    break
        self.orig = orig
        self.low = orig.lower() if orig.isascii() else orig.translate(_LOWER)

    def to_src(self, i: int) -> int:
        """The index in the original text of this text's character ``i`` (``len`` maps to ``len``)."""
        for shadow, src in reversed(self.maps):
            k = bisect_right(shadow, i) - 1
            if k >= 0:
                i = src[k] + (i - shadow[k])
        return i


#: Every two-hex-digit spelling (either case) and the character it stands for.
_HEX2 = {a + b: chr(int(a + b, 16)) for a in "0123456789abcdefABCDEF" for b in "0123456789abcdefABCDEF"}


def _anchored(
    pieces: list[str], lead: str, parse: _Parser, hex2: bool = False
) -> tuple[str, tuple[list[int], list[int]]] | None:
    """Shared loop of the decoding rounds: ``pieces`` is the text split on ``lead``; ``parse``
    says what each piece's start decodes to and how many characters it consumes (``hex2``:
    try a two-hex-digit escape first, by one dictionary lookup)."""
    out = [pieces[0]]
    shadow: list[int] = []
    src: list[int] = []
    o = i = len(pieces[0])  # o: decoded length so far; i: index of this piece's ``lead``
    quick = _HEX2.get
    for p in pieces[1:]:
        found: tuple[str, int] | None = None
        if hex2:
            ch2 = quick(p[:2])
            if ch2 is not None:
                found = (ch2, 2)
        if found is None:
            found = parse(p)
        if found is None:
            out.append(lead)
            out.append(p)
            o += 1 + len(p)
        else:
            ch, n = found
            shadow.append(o)
            src.append(i)
            out.append(ch)
            o += len(ch)
            shadow.append(o)
            src.append(i + 1 + n)
            out.append(p[n:])
            o += len(p) - n
        i += 1 + len(p)
    if not shadow:
        return None
    return "".join(out), (shadow, src)


def _hex_at(p: str, start: int, n: int) -> int | None:
    digits = p[start : start + n]
    if len(digits) != n:
        return None
    for c in digits:
        if c not in _HEX:
            return None
    return int(digits, 16)


def _pct(p: str) -> tuple[str, int] | None:
    v = _hex_at(p, 0, 2)
    if v is not None:
        return chr(v), 2
    if p[:1] in ("u", "U"):  # %uXXXX (IIS)
        v = _hex_at(p, 1, 4)
        if v is not None:
            return chr(v), 5
    return None


def _entity(p: str) -> tuple[str, int] | None:
    if p[:1] == "#":
        hexa = p[1:2] in ("x", "X")
        start = 2 if hexa else 1
        end = start
        digits = "0123456789abcdefABCDEF" if hexa else "0123456789"
        while end < len(p) and end - start < 8 and p[end] in digits:
            end += 1
        if end == start:
            return None
        v = int(p[start:end], 16 if hexa else 10)
        if v > 0x10FFFF:
            return None
        return chr(v), end + (1 if p[end : end + 1] == ";" else 0)
    semi = p.find(";", 0, 12)
    if semi > 0:
        ch = _ENTITIES.get(p[:semi].lower())
        if ch is not None:
            return ch, semi + 1
    return None


def _backslash(p: str) -> tuple[str, int] | None:
    c = p[:1]
    if c in ("u", "U"):
        if p[1:2] == "{":
            close = p.find("}", 2, 10)
            if close > 2:
                v = _hex_at(p, 2, close - 2)
                if v is not None and v <= 0x10FFFF:
                    return chr(v), close + 1
            return None
        v = _hex_at(p, 1, 4)
        return (chr(v), 5) if v is not None else None
    if c in ("x", "X"):
        v = _hex_at(p, 1, 2)
        return (chr(v), 3) if v is not None else None
    return None


def _pct_round(text: str) -> tuple[str, tuple[list[int], list[int]]] | None:
    return _anchored(text.split("%"), "%", _pct, hex2=True) if "%" in text else None


def _entity_round(text: str) -> tuple[str, tuple[list[int], list[int]]] | None:
    return _anchored(text.split("&"), "&", _entity) if "&" in text else None


def _nul(p: str) -> tuple[str, int]:
    return "", 0


def _nul_round(text: str) -> tuple[str, tuple[list[int], list[int]]] | None:
    """NUL bytes dropped (C string handling stops or skips there: ``pass\\0word``)."""
    return _anchored(text.split("\x00"), "\x00", _nul) if "\x00" in text else None


def _backslash_round(text: str) -> tuple[str, tuple[list[int], list[int]]] | None:
    return _anchored(text.split("\\"), "\\", _backslash) if "\\" in text else None


# ---------------------------------------------------------------------- secret names
def _word_at(orig: str, i: int, j: int) -> bool:
    """``orig[i:j]`` is a whole word: a non-letter or a camelCase change on both sides (digits
    separate words too: ``pin2`` and ``2fa_pin`` are pins)."""
    first, last = orig[i], orig[j - 1]
    if i > 0:
        prev = orig[i - 1]
        if prev.isalpha() and not (first.isupper() and not prev.isupper()):
            return False
    if j < len(orig):
        nxt = orig[j]
        if nxt.isalpha():
            if not nxt.isupper():
                return False
            # "userPINCode": an upper-case run ends where a capitalised word starts
            if last.isupper() and not orig[j + 1 : j + 2].islower():
                return False
    return True


#: Characters past a name's start that decide what it hides (identifier, gap, separator).
_NAME_TAIL = 64
_IDENT = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
_KEY_GAP = frozenset(" \t\n\r\"'[](){}+")


def _hides(orig: str, end: int, mode: int) -> int:
    """Where the text hidden by the secret name ending at ``end`` starts, under ``mode``; -1
    when the name hides nothing there."""
    n = len(orig)
    k = end
    if mode == STRICT:  # past a few separators, so that "password=***" reads well
        while k < n and k - end < 4 and orig[k] in "=:\"' >":
            k += 1
        return k
    if mode == PATHLIKE:  # the rest of the identifier: "password_hash=", "jsessionid="
        while k < n and k - end < 32 and orig[k] in _IDENT:
            k += 1
    gap = k
    while k < n and k - gap < 4 and orig[k] in _KEY_GAP:
        k += 1
    if k < n and (orig[k] == "=" or (mode == PATHLIKE and orig[k] in ":>")):
        return k + 1
    return -1


@functools.lru_cache(maxsize=64)
def _parts(strict: bool, extra: tuple[str, ...]) -> tuple[str, ...]:
    return (*SECRET_NAME_PARTS, *extra, *(_STRICT_PARTS if strict else ()))


@functools.lru_cache(maxsize=64)
def _names(extra: tuple[str, ...], strict: bool) -> Any:
    """Every secret name as one RE2 pattern, longest first: at a position where several start
    (``pass``, ``password``), the longest is the one that can hide what follows."""
    names = sorted({*_parts(strict, extra), *SECRET_NAME_WORDS}, key=len, reverse=True)
    return _compile("(?i)(?:" + "|".join(_literal(n) for n in names) + ")")


def _first_name(fold: _Fold, stop: int, mode: int, extra: tuple[str, ...]) -> tuple[int, int] | None:
    """The earliest secret name that starts before ``stop`` in ``fold`` and hides what follows
    under ``mode``: its start, and where the hidden text starts."""
    low, orig = fold.low, fold.orig
    match = _names(extra, mode == STRICT)
    if match is None:  # pragma: no cover - without RE2: one find per name
        return _first_name_scan(low, orig, stop, mode, extra)
    parts = _part_set(mode == STRICT, extra)
    data = low[: stop + _NAME_TAIL].encode("ascii", "replace")  # one byte per character
    end = min(len(data), stop + _NAME_TAIL)
    pos = 0
    # Each search resumes after the previous start, so the text is scanned about once.
    while pos <= stop:
        i, j = match(_UNANCHORED, data, pos, end)[0]
        if i < 0 or i > stop:
            return None
        name = low[i:j]
        if name not in parts and not _word_at(orig, i, j):  # a short word counts whole only
            pos = i + 1
            continue
        part_mode = STRICT if name == "bearer" and mode == PATHLIKE else mode
        cut = _hides(orig, j, part_mode)
        if cut >= 0:
            return i, cut
        pos = i + 1
    return None


@functools.lru_cache(maxsize=64)
def _part_set(strict: bool, extra: tuple[str, ...]) -> frozenset[str]:
    return frozenset(_parts(strict, extra))


def _first_name_scan(
    low: str, orig: str, stop: int, mode: int, extra: tuple[str, ...]
) -> tuple[int, int] | None:
    best = best_cut = -1
    limit = stop + 1  # names must start before it (the earliest wins; on a tie, the first found)
    for part in _parts(mode == STRICT, extra):
        # "Bearer" is followed by its token, whatever separates them ("Bearer+x", "Bearer%20x").
        part_mode = STRICT if part == "bearer" and mode == PATHLIKE else mode
        i = low.find(part, 0, limit - 1 + len(part))
        while i >= 0:
            cut = _hides(orig, i + len(part), part_mode)
            if cut >= 0:
                best, best_cut, limit = i, cut, i
                break
            i = low.find(part, i + 1, limit - 1 + len(part))
    for word in SECRET_NAME_WORDS:
        i = low.find(word, 0, limit - 1 + len(word))
        while i >= 0:
            end = i + len(word)
            if _word_at(orig, i, end):
                cut = _hides(orig, end, mode)
                if cut >= 0:
                    best, best_cut, limit = i, cut, i
                    break
            i = low.find(word, i + 1, limit - 1 + len(word))
    if best < 0:
        return None
    return best, best_cut


def _extra(extra: Iterable[str]) -> tuple[str, ...]:
    return tuple(p.lower() for p in extra if p) if extra else ()


def _name_cut(
    text: str,
    stop: int,
    mode: int,
    extra: tuple[str, ...],
    scan_from: int = 0,
    fold: _Fold | None = None,
    decode_from: int | None = None,
) -> int | None:
    """Index in ``text`` from which everything is hidden (the first secret name that starts in
    ``text[scan_from:stop]``, in any spelling), or None. Decoded spellings are looked for from
    ``decode_from`` (default ``scan_from``) on; ``fold``, when given, is the decoded form of
    ``text[decode_from:]`` up to ``stop + 32`` or further."""
    region = text[scan_from : stop + _NAME_TAIL]  # a little past: what follows a name counts
    plain = _Fold(region, decode=False)
    hit = _first_name(plain, stop - scan_from, mode, extra)
    cut = scan_from + hit[1] if hit else None
    base = scan_from if decode_from is None else decode_from
    coded = text[base : stop + _NAME_TAIL]
    if "%" in coded or "&" in coded or "\\" in coded or "\x00" in coded:
        if fold is None:
            fold = _Fold(text[base : scan_from + hit[0] + _NAME_TAIL] if hit else coded)
        if fold.maps:
            found = _first_name(fold, len(fold.low), mode, extra)
            # A name that only reads as one decoded (or earlier than the plain one): cut at the
            # spelling of the first hidden character.
            if found is not None:
                at = base + fold.to_src(found[0])
                if at <= stop and (hit is None or at < scan_from + hit[0]):
                    cut = base + fold.to_src(found[1])
    return cut


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
    fold = _Fold(name, decode=False)
    for word in SECRET_NAME_WORDS:
        i = fold.low.find(word)
        while i >= 0:
            if _word_at(fold.orig, i, i + len(word)):
                return True
            i = fold.low.find(word, i + 1)
    return False


_secret_name_cached = functools.lru_cache(maxsize=4096)(_secret_name)


def _name_of(location: str) -> str:
    # "query:user.password" -> "user.password"; "header:authorization" -> "authorization"
    return location.split(":", 1)[1] if ":" in location else location


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


# ---------------------------------------------------------------------- credential-shaped content
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


# ---------------------------------------------------------------------- applying
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


def evidence(
    location: str,
    value: str,
    start: int = 0,
    end: int | None = None,
    extra_names: Iterable[str] = (),
) -> str:
    """A redacted excerpt of ``value`` around ``value[start:end]``, at most 64 characters.

    The excerpt never shows anything after a secret name: when one occurs before the excerpt's
    end, the excerpt ends there (with :data:`MASK`); when the match itself lies after it, the
    excerpt shows what leads up to the name instead.
    """
    if is_secret_location(location, extra_names):
        return REDACTED
    if end is None or end > len(value):
        end = len(value)
    start = max(0, min(start, end))
    if end - start >= MAX_EVIDENCE:
        lo, hi = start, start + MAX_EVIDENCE
    else:
        pad = (MAX_EVIDENCE - (end - start)) // 2
        lo = max(0, start - pad)
        hi = min(len(value), lo + MAX_EVIDENCE)
        lo = max(0, hi - MAX_EVIDENCE)
    extra = _extra(extra_names)
    tail = ELLIPSIS if end > hi else ""
    # Names are looked for in the few KiB before the excerpt: a secret value is shorter than
    # that, and the work stays bounded whatever the size of the value.
    scan_from = max(0, lo - _SCAN_BACK)
    decode_from = max(0, lo - _DECODE_BACK)
    around = value[scan_from : hi + _LOOKAHEAD]
    clean, fold = _prepare(around, extra, decode_from - scan_from)
    if clean:
        return _printable(value[lo:hi], tail)
    cut = _name_cut(value, hi, STRICT, extra, scan_from, fold, decode_from)
    if cut is not None and cut < hi:
        hi, tail = cut, MASK
        lo = max(0, min(lo, hi - MAX_EVIDENCE + len(MASK)))
    snippet = _apply(value, lo, hi, _token_spans(value, lo, hi))
    if tail == MASK and snippet.endswith(MASK):
        tail = ""
    return _printable(snippet, tail)


def _printable(snippet: str, tail: str) -> str:
    # Control characters make logs and UIs misbehave; show them escaped.
    if not snippet.isprintable():
        snippet = "".join(c if c.isprintable() else repr(c)[1:-1] for c in snippet)
    return snippet[: MAX_EVIDENCE - len(tail)] + tail


__all__ = [
    "DEFAULT_ATTRIBUTE_LIMIT",
    "ELLIPSIS",
    "MASK",
    "MAX_EVIDENCE",
    "REDACTED",
    "SECRET_HEADERS",
    "TRUNCATED",
    "evidence",
    "is_secret_location",
    "is_secret_name",
    "mask_inline",
    "scrub_header",
    "scrub_location",
    "scrub_path",
    "scrub_query",
    "truncate",
]

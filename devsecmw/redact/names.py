"""Secret names: which parameter, header and location names mark a secret, and where a
secret name in a text cuts what follows (in any spelling: see :mod:`.decode`)."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from .decode import _LOWER, _Fold

try:  # pragma: no cover - import-time platform probe
    from re2 import _re2
except ImportError:  # pragma: no cover - no RE2 wheel: every text takes the full scan
    _re2 = None

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


_UNANCHORED = _re2.RE2.Anchor.UNANCHORED if _re2 is not None else None


def _absent(text: str, match: Any) -> bool:
    """True when RE2's ``match`` certainly does not occur in ``text`` (False without RE2)."""
    if match is None:  # pragma: no cover
        return False
    # Names are ASCII: folded the way the scan folds, other characters can only split words.
    data = (text if text.isascii() else text.translate(_LOWER)).encode("ascii", "replace")
    return bool(match(_UNANCHORED, data, 0, len(data))[0][0] < 0)


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

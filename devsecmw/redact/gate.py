"""The RE2 gate: one linear search that tells whether a text can hold anything to hide, so
that most texts skip the full scans."""

from __future__ import annotations

import functools
from typing import Any

from .decode import _Fold
from .names import _STRICT_PARTS, SECRET_NAME_PARTS, SECRET_NAME_WORDS, _absent, _compile, _literal

#: Shortest run that counts as a random token.
_TOKEN_MIN = 32
#: What makes a text worth the full scan: escapes, URL authority marks, token prefixes.
_TRIGGERS = ("%", "&", "\\", "\x00", "//", "@", "eyj", "akia", "asia", "basic", "-----begin")

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

"""Decoding for the name search: percent, HTML-entity, backslash and NUL escapes undone in
rounds until stable, lower-cased without changing lengths, with a map back to the original
indexes (:class:`_Fold`)."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable

#: Decoding rounds (percent, entities, backslash escapes each count one) for name search.
_MAX_ROUNDS = 6

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

"""Linear-time pattern matching on encoded text.

RE2 (``google-re2``) is the engine: it guarantees time linear in the input for
every pattern, so no request can make a rule backtrack catastrophically. The
multi-pattern scan is an ``RE2::Set``: one pass over a text says which of all
the patterns occur anywhere in it. ``benchmarks/matchers.py`` compares it with
Hyperscan and the standard ``re`` on the packaged rules (README "Why RE2").

Text is scanned as UTF-8 bytes through RE2's C extension directly: the Python
wrapper re-encodes a ``str`` on every call and maps offsets back in Python, so
the engine encodes each distinct text once (:func:`encode`) and only converts
offsets of the rare confirmed match (:func:`char_span`). Lone surrogates (which
``js_decode`` of ``\\ud800`` can produce) are encoded with ``surrogatepass``:
they can never make a scan raise.

The standard ``re`` module is a fallback for platforms without an RE2 wheel
(musl/Alpine); it is only used when RE2 is missing, says so in the log, and
works on ``str`` (``encode`` is then the identity).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from functools import lru_cache
from typing import Any, NamedTuple, Protocol

logger = logging.getLogger("devsecmw")

#: Memory RE2 may use per compiled pattern or set (its DFA cache lives in it).
MAX_MEM = 64 << 20
#: Instructions per RE2 set (see :class:`_Re2Set`).
SET_PROGRAM_SIZE = 2000
#: Instructions per RE2 set for long texts (at least :data:`LONG_SET_FROM` bytes: a full scan chunk,
#: :data:`~.scan.SCAN_CHUNK`, or more), and that length.
LONG_SET_PROGRAM_SIZE = 12000
LONG_SET_FROM = 8192

try:  # pragma: no cover - import-time platform probe
    from re2 import _re2

    def _options(never_capture: bool) -> Any:
        opts = _re2.RE2.Options()
        opts.max_mem = MAX_MEM
        opts.log_errors = False
        opts.never_capture = never_capture
        return opts

    _UNANCHORED = _re2.RE2.Anchor.UNANCHORED
    _OPTS = _options(True)
    # A set only says which patterns occur: capture instructions would only make its program
    # larger (the same options as a lone pattern also let a set reuse its program size).
    _SET_OPTS = _options(True)
    HAVE_RE2 = True
except ImportError:  # pragma: no cover
    _re2 = None
    HAVE_RE2 = False

#: What a matcher scans: UTF-8 bytes with RE2, ``str`` with the ``re`` fallback.
Encoded = bytes | str


class Pattern(Protocol):
    def search(self, text: str) -> tuple[int, int] | None:
        """First match in ``text``, as character offsets."""
        ...

    def search_encoded(self, data: Encoded, pos: int = 0) -> tuple[int, int] | None:
        """First match in encoded text starting at ``pos`` or later, as offsets into ``data``
        (see :func:`char_span`). Text before ``pos`` is context only (``\\b``)."""
        ...


class MultiMatcher(Protocol):
    def match(self, data: Encoded) -> list[int]:
        """Indexes (in insertion order) of the patterns that occur anywhere in ``data``
        (a ``str`` or, cheaper when scanned again, what :func:`encode` made of it)."""
        ...


def encode(text: str) -> Encoded:
    """The form matchers scan. Never raises."""
    if not HAVE_RE2:
        return text
    return text.encode("utf-8", "surrogatepass")


def char_span(text: str, data: Encoded, span: tuple[int, int]) -> tuple[int, int]:
    """Character offsets in ``text`` of ``span``, offsets into ``data = encode(text)``."""
    if isinstance(data, str) or len(data) == len(text):
        return span
    start = len(data[: span[0]].decode("utf-8", "surrogatepass"))
    return start, start + len(data[span[0] : span[1]].decode("utf-8", "surrogatepass"))


class _Re2Pattern:
    __slots__ = ("_match",)

    def __init__(self, pattern: str) -> None:
        assert _re2 is not None
        rx = _re2.RE2(pattern.encode("utf-8"), _OPTS)
        if not rx.ok():
            raise ValueError(rx.error())
        self._match = rx.Match
        if len(_SIZES) < _MAX_SIZES:
            _SIZES[pattern] = rx.ProgramSize()

    def search_encoded(self, data: Encoded, pos: int = 0) -> tuple[int, int] | None:
        span: tuple[int, int] = self._match(_UNANCHORED, data, pos, len(data))[0]
        return None if span[0] < 0 else span

    def search(self, text: str) -> tuple[int, int] | None:
        data = encode(text)
        span = self.search_encoded(data)
        return None if span is None else char_span(text, data, span)


class _RePattern:
    __slots__ = ("_rx",)

    def __init__(self, pattern: str) -> None:
        self._rx = re.compile(pattern)

    def search(self, text: str) -> tuple[int, int] | None:
        m = self._rx.search(text)
        return m.span() if m is not None else None

    def search_encoded(self, data: Encoded, pos: int = 0) -> tuple[int, int] | None:
        assert isinstance(data, str)
        m = self._rx.search(data, pos)
        return m.span() if m is not None else None


#: Program sizes of the patterns compiled alone (rule and configuration data, never request
#: data): every pattern of the packaged rules' sets was, as a joined prefilter, so a set sizes
#: them from here rather than compiling each once more (~13 ms of start-up CPU).
_SIZES: dict[str, int] = {}
_MAX_SIZES = 4096


@lru_cache(maxsize=4096)  # sets share patterns: each is sized once (half of the sets' start-up)
def _program_size(pattern: str) -> int:
    assert _re2 is not None
    known = _SIZES.get(pattern)
    if known is not None:
        return known
    rx = _re2.RE2(pattern.encode("utf-8"), _SET_OPTS)
    if not rx.ok():
        raise ValueError(f"invalid pattern {pattern!r}: {rx.error()}")
    size: int = rx.ProgramSize()
    return size


class _Re2Set:
    """Several ``RE2::Set`` s, each of bounded program size, answering as one.

    One set of every pattern is the fastest scan once warm, but its lazily built
    DFA combines the partial matches of all patterns: on hostile input nearly every
    byte needs a new state, each costing time in proportion to the set's program
    (a 64 KiB body measured at over a second for the packaged rules in one set,
    tens of milliseconds when split). Sets of at most :data:`SET_PROGRAM_SIZE`
    instructions keep that worst case small for a few extra passes. New benign text
    (every request) is the same story on a smaller scale: replaying the set scans of
    3,000 distinct benign corpus requests cold cost 300 us a request in sets of 12,000
    instructions, 120 in sets of 3,000 (warm: 27 and 30), and RSS after 20,000 such
    requests fell by 19 MiB (smaller sets keep fewer, smaller DFA states). 2,000 (the
    default) against 3,000 (``benchmarks/matchers.py``, ``benchmarks/startup.py``): cold
    101 against 111 us a request, warm 35 against 27, the adversarial 64 KiB body 10
    against 8 ms cold, random 64 KiB text 110 against 168 ms cold, and RSS after 20,000
    distinct requests 2.5 MiB lower; the referee's warm mixes moved by under 3% (noise).
    Hyperscan, when installed, answers instead (:mod:`.hsscan`).
    """

    __slots__ = ("_long", "_matches", "_offsets", "_patterns", "_single")

    def __init__(self, patterns: Sequence[str], program_size: int | None = None) -> None:
        assert _re2 is not None
        program_size = program_size or SET_PROGRAM_SIZE
        self._matches: list[Any] = []
        self._offsets: list[int] = []
        current: Any = None
        size = 0
        for i, p in enumerate(patterns):
            raw = p.encode("utf-8")
            cost = _program_size(p)
            if current is None or (size and size + cost > program_size):
                current = self._new_set(current)
                self._offsets.append(i)
                size = 0
            current.Add(raw)
            size += cost
        self._new_set(current)
        # The common small set: RE2's own answer as it is (indexes already in order).
        self._single: Any = self._matches[0] if len(self._matches) == 1 else None
        #: Long texts are scanned by sets of LONG_SET_PROGRAM_SIZE (built on the first long
        #: text: most processes never see one): every set is one more pass over the text, and
        #: on a long text the passes cost more than the states a big set adds (the referee's
        #: adversarial 64 KiB body: 4.7 ms in sets of 2,000 instructions, 2.9 in sets of 12,000;
        #: new short text is the other way round: from 4 KiB, the varied mix lost ~4%, from
        #: 8 KiB nothing measurable).
        self._patterns: Sequence[str] | None = (
            patterns if program_size < LONG_SET_PROGRAM_SIZE and len(self._matches) > 1 else None
        )
        self._long: _Re2Set | None = None

    def _new_set(self, previous: Any) -> Any:
        if previous is not None:
            if not previous.Compile():
                raise ValueError("RE2 could not compile a pattern set (too large for max_mem)")
            self._matches.append(previous.Match)
        return _re2.Set(_UNANCHORED, _SET_OPTS)

    def match(self, data: Encoded) -> list[int]:
        if type(data) is not bytes:
            data = encode(data)  # type: ignore[arg-type]
        if self._single is not None:
            hits: list[int] = self._single(data)
            return hits
        if self._patterns is not None and len(data) >= LONG_SET_FROM:
            long = self._long
            if long is None:  # two threads may both build it: the same answer, one is kept
                long = self._long = _Re2Set(self._patterns, LONG_SET_PROGRAM_SIZE)
            return long.match(data)
        found: list[int] = []
        for match, offset in zip(self._matches, self._offsets, strict=True):
            hits = match(data)
            if hits:
                found.extend(offset + h for h in hits)
        return found


def _scoped(pattern: str) -> str:
    # Python wants global flags first: "(?i)x" becomes "(?i:x)" inside an alternation.
    m = re.match(r"\(\?([aiLmsux]+)\)", pattern)
    return f"(?{m.group(1)}:{pattern[m.end() :]})" if m else f"(?:{pattern})"


class _ReSet:
    """Fallback: one alternation tells whether anything matches, then each pattern is tried."""

    __slots__ = ("_any", "_each")

    def __init__(self, patterns: Sequence[str]) -> None:
        self._each = [re.compile(p) for p in patterns]
        self._any = re.compile("|".join(_scoped(p) for p in patterns)) if patterns else None

    def match(self, data: Encoded) -> list[int]:
        assert isinstance(data, str)
        if self._any is None or not self._any.search(data):
            return []
        return [i for i, rx in enumerate(self._each) if rx.search(data)]


class RegexPiece(NamedTuple):
    """One piece of a pattern as :func:`walk_pattern` reads it."""

    start: int  # offset in the pattern
    text: str  # as written
    #: ``escape`` (``\\x``), ``class`` (``[`` or ``[^`` opening a character class), ``end``
    #: (its ``]``), ``posix`` (``[:alpha:]`` inside a class), ``repeat`` (``{m}``, ``{m,}``,
    #: ``{m,n}``), ``group`` (``(``), ``close`` (``)``), ``char`` (any other character).
    kind: str
    in_class: bool  # inside a character class (a class's own ``[``/``]`` are not)


_REPEAT = re.compile(r"\{\d+(?:,\d*)?\}")


def walk_pattern(pattern: str) -> Iterator[RegexPiece]:
    """The pieces of a regex (RE2 or ``re`` syntax) in order; their texts join to ``pattern``.

    The one walker of the package's pattern rewriters (:func:`loosen`, the XSS detector's
    RE2 forms): escapes, character classes (a leading ``]`` is a member, ``[:alpha:]``
    inside one is a POSIX class), counted repeats and group parentheses are told apart,
    so that a rewriter only says what it changes.
    """
    i, n = 0, len(pattern)
    in_class = False
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            yield RegexPiece(i, pattern[i : i + 2], "escape", in_class)
            i += 2
        elif in_class:
            if c == "[" and pattern.startswith("[:", i) and (close := pattern.find(":]", i + 2)) > 0:
                yield RegexPiece(i, pattern[i : close + 2], "posix", True)
                i = close + 2
                continue
            in_class = c != "]"
            yield RegexPiece(i, c, "char" if in_class else "end", in_class)
            i += 1
        elif c == "[":
            j = i + 2 if pattern.startswith("[^", i) else i + 1
            yield RegexPiece(i, pattern[i:j], "class", False)
            in_class = True
            if j < n and pattern[j] == "]":  # "[]...", "[^]...": the "]" is a member, not the end
                yield RegexPiece(j, "]", "char", True)
                j += 1
            i = j
        else:
            m = _REPEAT.match(pattern, i) if c == "{" else None
            end = m.end() if m is not None else i + 1
            kind = "repeat" if m is not None else "group" if c == "(" else "close" if c == ")" else "char"
            yield RegexPiece(i, pattern[i:end], kind, False)
            i = end


_COUNTED = re.compile(r"\{(\d+),(\d+)\}")


@lru_cache(maxsize=4096)  # a pure function of its arguments; rules share patterns across groups
def loosen(pattern: str, keep: int = 8) -> str:
    """A prefilter that matches wherever ``pattern`` does: upper bounds above ``keep`` dropped.

    ``[^}]{0,256}`` costs RE2 256 program states and, inside a set, 256 live
    partial matches; ``[^}]{0,}`` costs one. Every text the original matches
    somewhere, the loosened pattern matches too (the exact pattern confirms).
    Lower bounds are kept: they are what makes ``.{21,}`` selective.
    """
    if "{" not in pattern:
        return pattern
    out: list[str] = []
    for piece in walk_pattern(pattern):
        m = _COUNTED.fullmatch(piece.text) if piece.kind == "repeat" else None
        if m and int(m.group(2)) > keep and int(m.group(2)) >= int(m.group(1)):
            out.append("{" + m.group(1) + ",}")
        else:
            out.append(piece.text)
    return "".join(out)


@lru_cache(maxsize=4096)
def compile_pattern(pattern: str) -> Pattern:
    """Compile one pattern (RE2 syntax). Raises ``ValueError`` with RE2's complaint.

    Compiled once per process (a compiled pattern is immutable and safe to share between
    threads): the two phases and the prefilter and joined forms name the same pattern
    often, half of the start-up compilations and memory of the packaged rules."""
    if HAVE_RE2:
        try:
            return _Re2Pattern(pattern)
        except ValueError as exc:
            raise ValueError(f"invalid pattern {pattern!r}: {exc}") from None
    try:
        return _RePattern(pattern)
    except re.error as exc:
        raise ValueError(f"invalid pattern {pattern!r}: {exc}") from None


_warned = False


def compile_set(patterns: Sequence[str]) -> MultiMatcher:
    """One matcher for all ``patterns``; :meth:`MultiMatcher.match` reports their indexes.
    Shared like :func:`compile_pattern` (35 distinct of the 57 sets the packaged rules need)."""
    return _compile_set(tuple(patterns))


@lru_cache(maxsize=1024)
def _compile_set(patterns: tuple[str, ...]) -> MultiMatcher:
    if HAVE_RE2:
        return _Re2Set(patterns)
    global _warned
    if not _warned:
        _warned = True
        logger.warning("devsecmw: google-re2 is not installed; falling back to re (not linear-time)")
    try:
        return _ReSet(patterns)
    except re.error as exc:
        raise ValueError(f"invalid pattern set: {exc}") from None


__all__ = [
    "HAVE_RE2",
    "MAX_MEM",
    "SET_PROGRAM_SIZE",
    "Encoded",
    "MultiMatcher",
    "Pattern",
    "RegexPiece",
    "char_span",
    "compile_pattern",
    "compile_set",
    "encode",
    "loosen",
    "walk_pattern",
]

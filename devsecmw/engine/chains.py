"""Transform chains applied per value without redundant work.

Rules name transform chains ("views"); one value may need ten of them. Most
values are plain (``books``, ``en-US,en;q=0.9``) and most transforms cannot
change them. Per value the engine:

1. computes a *trigger mask* once: which characters that some transform reacts
   to occur in the value (``%``, ``&``, ``\\``, upper case, non-ASCII, ...), and the
   *probed* bits: whether ``base64_decode``, which no character decides, changes it
   (its own test, asked only where some chain has it). A value with none of the bits
   its chains react to (most values) takes one search instead (``Planner.for_value``;
   for many values at once, one search over them all: ``Planner.for_values``);
2. reduces every chain by that mask: a transform whose triggers are absent is
   the identity, so it is dropped (``cmd_line`` of a value whose only trigger is
   upper case is plain ``lowercase``). Reductions are cached per mask;
3. computes each distinct reduced chain once, sharing prefixes: ``url_decode``
   then ``lowercase`` reuses the ``url_decode`` result of a sibling chain.

A transform not listed in :data:`TRIGGERS` is always applied (correct, just not
skipped). Once a listed transform has changed a value, the rest of the chain is
applied as written: the mask describes the original value only.
``tests/test_properties.py`` checks that the reduced chains give the same text
as the chains as written, on random and adversarial strings.
"""

from __future__ import annotations

import re
import threading
from bisect import bisect_right
from collections.abc import Iterable
from itertools import accumulate

from . import transforms as tf
from .matcher import HAVE_RE2, compile_set

Chain = tuple[str, ...]

# Trigger bits.
PCT = 1 << 0  # "%"
PLUS = 1 << 1  # "+"
AMP = 1 << 2  # "&"
BSL = 1 << 3  # "\\"
NUL = 1 << 4  # "\x00"
WS = 1 << 5  # ASCII whitespace other than one space between words: \t\n\v\f\r\x1c-\x1f, "  ", edge space
SPACE = 1 << 6  # " "
SLASH = 1 << 7  # "/"
SEMI = 1 << 8  # ";"
QUOTE = 1 << 9  # " ' ^ `
DOLLAR = 1 << 10  # "$"
COMMA = 1 << 11  # ","
PAREN = 1 << 12  # "("
UPPER = 1 << 13  # value.lower() != value
NONASCII = 1 << 14
HEX0X = 1 << 15  # "0x" / "0X"
#: ``base64_decode`` would decode the value. No character tells (any long alphanumeric run
#: may be base64), so this bit is *probed*: the transform itself is asked, on the value.
B64 = 1 << 16
ALL = (1 << 17) - 1
#: Bits probed by running the transform on the original value: they say nothing of a text
#: some transform has changed (see :func:`reduce_chain`).
PROBED = B64

#: Which characters can make each transform change a value. Absent triggers: identity.
TRIGGERS: dict[str, int] = {
    "url_decode": PCT,
    "url_decode_uni": PCT,
    "url_decode_deep": PCT | NONASCII,
    "fold_path_chars": NONASCII | NUL | HEX0X | BSL,
    "plus_to_space": PLUS,
    "html_entity_decode": AMP,
    "js_decode": BSL,
    "nfkc": NONASCII,
    "lowercase": UPPER,
    "remove_nulls": NUL,
    "compress_whitespace": WS | NONASCII,
    "remove_whitespace": WS | SPACE | NONASCII,
    "remove_comments": SLASH,
    "cmd_line": DOLLAR | BSL | QUOTE | COMMA | WS | SLASH | PAREN | UPPER | NONASCII,
    "normalize_path": BSL | SLASH | SEMI,
    "trim": WS | NONASCII,
    # Without it every parameter paid the whole base64 chain of 930116: base64_decode is not
    # decided by characters, so once applied the rest of the chain ran as written (~3 µs).
    "base64_decode": B64,
}
#: Transforms that are exactly ``lowercase`` when upper case is their only trigger present.
LOWER_ONLY = frozenset({"cmd_line"})

_CHAR_BITS = {
    "%": PCT,
    "+": PLUS,
    "&": AMP,
    "\\": BSL,
    "\x00": NUL,
    "/": SLASH,
    ";": SEMI,
    '"': QUOTE,
    "'": QUOTE,
    "^": QUOTE,
    "`": QUOTE,
    "$": DOLLAR,
    ",": COMMA,
    "(": PAREN,
}
for _c in "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f":
    _CHAR_BITS[_c] = WS
# One character class (no alternation): re scans it with its fast charset loop.
_SPECIAL = re.compile(r"[%+&\\\x00/;\"'^`$,(\t\n\x0b\x0c\r\x1c-\x1f]")
_LONG = 256  # above this, one substring search per character beats collecting every match


def _probe(value: str) -> int:
    """The probed bits of ``value`` (:data:`PROBED`): base64_decode's own test, ~0.1 µs for
    a short or spaced value; none for a value shorter than base64_decode reads (most values)."""
    return B64 if len(value) >= tf.B64_MIN and tf.base64_decode(value)[1] else 0


def trigger_mask_py(value: str, probe: bool = True) -> int:
    """The trigger bits of ``value``, in Python (see :func:`trigger_mask`)."""
    mask = _probe(value) if probe else 0
    bits = _CHAR_BITS
    if len(value) <= _LONG:
        found = _SPECIAL.findall(value)
        if found:
            for ch in set(found):
                mask |= bits[ch]
    else:
        for ch, bit in bits.items():
            if not mask & bit and ch in value:
                mask |= bit
    if " " in value:
        mask |= SPACE
        if "  " in value or value[0] == " " or value[-1] == " ":
            mask |= WS
    if "0" in value and ("0x" in value or "0X" in value):
        mask |= HEX0X
    if not value.isascii():
        mask |= NONASCII
    if value.lower() != value:
        mask |= UPPER
    return mask


#: One RE2 set finds every ASCII trigger in one pass over the UTF-8 bytes (two-character
#: triggers too, which ``in`` finds slowly); case and non-ASCII are asked of the ``str``.
_SET_BITS = (PCT, PLUS, AMP, BSL, NUL, WS, SPACE, SLASH, SEMI, QUOTE, DOLLAR, COMMA, PAREN, UPPER, HEX0X)
_SET_PATTERNS = (
    "%", r"\+", "&", r"\\", r"\x00", r"[\t\n\x0b\x0c\r\x1c-\x1f]|  |\A | \z", " ", "/", ";",
    "[\"'^`]", r"\$", ",", r"\(", "[A-Z]", "0[xX]",
)  # fmt: skip
_TRIGGER_SET = compile_set(_SET_PATTERNS) if HAVE_RE2 else None
_SET_FROM = 48  # shorter values: a few ``in`` tests cost less than the call


def trigger_mask(value: str, probe: bool = True) -> int:
    """The trigger bits of ``value``. ``probe=False`` leaves out the :data:`PROBED` bits (they
    cost a transform's test: only for chains that have such a transform)."""
    if _TRIGGER_SET is None or len(value) < _SET_FROM:
        return trigger_mask_py(value, probe)
    mask = _probe(value) if probe else 0
    bits = _SET_BITS
    for i in _TRIGGER_SET.match(value.encode("utf-8", "surrogatepass")):
        mask |= bits[i]
    if not value.isascii():
        mask |= NONASCII
        if not mask & UPPER and value.lower() != value:
            mask |= UPPER
    return mask


def reduce_chain(chain: Chain, mask: int) -> Chain:
    """``chain`` without the transforms that cannot change a value with trigger bits ``mask``."""
    out: list[str] = []
    for name in chain:
        trig = TRIGGERS.get(name)
        if trig is None:
            out.append(name)
            mask = ALL
            continue
        if not mask & trig:
            continue
        if name in LOWER_ONLY and mask & trig == UPPER:
            name = "lowercase"
        if name == "lowercase":
            if not out or out[-1] != "lowercase":
                out.append(name)
            # Character bits but UPPER still hold for the lowered text; probed ones may not.
            mask = (mask & ~UPPER) | PROBED
            continue
        out.append(name)
        mask = ALL
    return tuple(out)


def canonical(chain: Iterable[str]) -> Chain:
    """A chain with immediate repeats of idempotent steps removed (``lowercase, lowercase``)."""
    out: list[str] = []
    for name in chain:
        if out and out[-1] == name and name in _IDEMPOTENT:
            continue
        out.append(name)
    return tuple(out)


_IDEMPOTENT = frozenset(
    {"lowercase", "nfkc", "remove_nulls", "compress_whitespace", "remove_whitespace", "trim"}
)


#: Values :meth:`Planner.for_values` asks one by one before it decides to test the others
#: together (and fewer than twice as many: all one by one).
BATCH_FROM = 16
#: Between values in :meth:`Planner.for_values`: ASCII, and in no trigger (a match never
#: starts on it, nor spans it: each is one character, or ``0`` and the next one).
_JOIN = "\x01"

#: Values at least this long share transform results within a request (hashing a text
#: costs far less than transforming it only for long ones).
SHARE_FROM = 1024


class Reduced:
    """The work for one set of chains on values of one trigger mask."""

    __slots__ = ("computed", "identity", "steps", "views")

    def __init__(self, chains: Iterable[Chain], mask: int) -> None:
        reduced = {c: reduce_chain(c, mask) for c in chains}
        #: (result chain, parent chain, transform) in an order where parents come first.
        nodes: set[Chain] = set()
        for r in reduced.values():
            for i in range(1, len(r) + 1):
                nodes.add(r[:i])
        self.steps: tuple[tuple[Chain, Chain, tf.Transform], ...] = tuple(
            (n, n[:-1], tf.TRANSFORMS[n[-1]]) for n in sorted(nodes, key=len)
        )
        #: chain as written -> chain actually computed.
        self.views: dict[Chain, Chain] = reduced
        #: The distinct computed chains that are some rule's view (what gets scanned).
        self.computed: tuple[Chain, ...] = tuple(dict.fromkeys(reduced.values()))
        #: Every view is the value itself (most values): nothing to apply.
        self.identity = self.computed == ((),)

    def apply(
        self, value: str, shared: dict[tuple[tf.Transform, str], str] | None = None
    ) -> dict[Chain, str]:
        """Every computed chain's text for ``value`` (keyed by reduced chain; ``()`` is ``value``).

        ``shared`` remembers transforms of long texts across the values of a request: a
        form body's raw text and its one field decode to the same text, transformed once.
        """
        memo: dict[Chain, str] = {(): value}
        if shared is None or len(value) < SHARE_FROM:
            for node, parent, fn in self.steps:
                memo[node] = fn(memo[parent])[0]
            return memo
        for node, parent, fn in self.steps:
            text = memo[parent]
            out = shared.get((fn, text))
            if out is None:
                out = shared[(fn, text)] = fn(text)[0]
            memo[node] = out
        return memo


def _maybe_pairs(joined: str, ws: bool, hex0x: bool) -> bool:
    """Whether values joined by :data:`_JOIN` may hold one of the pairs of characters
    :meth:`Planner.for_value` looks for (``find`` runs in C: most texts have none)."""
    if ws and ("  " in joined or joined[:1] == " " or joined[-1:] == " "):
        return True
    if ws and (_JOIN + " " in joined or " " + _JOIN in joined):
        return True
    return hex0x and ("0x" in joined or "0X" in joined)


class Planner:
    """Reductions of a fixed set of chains, cached per trigger mask (bounded, thread-safe)."""

    MAX_CACHED = 1024

    def __init__(self, chains: Iterable[Chain]) -> None:
        self.chains: tuple[Chain, ...] = tuple(dict.fromkeys(chains))
        self._cache: dict[int, Reduced] = {}
        self._lock = threading.Lock()
        #: The trigger bits some transform of these chains reacts to: a value with none of
        #: them has every view equal to itself (a chain reduces to () exactly then).
        relevant = 0
        for chain in self.chains:
            for name in chain:
                relevant |= TRIGGERS.get(name, ALL)
        #: Whether some chain has a transform decided by a probe (header values do not).
        self.probes = bool(relevant & PROBED)
        # The quiet test (see for_value): the characters that set a relevant bit.
        chars = "".join(re.escape(c) for c, bit in _CHAR_BITS.items() if bit & relevant)
        chars += " " if relevant & SPACE else ""
        chars += "A-Z" if relevant & UPPER else ""
        self._loud = re.compile(f"[{chars}]") if chars else None
        self._ws = bool(relevant & WS and not relevant & SPACE)  # spaces: edge or double only
        self._hex = bool(relevant & HEX0X)
        #: Transforms no trigger describes are always applied: no value is quiet then.
        self._opaque = any(name not in TRIGGERS for chain in self.chains for name in chain)
        # The batched quiet test (see for_values): where a value may not be quiet, in values
        # joined by _JOIN: the same test as for_value's, and any character outside ASCII. Each
        # match starts within the value it concerns (an edge space is matched on itself), and
        # runs to the value's end: one match per value at most, however loud. One character
        # class first (re scans it fast); the rarer pairs apart, when present. Linear: a match
        # never fails once started, so there is nothing to backtrack into.
        rest = f"[^{_JOIN}]*"
        self._batch = re.compile(f"[{chars}\x80-\U0010ffff]{rest}")
        pairs = [f"  |\\A | \\Z|(?<={_JOIN}) | (?={_JOIN})"] if self._ws else []
        pairs += ["0[xX]"] if self._hex else []
        self._pairs = re.compile(f"(?:{'|'.join(pairs)}){rest}") if pairs else None

    def for_values(self, values: list[str]) -> tuple[Reduced, dict[str, Reduced]]:
        """:meth:`for_value` of each of ``values``, as the reduction of most of them and those
        of the others (``others.get(value, common)``), the quiet ones told apart in one pass:
        one search over the values joined finds the few that may not be quiet (those alone
        take the test of their own), a quiet one then costs its probe at most (a short one,
        none). For many values at once (a thousand query parameters, a JSON body's fields).

        The first :data:`BATCH_FROM` values are asked one by one: when more than one in four
        of them is not quiet (a JSON body's names and sentences), so are the rest, and the
        search would only add its cost to theirs."""
        common = self.for_mask(0)
        if self._opaque or len(values) < 2 * BATCH_FROM:
            return common, {v: self.for_value(v) for v in values}
        others: dict[str, Reduced] = {}
        for v in values[:BATCH_FROM]:
            red = self.for_value(v)
            if red is not common:
                others[v] = red
        rest = values[BATCH_FROM:]
        if 4 * len(others) > BATCH_FROM:  # a search pays when at least three in four are quiet
            others.update({v: self.for_value(v) for v in rest})
            return common, others
        joined = _JOIN.join(rest)
        where = [m.start() for m in self._batch.finditer(joined)]
        if self._pairs is not None and _maybe_pairs(joined, self._ws, self._hex):
            where += [m.start() for m in self._pairs.finditer(joined)]
        if where:
            # Where each value starts in ``joined``: a match is in the value it starts in.
            starts = list(accumulate([len(v) + 1 for v in rest], initial=0))
            for i in {bisect_right(starts, at) - 1 for at in where}:
                others[rest[i]] = self.for_value(rest[i])
        if self.probes:
            # The probed bits of the quiet values long enough to be base64 (few are).
            for v in [v for v in rest if len(v) >= tf.B64_MIN]:
                if v not in others and tf.base64_decode(v)[1]:
                    others[v] = self.for_mask(B64)
        return common, others

    def for_value(self, value: str) -> Reduced:
        """The reduction for ``value``: :meth:`for_mask` of its trigger bits.

        A *quiet* value, ASCII with no trigger bit these chains react to (``books``,
        ``python cookbook`` when no chain removes spaces, ids, tokens: most values), skips
        the full trigger scan: one search for the relevant characters, then the probes.
        """
        if (
            not self._opaque
            and value.isascii()
            and (self._loud is None or self._loud.search(value) is None)
            and not (self._ws and " " in value and ("  " in value or value[0] == " " or value[-1] == " "))
            and not (self._hex and ("0x" in value or "0X" in value))
        ):
            # Bits outside ``relevant`` change no reduction: the probed ones alone matter.
            return self.for_mask(_probe(value) if self.probes else 0)
        return self.for_mask(trigger_mask(value, self.probes))

    def for_mask(self, mask: int) -> Reduced:
        red = self._cache.get(mask)
        if red is None:
            red = Reduced(self.chains, mask)
            with self._lock:
                if len(self._cache) < self.MAX_CACHED:
                    self._cache[mask] = red
        return red


__all__ = [
    "LOWER_ONLY",
    "TRIGGERS",
    "Chain",
    "Planner",
    "Reduced",
    "canonical",
    "reduce_chain",
    "trigger_mask",
    "trigger_mask_py",
]

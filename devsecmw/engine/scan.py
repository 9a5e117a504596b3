"""Joined scans: a group's distinct texts joined by :data:`~.plan.SEP`, scanned once by the
RE2 set of the group's prefilters, then located text by text for confirmation."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from itertools import accumulate

from .budget import Budget
from .chains import Chain
from .matcher import HAVE_RE2, Encoded, MultiMatcher, Pattern, encode
from .plan import SEP, SEP_STAND_IN, Group

#: Bytes per set scan call on long joined texts, and their overlap (see scan_in_chunks).
SCAN_CHUNK = 8192
SCAN_OVERLAP = 512
_SEP_LEN = len(encode(SEP))
_SEP_ENCODED = encode(SEP)
_STAND_IN_ENCODED = encode(SEP_STAND_IN)


def join_texts(texts: list[str]) -> str:
    """Texts joined for one scan by :func:`~.plan.joined_pattern` s: by :data:`SEP`, a separator
    inside a text replaced by :data:`SEP_STAND_IN` (same UTF-8 length: offsets hold)."""
    joined = SEP.join(texts)
    if joined.count(SEP) >= len(texts):
        joined = SEP.join([t.replace(SEP, SEP_STAND_IN) for t in texts])
    return joined


def join_encoded(parts: list[Encoded]) -> Encoded:
    """:func:`join_texts` of texts already encoded (UTF-8 is self-synchronising: the
    separator's bytes occur in an encoded text only where the text holds the separator)."""
    raw = [p for p in parts if isinstance(p, bytes)]
    sep, stand_in = _SEP_ENCODED, _STAND_IN_ENCODED
    if len(raw) < len(parts) or not isinstance(sep, bytes) or not isinstance(stand_in, bytes):
        return join_texts([p if isinstance(p, str) else p.decode("utf-8", "surrogatepass") for p in parts])
    data = sep.join(raw)
    # ASCII texts cannot hold it (isascii runs at memory speed; a 3-byte search does not).
    # Many short parts: one joined copy is tested faster than each part in a generator.
    all_ascii = all(p.isascii() for p in raw) if len(raw) < 64 else b"".join(raw).isascii()
    if not all_ascii and data.count(sep) >= len(raw):
        data = sep.join([p.replace(sep, stand_in) for p in raw])
    return data


class JoinedText:
    """A group's joined text and where each distinct text sits in it (computed on demand)."""

    __slots__ = ("by_text", "data", "located", "parts", "starts", "texts")

    def __init__(self, texts: dict[str, int]) -> None:
        self.by_text = texts
        self.texts = list(texts)
        #: Each text encoded (kept: confirmation searches the texts one by one), then joined
        #: as bytes: joining the ``str`` s first would widen ASCII text to two bytes a
        #: character for the separator's sake, and encode all of it again.
        self.parts: list[Encoded] = (
            [t.encode("utf-8", "surrogatepass") for t in self.texts] if HAVE_RE2 else list(self.texts)
        )  # what encode() gives, without a call per text
        self.data: Encoded = join_encoded(self.parts)
        self.starts: list[int] = []
        #: prefilter -> located texts (rules often share a prefilter: a tokenizer's gate).
        self.located: dict[str, set[int] | None] = {}

    def locate(self, pattern: Pattern, limit: int) -> set[int] | None:
        """Indexes of the texts ``pattern`` occurs in (``None``: more than ``limit`` searches
        would be needed; checking each value is then cheaper)."""
        if not self.starts:
            self.starts = [0, *accumulate([len(p) + _SEP_LEN for p in self.parts[:-1]])]
        starts = self.starts
        last = len(starts) - 1
        found: set[int] = set()
        pos = 0
        for _ in range(limit):
            span = pattern.search_encoded(self.data, pos)
            if span is None:
                return found
            k = bisect_right(starts, span[0]) - 1
            if k < last and span[0] >= starts[k + 1] - _SEP_LEN:
                k += 1  # the match begins with the separator in front of text k + 1
            found.add(k)
            if k >= last:
                return found
            pos = starts[k + 1] - _SEP_LEN  # keep the separator: it is what "^" matches
        return None


def scan_in_chunks(matcher: MultiMatcher, data: Encoded, budget: Budget | None) -> list[int]:
    """The set scan of a joined text, in overlapping chunks with a budget check between them.

    RE2 builds its set automaton lazily: hostile text can need a new state for nearly
    every byte (a measured 2-3 µs a byte for the packaged rules on random attack
    fragments), and one call cannot be interrupted. Chunks of :data:`SCAN_CHUNK` bytes
    let the budget stop a long scan. They overlap by :data:`SCAN_OVERLAP` bytes: a
    prefilter match longer than that, across a chunk edge, is the price (rules match
    short fragments; confirmation re-checks whole values).
    """
    if budget is None or len(data) <= SCAN_CHUNK:
        return matcher.match(data)
    found: set[int] = set()
    step = SCAN_CHUNK - SCAN_OVERLAP
    for start in range(0, len(data), step):
        if start and budget.expired():
            break
        found.update(matcher.match(data[start : start + SCAN_CHUNK]))
        if start + SCAN_CHUNK >= len(data):
            break
    return sorted(found)


@dataclass(slots=True)
class Seen:
    """What a group's run scanned with all its rules (``texts``) and the rules (phase indexes)
    found there: the later group that reuses the scan (:class:`~.plan.Reuse`) reads it."""

    texts: set[str]
    rules: set[int]


def scan_group(
    group: Group, scan: JoinedText, single: dict[str, Chain | None], prior: Seen | None, budget: Budget | None
) -> tuple[list[int], bool, set[str]]:
    """Scan a group's joined text: the hits (indexes into ``group.scanned``), whether no scan
    was split in chunks, and the texts scanned with all the group's rules.

    Long texts that are the view of one chain alone are scanned by that chain's rules
    only (another rule's prefilter there could never lead to a signal). Texts an earlier
    group scanned with all its rules (``prior``, see :class:`~.plan.Reuse`) are scanned by the
    rules that group lacks; the rules it has are candidates when they occurred there (a
    superset: confirmation is exact). The rest are scanned by all the group's rules.
    """
    assert group.matcher is not None
    reuse = group.after if prior is not None else None
    if not (single and group.by_chain) and reuse is None:
        data = scan.data
        everything = set(scan.texts) if group.reused else set()
        return scan_in_chunks(group.matcher, data, budget), len(data) <= SCAN_CHUNK, everything
    alone: dict[Chain, list[Encoded]] = {}
    covered: list[Encoded] = []
    rest: list[Encoded] = []
    rest_texts: set[str] = set()
    for t, part in zip(scan.texts, scan.parts, strict=True):
        chain = single.get(t)
        if chain is not None and chain in group.by_chain:
            alone.setdefault(chain, []).append(part)
        elif prior is not None and t in prior.texts:
            covered.append(part)
        else:
            rest.append(part)
            rest_texts.add(t)
    hits: set[int] = set()
    whole = True
    if rest:
        data = join_encoded(rest)
        whole = len(data) <= SCAN_CHUNK
        hits.update(scan_in_chunks(group.matcher, data, budget))
    if covered and reuse is not None and prior is not None:
        found = prior.rules
        hits.update(i for i, rule in reuse.shared if rule in found)
        if reuse.matcher is not None:
            data = join_encoded(covered)
            whole = whole and len(data) <= SCAN_CHUNK
            hits.update(reuse.own[i] for i in scan_in_chunks(reuse.matcher, data, budget))
    for chain, parts in alone.items():
        if budget is not None and budget.expired():
            break
        chain_set = group.by_chain[chain]
        data = join_encoded(parts)
        whole = whole and len(data) <= SCAN_CHUNK
        hits.update(chain_set.scanned[i] for i in scan_in_chunks(chain_set.matcher, data, budget))
    return sorted(hits), whole, rest_texts


__all__ = [
    "SCAN_CHUNK",
    "SCAN_OVERLAP",
    "JoinedText",
    "Seen",
    "join_encoded",
    "join_texts",
    "scan_group",
    "scan_in_chunks",
]

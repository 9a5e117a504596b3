"""The rule engine: runs every enabled rule on every value it targets, in linear time.

Per phase (``head``: request line, query, cookies, headers; ``body``: the parsed
body) the work is:

1. **Views.** Each value is transformed by every chain its rules name, through
   :mod:`.chains`: transforms that cannot change the value are skipped, shared
   prefixes are computed once. A plain value costs one character scan.
2. **One scan per group.** The distinct view texts of a group of values are
   joined by a separator, encoded to UTF-8 once, and scanned by the RE2 sets of
   all the group's prefilters (:func:`joined_pattern`: anchors also match at the
   separator, negated classes and ``.`` never do, bounded repeats loosened; a
   superset of the per-value match). Groups: parameters (path, query, cookies;
   body fields and names), headers (which repeat from request to request, see
   below), and one of its own for each structural value (method, target,
   ``headers.raw``, ``body.raw``), so that a parameter rule's ``[\r\n]`` never
   meets the header block and the method rule's ``[^A-Za-z]`` never meets a path.
   A long text that is the view of one transform chain alone (the ``cmd_line``
   view of a 64 KiB body) is scanned by the rules of that chain only, and a raw
   body's text that its fields' scan already covered (a body of one field) only by
   the rules the fields do not have.
3. **Confirmation.** Only rules whose prefilter occurs are evaluated. Each one
   first locates its prefilter in the joined text, which tells which values it
   occurs in; those values alone are then checked exactly, on the rule's own
   view. A prefilter found in some other value or view costs an extra search,
   never a false signal.

Two bounded, thread-safe caches remember what produced no signal in a complete
inspection (nothing is cached once the budget ran out; the rules of one
:class:`Engine` never change, and each engine has its own caches, so an entry
can never outlive the rules that judged it):

- head parts: the request line (method, target and whether the request came from
  elsewhere) and the Cookie header, keyed by a 128-bit digest (no session cookie or token
  in a URL is kept), and the header block (names, and values but credentials). A browser
  repeats them request after request: a repeated part is skipped whole, not even parsed;
- header values and the names of headers, parameters and cookies, keyed by
  ``(key, value)``: the User-Agent of a new header block still skips steps 1-3;
- small bodies (at most :data:`BODY_PART_MAX` bytes), keyed by a digest of their bytes
  and Content-Type: a client that polls or retries the same POST. (Bodies are far less
  repetitive than heads: see the cold figures of ``benchmarks/engine.py``.)

Compiled rule sets are shared by engines built from identical rules and warmed
at construction (RE2 builds its automata lazily: the first requests would pay).

The per-request :class:`Budget` is checked between groups, between rules and
every few kilobytes of transformed text; once past its deadline inspection
stops (the middleware fails open and counts it). Detection ends here: scoring
and blocking decisions live in :mod:`devsecmw.scoring`.
"""

from __future__ import annotations

import re
import threading
import time
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from hashlib import blake2b
from itertools import accumulate
from typing import Generic, TypeVar

from .. import redact
from ..config import Config
from ..request import HttpRequest
from ..signals import Signal
from . import operators as ops
from .chains import Chain, Planner, canonical
from .matcher import (
    HAVE_RE2,
    Encoded,
    MultiMatcher,
    Pattern,
    char_span,
    compile_pattern,
    compile_set,
    encode,
    loosen,
)
from .rules import BODY_KEYS, HEAD_KEYS, Rule, RuleError, check_switched_off, load_all
from .ssrf import REQUEST_ORIGIN
from .targets import Item, Value, body_values, cookie_values, header_values, line_values, offsite
from .transforms import Transform

#: Between values in a joined scan: a noncharacter no rule looks for. Anchors are rewritten
#: to match it (see :func:`joined_pattern`), so "^" still means the start of every value.
SEP = "\uffff"
_SEP_LEN = len(encode(SEP))
#: Keys whose values form a vocabulary that repeats from request to request: header values and
#: the names of headers, parameters and cookies, the method and the path. (Parameter values,
#: bodies and the raw target vary, and are never cached.)
CACHEABLE_KEYS = frozenset({"method", "path", "headers.names", "query.names", "cookies.names", "body.names"})
#: Values cached as clean at most this long (longer ones are rare and not worth keeping).
CACHE_VALUE_MAX = 1024
#: Entries in the clean-header cache (oldest evicted first).
CACHE_SIZE = 4096
#: Characters transformed between two budget checks.
_CHECK_EVERY = 16384
#: Bytes per set scan call on long joined texts, and their overlap (see _scan_in_chunks).
SCAN_CHUNK = 8192
SCAN_OVERLAP = 512
#: Whether ``_views`` takes its shortcut for values every view of which is the value itself
#: (tests turn it off to compare the two ways: the same signals are required).
FAST_PATHS = True
#: Searches a rule may spend locating its prefilter in a joined text before it simply
#: checks every value it targets (keeps a prefilter that spans values linear).
_LOCATE_MAX = 16


@dataclass(slots=True)
class Budget:
    """Per-request inspection budget; the engine stops early once it is spent.

    Two limits: ``cpu`` seconds of this thread's CPU time (``cpu_clock``, from ``cpu_start``)
    and the wall-clock ``deadline`` (``clock``), the safety net. CPU time, so that a loaded
    machine (threads waiting for a core, or for the GIL) does not cut inspection short: the
    work inspection does is what the budget bounds. ``cpu=None``: the deadline alone.

    The CPU clock is a system call (~0.4 µs), the wall clock a memory read: a thread's CPU
    time never runs ahead of the wall time it spends, so while the wall time spent is under
    the CPU budget the CPU clock is not read at all. Clocks are injectable so that tests
    can make time pass without sleeping. ``reason`` says which limit stopped inspection.
    """

    deadline: float
    exhausted: bool = False
    clock: Callable[[], float] = field(default=time.perf_counter)
    cpu: float | None = None
    cpu_start: float = 0.0
    wall_start: float = 0.0
    cpu_clock: Callable[[], float] = field(default=time.thread_time)
    reason: str = ""

    @classmethod
    def start(
        cls,
        cpu: float,
        wall: float,
        clock: Callable[[], float] = time.perf_counter,
        cpu_clock: Callable[[], float] = time.thread_time,
        wall_start: float | None = None,
        cpu_start: float | None = None,
    ) -> Budget:
        """A budget of ``cpu`` CPU seconds and ``wall`` wall seconds from now (or from the
        given start readings: time already spent on the request counts)."""
        now = clock() if wall_start is None else wall_start
        return cls(
            deadline=now + wall,
            clock=clock,
            cpu=cpu,
            cpu_start=cpu_clock() if cpu_start is None else cpu_start,
            wall_start=now,
            cpu_clock=cpu_clock,
        )

    def expired(self) -> bool:
        if self.exhausted:
            return True
        now = self.clock()
        if now > self.deadline:
            self.exhausted, self.reason = True, "wall"
        elif (
            self.cpu is not None
            and now - self.wall_start > self.cpu  # else the CPU time spent is under it too
            and self.cpu_clock() - self.cpu_start > self.cpu
        ):
            self.exhausted, self.reason = True, "cpu"
        return self.exhausted


#: Stands in for :data:`SEP` inside a text (a value may hold it) in joined scans: no rule can
#: tell the two apart (both are noncharacters; rules naming either are rejected).
SEP_STAND_IN = "\ufffe"
_NAMES_SEP = re.compile(r"[\ufffe\uffff]|\\x\{0*fff[ef]\}", re.I)
_NOT_SEP = {"S": r"[^\s" + SEP + "]", "W": r"[^\w" + SEP + "]", "D": r"[^\d" + SEP + "]"}


def joined_pattern(pattern: str) -> str:
    r"""``pattern`` for a scan of values joined by :data:`SEP`: matches wherever it does.

    ``^``/``\A`` and ``$``/``\z`` also match at the separator (which they then
    consume: the set only says *whether*), and long bounded repeats are loosened
    (:func:`~devsecmw.engine.matcher.loosen`). ``.``, ``\S``, ``\W``, ``\D`` and
    negated classes never match the separator, so a match never spans two values:
    ``[^a-z]`` does not occur in ``GET`` because the next value starts with ``/``.
    (``.`` also matches a line break here: a superset, whatever the flags.)
    """
    out: list[str] = []
    i, n = 0, len(pattern)
    in_class = False
    start, end = f"(?:^|{SEP})", f"(?:$|{SEP})"
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            nxt = pattern[i + 1]
            if not in_class and nxt in "Az":
                out.append(start if nxt == "A" else end)
            elif not in_class and nxt in _NOT_SEP:
                out.append(_NOT_SEP[nxt])
            else:
                out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            if c == "[" and pattern.startswith("[:", i):  # [[:alpha:]]: a POSIX class inside
                close = pattern.find(":]", i + 2)
                if close > 0:
                    out.append(pattern[i : close + 2])
                    i = close + 2
                    continue
            in_class = c != "]"
        elif c == "[":
            in_class = True
            if pattern.startswith("[^", i):
                # The separator first; a leading "]" or "-" (literals there) escaped to stay so.
                out.append("[^" + SEP)
                i += 2
                if i < n and pattern[i] in "]-":
                    out.append("\\" + pattern[i])
                    i += 1
                continue
            out.append(c)
            i += 1
            if i < n and pattern[i] == "]":  # "[]...": the "]" is a member, not the end
                out.append("]")
                i += 1
            continue
        elif c == "^":
            out.append(start)
            i += 1
            continue
        elif c == "$":
            out.append(end)
            i += 1
            continue
        elif c == ".":
            out.append(f"[^{SEP}]")
            i += 1
            continue
        out.append(c)
        i += 1
    return loosen("".join(out))


def join_texts(texts: list[str]) -> str:
    """Texts joined for one scan by :func:`joined_pattern` s: by :data:`SEP`, a separator
    inside a text replaced by :data:`SEP_STAND_IN` (same UTF-8 length: offsets hold)."""
    joined = SEP.join(texts)
    if joined.count(SEP) >= len(texts):
        joined = SEP.join([t.replace(SEP, SEP_STAND_IN) for t in texts])
    return joined


_SEP_ENCODED = encode(SEP)
_STAND_IN_ENCODED = encode(SEP_STAND_IN)


def _join_encoded(parts: list[Encoded]) -> Encoded:
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


class _Compiled:
    """One rule as the engine runs it in one phase."""

    __slots__ = ("chain", "direct", "index", "joined", "op", "pre", "pure", "rule", "utf8_only")

    def __init__(self, rule: Rule, index: int) -> None:
        self.rule = rule
        self.index = index  # position in the phase: signals come out in rule order
        self.chain: Chain = canonical(rule.transforms)
        self.op = rule.operator
        prefilter = rule.operator.prefilter
        self.pre: Pattern | None = None
        self.joined: Pattern | None = None
        if prefilter:
            if _NAMES_SEP.search(prefilter):
                raise RuleError(f"{rule.source}: rule {rule.id!r}: prefilter: U+FFFE/U+FFFF are reserved")
            try:
                self.pre = compile_pattern(prefilter)
                self.joined = compile_pattern(joined_pattern(prefilter))
            except ValueError as exc:
                raise RuleError(f"{rule.source}: rule {rule.id!r}: prefilter: {exc}") from None
        # A plain regex operator's prefilter is its pattern: the prefilter match is the evidence.
        self.direct = isinstance(self.op, ops.Regex) and type(self.op).evaluate is ops.Regex.evaluate
        self.utf8_only = isinstance(self.op, ops.InvalidUtf8) and type(self.op).evaluate is (
            ops.InvalidUtf8.evaluate
        )
        # Operators whose answer depends on the text alone (not on the item): results reusable.
        self.pure = self.direct or type(self.op) is ops.Lazy


class _Plan:
    """What one target key needs: its rules, their chains, its scan group."""

    __slots__ = ("cacheable", "group", "planner", "rule_ids")

    def __init__(self, rules: list[_Compiled], group: int, cacheable: bool) -> None:
        self.rule_ids = frozenset(c.index for c in rules)
        self.planner = Planner(c.chain for c in rules)
        self.group = group
        self.cacheable = cacheable


class _Group:
    __slots__ = ("after", "always", "by_chain", "matcher", "reused", "scanned")

    def __init__(self, rules: list[_Compiled]) -> None:
        #: Rules without a prefilter: evaluated on every value they target.
        self.always = [c for c in rules if c.pre is None]
        self.scanned = [c for c in rules if c.pre is not None]
        self.matcher: MultiMatcher | None = None
        if self.scanned:
            self.matcher = compile_set([joined_pattern(c.op.prefilter or "") for c in self.scanned])
        #: Per transform chain, the set of its rules' prefilters and their indexes in
        #: ``scanned``: a long text that is the view of one chain alone (the ``cmd_line`` view
        #: of a 64 KiB body) is scanned by that chain's rules only (see ``Engine._run_group``).
        self.by_chain: dict[Chain, tuple[MultiMatcher, list[int]]] = {}
        chains: dict[Chain, list[int]] = {}
        for i, c in enumerate(self.scanned):
            chains.setdefault(c.chain, []).append(i)
        if len(chains) > 1:
            for chain, idxs in chains.items():
                prefilters = [joined_pattern(self.scanned[i].op.prefilter or "") for i in idxs]
                self.by_chain[chain] = (compile_set(prefilters), idxs)
        #: Set by the phase when an earlier group scans many of the same texts (see _Reuse),
        #: and on that earlier group.
        self.after: _Reuse | None = None
        self.reused = False


class _Reuse:
    """How a group reuses the scan of an earlier one: the texts that group scanned with all
    its rules need here only the rules it does not have (``own``); the rules both have
    (``shared``) are candidates here when they occurred there. (A body's raw text decodes
    to its fields' texts when it is one field: a 64 KiB form name, a text/plain body.)"""

    __slots__ = ("earlier", "matcher", "own", "shared")

    def __init__(self, earlier: int, mine: _Group, theirs: _Group) -> None:
        self.earlier = earlier
        theirs_ids = {c.index for c in theirs.scanned}
        self.own = [i for i, c in enumerate(mine.scanned) if c.index not in theirs_ids]
        self.shared = [(i, c.index) for i, c in enumerate(mine.scanned) if c.index in theirs_ids]
        patterns = [joined_pattern(mine.scanned[i].op.prefilter or "") for i in self.own]
        self.matcher: MultiMatcher | None = compile_set(patterns) if patterns else None


#: Keys whose single value is scanned on its own: structural text that looks nothing like a
#: parameter (``GET``, a multi-line header block, a whole body) would otherwise meet the
#: parameter rules' prefilters in the joined scan (``[\r\n]`` in ``headers.raw``) and the
#: other way round (``[^A-Za-z_-]`` of the method rule in a path).
OWN_GROUP = ("method", "uri", "headers.raw", "body.raw")


def _group_name(key: str) -> str:
    if key in OWN_GROUP:
        return key
    if key.startswith("header:") or key == "headers.names":
        return "headers"
    return "args"


class _Phase:
    __slots__ = ("groups", "header_plan", "plans")

    def __init__(self, rules: Sequence[Rule], phase: str) -> None:
        compiled = [_Compiled(r, i) for i, r in enumerate(r for r in rules if phase in r.phases)]
        keys = set(HEAD_KEYS if phase == "head" else BODY_KEYS) - {"headers"}
        for c in compiled:
            keys.update(k for k in c.rule.targets | c.rule.exclude if k.startswith("header:"))
        names = sorted({_group_name(k) for k in keys} | ({"headers"} if phase == "head" else set()))
        group_of = {k: names.index(_group_name(k)) for k in keys}
        self.plans: dict[str, _Plan | None] = {}
        for key in sorted(keys):
            self.plans[key] = self._plan(compiled, key, group_of[key])
        # Any header no rule names specifically: what the generic "headers" target gives.
        headers = names.index("headers") if "headers" in names else -1
        self.header_plan = self._plan(compiled, "header:\x00", headers) if headers >= 0 else None
        self.groups: list[_Group] = []
        for g in range(len(names)):
            plans = [p for k, p in self.plans.items() if p is not None and group_of[k] == g]
            if g == headers and self.header_plan is not None:
                plans.append(self.header_plan)
            ids = set().union(*(p.rule_ids for p in plans)) if plans else set()
            self.groups.append(_Group([c for c in compiled if c.index in ids]))
        if "args" in names and "body.raw" in names:
            args, raw = names.index("args"), names.index("body.raw")
            assert args < raw  # groups run in order: the fields' scan comes first
            if self.groups[args].matcher is not None and self.groups[raw].matcher is not None:
                self.groups[raw].after = _Reuse(args, self.groups[raw], self.groups[args])
                self.groups[args].reused = True

    @staticmethod
    def _plan(compiled: list[_Compiled], key: str, group: int) -> _Plan | None:
        rules = [c for c in compiled if c.rule.applies_to(key)]
        cacheable = key.startswith("header:") or key in CACHEABLE_KEYS
        return _Plan(rules, group, cacheable) if rules else None


K = TypeVar("K", bound=Hashable)


class _CleanCache(Generic[K]):
    """Bounded set of keys known to produce no signal; oldest evicted first.

    Reads are lock-free (a dict lookup is atomic); additions take the lock.
    """

    __slots__ = ("_d", "_lock", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        # Ordered: evicting the oldest is O(1). (A plain dict's first key, after many
        # deletions at its front, is found by walking over the deleted slots: 5 µs an add.)
        self._d: OrderedDict[K, None] = OrderedDict()
        self._lock = threading.Lock()

    def __contains__(self, item: object) -> bool:
        return item in self._d

    def add_all(self, items: list[K]) -> None:
        with self._lock:
            d = self._d
            for item in items:
                if len(d) >= self.size:
                    d.popitem(last=False)
                d[item] = None

    def clear(self) -> None:
        with self._lock:
            self._d.clear()

    def __len__(self) -> int:
        return len(self._d)


_MISSING: _Plan = object.__new__(_Plan)  # "no plan for this key" sentinel (None: no rule)

# One distinct value being inspected: (key, locations, value, utf8, plan, views,
# texts-by-reduced-chain). A value found at several locations (the same note in every item
# of a JSON array) is one entry: inspected once, reported at each location.
_Entry = tuple[str, list[str], str, bool, _Plan, dict[Chain, Chain], dict[Chain, str]]


class _Scan:
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
        self.data: Encoded = _join_encoded(self.parts)
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


def _scan_in_chunks(matcher: MultiMatcher, data: Encoded, budget: Budget | None) -> list[int]:
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


_shared: dict[tuple[object, ...], dict[str, _Phase]] = {}
_shared_lock = threading.Lock()


def _fingerprint(rules: Sequence[Rule]) -> tuple[object, ...]:
    return tuple(
        (
            r.id,
            r.source,
            r.type,
            r.transforms,
            r.targets,
            r.exclude,
            r.operator_name,
            repr(r.value),
            r.severity,
            r.name,
            r.category,
            r.ruleset,
        )
        for r in rules
    )


def _warm_up(engine: Engine, rules: Sequence[Rule]) -> None:
    """Scan the rules' own examples once, so RE2's lazily built automata exist before traffic."""
    sample = [x for r in rules for x in (*r.examples_match, *r.examples_nomatch)]
    sample += [
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0",
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        '{"id": 12, "name": "Blue cotton shirt", "tags": ["a", "b"], "note": "ring twice, please"}',
    ]
    text = SEP.join(sample)
    for phase in engine._phases.values():
        for group in phase.groups:
            if group.matcher is not None:
                group.matcher.match(encode(text))
                group.matcher.match(encode(text.lower()))


#: Where each head key's values come from: the request line (``0``), the Cookie header
#: (``1``) or the other headers (anything else).
_PART_OF = {"method": 0, "uri": 0, "path": 0, "query": 0, "query.names": 0, "query.names.offsite": 0}
_PART_OF |= {"cookies": 1, "cookies.names": 1}
#: Headers whose values are credentials: left out of the header-block key (not kept in
#: memory, and a rotating token would make every block new). Their values are never inspected.
_OPAQUE = frozenset({"cookie", "authorization", "proxy-authorization"})
#: Host header prefixes of an application reached on a loopback name (see ssrf.is_own).
_LOOPBACK_HOSTS = ("localhost", "127.", "[::1]", "0.0.0.0", "ip6-localhost")
#: Head parts cached as clean, and the size above which a header block is not worth keeping.
PART_CACHE_SIZE = 1024
#: Values at least this long have the views of a single chain scanned by that chain's rules only.
SPLIT_FROM = 1024
PART_MAX = 8192
#: Bodies cached as clean, and the largest one cached (bytes): 1 MiB at most in all.
BODY_CACHE_SIZE = 256
BODY_PART_MAX = 4096


def _digest(*texts: str, body: bytes | bytearray = b"") -> bytes:
    """A 128-bit digest of ``texts`` (and ``body``), what the caches of request lines, Cookie
    headers and bodies keep: no credential, session cookie, token in a URL or password in a
    form stays in memory, and a collision (which would skip an inspection) cannot be made."""
    joined = "\x00".join(texts)
    if joined.count("\x00") == len(texts) - 1:
        h = blake2b(joined.encode("utf-8", "surrogatepass"), digest_size=16)
    else:  # a text holds the separator: lengths spelled out, in a digest of its own kind
        spelled = "\x00".join([f"{len(t)}:{t}" for t in texts])
        h = blake2b(spelled.encode("utf-8", "surrogatepass"), digest_size=16, person=b"lengths")
    if body:
        h.update(b"\x00body:%d:" % len(body))
        h.update(body)
    return h.digest()


def _check_switched_off(config: Config) -> None:
    """Disabling one rule never disables a category (see :func:`rules.check_switched_off`)."""
    if config.disabled_rules:
        rules = load_all(config.rule_files)
        check_switched_off(rules, config.disabled_rules, config.paranoia_level, config.attack_threshold)


def _by_index(c: _Compiled) -> int:
    return c.index


class Engine:
    """The default :class:`~devsecmw.engine.Detector`: packaged rules plus the user's."""

    def __init__(self, config: Config | None = None, rules: Sequence[Rule] | None = None) -> None:
        self.config = config or Config()
        if rules is None:
            rules = load_all(self.config.rule_files, self.config.disabled_rules)
            _check_switched_off(self.config)
        self.rules = [r for r in rules if r.paranoia <= self.config.paranoia_level]
        key = _fingerprint(self.rules)
        phases = _shared.get(key)
        if phases is None:
            phases = {"head": _Phase(self.rules, "head"), "body": _Phase(self.rules, "body")}
            with _shared_lock:
                if len(_shared) >= 8:  # distinct rule sets in one process: a handful at most
                    _shared.pop(next(iter(_shared)))
                _shared[key] = phases
            self._phases = phases
            _warm_up(self, self.rules)
        self._phases = phases
        self._extra_secret_names = self.config.redact_names
        self.clean_values: _CleanCache[tuple[str, str]] = _CleanCache(CACHE_SIZE)
        #: Head parts (request line, Cookie header, header block) that produced no signal.
        self.clean_parts: _CleanCache[Hashable] = _CleanCache(PART_CACHE_SIZE)
        #: Small bodies that produced no signal (a client polling or retrying the same POST).
        self.clean_bodies: _CleanCache[bytes] = _CleanCache(BODY_CACHE_SIZE)

    def inspect(self, request: HttpRequest, phase: str, budget: Budget | None = None) -> list[Signal]:
        # Whose URLs are "own" (see ssrf.is_own), for this call only; the Host is part of every
        # cache key of the head and body for that reason.
        token = REQUEST_ORIGIN.set(request)
        try:
            return self._inspect(request, phase, budget)
        finally:
            REQUEST_ORIGIN.reset(token)

    def _inspect(self, request: HttpRequest, phase: str, budget: Budget | None) -> list[Signal]:
        ph = self._phases[phase]
        if phase == "head":
            return self._inspect_head(ph, request, budget)
        if not request.body:
            return []
        key: bytes | None = None
        if len(request.body) <= BODY_PART_MAX:
            # What the body's values are made of: its bytes, its type, and (for the names of
            # form fields and JSON keys) whether the request came from elsewhere.
            away = "1" if offsite(request) else "0"
            key = _digest(request.content_type, away, request.header("host") or "", body=request.body)
            if key in self.clean_bodies._d:
                return []
        values = body_values(request)
        if not values:
            return []
        signals, flagged, complete = self._inspect_values(ph, values, budget)
        if key is not None and complete and not flagged:
            self.clean_bodies.add_all([key])
        return signals

    def _inspect_head(self, ph: _Phase, request: HttpRequest, budget: Budget | None) -> list[Signal]:
        """The head by parts: a part seen before with no signal (a browser sends the same
        Cookie header and header block request after request, and often the same URL) is
        skipped whole, without even being parsed."""
        parts = self.clean_parts._d  # read lock-free: a dict lookup is atomic
        method, qs = request.method, request.query_string
        away = bool(qs) and offsite(request)
        # What is inspected, within the caps: a longer head is keyed (and judged) by that part.
        line = _digest(
            "line",
            method,
            request.inspected_target,
            qs[: request.limits.query],
            "1" if away else "0",
            request.header("host") or "",
        )
        cookies: list[str] = []
        block: list[object] = ["headers", method, request.http_version]
        size = 0
        for k, v in request.inspected_headers:
            if k in _OPAQUE:
                if k == "cookie":
                    cookies.append(v)
                block.append(k)
            else:
                block.append((k, v))
                size += len(v)
        blockkey = tuple(block)
        cookiekey = None
        if cookies:
            host = request.header("host") or ""
            # Same-site matters to a cookie's URLs only for an app reached on a loopback name.
            loop = host.startswith(_LOOPBACK_HOSTS) or ".localhost" in host
            same = "1" if loop and offsite(request) else "0"
            cookiekey = _digest("cookie", host, same, *cookies)
        todo: list[tuple[int, Hashable, int]] = []  # (part, key, characters it holds)
        values: list[Value] = []
        if line not in parts:
            todo.append((0, line, 0))  # digests: any size
            values += line_values(request, away)
        if cookiekey is not None and cookiekey not in parts:
            todo.append((1, cookiekey, 0))
            values += cookie_values(request)
        if blockkey not in parts:
            todo.append((2, blockkey, size))
            values += header_values(request)
        if not values:
            return []
        signals, flagged, complete = self._inspect_values(ph, values, budget)
        if complete:
            dirty = {_PART_OF.get(k, 2) for k in flagged}
            clean = [key for part, key, chars in todo if part not in dirty and chars <= PART_MAX]
            if clean:
                self.clean_parts.add_all(clean)
        return signals

    def _inspect_values(
        self, ph: _Phase, values: list[Value], budget: Budget | None
    ) -> tuple[list[Signal], set[str], bool]:
        """Signals, the keys of the values that produced one, and whether inspection completed
        in one piece (not stopped by the budget, no scan split in chunks: a part judged clean
        then is judged clean alone, whatever else came with it)."""
        entries, texts, by_plan, single = self._views(ph, values, budget)
        signals: list[Signal] = []
        flagged_keys: set[str] = set()
        complete = True
        #: Per group run: the texts it scanned with all its rules, and the rules found there.
        scanned: dict[int, tuple[set[str], set[int]]] = {}
        for g, group in enumerate(ph.groups):
            ents = entries[g]
            if not ents:
                continue
            if budget is not None and budget.expired():
                break
            prior = scanned.get(group.after.earlier) if group.after is not None else None
            flagged, whole, scanned[g] = self._run_group(
                group, ents, texts[g], by_plan[g], single[g], prior, signals, budget
            )
            complete = complete and whole
            flagged_keys.update(ents[i][0] for i in flagged)
            if budget is None or not budget.exhausted:
                clean: list[tuple[str, str]] = [
                    (e[0], e[2])
                    for i, e in enumerate(ents)
                    if e[4].cacheable and e[3] and i not in flagged and len(e[2]) <= CACHE_VALUE_MAX
                ]
                if clean:
                    self.clean_values.add_all(clean)
        return signals, flagged_keys, complete and (budget is None or not budget.exhausted)

    def _views(
        self, ph: _Phase, values: list[Value], budget: Budget | None
    ) -> tuple[
        list[list[_Entry]], list[dict[str, int]], list[dict[_Plan, list[int]]], list[dict[str, Chain | None]]
    ]:
        plans = ph.plans
        header_plan = ph.header_plan
        cache = self.clean_values._d  # read lock-free: a dict lookup is atomic
        ngroups = len(ph.groups)
        entries: list[list[_Entry]] = [[] for _ in range(ngroups)]
        texts: list[dict[str, int]] = [{} for _ in range(ngroups)]
        #: Per group, the entries of each plan (so a rule finds the values it targets at once).
        by_plan: list[dict[_Plan, list[int]]] = [{} for _ in range(ngroups)]
        # Values repeat within a request (JSON arrays of similar objects, their keys): one
        # entry per (key, value, utf8), one computation per (plan, value).
        seen_values: dict[tuple[str, str, bool], list[str]] = {}
        #: Per plan met: its entries (what ``by_plan`` holds) and the views it computed, by value.
        state: dict[_Plan, tuple[list[int], dict[str, tuple[dict[Chain, Chain], dict[Chain, str]]]]] = {}
        shared: dict[tuple[Transform, str], str] = {}
        #: Per group, texts of long values -> the one chain they are a view of (None: several,
        #: or also a short value's text). Only long texts are worth a scan of their own.
        single: list[dict[str, Chain | None]] = [{} for _ in range(ngroups)]
        work = 0
        fast = FAST_PATHS
        for key, loc, value, utf8 in values:
            plan = plans.get(key, _MISSING)
            if plan is _MISSING:
                if not key.startswith("header:"):
                    continue
                plan = header_plan
            if plan is None:
                continue
            if plan.cacheable and utf8 and (key, value) in cache:
                continue
            vkey = (key, value, utf8)
            locs = seen_values.get(vkey)
            if locs is not None:
                locs.append(loc)
                continue
            locs = seen_values[vkey] = [loc]
            g = plan.group
            ents = entries[g]
            st = state.get(plan)
            if st is None:
                st = state[plan] = ([], {})
                by_plan[g][plan] = st[0]
            st[0].append(len(ents))
            known = st[1].get(value)
            if known is not None:
                ents.append((key, locs, value, utf8, plan, known[0], known[1]))
                continue
            red = plan.planner.for_value(value)
            seen = texts[g]
            one = single[g]
            if fast and red.identity and len(value) < SPLIT_FROM:
                # Every view is the value itself (most values): nothing to apply, one text.
                # (Not memoized: for the same value under another key, for_value is as cheap.)
                memo: dict[Chain, str] = {(): value}
                ents.append((key, locs, value, utf8, plan, red.views, memo))
                if value not in seen:
                    seen[value] = len(seen)
                elif one and value in one:
                    one[value] = None
            else:
                memo = red.apply(value, shared)
                st[1][value] = (red.views, memo)
                ents.append((key, locs, value, utf8, plan, red.views, memo))
                if len(value) >= SPLIT_FROM:
                    for chain, rc in red.views.items():
                        t = memo[rc]
                        prev = one.get(t, _MISSING)
                        if prev is _MISSING:
                            if t not in seen:  # else a short value's text: scanned whole
                                one[t] = chain
                        elif prev is not None and prev != chain:
                            one[t] = None
                    for rc in red.computed:
                        t = memo[rc]
                        if t not in seen:
                            seen[t] = len(seen)
                else:
                    for rc in red.computed:
                        t = memo[rc]
                        if t not in seen:
                            seen[t] = len(seen)
                        elif one and t in one:
                            one[t] = None
            if budget is not None:
                work += len(value)
                if work > _CHECK_EVERY:
                    work = 0
                    if budget.expired():
                        break
        return entries, texts, by_plan, single

    def _run_group(
        self,
        group: _Group,
        ents: list[_Entry],
        texts: dict[str, int],
        by_plan: dict[_Plan, list[int]],
        single: dict[str, Chain | None],
        prior: tuple[set[str], set[int]] | None,
        out: list[Signal],
        budget: Budget | None,
    ) -> tuple[set[int], bool, tuple[set[str], set[int]]]:
        """Evaluate the group's candidate rules: the indexes of entries that fired, whether
        the group's text was scanned in one piece, and what :meth:`_scan` saw (for a later
        group that reuses it)."""
        candidates = group.always
        scan: _Scan | None = None
        whole = True
        seen: tuple[set[str], set[int]] = (set(), set())
        if group.matcher is not None:
            scan = _Scan(texts)
            hits, whole, whole_texts = self._scan(group, scan, single, prior, budget)
            if hits:
                scanned = group.scanned
                candidates = sorted([*candidates, *(scanned[i] for i in hits)], key=_by_index)
                seen = (whole_texts, {scanned[i].index for i in hits})
            else:
                seen = (whole_texts, set())
        flagged: set[int] = set()
        if not candidates:
            return flagged, whole, seen
        # Each text's bytes: from the scan (every view of the group's values is one of its texts).
        parts, index = (scan.parts, scan.by_text) if scan is not None else ([], {})
        encoded: dict[str, Encoded] = {}
        targeted = list(by_plan.items())
        for c in candidates:
            if budget is not None and budget.expired():
                break
            idx = c.index
            # The entries of the plans that hold this rule, in value order.
            todo: list[int] = []
            merged = False
            for p, ns in targeted:
                if idx in p.rule_ids:
                    merged = bool(todo)
                    todo = todo + ns if merged else ns
            if not todo:
                continue
            if merged:
                todo.sort()
            if c.utf8_only:
                self._check_utf8(c, ents, todo, out, flagged)
                continue
            if c.joined is not None and scan is not None and len(todo) > 2:
                # Searching the joined text once per value it occurs in beats one search per value.
                prefilter = c.op.prefilter or ""
                if prefilter in scan.located:
                    where = scan.located[prefilter]
                else:
                    where = scan.located[prefilter] = scan.locate(c.joined, min(len(todo), _LOCATE_MAX))
                if where is not None:
                    # Only the values whose own view (for this rule's chain) holds a match.
                    by_text, chain = scan.by_text, c.chain
                    todo = [n for n in todo if by_text.get(ents[n][6][ents[n][5][chain]]) in where]
            chain = c.chain
            # The same text in several values (or views): one evaluation. Only for operators
            # whose decision depends on the text alone.
            results: dict[str, tuple[int, int] | None] | None = {} if c.pure else None
            for n in todo:
                key, locs, value, utf8, _plan, views, memo = ents[n]
                text = memo[views[chain]]
                if results is not None and text in results:
                    span = results[text]
                    if span is not None:
                        flagged.add(n)
                        out.extend(self._signal(c.rule, loc, text, span) for loc in locs if c.rule.wants(loc))
                    continue
                if c.pre is not None:
                    at = index.get(text)
                    if at is not None:
                        data = parts[at]
                    elif text in encoded:
                        data = encoded[text]
                    else:
                        data = encoded[text] = encode(text)
                    span = c.pre.search_encoded(data)
                    if span is None:
                        if results is not None:
                            results[text] = None
                        continue
                    if c.direct:
                        span = char_span(text, data, span)
                    else:
                        span = c.op.evaluate(text, Item(key, locs[0], value, utf8))
                else:
                    span = c.op.evaluate(text, Item(key, locs[0], value, utf8))
                if results is not None:
                    results[text] = span
                if span is None:
                    continue
                flagged.add(n)
                out.extend(self._signal(c.rule, loc, text, span) for loc in locs if c.rule.wants(loc))
        return flagged, whole, seen

    @staticmethod
    def _scan(
        group: _Group,
        scan: _Scan,
        single: dict[str, Chain | None],
        prior: tuple[set[str], set[int]] | None,
        budget: Budget | None,
    ) -> tuple[list[int], bool, set[str]]:
        """The group's hits (indexes into ``group.scanned``), whether no scan was split in
        chunks, and the texts scanned with all the group's rules.

        Long texts that are the view of one chain alone are scanned by that chain's rules
        only (another rule's prefilter there could never lead to a signal). Texts an earlier
        group scanned with all its rules (``prior``, see :class:`_Reuse`) are scanned by the
        rules that group lacks; the rules it has are candidates when they occurred there (a
        superset: confirmation is exact). The rest are scanned by all the group's rules.
        """
        assert group.matcher is not None
        reuse = group.after if prior is not None else None
        if not (single and group.by_chain) and reuse is None:
            data = scan.data
            everything = set(scan.texts) if group.reused else set()
            return _scan_in_chunks(group.matcher, data, budget), len(data) <= SCAN_CHUNK, everything
        alone: dict[Chain, list[Encoded]] = {}
        covered: list[Encoded] = []
        rest: list[Encoded] = []
        rest_texts: set[str] = set()
        for t, part in zip(scan.texts, scan.parts, strict=True):
            chain = single.get(t)
            if chain is not None and chain in group.by_chain:
                alone.setdefault(chain, []).append(part)
            elif prior is not None and t in prior[0]:
                covered.append(part)
            else:
                rest.append(part)
                rest_texts.add(t)
        hits: set[int] = set()
        whole = True
        if rest:
            data = _join_encoded(rest)
            whole = len(data) <= SCAN_CHUNK
            hits.update(_scan_in_chunks(group.matcher, data, budget))
        if covered and reuse is not None and prior is not None:
            found = prior[1]
            hits.update(i for i, rule in reuse.shared if rule in found)
            if reuse.matcher is not None:
                data = _join_encoded(covered)
                whole = whole and len(data) <= SCAN_CHUNK
                hits.update(reuse.own[i] for i in _scan_in_chunks(reuse.matcher, data, budget))
        for chain, parts in alone.items():
            if budget is not None and budget.expired():
                break
            matcher, idxs = group.by_chain[chain]
            data = _join_encoded(parts)
            whole = whole and len(data) <= SCAN_CHUNK
            hits.update(idxs[i] for i in _scan_in_chunks(matcher, data, budget))
        return sorted(hits), whole, rest_texts

    def _check_utf8(
        self, c: _Compiled, ents: list[_Entry], todo: list[int], out: list[Signal], flagged: set[int]
    ) -> None:
        # Nearly every value is valid UTF-8: find the others first (one test per entry).
        for n in [n for n in todo if not ents[n][3]]:
            _key, locs, _value, _utf8, _plan, views, memo = ents[n]
            text = memo[views[c.chain]]
            flagged.add(n)
            out.extend(
                self._signal(c.rule, loc, text, (0, min(len(text), 64))) for loc in locs if c.rule.wants(loc)
            )

    def _signal(self, rule: Rule, location: str, text: str, span: tuple[int, int]) -> Signal:
        return Signal(
            type=rule.type,
            location=location,
            evidence=redact.evidence(location, text, span[0], span[1], self._extra_secret_names),
            severity=rule.severity,
            rule_id=rule.id,
            rule_name=rule.name,
            category=rule.category,
            ruleset=rule.ruleset,
        )


__all__ = [
    "BODY_PART_MAX",
    "CACHE_SIZE",
    "CACHE_VALUE_MAX",
    "SEP",
    "Budget",
    "Engine",
    "join_texts",
    "joined_pattern",
]

"""The rule engine: runs every enabled rule on every value it targets, in linear time.

Per phase (``head``: request line, query, cookies, headers; ``body``: the parsed
body) the work is:

1. **Views.** Each value is transformed by every chain its rules name, through
   :mod:`.chains`: transforms that cannot change the value are skipped, shared
   prefixes are computed once. A plain value costs one character scan.
2. **One scan per group.** The distinct view texts of a group of values are
   joined by a separator, encoded to UTF-8 once, and scanned by the RE2 sets of
   all the group's prefilters (:func:`joined_pattern`: anchors also match at the
   separator, bounded repeats loosened; a superset of the per-value match). Head
   values form two groups: headers (which repeat from request to request, see
   below) and the rest.
3. **Confirmation.** Only rules whose prefilter occurs are evaluated. Each one
   first locates its prefilter in the joined text, which tells which values it
   occurs in; those values alone are then checked exactly, on the rule's own
   view. A prefilter found in some other value or view costs an extra search,
   never a false signal.

Header values and names that produced no signal are remembered in a bounded,
thread-safe cache keyed by ``(header, value)``: the User-Agent and Accept of the
next request skip steps 1-3. Only a complete, signal-free inspection is cached,
and the rules of one :class:`Engine` never change, so a cached value would
produce nothing anyway.

Compiled rule sets are shared by engines built from identical rules and warmed
at construction (RE2 builds its automata lazily: the first requests would pay).

The per-request :class:`Budget` is checked between groups, between rules and
every few kilobytes of transformed text; once past its deadline inspection
stops (the middleware fails open and counts it). Detection ends here: scoring
and blocking decisions live in :mod:`devsecmw.scoring`.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import accumulate

from .. import redact
from ..config import Config
from ..request import HttpRequest
from ..signals import Signal
from . import operators as ops
from .chains import Chain, Planner, canonical, trigger_mask
from .matcher import (
    Encoded,
    MultiMatcher,
    Pattern,
    char_span,
    compile_pattern,
    compile_set,
    encode,
    loosen,
)
from .rules import BODY_KEYS, HEAD_KEYS, Rule, RuleError, load_all
from .targets import Item, Value, body_values, head_values

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
#: Searches a rule may spend locating its prefilter in a joined text before it simply
#: checks every value it targets (keeps a prefilter that spans values linear).
_LOCATE_MAX = 16


@dataclass(slots=True)
class Budget:
    """Per-request inspection time budget; the engine stops early once past ``deadline``.

    ``clock`` is injectable so that tests can make time pass without sleeping.
    """

    deadline: float
    exhausted: bool = False
    clock: Callable[[], float] = field(default=time.perf_counter)

    def expired(self) -> bool:
        if not self.exhausted and self.clock() > self.deadline:
            self.exhausted = True
        return self.exhausted


def joined_pattern(pattern: str) -> str:
    r"""``pattern`` for a scan of values joined by :data:`SEP`: matches wherever it does.

    ``^``/``\A`` and ``$``/``\z`` also match at the separator (which they then
    consume: the set only says *whether*), and long bounded repeats are loosened
    (:func:`~devsecmw.engine.matcher.loosen`).
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
            else:
                out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
            out.append(c)
            i += 1
            for lead in "^]":
                if i < n and pattern[i] == lead:
                    out.append(lead)
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
        out.append(c)
        i += 1
    return loosen("".join(out))


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
    __slots__ = ("always", "matcher", "scanned")

    def __init__(self, rules: list[_Compiled]) -> None:
        #: Rules without a prefilter: evaluated on every value they target.
        self.always = [c for c in rules if c.pre is None]
        self.scanned = [c for c in rules if c.pre is not None]
        self.matcher: MultiMatcher | None = None
        if self.scanned:
            self.matcher = compile_set([joined_pattern(c.op.prefilter or "") for c in self.scanned])


class _Phase:
    __slots__ = ("groups", "header_plan", "plans")

    def __init__(self, rules: Sequence[Rule], phase: str) -> None:
        compiled = [_Compiled(r, i) for i, r in enumerate(r for r in rules if phase in r.phases)]
        keys = set(HEAD_KEYS if phase == "head" else BODY_KEYS) - {"headers"}
        for c in compiled:
            keys.update(k for k in c.rule.targets | c.rule.exclude if k.startswith("header:"))
        # Header values and names go to their own group (cacheable across requests).
        group_of = {k: (1 if k.startswith("header:") or k == "headers.names" else 0) for k in keys}
        self.plans: dict[str, _Plan | None] = {}
        for key in sorted(keys):
            self.plans[key] = self._plan(compiled, key, group_of[key])
        # Any header no rule names specifically: what the generic "headers" target gives.
        self.header_plan = self._plan(compiled, "header:\x00", 1)
        self.groups: list[_Group] = []
        for g in (0, 1):
            plans = [p for k, p in self.plans.items() if p is not None and group_of[k] == g]
            if g == 1 and self.header_plan is not None:
                plans.append(self.header_plan)
            ids = set().union(*(p.rule_ids for p in plans)) if plans else set()
            self.groups.append(_Group([c for c in compiled if c.index in ids]))

    @staticmethod
    def _plan(compiled: list[_Compiled], key: str, group: int) -> _Plan | None:
        rules = [c for c in compiled if c.rule.applies_to(key)]
        cacheable = key.startswith("header:") or key in CACHEABLE_KEYS
        return _Plan(rules, group, cacheable) if rules else None


class _CleanCache:
    """Bounded set of ``(key, value)`` known to produce no signal; oldest evicted first."""

    __slots__ = ("_d", "_lock", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self._d: dict[tuple[str, str], None] = {}
        self._lock = threading.Lock()

    def __contains__(self, item: tuple[str, str]) -> bool:
        return item in self._d

    def add_all(self, items: list[tuple[str, str]]) -> None:
        with self._lock:
            d = self._d
            for item in items:
                if len(d) >= self.size:
                    del d[next(iter(d))]
                d[item] = None

    def clear(self) -> None:
        with self._lock:
            self._d.clear()

    def __len__(self) -> int:
        return len(self._d)


_MISSING: _Plan = object.__new__(_Plan)  # "no plan for this key" sentinel (None: no rule)

# One value being inspected: (key, location, value, utf8, plan, views, texts-by-reduced-chain)
_Entry = tuple[str, str, str, bool, _Plan, dict[Chain, Chain], dict[Chain, str]]


class _Scan:
    """A group's joined text and where each distinct text sits in it (computed on demand)."""

    __slots__ = ("by_text", "data", "located", "starts", "texts")

    def __init__(self, texts: dict[str, int]) -> None:
        self.by_text = texts
        self.texts = list(texts)
        self.data: Encoded = encode(SEP.join(self.texts))
        self.starts: list[int] = []
        #: prefilter -> located texts (rules often share a prefilter: a tokenizer's gate).
        self.located: dict[str, set[int] | None] = {}

    def locate(self, pattern: Pattern, limit: int) -> set[int] | None:
        """Indexes of the texts ``pattern`` occurs in (``None``: more than ``limit`` searches
        would be needed; checking each value is then cheaper)."""
        if not self.starts:
            texts = self.texts
            if isinstance(self.data, str) or all(t.isascii() for t in texts):
                lengths = [len(t) + _SEP_LEN for t in texts]
            else:
                lengths = [len(encode(t)) + _SEP_LEN for t in texts]
            self.starts = [0, *accumulate(lengths[:-1])]
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


class Engine:
    """The default :class:`~devsecmw.engine.Detector`: packaged rules plus the user's."""

    def __init__(self, config: Config | None = None, rules: Sequence[Rule] | None = None) -> None:
        self.config = config or Config()
        if rules is None:
            rules = load_all(self.config.rule_files, self.config.disabled_rules)
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
        self.clean_values = _CleanCache(CACHE_SIZE)

    def inspect(self, request: HttpRequest, phase: str, budget: Budget | None = None) -> list[Signal]:
        ph = self._phases[phase]
        values = head_values(request) if phase == "head" else body_values(request)
        if not values:
            return []
        entries, texts = self._views(ph, values, budget)
        signals: list[Signal] = []
        for g, group in enumerate(ph.groups):
            ents = entries[g]
            if not ents:
                continue
            if budget is not None and budget.expired():
                break
            flagged = self._run_group(group, ents, texts[g], signals, budget)
            if budget is None or not budget.exhausted:
                clean = [
                    (e[0], e[2])
                    for i, e in enumerate(ents)
                    if e[4].cacheable and e[3] and i not in flagged and len(e[2]) <= CACHE_VALUE_MAX
                ]
                if clean:
                    self.clean_values.add_all(clean)
        return signals

    def _views(
        self, ph: _Phase, values: list[Value], budget: Budget | None
    ) -> tuple[list[list[_Entry]], list[dict[str, int]]]:
        plans = ph.plans
        header_plan = ph.header_plan
        cache = self.clean_values._d  # read lock-free: a dict lookup is atomic
        entries: list[list[_Entry]] = [[], []]
        texts: list[dict[str, int]] = [{}, {}]
        # Values repeat within a request (JSON arrays of similar objects, their keys): one
        # computation per (plan, value).
        done: dict[tuple[int, str], tuple[dict[Chain, Chain], dict[Chain, str]]] = {}
        work = 0
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
            g = plan.group
            memo_key = (id(plan), value)
            known = done.get(memo_key)
            if known is not None:
                entries[g].append((key, loc, value, utf8, plan, known[0], known[1]))
                continue
            red = plan.planner.for_mask(trigger_mask(value))
            memo = red.apply(value)
            done[memo_key] = (red.views, memo)
            entries[g].append((key, loc, value, utf8, plan, red.views, memo))
            seen = texts[g]
            for rc in red.computed:
                t = memo[rc]
                if t not in seen:
                    seen[t] = len(seen)
            if budget is not None:
                work += len(value)
                if work > _CHECK_EVERY:
                    work = 0
                    if budget.expired():
                        break
        return entries, texts

    def _run_group(
        self,
        group: _Group,
        ents: list[_Entry],
        texts: dict[str, int],
        out: list[Signal],
        budget: Budget | None,
    ) -> set[int]:
        """Evaluate the group's candidate rules; returns the indexes of entries that fired."""
        candidates = group.always
        scan: _Scan | None = None
        if group.matcher is not None:
            scan = _Scan(texts)
            hits = _scan_in_chunks(group.matcher, scan.data, budget)
            if hits:
                scanned = group.scanned
                candidates = sorted([*candidates, *(scanned[i] for i in hits)], key=lambda c: c.index)
        flagged: set[int] = set()
        encoded: dict[str, Encoded] = {}
        for c in candidates:
            if budget is not None and budget.expired():
                break
            if c.utf8_only:
                self._check_utf8(c, ents, out, flagged)
                continue
            idx = c.index
            todo = [n for n, e in enumerate(ents) if idx in e[4].rule_ids]
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
                key, loc, value, utf8, _plan, views, memo = ents[n]
                text = memo[views[chain]]
                if results is not None and text in results:
                    span = results[text]
                    if span is not None:
                        flagged.add(n)
                        out.append(self._signal(c.rule, loc, text, span))
                    continue
                if c.pre is not None:
                    data = encoded.get(text)
                    if data is None:
                        data = encoded[text] = encode(text)
                    span = c.pre.search_encoded(data)
                    if span is None:
                        if results is not None:
                            results[text] = None
                        continue
                    if c.direct:
                        span = char_span(text, data, span)
                    else:
                        span = c.op.evaluate(text, Item(key, loc, value, utf8))
                else:
                    span = c.op.evaluate(text, Item(key, loc, value, utf8))
                if results is not None:
                    results[text] = span
                if span is None:
                    continue
                flagged.add(n)
                out.append(self._signal(c.rule, loc, text, span))
        return flagged

    def _check_utf8(self, c: _Compiled, ents: list[_Entry], out: list[Signal], flagged: set[int]) -> None:
        idx = c.index
        for n, (_key, loc, _value, utf8, plan, views, memo) in enumerate(ents):
            if utf8 or idx not in plan.rule_ids:
                continue
            text = memo[views[c.chain]]
            flagged.add(n)
            out.append(self._signal(c.rule, loc, text, (0, min(len(text), 64))))

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


__all__ = ["CACHE_SIZE", "CACHE_VALUE_MAX", "SEP", "Budget", "Engine", "joined_pattern"]

"""The rule engine: runs every enabled rule on every value it targets, in linear time.

Three parts, one module each: **planning** (:mod:`.plan`: which rules, transform chains
and scan groups apply to which target key, compiled once per rule set), **caching**
(:mod:`.cache`: what produced no signal, keyed by digest) and **running** (this module,
with the joined scans of :mod:`.scan`). Per phase (``head``: request line, query,
cookies, headers; ``body``: the parsed body) the work is:

1. **Views.** Each value is transformed by every chain its rules name, through
   :mod:`.chains`: transforms that cannot change the value are skipped, shared
   prefixes are computed once. The plain values of a key are told apart together
   (one search over them all: most values need no transform at all), and such a
   value is entered as a plain tuple with no view of its own (see :data:`Entry`).
   A parameter name is one value even on a request from elsewhere (see
   :data:`~.targets.NAMES_OF`).
2. **One scan per group.** The distinct view texts of a group of values are
   joined by a separator, encoded to UTF-8 once, and scanned by the RE2 sets of
   all the group's prefilters (:func:`~.plan.joined_pattern`: anchors also match at
   the separator, negated classes and ``.`` never do, bounded repeats loosened; a
   superset of the per-value match). Groups: parameters (path, query, cookies;
   body fields and names), headers (which repeat from request to request, see
   :mod:`.cache`), and one of its own for each structural value (method, target,
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

Compiled rule sets are shared by engines built from identical rules and warmed
at construction (RE2 builds its automata lazily: the first requests would pay).

The per-request :class:`Budget` is checked between groups, between rules and
every few kilobytes of transformed text; once past its deadline inspection
stops (the middleware fails open and counts it). Detection ends here: scoring
and blocking decisions live in :mod:`devsecmw.scoring`.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Final

from .. import redact
from ..config import Config
from ..request import HttpRequest
from ..signals import Signal
from .budget import Budget
from .cache import (
    BODY_CACHE_SIZE,
    BODY_PART_MAX,
    CACHE_SIZE,
    CACHE_VALUE_MAX,
    COOKIES,
    HEADERS,
    LINE,
    PART_CACHE_SIZE,
    PART_MAX,
    PART_OF,
    CleanCache,
    body_key,
    head_keys,
)
from .cache import digest as _digest  # noqa: F401  (the old name: tests import it)
from .chains import Chain, Reduced
from .matcher import Encoded, char_span, encode
from .plan import (
    CACHEABLE_KEYS,
    OWN_GROUP,
    SEP,
    SEP_STAND_IN,
    CompiledRule,
    Group,
    Phase,
    Plan,
    by_index,
    joined_pattern,
    phases_for,
)
from .plan import _shared as _shared
from .rules import Rule, check_switched_off, load_all
from .scan import SCAN_CHUNK, SCAN_OVERLAP, JoinedText, Seen, join_texts, scan_group
from .ssrf import REQUEST_ORIGIN
from .targets import (
    NAMES_OF,
    Item,
    Value,
    body_values,
    cookie_values,
    header_values,
    line_values,
    offsite,
)
from .transforms import Transform

#: Characters transformed between two budget checks.
_CHECK_EVERY = 16384
#: Whether ``_views`` takes its shortcut for values every view of which is the value itself
#: (tests turn it off to compare the two ways: the same signals are required).
FAST_PATHS = True
#: Searches a rule may spend locating its prefilter in a joined text before it simply
#: checks every value it targets (keeps a prefilter that spans values linear).
_LOCATE_MAX = 16
#: Values at least this long have the views of a single chain scanned by that chain's rules only.
SPLIT_FROM = 1024

_MISSING: Plan = object.__new__(Plan)  # "no plan for this key" sentinel (None: no rule)


#: One distinct value being inspected, a plain tuple (a request may hold thousands: a class
#: instance cost ~4 times as much to make, and one more object for the garbage collector):
#: ``(key, locs, value, utf8, plan, views, memo)``. A value found at several locations (the same
#: note in every item of a JSON array) is one entry: inspected once, reported at each location
#: (``locs``). Its view for a rule's chain is ``memo[views[chain]]`` (``views``: chain -> the
#: reduced chain that gives the same text; ``memo``: reduced chain -> text), or the value
#: itself when ``memo`` is ``None`` (every view is the value: most values). See :func:`view`.
Entry = tuple[str, list[str], str, bool, Plan, dict[Chain, Chain], "dict[Chain, str] | None"]
#: Positions in an :data:`Entry` (``Final``: mypy then knows each field's type).
KEY: Final = 0
LOCS: Final = 1
VALUE: Final = 2
UTF8: Final = 3
PLAN: Final = 4
VIEWS: Final = 5
MEMO: Final = 6


def view(e: Entry, chain: Chain) -> str:
    """The text of entry ``e`` for a rule of transform chain ``chain``."""
    memo = e[MEMO]
    return e[VALUE] if memo is None else memo[e[VIEWS][chain]]


def item_of(e: Entry) -> Item:
    """What operators receive for entry ``e`` (made only for the few values a rule evaluates)."""
    return Item(e[KEY], e[LOCS][0], e[VALUE], e[UTF8])


class GroupInput:
    """What one scan group inspects. (Plain slots: built per group per inspection, and a
    dataclass's default factories would cost a cold head ~1 µs.)"""

    __slots__ = ("by_plan", "entries", "single", "texts")

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        #: Distinct texts of the entries' views -> their index in the joined scan.
        self.texts: dict[str, int] = {}
        #: The entries of each plan (so a rule finds the values it targets at once).
        self.by_plan: dict[Plan, list[int]] = {}
        #: Texts of long values -> the one chain they are a view of (``None``: several, or also
        #: a short value's text). Only long texts are worth a scan of their own.
        self.single: dict[str, Chain | None] = {}


class PlanState:
    """Per plan met in one inspection: its entries (what ``GroupInput.by_plan`` holds) and the
    entry that first computed the views of each value (reused for the same value elsewhere)."""

    __slots__ = ("computed", "entries")

    def __init__(self) -> None:
        self.entries: list[int] = []
        self.computed: dict[str, tuple[dict[Chain, Chain], dict[Chain, str]]] = {}


def _with_names_of(ph: Phase) -> dict[str, Plan | None]:
    """``ph.plans`` where each offsite names key (see :data:`~.targets.NAMES_OF`) also holds the
    rules of the plain names key: its values stand for both, so they are inspected once. Its
    cacheability is the plain key's (the two keys are cached apart)."""
    plans = dict(ph.plans)
    for key, base in NAMES_OF.items():
        mine, theirs = plans.get(key), plans.get(base)
        if key not in plans or theirs is None:
            continue
        if mine is not None and mine.group != theirs.group:  # one group of parameters per phase
            raise AssertionError(f"{key} and {base} are scanned in different groups")
        ids = theirs.rule_ids | (mine.rule_ids if mine is not None else frozenset())
        group = ph.groups[theirs.group]
        rules = sorted((c for c in [*group.always, *group.scanned] if c.index in ids), key=by_index)
        plans[key] = Plan(rules, theirs.group, theirs.cacheable)
    return plans


def _check_switched_off(config: Config) -> None:
    """Disabling one rule never disables a category (see :func:`rules.check_switched_off`)."""
    if config.disabled_rules:
        rules = load_all(config.rule_files)
        check_switched_off(rules, config.disabled_rules, config.paranoia_level, config.attack_threshold)


class Engine:
    """The default :class:`~devsecmw.engine.Detector`: packaged rules plus the user's."""

    def __init__(self, config: Config | None = None, rules: Sequence[Rule] | None = None) -> None:
        self.config = config or Config()
        if rules is None:
            rules = load_all(self.config.rule_files, self.config.disabled_rules)
            _check_switched_off(self.config)
        self.rules = [r for r in rules if r.paranoia <= self.config.paranoia_level]
        self._phases: dict[str, Phase] = phases_for(self.rules, self.config.hyperscan, self.config.cache_dir)
        #: Per phase, the plans ``_views`` follows (the offsite names keys merged).
        self._plans = {ph: _with_names_of(ph) for ph in self._phases.values()}
        self._extra_secret_names = self.config.redact_names
        self.clean_values: CleanCache[tuple[str, str]] = CleanCache(CACHE_SIZE)
        #: Head parts (request line, Cookie header, header block) that produced no signal.
        self.clean_parts: CleanCache[Hashable] = CleanCache(PART_CACHE_SIZE)
        #: Small bodies that produced no signal (a client polling or retrying the same POST).
        self.clean_bodies: CleanCache[bytes] = CleanCache(BODY_CACHE_SIZE)

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
        key = body_key(request)
        if key is not None and key in self.clean_bodies._d:
            return []
        values = body_values(request)
        if not values:
            return []
        signals, flagged, complete = self._inspect_values(ph, values, budget)
        if key is not None and complete and not flagged:
            self.clean_bodies.add_all([key])
        return signals

    def _inspect_head(self, ph: Phase, request: HttpRequest, budget: Budget | None) -> list[Signal]:
        """The head by parts: a part seen before with no signal (a browser sends the same
        Cookie header and header block request after request, and often the same URL) is
        skipped whole, without even being parsed."""
        parts = self.clean_parts._d  # read lock-free: a dict lookup is atomic
        away = bool(request.query_string) and offsite(request)
        line, cookies, block, size = head_keys(request, away)
        todo: dict[int, Hashable] = {}  # part -> its key
        values: list[Value] = []
        if line not in parts:
            todo[LINE] = line
            values += line_values(request, away)
        if cookies is not None and cookies not in parts:
            todo[COOKIES] = cookies
            values += cookie_values(request)
        if block not in parts:
            todo[HEADERS] = block
            values += header_values(request)
        if not values:
            return []
        signals, flagged, complete = self._inspect_values(ph, values, budget)
        if complete:
            dirty = {PART_OF.get(k, HEADERS) for k in flagged}
            # Digests are kept whatever the size; a long header block is not worth keeping.
            clean = [
                key
                for part, key in todo.items()
                if part not in dirty and (part != HEADERS or size <= PART_MAX)
            ]
            if clean:
                self.clean_parts.add_all(clean)
        return signals

    def _inspect_values(
        self, ph: Phase, values: list[Value], budget: Budget | None
    ) -> tuple[list[Signal], set[str], bool]:
        """Signals, the keys of the values that produced one, and whether inspection completed
        in one piece (not stopped by the budget, no scan split in chunks: a part judged clean
        then is judged clean alone, whatever else came with it)."""
        inputs = self._views(ph, values, budget)
        signals: list[Signal] = []
        flagged_keys: set[str] = set()
        complete = True
        #: Per group whose scan a later group reuses: the texts it scanned with all its rules,
        #: and the rules found there.
        scanned: dict[int, Seen] = {}
        for g, group in enumerate(ph.groups):
            w = inputs[g]
            if w is None or not w.entries:
                continue
            ents = w.entries
            if budget is not None and budget.expired():
                break
            prior = scanned.get(group.after.earlier) if group.after is not None else None
            flagged, whole, seen = self._run_group(group, w, prior, signals, budget)
            if seen is not None:
                scanned[g] = seen
            complete = complete and whole
            flagged_keys.update(ents[i][KEY] for i in flagged)
            if budget is None or not budget.exhausted:
                # Only the entries of cacheable plans (parameter values never are: half of a query).
                clean: list[tuple[str, str]] = []
                for p, ns in w.by_plan.items():
                    if p.cacheable:
                        for i in ns:
                            e = ents[i]
                            if e[UTF8] and i not in flagged and len(e[VALUE]) <= CACHE_VALUE_MAX:
                                clean.append((e[KEY], e[VALUE]))
                if clean:
                    self.clean_values.add_all(clean)
        return signals, flagged_keys, complete and (budget is None or not budget.exhausted)

    def _views(self, ph: Phase, values: list[Value], budget: Budget | None) -> list[GroupInput | None]:
        """Each group's entries and texts (``None``: a group no value reached; most requests
        reach one or two of them): one entry per distinct (key, value, utf8), one computation
        of views per (plan, value) (values repeat within a request: JSON arrays of similar
        objects, their keys). Which views a value needs is asked of all of a plan's values at
        once (:meth:`~.chains.Planner.for_values`: most are quiet, told apart in one search)."""
        plans = self._plans[ph]
        header_plan = ph.header_plan
        cache = self.clean_values._d  # read lock-free: a dict lookup is atomic
        # 1. The distinct values to inspect, with their locations; each plan's distinct values.
        todo: dict[tuple[str, str, bool], tuple[Plan, list[str]]] = {}
        distinct: dict[Plan, dict[str, None]] = {}
        for key, loc, value, utf8 in values:
            vkey = (key, value, utf8)
            got = todo.get(vkey)
            if got is not None:
                got[1].append(loc)
                continue
            plan = plans.get(key, _MISSING)
            if plan is _MISSING:
                if not key.startswith("header:"):
                    continue
                plan = header_plan
            if plan is None:
                continue
            if plan.cacheable and utf8 and (key, value) in cache:
                continue
            todo[vkey] = (plan, [loc])
            vals = distinct.get(plan)
            if vals is None:
                vals = distinct[plan] = {}
            vals[value] = None
        # 2. The reduction of each (plan, value): the quiet values of a plan found together.
        reds = {plan: plan.planner.for_values(list(vals)) for plan, vals in distinct.items()}
        # 3. Entries and texts, in value order.
        inputs: list[GroupInput | None] = [None] * len(ph.groups)
        state: dict[Plan, PlanState] = {}
        shared: dict[tuple[Transform, str], str] = {}
        work = 0
        fast = FAST_PATHS
        for (key, value, utf8), (plan, locs) in todo.items():
            w = inputs[plan.group]
            if w is None:
                w = inputs[plan.group] = GroupInput()
            ents = w.entries
            st = state.get(plan)
            if st is None:
                st = state[plan] = PlanState()
                w.by_plan[plan] = st.entries
            st.entries.append(len(ents))
            known = st.computed.get(value)
            if known is not None:
                ents.append((key, locs, value, utf8, plan, known[0], known[1]))
                continue
            common, others = reds[plan]
            red = others.get(value, common)
            if fast and red.identity and len(value) < SPLIT_FROM:
                # Every view is the value itself (most values): nothing to apply, one text.
                ents.append((key, locs, value, utf8, plan, red.views, None))
                seen = w.texts
                if value not in seen:
                    seen[value] = len(seen)
                elif w.single and value in w.single:
                    w.single[value] = None
            else:
                memo = red.apply(value, shared)
                st.computed[value] = (red.views, memo)
                ents.append((key, locs, value, utf8, plan, red.views, memo))
                _add_texts(w, red, value, memo)
            if budget is not None:
                work += len(value)
                if work > _CHECK_EVERY:
                    work = 0
                    if budget.expired():
                        break
        return inputs

    def _run_group(
        self, group: Group, w: GroupInput, prior: Seen | None, out: list[Signal], budget: Budget | None
    ) -> tuple[set[int], bool, Seen | None]:
        """Evaluate the group's candidate rules (those without a prefilter, and those whose
        prefilter the group's scan found): the indexes of the entries that fired, whether its
        text was scanned in one piece, and, when a later group reuses the scan (see
        :class:`~.plan.Reuse`), what it scanned with all its rules and the rules found there."""
        candidates = group.always
        scan: JoinedText | None = None
        whole = True
        seen: Seen | None = None
        if group.matcher is not None:
            scan = JoinedText(w.texts)
            hits, whole, texts = scan_group(group, scan, w.single, prior, budget)
            scanned = group.scanned
            if hits:
                candidates = sorted([*candidates, *(scanned[i] for i in hits)], key=by_index)
            if group.reused:
                seen = Seen(texts, {scanned[i].index for i in hits})
        flagged: set[int] = set()
        if not candidates:
            return flagged, whole, seen
        encoded: dict[str, Encoded] = {}
        targeted = list(w.by_plan.items())
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
                self._check_utf8(c, w.entries, todo, out, flagged)
                continue
            if c.joined is not None and scan is not None and len(todo) > 2:
                todo = _narrow(c, w.entries, todo, scan)
            self._confirm(c, w.entries, todo, scan, encoded, out, flagged)
        return flagged, whole, seen

    def _confirm(
        self,
        c: CompiledRule,
        ents: list[Entry],
        todo: list[int],
        scan: JoinedText | None,
        encoded: dict[str, Encoded],
        out: list[Signal],
        flagged: set[int],
    ) -> None:
        """Check rule ``c`` exactly on its view of the entries ``todo``: signals to ``out``,
        the entries that fired to ``flagged``. ``encoded``: texts encoded so far (each text's
        bytes are the scan's when it has them: every view of the group's values is a text)."""
        parts, index = (scan.parts, scan.by_text) if scan is not None else ([], {})
        chain = c.chain
        # The same text in several values (or views): one evaluation. Only for operators
        # whose decision depends on the text alone.
        results: dict[str, tuple[int, int] | None] | None = {} if c.pure else None
        for n in todo:
            e = ents[n]
            text = view(e, chain)
            if results is not None and text in results:
                span = results[text]
                if span is not None:
                    flagged.add(n)
                    out.extend(self._signal(c.rule, loc, text, span) for loc in e[LOCS] if c.rule.wants(loc))
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
                span = char_span(text, data, span) if c.direct else c.op.evaluate(text, item_of(e))
            else:
                span = c.op.evaluate(text, item_of(e))
            if results is not None:
                results[text] = span
            if span is None:
                continue
            flagged.add(n)
            out.extend(self._signal(c.rule, loc, text, span) for loc in e[LOCS] if c.rule.wants(loc))

    def _check_utf8(
        self, c: CompiledRule, ents: list[Entry], todo: list[int], out: list[Signal], flagged: set[int]
    ) -> None:
        # Nearly every value is valid UTF-8: find the others first (one test per entry).
        for n in [n for n in todo if not ents[n][UTF8]]:
            e = ents[n]
            text = view(e, c.chain)
            flagged.add(n)
            out.extend(
                self._signal(c.rule, loc, text, (0, min(len(text), 64)))
                for loc in e[LOCS]
                if c.rule.wants(loc)
            )

    def _signal(self, rule: Rule, location: str, text: str, span: tuple[int, int]) -> Signal:
        return Signal(
            type=rule.type,
            location=location,
            evidence=redact.REDACTED
            if rule.secret
            else redact.evidence(location, text, span[0], span[1], self._extra_secret_names),
            severity=rule.severity,
            rule_id=rule.id,
            rule_name=rule.name,
            category=rule.category,
            ruleset=rule.ruleset,
        )


def _add_texts(w: GroupInput, red: Reduced, value: str, memo: dict[Chain, str]) -> None:
    """Record the texts a value's computed views (``memo``) add to its group's scan (and, for a
    long value, which of them are the view of one chain alone)."""
    seen, one = w.texts, w.single
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


def _narrow(c: CompiledRule, ents: list[Entry], todo: list[int], scan: JoinedText) -> list[int]:
    """The entries of ``todo`` whose own view (for ``c`` 's chain) holds a match of its
    prefilter: searching the joined text once per value it occurs in beats one search per
    value (all of ``todo`` when locating would take more than :data:`_LOCATE_MAX` searches)."""
    assert c.joined is not None
    prefilter = c.op.prefilter or ""
    if prefilter in scan.located:
        where = scan.located[prefilter]
    else:
        where = scan.located[prefilter] = scan.locate(c.joined, min(len(todo), _LOCATE_MAX))
    if where is None:
        return todo
    by_text, chain = scan.by_text, c.chain
    return [n for n in todo if by_text.get(view(ents[n], chain)) in where]


__all__ = [
    "BODY_CACHE_SIZE",
    "BODY_PART_MAX",
    "CACHEABLE_KEYS",
    "CACHE_SIZE",
    "CACHE_VALUE_MAX",
    "FAST_PATHS",
    "OWN_GROUP",
    "PART_CACHE_SIZE",
    "PART_MAX",
    "SCAN_CHUNK",
    "SCAN_OVERLAP",
    "SEP",
    "SEP_STAND_IN",
    "SPLIT_FROM",
    "Budget",
    "Engine",
    "join_texts",
    "joined_pattern",
]

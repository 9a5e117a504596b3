"""Planning: which rules, transform chains and scan groups apply to which target key.

Built once per rule set and phase (:func:`phases_for`), shared by the engines built from
identical rules, and never changed afterwards: the running part (:mod:`.engine`) only reads
it. A :class:`Phase` maps each target key to its :class:`Plan` (the rules that look at the
key, the planner of their chains, the scan group of its values) and holds the compiled
:class:`Group` s, each with the RE2 set of its rules' prefilters rewritten for a joined scan
(:func:`joined_pattern`).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from . import hsscan
from . import operators as ops
from .chains import Chain, Planner, canonical
from .matcher import MultiMatcher, Pattern, compile_pattern, compile_set, encode, loosen, walk_pattern
from .rules import BODY_KEYS, HEAD_KEYS, Rule, RuleError

#: Between values in a joined scan: a noncharacter no rule looks for. Anchors are rewritten
#: to match it (see :func:`joined_pattern`), so "^" still means the start of every value.
SEP = "\uffff"
#: Stands in for :data:`SEP` inside a text (a value may hold it) in joined scans: no rule can
#: tell the two apart (both are noncharacters; rules naming either are rejected).
SEP_STAND_IN = "\ufffe"
_NAMES_SEP = re.compile(r"[\ufffe\uffff]|\\x\{0*fff[ef]\}", re.I)
_NOT_SEP = {"S": r"[^\s" + SEP + "]", "W": r"[^\w" + SEP + "]", "D": r"[^\d" + SEP + "]"}
#: Keys whose values form a vocabulary that repeats from request to request: header values and
#: the names of headers, parameters and cookies, the method and the path. (Parameter values,
#: bodies and the raw target vary, and are never cached.)
CACHEABLE_KEYS = frozenset({"method", "path", "headers.names", "query.names", "cookies.names", "body.names"})
#: Keys whose single value is scanned on its own: structural text that looks nothing like a
#: parameter (``GET``, a multi-line header block, a whole body) would otherwise meet the
#: parameter rules' prefilters in the joined scan (``[\r\n]`` in ``headers.raw``) and the
#: other way round (``[^A-Za-z_-]`` of the method rule in a path).
OWN_GROUP = ("method", "uri", "headers.raw", "body.raw")


@lru_cache(maxsize=4096)  # a pure function of the text; each prefilter is joined for several groups
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
    start, end = f"(?:^|{SEP})", f"(?:$|{SEP})"
    negated = False  # the previous piece opened a negated class
    for piece in walk_pattern(pattern):
        text, kind = piece.text, piece.kind
        if piece.in_class:
            # After the separator, a leading "]" or "-" (literal there) escaped to stay so.
            out.append("\\" + text if negated and text in ("]", "-") else text)
        elif kind == "class":
            out.append("[^" + SEP if text == "[^" else text)  # the separator first
        elif kind == "escape" and text[1:] in _NOT_SEP:
            out.append(_NOT_SEP[text[1:]])
        elif text in ("^", "\\A"):
            out.append(start)
        elif text in ("$", "\\z"):
            out.append(end)
        elif text == ".":
            out.append(f"[^{SEP}]")
        else:
            out.append(text)
        negated = kind == "class" and text == "[^"
    return loosen("".join(out))


class CompiledRule:
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


def by_index(c: CompiledRule) -> int:
    return c.index


class Plan:
    """What one target key needs: its rules, their chains, its scan group."""

    __slots__ = ("cacheable", "group", "planner", "rule_ids")

    def __init__(self, rules: list[CompiledRule], group: int, cacheable: bool) -> None:
        self.rule_ids = frozenset(c.index for c in rules)
        self.planner = Planner(c.chain for c in rules)
        self.group = group
        self.cacheable = cacheable


@dataclass(slots=True, frozen=True)
class ChainSet:
    """The set of one transform chain's prefilters within a group, and their indexes in the
    group's ``scanned``."""

    matcher: MultiMatcher
    scanned: list[int]


class Group:
    """Rules whose values are scanned together, joined in one text."""

    __slots__ = ("after", "always", "by_chain", "matcher", "reused", "scanned")

    def __init__(self, rules: list[CompiledRule]) -> None:
        #: Rules without a prefilter: evaluated on every value they target.
        self.always = [c for c in rules if c.pre is None]
        self.scanned = [c for c in rules if c.pre is not None]
        self.matcher: MultiMatcher | None = None
        if self.scanned:
            self.matcher = compile_set([joined_pattern(c.op.prefilter or "") for c in self.scanned])
        #: Per transform chain, the set of its rules' prefilters: a long text that is the view
        #: of one chain alone (the ``cmd_line`` view of a 64 KiB body) is scanned by that
        #: chain's rules only (see :func:`.scan.scan_group`).
        self.by_chain: dict[Chain, ChainSet] = {}
        chains: dict[Chain, list[int]] = {}
        for i, c in enumerate(self.scanned):
            chains.setdefault(c.chain, []).append(i)
        if len(chains) > 1:
            for chain, idxs in chains.items():
                prefilters = [joined_pattern(self.scanned[i].op.prefilter or "") for i in idxs]
                self.by_chain[chain] = ChainSet(compile_set(prefilters), idxs)
        #: Set by the phase when an earlier group scans many of the same texts (see Reuse),
        #: and on that earlier group.
        self.after: Reuse | None = None
        self.reused = False


class Reuse:
    """How a group reuses the scan of an earlier one: the texts that group scanned with all
    its rules need here only the rules it does not have (``own``); the rules both have
    (``shared``) are candidates here when they occurred there. (A body's raw text decodes
    to its fields' texts when it is one field: a 64 KiB form name, a text/plain body.)"""

    __slots__ = ("earlier", "matcher", "own", "shared")

    def __init__(self, earlier: int, mine: Group, theirs: Group) -> None:
        self.earlier = earlier
        theirs_ids = {c.index for c in theirs.scanned}
        self.own = [i for i, c in enumerate(mine.scanned) if c.index not in theirs_ids]
        self.shared = [(i, c.index) for i, c in enumerate(mine.scanned) if c.index in theirs_ids]
        patterns = [joined_pattern(mine.scanned[i].op.prefilter or "") for i in self.own]
        self.matcher: MultiMatcher | None = compile_set(patterns) if patterns else None


def group_name(key: str) -> str:
    if key in OWN_GROUP:
        return key
    if key.startswith("header:") or key == "headers.names":
        return "headers"
    return "args"


class Phase:
    """The plans and groups of one phase (``head`` or ``body``)."""

    __slots__ = ("groups", "header_plan", "plans")

    def __init__(self, rules: Sequence[Rule], phase: str) -> None:
        compiled = [CompiledRule(r, i) for i, r in enumerate(r for r in rules if phase in r.phases)]
        keys = set(HEAD_KEYS if phase == "head" else BODY_KEYS) - {"headers"}
        for c in compiled:
            keys.update(k for k in c.rule.targets | c.rule.exclude if k.startswith("header:"))
        names = sorted({group_name(k) for k in keys} | ({"headers"} if phase == "head" else set()))
        group_of = {k: names.index(group_name(k)) for k in keys}
        self.plans: dict[str, Plan | None] = {}
        for key in sorted(keys):
            self.plans[key] = self._plan(compiled, key, group_of[key])
        # Any header no rule names specifically: what the generic "headers" target gives.
        headers = names.index("headers") if "headers" in names else -1
        self.header_plan = self._plan(compiled, "header:\x00", headers) if headers >= 0 else None
        self.groups: list[Group] = []
        for g in range(len(names)):
            plans = [p for k, p in self.plans.items() if p is not None and group_of[k] == g]
            if g == headers and self.header_plan is not None:
                plans.append(self.header_plan)
            ids = set().union(*(p.rule_ids for p in plans)) if plans else set()
            self.groups.append(Group([c for c in compiled if c.index in ids]))
        if "args" in names and "body.raw" in names:
            args, raw = names.index("args"), names.index("body.raw")
            assert args < raw  # groups run in order: the fields' scan comes first
            if self.groups[args].matcher is not None and self.groups[raw].matcher is not None:
                self.groups[raw].after = Reuse(args, self.groups[raw], self.groups[args])
                self.groups[args].reused = True

    @staticmethod
    def _plan(compiled: list[CompiledRule], key: str, group: int) -> Plan | None:
        rules = [c for c in compiled if c.rule.applies_to(key)]
        cacheable = key.startswith("header:") or key in CACHEABLE_KEYS
        return Plan(rules, group, cacheable) if rules else None


#: Compiled phases by rule-set fingerprint (a handful of distinct rule sets in one process).
_shared: dict[tuple[object, ...], dict[str, Phase]] = {}
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


#: What every service sees first (a browser's headers, a small JSON body): scanned once at
#: start-up so the first ordinary requests find RE2's lazily built automata in place.
WARM_UP = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0",
    "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    '{"id": 12, "name": "Blue cotton shirt", "tags": ["a", "b"], "note": "ring twice, please"}',
)


def _warm_up(phases: dict[str, Phase], rules: Sequence[Rule]) -> None:
    """Scan :data:`WARM_UP` once. Not the rules' attack examples any more: warming every set on
    all of them took ~0.55 s of CPU and ~55 MiB in every worker at start-up, and saved the first
    few hundred requests only ~0.15 s in all (``benchmarks/startup.py``); attacks now build their
    automata states as they come, as new traffic does anyway."""
    text = SEP.join(WARM_UP)
    for phase in phases.values():
        for group in phase.groups:
            if group.matcher is not None:
                group.matcher.match(encode(text))
                group.matcher.match(encode(text.lower()))


def _accelerate(phases: dict[str, Phase], hyperscan: bool, cache_dir: str) -> hsscan.Database | None:
    """Every set of the phases answered by Hyperscan once its database is built in the
    background (see :mod:`.hsscan`); unchanged when it is not installed."""
    sets: list[tuple[list[str], MultiMatcher]] = []
    for phase in phases.values():
        for group in phase.groups:
            scanned = [joined_pattern(c.op.prefilter or "") for c in group.scanned]
            if group.matcher is not None:
                sets.append((scanned, group.matcher))
            for chain_set in group.by_chain.values():
                sets.append(([scanned[i] for i in chain_set.scanned], chain_set.matcher))
            if group.after is not None and group.after.matcher is not None:
                sets.append(([scanned[i] for i in group.after.own], group.after.matcher))
    matchers, db = hsscan.accelerate(sets, hyperscan, cache_dir)
    if db is None:
        return None
    it = iter(matchers)
    for phase in phases.values():
        for group in phase.groups:
            if group.matcher is not None:
                group.matcher = next(it)
            for chain, chain_set in group.by_chain.items():
                group.by_chain[chain] = ChainSet(next(it), chain_set.scanned)
            if group.after is not None and group.after.matcher is not None:
                group.after.matcher = next(it)
    return db


def _key(rules: Sequence[Rule], hyperscan: bool, cache_dir: str) -> tuple[object, ...]:
    # The options are part of the key: an engine with hyperscan=False never gets a set another
    # engine accelerated (nor a database cached elsewhere); equal options share as before.
    return (_fingerprint(rules), hyperscan, cache_dir if hyperscan else "")


def phases_for(rules: Sequence[Rule], hyperscan: bool = True, cache_dir: str = "") -> dict[str, Phase]:
    """The compiled phases of ``rules``: shared by engines built from identical rules and the
    same ``hyperscan`` / ``cache_dir`` options, and warmed when first compiled (RE2 builds its
    automata lazily: the first requests would pay)."""
    key = _key(rules, hyperscan, cache_dir)
    phases = _shared.get(key)
    if phases is None:
        phases = {"head": Phase(rules, "head"), "body": Phase(rules, "body")}
        with _shared_lock:
            if len(_shared) >= 8:  # distinct rule sets in one process: a handful at most
                oldest = next(iter(_shared))
                del _shared[oldest]
                databases.pop(oldest, None)
            _shared[key] = phases
        _warm_up(phases, rules)
        databases[key] = _accelerate(phases, hyperscan, cache_dir)
    return phases


#: The Hyperscan database of each compiled rule set (``None``: RE2 only), by :func:`_key`.
databases: dict[tuple[object, ...], hsscan.Database | None] = {}


def database_for(
    rules: Sequence[Rule], hyperscan: bool = True, cache_dir: str = ""
) -> hsscan.Database | None:
    """The Hyperscan database of ``rules`` once compiled (:func:`phases_for`), if any."""
    return databases.get(_key(rules, hyperscan, cache_dir))


__all__ = [
    "CACHEABLE_KEYS",
    "OWN_GROUP",
    "SEP",
    "SEP_STAND_IN",
    "ChainSet",
    "CompiledRule",
    "Group",
    "Phase",
    "Plan",
    "Reuse",
    "joined_pattern",
    "phases_for",
]

"""Rules are data: JSON files validated at start-up.

A rule file is ``{"ruleset": name, "version": v, "rules": [...]}``; a rule is::

    {
      "id": "930100",                      # unique, stable; becomes security_rule.uuid
      "name": "Path traversal: ../ sequence",
      "type": "traversal",                 # a signal type of SPEC.md
      "category": "attack-lfi",            # free text; becomes security_rule.category
      "severity": "critical",              # critical | error | warning | notice | info
      "paranoia": 1,                       # 1..4: enabled at this paranoia level and above
      "targets": ["args", "path"],         # see TARGETS; "header:<name>" for one header;
                                           # a named location for one parameter: "query:q",
                                           # "cookie:theme", "body:json:comment.html",
                                           # "body:form:bio" (a trailing * is a prefix)
      "exclude": ["header:referer"],       # optional: target keys this rule never looks at
      "transforms": ["url_decode_uni"],    # see transforms.TRANSFORMS, applied in order
      "operator": "rx",                    # see operators.OPERATORS
      "value": "(?:^|[\\\\/])\\.\\.[\\\\/]", # the operator's parameter
      "tags": {"cwe": "22"},
      "examples": {"match": ["../../etc/passwd"], "nomatch": ["a..b"]}
    }

Phases. A rule runs in one or both request phases, ``request.head`` (request line, query,
cookies, headers: before the app runs) and ``request.body`` (what the app read of the body),
as its targets say; or in a response phase: ``response.head`` (target ``response.headers``:
each response header as ``name: value``) or ``response.body`` (target ``response.body``: the
bounded sample of a textual response, see :mod:`devsecmw.leaks`). The optional ``"phase"``
key states it (it must agree with the targets); a rule never mixes request and response
targets. ``"secret": true`` keeps the matched text out of telemetry (the evidence is
``[redacted]``), in any phase: for rules that find credentials.

Synthetic targets: ``headers.raw`` is ``METHOD HTTP/version`` then one line per header
in wire order (``name: value`` for the headers that frame the message, Host,
Content-Length, Transfer-Encoding, Content-Type..., the bare ``name:`` for the others),
for checks that need the header block as a whole; ``args.names.offsite`` are the
parameter names of a request whose Referer (or Origin) is absent or names another host
than Host (form and query names; the keys of a JSON body are ``body.json.names.offsite``).

Errors name the file, the rule and the problem, and list the allowed choices.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..signals import SIGNAL_TYPES, Severity
from . import operators as ops
from . import transforms as tf

#: Response targets, one per response phase.
RESPONSE_HEAD = "response.headers"
RESPONSE_BODY = "response.body"
#: Target keys a rule may name. ``args`` is query + body; ``headers`` every header but Cookie.
TARGETS: frozenset[str] = frozenset(
    {
        "method",
        "uri",
        "path",
        "query",
        "query.names",
        "body",
        "body.names",
        "body.raw",
        "body.files",
        "args",
        "args.names",
        "cookies",
        "cookies.names",
        "headers",
        "headers.names",
        # Synthetic: the request line and header block as text, and parameter names of
        # requests that did not come from a page of this site.
        "headers.raw",
        "query.names.offsite",
        "body.names.offsite",
        "body.json.names.offsite",
        # The response phases' (a rule names one of them and no request target).
        RESPONSE_HEAD,
        RESPONSE_BODY,
    }
)
ALIASES = {
    "args": ("query", "body"),
    "args.names": ("query.names", "body.names"),
    "args.names.offsite": ("query.names.offsite", "body.names.offsite"),
}
HEAD_KEYS = frozenset(
    {
        "method",
        "uri",
        "path",
        "query",
        "query.names",
        "cookies",
        "cookies.names",
        "headers",
        "headers.names",
        "headers.raw",
        "query.names.offsite",
    }
)
BODY_KEYS = frozenset(
    {"body", "body.names", "body.raw", "body.files", "body.names.offsite", "body.json.names.offsite"}
)
#: The four phases by their public name (rule files, ``devsecmw rules list``) -> the engine's
#: own phase name (``Detector.inspect(request, "head")``).
PHASES = {
    "request.head": "head",
    "request.body": "body",
    "response.head": RESPONSE_HEAD,
    "response.body": RESPONSE_BODY,
}

RULE_KEYS = frozenset(
    {
        "id",
        "name",
        "type",
        "category",
        "severity",
        "paranoia",
        "targets",
        "exclude",
        "transforms",
        "operator",
        "value",
        "tags",
        "examples",
        "description",
        "phase",
        "secret",
    }
)
DEFAULT_RULESET = "devsecmw-core"


class RuleError(ValueError):
    """A rule file is invalid. The message names the file, the rule and the problem."""


@dataclass(frozen=True, slots=True, eq=False)
class Rule:
    id: str
    name: str
    type: str
    severity: Severity
    paranoia: int
    #: Concrete target keys (aliases expanded); ``header:<name>`` keys allowed.
    targets: frozenset[str]
    exclude: frozenset[str]
    transforms: tuple[str, ...]
    operator_name: str
    value: Any
    operator: ops.Operator
    category: str = ""
    ruleset: str = DEFAULT_RULESET
    tags: dict[str, Any] = field(default_factory=dict)
    examples_match: tuple[str, ...] = ()
    examples_nomatch: tuple[str, ...] = ()
    source: str = ""
    #: Named locations (``query:q``, ``body:json:user.*``) the rule is narrowed to, by the
    #: location prefix they belong to: a value under that prefix is judged only when its
    #: location is one of them; values elsewhere as the other targets say.
    locations: tuple[tuple[str, tuple[str, ...]], ...] = ()
    #: The evidence is never shown (the match is a credential).
    secret: bool = False

    def wants(self, location: str) -> bool:
        """Whether a signal at ``location`` is within the rule's named locations (if any)."""
        for prefix, names in self.locations:
            if location.startswith(prefix):
                return any(location.startswith(n[:-1]) if n.endswith("*") else location == n for n in names)
        return True

    def applies_to(self, key: str) -> bool:
        if key in self.exclude:
            return False
        if key in self.targets:
            return True
        return key.startswith("header:") and "headers" in self.targets

    @property
    def phases(self) -> frozenset[str]:
        """The engine's phases this rule runs in: ``head``/``body`` (request), or one response
        phase (``response.headers``/``response.body``); see :data:`PHASES`."""
        keys = {k if not k.startswith("header:") else "headers" for k in self.targets}
        out = set()
        if keys & HEAD_KEYS:
            out.add("head")
        if keys & BODY_KEYS:
            out.add("body")
        out.update(keys & {RESPONSE_HEAD, RESPONSE_BODY})
        return frozenset(out)

    @property
    def phase_names(self) -> tuple[str, ...]:
        """The public names of :attr:`phases` (``request.head``...), in request order."""
        return tuple(name for name, phase in PHASES.items() if phase in self.phases)

    def matches_value(self, value: str) -> tuple[int, int] | None:
        """Run this rule alone on one raw value (transforms + operator): for tests and tooling."""
        view = tf.apply_chain(value, self.transforms)

        class _Item:
            utf8 = True

        return self.operator.evaluate(view, _Item())


def _fail(source: str, rule_id: object, problem: str) -> RuleError:
    where = f"{source}: rule {rule_id!r}" if rule_id is not None else source
    return RuleError(f"{where}: {problem}")


#: Named-location targets: the location prefix, and the target keys whose values carry it.
NAMED = {"query:": ("query",), "cookie:": ("cookies",), "body:": ("body",)}


def _named(n: str) -> str | None:
    """The location prefix of a named-location target (``query:q`` -> ``query:``), or None."""
    prefix = n[: n.find(":") + 1]
    return prefix if prefix in NAMED and len(n) > len(prefix) else None


def _expand_targets(source: str, rid: object, names: object, what: str) -> frozenset[str]:
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise _fail(source, rid, f"{what} must be a list of strings")
    out: set[str] = set()
    for n in names:
        named = _named(n) if what == "targets" else None
        if named is not None:
            out.update(NAMED[named])
        elif n.startswith("header:") and len(n) > 7:
            out.add("header:" + n[7:].lower())
        elif n in ALIASES:
            out.update(ALIASES[n])
        elif n in TARGETS:
            out.add(n)
        else:
            allowed = (
                ", ".join(sorted(TARGETS))
                + ", header:<name>"
                + (", query:<name>, cookie:<name>, body:<kind>:<path>" if what == "targets" else "")
            )
            raise _fail(source, rid, f"invalid target {n!r} (must be one of {allowed})")
    return frozenset(out)


def parse_rule(raw: dict[str, Any], source: str, ruleset: str = DEFAULT_RULESET) -> Rule:
    rid = raw.get("id") if isinstance(raw, dict) else None
    if not isinstance(raw, dict):
        raise _fail(source, None, "each rule must be a JSON object")
    unknown = sorted(set(raw) - RULE_KEYS)
    if unknown:
        raise _fail(source, rid, f"unknown key {unknown[0]!r} (allowed: {', '.join(sorted(RULE_KEYS))})")
    for key in ("id", "name", "type", "operator"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise _fail(source, rid, f"missing or empty {key!r}")
    if raw["type"] not in SIGNAL_TYPES:
        raise _fail(
            source, rid, f"invalid type {raw['type']!r} (must be one of {', '.join(sorted(SIGNAL_TYPES))})"
        )
    try:
        severity = Severity.parse(raw.get("severity", "critical"))
    except ValueError as exc:
        raise _fail(source, rid, str(exc)) from None
    paranoia = raw.get("paranoia", 1)
    if paranoia not in (1, 2, 3, 4):
        raise _fail(source, rid, f"invalid paranoia {paranoia!r} (must be 1, 2, 3 or 4)")
    targets = _expand_targets(source, rid, raw.get("targets"), "targets")
    if not targets:
        raise _fail(source, rid, "targets must not be empty")
    named: dict[str, list[str]] = {}
    for n in raw["targets"]:
        prefix = _named(n)
        if prefix is not None:
            named.setdefault(prefix, []).append(n)
    # A family also named whole ("query" beside "query:q") keeps all its values.
    whole = set(raw["targets"]) | {t for a in raw["targets"] if a in ALIASES for t in ALIASES[a]}
    locations = tuple(
        (prefix, tuple(names)) for prefix, names in sorted(named.items()) if not set(NAMED[prefix]) & whole
    )
    exclude = _expand_targets(source, rid, raw.get("exclude", []), "exclude")
    _check_phase(source, rid, raw, targets)
    if not isinstance(raw.get("secret", False), bool):
        raise _fail(source, rid, "secret must be true or false")
    transforms = raw.get("transforms", [])
    if not isinstance(transforms, list):
        raise _fail(source, rid, "transforms must be a list of names")
    for t in transforms:
        try:
            tf.get(t)
        except ValueError as exc:
            raise _fail(source, rid, str(exc)) from None
    try:
        operator = ops.build(raw["operator"], raw.get("value"))
    except (ValueError, TypeError, ImportError, AttributeError) as exc:
        raise _fail(source, rid, f"operator {raw['operator']!r}: {exc}") from None
    examples = raw.get("examples", {})
    if not isinstance(examples, dict) or set(examples) - {"match", "nomatch"}:
        raise _fail(source, rid, "examples must be an object with 'match' and 'nomatch' lists")
    tags = raw.get("tags", {})
    if not isinstance(tags, dict):
        raise _fail(source, rid, "tags must be an object")
    return Rule(
        id=raw["id"],
        name=raw["name"],
        type=raw["type"],
        severity=severity,
        paranoia=paranoia,
        targets=targets,
        exclude=exclude,
        transforms=tuple(transforms),
        operator_name=raw["operator"],
        value=raw.get("value"),
        operator=operator,
        category=str(raw.get("category") or raw["type"]),
        ruleset=ruleset,
        tags=tags,
        examples_match=tuple(examples.get("match", ())),
        examples_nomatch=tuple(examples.get("nomatch", ())),
        source=source,
        locations=locations,
        secret=raw.get("secret", False),
    )


def _check_phase(source: str, rid: object, raw: dict[str, Any], targets: frozenset[str]) -> None:
    """A rule runs either on the request or on the response (its targets say where); a stated
    ``phase`` must be where its targets put it."""
    response = targets & {RESPONSE_HEAD, RESPONSE_BODY}
    if response and (len(response) > 1 or len(targets) > 1):
        raise _fail(
            source,
            rid,
            f"a response rule has one target, {RESPONSE_HEAD!r} or {RESPONSE_BODY!r}, and no other",
        )
    phase = raw.get("phase")
    if phase is None:
        return
    if phase not in PHASES:
        raise _fail(source, rid, f"invalid phase {phase!r} (must be one of {', '.join(PHASES)})")
    keys = {k if not k.startswith("header:") else "headers" for k in targets}
    where = {
        "request.head": HEAD_KEYS,
        "request.body": BODY_KEYS,
        "response.head": {RESPONSE_HEAD},
        "response.body": {RESPONSE_BODY},
    }[phase]
    if not keys <= where:
        raise _fail(
            source,
            rid,
            f"phase {phase!r} does not fit targets {sorted(keys - where)} (drop 'phase' or fix the targets)",
        )


def parse_ruleset(doc: Any, source: str) -> list[Rule]:
    if isinstance(doc, list):
        doc = {"rules": doc}
    if not isinstance(doc, dict) or not isinstance(doc.get("rules"), list):
        raise _fail(source, None, "a rule file must be an object with a 'rules' list")
    ruleset = str(doc.get("ruleset") or DEFAULT_RULESET)
    return [parse_rule(r, source, ruleset) for r in doc["rules"]]


def load_file(path: str | Path) -> list[Rule]:
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RuleError(f"{p}: cannot read rule file: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise RuleError(f"{p}: not valid JSON: {exc}") from None
    return parse_ruleset(doc, str(p))


def packaged_files() -> list[tuple[str, str]]:
    """``(name, text)`` of the rule files shipped inside the package, in name order."""
    base = resources.files("devsecmw.engine") / "rules"
    out = []
    for entry in sorted(base.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".json"):
            out.append((entry.name, entry.read_text(encoding="utf-8")))
    return out


def load_packaged() -> list[Rule]:
    rules: list[Rule] = []
    for name, text in packaged_files():
        source = f"devsecmw/engine/rules/{name}"
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise RuleError(f"{source}: not valid JSON: {exc}") from None
        rules.extend(parse_ruleset(doc, source))
    return rules


def load_all(extra_files: Sequence[str] = (), disabled: Iterable[str] = ()) -> list[Rule]:
    """Packaged rules, then user files; ids must be unique; ``disabled`` ids are dropped."""
    rules = load_packaged()
    for f in extra_files:
        rules.extend(load_file(f))
    seen: dict[str, str] = {}
    for r in rules:
        if r.id in seen:
            raise RuleError(f"{r.source}: rule {r.id!r}: duplicate id (also in {seen[r.id]})")
        seen[r.id] = r.source
    disabled = set(disabled)
    unknown = disabled - set(seen)
    if unknown:
        raise RuleError(f"disabled_rules: unknown rule id {sorted(unknown)[0]!r}")
    return [r for r in rules if r.id not in disabled]


#: Where every attack type keeps a rule able to flag an attack on its own: request parameters.
PARAMETER_TARGETS = ("query", "body")


def check_switched_off(
    rules: Sequence[Rule], off: Iterable[str], paranoia: int, attack_threshold: int
) -> None:
    """Refuse to switch a rule off everywhere when that switches its whole signal type off.

    Some attack types have one rule that does the work on request parameters at a given
    paranoia level: a code detector (941100 is the XSS tokenizer, 942100 the SQL one) whose
    siblings only see raw bodies, paths or lone probes. Switching such a rule off by id
    (``disabled_rules``) silently turned the category off. ``off`` are those ids; a
    :class:`RuleError` says what would be lost and what to write instead: an exclusion scoped
    to where the rule misfires, or the type itself when that is really the intent.
    """
    off = set(off)
    if not off:
        return
    active = [r for r in rules if r.paranoia <= paranoia]
    for rule in active:
        if rule.id not in off or int(rule.severity) < attack_threshold:
            continue
        kept = [
            r
            for r in active
            if r.type == rule.type and r.id not in off and int(r.severity) >= attack_threshold
        ]
        lost = [t for t in PARAMETER_TARGETS if rule.applies_to(t) and not any(r.applies_to(t) for r in kept)]
        if lost:
            raise RuleError(
                f"devsecmw: switching rule {rule.id!r} off everywhere would switch {rule.type} "
                f"detection off in request parameters ({', '.join(lost)}) at paranoia level "
                f"{paranoia}: no other {rule.type} rule there flags an attack on its own. "
                "Where it misfires, exclude it there instead: "
                f'{{"rules": ["{rule.id}"], "location": "query:q"}} (or "route": "/cms/{{id}}"); '
                f'to switch {rule.type} off on purpose, exclude the type: {{"rules": ["{rule.type}"]}}'
            )


__all__ = [
    "ALIASES",
    "BODY_KEYS",
    "HEAD_KEYS",
    "PARAMETER_TARGETS",
    "PHASES",
    "RESPONSE_BODY",
    "RESPONSE_HEAD",
    "TARGETS",
    "Rule",
    "RuleError",
    "check_switched_off",
    "load_all",
    "load_file",
    "load_packaged",
    "packaged_files",
    "parse_rule",
    "parse_ruleset",
]

"""Option values: the errors, the exclusion type, and the strict parsing of every value.

The part of :mod:`devsecmw.config` that knows no :class:`~devsecmw.config.Config`: the
configuration sources and ``Config`` itself use it, and :mod:`devsecmw.config` re-exports its
public names (``from devsecmw.config import ConfigError`` is the documented spelling).
"""

from __future__ import annotations

import dataclasses
import importlib
import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .signals import SIGNAL_TYPES

if TYPE_CHECKING:
    from .signals import Signal


#: ``before_emit(signal) -> signal | None``: drop (None), alter or enrich a signal before it is emitted.
BeforeEmit = Callable[["Signal"], "Signal | None"]


class ConfigError(ValueError):
    """Bad configuration. Raised at construction, never per request."""


#: An IP network of ``trusted_proxies`` / ``allow_networks``.
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: Iterable[str], option: str) -> tuple[Network, ...]:
    """CIDRs or single addresses; a bad entry is a configuration error naming the option."""
    out = []
    for v in values:
        try:
            out.append(ipaddress.ip_network(v.strip(), strict=False))
        except ValueError:
            raise ConfigError(
                f"devsecmw: invalid {option} entry {v!r} (must be an IP address or CIDR network)"
            ) from None
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Exclusion:
    """Switch rules off where they are known to misfire.

    ``rules`` are rule ids, or signal types, or ``"*"``, or rule tags: ``tag:<name>`` (rules
    that carry the tag) or ``tag:<name>=<value>`` (``tag:cwe=89``), expanded to rule ids when
    the middleware starts (:func:`expand_tags`); ``route`` matches the
    route template (``http.route``) or, when the framework gives none, the
    path, whatever the framework's template syntax: ``/cms/{id}`` matches
    Flask's ``/cms/<int:page_id>``, Django's ``cms/<int:pk>/`` and Starlette's
    ``/cms/{page_id:int}`` (see :func:`route_key`), and a route ending in ``*``
    matches by prefix; ``location`` matches a signal location exactly
    (``query:q``, ``header:x-custom``, ``body:json:comment.html``) or by prefix
    when it ends with ``*`` (``body:json:page.*``).
    """

    rules: tuple[str, ...] = ("*",)
    route: str | None = None
    location: str | None = None
    #: ``route`` in the one template syntax of :func:`route_key` (computed once).
    _route_key: str | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.route is not None:
            object.__setattr__(self, "_route_key", route_key(self.route))

    def applies(self, rule_id: str | None, signal_type: str, route: str | None, location: str) -> bool:
        if "*" not in self.rules and signal_type not in self.rules and rule_id not in self.rules:
            return False
        if self._route_key is not None:
            here = route_key(route or "")
            want = self._route_key
            if want.endswith("*"):
                if not here.startswith(want[:-1]):
                    return False
            elif here != want:
                return False
        if self.location is not None:
            if self.location.endswith("*"):
                return location.startswith(self.location[:-1])
            return location == self.location
        return True


def route_key(route: str) -> str:
    """A route template in one syntax, so that an exclusion written once matches every framework.

    Parameters (Flask/Django ``<int:id>``, Starlette/FastAPI ``{id:int}``) become ``{}``
    whatever their name and converter, and the leading and trailing ``/`` go (Django's
    patterns have no leading one): ``/cms/<int:page_id>``, ``cms/<int:pk>/`` and
    ``/cms/{id}`` are all ``cms/{}``. One linear pass (a path without a template
    reaches it too).
    """
    out: list[str] = []
    close = ""
    for ch in route:
        if close:
            if ch == close:
                close = ""
            continue
        if ch == "<" or ch == "{":
            close = ">" if ch == "<" else "}"
            out.append("{}")
            continue
        out.append(ch)
    return "".join(out).strip("/")


def reason(exc: Exception) -> str:
    text = str(exc)
    return text[len("devsecmw: ") :] if text.startswith("devsecmw: ") else text


# --------------------------------------------------------------------------- strict parsing

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
_DURATION = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*", re.IGNORECASE)
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
#: Options whose entries are networks, and those whose entries are paths.
NETWORK_OPTIONS = frozenset({"allow_networks", "trusted_proxies"})
PATH_OPTIONS = frozenset({"ignore_paths", "allow_paths"})


def parse_value(name: str, f: dataclasses.Field[Any], value: Any, key: str, source: str) -> Any:
    """``value`` as option ``name`` takes it, or a :class:`ConfigError` naming ``key`` and ``source``.

    Strings (the environment, a file, anything) are parsed by the option's type; typed values
    (keyword arguments, TOML, Python settings) must already have it.
    """
    default = f.default if f.default is not dataclasses.MISSING else None

    def bad(what: str) -> ConfigError:
        return ConfigError(f"devsecmw: {key} ({source}): {value!r} {what}")

    if name == "exclusions":
        return _exclusions(value, key, source)
    if name == "before_emit":
        return _hook(value, key, source)
    if name == "emitters":
        return _emitters(value, key, source)
    if name == "time_ceiling":  # a duration, or None / "auto": ten times time_budget
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "auto")):
            return None
        default = 0.0  # parsed as a duration below
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise bad("is not a boolean (true/false, 1/0, yes/no, on/off)")
    if isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value.strip().replace("_", ""))
            except ValueError:
                pass
        raise bad("is not an integer")
    if isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            m = _DURATION.fullmatch(value)
            if m is not None:
                return float(m.group(1)) * _UNITS[(m.group(2) or "s").lower()]
        raise bad("is not a duration (seconds, or a number with ms, s, m or h: 0.05, 50ms, 5m)")
    if isinstance(default, tuple):
        if isinstance(value, str):
            items: tuple[str, ...] = _split_list(value)
        elif isinstance(value, (list, tuple)) and all(
            isinstance(v, (str, int)) and not isinstance(v, bool) for v in value
        ):
            items = tuple(str(v).strip() for v in value)
        else:
            raise bad("is not a list of strings (or a comma-separated string)")
        _check_items(name, items, key, source)
        return items
    if isinstance(default, str) or (default is None and f.type in ("str | None", "Optional[str]")):
        if not isinstance(value, str):
            raise bad("is not a string")
        return value.strip().lower() if name == "mode" else value
    return value  # an option of another kind (validated by Config itself)


def _check_items(name: str, items: tuple[str, ...], key: str, source: str) -> None:
    for item in items:
        if name in NETWORK_OPTIONS:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ConfigError(
                    f"devsecmw: {key} ({source}): {item!r} is not an IP address or CIDR network"
                ) from None
        elif name in PATH_OPTIONS and not item.startswith("/"):
            raise ConfigError(f"devsecmw: {key} ({source}): {item!r} is not a path (it must start with /)")


def _split_list(raw: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in raw.replace(";", ",").split(",") if p.strip())


def _hook(value: Any, key: str, source: str) -> BeforeEmit | None:
    if value is None or callable(value):
        return value  # type: ignore[no-any-return]
    if isinstance(value, str) and ":" in value:
        module, _, attr = value.strip().partition(":")
        try:
            hook = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"devsecmw: {key} ({source}): cannot import {value!r}: {exc}") from None
        if callable(hook):
            return hook  # type: ignore[no-any-return]
    raise ConfigError(
        f"devsecmw: {key} ({source}): {value!r} is not a callable nor a 'module:function' to import"
    )


def _emitters(value: Any, key: str, source: str) -> tuple[Any, ...]:
    """Output objects (``emit(emission)``), or ``"module:attr"`` names of them (a class is
    instantiated with no argument), one or a list (comma-separated in the environment)."""
    items = _split_list(value) if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        items = (items,)
    out = []
    for item in items:
        if isinstance(item, str) and ":" in item:
            module, _, attr = item.strip().partition(":")
            try:
                item = getattr(importlib.import_module(module), attr)
                item = item() if isinstance(item, type) else item
            except (ImportError, AttributeError, TypeError) as exc:
                raise ConfigError(f"devsecmw: {key} ({source}): cannot import {item!r}: {exc}") from None
        if not callable(getattr(item, "emit", None)):
            raise ConfigError(
                f"devsecmw: {key} ({source}): {item!r} is not an output (an object with emit(emission)) "
                "nor a 'module:attr' to import"
            )
        out.append(item)
    return tuple(out)


def _exclusions(value: Any, key: str, source: str) -> tuple[Exclusion, ...]:
    if isinstance(value, str):  # from the environment: a JSON list of objects
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ConfigError(f"devsecmw: {key} ({source}): not a JSON list of exclusions: {exc}") from None
    if isinstance(value, (Mapping, Exclusion)):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"devsecmw: {key} ({source}): {value!r} is not a list of exclusions")
    out = []
    for i, v in enumerate(value):
        try:
            out.append(_exclusion(v))
        except ConfigError as exc:
            raise ConfigError(f"devsecmw: {key}[{i}] ({source}): {reason(exc)}") from None
    return tuple(out)


def _exclusion(value: Any) -> Exclusion:
    if isinstance(value, Exclusion):
        return value
    if isinstance(value, Mapping):
        extra = set(value) - {"rules", "route", "location"}
        if extra:
            raise ConfigError(
                f"devsecmw: invalid exclusion key {sorted(extra)[0]!r} (allowed: rules, route, location)"
            )
        rules = value.get("rules", ("*",))
        if isinstance(rules, str):
            rules = (rules,)
        for name in ("route", "location"):
            if value.get(name) is not None and not isinstance(value[name], str):
                raise ConfigError(f"devsecmw: invalid exclusion {name} {value[name]!r} (must be a string)")
        if not isinstance(rules, (list, tuple)) or not rules:
            raise ConfigError(f"devsecmw: invalid exclusion rules {rules!r} (must be a non-empty list)")
        x = Exclusion(tuple(str(r) for r in rules), value.get("route"), value.get("location"))
        check_exclusion(x)
        return x
    raise ConfigError(f"devsecmw: invalid exclusion {value!r} (must be a mapping with rules/route/location)")


#: A word that is no rule id: in an exclusion's ``rules`` it must be a signal type.
_TYPE_LIKE = re.compile(r"[a-z_]+")


def check_exclusion(x: Exclusion) -> None:
    for r in x.rules:
        if r != "*" and r not in SIGNAL_TYPES and _TYPE_LIKE.fullmatch(r):
            raise ConfigError(
                f"devsecmw: invalid exclusion rule {r!r}: not a signal type nor a rule id "
                f"(signal types: {', '.join(sorted(SIGNAL_TYPES))})"
            )


def expand_tags(exclusions: Sequence[Exclusion], rules: Sequence[Any]) -> tuple[Exclusion, ...]:
    """``exclusions`` with their ``tag:`` entries replaced by the ids of the ``rules`` (objects
    with ``id`` and ``tags``) that carry the tag. A tag no rule carries is a configuration error:
    a typo would otherwise switch nothing off, silently."""
    out = []
    for x in exclusions:
        if not any(r.startswith("tag:") for r in x.rules):
            out.append(x)
            continue
        names: list[str] = []
        for entry in x.rules:
            if not entry.startswith("tag:"):
                names.append(entry)
                continue
            tag, has_value, want = entry[4:].partition("=")
            ids = [
                r.id
                for r in rules
                if tag in r.tags
                and (
                    not has_value
                    or str(r.tags[tag]) == want
                    or (isinstance(r.tags[tag], list) and want in map(str, r.tags[tag]))
                )
            ]
            if not ids:
                raise ConfigError(
                    f"devsecmw: invalid exclusion rule {entry!r}: no loaded rule carries that tag"
                )
            names.extend(ids)
        out.append(Exclusion(tuple(dict.fromkeys(names)), x.route, x.location))
    return tuple(out)


def path_set(paths: Sequence[str]) -> tuple[set[str], tuple[str, ...]]:
    """``ignore_paths``/``allow_paths`` as exact paths and prefixes (an entry ending in ``*``)."""
    return {p for p in paths if not p.endswith("*")}, tuple(p[:-1] for p in paths if p.endswith("*"))

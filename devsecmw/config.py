"""Configuration: keyword arguments first, ``DEVSECMW_*`` environment variables as fallback.

Every option is validated when the middleware is constructed, so a typo stops
the application at start-up with a message that names the option and the
allowed values, instead of silently running with a default in production.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .signals import ATTACK_TYPES

MODES = ("monitor", "block")


class ConfigError(ValueError):
    """Bad configuration. Raised at construction, never per request."""


def _split_list(raw: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in raw.replace(";", ",").split(",") if p.strip())


@dataclass(frozen=True, slots=True)
class Exclusion:
    """Switch rules off where they are known to misfire.

    ``rules`` are rule ids, or signal types, or ``"*"``; ``route`` matches the
    route template (``http.route``) or, when the framework gives none, the
    path; ``location`` matches a signal location exactly (``body:json:content``)
    or by prefix when it ends with ``*`` (``body:json:page.*``).
    """

    rules: tuple[str, ...] = ("*",)
    route: str | None = None
    location: str | None = None

    def applies(self, rule_id: str | None, signal_type: str, route: str | None, location: str) -> bool:
        if "*" not in self.rules and signal_type not in self.rules and rule_id not in self.rules:
            return False
        if self.route is not None and self.route != route:
            return False
        if self.location is not None:
            if self.location.endswith("*"):
                return location.startswith(self.location[:-1])
            return location == self.location
        return True


@dataclass(frozen=True, slots=True)
class Config:
    """All options of devsecmw. Build it with :meth:`Config.from_options`."""

    #: ``"monitor"`` (default) only observes; ``"block"`` answers 403 to attacks.
    mode: str = "monitor"
    #: 1 (default) to 4: higher levels enable stricter rules, with more false positives.
    paranoia_level: int = 1
    #: Bytes of request body inspected, across chunks (the inspection cap).
    body_limit: int = 64 * 1024
    #: Bytes of textual response body sniffed for leaks.
    response_limit: int = 32 * 1024
    #: Seconds of inspection per request after which devsecmw stops looking (fail open, counted).
    #: A safety net far above the typical cost (tens of microseconds; a few ms for 64 KiB bodies),
    #: measured in wall time, so a loaded machine should not cut ordinary inspection short.
    time_budget: float = 0.050
    #: Score at which a request is classified ``attack``.
    attack_threshold: int = 5
    #: Score at which ``mode="block"`` blocks a request.
    block_threshold: int = 5
    #: Span events per request; further signals are counted, not emitted.
    max_events: int = 32
    #: Rule ids to switch off everywhere.
    disabled_rules: tuple[str, ...] = ()
    #: Extra rule files (JSON) loaded after the packaged ones.
    rule_files: tuple[str, ...] = ()
    #: Per-route and per-parameter exclusions.
    exclusions: tuple[Exclusion, ...] = ()
    #: Extra parameter/header names whose values are secrets (matched case-insensitively, by substring).
    redact_names: tuple[str, ...] = ()
    #: Paths never inspected nor blocked (health checks); exact match or prefix ending in ``*``.
    ignore_paths: tuple[str, ...] = ()
    #: Status code of the block response.
    block_status: int = 403
    #: Block only on these attack signal types (empty: any attack type).
    block_types: tuple[str, ...] = ()
    #: In block mode, also block clients while they are flagged.
    block_flagged: bool = True
    #: Body of the block response (``{trace_id}`` is replaced); default: small JSON or HTML by Accept.
    block_body: str | None = None
    #: Content type of a custom ``block_body``.
    block_content_type: str = "text/plain; charset=utf-8"
    #: Block mode reads the body ahead (up to ``body_limit``) waiting at most this many seconds.
    block_read_timeout: float = 1.0
    #: Monitor mode: once the response is complete, the body the app left unread (a 405, a 404, an
    #: endpoint that ignores it) is read up to ``body_limit`` and inspected, waiting at most this
    #: many seconds for a client that has not sent it yet (0 switches it off).
    unread_timeout: float = 0.1
    #: Client networks never blocked (CIDRs or addresses); still inspected and reported.
    allow_networks: tuple[str, ...] = ()
    #: Paths never blocked (exact, or prefix ending in ``*``); still inspected and reported.
    allow_paths: tuple[str, ...] = ()
    #: Proxies whose ``X-Forwarded-For`` / ``Forwarded`` / ``X-Real-IP`` are believed (CIDRs or addresses).
    trusted_proxies: tuple[str, ...] = ()
    #: Or: the number of proxies in front of every request (the N-th forwarded address from the right).
    trusted_hops: int = 0
    #: Clients tracked for per-client thresholds (least recently seen evicted beyond this).
    max_clients: int = 100_000
    #: Seconds of the per-client sliding window.
    client_window: float = 60.0
    #: Seconds a client stays flagged after crossing a threshold.
    flag_ttl: float = 300.0
    #: Per-client thresholds within one window (0 switches one off).
    flag_attacks: int = 10
    flag_404s: int = 50
    flag_auth_failures: int = 20
    flag_5xx: int = 20

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"devsecmw: invalid mode {self.mode!r} (must be one of {', '.join(MODES)})")
        if self.paranoia_level not in (1, 2, 3, 4):
            raise ConfigError(
                f"devsecmw: invalid paranoia_level {self.paranoia_level!r} (must be 1, 2, 3 or 4)"
            )
        for name, low in (
            ("body_limit", 0),
            ("response_limit", 0),
            ("max_events", 1),
            ("attack_threshold", 1),
            ("block_threshold", 1),
            ("trusted_hops", 0),
            ("max_clients", 1),
            ("flag_attacks", 0),
            ("flag_404s", 0),
            ("flag_auth_failures", 0),
            ("flag_5xx", 0),
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigError(f"devsecmw: invalid {name} {value!r} (must be an integer >= {low})")
        for name in ("time_budget", "client_window", "block_read_timeout", "flag_ttl", "unread_timeout"):
            value = getattr(self, name)
            zero_ok = name in ("flag_ttl", "unread_timeout")
            if (
                not isinstance(value, (int, float))
                or isinstance(value, bool)
                or not (value >= 0 if zero_ok else value > 0)
            ):
                raise ConfigError(
                    f"devsecmw: invalid {name} {value!r} (must be a number of seconds "
                    f"{'>= 0' if zero_ok else '> 0'})"
                )
        unknown = sorted(set(self.block_types) - ATTACK_TYPES)
        if unknown:
            raise ConfigError(
                f"devsecmw: invalid block_types entry {unknown[0]!r} "
                f"(must be attack types: {', '.join(sorted(ATTACK_TYPES))})"
            )
        from .clients import parse_networks  # validates at construction: fail fast

        parse_networks(self.allow_networks, "allow_networks")
        parse_networks(self.trusted_proxies, "trusted_proxies")
        ctype = self.block_content_type
        if not isinstance(ctype, str) or not ctype.isascii() or not ctype.isprintable() or not ctype.strip():
            raise ConfigError(
                f"devsecmw: invalid block_content_type {ctype!r} (must be a printable ASCII media type)"
            )
        if not 400 <= self.block_status <= 599:
            raise ConfigError(
                f"devsecmw: invalid block_status {self.block_status!r} (must be a 4xx or 5xx code)"
            )

    @classmethod
    def from_options(
        cls, options: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
    ) -> Config:
        """Build a config from keyword options, falling back to ``DEVSECMW_<NAME>`` variables."""
        options = dict(options or {})
        env = os.environ if environ is None else environ
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - set(names))
        if unknown:
            raise TypeError(
                f"devsecmw: unknown option {unknown[0]!r} (valid options: {', '.join(sorted(names))})"
            )
        values: dict[str, Any] = {}
        for name, f in names.items():
            if name in options:
                values[name] = _coerce(name, f, options[name])
                continue
            raw = env.get("DEVSECMW_" + name.upper())
            if raw is not None and raw != "":
                values[name] = _coerce(name, f, raw)
        return cls(**values)


def _coerce(name: str, f: dataclasses.Field[Any], value: Any) -> Any:
    default = f.default if f.default is not dataclasses.MISSING else None
    try:
        if name == "exclusions":
            if isinstance(value, str):  # from the environment: a JSON list of objects
                value = json.loads(value)
            if isinstance(value, Mapping):
                value = [value]
            return tuple(_exclusion(v) for v in value)
        if isinstance(default, bool):
            if isinstance(value, str):
                return value.strip().lower() in ("1", "true", "yes", "on")
            return bool(value)
        if isinstance(default, int):
            return int(value) if isinstance(value, str) else value
        if isinstance(default, float):
            return float(value) if isinstance(value, str) else value
        if isinstance(default, tuple):
            if isinstance(value, str):
                return _split_list(value)
            if isinstance(value, Sequence):
                return tuple(str(v) for v in value)
            raise TypeError
        if isinstance(default, str):
            return str(value).strip().lower() if name == "mode" else str(value)
    except ConfigError:
        raise
    except (TypeError, ValueError):
        raise ConfigError(f"devsecmw: invalid {name} {value!r}") from None
    return value


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
        return Exclusion(tuple(str(r) for r in rules), value.get("route"), value.get("location"))
    raise ConfigError(f"devsecmw: invalid exclusion {value!r} (must be a mapping with rules/route/location)")


__all__ = ["MODES", "Config", "ConfigError", "Exclusion"]

"""Configuration: where each framework keeps it, one precedence, strict parsing.

Sources, highest first (the first that sets an option wins):

1. keyword arguments (``SecurityMiddleware(app, mode="block")``, ``init_app(app, ...)``);
2. environment variables ``DEVSECMW_<OPTION>`` (an operator's override per deployment);
3. the framework's configuration: Flask ``app.config["DEVSECMW_<OPTION>"]``, Django
   ``settings.DEVSECMW = {"<option>": ...}``;
4. a file: ``$DEVSECMW_CONFIG``, else ``devsecmw.toml`` then ``pyproject.toml``
   (``[tool.devsecmw]``) in the current directory;
5. the defaults of :class:`Config`.

Every value is parsed strictly for its option's type (booleans are only
true/false/1/0/yes/no/on/off, durations take ``ms``/``s``/``m``/``h``, networks
must parse, paths start with ``/``, exclusions name known signal types) when the
middleware is constructed, so a typo stops the application at start-up with a
message that names the source and the key (``devsecmw: DEVSECMW_BLOCK_FLAGGED
(environment): 'flase' is not a boolean ...``) instead of silently running with a
default in production. :func:`resolve` also tells where each value came from
(``devsecmw config`` prints it).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config_values import (
    PATH_OPTIONS,
    BeforeEmit,
    ConfigError,
    Exclusion,
    Network,
    check_exclusion,
    expand_tags,
    parse_networks,
    parse_value,
    reason,
    route_key,
)
from .signals import ATTACK_TYPES

if TYPE_CHECKING:
    from .telemetry.emitter import Emitter

MODES = ("monitor", "block")


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
    #: Characters of the query string parsed and inspected (64 KiB: no form sends more in a URL;
    #: beyond it, its first ``query_limit`` characters are inspected and ``inspection_incomplete``
    #: says so).
    query_limit: int = 64 * 1024
    #: Characters of the path inspected (8 KiB: Apache's and nginx's default request-line limit).
    path_limit: int = 8 * 1024
    #: Characters of each header value inspected (8 KiB: the common server limit per field).
    header_limit: int = 8 * 1024
    #: Headers inspected per request (100: Apache's ``LimitRequestFields`` and gunicorn's default).
    max_headers: int = 100
    #: Named values inspected per location: query parameters, cookies, form fields, JSON members,
    #: multipart parts (1,000: Django's ``DATA_UPLOAD_MAX_NUMBER_FIELDS``, PHP's ``max_input_vars``).
    max_params: int = 1000
    #: CPU seconds (this thread's, ``time.thread_time``) of inspection per request, parsing included,
    #: after which devsecmw stops looking (fail open, counted, ``inspection_incomplete``). CPU
    #: time, so that a loaded machine does not cut inspection short; typical cost is tens of
    #: microseconds, a few ms for 64 KiB bodies.
    time_budget: float = 0.050
    #: Wall-clock seconds of inspection per request, whatever the CPU time: the safety net.
    #: ``None``: ten times ``time_budget`` (500 ms by default; 16 threads on 2 loaded cores,
    #: 5 times cut 2 to 8 of 16,000 attacks short, 10 times none).
    time_ceiling: float | None = None
    #: In block mode, also block requests whose inspection a cap or the budget cut short
    #: (``inspection_incomplete``). Off by default: padding is reported, not blocked.
    block_incomplete: bool = False
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
    #: Characters of ``url.path``, ``url.query`` and ``user_agent.original`` kept on a span; a longer
    #: value is cut and ends with ``…[truncated]`` (redaction only looks at what is kept).
    attribute_limit: int = 1024
    #: ``before_emit(signal) -> signal | None`` called on each signal before it is emitted: return
    #: it (altered or not) to keep it, None to drop it. A callable, or ``"module:function"`` in
    #: the environment or a file. An exception in the hook keeps the signal (fail open, counted).
    before_emit: BeforeEmit | None = field(default=None, compare=False)
    #: Outputs besides OpenTelemetry: objects with ``emit(emission)`` (see
    #: :mod:`devsecmw.telemetry.emitter`), told about every inspected request once, when it ends;
    #: ``"module:attr"`` entries (a class is instantiated) in the environment or a file.
    emitters: tuple[Emitter, ...] = field(default=(), compare=False)
    #: Regular expressions (RE2, searched in the full URL ``scheme://host/path?query``) of requests
    #: never inspected, as OpenTelemetry's ``OTEL_PYTHON_EXCLUDED_URLS`` (the instrumentor fills it
    #: from there and from ``OTEL_PYTHON_DEVSECMW_EXCLUDED_URLS``).
    excluded_urls: tuple[str, ...] = ()
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
    #: Behind a loopback or private proxy left out of it, its users share its address: then nothing
    #: is blocked by client on that address (a warning says so once), only requests on their own signals.
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
    #: Where per-client windows live: ``""`` (default) in each process, or a Redis URL
    #: (``redis://host:6379/0``, ``rediss://``, ``unix://``; needs ``devsecmw[redis]``) shared by
    #: every worker and host. Falls back to the process's own table while Redis is unreachable.
    client_store: str = ""
    #: Use Hyperscan as the multi-pattern gate when it is installed (``devsecmw[hyperscan]``);
    #: false keeps every scan on RE2 (and never imports it). One rule set compiled with each
    #: value is kept per process: engines with the same rules and the same two options share it.
    hyperscan: bool = True
    #: Where the compiled Hyperscan database is cached: ``""`` (default) ``$XDG_CACHE_HOME/devsecmw``,
    #: else ``~/.cache/devsecmw``; ``"off"``: no file (each process compiles).
    cache_dir: str = ""

    def __post_init__(self) -> None:
        # In this order: the first bad option is the one reported.
        self._check_choices()
        self._check_integers()
        self._check_durations()
        self._check_blocking()
        _check_extras(self)

    def _check_choices(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"devsecmw: invalid mode {self.mode!r} (must be one of {', '.join(MODES)})")
        if self.paranoia_level not in (1, 2, 3, 4):
            raise ConfigError(
                f"devsecmw: invalid paranoia_level {self.paranoia_level!r} (must be 1, 2, 3 or 4)"
            )

    def _check_integers(self) -> None:
        for name, low in (
            ("body_limit", 0),
            ("response_limit", 0),
            ("query_limit", 1),
            ("path_limit", 1),
            ("header_limit", 1),
            ("max_headers", 1),
            ("max_params", 1),
            ("max_events", 1),
            ("attribute_limit", 64),
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

    def _check_durations(self) -> None:
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
        ceiling = self.time_ceiling
        if ceiling is not None and (
            not isinstance(ceiling, (int, float))
            or isinstance(ceiling, bool)
            or not ceiling >= self.time_budget
        ):
            raise ConfigError(
                f"devsecmw: invalid time_ceiling {ceiling!r} (must be a number of seconds >= time_budget "
                f"{self.time_budget!r}, or None for 10 x time_budget)"
            )

    def _check_blocking(self) -> None:
        """The block-mode options, the client options and the networks."""
        if not isinstance(self.block_incomplete, bool):
            raise ConfigError(
                f"devsecmw: invalid block_incomplete {self.block_incomplete!r} (must be a bool)"
            )
        unknown = sorted(set(self.block_types) - ATTACK_TYPES)
        if unknown:
            raise ConfigError(
                f"devsecmw: invalid block_types entry {unknown[0]!r} "
                f"(must be attack types: {', '.join(sorted(ATTACK_TYPES))})"
            )
        # validates at construction: fail fast
        parse_networks(self.allow_networks, "allow_networks")
        parse_networks(self.trusted_proxies, "trusted_proxies")
        store = self.client_store
        if not isinstance(store, str) or (
            store and not store.startswith(("redis://", "rediss://", "unix://"))
        ):
            raise ConfigError(
                f"devsecmw: invalid client_store {store!r} "
                "(must be empty or a redis://, rediss:// or unix:// URL)"
            )
        ctype = self.block_content_type
        if not isinstance(ctype, str) or not ctype.isascii() or not ctype.isprintable() or not ctype.strip():
            raise ConfigError(
                f"devsecmw: invalid block_content_type {ctype!r} (must be a printable ASCII media type)"
            )
        if not 400 <= self.block_status <= 599:
            raise ConfigError(
                f"devsecmw: invalid block_status {self.block_status!r} (must be a 4xx or 5xx code)"
            )

    @property
    def wall_ceiling(self) -> float:
        """The wall-clock ceiling of inspection per request, in seconds."""
        return self.time_budget * 10 if self.time_ceiling is None else self.time_ceiling

    @classmethod
    def from_options(
        cls,
        options: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
        *,
        framework: Layer | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> Config:
        """Build a config from keyword options, ``DEVSECMW_<NAME>`` variables, the framework's
        configuration (a :class:`Layer`) and the configuration file, in that order of precedence.

        ``environ`` defaults to ``os.environ``; the file is ``$DEVSECMW_CONFIG``, else
        ``devsecmw.toml`` or ``pyproject.toml`` (``[tool.devsecmw]``) in ``cwd`` (the current
        directory by default).
        """
        return resolve(sources(options, environ, framework=framework, cwd=cwd))[0]


# --------------------------------------------------------------------------- sources

ENV_PREFIX = "DEVSECMW_"
#: The variable naming the configuration file (``none`` or empty: no file is read).
CONFIG_FILE_ENV = "DEVSECMW_CONFIG"
FILE_NAMES = ("devsecmw.toml", "pyproject.toml")
DEFAULT_SOURCE = "default"
KWARGS_SOURCE = "keyword argument"


@dataclass(frozen=True, slots=True)
class Layer:
    """One source of configuration: values by option name, and each key as the user wrote it."""

    #: How errors and ``devsecmw config`` name the source: ``environment``, ``Flask app.config``...
    source: str
    values: Mapping[str, Any]
    #: Option name -> the key in the source (``DEVSECMW_BLOCK_FLAGGED``, ``block_flagged``...).
    keys: Mapping[str, str]

    @classmethod
    def from_mapping(cls, source: str, mapping: Mapping[str, Any], key: Callable[[str], str] = str) -> Layer:
        """Option names as keys (keyword arguments, Django's ``DEVSECMW`` dict, a TOML table).

        Unknown keys are a :class:`TypeError` listing the valid options (a typo never passes).
        """
        names = option_names()
        unknown = sorted(str(k) for k in mapping if k not in names)
        if unknown:
            where = "" if source == KWARGS_SOURCE else f" in {source}"
            raise TypeError(
                f"devsecmw: unknown option {unknown[0]!r}{where} (valid options: {', '.join(sorted(names))})"
            )
        return cls(source, dict(mapping), {n: key(n) for n in mapping})

    @classmethod
    def from_prefixed(cls, source: str, mapping: Mapping[str, Any], strict: bool = True) -> Layer:
        """``DEVSECMW_<OPTION>`` keys (the environment, Flask's ``app.config``).

        ``strict``: an unknown ``DEVSECMW_*`` key is an error (Flask's config belongs to the app);
        in the environment, shared with every other program, unknown names are left alone.
        """
        names = option_names()
        values: dict[str, Any] = {}
        keys: dict[str, str] = {}
        for k, v in mapping.items():
            if not isinstance(k, str) or not k.startswith(ENV_PREFIX) or k == CONFIG_FILE_ENV:
                continue
            name = k[len(ENV_PREFIX) :].lower()
            if name not in names:
                if strict:
                    raise TypeError(
                        f"devsecmw: unknown option {k!r} in {source} "
                        f"(valid: {', '.join(ENV_PREFIX + n.upper() for n in sorted(names))})"
                    )
                continue
            if isinstance(v, str) and v == "":
                continue  # VAR= unsets, as an absent variable
            values[name] = v
            keys[name] = k
        return cls(source, values, keys)


def option_names() -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(Config) if not f.name.startswith("_"))


def env_layer(environ: Mapping[str, str] | None = None) -> Layer:
    return Layer.from_prefixed("environment", os.environ if environ is None else environ, strict=False)


def find_config_file(
    environ: Mapping[str, str] | None = None, cwd: str | os.PathLike[str] | None = None
) -> Path | None:
    """``$DEVSECMW_CONFIG`` (which must exist), else the first of :data:`FILE_NAMES` in ``cwd``
    that configures devsecmw (a ``pyproject.toml`` without ``[tool.devsecmw]`` does not)."""
    env = os.environ if environ is None else environ
    named = env.get(CONFIG_FILE_ENV)
    if named is not None and named.strip():
        if named.strip().lower() == "none":
            return None
        path = Path(named).expanduser()
        if not path.is_file():
            raise ConfigError(f"devsecmw: {CONFIG_FILE_ENV} (environment): no such file {named!r}")
        return path
    here = Path(cwd) if cwd is not None else Path.cwd()
    for name in FILE_NAMES:
        path = here / name
        if path.is_file() and (name != "pyproject.toml" or _toml_table(path) is not None):
            return path
    return None


def _toml_table(path: Path) -> dict[str, Any] | None:
    """The devsecmw table of a TOML file: ``[tool.devsecmw]``, or the whole of a devsecmw.toml
    (``[tool.devsecmw]`` accepted there too). None when a pyproject.toml has no such table."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10: the tomli backport (a conditional dependency)
        import tomli as tomllib
    try:
        with path.open("rb") as fh:
            doc = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"devsecmw: cannot read the configuration file {str(path)!r}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"devsecmw: {path}: not valid TOML: {exc}") from None
    tool = doc.get("tool")
    if isinstance(tool, dict) and "devsecmw" in tool:
        table = tool["devsecmw"]
        if not isinstance(table, dict):
            raise ConfigError(f"devsecmw: {path}: [tool.devsecmw] must be a table")
        return table
    if path.name == "pyproject.toml":
        return None
    return doc


def file_layer(path: Path) -> Layer:
    table = _toml_table(path) or {}
    prefix = "tool.devsecmw." if path.name == "pyproject.toml" or "tool" in table else ""
    return Layer.from_mapping(f"file {path}", table, lambda n: prefix + n)


def sources(
    options: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    framework: Layer | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> list[Layer]:
    """The layers of :data:`__doc__`'s precedence, highest first."""
    layers = [Layer.from_mapping(KWARGS_SOURCE, options or {}), env_layer(environ)]
    if framework is not None:
        layers.append(framework)
    path = find_config_file(environ, cwd)
    if path is not None:
        layers.append(file_layer(path))
    return layers


def resolve(layers: Sequence[Layer]) -> tuple[Config, dict[str, tuple[str, str]]]:
    """The config the layers make (highest first), and where each option came from:
    ``{name: (source, key)}``, ``("default", "")`` for a default."""
    fields = {f.name: f for f in dataclasses.fields(Config) if not f.name.startswith("_")}
    values: dict[str, Any] = {}
    origins: dict[str, tuple[str, str]] = {}
    suspects: list[ConfigError] = []
    for name, f in fields.items():
        layer = next((lay for lay in layers if name in lay.values), None)
        if layer is None:
            origins[name] = (DEFAULT_SOURCE, "")
            continue
        key = layer.keys.get(name, name)
        value = parse_value(name, f, layer.values[name], key, layer.source)
        try:  # the option's own checks (ranges, networks...), to name where a bad value came from
            Config(**{name: value})
        except ConfigError as exc:
            suspects.append(ConfigError(f"devsecmw: {key} ({layer.source}): {reason(exc)}"))
        values[name] = value
        origins[name] = (layer.source, key)
    try:
        config = Config(**values)
    except ConfigError:
        if suspects:  # the option that fails on its own, named with its source
            raise suspects[0] from None
        raise
    # An option failing alone but not with the others is a check across options, now satisfied.
    return config, origins


def _check_extras(config: Config) -> None:
    """Checks of the options added with the configuration sources (called by ``__post_init__``)."""
    for name in PATH_OPTIONS:
        for path in getattr(config, name):
            if not isinstance(path, str) or not path.startswith("/"):
                raise ConfigError(f"devsecmw: invalid {name} entry {path!r} (must start with /)")
    for x in config.exclusions:
        if not isinstance(x, Exclusion):
            raise ConfigError(f"devsecmw: invalid exclusion {x!r} (must be an Exclusion or a mapping)")
        check_exclusion(x)
    if not isinstance(config.hyperscan, bool):
        raise ConfigError(f"devsecmw: invalid hyperscan {config.hyperscan!r} (must be a bool)")
    if not isinstance(config.cache_dir, str) or "\0" in config.cache_dir:
        raise ConfigError(
            f'devsecmw: invalid cache_dir {config.cache_dir!r} (must be a directory path, "" or "off")'
        )
    if config.before_emit is not None and not callable(config.before_emit):
        raise ConfigError(f"devsecmw: invalid before_emit {config.before_emit!r} (must be callable)")
    for out in config.emitters:
        if not callable(getattr(out, "emit", None)):
            raise ConfigError(f"devsecmw: invalid emitter {out!r} (must have an emit(emission) method)")
    if config.excluded_urls:
        from .engine.matcher import compile_pattern

        for pattern in config.excluded_urls:
            try:
                compile_pattern(pattern)
            except Exception as exc:
                raise ConfigError(
                    f"devsecmw: invalid excluded_urls pattern {pattern!r} (RE2 syntax): {exc}"
                ) from None


__all__ = [
    "CONFIG_FILE_ENV",
    "MODES",
    "BeforeEmit",
    "Config",
    "ConfigError",
    "Exclusion",
    "Layer",
    "Network",
    "env_layer",
    "expand_tags",
    "file_layer",
    "find_config_file",
    "parse_networks",
    "resolve",
    "route_key",
    "sources",
]

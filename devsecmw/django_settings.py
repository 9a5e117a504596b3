"""Django's settings for devsecmw: ``settings.DEVSECMW`` as a configuration layer, and the
system check that validates it (``manage.py check``: ``devsecmw.E001``/``E002``).

Used by the Django adapter (:mod:`devsecmw.django`, which re-exports these names) and its
``AppConfig`` (:mod:`devsecmw.apps`). Django is imported by name, on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from .config import Config, ConfigError, Layer

SETTINGS_NAME = "DEVSECMW"
#: How errors and ``devsecmw config`` name Django's configuration.
CONFIG_SOURCE = f"Django settings.{SETTINGS_NAME}"
#: Keys of ``DEVSECMW`` that are no option of the configuration but the middleware's plumbing.
_PLUMBING = ("tracer_provider", "meter_provider", "detector", "config")


def _settings_options() -> dict[str, Any]:
    settings = importlib.import_module("django.conf").settings
    raw = getattr(settings, SETTINGS_NAME, None)
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"devsecmw: settings.{SETTINGS_NAME} must be a dict of options, not {type(raw)!r}")
    return dict(raw)


def settings_config(options: dict[str, Any] | None = None) -> tuple[Config, dict[str, Any]]:
    """The configuration from ``options``, the environment, ``settings.DEVSECMW`` and the file,
    and the plumbing (``tracer_provider``, ``meter_provider``, ``detector``, ``config``) found in
    ``settings.DEVSECMW``."""
    raw = _settings_options()
    plumbing = {k: raw.pop(k) for k in _PLUMBING if k in raw}
    layer = Layer.from_mapping(CONFIG_SOURCE, raw, lambda n: f"{SETTINGS_NAME}[{n!r}]")
    return Config.from_options(options, framework=layer), plumbing


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """Django system check: the ``DEVSECMW`` setting (with the environment and the file) and the
    rule set it names load, as they will when the middleware does (``devsecmw.E001``/``E002``)."""
    checks = importlib.import_module("django.core.checks")
    from .engine.rules import RuleError

    try:
        config, plumbing = settings_config()
        if plumbing.get("detector") is None and plumbing.get("config") is None:
            from .engine import Engine

            Engine(config)  # disabled rule ids and rule files, as at start-up
    except (ConfigError, TypeError) as exc:
        return [
            checks.Error(
                str(exc),
                hint="Fix the setting DEVSECMW (or the DEVSECMW_* variable, or the devsecmw "
                "configuration file) named above; `devsecmw config` shows where each value comes from.",
                obj=f"settings.{SETTINGS_NAME}",
                id="devsecmw.E001",
            )
        ]
    except RuleError as exc:
        return [checks.Error(str(exc), obj=f"settings.{SETTINGS_NAME}", id="devsecmw.E002")]
    return []


def register_checks() -> None:
    """Register :func:`check_settings` with Django (idempotent: Django keeps a set)."""
    importlib.import_module("django.core.checks").register(check_settings, "devsecmw")


__all__ = ["CONFIG_SOURCE", "SETTINGS_NAME", "check_settings", "register_checks", "settings_config"]

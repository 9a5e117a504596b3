"""devsecmw: security signals from your HTTP traffic, in the OpenTelemetry APM you already use.

Add :class:`devsecmw.asgi.SecurityMiddleware`, :class:`devsecmw.wsgi.SecurityMiddleware`
or ``"devsecmw.django.SecurityMiddleware"`` to an application; requests and the
responses they get become signals on spans and metrics.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .config import Config, ConfigError, Exclusion
from .signals import ANOMALY_TYPES, ATTACK_TYPES, SIGNAL_TYPES, Severity, Signal, Verdict

__all__ = [
    "ANOMALY_TYPES",
    "ATTACK_TYPES",
    "SIGNAL_TYPES",
    "Config",
    "ConfigError",
    "Exclusion",
    "Severity",
    "Signal",
    "Verdict",
    "__version__",
]

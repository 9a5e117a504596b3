"""Flask helpers: the route template for ``http.route``, and a one-call ``init_app``.

``app.wsgi_app = devsecmw.wsgi.SecurityMiddleware(app.wsgi_app)`` is all a Flask
app needs; the WSGI adapter, which imports no framework, reads the route template
from the environ when the app calls ``start_response``: the ``devsecmw.route`` key
if set, else the matched ``url_rule`` of the request Werkzeug records under
``werkzeug.request`` (Flask's request, so hand-wrapped, :func:`init_app` and the
instrumentor alike). :func:`current_route` gives the same template from inside a
view. :func:`init_app` does the wrapping once and :func:`uninit_app` undoes it.

OpenTelemetry's ``FlaskInstrumentor`` may be applied before or after: it starts
its span in a ``before_request`` hook, which always runs inside devsecmw, so
devsecmw's span is the SERVER span and Flask's becomes an INTERNAL child.

Configuration: :func:`init_app` reads ``DEVSECMW_<OPTION>`` keys of ``app.config``
(``app.config["DEVSECMW_MODE"] = "block"``, typed values or strings), below its keyword
arguments and the ``DEVSECMW_*`` environment variables and above the configuration file
(see :mod:`devsecmw.config`). An unknown ``DEVSECMW_*`` key is an error. Call it once the
app is configured (after ``app.config.from_...``).

Block mode (``init_app(app, mode="block")``) is the WSGI adapter's: a blocked
request is answered before Flask runs (no view, no ``before_request`` hook, no
route, so its span has no ``http.route``), and Flask reads ``request.stream``,
``get_data()``, ``form`` and ``files`` from the replayed body exactly as sent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import Config
    from .wsgi import SecurityMiddleware

_ATTR = "_devsecmw_middleware"
#: How errors and ``devsecmw config`` name Flask's configuration.
CONFIG_SOURCE = "Flask app.config"
#: Keyword arguments of the middleware that are no option of the configuration.
_PLUMBING = ("tracer_provider", "meter_provider", "detector")


#: ``flask.has_request_context`` and ``flask.request``, imported at the first call: this module
#: must import without Flask, and an import statement per request costs about a microsecond.
_flask: list[Any] = []


def current_route() -> str | None:
    """The matched URL rule of the current Flask request (``/items/<int:id>``), if any."""
    if not _flask:
        try:
            from flask import has_request_context, request
        except ImportError:  # pragma: no cover - flask imported elsewhere but broken
            return None
        _flask[:] = (has_request_context, request)
    has_request_context, request = _flask
    if not has_request_context():
        return None
    rule = request.url_rule
    return rule.rule if rule is not None else None


def init_app(app: Any, **options: Any) -> SecurityMiddleware:
    """Wrap ``app.wsgi_app`` in :class:`devsecmw.wsgi.SecurityMiddleware`; returns the middleware.

    Idempotent: a second call returns the middleware of the first (its options
    stand), and an app already wrapped by hand is left as it is.
    ``options`` are those of the middleware (``tracer_provider=``, ``mode=``...); the
    ``DEVSECMW_*`` keys of ``app.config`` come below them (see the module docstring).
    """
    from .wsgi import SecurityMiddleware

    installed: SecurityMiddleware | None = getattr(app, _ATTR, None)
    if installed is not None:
        return installed
    current = app.wsgi_app
    if isinstance(current, SecurityMiddleware):
        return current
    if options.get("config") is None:
        options.pop("config", None)
        plumbing = {k: options.pop(k) for k in _PLUMBING if k in options}
        options = {**plumbing, "config": app_config(app, options)}
    middleware = SecurityMiddleware(current, **options)
    app.wsgi_app = middleware
    setattr(app, _ATTR, middleware)
    return middleware


def app_config(app: Any, options: dict[str, Any] | None = None) -> Config:
    """The configuration of ``app``: ``options``, the environment, ``app.config``, the file."""
    from .config import Config, Layer

    layer = Layer.from_prefixed(CONFIG_SOURCE, getattr(app, "config", None) or {}, strict=True)
    return Config.from_options(options, framework=layer)


def uninit_app(app: Any) -> None:
    """Undo :func:`init_app` (a no-op when it was not applied)."""
    middleware: SecurityMiddleware | None = getattr(app, _ATTR, None)
    if middleware is None:
        return
    delattr(app, _ATTR)
    if app.wsgi_app is middleware:
        app.wsgi_app = middleware.app
    else:
        # Something wrapped devsecmw since (FlaskInstrumentor, ProxyFix...): restoring the old
        # wsgi_app would drop that wrapper too, so devsecmw stays in the chain as a pass-through.
        middleware.enabled = False


__all__ = ["CONFIG_SOURCE", "app_config", "current_route", "init_app", "uninit_app"]

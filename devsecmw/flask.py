"""Flask helpers: the route template for ``http.route``, and a one-call ``init_app``.

``app.wsgi_app = devsecmw.wsgi.SecurityMiddleware(app.wsgi_app)`` is all a Flask
app needs; the WSGI adapter reads the matched ``url_rule`` through
:func:`current_route` when the app calls ``start_response`` (Flask does so
while its request context is still pushed). :func:`init_app` does the wrapping
once and :func:`uninit_app` undoes it.

OpenTelemetry's ``FlaskInstrumentor`` may be applied before or after: it starts
its span in a ``before_request`` hook, which always runs inside devsecmw, so
devsecmw's span is the SERVER span and Flask's becomes an INTERNAL child.

Block mode (``init_app(app, mode="block")``) is the WSGI adapter's: a blocked
request is answered before Flask runs (no view, no ``before_request`` hook, no
route, so its span has no ``http.route``), and Flask reads ``request.stream``,
``get_data()``, ``form`` and ``files`` from the replayed body exactly as sent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .wsgi import SecurityMiddleware

_ATTR = "_devsecmw_middleware"


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
    ``options`` are those of the middleware (``tracer_provider=``, ``mode=``...).
    """
    from .wsgi import SecurityMiddleware

    installed: SecurityMiddleware | None = getattr(app, _ATTR, None)
    if installed is not None:
        return installed
    current = app.wsgi_app
    if isinstance(current, SecurityMiddleware):
        return current
    middleware = SecurityMiddleware(current, **options)
    app.wsgi_app = middleware
    setattr(app, _ATTR, middleware)
    return middleware


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


__all__ = ["current_route", "init_app", "uninit_app"]

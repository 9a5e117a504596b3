"""Flask helpers: the route template for ``http.route``, and a one-call ``init_app``.

``app.wsgi_app = devsecmw.wsgi.SecurityMiddleware(app.wsgi_app)`` is all a Flask
app needs; the WSGI adapter reads the matched ``url_rule`` through
:func:`current_route`. :func:`init_app` does the wrapping idempotently and can
be undone.
"""

from __future__ import annotations

from typing import Any


def current_route() -> str | None:
    """The matched URL rule of the current Flask request (``/items/<int:id>``), if any."""
    try:
        from flask import has_request_context, request
    except ImportError:  # pragma: no cover - flask imported elsewhere but broken
        return None
    if not has_request_context():
        return None
    rule = request.url_rule
    return rule.rule if rule is not None else None


def init_app(app: Any, **options: Any) -> Any:
    """Wrap ``app.wsgi_app`` once; returns the middleware. ``uninit_app`` undoes it."""
    from .wsgi import SecurityMiddleware

    current = app.wsgi_app
    if isinstance(current, SecurityMiddleware):
        return current
    app._devsecmw_original_wsgi_app = current
    app.wsgi_app = SecurityMiddleware(current, **options)
    return app.wsgi_app


def uninit_app(app: Any) -> None:
    original = getattr(app, "_devsecmw_original_wsgi_app", None)
    if original is not None:
        app.wsgi_app = original
        del app._devsecmw_original_wsgi_app


__all__ = ["current_route", "init_app", "uninit_app"]

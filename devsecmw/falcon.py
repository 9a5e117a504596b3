"""Falcon: its route template for devsecmw's WSGI or ASGI middleware.

A Falcon app is a WSGI (``falcon.App``) or ASGI (``falcon.asgi.App``) application, so
:mod:`devsecmw.wsgi` / :mod:`devsecmw.asgi` inspect it as they would any other; this
adapter only adds what they cannot see, the route template Falcon matched
(``req.uri_template``, e.g. ``/items/{item_id}``, as ``http.route``), handed over through
the ``devsecmw.route`` key of the environ or scope (:data:`devsecmw.routes.ROUTE_KEY`)::

    app = falcon.App()                           # or falcon.asgi.App()
    app.add_route("/items/{item_id}", Items())
    app = devsecmw.falcon.instrument(app)        # what the server runs; devsecmw's options as keywords

or by hand: ``app.add_middleware(devsecmw.falcon.RouteMiddleware())`` and wrap the app in
the WSGI or ASGI ``SecurityMiddleware``. It imports no Falcon (duck typed); install
``devsecmw[falcon]`` for the framework. A request no route matched (a 404) has no template.
"""

from __future__ import annotations

import inspect
from typing import Any

from .routes import ROUTE_KEY


def _note_route(req: Any) -> None:
    template = getattr(req, "uri_template", None)
    if not isinstance(template, str) or not template:
        return
    scope = getattr(req, "scope", None)  # an ASGI request; the WSGI one has the environ only
    target = scope if isinstance(scope, dict) else getattr(req, "env", None)
    if isinstance(target, dict):
        target[ROUTE_KEY] = template


class RouteMiddleware:
    """Falcon middleware, for WSGI and ASGI apps alike: once Falcon has routed a request, its
    ``uri_template`` goes where devsecmw's middleware reads the route template."""

    def process_resource(self, req: Any, resp: Any, resource: Any, params: Any) -> None:
        _note_route(req)

    async def process_resource_async(self, req: Any, resp: Any, resource: Any, params: Any) -> None:
        _note_route(req)  # Falcon's ASGI app wants a coroutine (the _async name wins there)


def instrument(app: Any, **options: Any) -> Any:
    """Add :class:`RouteMiddleware` to the Falcon ``app`` and return it wrapped in devsecmw's
    ASGI (``falcon.asgi.App``) or WSGI (``falcon.App``) middleware; ``options`` are the keyword
    arguments of ``SecurityMiddleware`` (``mode=``, ``tracer_provider=``, ``config=``...)."""
    app.add_middleware(RouteMiddleware())
    if inspect.iscoroutinefunction(type(app).__call__):
        from .asgi import SecurityMiddleware as Asgi

        return Asgi(app, **options)
    from .wsgi import SecurityMiddleware as Wsgi

    return Wsgi(app, **options)


__all__ = ["RouteMiddleware", "instrument"]

"""Where the adapters find the route template a framework matched (``/items/{id}``).

Never the raw path. Any framework glue may set it under ``devsecmw.route`` (:data:`ROUTE_KEY`)
in the ASGI scope or the WSGI environ; otherwise the adapters know, by duck typing and
without importing any framework, where Starlette/FastAPI and Flask (Werkzeug) keep it.
The adapters hand these to :meth:`devsecmw.core.Runtime.begin`, which asks once the app
has routed the request.
"""

from __future__ import annotations

from typing import Any

from ._types import Environ, Scope

#: Scope or environ key a framework (or the app) sets to the matched route template.
ROUTE_KEY = "devsecmw.route"
#: Werkzeug's environ key for its request object; Flask's request carries the matched ``url_rule``.
_WERKZEUG_REQUEST = "werkzeug.request"
_MAX_MOUNT_DEPTH = 8


def _mount_prefix(router: Any, target: Any, depth: int = 0) -> str | None:
    """The concatenated templates of the mounts leading from ``router`` to the route ``target``."""
    routes = getattr(router, "routes", None)
    if not isinstance(routes, list) or depth > _MAX_MOUNT_DEPTH:
        return None
    if any(r is target for r in routes):
        return ""
    for r in routes:
        if getattr(r, "routes", None):  # Mount (or Host) of a router
            below = _mount_prefix(r, target, depth + 1)
            if below is not None:
                path = getattr(r, "path", "")  # Host routes have no path
                return (path if isinstance(path, str) else "") + below
    return None


def route_from_scope(scope: Scope) -> str | None:
    """The route template of an ASGI request.

    ``scope["devsecmw.route"]`` (set by any framework glue) wins; otherwise the
    Route object Starlette/FastAPI record as ``scope["route"]``. A route inside
    a ``Mount`` has a template relative to the mount: the mounts' templates are
    prefixed (a mount path such as ``/users/{uid}`` stays a template).
    """
    explicit = scope.get(ROUTE_KEY)
    if isinstance(explicit, str):
        return explicit
    route = scope.get("route")
    if route is None:
        return None
    path = getattr(route, "path", None)
    if not isinstance(path, str) or not path:
        return None
    root = scope.get("root_path", "")
    if root != scope.get("app_root_path", root):  # mounted: the template is relative to the mount
        prefix = _mount_prefix(scope.get("router"), route)
        if prefix:
            return prefix + path
    return path


def route_from_environ(environ: Environ) -> str | None:
    """The route template of a WSGI request: the ``devsecmw.route`` environ key, else the
    ``url_rule`` of the Werkzeug request (Flask) that the environ names, else ``None``."""
    explicit = environ.get(ROUTE_KEY)
    if isinstance(explicit, str):
        return explicit
    rule = getattr(environ.get(_WERKZEUG_REQUEST), "url_rule", None)  # duck-typed: no Flask import
    template = getattr(rule, "rule", None)
    return template if isinstance(template, str) else None


__all__ = ["ROUTE_KEY", "route_from_environ", "route_from_scope"]

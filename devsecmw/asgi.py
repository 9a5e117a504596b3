"""ASGI middleware: pure ASGI, wrapping ``receive`` and ``send``.

- ``lifespan`` (and any other non-HTTP scope) passes through untouched.
- HTTP: the request line, query and headers are inspected before the app is
  called; the body is inspected as the app reads it (never read ahead,
  waited for or held back); the response is observed as it leaves, never
  buffered or delayed; the verdict and the span close after the last
  response message has gone (final ``http.response.body``, trailers or
  ``http.response.pathsend``), not when the endpoint returns.
- Websockets: the handshake (path, query, headers) is inspected, then every
  message passes through untouched.

Every message the app or the server hands over is forwarded as the very same
object; devsecmw's own work around it is fenced so that an internal error is
reported and never replaces, delays or drops a message (fail open). The app
runs with devsecmw's span current; the server's ``receive``/``send`` run in the
server's own context, so nothing the server starts there (uvicorn starts the
next keep-alive request from inside ``send``) inherits this request's span.

Usage::

    app.add_middleware(devsecmw.asgi.SecurityMiddleware)   # Starlette / FastAPI
    app = devsecmw.asgi.SecurityMiddleware(app)             # any ASGI app
"""

from __future__ import annotations

from typing import Any

from opentelemetry import metrics, trace

from ._types import ASGIApp, Message, Receive, Scope, Send
from .config import Config
from .core import Inspection, Runtime
from .engine import Detector
from .request import from_asgi_scope

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
    """The route template the framework matched (``/items/{id}``), never the raw path.

    ``scope["devsecmw.route"]`` (set by any framework glue) wins; otherwise the
    Route object Starlette/FastAPI record as ``scope["route"]``. A route inside
    a ``Mount`` has a template relative to the mount: the mounts' templates are
    prefixed (a mount path such as ``/users/{uid}`` stays a template).
    """
    explicit = scope.get("devsecmw.route")
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


def _http_receive(insp: Inspection, receive: Receive) -> Receive:
    async def receive_wrapper() -> Message:
        token = insp.step_out()
        try:
            message = await receive()
        finally:
            insp.step_in(token)
        try:
            if message["type"] == "http.request":
                insp.body_chunk(message.get("body", b""), bool(message.get("more_body", False)))
        except Exception as exc:
            insp.runtime.report("receive", exc)
        return message

    return receive_wrapper


def _http_send(insp: Inspection, scope: Scope, send: Send) -> Send:
    # The message type after which nothing more is sent; trailers move it (ASGI HTTP trailers).
    final = "http.response.body"

    async def send_wrapper(message: Message) -> None:
        nonlocal final
        last = False
        try:
            mtype = message["type"]
            if mtype == "http.response.start":
                if message.get("trailers"):
                    final = "http.response.trailers"
                _note_route(scope, insp)
                insp.response_start(int(message["status"]), message.get("headers") or ())
            elif mtype == "http.response.body" or mtype == "http.response.zerocopy":
                insp.response_chunk(message.get("body", b""))
                last = final == "http.response.body" and not message.get("more_body", False)
            elif mtype == "http.response.trailers":
                last = final == mtype and not message.get("more_trailers", False)
            elif mtype == "http.response.pathsend":
                last = True
        except Exception as exc:
            insp.runtime.report("send", exc)
        if last and not insp.handle.owned:
            # The span belongs to an instrumentation outside (OpenTelemetry's ASGI middleware),
            # which ends it as this very message passes: write the verdict onto it first.
            insp.finish()
        token = insp.step_out()
        try:
            await send(message)
        finally:
            insp.step_in(token)
        if last:
            # Our own span ends after the await: the last byte has gone, not merely been produced.
            insp.finish()

    return send_wrapper


def _websocket_send(insp: Inspection, send: Send) -> Send:
    async def send_wrapper(message: Message) -> None:
        try:
            if insp.status is None:
                mtype = message["type"]
                if mtype == "websocket.accept":
                    insp.response_start(101)
                elif mtype == "websocket.close":
                    insp.response_start(403)  # closed before accept: the server answers 403
                elif mtype == "websocket.http.response.start":  # Websocket Denial Response
                    insp.response_start(int(message["status"]), message.get("headers") or ())
        except Exception as exc:
            insp.runtime.report("send", exc)
        token = insp.step_out()
        try:
            await send(message)
        finally:
            insp.step_in(token)

    return send_wrapper


def _note_route(scope: Scope, insp: Inspection) -> None:
    if insp.request.route is None and not insp.finished:
        try:
            insp.request.route = route_from_scope(scope)
        except Exception as exc:
            insp.runtime.report("route", exc)


class SecurityMiddleware:
    """devsecmw for any ASGI 3 application.

    Takes ``tracer_provider=``, ``meter_provider=`` (the global providers when
    omitted), ``detector=`` (a :class:`~devsecmw.engine.Detector`), and either
    ``config=`` or the keyword options of :class:`~devsecmw.config.Config`,
    validated here so a bad option stops the application at start-up.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        detector: Detector | None = None,
        config: Config | None = None,
        **options: Any,
    ) -> None:
        self.app = app
        self.runtime = Runtime.from_options(tracer_provider, meter_provider, detector, config, **options)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        insp = self._begin(scope)
        if insp is None:
            await self.app(scope, receive, send)
            return
        if kind == "http":
            receive, send = _http_receive(insp, receive), _http_send(insp, scope, send)
        else:
            send = _websocket_send(insp, send)
        insp.activate()
        try:
            await self.app(scope, receive, send)
        except BaseException as exc:
            _note_route(scope, insp)
            insp.finish(exc)
            raise  # the app's exception, the same object, unchanged
        finally:
            insp.deactivate()
        # Reached when the app returned without a final message (or after a websocket closed).
        _note_route(scope, insp)
        insp.finish()

    def _begin(self, scope: Scope) -> Inspection | None:
        try:
            request = from_asgi_scope(scope)
        except Exception as exc:
            self.runtime.report("request", exc)
            return None
        return self.runtime.begin(request)


__all__ = ["SecurityMiddleware", "route_from_scope"]

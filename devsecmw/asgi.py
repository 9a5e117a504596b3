"""ASGI middleware: pure ASGI, wrapping ``receive`` and ``send``.

- ``lifespan`` (and any other non-HTTP scope) passes through untouched.
- HTTP: the request line, query and headers are inspected before the app is
  called; the body is inspected as the app reads it (never read ahead,
  waited for or held back); the response is observed as it leaves, never
  buffered or delayed; the verdict and the span close after the last body
  message has gone.
- Websockets: the handshake (path, query, headers) is inspected, then every
  message passes through untouched.

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


def route_from_scope(scope: Scope) -> str | None:
    """The route template the framework matched, if it recorded one in the scope."""
    explicit = scope.get("devsecmw.route")
    if isinstance(explicit, str):
        return explicit
    route = scope.get("route")  # Starlette / FastAPI set the matched Route object
    path = getattr(route, "path", None) or getattr(route, "path_format", None)
    if isinstance(path, str) and path:
        return path
    return None


class SecurityMiddleware:
    """devsecmw for any ASGI 3 application."""

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
        runtime = self.runtime
        try:
            request = from_asgi_scope(scope)
        except Exception as exc:
            runtime.report("request", exc)
            await self.app(scope, receive, send)
            return
        insp = runtime.begin(request)
        if insp is None:
            await self.app(scope, receive, send)
            return
        if kind == "websocket":
            await self._websocket(scope, receive, send, insp)
            return

        final_type = ["http.response.body"]

        async def receive_wrapper() -> Message:
            message = await receive()
            if message.get("type") == "http.request":
                insp.body_chunk(message.get("body", b""), bool(message.get("more_body", False)))
            return message

        async def send_wrapper(message: Message) -> None:
            mtype = message.get("type")
            if mtype == "http.response.start":
                try:
                    if message.get("trailers"):
                        final_type[0] = "http.response.trailers"
                    request.route = route_from_scope(scope)
                except Exception as exc:
                    runtime.report("send", exc)
                insp.response_start(int(message.get("status", 0)), message.get("headers") or ())
            elif mtype == "http.response.body":
                insp.response_chunk(message.get("body", b""))
            await send(message)
            if (
                mtype == final_type[0]
                and not message.get("more_body", False)
                and not message.get("more_trailers", False)
            ) or mtype == "http.response.pathsend":
                insp.finish()

        insp.activate()
        try:
            await self.app(scope, receive_wrapper, send_wrapper)
        except BaseException as exc:
            self._late_route(scope, insp)
            insp.finish(exc)
            raise
        finally:
            insp.deactivate()
        self._late_route(scope, insp)
        insp.finish()

    @staticmethod
    def _late_route(scope: Scope, insp: Inspection) -> None:
        if insp.request.route is None and not insp.finished:
            try:
                insp.request.route = route_from_scope(scope)
            except Exception as exc:
                insp.runtime.report("route", exc)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send, insp: Inspection) -> None:
        async def send_wrapper(message: Message) -> None:
            mtype = message.get("type")
            if insp.status is None:
                if mtype == "websocket.accept":
                    insp.response_start(101)
                elif mtype == "websocket.close":
                    insp.response_start(403)
                elif mtype == "websocket.http.response.start":
                    insp.response_start(int(message.get("status", 0)), message.get("headers") or ())
            await send(message)

        insp.activate()
        try:
            await self.app(scope, receive, send_wrapper)
        except BaseException as exc:
            self._late_route(scope, insp)
            insp.finish(exc)
            raise
        finally:
            insp.deactivate()
        self._late_route(scope, insp)
        insp.finish()


__all__ = ["SecurityMiddleware", "route_from_scope"]

"""ASGI middleware: pure ASGI, wrapping ``receive`` and ``send``.

- ``lifespan`` (and any other non-HTTP scope) passes through untouched.
- HTTP: the request line, query and headers are inspected before the app is
  called; the body is inspected as the app reads it (never read ahead of it
  or held back); the response is observed as it leaves, never buffered; the
  verdict and the span close after the last response message has gone
  (final ``http.response.body``, trailers or ``http.response.pathsend``),
  not when the endpoint returns.
- The body the app left unread (a 405 or 404, an endpoint that ignores it)
  is read when the app hands over its last response message, before that
  message is forwarded, up to the inspection cap and waiting at most
  ``unread_timeout`` seconds (0.1; 0 switches it off), and inspected with the
  request; should the app receive again, it gets the very messages read, in
  order (monitor mode; see :mod:`devsecmw.bodytap.receive`).
- Websockets: the handshake (path, query, headers) is inspected, then every
  message passes through untouched.
- ``mode="block"`` (opt-in) decides before the app runs (the gate of
  :class:`devsecmw.core.Inspection`). A request whose head already calls for
  a block is answered at once. Otherwise, when it has a body, the body is
  read ahead, up to the inspection cap and for at most ``block_read_timeout``
  seconds, inspected, and the decision taken; a blocked request gets the
  block response and the app never runs. An allowed one gets exactly the
  messages read ahead (the very same objects, in order, ``http.disconnect``
  included), then the rest as it comes. Once the app runs, nothing is
  blocked any more: what it reads later is inspected and recorded
  (``devsecmw.would_block``). A blocked websocket handshake is closed before
  accept (the server answers 403), or denied with the block response when
  the server offers the websocket denial response extension.

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

import functools
from typing import Any

from opentelemetry import metrics, trace

from ._types import ASGIApp, Message, Receive, Scope, Send
from .bodytap.receive import Replay, Unread, read_ahead_messages, tap_receive
from .config import Config
from .core import BLOCK, READ_AHEAD, Inspection, Runtime
from .engine import Detector
from .request import from_asgi_scope
from .routes import route_from_scope


def _http_send(insp: Inspection, send: Send, unread: Unread | None = None) -> Send:
    # The message type after which nothing more is sent; trailers move it (ASGI HTTP trailers).
    final = "http.response.body"

    async def send_wrapper(message: Message) -> None:
        nonlocal final
        last = False
        try:
            mtype = message["type"]
            if mtype == "http.response.body" or mtype == "http.response.zerocopy":
                insp.response_chunk(message.get("body", b""))
                last = final == "http.response.body" and not message.get("more_body", False)
            elif mtype == "http.response.start":
                if message.get("trailers"):
                    final = "http.response.trailers"
                insp.response_start(int(message["status"]), message.get("headers") or ())
            elif mtype == "http.response.trailers":
                last = final == mtype and not message.get("more_trailers", False)
            elif mtype == "http.response.pathsend":
                last = True
        except Exception as exc:
            insp.runtime.report("send", exc)
        if last:
            if unread is not None:
                await unread.read(insp)  # the body the app left unread, while the request is still on
            insp.sending_last()
        token = insp.step_out()  # the server's send runs in the server's context
        try:
            await send(message)
        finally:
            insp.step_in(token)
        if last:
            insp.finish()  # a no-op when sending_last() already wrote the verdict

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


def _block_messages(scope: Scope, status: int, headers: list[tuple[str, str]], body: bytes) -> list[Message]:
    """The block response as ASGI messages (header values are ASCII: validated by Config)."""
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    if scope["type"] != "websocket":
        return [
            {"type": "http.response.start", "status": status, "headers": raw},
            {"type": "http.response.body", "body": body},
        ]
    if "websocket.http.response" in (scope.get("extensions") or {}):
        return [
            {"type": "websocket.http.response.start", "status": status, "headers": raw},
            {"type": "websocket.http.response.body", "body": body},
        ]
    return [{"type": "websocket.close", "code": 1008}]  # closed before accept: the server answers 403


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
        config = self.runtime.config
        # Monitor mode reads the body an app left unread (block mode read it ahead).
        self._unread = not self.runtime.blocking and config.unread_timeout > 0 and config.body_limit > 0

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
            request = None
        insp = None if request is None else runtime.begin(request, functools.partial(route_from_scope, scope))
        if insp is None:
            await self.app(scope, receive, send)
            return
        if runtime.blocking:
            await self._call_blocking(insp, scope, receive, send)
            return
        # Monitor mode, inline: not one more coroutine per request than before blocking existed.
        unread: Unread | None = None
        if kind == "http":
            if self._unread and insp.wants_unread():  # e.g. not for a GET without a body
                unread = Unread(receive)
            receive, send = tap_receive(insp, receive, unread), _http_send(insp, send, unread)
        else:
            send = _websocket_send(insp, send)
        try:
            with insp:  # the app's exception (the same object) passes through, recorded
                await self.app(scope, receive, send)
        finally:
            if unread is not None:
                unread.close()
        insp.finish()  # the app returned without a final message (or a websocket closed)

    async def _call_blocking(self, insp: Inspection, scope: Scope, receive: Receive, send: Send) -> None:
        """Block mode: the gate decides on the head, then (if there is a body) on the body read ahead."""
        replay: Replay | None = None
        http = scope["type"] == "http"
        try:
            step = insp.gate()
            if step == READ_AHEAD and http:
                replay = await read_ahead_messages(insp, receive)
                step = insp.gate()
            if step == BLOCK and await self._send_block(insp, scope, send):
                return
            if http:
                receive = replay if replay is not None else tap_receive(insp, receive)
                send = _http_send(insp, send)
            else:
                send = _websocket_send(insp, send)
            with insp:
                await self.app(scope, receive, send)
            insp.finish()  # the app returned without a final message (or after a websocket closed)
        except BaseException as exc:
            insp.finish(exc)  # a no-op when the app's own exception already finished it
            raise
        finally:
            if replay is not None:
                replay.close()

    @staticmethod
    async def _send_block(insp: Inspection, scope: Scope, send: Send) -> bool:
        """Answer with the block response; False (the app runs) if it could not be built."""
        messages = insp.block_answer(functools.partial(_block_messages, scope))
        if messages is None:
            return False
        *first, last = messages
        if last["type"] == "websocket.close":
            insp.response_start(403)  # what the server answers to a handshake closed before accept
        for message in first:
            await send(message)
        insp.sending_last()
        await send(last)
        insp.finish()
        return True


__all__ = ["SecurityMiddleware", "route_from_scope"]

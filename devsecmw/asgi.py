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
  message is forwarded (once the response is complete uvicorn answers
  ``receive`` with ``http.disconnect`` only and discards the rest): up to the
  inspection cap, waiting at most ``unread_timeout`` seconds (0.1; 0 switches
  it off) for a client that has not sent it, and inspected with the request.
  Nothing is read when the app read the body to its end or up to the cap,
  while a receive of the app's is in flight, after ``http.disconnect``, for a
  request with ``Expect``, or in block mode. ``receive`` belongs to one
  request, so no read can reach the next request on a keep-alive connection.
  Should the app receive again, it gets the very messages read, in order.
  A client that sent nothing in time marks the request incomplete
  (``devsecmw.inspection.incomplete``, ``devsecmw.errors`` stage
  ``body_unread``); the last message waited at most that long.
- Websockets: the handshake (path, query, headers) is inspected, then every
  message passes through untouched.
- ``mode="block"`` (opt-in) decides before the app runs. A request whose
  head already calls for a block is answered at once. Otherwise, when it has
  a body, the body is read ahead, up to the inspection cap and for at most
  ``block_read_timeout`` seconds, inspected, and the decision taken; a
  blocked request gets the block response and the app never runs. An
  allowed one gets exactly the messages read ahead (the very same objects,
  in order, ``http.disconnect`` included), then the rest as it comes; a
  receive still pending when the wait ran out is not cancelled, its message
  is the app's next one. Once the app runs, nothing is blocked any more:
  what it reads later is inspected and recorded (``devsecmw.would_block``).
  A blocked websocket handshake is closed before accept (the server answers
  403), or denied with the block response when the server offers the
  websocket denial response extension.

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

import asyncio
from collections import deque
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


def _observe_request(insp: Inspection, message: Message) -> None:
    try:
        if message["type"] == "http.request":
            insp.body_chunk(message.get("body", b""), bool(message.get("more_body", False)))
    except Exception as exc:
        insp.runtime.report("receive", exc)


def _http_receive(insp: Inspection, receive: Receive, unread: _Unread | None = None) -> Receive:
    handle = insp.handle

    async def receive_wrapper() -> Message:
        if unread is not None:
            if unread.replay is not None:  # devsecmw read the unread body: it is handed over first
                if unread.idle is not None:
                    await unread.idle.wait()
                return await unread.replay()
            unread.waiting += 1
        try:
            if handle.outer is None:  # devsecmw's own span is not current: nothing to step out of
                message = await receive()
            else:
                token = insp.step_out()
                try:
                    message = await receive()
                finally:
                    insp.step_in(token)
        finally:
            if unread is not None:
                unread.waiting -= 1
        try:  # _observe_request, inline: the monitor path pays no extra call per message
            if message["type"] == "http.request":
                more = bool(message.get("more_body", False))
                if unread is not None and not more:
                    unread.done = True  # the app has the whole body: nothing is left unread
                insp.body_chunk(message.get("body", b""), more)
            elif unread is not None:
                unread.done = True  # http.disconnect: nothing more will come
        except Exception as exc:
            insp.runtime.report("receive", exc)
        return message

    return receive_wrapper


class _Replay:
    """The app's ``receive`` after a read-ahead (block mode).

    First the messages read ahead (already inspected), the very same objects in order;
    then the server's receive that was still pending when the wait ran out (never
    cancelled: its message is not lost); then the server's ``receive``, observed as in
    monitor mode.
    """

    __slots__ = ("buffered", "insp", "pending", "tapped")

    def __init__(self, insp: Inspection, receive: Receive) -> None:
        self.insp = insp
        self.buffered: deque[Message] = deque()
        self.pending: asyncio.Future[Message] | None = None
        self.tapped = _http_receive(insp, receive)

    async def __call__(self) -> Message:
        if self.buffered:
            return self.buffered.popleft()
        pending = self.pending
        if pending is None:
            return await self.tapped()
        self.pending = None
        try:
            # The task runs in the server's context (created before the app's span was current).
            message = await pending
        except asyncio.CancelledError:
            if pending.done() and not pending.cancelled():
                self.pending = pending  # the app was cancelled just as the message arrived: keep it
            raise
        _observe_request(self.insp, message)
        return message

    def close(self) -> None:
        """The request is over: a receive nobody will await is cancelled, a failed one retrieved."""
        pending, self.pending = self.pending, None
        if pending is None:
            return
        if not pending.done():
            pending.cancel()
        elif not pending.cancelled():
            pending.exception()  # retrieved: no "exception was never retrieved" log


async def _fill(
    loop: asyncio.AbstractEventLoop, insp: Inspection, replay: _Replay, receive: Receive, timeout: float
) -> bool:
    """Receive body messages into ``replay`` until the body ends or reaches the cap, for at most
    ``timeout`` seconds; True when the wait ran out (the receive then pending is ``replay.pending``,
    never cancelled: its message is not lost). Shared by the read-ahead and the unread-body read."""
    deadline = loop.time() + timeout
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            return True
        # A task, so that a wait cut short leaves the server's receive running, not cancelled.
        fut: asyncio.Future[Message] = asyncio.ensure_future(receive())
        try:
            await asyncio.wait((fut,), timeout=remaining)
        except BaseException:
            fut.cancel()  # this request is being cancelled: so is its receive
            raise
        if not fut.done():
            replay.pending = fut
            return True
        if fut.cancelled() or fut.exception() is not None:
            replay.pending = fut  # the server's error reaches the app from its own receive
            return False
        message = fut.result()
        replay.buffered.append(message)
        try:
            if message["type"] != "http.request":
                return False  # http.disconnect: nothing more will come; it is replayed to the app
            insp.body_chunk(message.get("body", b""), bool(message.get("more_body", False)))
            if not insp.body_ahead_needed():
                return False
        except Exception as exc:
            insp.runtime.report("read_ahead", exc)
            return False


async def _read_ahead(insp: Inspection, receive: Receive) -> _Replay:
    """Read the body before the app runs, up to the cap, waiting at most ``block_read_timeout``."""
    replay = _Replay(insp, receive)
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        # Another event loop (trio): no bounded wait is available here, so no read-ahead.
        # The head still decides; the body is observed as the app reads it (counted).
        insp.body_ahead_end(skipped="event_loop")
        return replay
    timed_out = await _fill(loop, insp, replay, receive, insp.runtime.config.block_read_timeout)
    insp.body_ahead_end(timed_out)
    return replay


class _Unread:
    """Monitor mode: the request body the app left unread, read when its response is complete.

    Read when the app hands over its last response message, before it is forwarded: once
    the response is complete, servers answer ``receive`` with ``http.disconnect`` only
    (uvicorn) and discard the rest of the body. ``receive`` is per request in ASGI, so no
    read can reach the next request on the connection. Nothing is read while a receive of
    the app's is in flight (``waiting``: the app is reading the body itself). Should the app
    receive again afterwards, it gets what was read (:class:`_Replay`: the very same
    messages in order, then a receive still pending, then the server's receive): exactly
    the messages it would have got, only later.
    """

    __slots__ = ("done", "idle", "receive", "replay", "waiting")

    def __init__(self, receive: Receive) -> None:
        self.receive = receive
        self.done = False  # the app received the last body message or http.disconnect
        self.waiting = 0  # receives of the app's in flight
        self.replay: _Replay | None = None  # set once the unread body was read
        self.idle: asyncio.Event | None = None  # set when that read is over

    async def read(self, insp: Inspection) -> None:
        """Read and inspect the unread body (bounded by ``unread_timeout``). Never raises but
        a cancellation of the request."""
        if self.waiting or self.done or self.replay is not None or not insp.wants_unread():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # another event loop (trio): no bounded wait, no read (counted)
            insp.unread_end(skipped="event_loop")
            return
        replay = self.replay = _Replay(insp, self.receive)
        idle = self.idle = asyncio.Event()
        # The server's receive runs in the server's context (the tasks copy the current one).
        token = insp.step_out()
        timed_out = False
        try:
            timed_out = await _fill(loop, insp, replay, self.receive, insp.runtime.config.unread_timeout)
        except Exception as exc:  # pragma: no cover - _fill fences its own steps
            insp.runtime.report("body_unread", exc)
        finally:
            insp.step_in(token)
            idle.set()
        insp.unread_end(timed_out)

    def close(self) -> None:
        if self.replay is not None:
            self.replay.close()


def _header_bytes(headers: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]


def _http_send(insp: Inspection, scope: Scope, send: Send, unread: _Unread | None = None) -> Send:
    # The message type after which nothing more is sent; trailers move it (ASGI HTTP trailers).
    final = "http.response.body"
    handle = insp.handle

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
                _note_route(scope, insp)
                insp.response_start(int(message["status"]), message.get("headers") or ())
            elif mtype == "http.response.trailers":
                last = final == mtype and not message.get("more_trailers", False)
            elif mtype == "http.response.pathsend":
                last = True
        except Exception as exc:
            insp.runtime.report("send", exc)
        if last and unread is not None:
            await unread.read(insp)  # the body the app left unread, while the request is still on
        if not handle.owned:
            if last:
                # The span belongs to an instrumentation outside (OpenTelemetry's ASGI middleware),
                # which ends it as this very message passes: write the verdict onto it first.
                insp.finish()
            await send(message)  # no span of ours is current: the server's context already
            return
        if handle.outer is None:
            await send(message)
        else:
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
        if insp.handle.outer is None:
            await send(message)
            return
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
        insp = runtime.begin(request) if request is not None else None
        if insp is None:
            await self.app(scope, receive, send)
            return
        if runtime.blocking:
            await self._call_blocking(insp, scope, receive, send)
            return
        # Monitor mode, inline: not one more coroutine per request than before blocking existed.
        unread: _Unread | None = None
        if kind == "http":
            if self._unread and insp.wants_unread():  # e.g. not for a GET without a body
                unread = _Unread(receive)
            receive, send = _http_receive(insp, receive, unread), _http_send(insp, scope, send, unread)
        else:
            send = _websocket_send(insp, send)
        owned = insp.handle.owned  # inside an outer instrumentation there is nothing to activate
        if owned:
            insp.activate()
        try:
            await self.app(scope, receive, send)
        except BaseException as exc:
            _note_route(scope, insp)
            insp.finish(exc)
            raise  # the app's exception, the same object, unchanged
        finally:
            if owned:
                insp.deactivate()
            if unread is not None:
                unread.close()
        if not insp.finished:  # the app returned without a final message (or a websocket closed)
            _note_route(scope, insp)
            insp.finish()

    async def _run(self, insp: Inspection, scope: Scope, receive: Receive, send: Send) -> None:
        """The app, with devsecmw's span current (block mode: once the request was allowed)."""
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

    async def _call_blocking(self, insp: Inspection, scope: Scope, receive: Receive, send: Send) -> None:
        """Block mode: decide on the head, then (if there is a body) on the body read ahead."""
        replay: _Replay | None = None
        try:
            blocked = insp.check_block()
            if not blocked and scope["type"] == "http" and insp.wants_body_ahead():
                replay = await _read_ahead(insp, receive)
                blocked = insp.check_block()
            if blocked and await self._send_block(insp, scope, send):
                return
            if scope["type"] == "http":
                app_receive = replay if replay is not None else _http_receive(insp, receive)
                await self._run(insp, scope, app_receive, _http_send(insp, scope, send))
            else:
                await self._run(insp, scope, receive, _websocket_send(insp, send))
        except BaseException as exc:
            insp.finish(exc)  # a no-op when the app's own exception already finished it
            raise
        finally:
            if replay is not None:
                replay.close()

    async def _send_block(self, insp: Inspection, scope: Scope, send: Send) -> bool:
        """Answer with the block response; False (the app runs) if it could not be built."""
        response = insp.block_response(insp.request.header("accept"))
        if response is None:
            return False
        status, headers, body = response
        raw_headers = _header_bytes(headers)  # ASCII: block_content_type is validated at construction
        if scope["type"] == "websocket":
            if "websocket.http.response" in (scope.get("extensions") or {}):
                start: Message = {"type": "websocket.http.response.start", "status": status}
                start["headers"] = raw_headers
                last: Message = {"type": "websocket.http.response.body", "body": body}
                await send(start)
            else:
                insp.status = 403  # closed before accept: the server answers 403
                last = {"type": "websocket.close", "code": 1008}
        else:
            await send({"type": "http.response.start", "status": status, "headers": raw_headers})
            last = {"type": "http.response.body", "body": b"" if scope.get("method") == "HEAD" else body}
        if not insp.handle.owned:
            insp.finish()  # an outer instrumentation ends its span as the last message passes
        await send(last)
        insp.finish()
        return True


__all__ = ["SecurityMiddleware", "route_from_scope"]

"""ASGI receive taps: the request body as the app reads it, read ahead, or left unread.

- :func:`tap_receive` wraps ``receive``: each ``http.request`` message the app gets is fed
  to the inspection (never read ahead of the app or held back), the very same object
  handed over; the server's ``receive`` runs in the server's context.
- :func:`read_ahead_messages` (block mode) reads the body before the app runs, up to the
  inspection cap and for at most ``block_read_timeout`` seconds; the app then gets a
  :class:`Replay`: exactly the messages read ahead (the very same objects, in order,
  ``http.disconnect`` included), then a receive still pending when the wait ran out (never
  cancelled: its message is the app's next one), then the server's ``receive``.
- :class:`Unread` (monitor mode) reads the body the app left unread (a 405 or 404, an
  endpoint that ignores it) when the app hands over its last response message, before that
  message is forwarded (once the response is complete uvicorn answers ``receive`` with
  ``http.disconnect`` only and discards the rest): up to the cap, waiting at most
  ``unread_timeout`` seconds for a client that has not sent it. Nothing is read when the app
  read the body to its end or up to the cap, while a receive of the app's is in flight, after
  ``http.disconnect``, for a request with ``Expect``, or in block mode. ``receive`` belongs to
  one request, so no read can reach the next request on a keep-alive connection. A client
  that sent nothing in time marks the request incomplete (``devsecmw.inspection.incomplete``,
  ``devsecmw.errors`` stage ``body_unread``).

Under another event loop than asyncio (trio) no bounded wait is available: nothing is read
ahead or after (counted, ``event_loop``); the body is observed as the app reads it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING

from .._types import Message, Receive

if TYPE_CHECKING:
    from ..core import Inspection


def observe_request(insp: Inspection, message: Message) -> None:
    try:
        if message["type"] == "http.request":
            insp.body_chunk(message.get("body", b""), bool(message.get("more_body", False)))
    except Exception as exc:
        insp.runtime.report("receive", exc)


def tap_receive(insp: Inspection, receive: Receive, unread: Unread | None = None) -> Receive:
    async def receive_wrapper() -> Message:
        if unread is not None:
            if unread.replay is not None:  # devsecmw read the unread body: it is handed over first
                if unread.idle is not None:
                    await unread.idle.wait()
                return await unread.replay()
            unread.waiting += 1
        try:
            token = insp.step_out()  # the server's receive runs in the server's context
            try:
                message = await receive()
            finally:
                insp.step_in(token)
        finally:
            if unread is not None:
                unread.waiting -= 1
        try:  # observe_request, inline: the monitor path pays no extra call per message
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


class Replay:
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
        self.tapped = tap_receive(insp, receive)

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
        observe_request(self.insp, message)
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


async def fill(
    loop: asyncio.AbstractEventLoop, insp: Inspection, replay: Replay, receive: Receive, timeout: float
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


async def read_ahead_messages(insp: Inspection, receive: Receive) -> Replay:
    """Read the body before the app runs, up to the cap, waiting at most ``block_read_timeout``."""
    replay = Replay(insp, receive)
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        # Another event loop (trio): no bounded wait is available here, so no read-ahead.
        # The head still decides; the body is observed as the app reads it (counted).
        insp.body_ahead_end(skipped="event_loop")
        return replay
    timed_out = await fill(loop, insp, replay, receive, insp.runtime.config.block_read_timeout)
    insp.body_ahead_end(timed_out)
    return replay


class Unread:
    """Monitor mode: the request body the app left unread, read when its response is complete.

    Read when the app hands over its last response message, before it is forwarded: once
    the response is complete, servers answer ``receive`` with ``http.disconnect`` only
    (uvicorn) and discard the rest of the body. ``receive`` is per request in ASGI, so no
    read can reach the next request on the connection. Nothing is read while a receive of
    the app's is in flight (``waiting``: the app is reading the body itself). Should the app
    receive again afterwards, it gets what was read (:class:`Replay`: the very same
    messages in order, then a receive still pending, then the server's receive): exactly
    the messages it would have got, only later.
    """

    __slots__ = ("done", "idle", "receive", "replay", "waiting")

    def __init__(self, receive: Receive) -> None:
        self.receive = receive
        self.done = False  # the app received the last body message or http.disconnect
        self.waiting = 0  # receives of the app's in flight
        self.replay: Replay | None = None  # set once the unread body was read
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
        replay = self.replay = Replay(insp, self.receive)
        idle = self.idle = asyncio.Event()
        # The server's receive runs in the server's context (the tasks copy the current one).
        token = insp.step_out()
        timed_out = False
        try:
            timed_out = await fill(loop, insp, replay, self.receive, insp.runtime.config.unread_timeout)
        except Exception as exc:  # pragma: no cover - _fill fences its own steps
            insp.runtime.report("body_unread", exc)
        finally:
            insp.step_in(token)
            idle.set()
        insp.unread_end(timed_out)

    def close(self) -> None:
        if self.replay is not None:
            self.replay.close()


__all__ = ["Replay", "Unread", "read_ahead_messages", "tap_receive"]

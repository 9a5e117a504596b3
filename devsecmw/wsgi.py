"""WSGI middleware (PEP 3333).

- ``wsgi.input`` is wrapped so what the app reads (``read``, ``readline``,
  ``readlines``, ``readinto``, iteration) is inspected up to the cap, nothing
  more and nothing ahead of the app: every call is forwarded exactly as the app
  made it, so a missing ``Content-Length`` cannot make devsecmw block.
- The body the app left unread (a 405 or 404, a view that ignores it) is read
  through the same tap once the response is complete (the iterable exhausted,
  or a file response closed), up to the inspection cap and never past
  ``CONTENT_LENGTH``, and inspected with the request, where no read can
  stall: in-memory streams (``BytesIO``, spooled files: test clients) and gunicorn,
  whose reads are made only for bytes already there, waiting for more at most
  ``unread_timeout`` seconds, so that gunicorn's own drain and keep-alive go on
  unchanged (see :func:`read_unread`). Other servers are not read from
  (counted, ``devsecmw.errors`` stage ``body_unread``, ``server``).
- ``start_response`` is wrapped (``exc_info`` and the ``write()`` callable
  included) to observe the status and headers; the server's ``start_response``
  is called first, so when it re-raises ``exc_info`` nothing is recorded.
- The returned iterable is wrapped: chunks pass through as they come, the
  span ends after the last one, and the app's ``close()`` is always called
  (also when the server stops early and when iteration raises). ``len()`` is
  kept when the app's iterable has one (servers use it for Content-Length),
  and a ``wsgi.file_wrapper`` response stays a file wrapper, so the server's
  sendfile path still applies.
- The span (when devsecmw owns it) is current during the app call, each
  ``next()`` and ``close()``, attached and detached around each of them;
  except around ``next()`` on a list or tuple iterator and the ``close()`` of
  a plain list or tuple, where no app code can run (it is still current when
  the inspection ends there).

Block mode (``mode="block"``, opt-in) decides before the app runs. A request
whose head already calls for a block is answered at once, its body never
read. Otherwise, when it has a body, the start of the body is read ahead,
inspected, and the decision taken; a blocked request gets the block response
(``start_response`` with the configured status, a small JSON or HTML body by
``Accept``, the trace id in it) and the app is never called. Once the app
runs nothing is blocked any more: what it reads later is inspected and
recorded only (``devsecmw.would_block``).

Reading ahead, honestly: reads on ``wsgi.input`` block and PEP 3333 offers
no timeout, so only what is sure to exist is read: with a ``CONTENT_LENGTH``,
up to ``min(length, body_limit)`` bytes; with ``wsgi.input_terminated``
(chunked), up to ``body_limit`` bytes or the end; with neither there is no
body and nothing is read. The wait is bounded by a helper thread that does
the reads (in steps of 8 KiB: a server's ``read(n)`` waits for ``n`` bytes or
the end, so that is the granularity of what a stalled upload shows before
the wait ends) while the request thread waits at most
``block_read_timeout`` seconds. What did not arrive by then is not waited
for: the decision goes on without it and the skip is counted
(``devsecmw.errors``, stage ``read_ahead``, ``timeout``). In-memory streams
(``io.BytesIO``, spooled files: test clients, buffering servers) are read
inline, without a thread.

The app then reads a :class:`ReplayInput`: exactly the bytes read ahead,
then the rest of the stream as it comes (observed as in monitor mode),
with the same methods as the tap and the same read-to-size behaviour. The
bytes read ahead are a prefix of the stream, nothing more: only the stream's
own end stops a read, never ``CONTENT_LENGTH``, so an app reads what it would
have read from the bare stream (a stream holding more than the declared
length gives the app that more, as it would without devsecmw; the server's
stream is what enforces the length, if anything does). There is never more than one reader
on the server's stream: a read the helper thread still has in flight when
the wait ends is not abandoned; the app's first read past the buffered bytes
waits for its result (as the app's own read would have waited), and before
the request ends (the response's ``close()``, a block response included)
devsecmw waits for it too, so the thread never outlives the request nor
touches a connection the server has moved on with (keep-alive draining,
mod_wsgi's request lifetime). That last wait lasts as long as the client
takes to send the rest of that read, bounded by the server's own timeouts
(gunicorn's worker ``--timeout``, Apache's ``Timeout``, uWSGI's
``socket-timeout``), just as an app reading its body would be. Under
gevent/eventlet, threads must be monkey-patched (gunicorn's gevent and
eventlet workers do so). When no thread can be started the head alone
decides (counted, ``thread``). Monitor mode never reads ahead and starts no
thread.

Usage::

    app.wsgi_app = devsecmw.wsgi.SecurityMiddleware(app.wsgi_app)   # Flask
    application = devsecmw.wsgi.SecurityMiddleware(application)     # any WSGI app
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from opentelemetry import metrics, trace

from ._types import Environ, StartResponse, WriteCallable, WSGIApp
from .bodytap import _IN_MEMORY, ENVIRON_KEY, InputTap, ReplayInput, content_length, read_ahead, read_unread
from .bodytap.response import BlockResponse, nothing, wrap_result
from .config import Config
from .core import BLOCK, READ_AHEAD, RUN, Inspection, Runtime
from .engine import Detector
from .request import from_wsgi_environ
from .routes import ROUTE_KEY, route_from_environ


def status_code(status: Any) -> int:
    """The code of a WSGI status line (``"404 Not Found"``); 0 when the app sent something else."""
    head = str(status)[:3]
    return int(head) if head.isdigit() and head.isascii() else 0


def wsgi_status(code: int) -> str:
    """A WSGI status line for ``code`` (``"403 Forbidden"``)."""
    try:
        return f"{code} {HTTPStatus(code).phrase}"
    except ValueError:
        return f"{code} Blocked"


class SecurityMiddleware:
    """devsecmw for any WSGI application."""

    def __init__(
        self,
        app: WSGIApp,
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
        #: False turns the middleware into a pass-through (``devsecmw.flask.uninit_app`` uses it
        #: when another wrapper was added on top and unwrapping would remove that one too).
        self.enabled = True

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if not self.enabled or environ.get(ENVIRON_KEY):
            # Another devsecmw outside already inspects this request (wrapped by hand and by the
            # zero-code instrumentor): once is enough.
            return self.app(environ, start_response)
        runtime = self.runtime
        try:
            request = from_wsgi_environ(environ)
        except Exception as exc:
            runtime.report("request", exc)
            return self.app(environ, start_response)
        insp = runtime.begin(request, functools.partial(route_from_environ, environ))
        if insp is None:
            return self.app(environ, start_response)
        replay: ReplayInput | None = None
        unread: Callable[[], None] = nothing
        step = RUN
        try:
            # Tells devsecmw.django, should it also be installed, that this request is covered.
            environ[ENVIRON_KEY] = True
            step = insp.gate()  # block mode: the head alone may decide
            stream = environ.get("wsgi.input")
            if stream is not None and step != BLOCK:
                length = content_length(environ.get("CONTENT_LENGTH"))
                if length is None and not environ.get("wsgi.input_terminated"):
                    length = 0  # PEP 3333: no Content-Length and not terminated means no body
                if step == READ_AHEAD and length != 0:
                    in_memory = isinstance(stream, _IN_MEMORY)
                    replay = environ["wsgi.input"] = read_ahead(insp, stream, length, in_memory)
                    step = insp.gate()  # decided again, on the body read ahead
                else:
                    tap = environ["wsgi.input"] = InputTap(stream, insp, length)
                    if length != 0 and self._unread:
                        unread = functools.partial(read_unread, insp, tap, stream, environ)
        except Exception as exc:
            runtime.report("input", exc)
            step = RUN  # fail open: the app runs
        release = replay.settle if replay is not None else nothing
        if step == BLOCK:
            response = self._block(start_response, insp, release)
            if response is not None:
                return response

        def wrapped_start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> WriteCallable:
            # The server's own call first: when it re-raises exc_info (headers already sent)
            # the client got the first status, which is the one to keep.
            if exc_info is None:
                write = start_response(status, headers)
            else:
                write = start_response(status, headers, exc_info)
            insp.response_start(status_code(status), headers)

            def wrapped_write(data: bytes) -> object:
                insp.response_chunk(data)
                return write(data)

            return wrapped_write

        try:
            with insp:  # the app's exception passes through, recorded
                result = self.app(environ, wrapped_start_response)
        except BaseException:
            release()
            raise
        return wrap_result(result, environ, insp, release, unread)

    @staticmethod
    def _block(
        start_response: StartResponse, insp: Inspection, release: Callable[[], None]
    ) -> Iterable[bytes] | None:
        """Answer with the block response; ``None`` (the app runs) if it cannot be built."""
        answer = insp.block_answer(_block_status)
        if answer is None:
            return None
        status, headers, body = answer  # header values are ASCII (validated by Config)
        try:
            start_response(status, headers)
        except BaseException as exc:  # the server's own error: passed on, recorded
            insp.finish(exc)
            release()
            raise
        return BlockResponse(body, insp, release)


def _block_status(
    status: int, headers: list[tuple[str, str]], body: bytes
) -> tuple[str, list[tuple[str, str]], bytes]:
    return wsgi_status(status), headers, body


__all__ = [
    "ENVIRON_KEY",
    "ROUTE_KEY",
    "InputTap",
    "ReplayInput",
    "SecurityMiddleware",
    "content_length",
    "read_ahead",
    "read_unread",
    "route_from_environ",
    "status_code",
    "wsgi_status",
]

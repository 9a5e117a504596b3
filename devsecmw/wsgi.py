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
from collections.abc import Callable, Iterable, Iterator
from http import HTTPStatus
from typing import Any

from opentelemetry import metrics, trace

from ._types import Environ, StartResponse, WriteCallable, WSGIApp
from .bodytap import (
    _BYTES,
    _IN_MEMORY,
    ENVIRON_KEY,
    InputTap,
    ReplayInput,
    content_length,
    read_ahead,
    read_unread,
)
from .config import Config
from .core import Inspection, Runtime
from .engine import Detector
from .request import from_wsgi_environ

#: Environ key a framework (or the app) sets to the matched route template (``/items/<int:id>``);
#: read when the app calls ``start_response``. The WSGI adapter imports no framework.
ROUTE_KEY = "devsecmw.route"
#: Werkzeug's environ key for its request object; Flask's request carries the matched ``url_rule``.
_WERKZEUG_REQUEST = "werkzeug.request"


def route_from_environ(environ: Environ) -> str | None:
    """The route template: the ``devsecmw.route`` environ key, else the ``url_rule`` of the
    Werkzeug request (Flask) that the environ names, else ``None``."""
    explicit = environ.get(ROUTE_KEY)
    if isinstance(explicit, str):
        return explicit
    rule = getattr(environ.get(_WERKZEUG_REQUEST), "url_rule", None)  # duck-typed: no Flask import
    template = getattr(rule, "rule", None)
    return template if isinstance(template, str) else None


def status_code(status: Any) -> int:
    """The code of a WSGI status line (``"404 Not Found"``); 0 when the app sent something else."""
    head = str(status)[:3]
    return int(head) if head.isdigit() and head.isascii() else 0


def _nothing() -> None:
    pass


#: Iterables whose ``iter()`` and ``close`` lookup run no app code (exact types only: a
#: subclass may define ``__iter__`` or ``close``).
_PLAIN = (list, tuple)
#: Iterators whose ``next()`` runs no app code: the interpreter's own over a list or tuple.
_PLAIN_ITERATORS: tuple[type, ...] = (type(iter([])), type(iter(())))


class _Response:
    """The app's iterable, passed through chunk by chunk; ends the inspection, always closes.

    The span is made current around whatever may run app code (``iter()``, ``next()`` on a
    generator or a custom iterator, ``close()``) and around the end of the inspection (its
    metrics then carry the span as their exemplar, as in the ASGI adapter). ``next()`` on a
    list or tuple iterator runs no app code: those chunks are handed over without it, which
    saves an attach and a detach per chunk.
    """

    __slots__ = ("_insp", "_iter", "_plain", "_release", "_result", "_unread")

    def __init__(
        self,
        result: Iterable[bytes],
        insp: Inspection,
        release: Callable[[], None] = _nothing,
        unread: Callable[[], None] = _nothing,
    ) -> None:
        self._result = result
        self._insp = insp
        self._unread = unread  # monitor mode: reads the body the app left unread (response complete)
        self._iter: Iterator[bytes] | None = None
        self._plain = False  # self._iter is a list or tuple iterator
        if type(result) in _PLAIN:
            self._iter = iter(result)
            self._plain = True
        self._release = release  # block mode: settles a read-ahead before the server moves on

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        insp = self._insp
        if self._plain:
            try:
                chunk = next(self._iter)  # type: ignore[arg-type]  # set with _plain
            except StopIteration:
                self._unread()
                self._finish()
                raise
            insp.response_chunk(chunk)
            return chunk
        insp.activate()
        try:
            if self._iter is None:
                it = self._iter = iter(self._result)
                self._plain = type(it) in _PLAIN_ITERATORS  # e.g. __iter__ returning iter(a_list)
            chunk = next(self._iter)
        except StopIteration:
            self._unread()  # the last chunk has gone: the response is complete
            insp.finish()
            raise
        except BaseException as exc:
            insp.finish(exc)
            raise
        finally:
            insp.deactivate()
        insp.response_chunk(chunk)
        return chunk

    def _finish(self) -> None:
        insp = self._insp
        insp.activate()
        try:
            insp.finish()
        finally:
            insp.deactivate()

    def close(self) -> None:
        insp = self._insp
        if type(self._result) in _PLAIN:  # no close() to call: no app code runs here
            try:
                if not insp.finished:  # the server stopped early
                    self._finish()
            finally:
                self._release()
            return
        insp.activate()
        try:
            close = getattr(self._result, "close", None)
            if close is not None:
                close()
        except BaseException as exc:
            insp.finish(exc)
            raise
        finally:
            insp.finish()
            insp.deactivate()
            self._release()


class _SizedResponse(_Response):
    """Keeps ``len()``: servers (wsgiref) set Content-Length for one-chunk iterables."""

    __slots__ = ()

    def __len__(self) -> int:
        return len(self._result)  # type: ignore[arg-type]


class _FileTap:
    """The file of a ``wsgi.file_wrapper`` response: reads observed, ``close()`` ends the inspection.

    Everything else (``fileno``, ``seek``, ``tell``...) passes through so the
    server can still use sendfile; bytes sent that way are not observed.
    """

    __slots__ = ("_file", "_insp", "_release", "_unread")

    def __init__(
        self,
        file: Any,
        insp: Inspection,
        release: Callable[[], None] = _nothing,
        unread: Callable[[], None] = _nothing,
    ) -> None:
        self._file = file
        self._insp = insp
        self._release = release
        self._unread = unread

    def read(self, *args: Any, **kwargs: Any) -> Any:
        data = self._file.read(*args, **kwargs)
        if isinstance(data, _BYTES):
            self._insp.response_chunk(bytes(data))
        return data

    def close(self) -> None:
        try:
            close = getattr(self._file, "close", None)
            if close is not None:
                close()
        except BaseException as exc:
            self._insp.finish(exc)
            raise
        finally:
            if not self._insp.finished:  # the file was sent (sendfile too): the response is complete
                self._unread()
            self._insp.finish()
            self._release()

    def __getattr__(self, name: str) -> Any:
        if name in _FileTap.__slots__:
            raise AttributeError(name)
        return getattr(self._file, name)


class _BlockResponse:
    """The block response's body; ``close()`` ends the inspection, then settles the read-ahead."""

    __slots__ = ("_body", "_insp", "_release")

    def __init__(self, body: bytes, insp: Inspection, release: Callable[[], None]) -> None:
        self._body = body
        self._insp = insp
        self._release = release

    def __iter__(self) -> Iterator[bytes]:
        return iter((self._body,))

    def __len__(self) -> int:
        return 1

    def close(self) -> None:
        try:
            self._insp.finish()
        finally:
            self._release()


def _wrap_result(
    result: Iterable[bytes],
    environ: Environ,
    insp: Inspection,
    release: Callable[[], None] = _nothing,
    unread: Callable[[], None] = _nothing,
) -> Iterable[bytes]:
    try:
        wrapper = environ.get("wsgi.file_wrapper")
        if (
            isinstance(wrapper, type)
            and type(result) is wrapper
            and hasattr(result, "filelike")
            # A close() set on the wrapper itself would be lost by re-wrapping: keep it as it is.
            and getattr(result, "close", None) == getattr(result.filelike, "close", None)
        ):
            blksize = getattr(result, "blksize", None)
            tap = _FileTap(result.filelike, insp, release, unread)
            factory: Callable[..., Iterable[bytes]] = wrapper  # the server's class, not the app's
            return factory(tap, blksize) if blksize else factory(tap)
        if hasattr(result, "__len__"):
            return _SizedResponse(result, insp, release, unread)
    except Exception as exc:
        insp.runtime.report("response", exc)
    return _Response(result, insp, release, unread)


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
        insp = runtime.begin(request)
        if insp is None:
            return self.app(environ, start_response)
        replay: ReplayInput | None = None
        unread: Callable[[], None] = _nothing
        try:
            # Tells devsecmw.django, should it also be installed, that this request is covered.
            environ[ENVIRON_KEY] = True
            blocked = runtime.blocking and insp.check_block()  # the head alone may decide
            stream = environ.get("wsgi.input")
            if stream is not None and not blocked:
                length = content_length(environ.get("CONTENT_LENGTH"))
                if length is None and not environ.get("wsgi.input_terminated"):
                    length = 0  # PEP 3333: no Content-Length and not terminated means no body
                if runtime.blocking and length != 0 and insp.wants_body_ahead():
                    replay = read_ahead(insp, stream, length, isinstance(stream, _IN_MEMORY))
                    environ["wsgi.input"] = replay
                    blocked = insp.check_block()
                else:
                    tap = environ["wsgi.input"] = InputTap(stream, insp, length)
                    if length != 0 and self._unread:
                        unread = functools.partial(read_unread, insp, tap, stream, environ)
        except Exception as exc:
            runtime.report("input", exc)
            blocked = insp.blocked = False  # fail open: the app runs
        release = replay.settle if replay is not None else _nothing
        if blocked:
            response = self._block(environ, start_response, insp, release)
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
            try:
                if request.route is None:
                    request.route = route_from_environ(environ)
            except Exception as exc:
                runtime.report("route", exc)
            insp.response_start(status_code(status), headers)

            def wrapped_write(data: bytes) -> object:
                insp.response_chunk(data)
                return write(data)

            return wrapped_write

        insp.activate()
        try:
            result = self.app(environ, wrapped_start_response)
        except BaseException as exc:
            insp.finish(exc)
            release()
            raise
        finally:
            insp.deactivate()
        return _wrap_result(result, environ, insp, release, unread)

    @staticmethod
    def _block(
        environ: Environ, start_response: StartResponse, insp: Inspection, release: Callable[[], None]
    ) -> Iterable[bytes] | None:
        """Answer with the block response; ``None`` (the app runs) if it cannot be built."""
        response = insp.block_response(insp.request.header("accept"))
        if response is None:
            return None
        status, headers, body = response  # header values are ASCII (validated by Config)
        try:
            start_response(wsgi_status(status), headers)
        except BaseException as exc:  # the server's own error: passed on, recorded
            insp.finish(exc)
            release()
            raise
        head = str(environ.get("REQUEST_METHOD", "")).upper() == "HEAD"
        return _BlockResponse(b"" if head else body, insp, release)


__all__ = [
    "ENVIRON_KEY",
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

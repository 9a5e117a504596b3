"""WSGI middleware (PEP 3333).

- ``wsgi.input`` is wrapped so what the app reads (``read``, ``readline``,
  ``readlines``, ``readinto``, iteration) is inspected up to the cap, nothing
  more and nothing ahead of the app: every call is forwarded exactly as the app
  made it, so a missing ``Content-Length`` cannot make devsecmw block.
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
  ``next()`` and ``close()``, attached and detached around each of them.

Usage::

    app.wsgi_app = devsecmw.wsgi.SecurityMiddleware(app.wsgi_app)   # Flask
    application = devsecmw.wsgi.SecurityMiddleware(application)     # any WSGI app
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from opentelemetry import metrics, trace

from ._types import Environ, StartResponse, WriteCallable, WSGIApp
from .config import Config
from .core import Inspection, Runtime
from .engine import Detector
from .request import from_wsgi_environ

_BYTES = (bytes, bytearray)
#: Set in the environ of a request this middleware inspects.
ENVIRON_KEY = "devsecmw.inspected"
# Read methods that consume the stream but only exist on some servers' inputs: tapped when
# present, absent when the server's stream lacks them (``hasattr`` must answer the same).
_OPTIONAL_READS = frozenset({"readinto", "readinto1", "read1"})


def route_from_environ(environ: Environ) -> str | None:
    """The route template, from an explicit environ key or the framework's request context."""
    explicit = environ.get("devsecmw.route")
    if isinstance(explicit, str):
        return explicit
    if "flask" in sys.modules:
        from .flask import current_route

        return current_route()
    return None


def content_length(raw: Any) -> int | None:
    """``CONTENT_LENGTH`` as an int; ``None`` when absent, empty or malformed."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw if raw >= 0 else None
    if isinstance(raw, str):
        raw = raw.strip()
        if raw.isdigit() and raw.isascii():
            return int(raw)
    return None


def status_code(status: Any) -> int:
    """The code of a WSGI status line (``"404 Not Found"``); 0 when the app sent something else."""
    head = str(status)[:3]
    return int(head) if head.isdigit() and head.isascii() else 0


def _size(args: tuple[Any, ...], kwargs: dict[str, Any], key: str) -> Any:
    """The size a read call asked for (``None`` when it gave none)."""
    return args[0] if args else kwargs.get(key)


class InputTap:
    """A request body stream as the app sees it: each byte it reads is also shown to the inspection.

    Every call is forwarded unchanged (same method, same arguments) and its
    result returned unchanged; the tap never reads on its own. ``length`` is
    the declared body length (``None`` when unknown, e.g. chunked), used only
    to notice the end of the body early. Shared by the WSGI and Django adapters.
    """

    __slots__ = ("_done", "_insp", "_it", "_left", "_stream")

    def __init__(self, stream: Any, insp: Inspection, length: int | None) -> None:
        self._stream = stream
        self._insp = insp
        self._left = length
        self._it: Iterator[bytes] | None = None
        self._done = False
        if length == 0:
            self._end()

    def _end(self) -> None:
        if not self._done:
            self._done = True
            self._insp.body_chunk(b"", more=False)

    def _seen(self, data: Any, eof: bool, size: Any = None) -> None:
        """Account for what a read of ``size`` returned. Never raises (fail open).

        An empty result ends the body, unless the call asked for nothing (``read(0)``).
        """
        try:
            if size == 0 and not eof:
                return
            if isinstance(data, memoryview):
                data = data.tobytes()
            if not isinstance(data, _BYTES):
                return  # not bytes: not ours to judge, the app gets it as it is
            if self._left is not None:
                self._left -= len(data)
                eof = eof or self._left <= 0
            if data:
                self._insp.body_chunk(bytes(data), more=True)
            if eof or not data:
                self._end()
        except Exception as exc:
            self._insp.runtime.report("input", exc)

    def read(self, *args: Any, **kwargs: Any) -> Any:
        data = self._stream.read(*args, **kwargs)
        size = _size(args, kwargs, "size")
        whole = size is None or (isinstance(size, int) and size < 0)  # read() is read to the end
        self._seen(data, whole, size)
        return data

    def readline(self, *args: Any, **kwargs: Any) -> Any:
        line = self._stream.readline(*args, **kwargs)
        self._seen(line, False, _size(args, kwargs, "size"))
        return line

    def readlines(self, *args: Any, **kwargs: Any) -> Any:
        lines = self._stream.readlines(*args, **kwargs)
        try:
            for line in lines:
                self._seen(line, eof=False)
            hint = args[0] if args else kwargs.get("hint")
            if hint is None or (isinstance(hint, int) and hint <= 0) or not lines:
                self._end()
        except Exception as exc:  # an odd return value: still the app's to have
            self._insp.runtime.report("input", exc)
        return lines

    def _readinto(self, name: str) -> Callable[..., Any]:
        method = getattr(self._stream, name)

        def readinto(buffer: Any, *args: Any, **kwargs: Any) -> Any:
            n = method(buffer, *args, **kwargs)
            if isinstance(n, int) and n > 0:
                self._seen(bytes(memoryview(buffer)[:n]), eof=False)
            elif n == 0:
                self._seen(b"", False, len(buffer))
            return n

        return readinto

    def _read1(self, *args: Any, **kwargs: Any) -> Any:
        data = self._stream.read1(*args, **kwargs)
        self._seen(data, False, _size(args, kwargs, "size"))
        return data

    def __iter__(self) -> InputTap:
        return self

    def __next__(self) -> Any:
        if self._it is None:
            self._it = iter(self._stream)
        try:
            line = next(self._it)
        except StopIteration:
            self._seen(b"", eof=True)
            raise
        self._seen(line, eof=False)
        return line

    def __getattr__(self, name: str) -> Any:
        # Called only for names not defined above: server extras (fileno, seek, close...) pass
        # through; optional read methods are tapped when the stream has them.
        if name in InputTap.__slots__:  # unset slot (copy/pickle): no recursion through _stream
            raise AttributeError(name)
        if name in _OPTIONAL_READS:
            if not hasattr(self._stream, name):
                raise AttributeError(name)
            return self._read1 if name == "read1" else self._readinto(name)
        return getattr(self._stream, name)


class _Response:
    """The app's iterable, passed through chunk by chunk; ends the inspection, always closes."""

    __slots__ = ("_insp", "_iter", "_result")

    def __init__(self, result: Iterable[bytes], insp: Inspection) -> None:
        self._result = result
        self._insp = insp
        self._iter: Iterator[bytes] | None = None

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        insp = self._insp
        insp.activate()
        try:
            if self._iter is None:
                self._iter = iter(self._result)
            chunk = next(self._iter)
        except StopIteration:
            insp.finish()
            raise
        except BaseException as exc:
            insp.finish(exc)
            raise
        finally:
            insp.deactivate()
        insp.response_chunk(chunk)
        return chunk

    def close(self) -> None:
        insp = self._insp
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

    __slots__ = ("_file", "_insp")

    def __init__(self, file: Any, insp: Inspection) -> None:
        self._file = file
        self._insp = insp

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
            self._insp.finish()

    def __getattr__(self, name: str) -> Any:
        if name in _FileTap.__slots__:
            raise AttributeError(name)
        return getattr(self._file, name)


def _wrap_result(result: Iterable[bytes], environ: Environ, insp: Inspection) -> Iterable[bytes]:
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
            tap = _FileTap(result.filelike, insp)
            factory: Callable[..., Iterable[bytes]] = wrapper  # the server's class, not the app's
            return factory(tap, blksize) if blksize else factory(tap)
        if hasattr(result, "__len__"):
            return _SizedResponse(result, insp)
    except Exception as exc:
        insp.runtime.report("response", exc)
    return _Response(result, insp)


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
        #: False turns the middleware into a pass-through (``devsecmw.flask.uninit_app`` uses it
        #: when another wrapper was added on top and unwrapping would remove that one too).
        self.enabled = True

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if not self.enabled:
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
        try:
            # Tells devsecmw.django, should it also be installed, that this request is covered.
            environ[ENVIRON_KEY] = True
            stream = environ.get("wsgi.input")
            if stream is not None:
                length = content_length(environ.get("CONTENT_LENGTH"))
                if length is None and not environ.get("wsgi.input_terminated"):
                    length = 0  # PEP 3333: no Content-Length and not terminated means no body
                environ["wsgi.input"] = InputTap(stream, insp, length)
        except Exception as exc:
            runtime.report("input", exc)

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
            raise
        finally:
            insp.deactivate()
        return _wrap_result(result, environ, insp)


__all__ = [
    "ENVIRON_KEY",
    "InputTap",
    "SecurityMiddleware",
    "content_length",
    "route_from_environ",
    "status_code",
]

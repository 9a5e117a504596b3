"""WSGI middleware (PEP 3333).

- ``wsgi.input`` is wrapped so what the app reads (``read``, ``readline``,
  ``readlines``, iteration) is inspected up to the cap, nothing more and
  nothing ahead of the app.
- ``start_response`` is wrapped (``exc_info`` and the ``write()`` callable
  included) to observe the status and headers.
- The returned iterable is wrapped: chunks pass through as they come, the
  span ends after the last one, and the app's ``close()`` is always called.

Usage::

    app.wsgi_app = devsecmw.wsgi.SecurityMiddleware(app.wsgi_app)   # Flask
    application = devsecmw.wsgi.SecurityMiddleware(application)     # any WSGI app
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import Any

from opentelemetry import metrics, trace

from ._types import Environ, StartResponse, WriteCallable, WSGIApp
from .config import Config
from .core import Inspection, Runtime
from .engine import Detector
from .request import from_wsgi_environ


def route_from_environ(environ: Environ) -> str | None:
    """The route template, from an explicit environ key or the framework's request context."""
    explicit = environ.get("devsecmw.route")
    if isinstance(explicit, str):
        return explicit
    if "flask" in sys.modules:
        from .flask import current_route

        return current_route()
    return None


class _Input:
    """``wsgi.input`` as the app sees it: every byte it reads is also shown to the inspection."""

    __slots__ = ("_insp", "_left", "_stream")

    def __init__(self, stream: Any, insp: Inspection, content_length: int | None) -> None:
        self._stream = stream
        self._insp = insp
        self._left = content_length  # None: unknown (chunked / wsgi.input_terminated)

    def _seen(self, data: bytes, eof: bool) -> bytes:
        if self._left is not None:
            self._left -= len(data)
            eof = eof or self._left <= 0
        self._insp.body_chunk(data, more=not eof)
        return data

    def read(self, size: int | None = -1, *args: Any) -> bytes:
        data = self._stream.read(size, *args) if size is not None else self._stream.read()
        whole = size is None or size < 0
        return self._seen(data, eof=not data or (whole and self._left is None))

    def readline(self, size: int | None = -1, *args: Any) -> bytes:
        data = self._stream.readline(size, *args) if size is not None else self._stream.readline()
        return self._seen(data, eof=not data)

    def readlines(self, hint: int | None = -1, *args: Any) -> list[bytes]:
        lines: list[bytes] = (
            self._stream.readlines(hint, *args) if hint is not None else self._stream.readlines()
        )
        for line in lines:
            self._seen(line, eof=False)
        if hint is None or hint <= 0:
            self._seen(b"", eof=True)
        return lines

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def __getattr__(self, name: str) -> Any:
        # Server-specific extras (gunicorn's Body, uwsgi's fileno...) stay reachable.
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
        if self._iter is None:
            self._iter = iter(self._result)
        insp.activate()
        try:
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
        try:
            close = getattr(self._result, "close", None)
            if close is not None:
                close()
        except BaseException as exc:
            self._insp.finish(exc)
            raise
        finally:
            self._insp.finish()


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

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
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
            stream = environ.get("wsgi.input")
            if stream is not None:
                raw_len = environ.get("CONTENT_LENGTH")
                length = int(raw_len) if raw_len not in (None, "") and str(raw_len).isdigit() else None
                if length is None and not environ.get("wsgi.input_terminated"):
                    length = 0  # PEP 3333: no Content-Length and not terminated means no body
                environ["wsgi.input"] = _Input(stream, insp, length)
                if length == 0:
                    insp.body_chunk(b"", more=False)
        except Exception as exc:
            runtime.report("input", exc)

        def wrapped_start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> WriteCallable:
            try:
                if request.route is None:
                    request.route = route_from_environ(environ)
            except Exception as exc:
                runtime.report("route", exc)
            try:
                code = int(status.split(None, 1)[0])
            except (ValueError, IndexError):
                code = 0
            insp.response_start(code, headers)
            write = start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

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
        return _Response(result, insp)


__all__ = ["SecurityMiddleware", "route_from_environ"]

"""Django middleware, for WSGI and ASGI deployments alike.

Add it first in ``MIDDLEWARE`` (it then sees every request and response of the others)::

    MIDDLEWARE = ["devsecmw.django.SecurityMiddleware", ...]
    DEVSECMW = {"mode": "monitor", "ignore_paths": ["/healthz"]}   # optional options

``DEVSECMW`` takes the options of :class:`devsecmw.config.Config` plus
``tracer_provider``, ``meter_provider`` and ``detector``, below the ``DEVSECMW_*``
environment variables and above the configuration file; with ``"devsecmw"`` in
``INSTALLED_APPS``, ``manage.py check`` validates them (:mod:`devsecmw.django_settings`).

It only translates: per request it builds the request model (from ``request.scope``
under ASGI, the WSGI environ otherwise) and drives :class:`devsecmw.core.Inspection`:

- The body is inspected as the view reads it: ``request._stream``, the object every
  Django read goes through, is replaced by a read-through tap
  (:class:`devsecmw.bodytap.InputTap`). devsecmw never touches ``request.body`` or
  ``request.POST`` (that would read the whole body up front, raise
  ``RequestDataTooBig`` here instead of in the view, parse uploads before a view can
  set ``request.upload_handlers``, and break streaming views). A body another
  middleware already read (``request._body``) is inspected from there.
- The body a view left unread is read once its complete response is back (as in
  :mod:`devsecmw.wsgi`: up to the cap, where no read can stall).
- ``http.route`` is the resolved URL pattern (``request.resolver_match.route``, e.g.
  ``items/<int:pk>/``, as OpenTelemetry's Django instrumentation has it).
- Streaming responses (sync or async) keep their kind; the span closes after the last
  chunk, or at ``response.close()`` when the server stops early. A ``FileResponse`` is
  left alone (the server's sendfile path still applies); its span closes at ``close()``.
- A view's exception passes through unchanged (Django makes it a 500), recorded. Under
  OpenTelemetry's Django instrumentation devsecmw enriches its span, which ends when the
  response leaves the middleware chain: the verdict is written then.

Block mode (``mode="block"``, opt-in) decides before ``get_response``
(:meth:`devsecmw.core.Inspection.gate`): a blocked request gets an ``HttpResponse``
with the rendered status, headers and body, and the views and every middleware below
never see it. The body is read ahead from ``request._stream`` up to the cap and
replayed to the view byte for byte (:class:`devsecmw.bodytap.ReplayInput`): under WSGI
as in :mod:`devsecmw.wsgi` (``min(CONTENT_LENGTH, cap)`` bytes in a helper thread,
waited for at most ``block_read_timeout``), under ASGI inline from the spooled file
Django already filled. Once the view runs nothing is blocked any more (record only).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
from collections.abc import Awaitable, Callable
from typing import Any

from opentelemetry import metrics, trace

from .bodytap import ENVIRON_KEY, InputTap, ReplayInput, content_length, read_ahead, read_unread
from .bodytap.response import async_stream, sync_stream
from .config import Config
from .core import BLOCK, READ_AHEAD, RUN, Inspection, Runtime
from .django_settings import CONFIG_SOURCE, SETTINGS_NAME, check_settings, register_checks, settings_config
from .engine import Detector
from .request import HttpRequest, from_asgi_scope, from_wsgi_environ

_EXC_ATTR = "_devsecmw_exception"


def _require_django() -> tuple[Callable[[Any], bool], Callable[[Any], Any]]:
    """Django's (asgiref's) coroutine helpers; a clear ImportError when Django is absent."""
    try:
        importlib.import_module("django")  # untyped; imported by name, not for mypy to analyse
        from asgiref.sync import iscoroutinefunction, markcoroutinefunction
    except ImportError as exc:
        raise ImportError(
            "devsecmw.django.SecurityMiddleware needs Django: pip install 'devsecmw[django]' "
            "(or use devsecmw.wsgi / devsecmw.asgi directly)"
        ) from exc
    return iscoroutinefunction, markcoroutinefunction


def request_model(request: Any) -> HttpRequest:
    """The framework-free request model of a Django request (ASGI scope or WSGI environ)."""
    scope = getattr(request, "scope", None)
    if isinstance(scope, dict) and scope.get("type") == "http":
        return from_asgi_scope(scope)
    environ = getattr(request, "environ", None)
    if not isinstance(environ, dict):
        environ = request.META
    return from_wsgi_environ(environ)


def route_of(request: Any) -> str | None:
    """The URL pattern Django resolved the request to, if it resolved."""
    match = getattr(request, "resolver_match", None)
    route = getattr(match, "route", None)
    if not isinstance(route, str):
        return None
    return route or "/"  # path("", view): the root pattern is the empty string


def _settle_at_close(response: Any, replay: ReplayInput | None) -> None:
    """A read-ahead still in flight is settled when the server is done with the response."""
    if replay is not None:
        closers = getattr(response, "_resource_closers", None)
        if isinstance(closers, list):
            closers.append(replay.settle)
        else:
            replay.settle()


def _http_response(status: int, headers: list[tuple[str, str]], body: bytes) -> Any:
    """The block response as Django's ``HttpResponse``."""
    response = importlib.import_module("django.http").HttpResponse(body, status=status)
    for name, value in headers:
        response[name] = value
    return response


class SecurityMiddleware:
    """devsecmw for Django (``MIDDLEWARE``), sync and async."""

    sync_capable = True
    async_capable = True

    def __init__(
        self,
        get_response: Callable[[Any], Any],
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        detector: Detector | None = None,
        config: Config | None = None,
        **options: Any,
    ) -> None:
        iscoroutinefunction, markcoroutinefunction = _require_django()
        if config is None:
            settings_config_, plumbing = settings_config(options)
            options = {}
            config = plumbing.get("config") or settings_config_
            tracer_provider = tracer_provider or plumbing.get("tracer_provider")
            meter_provider = meter_provider or plumbing.get("meter_provider")
            detector = detector or plumbing.get("detector")
        self.get_response = get_response
        self.runtime = Runtime.from_options(tracer_provider, meter_provider, detector, config, **options)
        self._is_async = bool(iscoroutinefunction(get_response))
        if self._is_async:
            # Django then awaits __call__ (the documented pattern for sync-and-async middleware).
            markcoroutinefunction(self)

    # ------------------------------------------------------------------ request
    def __call__(self, request: Any) -> Any:
        if self._is_async:
            return self.__acall__(request)
        insp = self._begin(request)
        if insp is None:
            return self.get_response(request)
        replay, blocked = self._gate(request, insp)
        if blocked is not None:
            return blocked
        try:
            with insp:  # the view's exception passes through, recorded
                response = self.get_response(request)
        except BaseException:
            _settle_at_close(None, replay)
            raise
        return self._response(request, response, insp, replay)

    async def __acall__(self, request: Any) -> Any:
        get_response: Callable[[Any], Awaitable[Any]] = self.get_response
        insp = self._begin(request)
        if insp is None:
            return await get_response(request)
        # Under ASGI the body is in memory: the read-ahead is inline and never waits.
        replay, blocked = self._gate(request, insp)
        if blocked is not None:
            return blocked
        try:
            with insp:
                response = await get_response(request)
        except BaseException:
            _settle_at_close(None, replay)
            raise
        return self._response(request, response, insp, replay)

    def process_exception(self, request: Any, exception: Exception) -> None:
        """Remember the view's exception for the span; Django goes on handling it (returns None)."""
        with contextlib.suppress(Exception):  # a request object refusing attributes: no record
            setattr(request, _EXC_ATTR, exception)

    def _begin(self, request: Any) -> Inspection | None:
        runtime = self.runtime
        try:
            if request.META.get(ENVIRON_KEY):
                return None  # devsecmw.wsgi wraps this Django app too: inspected once, there
            model = request_model(request)
        except Exception as exc:
            runtime.report("request", exc)
            return None
        return runtime.begin(model, functools.partial(route_of, request))

    def _gate(self, request: Any, insp: Inspection) -> tuple[ReplayInput | None, Any]:
        """Tap (or, in block mode, read ahead) the body; the block response if the gate says so."""
        replay: ReplayInput | None = None
        step = RUN
        try:
            step = insp.gate()  # block mode: the head alone may decide
            state = vars(request)
            body = state.get("_body")
            if isinstance(body, bytes):
                insp.body_chunk(body, more=False)  # read by a middleware before us: already in memory
                if step != BLOCK:
                    step = insp.gate()
            elif state.get("_stream") is not None and step != BLOCK:
                stream = state["_stream"]
                length = content_length(request.META.get("CONTENT_LENGTH"))
                asgi = isinstance(getattr(request, "scope", None), dict)
                if not asgi and length is None:
                    length = 0  # Django under WSGI reads CONTENT_LENGTH bytes, none without it
                if step == READ_AHEAD and length != 0:
                    replay = request._stream = read_ahead(insp, stream, length, in_memory=asgi)
                    step = insp.gate()  # decided again, on the body read ahead
                else:
                    request._stream = InputTap(stream, insp, length)
        except Exception as exc:
            self.runtime.report("input", exc)
            step = RUN  # fail open: the view runs
        if step != BLOCK:
            return replay, None
        response = insp.block_answer(_http_response)  # None if it cannot be built: the view runs
        if response is not None:
            insp.finish()
            _settle_at_close(response, replay)
        return replay, response

    # ------------------------------------------------------------------ response
    def _response(
        self, request: Any, response: Any, insp: Inspection, replay: ReplayInput | None = None
    ) -> Any:
        _settle_at_close(response, replay)
        exception: BaseException | None = None
        try:
            status = int(response.status_code)
            insp.response_start(status, list(response.items()))
            if status >= 500:
                exception = getattr(request, _EXC_ATTR, None)
            if not getattr(response, "streaming", False):
                for chunk in response:  # the body is in memory: sniffed (bounded) for leaks, no copy
                    insp.response_chunk(chunk)
                if exception is None:
                    self._unread(request, insp)
            elif insp.owns_span() and self._defer(response, insp, exception):
                return response
        except Exception as exc:
            self.runtime.report("response", exc)
        insp.finish(exception)
        return response

    def _unread(self, request: Any, insp: Inspection) -> None:
        """Monitor mode: the view returned a complete response; the body it left unread is read
        (:func:`devsecmw.bodytap.read_unread`: up to the cap, only where no read can stall). Not
        for streaming responses, whose generator may still read the request body."""
        config = self.runtime.config
        if self.runtime.blocking or config.unread_timeout <= 0:
            return
        tap = vars(request).get("_stream")
        if not isinstance(tap, InputTap):  # no body, read ahead (block mode), or read by a middleware
            return
        # Under ASGI Django received the whole body before any middleware ran: it is in memory.
        asgi = isinstance(getattr(request, "scope", None), dict)
        read_unread(insp, tap, request.META.get("wsgi.input"), request.META, in_memory=asgi)

    @staticmethod
    def _defer(response: Any, insp: Inspection, exception: BaseException | None) -> bool:
        """Move the end of the inspection to the end of a streaming response; False if it cannot."""
        closers = getattr(response, "_resource_closers", None)
        if not isinstance(closers, list):
            return False
        insp.app_failed(exception)
        if getattr(response, "file_to_stream", None) is None:
            content = response.streaming_content
            if getattr(response, "is_async", False):
                response.streaming_content = async_stream(content, insp)
            else:
                response.streaming_content = sync_stream(content, insp)
        # The safety net: Django closes every response once the server is done with it (an async
        # generator has no close() for Django to register, and a FileResponse is never wrapped).
        closers.append(insp.finish)
        return True


__all__ = [
    "CONFIG_SOURCE",
    "SETTINGS_NAME",
    "SecurityMiddleware",
    "check_settings",
    "register_checks",
    "request_model",
    "route_of",
    "settings_config",
]

"""Django middleware, for WSGI and ASGI deployments alike.

Add it first in ``MIDDLEWARE`` (it then sees every request and every response
the other middleware produce)::

    MIDDLEWARE = ["devsecmw.django.SecurityMiddleware", ...]
    DEVSECMW = {"mode": "monitor", "ignore_paths": ["/healthz"]}   # optional options

``DEVSECMW`` takes the options of :class:`devsecmw.config.Config` plus
``tracer_provider``, ``meter_provider`` and ``detector`` (the global
OpenTelemetry providers are used when absent). Its options come below the
``DEVSECMW_*`` environment variables and above the configuration file (see
:mod:`devsecmw.config`). Add ``"devsecmw"`` to ``INSTALLED_APPS`` and
``manage.py check`` (and ``runserver``, which runs the checks first) validates
them: a bad value is the error ``devsecmw.E001`` naming the key, instead of a
traceback when the middleware loads.

It has no detection logic of its own; per request it builds the request model
(from ``request.scope`` under ASGI, the WSGI environ otherwise) and drives
:class:`devsecmw.core.Inspection` as the other adapters do:

- The body is inspected as the view reads it. devsecmw never touches
  ``request.body`` or ``request.POST``: that would read the whole body up
  front (memory, and Django's ``RequestDataTooBig`` raised in the middleware
  instead of the view), parse uploads before a view can set
  ``request.upload_handlers``, and leave ``request.read()`` unusable for
  streaming views ("stream consumed"). Instead ``request._stream``, the object
  every Django read goes through, is replaced by a read-through tap
  (:class:`devsecmw.bodytap.InputTap`). A body another middleware already read
  into ``request._body`` is inspected from there.
- Once a view returned a complete (not streaming) response, the body it left
  unread is read and inspected as under :mod:`devsecmw.wsgi` (up to the cap;
  in memory under ASGI and the test clients, on gunicorn only as far as the
  bytes are there).
- ``http.route`` is the resolved URL pattern (``request.resolver_match.route``,
  e.g. ``items/<int:pk>/``, the format OpenTelemetry's Django instrumentation
  uses too); never the raw path.
- Streaming responses (sync or async ``streaming_content``) keep their kind;
  the span closes after the last chunk, or at ``response.close()`` when the
  server stops early. A ``FileResponse`` is left alone so the server's
  ``wsgi.file_wrapper``/sendfile path still applies; its span closes at
  ``close()``.
- An exception in the view passes through unchanged; Django turns it into a
  500 (``http_5xx``), and the exception is recorded on the span.
- When OpenTelemetry's Django instrumentation is active, its span is current
  here and devsecmw enriches it (one server span). That instrumentation ends
  its span when the response leaves the middleware chain, so devsecmw then
  records its verdict at that point, streaming or not.

Block mode (``mode="block"``, opt-in) decides before ``get_response``: a
request whose head, body read ahead or flagged client calls for a block gets
an ``HttpResponse`` with the rendered status, headers and body (the trace id
in it), returned from this middleware; the views and every middleware below
never see the request. The body is read ahead from ``request._stream`` up to
the inspection cap and replayed to the view byte for byte
(:class:`devsecmw.bodytap.ReplayInput`):

- under WSGI ``request._stream`` is Django's ``LimitedStream`` over
  ``wsgi.input`` (Django reads ``CONTENT_LENGTH`` bytes, none without it), so
  the read-ahead is that of :mod:`devsecmw.wsgi`: ``min(length, cap)`` bytes
  in a helper thread, waited for at most ``block_read_timeout`` seconds, a
  read still in flight waited for before the response is closed;
- under ASGI Django has already received the whole body into a spooled file
  before any middleware runs, so it is read ahead inline, no thread, no wait,
  and replayed from memory.

A body another middleware already read (``request._body``) is inspected from
there. Once the view runs nothing is blocked any more (record only).
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import Any

from opentelemetry import metrics, trace

from .bodytap import ENVIRON_KEY, InputTap, ReplayInput, content_length, read_ahead, read_unread
from .config import Config, ConfigError, Layer
from .core import Inspection, Runtime
from .engine import Detector
from .request import HttpRequest, from_asgi_scope, from_wsgi_environ

SETTINGS_NAME = "DEVSECMW"
#: How errors and ``devsecmw config`` name Django's configuration.
CONFIG_SOURCE = f"Django settings.{SETTINGS_NAME}"
#: Keys of ``DEVSECMW`` that are no option of the configuration but the middleware's plumbing.
_PLUMBING = ("tracer_provider", "meter_provider", "detector", "config")
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


def _settings_options() -> dict[str, Any]:
    settings = importlib.import_module("django.conf").settings
    raw = getattr(settings, SETTINGS_NAME, None)
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"devsecmw: settings.{SETTINGS_NAME} must be a dict of options, not {type(raw)!r}")
    return dict(raw)


def settings_config(options: dict[str, Any] | None = None) -> tuple[Config, dict[str, Any]]:
    """The configuration from ``options``, the environment, ``settings.DEVSECMW`` and the file,
    and the plumbing (``tracer_provider``, ``meter_provider``, ``detector``, ``config``) found in
    ``settings.DEVSECMW``."""
    raw = _settings_options()
    plumbing = {k: raw.pop(k) for k in _PLUMBING if k in raw}
    layer = Layer.from_mapping(CONFIG_SOURCE, raw, lambda n: f"{SETTINGS_NAME}[{n!r}]")
    return Config.from_options(options, framework=layer), plumbing


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """Django system check: the ``DEVSECMW`` setting (with the environment and the file) and the
    rule set it names load, as they will when the middleware does (``devsecmw.E001``/``E002``)."""
    checks = importlib.import_module("django.core.checks")
    from .engine.rules import RuleError

    try:
        config, plumbing = settings_config()
        if plumbing.get("detector") is None and plumbing.get("config") is None:
            from .engine import Engine

            Engine(config)  # disabled rule ids and rule files, as at start-up
    except (ConfigError, TypeError) as exc:
        return [
            checks.Error(
                str(exc),
                hint="Fix the setting DEVSECMW (or the DEVSECMW_* variable, or the devsecmw "
                "configuration file) named above; `devsecmw config` shows where each value comes from.",
                obj=f"settings.{SETTINGS_NAME}",
                id="devsecmw.E001",
            )
        ]
    except RuleError as exc:
        return [checks.Error(str(exc), obj=f"settings.{SETTINGS_NAME}", id="devsecmw.E002")]
    return []


def register_checks() -> None:
    """Register :func:`check_settings` with Django (idempotent: Django keeps a set)."""
    importlib.import_module("django.core.checks").register(check_settings, "devsecmw")


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


def _sync_stream(content: Iterable[bytes], insp: Inspection) -> Iterator[bytes]:
    iterator = iter(content)
    try:
        while True:
            insp.activate()
            try:
                chunk = next(iterator)
            except StopIteration:
                break
            finally:
                insp.deactivate()
            insp.response_chunk(chunk)
            yield chunk
    except GeneratorExit:  # closed early by the server: not an error
        raise
    except BaseException as exc:
        insp.finish(exc)
        raise
    finally:
        insp.finish()


async def _async_stream(content: AsyncIterable[bytes], insp: Inspection) -> AsyncIterator[bytes]:
    iterator = aiter(content)
    try:
        while True:
            # Attached and detached within one step: the consumer's task may differ between steps.
            insp.activate()
            try:
                chunk = await anext(iterator)
            except StopAsyncIteration:
                break
            finally:
                insp.deactivate()
            insp.response_chunk(chunk)
            yield chunk
    except GeneratorExit:
        raise
    except BaseException as exc:
        insp.finish(exc)
        raise
    finally:
        insp.finish()


def _settle(replay: ReplayInput | None) -> None:
    if replay is not None:
        replay.settle()


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
        replay = self._gate(request, insp)
        if insp.blocked:
            blocked = self._block(request, insp, replay)
            if blocked is not None:
                return blocked
        insp.activate()
        try:
            response = self.get_response(request)
        except BaseException as exc:
            self._route(request, insp)
            insp.finish(exc)
            _settle(replay)
            raise
        finally:
            insp.deactivate()
        return self._response(request, response, insp, replay)

    async def __acall__(self, request: Any) -> Any:
        get_response: Callable[[Any], Awaitable[Any]] = self.get_response
        insp = self._begin(request)
        if insp is None:
            return await get_response(request)
        # Under ASGI the body is in memory: the read-ahead is inline and never waits.
        replay = self._gate(request, insp)
        if insp.blocked:
            blocked = self._block(request, insp, replay)
            if blocked is not None:
                return blocked
        insp.activate()
        try:
            response = await get_response(request)
        except BaseException as exc:
            self._route(request, insp)
            insp.finish(exc)
            _settle(replay)
            raise
        finally:
            insp.deactivate()
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
        return runtime.begin(model)

    def _gate(self, request: Any, insp: Inspection) -> ReplayInput | None:
        """Tap (or, in block mode, read ahead) the body; decide whether to block (``insp.blocked``)."""
        runtime = self.runtime
        replay: ReplayInput | None = None
        try:
            blocked = runtime.blocking and insp.check_block()  # the head alone may decide
            state = vars(request)
            body = state.get("_body")
            if isinstance(body, bytes):
                insp.body_chunk(body, more=False)  # read by a middleware before us: already in memory
                if runtime.blocking and not blocked:
                    insp.check_block()
            elif state.get("_stream") is not None and not blocked:
                stream = state["_stream"]
                length = content_length(request.META.get("CONTENT_LENGTH"))
                asgi = isinstance(getattr(request, "scope", None), dict)
                if not asgi and length is None:
                    length = 0  # Django under WSGI reads CONTENT_LENGTH bytes, none without it
                if runtime.blocking and length != 0 and insp.wants_body_ahead():
                    replay = read_ahead(insp, stream, length, in_memory=asgi)
                    request._stream = replay
                    insp.check_block()
                else:
                    request._stream = InputTap(stream, insp, length)
        except Exception as exc:
            runtime.report("input", exc)
            insp.blocked = False  # fail open: the view runs
        return replay

    def _block(self, request: Any, insp: Inspection, replay: ReplayInput | None) -> Any:
        """The block response, returned instead of calling the view; ``None`` if it cannot be built."""
        rendered = insp.block_response(insp.request.header("accept"))
        if rendered is None:
            return None
        status, headers, body = rendered
        try:
            http = importlib.import_module("django.http")

            response = http.HttpResponse(b"" if request.method == "HEAD" else body, status=status)
            for name, value in headers:
                response[name] = value
            closers = response._resource_closers
        except Exception as exc:  # e.g. a block_content_type Django refuses as a header
            self.runtime.report("block_response", exc)
            insp.blocked = False
            insp.status = None
            return None
        insp.finish()
        if replay is not None:
            closers.append(replay.settle)  # the server is done with the response: settle the read
        return response

    # ------------------------------------------------------------------ response
    @staticmethod
    def _route(request: Any, insp: Inspection) -> None:
        try:
            if insp.request.route is None:
                insp.request.route = route_of(request)
        except Exception as exc:
            insp.runtime.report("route", exc)

    def _response(
        self, request: Any, response: Any, insp: Inspection, replay: ReplayInput | None = None
    ) -> Any:
        if replay is not None:
            # A read-ahead still in flight is settled when the server is done with the response.
            closers = getattr(response, "_resource_closers", None)
            if isinstance(closers, list):
                closers.append(replay.settle)
            else:
                replay.settle()
        self._route(request, insp)
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
            elif insp.handle.owned and self._defer(response, insp, exception):
                return response
        except Exception as exc:
            self.runtime.report("response", exc)
        insp.finish(exception)
        return response

    def _unread(self, request: Any, insp: Inspection) -> None:
        """Monitor mode: the view returned a complete response; the body it left unread is read
        (:func:`devsecmw.wsgi.read_unread`: up to the cap, only where no read can stall). Not for
        streaming responses, whose generator may still read the request body."""
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
        if exception is not None:
            insp.exception = exception if isinstance(exception, Exception) else None
        if getattr(response, "file_to_stream", None) is None:
            content = response.streaming_content
            if getattr(response, "is_async", False):
                response.streaming_content = _async_stream(content, insp)
            else:
                response.streaming_content = _sync_stream(content, insp)
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

"""Zero-code: devsecmw as an OpenTelemetry instrumentor.

With ``pip install 'devsecmw[instrument]'`` (which brings ``opentelemetry-instrumentation``),
``opentelemetry-instrument python app.py`` finds :class:`DevsecmwInstrumentor` under the
``opentelemetry_instrumentor`` entry point ``devsecmw`` and adds devsecmw to every app the
process then creates, with no code change:

- **Flask**: ``Flask.__init__`` is wrapped; each new app's ``wsgi_app`` becomes a
  :class:`FlaskShim` that builds devsecmw's WSGI middleware at the first request, reading
  the ``DEVSECMW_*`` keys of ``app.config`` then (the route template from Flask's ``url_rule``).
- **Starlette and FastAPI**: ``build_middleware_stack`` of both classes is wrapped; the stack
  each app builds (at its first request) runs inside :class:`devsecmw.asgi.SecurityMiddleware`,
  outermost, so it sees the 500 that ``ServerErrorMiddleware`` answers. OpenTelemetry's
  FastAPI instrumentation, when active, wraps this in turn: devsecmw enriches its span.
- **Falcon**: ``__call__`` of ``falcon.App`` and ``falcon.asgi.App`` is wrapped; at an app's
  first request devsecmw's :class:`devsecmw.falcon.RouteMiddleware` joins its middleware
  (``http.route`` from ``req.uri_template``) and the app then runs inside devsecmw's WSGI or
  ASGI middleware. An app given ``RouteMiddleware`` by hand (``devsecmw.falcon.instrument``)
  is left as it is.
- **Django**: ``BaseHandler.load_middleware`` is wrapped; when Django loads its middleware,
  devsecmw's is inserted into ``settings.MIDDLEWARE`` (right after OpenTelemetry's own
  middleware if present, else first). Settings are not touched before that, so the
  instrumentor works whether or not ``DJANGO_SETTINGS_MODULE`` is set when it runs, and
  ``manage.py check`` validates ``settings.DEVSECMW`` (the check is registered too).

An app that already has devsecmw (added by hand: ``SecurityMiddleware`` in Starlette's
middleware list or Django's ``MIDDLEWARE``, a wrapped ``wsgi_app``) is left as it is: one
inspection per request. Plain WSGI/ASGI apps get nothing, as with OpenTelemetry's own
instrumentations: wrap them with :mod:`devsecmw.wsgi` / :mod:`devsecmw.asgi`.

Environment, as OpenTelemetry's contrib instrumentations read theirs:

- ``OTEL_PYTHON_DEVSECMW_EXCLUDED_URLS``, else ``OTEL_PYTHON_EXCLUDED_URLS``: comma-separated
  regular expressions (RE2) searched in the full URL; matching requests are not inspected;
- ``OTEL_PYTHON_DEVSECMW_FRAMEWORKS``: the frameworks to patch (``flask,django,starlette,falcon``;
  default all; FastAPI is ``starlette``);
- ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=devsecmw`` turns it off, as any instrumentation;
- devsecmw's options come from ``DEVSECMW_*`` variables and the configuration file as usual
  (see :mod:`devsecmw.config`); Flask's ``app.config`` at the app's first request.

In code: ``DevsecmwInstrumentor().instrument(tracer_provider=..., mode="block")`` (any
option of :class:`devsecmw.config.Config`, plus ``excluded_urls`` and ``frameworks``) and
``uninstrument()``, which restores every patched class and setting.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Collection, Iterable
from typing import Any

try:
    from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
except ImportError as exc:  # pragma: no cover - the extra is missing
    raise ImportError(
        "devsecmw.instrumentation needs opentelemetry-instrumentation: pip install 'devsecmw[instrument]'"
    ) from exc

from ._safety import logger
from .config import Config, ConfigError

#: The frameworks :class:`DevsecmwInstrumentor` knows how to patch.
FRAMEWORKS = ("flask", "django", "starlette", "falcon")
ENV_EXCLUDED_URLS = "OTEL_PYTHON_DEVSECMW_EXCLUDED_URLS"
ENV_GENERIC_EXCLUDED_URLS = "OTEL_PYTHON_EXCLUDED_URLS"
ENV_FRAMEWORKS = "OTEL_PYTHON_DEVSECMW_FRAMEWORKS"
DJANGO_MIDDLEWARE = "devsecmw.instrumentation.DjangoMiddleware"
_DJANGO_EXPLICIT = "devsecmw.django.SecurityMiddleware"
_PLUMBING = ("tracer_provider", "meter_provider")


def _split(value: str | Iterable[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else value
    return tuple(i.strip() for i in items if i and i.strip())


def excluded_urls_from_env(environ: dict[str, str] | None = None) -> tuple[str, ...] | None:
    """``OTEL_PYTHON_DEVSECMW_EXCLUDED_URLS``, else ``OTEL_PYTHON_EXCLUDED_URLS`` (None: neither set)."""
    env = os.environ if environ is None else environ
    for name in (ENV_EXCLUDED_URLS, ENV_GENERIC_EXCLUDED_URLS):
        value = env.get(name)
        if value is not None:
            return _split(value)
    return None


class _State:
    """What one ``instrument()`` call set up, for the patches to read and ``uninstrument()`` to undo."""

    def __init__(self, options: dict[str, Any], plumbing: dict[str, Any], config: Config) -> None:
        self.options = options  # devsecmw options given to instrument() (and excluded_urls from env)
        self.plumbing = plumbing  # tracer_provider, meter_provider
        self.config = config  # validated once: a bad option stops the process at start-up
        self.restore: list[Callable[[], None]] = []


_state: _State | None = None


class DevsecmwInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Adds devsecmw to Flask, Django, Starlette, FastAPI and Falcon apps (see the module docstring)."""

    def instrumentation_dependencies(self) -> Collection[str]:
        # Any of several frameworks, each optional: the patches apply to those importable, so
        # there is no single requirement for opentelemetry-instrument to check.
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        global _state
        plumbing = {k: kwargs.pop(k) for k in _PLUMBING if kwargs.get(k) is not None}
        frameworks = _split(kwargs.pop("frameworks", None) or os.environ.get(ENV_FRAMEWORKS)) or FRAMEWORKS
        unknown = sorted(set(frameworks) - set(FRAMEWORKS) - {"fastapi"})
        if unknown:
            raise ValueError(
                f"devsecmw: {ENV_FRAMEWORKS}: unknown framework {unknown[0]!r} "
                f"(valid: {', '.join(FRAMEWORKS)}, fastapi)"
            )
        excluded = kwargs.pop("excluded_urls", None)
        urls = _split(excluded) if excluded is not None else excluded_urls_from_env()
        options = dict(kwargs)
        if urls is not None:
            options["excluded_urls"] = urls
        state = _State(options, plumbing, Config.from_options(options))
        _state = state
        wanted = {"starlette" if f == "fastapi" else f for f in frameworks}
        for name, patch in (
            ("flask", _patch_flask),
            ("starlette", _patch_starlette),
            ("django", _patch_django),
            ("falcon", _patch_falcon),
        ):
            if name in wanted:
                patch(state)

    def _uninstrument(self, **kwargs: Any) -> None:
        global _state
        state, _state = _state, None
        if state is not None:
            for undo in reversed(state.restore):
                undo()


def _replace(state: _State, owner: Any, name: str, make: Callable[[Any], Any]) -> None:
    """Set ``owner.name`` to ``make(original)``; undone (if still ours) by ``uninstrument()``."""
    original = owner.__dict__[name]
    patched = make(original)
    patched._devsecmw_original = original
    setattr(owner, name, patched)

    def undo() -> None:
        if owner.__dict__.get(name) is patched:
            setattr(owner, name, original)

    state.restore.append(undo)


# --------------------------------------------------------------------------- Flask
class FlaskShim:
    """``app.wsgi_app`` of a Flask app created while instrumented: devsecmw's middleware, built at
    the first request so that it reads the ``DEVSECMW_*`` keys of ``app.config`` the app set
    after creating itself (``app.config.from_...``).

    A bad value there is logged and the options of ``instrument()``, the environment and the
    file apply (validated when instrumenting): the app is never stopped by it mid-flight.
    """

    def __init__(self, flask_app: Any, wsgi_app: Any, state: _State) -> None:
        self.flask_app = flask_app
        self.wsgi_app = wsgi_app  # Flask's own, what uninstrumenting would put back
        self.state = state
        self.middleware: Any = None
        self._lock = threading.Lock()

    def __call__(self, environ: Any, start_response: Any) -> Any:
        middleware = self.middleware
        if middleware is None:
            middleware = self._build()
        return middleware(environ, start_response)

    def _build(self) -> Any:
        from .flask import app_config
        from .wsgi import SecurityMiddleware

        with self._lock:
            if self.middleware is None:
                state = self.state
                try:
                    config = app_config(self.flask_app, state.options)
                except (ConfigError, TypeError) as exc:
                    logger.error("devsecmw: %s; the app runs with the other sources' options", exc)
                    config = state.config
                self.middleware = SecurityMiddleware(self.wsgi_app, **state.plumbing, config=config)
            return self.middleware


def _patch_flask(state: _State) -> None:
    try:
        import flask
    except ImportError:
        return

    def make(original: Callable[..., None]) -> Callable[..., None]:
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            original(self, *args, **kwargs)
            if _state is state:  # instrumented still (an app made after uninstrument() stays plain)
                self.wsgi_app = FlaskShim(self, self.wsgi_app, state)

        return __init__

    _replace(state, flask.Flask, "__init__", make)


# --------------------------------------------------------------------------- Starlette, FastAPI
def _patch_starlette(state: _State) -> None:
    try:
        from starlette.applications import Starlette
    except ImportError:
        return
    from .asgi import SecurityMiddleware

    def make(original: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def build_middleware_stack(self: Any) -> Any:
            stack = original(self)
            if _state is not state or isinstance(stack, SecurityMiddleware):
                return stack
            if any(getattr(m, "cls", None) is SecurityMiddleware for m in self.user_middleware):
                return stack  # added by hand: that one inspects, with the app's own options
            return SecurityMiddleware(stack, **state.plumbing, config=state.config)

        return build_middleware_stack

    _replace(state, Starlette, "build_middleware_stack", make)
    try:
        from fastapi.applications import FastAPI
    except ImportError:
        return
    if "build_middleware_stack" in FastAPI.__dict__:  # FastAPI builds its own stack
        _replace(state, FastAPI, "build_middleware_stack", make)


# --------------------------------------------------------------------------- Falcon
class _FalconHook:
    """Joins a Falcon app's middleware at its first instrumented request: it notes the route
    template (as :class:`devsecmw.falcon.RouteMiddleware`) and holds the devsecmw middleware
    wrapping the app, since a Falcon app (``__slots__``, no weak reference) keeps no attribute
    of ours."""

    def __init__(self, route: Any) -> None:
        self.route = route
        self.state: _State | None = None
        self.middleware: Any = None

    def process_resource(self, req: Any, resp: Any, resource: Any, params: Any) -> None:
        self.route.process_resource(req, resp, resource, params)

    async def process_resource_async(self, req: Any, resp: Any, resource: Any, params: Any) -> None:
        await self.route.process_resource_async(req, resp, resource, params)


_falcon_lock = threading.Lock()


def _falcon_middleware(app: Any, state: _State, call: Callable[..., Any], asgi: bool) -> Any:
    """The devsecmw middleware of ``app`` (built at its first request), or None: devsecmw added
    by hand, or a Falcon whose middleware list is not where it was (fail open: the app runs)."""
    from .falcon import RouteMiddleware

    def find() -> Any:
        entries = getattr(app, "_unprepared_middleware", None)
        if not isinstance(entries, list):
            return None
        for entry in entries:
            if isinstance(entry, _FalconHook):
                return entry
            if isinstance(entry, RouteMiddleware):
                return None  # added by hand: that one inspects, with the app's own options
        return False

    hook = find()
    if hook is not None and hook is not False and hook.state is state:
        return hook.middleware  # the fast path: one short list scan per request
    with _falcon_lock:
        hook = find()
        if hook is None:
            return None
        if hook is False:
            hook = _FalconHook(RouteMiddleware())
            app.add_middleware(hook)
        if hook.state is not state:  # first request, or instrumented anew since
            if asgi:
                from .asgi import SecurityMiddleware as Asgi

                async def plain_asgi(scope: Any, receive: Any, send: Any) -> None:
                    await call(app, scope, receive, send)

                hook.middleware = Asgi(plain_asgi, **state.plumbing, config=state.config)
            else:
                from .wsgi import SecurityMiddleware as Wsgi

                hook.middleware = Wsgi(
                    lambda env, start: call(app, env, start), **state.plumbing, config=state.config
                )
            hook.state = state
        return hook.middleware


def _falcon_lookup(app: Any, state: _State, call: Callable[..., Any], asgi: bool) -> Any:
    try:
        return _falcon_middleware(app, state, call, asgi)
    except Exception:  # never break the app: it runs uninspected
        logger.exception("devsecmw: could not add devsecmw to a Falcon app; it runs uninspected")
        return None


def _patch_falcon(state: _State) -> None:
    try:
        import falcon
        import falcon.asgi
    except ImportError:
        return

    def make_wsgi(original: Callable[..., Any]) -> Callable[..., Any]:
        def __call__(self: Any, environ: Any, start_response: Any) -> Any:
            middleware = _falcon_lookup(self, state, original, False) if _state is state else None
            if middleware is None:
                return original(self, environ, start_response)
            return middleware(environ, start_response)

        return __call__

    def make_asgi(original: Callable[..., Any]) -> Callable[..., Any]:
        async def __call__(self: Any, scope: Any, receive: Any, send: Any) -> None:
            middleware = _falcon_lookup(self, state, original, True) if _state is state else None
            if middleware is None:
                await original(self, scope, receive, send)
            else:
                await middleware(scope, receive, send)

        return __call__

    _replace(state, falcon.App, "__call__", make_wsgi)
    _replace(state, falcon.asgi.App, "__call__", make_asgi)


# --------------------------------------------------------------------------- Django
def _patch_django(state: _State) -> None:
    try:
        from django.core.handlers.base import BaseHandler  # type: ignore[import-untyped]
    except ImportError:
        return
    from .django import register_checks

    register_checks()
    added: list[Any] = []  # the settings object devsecmw's entry was added to

    def make(original: Callable[..., None]) -> Callable[..., None]:
        def load_middleware(self: Any, *args: Any, **kwargs: Any) -> None:
            if _state is state:
                _insert_django_middleware(added)
            original(self, *args, **kwargs)

        return load_middleware

    _replace(state, BaseHandler, "load_middleware", make)

    def remove() -> None:
        for settings in added:
            entries = list(getattr(settings, "MIDDLEWARE", None) or ())
            if DJANGO_MIDDLEWARE in entries:
                entries.remove(DJANGO_MIDDLEWARE)
                settings.MIDDLEWARE = entries

    state.restore.append(remove)


def _insert_django_middleware(added: list[Any]) -> None:
    from django.conf import settings  # type: ignore[import-untyped]

    entries = list(getattr(settings, "MIDDLEWARE", None) or ())
    if DJANGO_MIDDLEWARE in entries or _DJANGO_EXPLICIT in entries:
        return
    # After OpenTelemetry's middleware (its span is then current and devsecmw enriches it).
    at = 0
    for i, entry in enumerate(entries):
        if isinstance(entry, str) and entry.startswith("opentelemetry."):
            at = i + 1
    entries.insert(at, DJANGO_MIDDLEWARE)
    settings.MIDDLEWARE = entries
    added.append(settings)


def _django_middleware_class() -> type:
    from .django import SecurityMiddleware

    class DjangoMiddleware(SecurityMiddleware):
        """devsecmw's Django middleware with the options given to ``instrument()``."""

        def __init__(self, get_response: Callable[[Any], Any]) -> None:
            state = _state
            plumbing = state.plumbing if state is not None else {}
            options = state.options if state is not None else {}
            super().__init__(get_response, **plumbing, **options)

    return DjangoMiddleware


def __getattr__(name: str) -> Any:
    # Defined on first use: devsecmw.django needs Django, which this module must not import.
    if name == "DjangoMiddleware":
        cls = _django_middleware_class()
        globals()[name] = cls
        return cls
    raise AttributeError(name)


__all__ = ["FRAMEWORKS", "DevsecmwInstrumentor", "FlaskShim", "excluded_urls_from_env"]

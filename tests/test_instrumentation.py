"""DevsecmwInstrumentor in process: apps created after instrument() are inspected, uninstrument()
restores every patched class and setting, apps with devsecmw added by hand are inspected once,
OTEL_PYTHON_(DEVSECMW_)EXCLUDED_URLS honoured. (End to end under opentelemetry-instrument:
test_instrumentation_e2e.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.instrumentation.instrumentor")

from devsecmw.config import ConfigError
from devsecmw.instrumentation import DevsecmwInstrumentor, excluded_urls_from_env

ROOT = Path(__file__).resolve().parents[1]
ATTACK = "1' UNION SELECT password FROM users--"
STEADY = {"time_budget": 5.0}  # detection, not speed, is under test


@pytest.fixture
def instrumentor(monkeypatch: pytest.MonkeyPatch) -> Iterator[DevsecmwInstrumentor]:
    for name in (
        "OTEL_PYTHON_EXCLUDED_URLS",
        "OTEL_PYTHON_DEVSECMW_EXCLUDED_URLS",
        "OTEL_PYTHON_DEVSECMW_FRAMEWORKS",
    ):
        monkeypatch.delenv(name, raising=False)
    inst = DevsecmwInstrumentor()
    yield inst
    if inst.is_instrumented_by_opentelemetry:
        inst.uninstrument()


def _client(app: Any) -> Any:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Using `httpx` with `starlette.testclient` is deprecated")
        from starlette.testclient import TestClient
    return TestClient(app)


def _devsecmw_spans(otel: Any) -> list[Any]:
    return [s for s in otel.spans() if s.attributes and "devsecmw.classification" in s.attributes]


# --------------------------------------------------------------------------- Flask
def _flask_app() -> Any:
    import flask

    app = flask.Flask("zero_code_flask")

    @app.get("/search")
    def search() -> Any:
        return {"q": flask.request.args.get("q", "")}

    return app


def test_flask_apps_are_wrapped_and_restored(otel: Any, instrumentor: DevsecmwInstrumentor) -> None:
    import flask

    from devsecmw.instrumentation import FlaskShim

    original = flask.Flask.__init__
    instrumentor.instrument(**otel.providers, **STEADY)
    app = _flask_app()
    assert isinstance(app.wsgi_app, FlaskShim)
    client = app.test_client()
    assert client.get("/search", query_string={"q": ATTACK}).get_json() == {"q": ATTACK}
    span = otel.span()
    assert span.attributes["devsecmw.classification"] == "attack"
    assert "sqli" in span.attributes["devsecmw.signal.types"]
    assert span.attributes["http.route"] == "/search"
    instrumentor.uninstrument()
    assert flask.Flask.__init__ is original
    assert not isinstance(_flask_app().wsgi_app, FlaskShim)


def test_flask_app_wrapped_by_hand_too_is_inspected_once(
    otel: Any, instrumentor: DevsecmwInstrumentor
) -> None:
    from devsecmw.wsgi import SecurityMiddleware

    instrumentor.instrument(**otel.providers, **STEADY)
    app = _flask_app()
    app.wsgi_app = SecurityMiddleware(app.wsgi_app, **otel.providers, **STEADY)  # as the examples do
    app.test_client().get("/search", query_string={"q": ATTACK}).get_json()
    assert len(_devsecmw_spans(otel)) == 1
    assert len([e for e in otel.events() if e["devsecmw.signal.type"] == "sqli"]) >= 1
    assert len({e["devsecmw.signal.location"] for e in otel.events()}) == len(otel.events())


def test_flask_app_config_set_after_creation_applies(otel: Any, instrumentor: DevsecmwInstrumentor) -> None:
    instrumentor.instrument(**otel.providers, **STEADY)
    app = _flask_app()
    app.config.from_mapping(DEVSECMW_MODE="block")  # configured after creation, as apps do
    response = app.test_client().get("/search", query_string={"q": ATTACK})
    assert response.status_code == 403 and response.get_data()
    response.close()
    assert otel.span().attributes["devsecmw.blocked"] is True


def test_a_bad_flask_app_config_is_logged_and_the_app_runs(
    otel: Any, instrumentor: DevsecmwInstrumentor, caplog: pytest.LogCaptureFixture
) -> None:
    instrumentor.instrument(**otel.providers, **STEADY)
    app = _flask_app()
    app.config["DEVSECMW_BLOCK_FLAGGED"] = "flase"
    assert app.test_client().get("/search", query_string={"q": ATTACK}).get_json() == {"q": ATTACK}
    assert "DEVSECMW_BLOCK_FLAGGED (Flask app.config): 'flase' is not a boolean" in caplog.text
    assert "sqli" in otel.span().attributes["devsecmw.signal.types"]  # inspected all the same


def test_devsecmw_variables_configure_zero_code_apps(
    otel: Any, instrumentor: DevsecmwInstrumentor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEVSECMW_MODE", "block")
    instrumentor.instrument(**otel.providers, **STEADY)
    response = _flask_app().test_client().get("/search", query_string={"q": ATTACK})
    assert response.status_code == 403 and response.get_data()
    response.close()  # the server is done with it: the span ends
    assert otel.span().attributes["devsecmw.blocked"] is True


# --------------------------------------------------------------------------- Starlette / FastAPI
def _starlette_app(explicit: bool = False, **options: Any) -> Any:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from devsecmw.asgi import SecurityMiddleware

    async def search(request: Request) -> JSONResponse:
        return JSONResponse({"q": request.query_params.get("q", "")})

    middleware = [Middleware(SecurityMiddleware, **options)] if explicit else []
    return Starlette(routes=[Route("/search", search)], middleware=middleware)


def test_starlette_apps_are_wrapped_and_restored(otel: Any, instrumentor: DevsecmwInstrumentor) -> None:
    from starlette.applications import Starlette

    original = Starlette.__dict__["build_middleware_stack"]
    instrumentor.instrument(**otel.providers, **STEADY)
    with _client(_starlette_app()) as client:
        assert client.get("/search", params={"q": ATTACK}).json() == {"q": ATTACK}
    span = otel.span()
    assert "sqli" in span.attributes["devsecmw.signal.types"] and span.attributes["http.route"] == "/search"
    instrumentor.uninstrument()
    assert Starlette.__dict__["build_middleware_stack"] is original
    otel.clear()
    with _client(_starlette_app()) as client:
        client.get("/search", params={"q": ATTACK})
    assert _devsecmw_spans(otel) == []


def test_starlette_app_with_devsecmw_by_hand_keeps_its_own(
    otel: Any, instrumentor: DevsecmwInstrumentor
) -> None:
    instrumentor.instrument(**STEADY)  # the global providers: only the app's own middleware reports to otel
    with _client(_starlette_app(explicit=True, **otel.providers, **STEADY)) as client:
        client.get("/search", params={"q": ATTACK})
    assert len(_devsecmw_spans(otel)) == 1


def test_fastapi_apps_are_wrapped_and_restored(otel: Any, instrumentor: DevsecmwInstrumentor) -> None:
    fastapi = pytest.importorskip("fastapi")
    from fastapi.applications import FastAPI

    original = FastAPI.__dict__["build_middleware_stack"]
    instrumentor.instrument(**otel.providers, **STEADY)
    app = fastapi.FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int, q: str = "") -> dict[str, Any]:
        return {"id": item_id}

    with _client(app) as client:
        assert client.get("/items/3", params={"q": ATTACK}).json() == {"id": 3}
    span = otel.span()
    assert "sqli" in span.attributes["devsecmw.signal.types"]
    assert span.attributes["http.route"] == "/items/{item_id}"
    instrumentor.uninstrument()
    assert FastAPI.__dict__["build_middleware_stack"] is original


# --------------------------------------------------------------------------- Falcon
def _falcon_app(asgi: bool = False) -> Any:
    pytest.importorskip("falcon")
    import falcon.asgi

    class Item:
        def on_get(self, req: Any, resp: Any, item_id: int) -> None:
            resp.media = {"id": item_id, "q": req.get_param("q", default="")}

    class AsyncItem:
        async def on_get(self, req: Any, resp: Any, item_id: int) -> None:
            resp.media = {"id": item_id, "q": req.get_param("q", default="")}

    app = falcon.asgi.App() if asgi else falcon.App()
    app.add_route("/items/{item_id:int}", AsyncItem() if asgi else Item())
    return app


def _falcon_get(app: Any, path: str, **params: str) -> Any:
    from falcon import testing

    return testing.TestClient(app).simulate_get(path, params=params)


@pytest.mark.parametrize("asgi", [False, True], ids=["wsgi", "asgi"])
def test_falcon_apps_are_wrapped_once_and_restored(
    otel: Any, instrumentor: DevsecmwInstrumentor, asgi: bool
) -> None:
    pytest.importorskip("falcon")
    import falcon.asgi

    from devsecmw.instrumentation import _FalconHook

    owner = falcon.asgi.App if asgi else falcon.App
    original = owner.__dict__["__call__"]
    instrumentor.instrument(**otel.providers, **STEADY)
    app = _falcon_app(asgi)
    for _ in range(2):
        assert _falcon_get(app, "/items/3", q=ATTACK).json == {"id": 3, "q": ATTACK}
    spans = _devsecmw_spans(otel)
    assert len(spans) == 2  # one inspection per request
    for span in spans:
        assert "sqli" in span.attributes["devsecmw.signal.types"]
        assert span.attributes["http.route"] == "/items/{item_id:int}"
    assert [type(m) for m in app._unprepared_middleware] == [_FalconHook]  # joined once
    assert _falcon_get(app, "/nowhere").status_code == 404
    instrumentor.uninstrument()
    assert owner.__dict__["__call__"] is original
    otel.clear()
    assert _falcon_get(_falcon_app(asgi), "/items/3", q=ATTACK).json == {"id": 3, "q": ATTACK}
    assert _falcon_get(app, "/items/3", q=ATTACK).status_code == 200  # the old app runs plain too
    assert _devsecmw_spans(otel) == []


def test_falcon_app_instrumented_anew_uses_the_new_options(
    otel: Any, instrumentor: DevsecmwInstrumentor
) -> None:
    instrumentor.instrument(**otel.providers, **STEADY)
    app = _falcon_app()
    assert _falcon_get(app, "/items/3", q=ATTACK).status_code == 200
    instrumentor.uninstrument()
    instrumentor.instrument(mode="block", **otel.providers, **STEADY)
    assert _falcon_get(app, "/items/3", q=ATTACK).status_code == 403
    assert len(app._unprepared_middleware) == 1


def test_falcon_app_with_devsecmw_by_hand_is_inspected_once(
    otel: Any, instrumentor: DevsecmwInstrumentor
) -> None:
    pytest.importorskip("falcon")
    import devsecmw.falcon

    instrumentor.instrument(**STEADY)  # the global providers: only the app's own middleware reports to otel
    app = devsecmw.falcon.instrument(_falcon_app(), **otel.providers, **STEADY)
    assert _falcon_get(app, "/items/3", q=ATTACK).status_code == 200
    span = otel.span()
    assert span.attributes["http.route"] == "/items/{item_id:int}"


def test_falcon_app_that_cannot_be_wrapped_runs_plain(
    otel: Any,
    instrumentor: DevsecmwInstrumentor,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    falcon = pytest.importorskip("falcon")

    def broken(self: Any, middleware: Any) -> None:
        raise RuntimeError("no middleware today")

    instrumentor.instrument(**otel.providers, **STEADY)
    app = _falcon_app()
    monkeypatch.setattr(falcon.App, "add_middleware", broken)
    assert _falcon_get(app, "/items/3", q=ATTACK).json == {"id": 3, "q": ATTACK}
    assert "could not add devsecmw to a Falcon app" in caplog.text
    assert _devsecmw_spans(otel) == []


# --------------------------------------------------------------------------- options
def test_excluded_urls_from_the_environment(
    otel: Any, instrumentor: DevsecmwInstrumentor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_PYTHON_EXCLUDED_URLS", "nothing-here")
    monkeypatch.setenv("OTEL_PYTHON_DEVSECMW_EXCLUDED_URLS", r"search\?q=skip, /healthz")
    assert excluded_urls_from_env() == (r"search\?q=skip", "/healthz")
    instrumentor.instrument(**otel.providers, **STEADY)
    with _client(_starlette_app()) as client:
        client.get("/search?q=skip' OR 1=1--")
        client.get("/search", params={"q": ATTACK})
    assert len(_devsecmw_spans(otel)) == 1


def test_generic_excluded_urls_apply_when_devsecmw_has_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_PYTHON_EXCLUDED_URLS", "healthz,ping")
    monkeypatch.delenv("OTEL_PYTHON_DEVSECMW_EXCLUDED_URLS", raising=False)
    assert excluded_urls_from_env() == ("healthz", "ping")


def test_bad_options_fail_at_instrument_time(instrumentor: DevsecmwInstrumentor) -> None:
    with pytest.raises(ConfigError, match=r"block_flagged \(keyword argument\): 'flase' is not a boolean"):
        instrumentor.instrument(block_flagged="flase")
    with pytest.raises(ConfigError, match="invalid excluded_urls pattern"):
        instrumentor.instrument(excluded_urls="(unclosed")
    with pytest.raises(ValueError, match="unknown framework 'bottle'"):
        instrumentor.instrument(frameworks="flask,bottle")


def test_frameworks_can_be_narrowed(otel: Any, instrumentor: DevsecmwInstrumentor) -> None:
    import flask
    from starlette.applications import Starlette

    original = Starlette.__dict__["build_middleware_stack"]
    instrumentor.instrument(frameworks="flask", **otel.providers)
    assert Starlette.__dict__["build_middleware_stack"] is original
    assert flask.Flask.__init__.__name__ == "__init__" and hasattr(flask.Flask.__init__, "_devsecmw_original")


def test_falcon_alone_can_be_chosen(
    otel: Any, instrumentor: DevsecmwInstrumentor, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("falcon")
    import falcon
    import flask

    monkeypatch.setenv("OTEL_PYTHON_DEVSECMW_FRAMEWORKS", "falcon")
    instrumentor.instrument(**otel.providers)
    assert hasattr(falcon.App.__dict__["__call__"], "_devsecmw_original")
    assert not hasattr(flask.Flask.__init__, "_devsecmw_original")
    instrumentor.uninstrument()
    instrumentor.instrument(frameworks="flask", **otel.providers)
    assert not hasattr(falcon.App.__dict__["__call__"], "_devsecmw_original")


# --------------------------------------------------------------------------- Django
DJANGO = textwrap.dedent(
    """
    import json
    from django.conf import settings
    settings.configure(
        SECRET_KEY="t", ALLOWED_HOSTS=["*"], ROOT_URLCONF=__name__, DEBUG=False,
        MIDDLEWARE=["django.middleware.common.CommonMiddleware"], DATABASES={},
        DEVSECMW={"time_budget": 5.0},
    )
    from django.http import JsonResponse
    from django.urls import path
    urlpatterns = [path("search/", lambda request: JsonResponse({"q": request.GET.get("q", "")}))]

    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    from devsecmw.instrumentation import DJANGO_MIDDLEWARE, DevsecmwInstrumentor
    from django.core.handlers.base import BaseHandler
    original = BaseHandler.__dict__["load_middleware"]
    inst = DevsecmwInstrumentor()
    inst.instrument(tracer_provider=provider)
    import django
    django.setup()
    from django.test import Client
    status = Client().get("/search/", {"q": "1' UNION SELECT password FROM users--"}).status_code
    middleware = list(settings.MIDDLEWARE)
    inst.uninstrument()
    print(json.dumps({
        "status": status,
        "middleware": middleware,
        "after": list(settings.MIDDLEWARE),
        "restored": BaseHandler.__dict__["load_middleware"] is original,
        "spans": [
            [s.attributes.get("http.route"), list(s.attributes.get("devsecmw.signal.types") or ())]
            for s in exporter.get_finished_spans()
        ],
    }))
    """
)


def test_django_middleware_is_inserted_when_django_loads_it_and_removed() -> None:
    pytest.importorskip("django")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name in ("DJANGO_SETTINGS_MODULE", "OTEL_PYTHON_EXCLUDED_URLS", "OTEL_PYTHON_DEVSECMW_EXCLUDED_URLS"):
        env.pop(name, None)
    proc = subprocess.run(
        [sys.executable, "-c", DJANGO], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["status"] == 200
    assert result["middleware"] == [
        "devsecmw.instrumentation.DjangoMiddleware",
        "django.middleware.common.CommonMiddleware",
    ]
    assert result["after"] == ["django.middleware.common.CommonMiddleware"] and result["restored"]
    [[route, types]] = result["spans"]
    assert route == "search/" and "sqli" in types

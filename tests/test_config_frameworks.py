"""Configuration where each framework keeps it: Flask ``app.config``, Django settings checked by a
system check; route-template exclusions per framework; the ``before_emit`` hook; excluded URLs."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any

import pytest

from devsecmw.config import Config, ConfigError
from devsecmw.engine import Engine
from devsecmw.signals import Signal

ROOT = Path(__file__).resolve().parents[1]
XSS = "<script>alert(1)</script>"
# Inspection is under a wall-clock budget; detection, not speed, is under test here.
STEADY: dict[str, Any] = {"time_budget": 5.0}
ENGINE = Engine(Config())


def _starlette_client(app: Any) -> Any:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Using `httpx` with `starlette.testclient` is deprecated")
        from starlette.testclient import TestClient
    return TestClient(app)


def _attack_routes(otel: Any) -> dict[str, list[str]]:
    """Signal types by http.route of the spans devsecmw produced."""
    out: dict[str, list[str]] = {}
    for s in otel.spans():
        if s.attributes and "devsecmw.classification" in s.attributes:
            route = str(s.attributes.get("http.route"))
            out[route] = list(s.attributes.get("devsecmw.signal.types") or ())
    return out


# --------------------------------------------------------------------------- Flask
flask = pytest.importorskip("flask")


def _flask_app(**config: Any) -> Any:
    app = flask.Flask("devsecmw_config_test")
    app.config.update(config)

    @app.post("/cms/<int:page_id>")
    def cms(page_id: int) -> Any:
        flask.request.get_json()  # devsecmw inspects the body as the app reads it
        return {"id": page_id}

    @app.post("/comments")
    def comments() -> Any:
        flask.request.get_json()
        return {"ok": True}

    return app


def test_flask_app_config_is_read_below_keywords_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from devsecmw.flask import app_config, init_app

    app = _flask_app(DEVSECMW_PARANOIA_LEVEL=2, DEVSECMW_MAX_EVENTS=3, DEVSECMW_BLOCK_FLAGGED="off")
    monkeypatch.setenv("DEVSECMW_MAX_EVENTS", "4")
    config = app_config(app, {"paranoia_level": 3})
    assert (config.paranoia_level, config.max_events, config.block_flagged) == (3, 4, False)
    middleware = init_app(app, detector=ENGINE)
    assert middleware.runtime.config.paranoia_level == 2
    assert middleware.runtime.config.block_flagged is False


@pytest.mark.parametrize(
    ("config", "error", "message"),
    [
        (
            {"DEVSECMW_BLOCK_FLAGGED": "flase"},
            ConfigError,
            "devsecmw: DEVSECMW_BLOCK_FLAGGED (Flask app.config): 'flase' is not a boolean",
        ),
        (
            {"DEVSECMW_IGNORE_PATHS": ["healthz"]},
            ConfigError,
            "DEVSECMW_IGNORE_PATHS (Flask app.config): 'healthz' is not a path",
        ),
        ({"DEVSECMW_PARANOIA": 2}, TypeError, "unknown option 'DEVSECMW_PARANOIA' in Flask app.config"),
    ],
)
def test_flask_app_config_errors_name_the_key(config: dict[str, Any], error: type, message: str) -> None:
    from devsecmw.flask import init_app

    app = _flask_app(**config)
    with pytest.raises(error) as exc:
        init_app(app)
    assert message in str(exc.value)


def test_flask_route_exclusion_written_once_matches_flask_templates(otel: Any) -> None:
    from devsecmw.flask import init_app

    exclusion = {"rules": ["xss"], "route": "/cms/{id}", "location": "body:json:html"}
    app = _flask_app(DEVSECMW_EXCLUSIONS=[exclusion])
    init_app(app, **otel.providers, detector=ENGINE, **STEADY)
    client = app.test_client()
    # Reading each body to its end ends the WSGI response, and with it devsecmw's span.
    assert client.post("/cms/7", json={"html": XSS}).get_json() == {"id": 7}
    assert client.post("/comments", json={"html": XSS}).get_json() == {"ok": True}
    routes = _attack_routes(otel)
    assert routes["/cms/<int:page_id>"] == []  # excluded: the template is Flask's
    assert routes["/comments"] == ["xss"]  # elsewhere still reported


# --------------------------------------------------------------------------- Starlette / FastAPI
def _starlette_app(**options: Any) -> Any:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from devsecmw.asgi import SecurityMiddleware

    async def ok(request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[Route("/cms/{page_id:int}", ok, methods=["POST"]), Route("/comments", ok, methods=["POST"])],
        middleware=[Middleware(SecurityMiddleware, detector=ENGINE, **STEADY, **options)],
    )


def test_starlette_route_exclusion_matches_starlette_templates(otel: Any) -> None:
    exclusion = {"rules": ["xss"], "route": "/cms/{id}", "location": "body:json:html"}
    with _starlette_client(_starlette_app(exclusions=[exclusion], **otel.providers)) as client:
        assert client.post("/cms/7", json={"html": XSS}).status_code == 200
        assert client.post("/comments", json={"html": XSS}).status_code == 200
    routes = _attack_routes(otel)
    assert routes["/cms/{page_id:int}"] == []
    assert routes["/comments"] == ["xss"]


def test_fastapi_route_exclusion_matches_fastapi_templates(otel: Any) -> None:
    fastapi = pytest.importorskip("fastapi")
    from devsecmw.asgi import SecurityMiddleware

    app = fastapi.FastAPI()
    exclusion = {"rules": ["xss"], "route": "/cms/{id}", "location": "query:q"}
    app.add_middleware(
        SecurityMiddleware, exclusions=[exclusion], detector=ENGINE, **STEADY, **otel.providers
    )

    @app.get("/cms/{page_id}")
    async def cms(page_id: int, q: str = "") -> dict[str, int]:
        return {"id": page_id}

    @app.get("/search")
    async def search(q: str = "") -> dict[str, str]:
        return {"q": q}

    with _starlette_client(app) as client:
        assert client.get("/cms/3", params={"q": XSS}).status_code == 200
        assert client.get("/search", params={"q": XSS}).status_code == 200
    assert _attack_routes(otel) == {"/cms/{page_id}": [], "/search": ["xss"]}


# --------------------------------------------------------------------------- before_emit
def test_before_emit_drops_alters_and_enriches(otel: Any) -> None:
    seen: list[str] = []

    def hook(signal: Signal) -> Signal | None:
        seen.append(signal.type)
        if signal.location == "body:json:ignored":
            return None
        return dataclasses.replace(signal, evidence="[reviewed]")

    with _starlette_client(_starlette_app(before_emit=hook, **otel.providers)) as client:
        client.post("/comments", json={"ignored": XSS})
        client.post("/comments", json={"html": XSS})
    dropped, kept = sorted(otel.spans(), key=lambda s: s.start_time or 0)[-2:]
    assert seen == ["xss", "xss"]
    assert dropped.attributes["devsecmw.classification"] == "benign"
    assert not [e for e in dropped.events if e.name == "devsecmw.signal"]
    assert kept.attributes["devsecmw.classification"] == "attack"
    event = next(e for e in kept.events if e.name == "devsecmw.signal")
    assert event.attributes["devsecmw.signal.evidence"] == "[reviewed]"


@pytest.mark.internal_errors_expected
@pytest.mark.parametrize("result", ["raise", "not a signal"])
def test_a_failing_before_emit_keeps_the_signal_and_is_counted(otel: Any, result: str) -> None:
    def hook(signal: Signal) -> Any:
        if result == "raise":
            raise RuntimeError("hook bug")
        return result

    with _starlette_client(_starlette_app(before_emit=hook, **otel.providers)) as client:
        assert client.post("/comments", json={"html": XSS}).status_code == 200
    assert otel.span().attributes["devsecmw.signal.types"] == ("xss",)
    error_type = "RuntimeError" if result == "raise" else "TypeError"
    assert otel.error_count("before_emit", error_type) == 1


# --------------------------------------------------------------------------- excluded URLs
def test_excluded_urls_are_not_inspected(otel: Any) -> None:
    app = _starlette_app(excluded_urls=["/comments$", r"cms/\d+\?skip"], **otel.providers)
    with _starlette_client(app) as client:
        client.post("/comments", json={"html": XSS})
        client.post("/cms/1?skip=1", json={"html": XSS})
        client.post("/cms/1", json={"html": XSS})
    spans = [s for s in otel.spans() if s.attributes and "devsecmw.classification" in s.attributes]
    assert len(spans) == 1 and spans[0].attributes["http.route"] == "/cms/{page_id:int}"


# --------------------------------------------------------------------------- Django
DJANGO_SETTINGS = """
SECRET_KEY = "devsecmw-tests-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "check_urls"
INSTALLED_APPS = ["devsecmw"]
MIDDLEWARE = ["devsecmw.django.SecurityMiddleware"]
DATABASES = {{}}
USE_TZ = True
DEVSECMW = {devsecmw!r}
"""

DJANGO_URLS = """
from django.http import JsonResponse
from django.urls import path

def cms(request, page_id):
    return JsonResponse({"id": page_id, "n": len(request.body)})

urlpatterns = [path("cms/<int:page_id>/", cms), path("comments/", cms, {"page_id": 0})]
"""


def _django(
    tmp_path: Path, devsecmw: dict[str, Any], *argv: str, **env: str
) -> subprocess.CompletedProcess[str]:
    pytest.importorskip("django")
    (tmp_path / "check_settings.py").write_text(DJANGO_SETTINGS.format(devsecmw=devsecmw), encoding="utf-8")
    (tmp_path / "check_urls.py").write_text(DJANGO_URLS, encoding="utf-8")
    environ = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
        "DJANGO_SETTINGS_MODULE": "check_settings",
        **env,
    }
    return subprocess.run(
        [sys.executable, *argv],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_django_check_passes_a_good_setting(tmp_path: Path) -> None:
    proc = _django(tmp_path, {"mode": "block", "ignore_paths": ["/healthz"]}, "-m", "django", "check")
    assert proc.returncode == 0, proc.stderr
    assert "no issues" in proc.stdout


@pytest.mark.parametrize(
    ("devsecmw", "env", "message"),
    [
        (
            {"block_flagged": "flase"},
            {},
            "devsecmw: DEVSECMW['block_flagged'] (Django settings.DEVSECMW): 'flase' is not a boolean",
        ),
        ({"ignore_paths": ["healthz"]}, {}, "DEVSECMW['ignore_paths'] (Django settings.DEVSECMW): 'healthz'"),
        ({"paranoia": 2}, {}, "unknown option 'paranoia' in Django settings.DEVSECMW"),
        ({"exclusions": [{"rules": ["xsss"]}]}, {}, "invalid exclusion rule 'xsss'"),
        (
            {},
            {"DEVSECMW_TIME_BUDGET": "soon"},
            "DEVSECMW_TIME_BUDGET (environment): 'soon' is not a duration",
        ),
        ({"disabled_rules": ["999999"]}, {}, "unknown rule id '999999'"),
    ],
)
def test_django_check_fails_on_a_broken_setting(
    tmp_path: Path, devsecmw: dict[str, Any], env: dict[str, str], message: str
) -> None:
    proc = _django(tmp_path, devsecmw, "-m", "django", "check", **env)
    assert proc.returncode != 0
    assert "devsecmw.E00" in proc.stderr and message in proc.stderr
    assert "Traceback" not in proc.stderr


DJANGO_CLIENT = textwrap.dedent(
    """
    import json, sys
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    import django
    django.setup()
    from django.test import Client

    body = json.dumps({"html": "<script>alert(1)</script>"})
    for path in ("/cms/7/", "/comments/"):
        assert Client().post(path, body, content_type="application/json").status_code == 200
    print(json.dumps({s.attributes["http.route"]: list(s.attributes.get("devsecmw.signal.types") or ())
                      for s in exporter.get_finished_spans() if "devsecmw.classification" in s.attributes}))
    """
)


def test_django_route_exclusion_matches_django_patterns(tmp_path: Path) -> None:
    exclusion = {"rules": ["xss"], "route": "/cms/{id}", "location": "body:json:html"}
    proc = _django(tmp_path, {"exclusions": [exclusion], "time_budget": 5.0}, "-c", DJANGO_CLIENT)
    assert proc.returncode == 0, proc.stderr
    import json

    routes = json.loads(proc.stdout.strip().splitlines()[-1])
    assert routes == {"cms/<int:page_id>/": [], "comments/": ["xss"]}

"""Zero code, end to end: apps with no devsecmw in their code, started by
``opentelemetry-instrument`` on 127.0.0.1 (console exporter), get devsecmw's signals on their
spans; ``OTEL_PYTHON_EXCLUDED_URLS`` is honoured; with OpenTelemetry's framework
instrumentations active or disabled."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import pytest

pytest.importorskip("opentelemetry.distro")  # opentelemetry-instrument configures the SDK through it

from commands import check_attack_span, command_env, console_spans, devsecmw_spans, serve, wait_for
from servers import free_port

pytestmark = pytest.mark.e2e

ATTACK = "q=1%27%20UNION%20SELECT%20password%20FROM%20users--"
CONSOLE = "OTEL_TRACES_EXPORTER=console OTEL_METRICS_EXPORTER=none OTEL_LOGS_EXPORTER=none"
CONTRIB = "flask,django,fastapi,starlette,asgi,wsgi"

FLASK_APP = """
import os
from flask import Flask, request

app = Flask(__name__)

@app.get("/search")
def search():
    return {"q": request.args.get("q", "")}

@app.get("/healthz")
def healthz():
    return "ok"

app.run(host="127.0.0.1", port=int(os.environ["PORT"]))
"""

FASTAPI_APP = """
import os
import uvicorn
from fastapi import FastAPI

app = FastAPI()

@app.get("/search")
async def search(q: str = ""):
    return {"q": q}

@app.get("/healthz")
async def healthz():
    return "ok"

uvicorn.run(app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning")
"""

DJANGO_SETTINGS = """
SECRET_KEY = "zero-code-tests-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
ROOT_URLCONF = "zurls"
INSTALLED_APPS = []
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
DATABASES = {}
USE_TZ = True
"""

DJANGO_URLS = """
from django.http import HttpResponse, JsonResponse
from django.urls import path

urlpatterns = [
    path("search", lambda request: JsonResponse({"q": request.GET.get("q", "")})),
    path("healthz", lambda request: HttpResponse("ok")),
]
"""

FALCON_APP = """
import os
from wsgiref.simple_server import make_server
import falcon

class Search:
    def on_get(self, req, resp):
        resp.media = {"q": req.get_param("q", default="")}

class Healthz:
    def on_get(self, req, resp):
        resp.media = "ok"

app = falcon.App()
app.add_route("/search", Search())
app.add_route("/healthz", Healthz())
make_server("127.0.0.1", int(os.environ["PORT"]), app).serve_forever()
"""

FALCON_ASGI_APP = """
import os
import uvicorn
import falcon.asgi

class Search:
    async def on_get(self, req, resp):
        resp.media = {"q": req.get_param("q", default="")}

class Healthz:
    async def on_get(self, req, resp):
        resp.media = "ok"

app = falcon.asgi.App()
app.add_route("/search", Search())
app.add_route("/healthz", Healthz())
uvicorn.run(app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning")
"""

DJANGO_MANAGE = """
import sys
from django.core.management import execute_from_command_line
execute_from_command_line(sys.argv)
"""

APPS = {
    "flask": ({"app.py": FLASK_APP}, "python app.py", "/search"),
    "fastapi": ({"app.py": FASTAPI_APP}, "python app.py", "/search"),
    "falcon": ({"app.py": FALCON_APP}, "python app.py", "/search"),
    "falcon_asgi": ({"app.py": FALCON_ASGI_APP}, "python app.py", "/search"),
    "django": (
        {"zsettings.py": DJANGO_SETTINGS, "zurls.py": DJANGO_URLS, "manage.py": DJANGO_MANAGE},
        "python manage.py runserver 127.0.0.1:{port} --noreload",
        "search",
    ),
}


def _run(framework: str, tmp_path: Path, contrib: bool) -> list[dict[str, object]]:
    import httpx

    pytest.importorskip(framework.split("_")[0])  # falcon is an extra of its own
    files, run, route = APPS[framework]
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    for name, text in files.items():
        (app_dir / name).write_text(textwrap.dedent(text), encoding="utf-8")
    port = free_port()
    env = command_env(tmp_path, PORT=str(port), OTEL_PYTHON_EXCLUDED_URLS="healthz")
    if not contrib:
        env["OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"] = CONTRIB
    env["PYTHONPATH"] = f"{app_dir}:{env['PYTHONPATH']}"
    settings = "DJANGO_SETTINGS_MODULE=zsettings " if framework == "django" else ""
    command = f"{settings}{CONSOLE} opentelemetry-instrument {run.format(port=port)}"
    with serve(command, app_dir, env, port, tmp_path, probe="/healthz") as server:
        assert httpx.get(f"{server.base}/search?q=shirt", timeout=30).json() == {"q": "shirt"}
        assert httpx.get(f"{server.base}/search?{ATTACK}", timeout=30).status_code == 200
        assert httpx.get(f"{server.base}/healthz?{ATTACK}", timeout=30).status_code == 200
        # Stopped only once the spans are out: a server stopped at once may end before its
        # request thread has ended the last span. (/healthz, excluded, comes before nothing.)
        wait_for(lambda: len(devsecmw_spans(console_spans(server.text()))) >= 2, "the spans of /search")
        time.sleep(0.5)  # and the /healthz request, had it been inspected, would be out by now
    spans = console_spans(server.text())
    check_attack_span(spans, route)
    ours = devsecmw_spans(spans)
    assert [s["attributes"]["http.route"] for s in ours] == [route, route]  # /healthz: excluded
    assert sorted(s["attributes"]["devsecmw.classification"] for s in ours) == ["attack", "benign"]
    return ours


@pytest.mark.parametrize("framework", sorted(APPS))
def test_zero_code_beside_opentelemetry_instrumentations(framework: str, tmp_path: Path) -> None:
    # devsecmw enriches the framework instrumentation's server span: one span per request.
    for span in _run(framework, tmp_path, contrib=True):
        assert span["kind"] == "SpanKind.SERVER"


@pytest.mark.parametrize("framework", sorted(APPS))
def test_zero_code_alone(framework: str, tmp_path: Path) -> None:
    # No other instrumentation: devsecmw's own SERVER span, following the HTTP conventions.
    for span in _run(framework, tmp_path, contrib=False):
        assert span["kind"] == "SpanKind.SERVER"
        assert span["attributes"]["http.request.method"] == "GET"

"""The examples run, and devsecmw reports in each: a benign request and an attack per framework."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
ATTACK_QUERY = "q=1%27%20UNION%20SELECT%20password%20FROM%20users--"
# Generous: on a loaded CI machine the default 10 ms budget may cut an inspection short.
BUDGET = 1.0


def load(name: str) -> ModuleType:
    """Import an example by file path (examples/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"devsecmw_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _test_client(app: Any) -> Any:
    with warnings.catch_warnings():
        # Starlette >= 1.x nudges TestClient users from httpx to httpx2; this project uses httpx.
        warnings.filterwarnings("ignore", message=r"Using `httpx` with `starlette.testclient` is deprecated")
        from starlette.testclient import TestClient
    return TestClient(app)


def _check(otel: Any, route: str) -> None:
    """Two requests went through: the benign one clean, the attack one reported."""
    spans = [s for s in otel.spans() if s.attributes and "devsecmw.classification" in s.attributes]
    assert len(spans) == 2
    benign, attack = sorted(spans, key=lambda s: s.start_time or 0)
    assert benign.attributes["devsecmw.classification"] == "benign"
    assert not [e for e in benign.events if e.name == "devsecmw.signal"]
    assert attack.attributes["devsecmw.classification"] == "attack"
    assert "sqli" in attack.attributes["devsecmw.signal.types"]
    event = next(e for e in attack.events if e.attributes["devsecmw.signal.type"] == "sqli")
    assert event.attributes["devsecmw.signal.location"] == "query:q"
    assert event.attributes["security_rule.uuid"]
    assert attack.attributes["http.route"] == route
    requests = {
        (p.attributes["devsecmw.classification"], p.attributes.get("http.route")): p.value
        for p in _points(otel, "devsecmw.requests")
    }
    assert requests == {("benign", route): 1, ("attack", route): 1}


def _points(otel: Any, name: str) -> list[Any]:
    return [p for _, p in otel.metric_points(name)]


@pytest.mark.parametrize("name", ["starlette_app", "fastapi_app"])
def test_asgi_examples(name: str, otel: Any) -> None:
    module = load(name)
    assert module.app is not None  # the module-level app builds with the global providers
    with _test_client(module.create_app(**otel.providers, time_budget=BUDGET)) as client:
        ok = client.get("/search?q=shirt")
        bad = client.get(f"/search?{ATTACK_QUERY}")
    assert ok.status_code == 200 and ok.json()["results"] == ["Blue cotton shirt"]
    assert bad.status_code == 200  # monitor mode: reported, never changed
    _check(otel, "/search")


def test_flask_example(otel: Any) -> None:
    module = load("flask_app")
    app = module.create_app(**otel.providers, time_budget=BUDGET)
    client = app.test_client()
    ok = client.get("/search?q=shirt")
    bad = client.get(f"/search?{ATTACK_QUERY}")
    assert ok.status_code == 200 and ok.get_json()["results"] == ["Blue cotton shirt"]
    # Reading the body to its end ends the WSGI response, and with it devsecmw's span.
    assert bad.status_code == 200 and bad.get_json()["results"] == []
    _check(otel, "/search")
    denied = client.post("/login", data={"username": "alice", "password": "x"})
    assert denied.status_code == 401 and denied.get_json() == {"error": "invalid credentials"}
    assert "auth_failure" in otel.signal_types()


def test_falcon_example(otel: Any) -> None:
    pytest.importorskip("falcon")
    from falcon import testing

    module = load("falcon_app")
    client = testing.TestClient(module.create_app(**otel.providers, time_budget=BUDGET))
    ok = client.simulate_get("/search?q=shirt")
    bad = client.simulate_get(f"/search?{ATTACK_QUERY}")
    assert ok.status_code == 200 and ok.json["results"] == ["Blue cotton shirt"]
    assert bad.status_code == 200 and bad.json["results"] == []  # monitor mode: reported, never changed
    _check(otel, "/search")
    assert client.simulate_get("/items/2").json == {"id": 2, "name": "Red wool scarf"}
    denied = client.simulate_post(
        "/login",
        body="username=alice&password=x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert denied.status_code == 401 and denied.json == {"error": "invalid credentials"}
    assert "auth_failure" in otel.signal_types()


# Django's settings are process-wide: the example project runs in its own interpreter so that
# it neither sees nor disturbs the settings other tests configure.
DJANGO_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(tp)  # the example's settings name no provider: the global ones apply
    metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))

    import django
    django.setup()
    from django.test import Client

    client = Client()
    statuses = [
        client.get("/search", {"q": "shirt"}).status_code,
        client.get("/search?" + sys.argv[1]).status_code,
        client.get("/items/9").status_code,
        client.get("/healthz").status_code,
    ]
    spans = [
        {
            "route": s.attributes.get("http.route"),
            "classification": s.attributes.get("devsecmw.classification"),
            "types": list(s.attributes.get("devsecmw.signal.types") or ()),
            "locations": [e.attributes["devsecmw.signal.location"] for e in s.events],
        }
        for s in exporter.get_finished_spans()
    ]
    print(json.dumps({"statuses": statuses, "spans": spans}))
    """
)


def test_django_example_project() -> None:
    try:
        import devsecmw.django  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"devsecmw.django is not available yet ({exc})")
    pytest.importorskip("django")
    project = EXAMPLES / "django_project"
    env = {
        "DJANGO_SETTINGS_MODULE": "shop.settings",
        "PYTHONPATH": os.pathsep.join([str(project), str(EXAMPLES.parent)]),
        "PATH": "",
        "DEVSECMW_TIME_BUDGET": str(BUDGET),
    }
    proc = subprocess.run(
        [sys.executable, "-c", DJANGO_SCRIPT, ATTACK_QUERY],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["statuses"] == [200, 200, 404, 200]
    benign, attack, missing = result["spans"]  # /healthz is in ignore_paths: no span
    assert (benign["route"], benign["classification"], benign["types"]) == ("search", "benign", [])
    assert attack["route"] == "search" and attack["classification"] == "attack"
    assert "sqli" in attack["types"] and "query:q" in attack["locations"]
    assert missing["route"] == "items/<int:item_id>" and "http_404" in missing["types"]


def test_django_example_settings_put_devsecmw_first() -> None:
    text = (EXAMPLES / "django_project" / "shop" / "settings.py").read_text(encoding="utf-8")
    middleware = text.split("MIDDLEWARE = [", 1)[1].split("]", 1)[0]
    entries = [line.strip().strip(",").strip('"') for line in middleware.splitlines() if '"' in line]
    assert entries[0] == "devsecmw.django.SecurityMiddleware"


@pytest.mark.parametrize(
    "path",
    [
        "starlette_app.py",
        "fastapi_app.py",
        "flask_app.py",
        "falcon_app.py",
        "django_project/manage.py",
        "README.md",
    ],
)
def test_each_example_says_how_to_export_over_otlp(path: str) -> None:
    text = (EXAMPLES / path).read_text(encoding="utf-8")
    assert "OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318" in text
    assert "opentelemetry-instrument" in text


# --------------------------------------------------------------------------- the documented commands
# Each example's docstring says how to install and run it; these tests run those commands as
# written (from the repository root, or the Django project), with a free port and the exporter
# endpoint pointed at 127.0.0.1, send a benign request and an attack, and read the spans.
from commands import (  # noqa: E402
    OtlpReceiver,
    Server,
    check_attack_span,
    command_env,
    console_spans,
    devsecmw_spans,
    documented_commands,
    extras_of,
    serve,
    wait_for,
)
from servers import free_port  # noqa: E402

RUNNABLE = {
    # example: (docstring file, cwd of its commands, route of /search, probe)
    "flask_app": ("flask_app.py", "", "/search", "/"),
    "falcon_app": ("falcon_app.py", "", "/search", "/"),
    "fastapi_app": ("fastapi_app.py", "", "/search", "/"),
    "starlette_app": ("starlette_app.py", "", "/search", "/"),
    "django_project": ("django_project/manage.py", "examples/django_project", "search", "/"),
}


def _commands(name: str) -> list[str]:
    return documented_commands(EXAMPLES / RUNNABLE[name][0])


def _runs(name: str) -> list[str]:
    """The run commands (not the installs), the `cd` of the Django ones folded into cwd."""
    return [c.split("&& ", 1)[-1] for c in _commands(name) if not c.startswith(("python -m pip", "curl"))]


def _project_extras() -> set[str]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    doc = tomllib.loads((EXAMPLES.parent / "pyproject.toml").read_text(encoding="utf-8"))
    return set(doc["project"]["optional-dependencies"])


@pytest.mark.parametrize("name", sorted(RUNNABLE))
def test_each_example_says_how_to_install_and_run_it(name: str) -> None:
    commands = _commands(name)
    installs = [c for c in commands if c.startswith("python -m pip install")]
    assert installs, f"{name}: no install command"
    for command in installs:
        assert extras_of(command) <= _project_extras(), command
    frameworks = {"flask_app": "flask", "falcon_app": "falcon", "django_project": "django"}
    framework = frameworks.get(name, "fastapi")
    assert framework in extras_of(installs[0])
    runs = _runs(name)
    assert len(runs) == 3  # plain, zero code on the console, zero code over OTLP
    assert "opentelemetry-instrument" not in runs[0]
    assert "OTEL_TRACES_EXPORTER=console" in runs[1] and "OTEL_EXPORTER_OTLP_ENDPOINT" in runs[2]
    curls = [c for c in commands if c.startswith("curl")]
    assert any("/search?q=shirt" in c for c in curls)


def _run_example(
    name: str, run: str, tmp_path: Path, until: Callable[[Server], bool] | None = None
) -> tuple[list[int], Server]:
    """Serve ``run`` of example ``name``: the statuses of a benign request and an attack, and
    the stopped server (its output). ``until``: what to wait for before stopping it (the spans:
    a server stopped at once may end before its request thread has ended the last span)."""
    import httpx

    _, cwd, _, probe = RUNNABLE[name]
    port = free_port()
    command = run.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    environ = command_env(tmp_path, PORT=str(port))
    statuses = []
    with serve(command, EXAMPLES.parent / cwd, environ, port, tmp_path, probe) as server:
        ok = httpx.get(server.base + "/search?q=shirt", timeout=30)
        statuses.append(ok.status_code)
        assert ok.json()["results"] == ["Blue cotton shirt"]
        statuses.append(httpx.get(f"{server.base}/search?{ATTACK_QUERY}", timeout=30).status_code)
        if until is not None:
            wait_for(lambda: until(server), "the spans of the two requests")
    return statuses, server


def _searches(spans: list[dict[str, Any]], route: str) -> list[dict[str, Any]]:
    return [s for s in devsecmw_spans(spans) if s["attributes"].get("http.route") == route]


@pytest.mark.e2e
@pytest.mark.parametrize("name", sorted(RUNNABLE))
def test_the_plain_run_command_serves(name: str, tmp_path: Path) -> None:
    statuses, _ = _run_example(name, _runs(name)[0], tmp_path)
    assert statuses == [200, 200]  # /search?q=shirt: 200 on every framework, no redirect


@pytest.mark.e2e
@pytest.mark.parametrize("name", ["flask_app", "fastapi_app", "falcon_app", "django_project"])
def test_the_zero_code_console_command_prints_devsecmw_spans(name: str, tmp_path: Path) -> None:
    pytest.importorskip("opentelemetry.distro")
    route = RUNNABLE[name][2]
    statuses, server = _run_example(
        name, _runs(name)[1], tmp_path, until=lambda s: len(_searches(console_spans(s.text()), route)) >= 2
    )
    assert statuses == [200, 200]
    spans = console_spans(server.text())
    check_attack_span(spans, route)
    assert len(_searches(spans, route)) == 2  # one verdict per request, however many wrappers


@pytest.mark.e2e
def test_the_zero_code_otlp_command_exports_devsecmw_spans(tmp_path: Path) -> None:
    pytest.importorskip("opentelemetry.distro")
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    with OtlpReceiver() as receiver:
        run = _runs("flask_app")[2].replace("http://localhost:4318", receiver.base)
        statuses, _ = _run_example(
            "flask_app", run, tmp_path, until=lambda _: len(_searches(receiver.spans, "/search")) >= 2
        )
        assert statuses == [200, 200]
    check_attack_span(receiver.spans, "/search")
    assert len(_searches(receiver.spans, "/search")) == 2

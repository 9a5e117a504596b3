"""The examples run, and devsecmw reports in each: a benign request and an attack per framework."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
import warnings
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
        client.get("/search/", {"q": "shirt"}).status_code,
        client.get("/search/?" + sys.argv[1]).status_code,
        client.get("/items/9/").status_code,
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
        "PYTHONPATH": str(project),
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
    assert (benign["route"], benign["classification"], benign["types"]) == ("search/", "benign", [])
    assert attack["route"] == "search/" and attack["classification"] == "attack"
    assert "sqli" in attack["types"] and "query:q" in attack["locations"]
    assert missing["route"] == "items/<int:item_id>/" and "http_404" in missing["types"]


def test_django_example_settings_put_devsecmw_first() -> None:
    text = (EXAMPLES / "django_project" / "shop" / "settings.py").read_text(encoding="utf-8")
    middleware = text.split("MIDDLEWARE = [", 1)[1].split("]", 1)[0]
    entries = [line.strip().strip(",").strip('"') for line in middleware.splitlines() if '"' in line]
    assert entries[0] == "devsecmw.django.SecurityMiddleware"


@pytest.mark.parametrize(
    "path",
    ["starlette_app.py", "fastapi_app.py", "flask_app.py", "django_project/manage.py", "README.md"],
)
def test_each_example_says_how_to_export_over_otlp(path: str) -> None:
    text = (EXAMPLES / path).read_text(encoding="utf-8")
    assert "OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318" in text
    assert "opentelemetry-instrument" in text

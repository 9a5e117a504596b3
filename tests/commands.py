"""Run the commands the examples document, as written, on 127.0.0.1: a free port, a console or
OTLP exporter, the server stopped at the end (SIGINT to its process group, so the SDK flushes).

Used by test_examples.py (each example's own commands) and test_instrumentation_e2e.py (apps
with no devsecmw in their code, under ``opentelemetry-instrument``).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT = 60.0  # opentelemetry-instrument imports every instrumentation first
STOP_TIMEOUT = 20.0
ATTACK_QUERY = "q=1%27%20UNION%20SELECT%20password%20FROM%20users--"


def documented_commands(path: Path) -> list[str]:
    """The shell commands of a file's docstring: its 4-space indented lines, continuations joined."""
    text = path.read_text(encoding="utf-8")
    doc = text.split('"""', 2)[1]
    commands: list[str] = []
    pending = ""
    for line in doc.splitlines():
        if not line.startswith("    ") and not pending:
            continue
        part = line.strip()
        if part.endswith("\\"):
            pending += part[:-1].strip() + " "
            continue
        command = (pending + part).strip()
        pending = ""
        if command:
            commands.append(re.sub(r"\s+#.*$", "", command))
    return commands


def extras_of(command: str) -> set[str]:
    """The extras a ``pip install ".[a,b]"`` command names."""
    m = re.search(r'"\.\[([a-z,]+)\]"', command)
    return set(m.group(1).split(",")) if m else set()


def _entry_point_dir(tmp_path: Path) -> Path | None:
    """A distribution declaring pyproject's ``opentelemetry_instrumentor`` entry point, when the
    installed devsecmw predates it (an editable install made before it existed): what
    ``pip install -e .`` writes, so that ``opentelemetry-instrument`` finds the instrumentor."""
    found = entry_points(group="opentelemetry_instrumentor", name="devsecmw")
    if any(ep.value == "devsecmw.instrumentation:DevsecmwInstrumentor" for ep in found):
        return None
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = project["entry-points"]["opentelemetry_instrumentor"]
    site = tmp_path / "entry-points"
    info = site / "devsecmw_entry_points-0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: devsecmw-entry-points\nVersion: 0\n")
    lines = "".join(f"{name} = {value}\n" for name, value in declared.items())
    (info / "entry_points.txt").write_text(f"[opentelemetry_instrumentor]\n{lines}")
    return site


def command_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment a user has after installing: this tree's devsecmw, the venv's tools first."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "DEVSECMW_", "DJANGO_"))}
    paths = [str(ROOT)]
    site = _entry_point_dir(tmp_path)
    if site is not None:
        paths.append(str(site))
    env.update(
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        PYTHONPATH=os.pathsep.join(paths),
        PYTHONUNBUFFERED="1",
        OTEL_BSP_SCHEDULE_DELAY="100",  # export within 0.1 s: the spans are read while it runs
        OTEL_METRIC_EXPORT_INTERVAL="1000",
        DEVSECMW_TIME_BUDGET="5",  # detection, not speed, is under test on a loaded machine
        NO_COLOR="1",
    )
    env.update(extra)
    return env


class Server:
    def __init__(self, base: str, output: Path) -> None:
        self.base = base
        self.output = output

    def text(self) -> str:
        return self.output.read_text(encoding="utf-8", errors="replace")


@contextmanager
def serve(
    command: str, cwd: Path, env: dict[str, str], port: int, logs: Path, probe: str = "/"
) -> Iterator[Server]:
    """Run ``command`` (bash, in ``cwd``) until a GET of ``probe`` on ``port`` answers; its output
    goes to a file in ``logs``; it is stopped at the end."""
    import httpx

    output = logs / f"server-{port}.out"
    with output.open("wb") as out:
        proc = subprocess.Popen(
            ["/bin/bash", "-c", command],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: bash and the server stop together
        )
    server = Server(f"http://127.0.0.1:{port}", output)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"`{command}` exited with {proc.returncode}:\n{server.text()[-4000:]}")
            try:
                httpx.get(server.base + probe, timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"`{command}` did not answer within {STARTUP_TIMEOUT:g} s:\n{server.text()[-4000:]}"
                    )
                time.sleep(0.2)
        yield server
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: servers stop, the SDK flushes at exit
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def console_spans(text: str) -> list[dict[str, Any]]:
    """Spans printed by OpenTelemetry's console exporter (pretty JSON objects among other output)."""
    decoder = json.JSONDecoder()
    spans = []
    for m in re.finditer(r"(?m)^\{", text):
        try:
            doc, _ = decoder.raw_decode(text, m.start())
        except ValueError:
            continue
        if isinstance(doc, dict) and "context" in doc and "attributes" in doc:
            spans.append(doc)
    return spans


def devsecmw_spans(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s for s in spans if "devsecmw.classification" in (s.get("attributes") or {})]


def wait_for(check: Any, what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


class OtlpReceiver:
    """An OTLP/HTTP (protobuf) traces endpoint on 127.0.0.1: keeps the spans it is sent."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if self.path == "/v1/traces":
                    request = ExportTraceServiceRequest()
                    request.ParseFromString(body)
                    receiver._add(request)
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _add(self, request: Any) -> None:
        from google.protobuf.json_format import MessageToDict

        def value(v: dict[str, Any]) -> Any:
            if "arrayValue" in v:
                return [value(x) for x in v["arrayValue"].get("values", [])]
            return next(iter(v.values()), None)

        def attrs(items: list[dict[str, Any]]) -> dict[str, Any]:
            return {a["key"]: value(a.get("value", {})) for a in items}

        for rs in request.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    doc = MessageToDict(span)
                    self.spans.append(
                        {
                            "name": doc.get("name"),
                            "attributes": attrs(doc.get("attributes", [])),
                            "events": [
                                {"name": e.get("name"), "attributes": attrs(e.get("attributes", []))}
                                for e in doc.get("events", [])
                            ],
                        }
                    )

    def __enter__(self) -> OtlpReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def check_attack_span(spans: list[dict[str, Any]], route: str) -> None:
    """The attack request's span carries devsecmw's verdict and a sqli signal on query:q."""
    attack = [s for s in devsecmw_spans(spans) if s["attributes"]["devsecmw.classification"] == "attack"]
    assert len(attack) == 1, [s["attributes"] for s in devsecmw_spans(spans)]
    span = attack[0]
    assert "sqli" in span["attributes"]["devsecmw.signal.types"]
    assert span["attributes"].get("http.route") == route
    events = [e for e in span["events"] if e["name"] == "devsecmw.signal"]
    assert any(
        e["attributes"]["devsecmw.signal.type"] == "sqli"
        and e["attributes"]["devsecmw.signal.location"] == "query:q"
        for e in events
    )

"""Shared fixtures: in-memory OpenTelemetry SDK, and a safety net that fails loudly.

devsecmw swallows its own errors in production (fail open). In tests an
internal error must never pass unnoticed: the autouse ``internal_errors``
fixture records every swallowed error and fails the test at teardown, unless
the test opts in with ``@pytest.mark.internal_errors_expected``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from devsecmw import _safety

CORPUS_DIR = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "dev"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "internal_errors_expected: the test provokes devsecmw internal errors on purpose"
    )


@pytest.fixture(autouse=True)
def internal_errors(request: pytest.FixtureRequest) -> Iterator[list[tuple[str, BaseException]]]:
    errors: list[tuple[str, BaseException]] = []

    def observe(stage: str, exc: BaseException) -> None:
        errors.append((stage, exc))

    _safety.add_observer(observe)
    yield errors
    _safety.remove_observer(observe)
    if errors and request.node.get_closest_marker("internal_errors_expected") is None:
        stage, exc = errors[0]
        raise AssertionError(f"devsecmw swallowed an internal error in {stage}: {exc!r}") from exc


class Telemetry:
    """The SDK wired to in-memory exporters, with helpers to read what devsecmw emitted."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    @property
    def providers(self) -> dict[str, Any]:
        return {"tracer_provider": self.tracer_provider, "meter_provider": self.meter_provider}

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def server_spans(self) -> list[ReadableSpan]:
        from opentelemetry.trace import SpanKind

        return [s for s in self.spans() if s.kind == SpanKind.SERVER]

    def span(self) -> ReadableSpan:
        """The one span that carries devsecmw's summary (fails if there is not exactly one)."""
        found = [s for s in self.spans() if s.attributes and "devsecmw.classification" in s.attributes]
        assert len(found) == 1, f"expected one devsecmw span, got {[s.name for s in self.spans()]}"
        return found[0]

    def events(self) -> list[dict[str, Any]]:
        out = []
        for s in self.spans():
            for e in s.events:
                if e.name == "devsecmw.signal":
                    out.append(dict(e.attributes or {}))
        return out

    def signal_types(self) -> set[str]:
        return {str(e["devsecmw.signal.type"]) for e in self.events()}

    def metric_points(self, name: str) -> list[tuple[dict[str, Any], Any]]:
        data = self.reader.get_metrics_data()
        out: list[tuple[dict[str, Any], Any]] = []
        if data is None:
            return out
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.name == name:
                        for p in m.data.data_points:
                            out.append((dict(p.attributes or {}), p))
        return out

    def error_count(self, stage: str, error_type: str) -> int:
        """What ``devsecmw.errors`` counted for one stage and error type."""
        return sum(
            int(p.value)
            for attrs, p in self.metric_points("devsecmw.errors")
            if attrs.get("devsecmw.stage") == stage and attrs.get("error.type") == error_type
        )

    def clear(self) -> None:
        self.exporter.clear()


def trace_id_of(span: Any) -> str:
    """A span's trace id as the block response and the demo print it."""
    return format(span.context.trace_id, "032x")


@pytest.fixture
def otel() -> Telemetry:
    return Telemetry()


def corpus_rows(name: str) -> list[dict[str, Any]]:
    """Rows of a shared corpus file; the test is skipped when the corpus is absent."""
    path = CORPUS_DIR / name
    if not path.exists():
        pytest.skip(f"shared corpus not present ({path})")
    with path.open("rb") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def row_body(row: dict[str, Any]) -> bytes:
    body = row.get("body") or ""
    if row.get("body_b64"):
        return base64.b64decode(body)
    return str(body).encode("latin-1", "replace")

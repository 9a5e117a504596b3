"""The demo's OpenTelemetry SDK: always an in-memory copy for the summary, OTLP when asked.

With ``OTEL_EXPORTER_OTLP_ENDPOINT`` set (e.g. ``http://localhost:4318`` for
Jaeger, Tempo or any collector), spans and metrics are also exported with the
OTLP http/protobuf exporters, which read the standard ``OTEL_EXPORTER_OTLP_*``
variables themselves.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

SERVICE_NAME = "devsecmw-demo"
ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


@dataclass
class DemoTelemetry:
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader
    #: Where OTLP goes, or ``None`` for in-memory only.
    otlp_endpoint: str | None

    def finished_spans(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def shutdown(self) -> None:
        """Flush exporters (OTLP included) and stop the providers."""
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


def otlp_endpoint(environ: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if environ is None else environ
    for name in ENDPOINT_VARS:
        if env.get(name):
            return env[name]
    return None


def setup(environ: Mapping[str, str] | None = None) -> DemoTelemetry:
    """Providers for the demo, private to it (the global ones are left alone)."""
    env = os.environ if environ is None else environ
    # OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES still win when the user sets them.
    attrs = {} if env.get("OTEL_SERVICE_NAME") else {"service.name": SERVICE_NAME}
    resource = Resource.create(attrs)
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    memory = InMemoryMetricReader()
    readers: list[MetricReader] = [memory]
    endpoint = otlp_endpoint(env)
    if endpoint:
        # Imported only when used: the exporters pull in protobuf and requests.
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter(), export_interval_millis=5000))
    meter_provider = MeterProvider(metric_readers=readers, resource=resource)
    return DemoTelemetry(tracer_provider, meter_provider, spans, memory, endpoint)


__all__ = ["SERVICE_NAME", "DemoTelemetry", "otlp_endpoint", "setup"]

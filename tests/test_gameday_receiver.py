"""The built-in OTLP/HTTP receiver and the span records: what the SDK's real exporters send
(protobuf, gzip or not) and OTLP JSON decode to the same records; bodies are capped."""

from __future__ import annotations

import gzip
import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from devsecmw.gameday import receiver as receiver_mod
from devsecmw.gameday import records
from devsecmw.gameday.receiver import Receiver, ReceiverError

pytest.importorskip("opentelemetry.exporter.otlp.proto.http.trace_exporter")
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver("127.0.0.1", 0) as r:
        yield r


def _spans(provider: TracerProvider) -> None:
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("GET /search", kind=SpanKind.SERVER) as span:
        span.set_attribute("http.route", "/search")
        span.set_attribute("devsecmw.classification", "attack")
        span.set_attribute("devsecmw.signal.types", ["sqli", "xss"])
        span.set_attribute("devsecmw.score", 10)
        span.set_attribute("devsecmw.blocked", False)
        span.add_event(
            "devsecmw.signal", {"devsecmw.signal.type": "sqli", "devsecmw.signal.location": "query:q"}
        )


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
def test_spans_from_the_sdk_exporter_arrive_as_records(receiver: Receiver, compression: Compression) -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    exporter = OTLPSpanExporter(endpoint=f"{receiver.endpoint}/v1/traces", compression=compression)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    _spans(provider)
    provider.shutdown()
    assert receiver.wait_until(lambda spans, _: len(spans) == 1, 10)
    got = receiver.snapshot()[0][0]
    want = records.from_sdk(memory.get_finished_spans())[0]
    assert got.pop("received") > 0
    assert got == want  # the wire and the SDK agree, field by field
    assert got["service"] == "shop" and got["kind"] == "SERVER"
    assert got["attributes"]["devsecmw.signal.types"] == ["sqli", "xss"]
    assert got["attributes"]["devsecmw.score"] == 10
    assert got["events"][0]["attributes"]["devsecmw.signal.type"] == "sqli"
    assert len(got["trace_id"]) == 32 and len(got["span_id"]) == 16
    assert receiver.rejected == 0


def test_metrics_from_the_sdk_exporter_arrive_as_points(receiver: Receiver) -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    exporter = OTLPMetricExporter(endpoint=f"{receiver.endpoint}/v1/metrics")
    provider = MeterProvider(
        metric_readers=[PeriodicExportingMetricReader(exporter, export_interval_millis=60000)]
    )
    counter = provider.get_meter("test").create_counter("devsecmw.signals")
    counter.add(3, {"devsecmw.signal.type": "sqli"})
    provider.shutdown()  # flushes once
    assert receiver.wait_until(lambda _, points: bool(points), 10)
    point = receiver.snapshot()[1][0]
    assert point["name"] == "devsecmw.signals"
    assert point["attributes"] == {"devsecmw.signal.type": "sqli"} and point["value"] == 3


def _post(receiver: Receiver, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=10)
    try:
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _otlp_json() -> dict[str, Any]:
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "shop"}}]},
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "5B8EFFF798038103D269B633813FC60C",
                                "spanId": "EEE19B7EC3C1B174",
                                "name": "GET /search",
                                "kind": 2,
                                "startTimeUnixNano": "1544712660000000000",
                                "endTimeUnixNano": "1544712661000000000",
                                "status": {"code": "STATUS_CODE_ERROR"},
                                "attributes": [
                                    {"key": "http.response.status_code", "value": {"intValue": "500"}},
                                    {"key": "devsecmw.classification", "value": {"stringValue": "attack"}},
                                    {
                                        "key": "devsecmw.signal.types",
                                        "value": {"arrayValue": {"values": [{"stringValue": "attack_5xx"}]}},
                                    },
                                ],
                                "events": [
                                    {"name": "devsecmw.signal", "timeUnixNano": "1544712660500000000"}
                                ],
                            }
                        ]
                    }
                ],
            }
        ]
    }


def test_otlp_json_bodies_decode_too(receiver: Receiver) -> None:
    status, body = _post(
        receiver, "/v1/traces", json.dumps(_otlp_json()).encode(), {"Content-Type": "application/json"}
    )
    assert (status, body) == (200, b"{}")
    span = receiver.snapshot()[0][0]
    assert span["trace_id"] == "5b8efff798038103d269b633813fc60c"
    assert span["kind"] == "SERVER" and span["status"] == "ERROR" and span["service"] == "shop"
    assert span["attributes"]["http.response.status_code"] == 500
    assert span["attributes"]["devsecmw.signal.types"] == ["attack_5xx"]
    assert span["start_time"] == 1544712660.0 and span["events"][0]["time"] == 1544712660.5


def test_bad_and_oversized_bodies_are_refused(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(receiver_mod, "MAX_BODY", 1024)
    assert _post(receiver, "/v1/traces", b"\xff" * 10, {"Content-Type": "application/x-protobuf"})[0] == 400
    assert _post(receiver, "/v1/traces", b"x" * 2048, {})[0] == 413
    bomb = gzip.compress(b"\0" * 100_000)  # small on the wire, large once inflated
    assert len(bomb) < 1024
    status, body = _post(receiver, "/v1/traces", bomb, {"Content-Encoding": "gzip"})
    assert status == 400 and b"decompressed" in body
    assert _post(receiver, "/v1/traces", b"not gzip", {"Content-Encoding": "gzip"})[0] == 400
    chunked = {"Transfer-Encoding": "chunked"}
    assert _post(receiver, "/v1/traces", b"0\r\n\r\n", chunked)[0] == 411  # never read as empty
    assert _post(receiver, "/elsewhere", b"", {})[0] == 404
    assert _post(receiver, "/v1/logs", b"", {})[0] == 200  # accepted, ignored
    assert receiver.snapshot() == ([], []) and receiver.rejected == 5


def test_the_receiver_keeps_a_bounded_number_of_spans(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(receiver_mod, "MAX_SPANS", 3)
    receiver.add_spans([{"trace_id": str(i)} for i in range(5)])
    assert len(receiver.spans) == 3 and receiver.dropped == 2


def test_a_taken_port_is_a_clear_error(receiver: Receiver) -> None:
    with pytest.raises(ReceiverError, match=f"cannot listen on 127.0.0.1:{receiver.port}"):
        Receiver("127.0.0.1", receiver.port).start()


# --------------------------------------------------------------------------- files
def test_files_mix_span_records_and_otlp_json_lines(tmp_path: Any) -> None:
    record = {"trace_id": "ab" * 16, "span_id": "cd" * 8, "name": "x", "attributes": {"a": 1}, "events": []}
    path = tmp_path / "in.jsonl"
    path.write_text(
        json.dumps(record) + "\n\n" + json.dumps(_otlp_json()) + "\n" + json.dumps({"other": 1}) + "\n"
    )
    got = list(records.iter_file(path))
    assert [r["trace_id"] for r in got] == ["ab" * 16, "5b8efff798038103d269b633813fc60c"]
    assert records.dump(got, tmp_path / "out.jsonl") == 2
    assert list(records.iter_file(tmp_path / "out.jsonl")) == got
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl:1: not JSON"):
        list(records.iter_file(tmp_path / "bad.jsonl"))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
KEYS = st.sampled_from(
    ["resourceSpans", "scopeSpans", "spans", "attributes", "key", "value", "stringValue", "intValue",
     "arrayValue", "values", "events", "traceId", "kind", "status", "code", "startTimeUnixNano", "resource"]
)  # fmt: skip
OTLPISH = st.recursive(
    st.none() | st.integers() | st.text(max_size=6),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(KEYS, children, max_size=4),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(doc=st.one_of(JSON, st.fixed_dictionaries({"resourceSpans": OTLPISH})))
def test_parse_line_never_fails_on_any_json(doc: Any) -> None:
    """Whatever JSON a line holds, it decodes to records (or to none): a reader never dies on a
    strange but valid line, and every record has the fields the report reads, with their types."""
    for record in records.parse_line(doc):
        assert isinstance(record["trace_id"], str)
        assert isinstance(record["attributes"], dict) and isinstance(record["events"], list)
        json.dumps(record)  # and it can be saved again

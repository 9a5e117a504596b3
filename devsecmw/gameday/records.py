"""Span records: the one shape ``devsecmw gameday`` saves and ``devsecmw report`` reads.

A *span record* is a JSON object, one a line in a ``.jsonl`` file::

    {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7",
     "parent_span_id": "", "name": "GET /search", "kind": "SERVER", "service": "shop",
     "start_time": 1733600000.123, "end_time": 1733600000.125, "status": "UNSET",
     "attributes": {"http.route": "/search", "devsecmw.classification": "attack", ...},
     "events": [{"name": "devsecmw.signal", "time": 1733600000.124,
                 "attributes": {"devsecmw.signal.type": "sqli", ...}}]}

Times are Unix seconds; ids lower-case hex; attribute values strings, numbers, booleans
or lists of them, exactly as the span carried them (nothing is added: a client address
appears only if the span had one). Built here from:

- OTLP/HTTP protobuf (``ExportTraceServiceRequest``, what :mod:`.receiver` receives);
- OTLP JSON (the same message in its JSON mapping, one a line: what the OpenTelemetry
  Collector's ``file`` exporter writes);
- finished OpenTelemetry SDK spans (what ``devsecmw demo`` holds in memory).

:func:`load` reads a file of either JSON form, line by line, bounded.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

Record = dict[str, Any]

#: Lines longer than this in an input file are skipped (an OTLP JSON line holds a batch).
MAX_LINE = 64 * 1024 * 1024
#: Spans read from one file at most.
MAX_RECORDS = 1_000_000
_KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
_STATUS = {0: "UNSET", 1: "OK", 2: "ERROR"}


# --------------------------------------------------------------------------- protobuf
def _pb_value(value: Any) -> Any:
    which = value.WhichOneof("value")
    if which == "array_value":
        return [_pb_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _pb_value(kv.value) for kv in value.kvlist_value.values}
    if which == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, which) if which else None


def _pb_attrs(kvs: Iterable[Any]) -> dict[str, Any]:
    return {kv.key: _pb_value(kv.value) for kv in kvs}


def _parsed(message: Any, payload: bytes, what: str) -> Any:
    """``message`` filled from ``payload``; ``ValueError`` on garbage."""
    try:
        message.ParseFromString(payload)
    except Exception as exc:  # protobuf's DecodeError (its type stubs are not a dependency)
        raise ValueError(f"not an OTLP {what} export: {exc}") from None
    return message


def from_protobuf(payload: bytes) -> list[Record]:
    """Span records of a serialized ``ExportTraceServiceRequest``; raises ``ValueError`` on garbage."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    message = _parsed(ExportTraceServiceRequest(), payload, "trace")
    out: list[Record] = []
    for rs in message.resource_spans:
        service = str(_pb_attrs(rs.resource.attributes).get("service.name", ""))
        for ss in rs.scope_spans:
            for span in ss.spans:
                out.append(
                    {
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent_span_id": span.parent_span_id.hex(),
                        "name": span.name,
                        "kind": _KINDS.get(span.kind, "UNSPECIFIED"),
                        "service": service,
                        "start_time": span.start_time_unix_nano / 1e9,
                        "end_time": span.end_time_unix_nano / 1e9,
                        "status": _STATUS.get(span.status.code, "UNSET"),
                        "attributes": _pb_attrs(span.attributes),
                        "events": [
                            {
                                "name": e.name,
                                "time": e.time_unix_nano / 1e9,
                                "attributes": _pb_attrs(e.attributes),
                            }
                            for e in span.events
                        ],
                    }
                )
    return out


def metric_points_from_protobuf(payload: bytes) -> list[Record]:
    """The counter points (OTLP ``sum``) of a serialized ``ExportMetricsServiceRequest``:
    ``{"service", "name", "attributes", "value", "time", "start_time"}`` each."""
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    message = _parsed(ExportMetricsServiceRequest(), payload, "metrics")
    out: list[Record] = []
    for rm in message.resource_metrics:
        service = str(_pb_attrs(rm.resource.attributes).get("service.name", ""))
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.WhichOneof("data") != "sum":
                    continue
                for p in metric.sum.data_points:
                    which = p.WhichOneof("value")
                    out.append(
                        {
                            "service": service,
                            "name": metric.name,
                            "attributes": _pb_attrs(p.attributes),
                            "value": getattr(p, which) if which else 0,
                            "time": p.time_unix_nano / 1e9,
                            "start_time": p.start_time_unix_nano / 1e9,
                        }
                    )
    return out


# --------------------------------------------------------------------------- OTLP JSON
# Files are read as they come: every field may be missing or of another type, and a
# strange line decodes to what it holds rather than stopping the reader.
def _d(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _l(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _json_value(value: Any) -> Any:
    value = _d(value)
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in value:
            v = value[key]
            return v if isinstance(v, str | bool | int | float) else None
    if "intValue" in value:  # int64 is a string in the JSON mapping
        try:
            return int(value["intValue"])
        except (TypeError, ValueError, OverflowError):
            return None
    if "arrayValue" in value:
        return [_json_value(v) for v in _l(_d(value["arrayValue"]).get("values"))]
    if "kvlistValue" in value:
        return _json_attrs(_d(value["kvlistValue"]).get("values"))
    if "bytesValue" in value:
        return str(value["bytesValue"])
    return None


def _json_attrs(kvs: Any) -> dict[str, Any]:
    return {
        str(_d(kv).get("key")): _json_value(_d(kv).get("value")) for kv in _l(kvs) if isinstance(kv, Mapping)
    }


def _nanos(value: Any) -> float:
    try:
        return int(value) / 1e9
    except (TypeError, ValueError, OverflowError):
        return 0.0


def _code(value: Any, names: Mapping[int, str], prefix: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return names.get(value, names[0])
    text = value if isinstance(value, str) else ""
    return text[len(prefix) :] if text.startswith(prefix) else (text or names[0])


def _hex(value: Any) -> str:
    return value.lower() if isinstance(value, str) else ""


def from_otlp_json(doc: Mapping[str, Any]) -> list[Record]:
    """Span records of an ``ExportTraceServiceRequest`` in the OTLP JSON mapping."""
    out: list[Record] = []
    for rs in _l(_d(doc).get("resourceSpans")):
        rs = _d(rs)
        service = str(_json_attrs(_d(rs.get("resource")).get("attributes")).get("service.name", ""))
        for ss in _l(rs.get("scopeSpans")):
            for span in _l(_d(ss).get("spans")):
                span = _d(span)
                out.append(
                    {
                        "trace_id": _hex(span.get("traceId")),
                        "span_id": _hex(span.get("spanId")),
                        "parent_span_id": _hex(span.get("parentSpanId")),
                        "name": str(span.get("name") or ""),
                        "kind": _code(span.get("kind"), _KINDS, "SPAN_KIND_"),
                        "service": service,
                        "start_time": _nanos(span.get("startTimeUnixNano")),
                        "end_time": _nanos(span.get("endTimeUnixNano")),
                        "status": _code(_d(span.get("status")).get("code"), _STATUS, "STATUS_CODE_"),
                        "attributes": _json_attrs(span.get("attributes")),
                        "events": [
                            {
                                "name": str(_d(e).get("name") or ""),
                                "time": _nanos(_d(e).get("timeUnixNano")),
                                "attributes": _json_attrs(_d(e).get("attributes")),
                            }
                            for e in _l(span.get("events"))
                        ],
                    }
                )
    return out


# --------------------------------------------------------------------------- SDK spans
def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple | list) else value


def from_sdk(spans: Iterable[Any]) -> list[Record]:
    """Span records of finished OpenTelemetry SDK spans (``ReadableSpan``)."""
    out: list[Record] = []
    for s in spans:
        ctx = s.context
        resource = getattr(s, "resource", None)
        service = str((resource.attributes if resource is not None else {}).get("service.name", ""))
        out.append(
            {
                "trace_id": f"{ctx.trace_id:032x}" if ctx is not None else "",
                "span_id": f"{ctx.span_id:016x}" if ctx is not None else "",
                "parent_span_id": f"{s.parent.span_id:016x}" if s.parent is not None else "",
                "name": s.name,
                "kind": s.kind.name,
                "service": service,
                "start_time": (s.start_time or 0) / 1e9,
                "end_time": (s.end_time or 0) / 1e9,
                "status": s.status.status_code.name,
                "attributes": {k: _plain(v) for k, v in (s.attributes or {}).items()},
                "events": [
                    {
                        "name": e.name,
                        "time": e.timestamp / 1e9,
                        "attributes": {k: _plain(v) for k, v in (e.attributes or {}).items()},
                    }
                    for e in s.events
                ],
            }
        )
    return out


# --------------------------------------------------------------------------- files
def parse_line(doc: Any) -> list[Record]:
    """One JSON line of an input file: a span record, or an OTLP JSON trace export."""
    if not isinstance(doc, Mapping):
        return []
    if "resourceSpans" in doc:
        return from_otlp_json(doc)
    if isinstance(doc.get("trace_id"), str) and isinstance(doc.get("attributes", {}), Mapping):
        record = dict(doc)
        record["attributes"] = dict(doc.get("attributes") or {})
        record["events"] = [e for e in _l(doc.get("events")) if isinstance(e, Mapping)]
        return [record]
    return []


def iter_json_lines(path: str | Path) -> Iterator[Any]:
    """The JSON value of each non-empty line of a file (bounded line length)."""
    with open(path, "rb") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip() or len(line) > MAX_LINE:
                continue
            try:
                yield json.loads(line)
            except ValueError as exc:
                raise ValueError(f"{path}:{lineno}: not JSON: {exc}") from None


def iter_file(path: str | Path) -> Iterator[Record]:
    """Span records of a ``.jsonl`` file (span records and OTLP JSON lines may mix)."""
    n = 0
    for doc in iter_json_lines(path):
        for record in parse_line(doc):
            yield record
            n += 1
            if n >= MAX_RECORDS:
                return


def dump(records: Iterable[Record], path: str | Path) -> int:
    """Write span records as JSON lines; returns how many."""
    n = 0
    with open(path, "w", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r, separators=(",", ":"), default=str))
            fh.write("\n")
            n += 1
    return n


__all__ = [
    "Record",
    "dump",
    "from_otlp_json",
    "from_protobuf",
    "from_sdk",
    "iter_file",
    "iter_json_lines",
    "metric_points_from_protobuf",
    "parse_line",
]

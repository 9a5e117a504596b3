"""The names telemetry writes (SPEC.md): attribute and event names, the schema, method and
bucket vocabularies. Constants only, so any module can import them."""

from __future__ import annotations

SCHEMA_URL = "https://opentelemetry.io/schemas/1.26.0"

KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY"}
)
#: Histogram buckets for inspection time, in seconds (10 µs to 100 ms).
DURATION_BUCKETS = (
    0.00001,
    0.000025,
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
)
MAX_LOCATION = 128

# Attribute names of SPEC.md.
EVENT_NAME = "devsecmw.signal"
ATTR_TYPE = "devsecmw.signal.type"
ATTR_LOCATION = "devsecmw.signal.location"
ATTR_EVIDENCE = "devsecmw.signal.evidence"
ATTR_SEVERITY = "devsecmw.signal.severity"
ATTR_RULE_ID = "security_rule.uuid"
ATTR_RULE_NAME = "security_rule.name"
ATTR_RULE_CATEGORY = "security_rule.category"
ATTR_RULESET = "security_rule.ruleset.name"
ATTR_CLASSIFICATION = "devsecmw.classification"
ATTR_TYPES = "devsecmw.signal.types"
ATTR_SCORE = "devsecmw.score"
ATTR_BLOCKED = "devsecmw.blocked"
ATTR_WOULD_BLOCK = "devsecmw.would_block"
ATTR_LEAK_AFTER_ATTACK = "devsecmw.leak_after_attack"
ATTR_DROPPED = "devsecmw.signals.dropped"
ATTR_INCOMPLETE = "devsecmw.inspection.incomplete"
#: The request came from a flagged client (``client_flagged`` itself is reported once per window).
ATTR_CLIENT_FLAGGED = "devsecmw.client.flagged"
# Metric-only attributes (bounded: a fixed vocabulary or a boolean).
#: The request's primary attack type (one per request, see :func:`primary_attack_type`).
ATTR_ATTACK_TYPE = "devsecmw.attack.type"
#: A signal's own kind, ``attack`` or ``anomaly`` (the request's class is ``devsecmw.classification``).
ATTR_SIGNAL_KIND = "devsecmw.signal.kind"
#: The run id of a ``devsecmw gameday`` request (its ``X-Devsecmw-Gameday`` header), when well formed.
ATTR_GAMEDAY_RUN_ID = "devsecmw.gameday.run_id"
GAMEDAY_HEADER = "x-devsecmw-gameday"

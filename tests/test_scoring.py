"""Decision apart from detection: the score is the visible sum of the signals."""

from __future__ import annotations

from devsecmw import Config, Severity, Signal
from devsecmw.response import correlate, status_signals
from devsecmw.scoring import decide, score, should_block


def sig(t: str, sev: Severity = Severity.CRITICAL, rule: str | None = "1", loc: str = "query:q") -> Signal:
    return Signal(t, loc, "", sev, rule_id=rule)


def test_score_is_sum_of_distinct_rules() -> None:
    signals = [
        sig("sqli", rule="942100"),
        sig("sqli", rule="942100", loc="query:x"),
        sig("xss", rule="941100"),
    ]
    assert score(signals) == 10


def test_classification() -> None:
    c = Config()
    assert decide([], c).classification == "benign"
    assert decide([sig("http_404", Severity.INFO, None)], c).classification == "anomaly"
    assert decide([sig("not_utf8", Severity.NOTICE)], c).classification == "anomaly"
    assert decide([sig("sqli")], c).classification == "attack"
    # An attack signal below the threshold is an anomaly, as in CRS scoring.
    assert decide([sig("protocol", Severity.WARNING)], c).classification == "anomaly"


def test_anomalies_alone_never_block() -> None:
    c = Config(mode="block")
    assert not should_block(
        [sig("private_file", Severity.CRITICAL), sig("null_byte", Severity.CRITICAL, "2")], c
    )


def test_block_threshold_and_types() -> None:
    assert should_block([sig("sqli")], Config())
    assert not should_block([sig("protocol", Severity.WARNING)], Config())
    assert should_block([sig("protocol", Severity.WARNING)], Config(block_threshold=3))
    only_sqli = Config(block_types=("sqli",))
    assert not should_block([sig("xss")], only_sqli)
    assert should_block([sig("sqli"), sig("xss", rule="2")], only_sqli)


def test_flagged_clients_block_unless_switched_off() -> None:
    assert should_block([], Config(), flagged=True)
    assert not should_block([], Config(block_flagged=False), flagged=True)


def test_status_signals() -> None:
    assert [s.type for s in status_signals(500)] == ["http_5xx"]
    assert [s.type for s in status_signals(503)] == ["http_5xx"]
    assert [s.type for s in status_signals(404)] == ["http_404"]
    assert [s.type for s in status_signals(401)] == ["auth_failure"]
    assert [s.type for s in status_signals(403)] == ["auth_failure"]
    assert [s.type for s in status_signals(429)] == ["rate_limited"]
    assert status_signals(200) == [] and status_signals(None) == []
    assert [s.type for s in status_signals(None, ValueError("x"))] == ["http_5xx"]
    assert [s.type for s in status_signals(200, ValueError("x"))] == ["http_5xx"]


def test_attack_5xx_needs_both() -> None:
    assert correlate([sig("sqli"), *status_signals(500)])[0].type == "attack_5xx"
    assert correlate(status_signals(500)) == []
    assert correlate([sig("sqli"), *status_signals(404)]) == []
    assert correlate([sig("null_byte"), *status_signals(500)]) == []

"""The public surface is deliberate: __all__ is complete and sorted."""

from __future__ import annotations

import devsecmw


def test_all_is_sorted_and_complete() -> None:
    public = {name for name in dir(devsecmw) if not name.startswith("_")} - {
        # submodules imported as a side effect of the re-exports
        "config",
        "signals",
        "engine",
        "request",
        "body",
        "redact",
        "telemetry",
        "core",
        "scoring",
        "response",
        "asgi",
        "wsgi",
        "flask",
        "django",
        "cli",
        "demo",
    }
    assert len(devsecmw.__all__) == len(set(devsecmw.__all__))
    assert public <= set(devsecmw.__all__)


def test_signal_vocabulary_matches_spec() -> None:
    assert {
        "sqli",
        "xss",
        "cmdi",
        "traversal",
        "rfi",
        "ssrf",
        "xxe",
        "ssti",
        "nosqli",
        "log4shell",
        "php",
        "java",
        "nodejs",
        "code_injection",
        "scanner",
        "protocol",
        "session_fixation",
        "backdoor",
    } == devsecmw.ATTACK_TYPES
    assert {
        "http_5xx",
        "http_404",
        "auth_failure",
        "rate_limited",
        "attack_5xx",
        "response_leak",
        "not_utf8",
        "null_byte",
        "double_encoding",
        "private_file",
        "client_flagged",
    } == devsecmw.ANOMALY_TYPES

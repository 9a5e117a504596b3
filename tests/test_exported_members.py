"""The public surface is deliberate: __all__ is complete."""

from __future__ import annotations

import inspect

import devsecmw


def test_all_is_complete() -> None:
    # Submodules appear as attributes once imported; `annotations` is the __future__ feature.
    public = {
        name
        for name, value in vars(devsecmw).items()
        if not name.startswith("_") and not inspect.ismodule(value) and name != "annotations"
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
        "inspection_incomplete",
    } == devsecmw.ANOMALY_TYPES

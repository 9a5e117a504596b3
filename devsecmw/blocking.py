"""The block response: small, honest, and carrying the trace id so a blocked user's
report leads straight to the span that explains why."""

from __future__ import annotations

import html
import json

from .config import Config

_HTML = (
    '<!doctype html><html><head><meta charset="utf-8"><title>Request blocked</title></head>'
    "<body><h1>Request blocked</h1><p>This request was blocked by the application's security policy.</p>"
    "<p>Reference: <code>{trace_id}</code></p></body></html>"
)


def _wants_html(accept: str | None) -> bool:
    if not accept:
        return False
    a = accept.lower()
    html_at = a.find("text/html")
    json_at = a.find("application/json")
    # Browsers list text/html first; API clients ask for JSON (or */*): JSON is the default.
    return html_at >= 0 and (json_at < 0 or html_at < json_at)


def render(
    config: Config, trace_id: str, accept: str | None = None
) -> tuple[int, list[tuple[str, str]], bytes]:
    """``(status, headers, body)`` of the block response for a request with this ``Accept``."""
    if config.block_body is not None:
        body = config.block_body.replace("{trace_id}", trace_id).encode("utf-8")
        ctype = config.block_content_type
    elif _wants_html(accept):
        body = _HTML.format(trace_id=html.escape(trace_id)).encode("utf-8")
        ctype = "text/html; charset=utf-8"
    else:
        body = json.dumps({"error": "request blocked", "trace_id": trace_id}).encode("utf-8")
        ctype = "application/json"
    headers = [
        ("content-type", ctype),
        ("content-length", str(len(body))),
        ("cache-control", "no-store"),
    ]
    return config.block_status, headers, body


__all__ = ["render"]

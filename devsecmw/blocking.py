"""The block response: small, honest, and carrying the trace id so a blocked user's
report leads straight to the span that explains why.

Sans-IO: :func:`render` returns ``(status, headers, body)``; each adapter sends it in
its own protocol (ASGI messages, a WSGI ``start_response``, a Django response).
"""

from __future__ import annotations

import html
import json

from .config import Config

_HTML = (
    '<!doctype html><html><head><meta charset="utf-8"><title>Request blocked</title></head>'
    "<body><h1>Request blocked</h1><p>This request was blocked by the application's security policy.</p>"
    "<p>Reference: <code>{trace_id}</code></p></body></html>"
)
_MAX_ACCEPT = 1024  # a hostile Accept header costs a bounded parse


def _quality(accept: str, media_type: str) -> float:
    """The q-value ``accept`` gives ``media_type``: the most specific matching range wins (RFC 9110)."""
    main = media_type.split("/", 1)[0]
    best_rank, best_q = -1, 0.0
    for item in accept[:_MAX_ACCEPT].lower().split(","):
        rng, *params = item.split(";")
        rng = rng.strip()
        if rng == media_type:
            rank = 2
        elif rng == main + "/*":
            rank = 1
        elif rng == "*/*":
            rank = 0
        else:
            continue
        q = 1.0
        for p in params:
            name, _, value = p.strip().partition("=")
            if name.strip() == "q":
                try:
                    q = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    q = 0.0
        if rank > best_rank:
            best_rank, best_q = rank, q
    return best_q


def wants_html(accept: str | None) -> bool:
    """HTML only for clients that prefer it (browsers); JSON for API clients, ``*/*`` and no Accept."""
    if not accept:
        return False
    return _quality(accept, "text/html") > _quality(accept, "application/json")


def render(
    config: Config, trace_id: str, accept: str | None = None
) -> tuple[int, list[tuple[str, str]], bytes]:
    """``(status, headers, body)`` of the block response for a request with this ``Accept``.

    ``block_body`` (with ``{trace_id}`` replaced) and ``block_content_type`` replace the
    default small JSON or HTML body.
    """
    if config.block_body is not None:
        body = config.block_body.replace("{trace_id}", trace_id).encode("utf-8")
        ctype = config.block_content_type
    elif wants_html(accept):
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


__all__ = ["render", "wants_html"]

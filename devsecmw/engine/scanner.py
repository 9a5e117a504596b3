"""Parameter discovery: one request carrying hundreds of guessed parameter names.

Tools such as arjun find hidden parameters by sending a wordlist of names (``id``, ``debug``,
``admin``, ...) in one request, hundreds at a time, and comparing the answers. No application
builds a query string of that many distinct names: the largest real ones (analytics beacons,
search filters) hold a few dozen. The operator reads the raw request target: ``str.count`` and
one split, both in C, and the split only once the count says there may be enough.
"""

from __future__ import annotations

from collections.abc import Callable

Span = tuple[int, int]

#: RE2 prefilter: a query with parameters at all.
PREFILTER = r"[?&][^&=]+=[^&]*&"
#: Distinct parameter names in one query that mark a guessing request.
MIN_NAMES = 100
#: Names examined at most (bounded work on a hostile target).
MAX_NAMES = 4096


def _detect(value: str, min_names: int) -> Span | None:
    q = value.find("?")
    if q < 0 or value.count("&", q) + 1 < min_names:
        return None
    names = {part.partition("=")[0] for part in value[q + 1 :].split("&", MAX_NAMES)[:MAX_NAMES]}
    # Guessed names are words (id, debug, admin_id); a structured query (DataTables'
    # columns[3][search][value], filter.0.field, %5B-encoded brackets) is an application's own.
    words = [n for n in names if n and n.isascii() and n.replace("_", "a").replace("-", "a").isalnum()]
    if len(words) < min_names:
        return None
    return q, min(len(value), q + 64)


def make_detector(param: object) -> Callable[[str], Span | None]:
    """``{"min_names": n}`` (default :data:`MIN_NAMES`)."""
    n = param.get("min_names", MIN_NAMES) if isinstance(param, dict) else MIN_NAMES
    if not isinstance(n, int) or n < 10:
        raise ValueError(f"invalid detect_param_guessing parameter {param!r} (min_names: an integer >= 10)")
    return lambda value: _detect(value, n)


def detect(value: str) -> Span | None:
    return _detect(value, MIN_NAMES)


__all__ = ["MAX_NAMES", "MIN_NAMES", "PREFILTER", "detect", "make_detector"]

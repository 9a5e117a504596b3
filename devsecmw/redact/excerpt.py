"""Evidence: a short excerpt of a value around a match, cut at the first secret."""

from __future__ import annotations

from collections.abc import Iterable

from .gate import _prepare
from .names import STRICT, _extra, _name_cut, is_secret_location
from .scrub import MASK, _apply
from .tokens import _LOOKAHEAD, _token_spans

MAX_EVIDENCE = 64
REDACTED = "[redacted]"
#: Ends an evidence excerpt whose match runs past it (evidence is short: a one-character marker).
ELLIPSIS = "\u2026"
#: Characters before an evidence window searched for secret names as written (a C-speed
#: ``find``), and for their decoded spellings (a loop per escape).
_SCAN_BACK = 4096
_DECODE_BACK = 1024


def evidence(
    location: str,
    value: str,
    start: int = 0,
    end: int | None = None,
    extra_names: Iterable[str] = (),
) -> str:
    """A redacted excerpt of ``value`` around ``value[start:end]``, at most 64 characters.

    The excerpt never shows anything after a secret name: when one occurs before the excerpt's
    end, the excerpt ends there (with :data:`MASK`); when the match itself lies after it, the
    excerpt shows what leads up to the name instead.
    """
    if is_secret_location(location, extra_names):
        return REDACTED
    if end is None or end > len(value):
        end = len(value)
    start = max(0, min(start, end))
    if end - start >= MAX_EVIDENCE:
        lo, hi = start, start + MAX_EVIDENCE
    else:
        pad = (MAX_EVIDENCE - (end - start)) // 2
        lo = max(0, start - pad)
        hi = min(len(value), lo + MAX_EVIDENCE)
        lo = max(0, hi - MAX_EVIDENCE)
    extra = _extra(extra_names)
    tail = ELLIPSIS if end > hi else ""
    # Names are looked for in the few KiB before the excerpt: a secret value is shorter than
    # that, and the work stays bounded whatever the size of the value.
    scan_from = max(0, lo - _SCAN_BACK)
    decode_from = max(0, lo - _DECODE_BACK)
    around = value[scan_from : hi + _LOOKAHEAD]
    clean, fold = _prepare(around, extra, decode_from - scan_from)
    if clean:
        return _printable(value[lo:hi], tail)
    cut = _name_cut(value, hi, STRICT, extra, scan_from, fold, decode_from)
    if cut is not None and cut < hi:
        hi, tail = cut, MASK
        lo = max(0, min(lo, hi - MAX_EVIDENCE + len(MASK)))
    snippet = _apply(value, lo, hi, _token_spans(value, lo, hi))
    if tail == MASK and snippet.endswith(MASK):
        tail = ""
    return _printable(snippet, tail)


def _printable(snippet: str, tail: str) -> str:
    # Control characters make logs and UIs misbehave; show them escaped.
    if not snippet.isprintable():
        snippet = "".join(c if c.isprintable() else repr(c)[1:-1] for c in snippet)
    return snippet[: MAX_EVIDENCE - len(tail)] + tail

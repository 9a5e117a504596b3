"""The embedded pass: unmistakable heads of an injection appended to larger text (a
payload at the end of a URL in a Referer), found by an RE2 scan; the grammar then
reads a few tokens from each."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, NamedTuple

try:  # RE2 scans in linear time and far faster than re on long values
    import re2 as _re2
except ImportError:  # pragma: no cover - platforms without a google-re2 wheel
    _re2 = None

#: Positions the embedded pass tries at most, and tokens it reads at each.
MAX_ANCHORS = 8
ANCHOR_TOKENS = 48

# --------------------------------------------------------------------------- embedded pass
# Unmistakable heads of an injection appended to larger text: the pass starts at each.
# (A short inline comment, or a versioned comment's markers, count as blanks: WAITFOR/**/DELAY,
# /*!50000SLEEP*/(5): sqlmap's space2comment and versionedkeywords.)
_B = r"(?:\s|/\*[^*!]{0,64}\*/|/\*!\d{0,5}|\*/)"
_ANCHOR_PATTERN = (
    r"(?i)(?:\b|/\*!\d{0,5})(?:union"
    + _B
    + r"+(?:all|distinct)"
    + _B
    + r"+select|union\b|waitfor"
    + _B
    + r"+delay\b|"
    r"into" + _B + r"+(?:out|dump)file\b|"
    r"(?:sleep|benchmark|pg_sleep|extractvalue|updatexml|load_file)" + _B + r"*\(|"
    r"exec(?:ute)?" + _B + r"+(?:master\.|xp_|sp_))"
)
_ANCHOR_RE: Any = _re2.compile(_ANCHOR_PATTERN) if _re2 is not None else re.compile(_ANCHOR_PATTERN)
EMBEDDED_FEATURES = frozenset({"union", "fn_strong", "waitfor", "into_file", "stack"})


_ANCHOR_WORDS = (
    "union",
    "waitfor",
    "into",
    "sleep",
    "benchmark",
    "extractvalue",
    "updatexml",
    "load_file",
    "exec",
)


class Anchor(NamedTuple):
    """Where a head of an injection matched, and its text."""

    start: int
    end: int
    text: str


def anchors(value: str) -> Iterator[Anchor]:
    # Most values hold none of the words: a substring test is cheaper than a call into RE2.
    low = value.lower()
    if not any(w in low for w in _ANCHOR_WORDS):
        return
    # search() from a position: google-re2's finditer is slow on long values.
    pos = 0
    for _ in range(MAX_ANCHORS):
        m = _ANCHOR_RE.search(value, pos)
        if m is None:
            return
        yield Anchor(m.start(), m.end(), m.group())
        pos = m.end()

"""The bookkeeping of one value's scan: its views (lower-cased, entity-decoded), the
candidates of each pattern, and the budget they spend."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from .decoding import RX_ENTITY, Anchor, lowered, map_span, unescape
from .finders import Finder, latin1
from .words import BUDGET_BASE, BUDGET_PER, Span


class Exhausted(Exception):
    """The value exhausted its verification budget; reported at ``span``."""

    def __init__(self, span: Span) -> None:
        super().__init__()
        self.span = span


class CheckExhausted(Exception):
    """A check that also reads ordinary code ran out of its own budget: it stops, unreported."""


#: Checks whose candidates also fill ordinary source code (``print("a", f(1))``, ``window[k]``):
#: a long code sample can exhaust them without being an attack, so each gets its own budget
#: and stops quietly when it is spent. The other checks share the value's budget, and a value
#: that exhausts it is reported (dense markup-shaped fragments are not benign text).
CODE_CHECKS = frozenset({"quote_breaks", "quote_assigns", "sinks", "globals_"})


@dataclass(slots=True)
class ScanResult:
    """What :func:`scan` found, and how much work it took."""

    span: Span | None
    #: Characters scanned by candidate patterns plus characters read while verifying.
    steps: int


_NO_VIEW: tuple[str | None, bytes] = (None, b"")


class ScanBase:
    """The state of one value's scan. ``low`` is the value lower-cased; ``dec`` also entity-decoded."""

    __slots__ = ("_anchors", "_bytes", "_check_budget", "_dec", "budget", "low", "n", "s", "steps", "strict")

    def __init__(self, value: str, strict: bool) -> None:
        self.s = value
        self.low = lowered(value)
        self.n = len(value)
        self.strict = strict
        self.budget = BUDGET_BASE + self.n // BUDGET_PER
        self._check_budget = -1  # >= 0 while a check of CODE_CHECKS runs on its own budget
        self.steps = 0
        self._dec: str | None = None
        self._anchors: list[Anchor] = []
        self._bytes: dict[int, tuple[str | None, bytes]] = {}  # id(view) -> (view, its Latin-1 form)

    # -- bookkeeping
    def candidates(self, finder: Finder, text: str, word: str = "") -> Iterator[re.Match[str]]:
        """Candidates of ``finder`` in ``text`` (a view of the value), each spending budget.

        With ``word``, a candidate preceded by a letter, digit or one of ``word`` is skipped.
        """
        self.steps += len(text)
        if finder.r2 is None:  # pragma: no cover - RE2 missing: ``re`` alone
            hits: Iterator[int] = (m.start() for m in finder.rx.finditer(text))
        else:
            hits = self._re2_hits(finder, text)
        for p in hits:
            self.steps += 16
            if self._check_budget >= 0:
                self._check_budget -= 1
                if self._check_budget < 0:
                    raise CheckExhausted
            else:
                self.budget -= 1
                if self.budget < 0:
                    raise Exhausted(self.dspan(p, p + 16) if text is self._dec else (p, min(self.n, p + 16)))
            if word and p and (text[p - 1].isalnum() or text[p - 1] in word):
                continue
            m = finder.rx.match(text, p)
            if m is not None:
                yield m

    def _re2_hits(self, finder: Finder, text: str) -> Iterator[int]:
        view, data = self._bytes.get(id(text), _NO_VIEW)
        if view is not text:  # a view not encoded yet (an id can be reused once a view is gone)
            data = latin1(text)
            self._bytes[id(text)] = (text, data)
        pos = 0
        size = len(data)
        while pos <= size:
            m = finder.r2.search(data, pos)
            if m is None:
                return
            yield m.start()
            pos = m.start() + 1

    @property
    def dec(self) -> str:
        """The lower-cased value with character references decoded (attribute and JS checks read it)."""
        if self._dec is None:
            self._dec = self.low
            if "&" in self.low and RX_ENTITY.search(self.low) is not None:
                dec, self._anchors = unescape(self.low)
                self._dec = lowered(dec)
                self.steps += self.n
        return self._dec

    def dspan(self, a: int, b: int) -> Span:
        """A span of :attr:`dec` as a span of the value."""
        if not self._anchors:
            return min(a, self.n), min(max(b, a + 1), self.n)
        return map_span(self._anchors, (a, b), self.n)

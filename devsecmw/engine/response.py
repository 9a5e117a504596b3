"""The response phases: response rules run on what the application answered.

Response rules are rules like the others (one schema, see :mod:`.rules`), loaded, disabled
and excluded the same way; their phase is ``response.body`` or ``response.head``:

- ``response.body`` rules run once per response, when it ends, on the bounded sample of a
  textual response that :class:`devsecmw.leaks.Sniffer` kept as its chunks passed (the first
  ``response_limit`` bytes, inflated within the same bound; the response itself is never
  held). The rules of one transform chain share one RE2 set of their loosened prefilters
  (one pass over the sample); only rules whose prefilter occurs are confirmed. The packaged
  rules (SQL error messages, stack traces and debug pages, directory listings, secrets) have
  no transform: an ASCII sample (most responses) is scanned as bytes without being decoded,
  and an error page that HTML-escapes its message (``Unknown column &#39;x&#39;``) is read
  again with its quotes and brackets unescaped when nothing matched as written.
- ``response.head`` rules run on each response header as ``name: value`` (at most
  ``max_headers`` headers, ``header_limit`` characters each), at location
  ``response:header:<name>``.

Signals are ``response:body`` / ``response:header:<name>``; the evidence goes through
:func:`devsecmw.redact.evidence` (a secret-named header is never shown), and a rule with
``"secret": true`` never shows its match.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import islice
from typing import Any

from .. import redact
from ..config import Config
from ..signals import Signal
from . import transforms as tf
from .matcher import HAVE_RE2, MultiMatcher, compile_set, loosen
from .rules import RESPONSE_BODY, RESPONSE_HEAD, Rule, load_all

BODY_LOCATION = "response:body"

#: The character references error pages escape SQL messages with (``&amp;`` last).
_ENTITIES = (
    (b"&#39;", b"'"),
    (b"&#x27;", b"'"),
    (b"&#X27;", b"'"),
    (b"&apos;", b"'"),
    (b"&quot;", b'"'),
    (b"&#34;", b'"'),
    (b"&#x22;", b'"'),
    (b"&lt;", b"<"),
    (b"&gt;", b">"),
    (b"&#96;", b"`"),
    (b"&amp;", b"&"),
)
_QUOTE_ENTITIES = (b"&#39;", b"&#x27;", b"&#X27;", b"&apos;", b"&quot;", b"&#34;", b"&#x22;", b"&lt;")


class _Item:
    """What an operator may ask of the value it judges (a response sample is text)."""

    __slots__ = ()
    utf8 = True


_ITEM = _Item()


class _ChainSet:
    """The rules of one phase that share a transform chain: one set of their prefilters."""

    __slots__ = ("always", "chain", "rules", "set")

    def __init__(self, chain: tuple[str, ...], rules: list[Rule]) -> None:
        self.chain = chain
        #: Rules with a prefilter, in the set's order; rules without one are always confirmed.
        self.rules = [r for r in rules if r.operator.prefilter]
        self.always = [r for r in rules if not r.operator.prefilter]
        # The set only says which rules may match (each hit is confirmed by the rule's operator),
        # so its patterns are loosened: without the long bounded repeats the rules fit one small
        # set, one pass per response instead of several (and faster on long text).
        self.set: MultiMatcher | None = (
            compile_set([loosen(str(r.operator.prefilter)) for r in self.rules]) if self.rules else None
        )

    def candidates(self, data: bytes | str) -> list[Rule]:
        hits = [self.rules[i] for i in self.set.match(data)] if self.set is not None else []
        return hits + self.always if self.always else hits


def _by_chain(rules: Iterable[Rule]) -> list[_ChainSet]:
    chains: dict[tuple[str, ...], list[Rule]] = {}
    for r in rules:
        chains.setdefault(r.transforms, []).append(r)
    return [_ChainSet(chain, rs) for chain, rs in chains.items()]


class ResponseRules:
    """The response-phase rules of a rule set, compiled (built once per middleware)."""

    def __init__(
        self,
        rules: Sequence[Rule],
        redact_names: Sequence[str] = (),
        max_headers: int = 100,
        header_limit: int = 8192,
    ) -> None:
        self.rules = [r for r in rules if r.phases & {RESPONSE_BODY, RESPONSE_HEAD}]
        self._body = _by_chain(r for r in self.rules if RESPONSE_BODY in r.phases)
        self._head = _by_chain(r for r in self.rules if RESPONSE_HEAD in r.phases)
        self._names = tuple(redact_names)
        self._max_headers = max_headers
        self._header_limit = header_limit

    @property
    def wants_body(self) -> bool:
        """Whether any rule reads the response body (else nothing needs sampling)."""
        return bool(self._body)

    def inspect(
        self, body: bytes | bytearray | None, headers: Sequence[tuple[Any, Any]] = ()
    ) -> list[Signal]:
        """Signals of the response-head rules on ``headers`` and the body rules on ``body`` (the
        sample: at most ``response_limit`` bytes)."""
        out = self._inspect_head(headers) if self._head and headers else []
        if body and self._body:
            out += self.inspect_body(body)
        return out

    def inspect_body(self, buf: bytes | bytearray) -> list[Signal]:
        out: list[Signal] = []
        text: str | None = None
        for cs in self._body:
            if not cs.chain:
                out += self._plain(cs, buf)
                continue
            if text is None:
                text = buf.decode("utf-8", "replace")
            view = tf.apply_chain(text, cs.chain)
            out += self._confirm(cs.candidates(view), view, BODY_LOCATION)
        return out

    def _plain(self, cs: _ChainSet, buf: bytes | bytearray) -> list[Signal]:
        """The rules without transforms. ASCII bytes are scanned as they are: decoding them to
        text and encoding it back for RE2 gives the very same bytes. Text is made only when
        something may match."""
        if not (HAVE_RE2 and buf.isascii()) or cs.candidates(bytes(buf)):
            text = buf.decode("utf-8", "replace")
            found = self._confirm(cs.candidates(text), text, BODY_LOCATION)
            if found:
                return found
        if b"&" in buf and any(e in buf for e in _QUOTE_ENTITIES):
            # An error page that HTML-escapes the message (Unknown column &#39;x&#39;): read the
            # quotes and brackets as the browser shows them (bytes.replace: C speed, bounded).
            plain = bytes(buf)
            for entity, char in _ENTITIES:
                plain = plain.replace(entity, char)
            if plain != buf and (not (HAVE_RE2 and plain.isascii()) or cs.candidates(plain)):
                text = plain.decode("utf-8", "replace")
                return self._confirm(cs.candidates(text), text, BODY_LOCATION)
        return []

    def _inspect_head(self, headers: Sequence[tuple[Any, Any]]) -> list[Signal]:
        out: list[Signal] = []
        limit = self._header_limit
        for k, v in islice(headers, self._max_headers):  # ASGI allows any iterable of pairs
            name = (k.decode("latin-1") if isinstance(k, bytes | bytearray) else str(k))[:64].lower()
            value = v.decode("latin-1") if isinstance(v, bytes | bytearray) else str(v)
            line = f"{name}: {value[:limit]}"
            location = f"response:header:{name}"
            for cs in self._head:
                view = tf.apply_chain(line, cs.chain) if cs.chain else line
                out += self._confirm(cs.candidates(view), view, location)
        return out

    def _confirm(self, rules: list[Rule], text: str, location: str) -> list[Signal]:
        out = []
        for rule in rules:
            span = rule.operator.evaluate(text, _ITEM)
            if span is None:
                continue
            if rule.secret:
                shown = redact.REDACTED
            else:
                shown = redact.evidence(location, text, span[0], span[1], self._names)
            out.append(
                Signal(
                    rule.type,
                    location,
                    shown,
                    rule.severity,
                    rule_id=rule.id,
                    rule_name=rule.name,
                    category=rule.category,
                    ruleset=rule.ruleset,
                )
            )
        return out


def response_rules(detector: object, config: Config) -> ResponseRules | None:
    """The response rules the middleware runs: those of the detector's rule set (the
    :class:`~devsecmw.engine.Engine`'s, so ``disabled_rules``, ``rule_files`` and the paranoia
    level apply as to request rules); for a detector of the user's own without rules, the
    packaged and configured ones. ``None`` when ``response_limit`` is 0 or no rule is left."""
    if config.response_limit <= 0:
        return None
    rules = getattr(detector, "rules", None)
    if not isinstance(rules, list | tuple):
        rules = load_all(config.rule_files, config.disabled_rules)
    active = [r for r in rules if isinstance(r, Rule) and r.paranoia <= config.paranoia_level]
    found = ResponseRules(active, config.redact_names, config.max_headers, config.header_limit)
    return found if found.rules else None


__all__ = ["BODY_LOCATION", "ResponseRules", "response_rules"]

"""Response leak detection: the first bytes of textual responses, sniffed as they pass.

The application's bytes are never held or changed: a bounded copy (the
``response_limit``, 32 KiB by default) of ``text/*``, JSON and XML responses is
kept as chunks leave, gzip/deflate inflated incrementally within the same
bound (other encodings skipped), and scanned once when the response ends
against the leak rules in ``engine/rules/response/*.json``: SQL error
messages, stack traces and debug pages, directory listings, secrets.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from . import redact
from .engine.matcher import HAVE_RE2, MultiMatcher, Pattern, compile_pattern, compile_set, loosen
from .engine.rules import RuleError
from .signals import Severity, Signal

TEXTUAL = ("text/", "application/json", "application/xml", "application/xhtml", "application/problem")
RULE_KEYS = frozenset({"id", "name", "category", "pattern", "secret", "examples", "severity"})


@dataclass(frozen=True, slots=True)
class LeakRule:
    id: str
    name: str
    category: str
    pattern: str
    compiled: Pattern
    secret: bool
    severity: Severity
    ruleset: str
    examples_match: tuple[str, ...] = ()
    examples_nomatch: tuple[str, ...] = ()


def _parse(doc: Any, source: str) -> list[LeakRule]:
    if not isinstance(doc, dict) or not isinstance(doc.get("rules"), list):
        raise RuleError(f"{source}: a rule file must be an object with a 'rules' list")
    ruleset = str(doc.get("ruleset") or "devsecmw-response")
    out = []
    for raw in doc["rules"]:
        rid = raw.get("id") if isinstance(raw, dict) else None
        if not isinstance(raw, dict):
            raise RuleError(f"{source}: each rule must be a JSON object")
        unknown = sorted(set(raw) - RULE_KEYS)
        if unknown:
            raise RuleError(f"{source}: rule {rid!r}: unknown key {unknown[0]!r}")
        for key in ("id", "name", "pattern"):
            if not isinstance(raw.get(key), str) or not raw[key]:
                raise RuleError(f"{source}: rule {rid!r}: missing or empty {key!r}")
        try:
            compiled = compile_pattern(raw["pattern"])
            severity = Severity.parse(raw.get("severity", "error"))
        except ValueError as exc:
            raise RuleError(f"{source}: rule {rid!r}: {exc}") from None
        ex = raw.get("examples", {})
        out.append(
            LeakRule(
                id=raw["id"],
                name=raw["name"],
                category=str(raw.get("category") or "leak"),
                pattern=raw["pattern"],
                compiled=compiled,
                secret=bool(raw.get("secret", False)),
                severity=severity,
                ruleset=ruleset,
                examples_match=tuple(ex.get("match", ())),
                examples_nomatch=tuple(ex.get("nomatch", ())),
            )
        )
    return out


def load_leak_rules() -> list[LeakRule]:
    base = resources.files("devsecmw.engine") / "rules" / "response"
    rules: list[LeakRule] = []
    for entry in sorted(base.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".json"):
            source = f"devsecmw/engine/rules/response/{entry.name}"
            try:
                doc = json.loads(entry.read_text(encoding="utf-8"))
            except ValueError as exc:
                raise RuleError(f"{source}: not valid JSON: {exc}") from None
            rules.extend(_parse(doc, source))
    return rules


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


class LeakScanner:
    """All leak rules compiled into one multi-pattern matcher (built once per middleware)."""

    def __init__(self, rules: Sequence[LeakRule] | None = None) -> None:
        self.rules = list(rules if rules is not None else load_leak_rules())
        # The set only says which rules may match (each hit is confirmed by its exact pattern), so
        # its patterns are loosened: without the long bounded repeats the rules fit one small set,
        # one pass per response instead of four (and 4x faster on long text).
        self._set: MultiMatcher | None = (
            compile_set([loosen(r.pattern) for r in self.rules]) if self.rules else None
        )

    def scan_sniffed(self, sniffer: Sniffer) -> list[Signal]:
        """Leaks in what ``sniffer`` kept. ASCII bytes (most responses) are scanned as they are:
        decoding them to text and encoding it back for RE2 gives the very same bytes. Text is
        made only when something may match."""
        buf = sniffer.data
        if self._set is None or not buf:
            return []
        if not (HAVE_RE2 and buf.isascii()) or self._set.match(bytes(buf)):
            found = self.scan(sniffer.text())
            if found:
                return found
        if b"&" in buf and any(e in buf for e in _QUOTE_ENTITIES):
            # An error page that HTML-escapes the message (Unknown column &#39;x&#39;): read the
            # quotes and brackets as the browser shows them (bytes.replace: C speed, bounded).
            plain = bytes(buf)
            for entity, char in _ENTITIES:
                plain = plain.replace(entity, char)
            if plain != buf and (not (HAVE_RE2 and plain.isascii()) or self._set.match(plain)):
                return self.scan(plain.decode("utf-8", "replace"))
        return []

    def scan(self, text: str) -> list[Signal]:
        if self._set is None or not text:
            return []
        out = []
        for i in self._set.match(text):
            rule = self.rules[i]
            span = rule.compiled.search(text)
            if span is None:
                continue
            evidence = redact.REDACTED if rule.secret else redact.evidence("response:body", text, *span)
            out.append(
                Signal(
                    "response_leak",
                    "response:body",
                    evidence,
                    rule.severity,
                    rule_id=rule.id,
                    rule_name=rule.name,
                    category=rule.category,
                    ruleset=rule.ruleset,
                )
            )
        return out


@lru_cache(maxsize=256)
def _sniffable(content_type: bytes | str, content_encoding: bytes | str) -> tuple[bool, int | None]:
    """Whether to sniff, and the zlib ``wbits`` to inflate with (``None``: identity).

    Takes the header values as the adapter has them (ASGI bytes, WSGI text): responses of an
    app repeat a handful of them, so the answer is cached on the raw values.
    """
    if isinstance(content_type, bytes):
        content_type = content_type.decode("latin-1")
    if isinstance(content_encoding, bytes):
        content_encoding = content_encoding.decode("latin-1")
    ct = content_type.split(";", 1)[0].strip().lower()
    if not ct.startswith(TEXTUAL) and not ct.endswith(("+json", "+xml")):
        return False, None
    enc = content_encoding.strip().lower()
    if enc in ("", "identity"):
        return True, None
    if enc in ("gzip", "x-gzip"):
        return True, 16 + zlib.MAX_WBITS
    if enc == "deflate":
        return True, zlib.MAX_WBITS + 32  # zlib or raw-with-header autodetect
    return False, None  # br, zstd...: skipped rather than decoded with another library


class Sniffer:
    """A bounded copy of one response's first bytes. Feeding never raises into the caller's path."""

    __slots__ = ("_inflate", "_limit", "data")

    def __init__(self, limit: int, wbits: int | None) -> None:
        #: The bytes kept (inflated when the response was compressed).
        self.data = bytearray()
        self._limit = limit
        self._inflate = zlib.decompressobj(wbits) if wbits is not None else None

    @classmethod
    def for_response(cls, headers: Sequence[tuple[Any, Any]], limit: int) -> Sniffer | None:
        if limit <= 0:
            return None
        ctype: bytes | str = ""
        cenc: bytes | str = ""
        for k, v in headers:  # names are bytes (ASGI) or text (WSGI, Django), in any case
            n = len(k)
            if n == 12 or n == 16:  # the lengths of content-type and content-encoding
                name = k.lower()
                if name == b"content-type" or name == "content-type":
                    ctype = v if isinstance(v, bytes | str) else bytes(v)
                elif name == b"content-encoding" or name == "content-encoding":
                    cenc = v if isinstance(v, bytes | str) else bytes(v)
        ok, wbits = _sniffable(ctype, cenc)
        return cls(limit, wbits) if ok else None

    @property
    def full(self) -> bool:
        return len(self.data) >= self._limit

    def feed(self, chunk: bytes) -> None:
        room = self._limit - len(self.data)
        if room <= 0 or not chunk:
            return
        if self._inflate is None:
            self.data += chunk[:room]
            return
        try:
            # max_length bounds what a decompression bomb can make us allocate.
            self.data += self._inflate.decompress(bytes(chunk), room)
        except zlib.error:
            self._inflate = None
            self._limit = 0  # corrupt stream: stop sniffing, the client sees what the app sent

    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


__all__ = ["LeakRule", "LeakScanner", "Sniffer", "load_leak_rules"]

"""The response sample: the first bytes of textual responses, sniffed as they pass.

The application's bytes are never held or changed: a bounded copy (the
``response_limit``, 32 KiB by default) of ``text/*``, JSON and XML responses is
kept as chunks leave, gzip/deflate inflated incrementally within the same
bound (other encodings skipped). When the response ends the engine's
``response.body`` rules run on it once (:mod:`devsecmw.engine.response`; the
packaged ones, ``engine/rules/951-leaks.json``, find SQL error messages, stack
traces and debug pages, directory listings, secrets: ``response_leak``).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from functools import lru_cache
from hashlib import blake2b
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .engine.response import ResponseRules
    from .signals import Signal

TEXTUAL = ("text/", "application/json", "application/xml", "application/xhtml", "application/problem")
#: Clean samples remembered (by digest), and the longest sample remembered.
CLEAN_SAMPLES = 1024
CLEAN_SAMPLE_MAX = 1024


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


class CleanSamples:
    """Short response samples the body rules found nothing in, by a 128-bit digest (a body's
    token or personal data is never kept). An application answers the same short bodies over
    and over (``{"ok": true}``, an empty list, its 404 page) and the rules are a function of
    the sample alone, so a repeated one is not scanned again. Bounded: emptied when full.
    Thread-safe: a set's add, clear and look-up are atomic.
    """

    __slots__ = ("_seen",)

    def __init__(self) -> None:
        self._seen: set[bytes] = set()

    def inspect(
        self, rules: ResponseRules, sample: bytes | bytearray | None, headers: Sequence[tuple[Any, Any]]
    ) -> list[Signal]:
        """``rules.inspect(sample, headers)``, skipping the body rules on a sample known clean."""
        key = None
        if sample and len(sample) <= CLEAN_SAMPLE_MAX:
            key = blake2b(sample, digest_size=16).digest()
            if key in self._seen:
                sample = None  # scanned before: nothing in it (the head rules still run)
        found = rules.inspect(sample, headers)
        if sample and key is not None and not found:  # with a head signal: simply not kept
            if len(self._seen) >= CLEAN_SAMPLES:
                self._seen.clear()
            self._seen.add(key)
        return found

    def __len__(self) -> int:
        return len(self._seen)


__all__ = ["CLEAN_SAMPLES", "CLEAN_SAMPLE_MAX", "TEXTUAL", "CleanSamples", "Sniffer"]

"""Caching: what the engine remembers of inspections that produced no signal.

Three bounded, thread-safe caches per :class:`~devsecmw.engine.Engine` (nothing is cached
once the budget ran out; the rules of one engine never change, and each engine has its own
caches, so an entry can never outlive the rules that judged it):

- head parts: the request line (method, target and whether the request came from
  elsewhere) and the Cookie header, keyed by a 128-bit digest (no session cookie or token
  in a URL is kept), and the header block (names, and values but credentials). A browser
  repeats them request after request: a repeated part is skipped whole, not even parsed;
- header values and the names of headers, parameters and cookies, keyed by
  ``(key, value)``: the User-Agent of a new header block still skips the work;
- small bodies (at most :data:`BODY_PART_MAX` bytes), keyed by a digest of their bytes
  and Content-Type: a client that polls or retries the same POST. (Bodies are far less
  repetitive than heads: see the cold figures of ``benchmarks/engine.py``.)

This module says what the keys are made of; :mod:`.engine` decides when to read and add.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from hashlib import blake2b
from typing import Generic, TypeVar

from ..request import HttpRequest
from .targets import offsite

#: Values cached as clean at most this long (longer ones are rare and not worth keeping).
CACHE_VALUE_MAX = 1024
#: Entries in the clean-header cache (oldest evicted first).
CACHE_SIZE = 4096
#: Head parts cached as clean, and the size above which a header block is not worth keeping.
PART_CACHE_SIZE = 1024
PART_MAX = 8192
#: Bodies cached as clean, and the largest one cached (bytes): 1 MiB at most in all.
BODY_CACHE_SIZE = 256
BODY_PART_MAX = 4096
#: The parts of a head, cached apart: the request line, the Cookie header, the other headers.
LINE, COOKIES, HEADERS = 0, 1, 2
#: Which part each head key's values come from (:data:`HEADERS` for any key not listed).
PART_OF = {"method": LINE, "uri": LINE, "path": LINE, "query": LINE, "query.names": LINE}
PART_OF |= {"query.names.offsite": LINE, "cookies": COOKIES, "cookies.names": COOKIES}
#: Headers whose values are credentials: left out of the header-block key (not kept in
#: memory, and a rotating token would make every block new). Their values are never inspected.
_OPAQUE = frozenset({"cookie", "authorization", "proxy-authorization"})
#: Host header prefixes of an application reached on a loopback name (see ssrf.is_own).
_LOOPBACK_HOSTS = ("localhost", "127.", "[::1]", "0.0.0.0", "ip6-localhost")

K = TypeVar("K", bound=Hashable)


class CleanCache(Generic[K]):
    """Bounded set of keys known to produce no signal; oldest evicted first.

    Reads are lock-free (a dict lookup is atomic); additions take the lock.
    """

    __slots__ = ("_d", "_lock", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        # Ordered: evicting the oldest is O(1). (A plain dict's first key, after many
        # deletions at its front, is found by walking over the deleted slots: 5 µs an add.)
        self._d: OrderedDict[K, None] = OrderedDict()
        self._lock = threading.Lock()

    def __contains__(self, item: object) -> bool:
        return item in self._d

    def add_all(self, items: list[K]) -> None:
        with self._lock:
            d = self._d
            for item in items:
                if len(d) >= self.size:
                    d.popitem(last=False)
                d[item] = None

    def clear(self) -> None:
        with self._lock:
            self._d.clear()

    def __len__(self) -> int:
        return len(self._d)


def digest(*texts: str, body: bytes | bytearray = b"") -> bytes:
    """A 128-bit digest of ``texts`` (and ``body``), what the caches of request lines, Cookie
    headers and bodies keep: no credential, session cookie, token in a URL or password in a
    form stays in memory, and a collision (which would skip an inspection) cannot be made."""
    joined = "\x00".join(texts)
    if joined.count("\x00") == len(texts) - 1:
        h = blake2b(joined.encode("utf-8", "surrogatepass"), digest_size=16)
    else:  # a text holds the separator: lengths spelled out, in a digest of its own kind
        spelled = "\x00".join([f"{len(t)}:{t}" for t in texts])
        h = blake2b(spelled.encode("utf-8", "surrogatepass"), digest_size=16, person=b"lengths")
    if body:
        h.update(b"\x00body:%d:" % len(body))
        h.update(body)
    return h.digest()


def head_keys(request: HttpRequest, away: bool) -> tuple[bytes, bytes | None, tuple[object, ...], int]:
    """The cache keys of a head's parts: the request line, the Cookie header (``None``: none)
    and the header block, and the characters of header values the block holds (a long block
    is not kept). Each is what the part is made of within the caps (a longer head is keyed,
    and judged, by that part); ``away``: the request came from elsewhere (see ``offsite``).
    (A tuple, unpacked at once: a record would cost a warm head a fifth more.)"""
    method, qs = request.method, request.query_string
    host = request.header("host") or ""
    line = digest(
        "line", method, request.inspected_target, qs[: request.limits.query], "1" if away else "0", host
    )
    cookies: list[str] = []
    block: list[object] = ["headers", method, request.http_version]
    size = 0
    for k, v in request.inspected_headers:
        if k in _OPAQUE:
            if k == "cookie":
                cookies.append(v)
            block.append(k)
        else:
            block.append((k, v))
            size += len(v)
    cookiekey = None
    if cookies:
        # Same-site matters to a cookie's URLs only for an app reached on a loopback name.
        loop = host.startswith(_LOOPBACK_HOSTS) or ".localhost" in host
        same = "1" if loop and offsite(request) else "0"
        cookiekey = digest("cookie", host, same, *cookies)
    return line, cookiekey, tuple(block), size


def body_key(request: HttpRequest) -> bytes | None:
    """The cache key of a small body (``None``: too large to cache): its bytes, its type, and
    (for the names of form fields and JSON keys) whether the request came from elsewhere."""
    if len(request.body) > BODY_PART_MAX:
        return None
    away = "1" if offsite(request) else "0"
    return digest(request.content_type, away, request.header("host") or "", body=request.body)


__all__ = [
    "BODY_CACHE_SIZE",
    "BODY_PART_MAX",
    "CACHE_SIZE",
    "CACHE_VALUE_MAX",
    "COOKIES",
    "HEADERS",
    "LINE",
    "PART_CACHE_SIZE",
    "PART_MAX",
    "PART_OF",
    "CleanCache",
    "body_key",
    "digest",
    "head_keys",
]

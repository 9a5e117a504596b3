"""Per-client windows shared by every worker and host, in Redis (``devsecmw[redis]``).

:class:`RedisClientTable` keeps the same sliding windows and thresholds as
:class:`~devsecmw.clients.ClientTable`, so a scanner whose requests a load balancer
or gunicorn spreads over N workers is flagged after as many requests as with one
worker, and every worker then gives the same answer for that client.

Design, for a component in the request path:

- Keys are bounded and expire: ``<prefix>c:<digest>:<window>`` (one hash of the four
  counters per client and window, expiring after two windows) and ``<prefix>f:<digest>``
  (the flag, expiring after ``flag_ttl``). ``<digest>`` is a 16-byte BLAKE2b of the
  client key, so neither a long key nor an address is stored in Redis.
- A clean request from a client that is not flagged costs one ``GET`` (the flag); a
  request to count (attack, 404, auth failure, 5xx) one pipelined round trip more.
  Flag look-ups are cached locally for ``cache_ttl`` seconds, so a client's answer
  can lag another worker's by at most that.
- Fail open: Redis errors and timeouts (short socket timeouts by default) fall back to
  a local :class:`~devsecmw.clients.ClientTable` for ``retry_after`` seconds, counted
  through ``on_error`` (``devsecmw.errors`` with stage ``clients_redis``) and logged
  once. The request never waits on a Redis that is down.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from .clients import COUNTERS, ClientTable, Thresholds, counted

#: Local cache of flag look-ups (entries), bounded like the local table.
_CACHE_MAX = 10_000


def _digest(client: str) -> str:
    return hashlib.blake2b(client.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


class RedisClientTable:
    """The interface of :class:`~devsecmw.clients.ClientTable`, state in Redis."""

    def __init__(
        self,
        url: str,
        window: float = 60.0,
        flag_ttl: float = 300.0,
        thresholds: Thresholds | None = None,
        fallback: ClientTable | None = None,
        *,
        prefix: str = "devsecmw:",
        timeout: float = 0.05,
        retry_after: float = 5.0,
        cache_ttl: float = 0.5,
        on_error: Callable[[str, BaseException], None] | None = None,
        client: Any = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if client is None:
            try:
                import redis
            except ImportError:  # pragma: no cover - exercised by hand, not in CI
                from .config import ConfigError

                raise ConfigError(
                    "devsecmw: client_store is a Redis URL but the redis client is not installed "
                    "(pip install 'devsecmw[redis]')"
                ) from None
            client = redis.Redis.from_url(
                url, socket_timeout=timeout, socket_connect_timeout=timeout, health_check_interval=30
            )
        self._redis = client
        # The local table is the fall-back and the one source of the windows, thresholds and
        # flag reasons (a given ``fallback`` brings its own: they are the same on both paths).
        local = fallback or ClientTable(window=window, flag_ttl=flag_ttl, thresholds=thresholds)
        self.local = local
        self.window, self.flag_ttl, self.thresholds = local.window, local.flag_ttl, local.thresholds
        self._limits, self._reasons = local._limits, local._reasons
        self._prefix = prefix
        self._retry_after = retry_after
        self._cache_ttl = cache_ttl
        self._on_error = on_error
        self._clock = clock
        # Windows are numbered from wall-clock time: every worker and host agrees on them.
        self._wall = wall_clock
        self._down_until = 0.0
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, tuple[float, str | None]] = OrderedDict()
        #: Redis errors seen (each also reported through ``on_error``).
        self.errors = 0

    # -- ClientTable's interface -------------------------------------------------------
    def __len__(self) -> int:
        return len(self.local)

    def flagged(self, client: str | None) -> str | None:
        """The reason ``client`` is flagged now (in any worker), or ``None``."""
        if client is None:
            return None
        now = self._clock()
        if now < self._down_until:
            return self.local.flagged(client)
        hit = self._cache.get(client)
        if hit is not None and hit[0] > now:
            return hit[1]
        try:
            raw = self._redis.get(self._prefix + "f:" + _digest(client))
        except Exception as exc:
            self._failed(exc)
            return self.local.flagged(client)
        reason = raw.decode() if isinstance(raw, bytes) else raw
        self._remember(client, now, reason)
        return reason

    def observe(self, client: str | None, attack: bool, status: int | None) -> str | None:
        """Count one finished request; returns the reason when this request flags the client."""
        if client is None:
            return None
        idx = counted(attack, status)
        if not idx:
            return None  # clean requests are not counted: no round trip
        if self._clock() < self._down_until:
            return self.local.observe(client, attack, status)
        try:
            return self._observe(client, idx)
        except Exception as exc:
            self._failed(exc)
            return self.local.observe(client, attack, status)

    # -- internals ---------------------------------------------------------------------
    def _observe(self, client: str, idx: list[int]) -> str | None:
        now = self._wall()
        win = int(now // self.window)
        key = _digest(client)
        cur = f"{self._prefix}c:{key}:{win}"
        prev = f"{self._prefix}c:{key}:{win - 1}"
        fields = [COUNTERS[i] for i in idx]
        pipe = self._redis.pipeline(transaction=False)
        for name in fields:
            pipe.hincrby(cur, name, 1)
        pipe.expire(cur, int(self.window * 2) + 1)
        pipe.hmget(prev, fields)
        out = pipe.execute()
        counts = out[: len(fields)]
        previous = out[len(fields) + 1]
        weight = 1.0 - (now - win * self.window) / self.window
        for i, count, before in zip(idx, counts, previous, strict=True):
            limit = self._limits[i]
            if not limit:
                continue
            estimate = int(before or 0) * weight + int(count)
            if estimate >= limit:
                reason = self._reasons[i]
                # NX: only the request that flags the client first reports it, in any worker.
                first = self._redis.set(
                    self._prefix + "f:" + key, reason, nx=True, ex=max(1, round(self.flag_ttl))
                )
                self._remember(client, self._clock(), reason)
                return reason if first else None
        return None

    def _remember(self, client: str, now: float, reason: str | None) -> None:
        with self._lock:
            cache = self._cache
            cache[client] = (now + self._cache_ttl, reason)
            cache.move_to_end(client)
            if len(cache) > _CACHE_MAX:
                cache.popitem(last=False)

    def _failed(self, exc: BaseException) -> None:
        self.errors += 1
        self._down_until = self._clock() + self._retry_after
        if self._on_error is not None:
            self._on_error("clients_redis", exc)


__all__ = ["RedisClientTable"]

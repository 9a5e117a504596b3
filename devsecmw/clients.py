"""Per-client intelligence: who the client is, and what it has been doing lately.

- :func:`resolve_client` gives the client address from the connection, and
  from ``X-Forwarded-For``, ``Forwarded`` (RFC 7239) or ``X-Real-IP`` only when
  the connection comes from a configured trusted proxy (networks, or a hop
  count), so a spoofed header can neither frame nor hide a client. The result
  is a key of bounded size: a normalised IP address (IPv6 compressed, zone
  dropped, IPv4-mapped folded to IPv4), never the text a client sent; an
  unparsable forwarded value falls back to the connection's address.
- :func:`behind_untrusted_proxy` tells when that identity is a reverse proxy
  nobody configured as trusted (a loopback or private peer sending forwarding
  headers): every user behind it shares its address, so block mode never
  blocks by client on it (:class:`ProxyNotice` says so once, in the log).
- :class:`ClientTable` counts, per client, attack requests, 404s, auth
  failures and 5xx over a sliding window, flags a client that crosses a
  threshold and keeps it flagged for a while. It is bounded (least recently
  seen clients are evicted past ``max_clients``), O(1) per request, and safe
  under threads and asyncio. State is per process by design: the fleet-wide
  view is the metrics in the APM.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from ._safety import logger
from .config import Network, parse_networks
from .request import HttpRequest

#: Counters per client, in state order.
COUNTERS = ("attack", "http_404", "auth_failure", "http_5xx")
_ATTACK, _NOT_FOUND, _AUTH, _ERROR = range(4)


#: Longest address text parsed: ``"[ffff:...:255.255.255.255]:65535"`` (quoted) is 55 characters.
#: Anything longer is not an address, and never reaches the cache below.
_MAX_ADDRESS_TEXT = 64
#: Longest connection label kept as a key when the server's peer is not an IP address
#: (a unix socket path, a test client's name): the server's text, not the client's.
_MAX_PEER_LABEL = 64


def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if len(value) > _MAX_ADDRESS_TEXT:
        return None
    return _parse_ip(value)


@lru_cache(maxsize=4096)
def _parse_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    v = value.strip().strip('"')
    if v.startswith("["):  # [v6]:port
        v = v[1 : v.find("]")] if "]" in v else v[1:]
    elif v.count(":") == 1:  # v4:port
        v = v.split(":", 1)[0]
    try:
        ip = ipaddress.ip_address(v)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped  # one client, one key, whichever socket family it came in on
        if ip.scope_id is not None:
            return ipaddress.IPv6Address(int(ip))  # the zone is local to the proxy, and unbounded text
    return ip


def _in(addr: str, networks: Sequence[Network]) -> bool:
    ip = _ip(addr)
    if ip is None:
        return False
    return any(ip.version == n.version and ip in n for n in networks)


#: Forwarded addresses read, from the right: the proxies append there, and only a client
#: pads the left, so a long chain costs no more than this.
_MAX_CHAIN = 32


def _forwarded_chain(request: HttpRequest, most: int = _MAX_CHAIN) -> list[str]:
    """The last ``most`` addresses of the proxy chain, client first: from ``Forwarded`` if
    present, else ``X-Forwarded-For``."""
    fwd = request.header_values("forwarded")
    if fwd:
        chain = []
        for element in ",".join(fwd).rsplit(",", most)[-most:]:
            for pair in element.split(";"):
                k, _, v = pair.strip().partition("=")
                if k.strip().lower() == "for":
                    chain.append(v.strip().strip('"'))
        return chain
    joined = ",".join(request.header_values("x-forwarded-for"))
    return [p.strip() for p in joined.rsplit(",", most)[-most:] if p.strip()]


def _canonical(value: str) -> str | None:
    """The normalised text of the address ``value`` holds, or ``None``."""
    return None if len(value) > _MAX_ADDRESS_TEXT else _key(value)


@lru_cache(maxsize=4096)
def _key(value: str) -> str | None:
    ip = _parse_ip(value)
    return None if ip is None else str(ip)  # str() of an address is not cached by ipaddress


def client_key(peer: str | None) -> str | None:
    """The connection's address as a client key: normalised when it is an IP address, else the
    server's label for it (a unix socket, a test client's name) cut to a bounded length."""
    if not peer:
        return None
    return _canonical(peer) or peer[:_MAX_PEER_LABEL]


def resolve_client(request: HttpRequest, trusted: Sequence[Network] = (), hops: int = 0) -> str | None:
    """The client address, trusting forwarding headers only from trusted proxies.

    With ``trusted`` networks: when the peer is a trusted proxy, walk the chain from
    the right, skipping trusted proxies; the first untrusted address is the client.
    With ``hops`` (N proxies in front of every request): the N-th address from the right.
    Otherwise the connection's peer address, whatever the headers say. Always a
    normalised address (:func:`client_key`): a forwarded value that is not an IP
    address gives the peer's.
    """
    peer = client_key(request.client_address)
    if not trusted and hops <= 0:
        return peer
    if trusted and (peer is None or not _in(peer, trusted)):
        return peer
    chain = _forwarded_chain(request, max(_MAX_CHAIN, hops))
    if not chain:
        real = request.header("x-real-ip")
        if real:
            return _canonical(real) or peer
        return peer
    if hops > 0 and not trusted:
        candidate = chain[-hops] if len(chain) >= hops else chain[0]
        return _canonical(candidate) or peer
    for addr in reversed(chain):
        if not _in(addr, trusted):
            return _canonical(addr) or peer
    return _canonical(chain[0]) or peer


#: Where reverse proxies and load balancers live: loopback, private (RFC 1918, RFC 4193),
#: link-local and shared address space (RFC 6598, cloud and Kubernetes load balancers).
PROXY_NETWORKS: tuple[Network, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "127.0.0.0/8",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "169.254.0.0/16",
        "100.64.0.0/10",
        "::1/128",
        "fc00::/7",
        "fe80::/10",
    )
)
#: Headers a reverse proxy adds to say who its client was.
FORWARDING_HEADERS = frozenset({"x-forwarded-for", "forwarded", "x-real-ip"})


@lru_cache(maxsize=1024)
def _proxy_address(client: str) -> bool:
    return _in(client, PROXY_NETWORKS)


def behind_untrusted_proxy(request: HttpRequest, client: str | None) -> bool:
    """Whether the client identity ``client`` (from :func:`resolve_client`) is a reverse proxy
    that is not configured as trusted: the connection's own address, a loopback or private
    one, on a request that carries forwarding headers. Every user behind such a proxy has
    that address, so it must never be blocked by client; only requests on their own signals.
    """
    if client is None or not _proxy_address(client):
        return False
    if client != client_key(request.peer_address):
        return False  # resolved through a configured trusted proxy: a real client's address
    header = request.header  # the header map is built once per request, and shared
    return (
        header("x-forwarded-for") is not None
        or header("forwarded") is not None
        or header("x-real-ip") is not None
    )


class ProxyNotice:
    """The warning that the client identity is an untrusted proxy: logged once per middleware."""

    __slots__ = ("_lock", "logged")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.logged = False

    def __call__(self, proxy: str, configured: bool) -> None:
        if self.logged:  # every later request: one attribute read
            return
        with self._lock:
            if self.logged:
                return
            self.logged = True
        logger.warning(
            "devsecmw: requests from %s carry X-Forwarded-For, Forwarded or X-Real-IP, but %s is "
            "not %s, so every client behind it shares its address. devsecmw will not block by "
            "client on that address (only single requests, on their own signals); per-client "
            "counts and client_flagged lump its users together. Set the trusted_proxies option "
            "(DEVSECMW_TRUSTED_PROXIES) to the proxy's address or network, e.g. "
            "trusted_proxies=[%r], or trusted_hops to the number of proxies in front of the app.",
            proxy,
            proxy,
            "in trusted_proxies" if configured else "a trusted proxy (trusted_proxies is not set)",
            proxy,
        )


def counted(attack: bool, status: int | None) -> list[int]:
    """The counters (indexes into :data:`COUNTERS`) one finished request adds to."""
    idx = []
    if attack:
        idx.append(_ATTACK)
    if status is not None and (status == 404 or status == 401 or status == 403 or status >= 500):
        idx.append(_NOT_FOUND if status == 404 else _ERROR if status >= 500 else _AUTH)
    return idx


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Counts over one window that flag a client (0 switches a counter off)."""

    attack: int = 10
    http_404: int = 50
    auth_failure: int = 20
    http_5xx: int = 20

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.attack, self.http_404, self.auth_failure, self.http_5xx)


class ClientTable:
    """Bounded per-client sliding-window counters.

    The window is a sliding-window counter (the previous and the current fixed
    window, the previous one weighted by how much of it still overlaps): two
    integers per counter, exact enough for thresholds, constant memory.
    State per client is one list ``[window, cur x4, prev x4, flagged_until, reason]``.
    """

    def __init__(
        self,
        max_clients: int = 100_000,
        window: float = 60.0,
        flag_ttl: float = 300.0,
        thresholds: Thresholds | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_clients < 1:
            raise ValueError("max_clients must be >= 1")
        if window <= 0 or flag_ttl < 0:
            raise ValueError("window must be > 0 and flag_ttl >= 0")
        self.max_clients = max_clients
        self.window = float(window)
        self.flag_ttl = float(flag_ttl)
        self.thresholds = thresholds or Thresholds()
        self._limits = self.thresholds.as_tuple()
        self._reasons = tuple(
            f"{name} >= {limit} in {self.window:g}s"
            for name, limit in zip(COUNTERS, self._limits, strict=True)
        )
        self._clock = clock
        self._lock = threading.Lock()
        self._table: OrderedDict[str, list[object]] = OrderedDict()
        self._last_win = -1
        #: When each flagged client's ``client_flagged`` is next reported (per process, whichever
        #: table counts: this one, or Redis with this one as its fallback).
        self.reports = FlagReports(window, max_clients, clock)

    def __len__(self) -> int:
        return len(self._table)

    def __contains__(self, client: str) -> bool:
        return client in self._table

    def flagged(self, client: str | None) -> str | None:
        """The reason ``client`` is flagged now, or ``None``."""
        if client is None or client not in self._table:  # one lock-free lookup for most clients
            return None
        now = self._clock()
        with self._lock:
            state = self._table.get(client)
            if state is None:
                return None
            until = state[9]
            if until and now < until:  # type: ignore[operator]
                return state[10]  # type: ignore[return-value]
            return None

    def observe(self, client: str | None, attack: bool, status: int | None) -> str | None:
        """Count one finished request; returns the reason when this request flags the client."""
        if client is None:
            return None
        idx = counted(attack, status)
        if not idx and client not in self._table:
            return None  # a clean request from a client with no state: no clock, no lock, no memory
        now = self._clock()
        win = int(now // self.window)
        last = self._last_win
        if win == last:
            win = last  # one int object per window, not one per client (28 bytes x 100,000)
        else:
            self._last_win = win
        with self._lock:
            table = self._table
            state = table.get(client)
            if state is None:
                if not idx:
                    return None  # clean clients cost no memory
                state = [win, 0, 0, 0, 0, 0, 0, 0, 0, 0, None]
                table[client] = state
                if len(table) > self.max_clients:
                    table.popitem(last=False)
            else:
                table.move_to_end(client)
                self._roll(state, win)
            if not idx:
                return None
            until = state[9]
            already = bool(until and now < until)  # type: ignore[operator]
            weight = 1.0 - (now - win * self.window) / self.window
            for i in idx:
                state[1 + i] = state[1 + i] + 1  # type: ignore[operator]
                limit = self._limits[i]
                if not limit:
                    continue
                estimate = state[5 + i] * weight + state[1 + i]  # type: ignore[operator]
                if estimate >= limit:
                    state[9] = now + self.flag_ttl
                    state[10] = self._reasons[i]
                    if not already:
                        return self._reasons[i]
            return None

    @staticmethod
    def _roll(state: list[object], win: int) -> None:
        last = state[0]
        if last == win:
            return
        if last == win - 1:
            state[5:9] = state[1:5]
        else:
            state[5:9] = (0, 0, 0, 0)
        state[1:5] = (0, 0, 0, 0)
        state[0] = win


#: Flagged clients whose last ``client_flagged`` report is remembered (see :class:`FlagReports`).
MAX_REPORTED = 16_384


class FlagReports:
    """When a flagged client's ``client_flagged`` signal is due again: once per ``window``.

    The signal says that a client crossed a threshold (SPEC). In monitor mode it is emitted on
    the request that crosses it, then at most once per window while the client stays flagged,
    so a scanner's 10,000 requests make a handful of span events and ``devsecmw.signals``
    counts, not 10,000; each of its other requests carries the flag as the span attribute
    ``devsecmw.client.flagged`` (and ``devsecmw.would_block``). Block mode refuses a flagged
    client's requests, and each refusal carries the signal: it says why. Only flagged clients have
    an entry, at most :data:`MAX_REPORTED` (about 100 bytes each): past it the least recently
    reported is forgotten, and reported once more on its next request (an extra event, never a
    missed one).
    """

    __slots__ = ("_clock", "_lock", "_next", "max_clients", "window")

    def __init__(
        self, window: float = 60.0, max_clients: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.window = float(window)
        self.max_clients = max(1, min(max_clients, MAX_REPORTED))
        self._clock = clock
        self._lock = threading.Lock()
        self._next: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._next)

    def due(self, client: str | None) -> bool:
        """Whether ``client``'s flag is to be reported on this request (and if so, noted as
        reported now)."""
        if client is None:
            return True
        now = self._clock()
        with self._lock:
            when = self._next.get(client)
            if when is not None and now < when:
                return False
            self._note(client, now)
            return True

    def mark(self, client: str | None) -> bool:
        """``client``'s flag was reported now (the request that crossed the threshold). True."""
        if client is not None:
            now = self._clock()
            with self._lock:
                self._note(client, now)
        return True

    def _note(self, client: str, now: float) -> None:
        table = self._next
        table[client] = now + self.window
        table.move_to_end(client)
        if len(table) > self.max_clients:
            table.popitem(last=False)


__all__ = [
    "COUNTERS",
    "FORWARDING_HEADERS",
    "MAX_REPORTED",
    "PROXY_NETWORKS",
    "ClientTable",
    "FlagReports",
    "ProxyNotice",
    "Thresholds",
    "behind_untrusted_proxy",
    "client_key",
    "parse_networks",
    "resolve_client",
]

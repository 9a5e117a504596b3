"""Client identity behind proxies, and the bounded per-client sliding windows."""

from __future__ import annotations

import threading

import pytest

from devsecmw.clients import ClientTable, Thresholds, parse_networks, resolve_client
from devsecmw.config import ConfigError
from devsecmw.request import HttpRequest


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def req(peer: str | None, *headers: tuple[str, str]) -> HttpRequest:
    return HttpRequest("GET", "/", "/", headers=list(headers), client_address=peer)


# ---------------------------------------------------------------- identity
def test_forwarded_for_from_untrusted_peer_is_ignored() -> None:
    trusted = parse_networks(["10.0.0.0/8"], "trusted_proxies")
    r = req("203.0.113.9", ("x-forwarded-for", "1.2.3.4"))
    assert resolve_client(r, trusted) == "203.0.113.9"
    # Without any trusted proxy configured the header is never believed either.
    assert resolve_client(r) == "203.0.113.9"


def test_forwarded_for_from_trusted_proxy_is_used_skipping_trusted_hops() -> None:
    trusted = parse_networks(["10.0.0.0/8", "192.168.1.1"], "trusted_proxies")
    r = req("10.0.0.2", ("x-forwarded-for", "6.6.6.6, 198.51.100.7, 192.168.1.1"))
    # The spoofable leftmost entry is not taken: the first untrusted from the right is.
    assert resolve_client(r, trusted) == "198.51.100.7"


def test_rfc7239_forwarded_header() -> None:
    trusted = parse_networks(["10.0.0.0/8"], "trusted_proxies")
    r = req(
        "10.1.1.1", ("forwarded", 'for=192.0.2.60;proto=http;by=203.0.113.43, for="[2001:db8:cafe::17]:4711"')
    )
    assert resolve_client(r, trusted) == "2001:db8:cafe::17"


def test_x_real_ip_only_from_trusted_proxy() -> None:
    trusted = parse_networks(["127.0.0.1"], "trusted_proxies")
    assert resolve_client(req("127.0.0.1", ("x-real-ip", "198.51.100.1")), trusted) == "198.51.100.1"
    assert resolve_client(req("8.8.8.8", ("x-real-ip", "198.51.100.1")), trusted) == "8.8.8.8"


def test_hop_count() -> None:
    r = req("10.0.0.2", ("x-forwarded-for", "6.6.6.6, 198.51.100.7"))
    assert resolve_client(r, hops=1) == "198.51.100.7"
    assert resolve_client(r, hops=2) == "6.6.6.6"
    assert resolve_client(r, hops=5) == "6.6.6.6"


def test_garbage_forwarded_values_fall_back_to_peer() -> None:
    trusted = parse_networks(["10.0.0.0/8"], "trusted_proxies")
    assert resolve_client(req("10.0.0.2", ("x-forwarded-for", "not-an-ip")), trusted) == "10.0.0.2"


def test_bad_network_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"invalid trusted_proxies entry 'ten\.0\.0\.0/8'"):
        parse_networks(["ten.0.0.0/8"], "trusted_proxies")


# ---------------------------------------------------------------- windows
def test_attack_threshold_flags_and_expires() -> None:
    clock = Clock()
    table = ClientTable(window=60, flag_ttl=300, thresholds=Thresholds(attack=3), clock=clock)
    assert table.observe("a", attack=True, status=200) is None
    assert table.observe("a", attack=True, status=200) is None
    reason = table.observe("a", attack=True, status=200)
    assert reason == "attack >= 3 in 60s"
    assert table.flagged("a") == reason
    assert table.flagged("b") is None
    # Further attacks while flagged do not re-announce the flag.
    assert table.observe("a", attack=True, status=200) is None
    clock.t += 299
    assert table.flagged("a") == reason
    clock.t += 2
    assert table.flagged("a") is None


def test_window_slides() -> None:
    clock = Clock(600.0)  # start of a window
    table = ClientTable(window=60, thresholds=Thresholds(http_404=10), clock=clock)
    for _ in range(9):
        table.observe("s", attack=False, status=404)
    clock.t += 120  # two windows later: the old counts no longer weigh
    assert table.observe("s", attack=False, status=404) is None
    assert table.flagged("s") is None
    for _ in range(8):
        table.observe("s", attack=False, status=404)
    clock.t += 60  # next window: previous 9 weigh fully at its start
    assert table.observe("s", attack=False, status=404) == "http_404 >= 10 in 60s"


@pytest.mark.parametrize(
    ("status", "counter"), [(401, "auth_failure"), (403, "auth_failure"), (502, "http_5xx")]
)
def test_status_counters(status: int, counter: str) -> None:
    table = ClientTable(thresholds=Thresholds(auth_failure=2, http_5xx=2), clock=Clock())
    table.observe("c", attack=False, status=status)
    assert table.observe("c", attack=False, status=status) == f"{counter} >= 2 in 60s"


def test_zero_threshold_disables_a_counter() -> None:
    table = ClientTable(thresholds=Thresholds(attack=0), clock=Clock())
    for _ in range(100):
        assert table.observe("x", attack=True, status=200) is None


def test_clean_clients_take_no_memory() -> None:
    table = ClientTable(clock=Clock())
    for i in range(100):
        table.observe(f"10.0.0.{i}", attack=False, status=200)
    assert len(table) == 0


def test_table_is_bounded_and_evicts_least_recently_seen() -> None:
    table = ClientTable(max_clients=1000, clock=Clock())
    table.observe("first", attack=True, status=200)
    table.observe("keep", attack=True, status=200)
    for i in range(999):
        table.observe(f"c{i}", attack=True, status=200)
        if i == 500:
            table.observe("keep", attack=True, status=200)  # seen again: moves to the back
    assert len(table) == 1000
    assert "first" not in table
    assert "keep" in table


def test_fill_to_maximum() -> None:
    table = ClientTable(max_clients=100_000, clock=Clock())
    for i in range(120_000):
        table.observe(f"198.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}", attack=True, status=404)
    assert len(table) == 100_000


def test_memory_at_the_maximum_stays_under_32_mib() -> None:
    # The documented bound: 100,000 tracked clients (their address strings included) in at
    # most 32 MiB. Memory, unlike time, is deterministic: tracemalloc counts every block.
    import gc
    import tracemalloc

    gc.collect()
    tracemalloc.start()
    try:
        table = ClientTable(max_clients=100_000, clock=Clock())
        for i in range(110_000):
            table.observe(f"2001:db8::{i:x}", attack=True, status=404)
        used, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(table) == 100_000
    assert used <= 32 * 1024 * 1024, f"{used / 2**20:.1f} MiB"


def test_threads_count_exactly() -> None:
    table = ClientTable(thresholds=Thresholds(attack=10_000_000), clock=Clock())
    n_threads, per_thread = 8, 2000

    def work() -> None:
        for _ in range(per_thread):
            table.observe("shared", attack=True, status=200)

    threads = [threading.Thread(target=work) for _ in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    state = table._table["shared"]
    assert state[1] == n_threads * per_thread


class CountingClock(Clock):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def __call__(self) -> float:
        self.calls += 1
        return self.t


def test_clean_requests_from_unknown_clients_do_no_table_work() -> None:
    """No clock read (nor lock) for a clean request, or a flag check, of a client with no state."""
    clock = CountingClock()
    table = ClientTable(clock=clock)
    for status in (200, 204, 301, 302, 400, 418, None):
        assert table.observe("10.0.0.1", attack=False, status=status) is None
        assert table.flagged("10.0.0.1") is None
    assert clock.calls == 0 and len(table) == 0
    table.observe("10.0.0.1", attack=False, status=404)  # something to count: now it has state
    assert clock.calls == 1 and "10.0.0.1" in table


def test_clean_requests_still_refresh_a_known_client() -> None:
    """A client with state seen again, even cleanly, is recently seen: not the one evicted."""
    table = ClientTable(max_clients=3, clock=Clock())
    for name in ("old", "keep", "mid"):
        table.observe(name, attack=True, status=200)
    table.observe("keep", attack=False, status=200)
    table.observe("new", attack=True, status=200)
    assert "old" not in table and "keep" in table


# ---------------------------------------------------------------- keys: normalised, bounded
JUNK = "x" * 2048


@pytest.mark.parametrize(
    ("forwarded", "key"),
    [
        ("2001:DB8:0:0::1", "2001:db8::1"),  # one spelling per address
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("::ffff:198.51.100.7", "198.51.100.7"),  # IPv4-mapped folded to IPv4
        ("fe80::1%eth0", "fe80::1"),  # the zone is the proxy's, not the client's
        ("fe80::1%" + JUNK, "10.0.0.2"),  # ...and longer than any address: not parsed at all
        ("198.51.100.7:5555", "198.51.100.7"),
        (JUNK, "10.0.0.2"),  # not an address: the peer's
        ("198.51.100.7" + JUNK, "10.0.0.2"),
        ("001.2.3.4", "10.0.0.2"),
    ],
)
def test_client_keys_are_normalised_addresses(forwarded: str, key: str) -> None:
    for header in (
        ("x-forwarded-for", forwarded),
        ("x-real-ip", forwarded),
        ("forwarded", f'for="{forwarded}"'),
    ):
        assert resolve_client(req("10.0.0.2", header), hops=1) == key, header


def test_the_peer_is_normalised_too() -> None:
    assert resolve_client(req("::FFFF:10.0.0.2")) == "10.0.0.2"
    assert resolve_client(req("2001:DB8::0:1")) == "2001:db8::1"
    # A server's non-IP label for the connection (unix socket, test client) is kept, bounded.
    assert resolve_client(req("testclient")) == "testclient"
    assert len(resolve_client(req("/run/" + JUNK)) or "") == 64
    assert resolve_client(req(None)) is None


def test_100k_clients_sending_2_kib_junk_forwarded_values_stay_under_32_mib() -> None:
    # Reproducer: with an unvalidated forwarded value the key was the client's text, so 2 KiB
    # keys made the table 222 MiB at 100,000 clients. Keys are addresses now, whatever is sent.
    import gc
    import tracemalloc

    gc.collect()
    tracemalloc.start()
    try:
        table = ClientTable(max_clients=100_000, clock=Clock())
        shapes = (f"fe80::1%{JUNK}", f"198.51.100.7{JUNK}", JUNK)  # a zone, a suffix, no address
        for i in range(110_000):
            peer = f"198.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
            key = resolve_client(req(peer, ("x-forwarded-for", shapes[i % 3])), hops=1)
            assert key == peer
            table.observe(key, attack=True, status=404)
        used, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(table) == 100_000
    assert used <= 32 * 1024 * 1024, f"{used / 2**20:.1f} MiB"


def test_behind_untrusted_proxy() -> None:
    from devsecmw.clients import behind_untrusted_proxy

    def shared(peer: str, *headers: tuple[str, str], trusted: tuple[str, ...] = ()) -> bool:
        r = req(peer, *headers)
        r.peer_address = peer
        return behind_untrusted_proxy(r, resolve_client(r, parse_networks(trusted, "trusted_proxies")))

    xff = ("x-forwarded-for", "198.51.100.7")
    assert shared("10.0.0.2", xff)
    assert shared("127.0.0.1", ("forwarded", "for=198.51.100.7"))
    assert shared("::1", ("x-real-ip", "198.51.100.7"))
    assert shared("10.0.0.2", xff, trusted=("192.168.0.0/16",))  # a proxy, but not the trusted one
    assert not shared("10.0.0.2")  # no forwarding header: a direct internal client
    assert not shared("198.51.100.9", xff)  # a public peer is its own client (the header is spoofable)
    assert not shared("10.0.0.2", xff, trusted=("10.0.0.0/8",))  # resolved to the forwarded client


def test_a_padded_forwarded_chain_is_read_from_the_right_only() -> None:
    # A client can prepend any number of addresses; the proxies' end of the chain decides.
    trusted = parse_networks(["10.0.0.0/8"], "trusted_proxies")
    padding = ", ".join(f"192.0.2.{i % 250}" for i in range(100_000))
    r = req("10.0.0.2", ("x-forwarded-for", f"{padding}, 198.51.100.7, 10.0.0.9"))
    assert resolve_client(r, trusted) == "198.51.100.7"
    assert resolve_client(r, hops=2) == "198.51.100.7"
    fwd = req("10.0.0.2", ("forwarded", ", ".join(["for=192.0.2.1"] * 100_000 + ["for=198.51.100.8"])))
    assert resolve_client(fwd, trusted) == "198.51.100.8"
    from devsecmw.clients import _forwarded_chain

    assert len(_forwarded_chain(r)) == 32

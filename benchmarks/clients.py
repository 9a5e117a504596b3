"""Cost of the per-client table: time per request at 10, 10,000 and 100,000 tracked clients,
and memory at the maximum.

    python benchmarks/clients.py [--rounds 5]

The table is filled to the given size first; then requests from already-tracked clients
(attack and 404 observations, and the flag check a request makes) are timed. The figure
should stay flat as the table grows: each request is O(1).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
import tracemalloc

from devsecmw.clients import ClientTable


def addr(i: int) -> str:
    return f"198.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"


def fill(table: ClientTable, n: int) -> list[str]:
    clients = [addr(i) for i in range(n)]
    for c in clients:
        table.observe(c, attack=True, status=404)
    return clients


def per_request_us(n_clients: int, requests: int, rounds: int) -> float:
    table = ClientTable(max_clients=max(n_clients, 1))
    clients = fill(table, n_clients)
    k = len(clients)
    results = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for i in range(requests):
            c = clients[(i * 7919) % k]
            table.flagged(c)
            table.observe(c, attack=(i % 3 == 0), status=404 if i % 5 == 0 else 200)
        results.append((time.perf_counter() - t0) / requests * 1e6)
    return statistics.median(results)


def memory_at_max(max_clients: int) -> float:
    gc.collect()
    tracemalloc.start()
    table = ClientTable(max_clients=max_clients)
    fill(table, max_clients)
    # Every client seen again in a later window: the state that stays resident.
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(table) == max_clients
    return current / (1024 * 1024)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--requests", type=int, default=50_000)
    args = ap.parse_args()
    print(f"{'tracked clients':>16} {'us/request':>11}")
    for n in (10, 10_000, 100_000):
        print(f"{n:16,} {per_request_us(n, args.requests, args.rounds):11.2f}")
    mib = memory_at_max(100_000)
    print(f"\nmemory at max_clients=100,000: {mib:.1f} MiB ({mib * 1024 * 1024 / 100_000:.0f} bytes/client)")


if __name__ == "__main__":
    main()

"""Per-client windows shared in Redis: a real ``redis-server`` on 127.0.0.1.

The server is started by the test (free port, no persistence, stopped by PID) and the
tests skip with a reason where Debian's ``redis-server`` or the ``redis`` client is not
installed. What they show:

- two tables on one Redis (two workers) flag a client after exactly as many requests as
  one local table does, whichever table each request lands on, and then both agree;
- keys are bounded (a digest, not the client key) and expire;
- Redis down or unreachable: the local table is used, the error is counted, and the
  request does not wait on Redis again until ``retry_after`` has passed;
- end to end: a scanner spread over 4 gunicorn workers is flagged and then blocked by
  every worker.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
from servers import free_port
from servers import gunicorn as serve_gunicorn

from devsecmw.clients import ClientTable, Thresholds
from devsecmw.config import Config, ConfigError

redis = pytest.importorskip("redis", reason="the redis client is not installed (devsecmw[redis])")
REDIS_SERVER = shutil.which("redis-server")
needs_server = pytest.mark.skipif(
    REDIS_SERVER is None, reason="redis-server is not installed (Debian: apt-get install redis-server)"
)

from devsecmw.clients_redis import RedisClientTable  # noqa: E402


@contextmanager
def redis_server() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A redis-server of its own on 127.0.0.1 (free port, no persistence): its URL and process,
    stopped by PID at the end (gracefully first)."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", tmp, "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        url = f"redis://127.0.0.1:{port}/0"
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    redis.Redis.from_url(url, socket_timeout=0.5).ping()
                    break
                except redis.RedisError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        pytest.fail("redis-server did not start")
                    time.sleep(0.05)
            yield url, proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server() as (url, _):
        yield url


@pytest.fixture
def fresh(redis_url: str) -> str:
    redis.Redis.from_url(redis_url).flushdb()
    return redis_url


def _table(url: str, **kw: object) -> RedisClientTable:
    kw.setdefault("thresholds", Thresholds(attack=5, http_404=4))
    kw.setdefault("cache_ttl", 0.0)
    return RedisClientTable(url, window=60, flag_ttl=120, **kw)  # type: ignore[arg-type]


@needs_server
def test_two_workers_flag_after_as_many_requests_as_one(fresh: str) -> None:
    one = ClientTable(window=60, flag_ttl=120, thresholds=Thresholds(attack=5, http_404=4))
    a, b = _table(fresh), _table(fresh)
    for n in range(1, 6):
        worker = a if n % 2 else b
        got = worker.observe("203.0.113.9", attack=True, status=200)
        want = one.observe("203.0.113.9", attack=True, status=200)
        assert (got is None) == (want is None), n
    assert want == "attack >= 5 in 60s"
    # Every worker now gives the same answer, including one that never saw the client.
    c = _table(fresh)
    assert a.flagged("203.0.113.9") == b.flagged("203.0.113.9") == c.flagged("203.0.113.9") == want
    assert a.flagged("203.0.113.10") is None


@needs_server
def test_the_flag_is_reported_once_across_workers(fresh: str) -> None:
    a, b = _table(fresh), _table(fresh)
    reports = [(a if n % 2 else b).observe("198.51.100.1", attack=False, status=404) for n in range(1, 9)]
    assert [r for r in reports if r] == ["http_404 >= 4 in 60s"]
    assert reports.index("http_404 >= 4 in 60s") == 3  # the fourth 404


@needs_server
def test_clean_requests_cost_no_round_trip_and_no_key(fresh: str) -> None:
    a = _table(fresh)
    for _ in range(20):
        assert a.observe("192.0.2.7", attack=False, status=200) is None
    assert redis.Redis.from_url(fresh).dbsize() == 0


@needs_server
def test_keys_are_bounded_digests_that_expire(fresh: str) -> None:
    a = _table(fresh)
    long_key = "2001:db8::1" + "x" * 2048  # whatever reaches the table, Redis stores a digest
    for _ in range(5):
        a.observe(long_key, attack=True, status=None)
    r = redis.Redis.from_url(fresh)
    keys = [k.decode() for k in r.keys("*")]
    assert len(keys) == 2  # this window's counters and the flag
    for key in keys:
        assert len(key) < 64 and "2001" not in key and "xxx" not in key
        ttl = r.ttl(key)
        assert 0 < ttl <= 121, (key, ttl)


@needs_server
def test_flag_lookups_are_cached_briefly(fresh: str) -> None:
    now = [100.0]
    a = _table(fresh, cache_ttl=1.0, clock=lambda: now[0])
    b = _table(fresh)
    assert a.flagged("192.0.2.50") is None
    for _ in range(5):
        b.observe("192.0.2.50", attack=True, status=None)
    assert a.flagged("192.0.2.50") is None  # the cached answer, for at most cache_ttl
    now[0] += 1.5
    assert a.flagged("192.0.2.50") == "attack >= 5 in 60s"


def test_unreachable_redis_falls_back_to_the_local_table() -> None:
    now = [0.0]
    errors: list[tuple[str, BaseException]] = []
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    a = _table(url, clock=lambda: now[0], retry_after=5.0, on_error=lambda s, e: errors.append((s, e)))
    reasons = [a.observe("192.0.2.1", attack=True, status=None) for _ in range(5)]
    assert reasons[-1] == "attack >= 5 in 60s" and not any(reasons[:-1])
    assert a.flagged("192.0.2.1") == "attack >= 5 in 60s"
    # One failed attempt, then no more until retry_after has passed.
    assert a.errors == 1 and [s for s, _ in errors] == ["clients_redis"]
    assert isinstance(errors[0][1], redis.RedisError)
    now[0] += 6
    a.flagged("192.0.2.2")
    assert a.errors == 2


@needs_server
def test_redis_going_down_mid_way_keeps_counting_locally() -> None:
    with redis_server() as (url, proc):  # a server of its own, killed half-way
        a = _table(url)
        assert a.observe("192.0.2.3", attack=True, status=None) is None
        proc.kill()
        proc.wait()
        reasons = [a.observe("192.0.2.3", attack=True, status=None) for _ in range(5)]
    assert a.errors >= 1
    assert reasons[-1] == "attack >= 5 in 60s"  # the local table counts from here on


def test_client_store_is_validated_at_start_up() -> None:
    with pytest.raises(ConfigError, match="client_store"):
        Config.from_options({"client_store": "http://127.0.0.1:6379"})
    assert Config.from_options({"client_store": "redis://127.0.0.1:6379/0"}).client_store
    assert Config.from_options({}, environ={"DEVSECMW_CLIENT_STORE": "unix:///run/redis.sock"}).client_store


def test_the_middleware_uses_redis_when_configured() -> None:
    from devsecmw.core import Runtime

    rt = Runtime.from_options(client_store=f"redis://127.0.0.1:{free_port()}/0")
    assert isinstance(rt.clients, RedisClientTable)
    assert isinstance(Runtime.from_options().clients, ClientTable)


APP = textwrap.dedent(
    """
    import os
    import time

    from devsecmw.wsgi import SecurityMiddleware


    def app(environ, start_response):
        time.sleep(0.05)  # long enough for concurrent requests to land on different workers
        body = str(os.getpid()).encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]


    # block_types: the SQL injections below are counted as attacks but answered by the app
    # (which says which worker it is); only the flagged client is blocked.
    # A patient socket timeout (the URL's options win): a loaded CI machine must not turn a
    # slow round trip into a fall-back to the worker's own table, which this test would miss.
    store = os.environ["E2E_REDIS"] + "?socket_timeout=2&socket_connect_timeout=2"
    application = SecurityMiddleware(
        app, mode="block", block_types=["xss"], client_store=store,
        flag_attacks=6, block_flagged=True,
    )
    """
)


def _get(port: int, target: str) -> tuple[int, bytes]:
    """One request on its own connection (so the requests spread over the workers)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


@needs_server
@pytest.mark.e2e
@pytest.mark.skipif(os.name != "posix", reason="gunicorn runs on POSIX only")
def test_a_scanner_spread_over_four_gunicorn_workers(fresh: str, tmp_path: Path) -> None:
    pytest.importorskip("gunicorn")
    (tmp_path / "redis_app.py").write_text(APP)
    env = {"E2E_REDIS": fresh, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.getcwd()])}
    with serve_gunicorn("redis_app:application", tmp_path, env, "/", workers=4) as base:
        port = int(base.rsplit(":", 1)[1])

        def batch(target: str, n: int) -> list[tuple[int, bytes]]:
            with ThreadPoolExecutor(n) as pool:
                return list(pool.map(lambda _: _get(port, target), range(n)))

        # Workers finish booting at their own pace: wait (bounded) until several answer.
        deadline = time.monotonic() + 30
        while len({pid for _, pid in batch("/", 8)}) < 3:
            assert time.monotonic() < deadline, "fewer than 3 gunicorn workers answered"
        attack = "/?id=1%27%20UNION%20SELECT%20password%20FROM%20users--"
        first = batch(attack, 5)  # below the threshold of 6, spread over the workers
        assert {status for status, _ in first} == {200}
        assert len({pid for _, pid in first}) >= 2, "gunicorn served every attack from one worker"
        assert {status for status, _ in batch("/", 8)} == {200}  # not flagged yet, in any worker
        assert _get(port, attack)[0] == 200  # the sixth attack flags the client, as with one worker
        time.sleep(0.6)  # flag caches live at most half a second
        # Every worker now agrees.
        assert {status for status, _ in batch("/", 12)} == {403}

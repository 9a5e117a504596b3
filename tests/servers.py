"""Real servers (gunicorn, uvicorn) on 127.0.0.1 for the end-to-end tests: started on free ports,
probed until they answer, and always stopped by PID (gracefully first, so the worker finishes the
request it is serving)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

STARTUP_TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def gunicorn(app: str, cwd: Path, env: dict[str, str], probe: str, workers: int = 1) -> Iterator[str]:
    """Serve ``app`` (``module:attribute``, importable from ``cwd``) with ``workers`` sync workers;
    yields the base URL once a GET of ``probe`` gets any answer."""
    with gunicorn_ports(app, cwd, env, probe, workers=workers) as bases:
        yield bases[0]


@contextmanager
def gunicorn_ports(
    app: str,
    cwd: Path,
    env: dict[str, str],
    probe: str,
    *,
    ports: int = 1,
    workers: int = 1,
    worker_class: str = "sync",
    args: Sequence[str] = (),
    ports_env: str | None = None,
) -> Iterator[list[str]]:
    """Serve ``app`` with ``workers`` workers of ``worker_class`` listening on ``ports`` free ports (the
    app can tell them apart by its socket; ``ports_env`` names an environment variable that
    gets them, comma-separated); yields their base URLs once each answers ``probe``."""
    numbers = [free_port() for _ in range(ports)]
    if ports_env:
        env = {**env, ports_env: ",".join(map(str, numbers))}
    binds = [arg for n in numbers for arg in ("--bind", f"127.0.0.1:{n}")]
    cmd = [
        sys.executable, "-m", "gunicorn", *binds, "--workers", str(workers),
        "--worker-class", worker_class, "--timeout", "30", "--graceful-timeout", "5",
        "--log-level", "warning", *args, app,
    ]  # fmt: skip
    log = cwd / "gunicorn.log"  # a file, not a pipe: a pipe nobody reads stalls a chatty server
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)
    with _stopped(proc):
        yield _ready(proc, "gunicorn", log, [f"http://127.0.0.1:{n}" for n in numbers], probe)


_UVICORN_MAIN = """
import socket, sys, uvicorn
sockets = [socket.socket(fileno=int(fd)) for fd in sys.argv[2].split(",")]
config = uvicorn.Config(sys.argv[1], lifespan="off", log_level="warning", access_log=False)
uvicorn.Server(config).run(sockets=sockets)
"""


@contextmanager
def uvicorn_ports(
    app: str, cwd: Path, env: dict[str, str], probe: str, *, ports: int = 1, ports_env: str | None = None
) -> Iterator[list[str]]:
    """Serve the ASGI ``app`` with uvicorn in a subprocess listening on ``ports`` sockets made
    here (free ports, inherited: no race for the port); yields their base URLs once ready.
    ``ports_env`` as for :func:`gunicorn_ports`."""
    socks = []
    try:
        for _ in range(ports):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sock.listen(64)
            socks.append(sock)
        fds = [s.fileno() for s in socks]
        if ports_env:
            env = {**env, ports_env: ",".join(str(s.getsockname()[1]) for s in socks)}
        cmd = [sys.executable, "-c", _UVICORN_MAIN, app, ",".join(map(str, fds))]
        log = cwd / "uvicorn.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                cmd, cwd=cwd, env={**os.environ, **env}, pass_fds=fds, stdout=out, stderr=subprocess.STDOUT
            )
        with _stopped(proc):
            bases = [f"http://127.0.0.1:{s.getsockname()[1]}" for s in socks]
            yield _ready(proc, "uvicorn", log, bases, probe)
    finally:
        for sock in socks:
            sock.close()


def _ready(proc: subprocess.Popen[bytes], name: str, log: Path, bases: list[str], probe: str) -> list[str]:
    """Wait until every base URL answers a GET of ``probe`` (any status); fail if the server exits."""
    import httpx

    deadline = time.monotonic() + STARTUP_TIMEOUT
    for base in bases:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"{name} exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
            try:
                httpx.get(base + probe, timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    pytest.fail(f"{name} did not start within {STARTUP_TIMEOUT:g} s")
                time.sleep(0.1)
    return bases


@contextmanager
def _stopped(proc: subprocess.Popen[bytes]) -> Iterator[None]:
    """Stop the server by its PID at the end, gracefully first (the worker finishes its request)."""
    try:
        yield
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

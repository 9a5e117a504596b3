"""A real gunicorn on 127.0.0.1 for the end-to-end tests: started, probed until it answers,
and always stopped (gracefully first, so the worker finishes the request it is serving)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
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
    import httpx

    port = free_port()
    cmd = [
        sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
        "--worker-class", "sync", "--timeout", "30", "--graceful-timeout", "5",
        "--log-level", "warning", app,
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, cwd=cwd, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if proc.poll() is not None:
                output = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
                pytest.fail(f"gunicorn exited with {proc.returncode}:\n{output}")
            try:
                httpx.get(base + probe, timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    pytest.fail(f"gunicorn did not start within {STARTUP_TIMEOUT:g} s")
                time.sleep(0.1)
        yield base
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # graceful: the worker finishes its request first
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

"""Serve an ASGI app with uvicorn on 127.0.0.1, in a thread of this process.

The socket is bound here, before uvicorn starts, so "port already in use" is
an immediate, clear error rather than a log line from a background thread.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

HOST = "127.0.0.1"  # the demo never listens beyond this machine
START_TIMEOUT = 10.0


class ServerError(RuntimeError):
    """The demo server could not start."""


class _DropAppTracebacks(logging.Filter):
    """The demo's app fails on purpose; its tracebacks would drown the summary."""

    def __init__(self) -> None:
        super().__init__()
        self.dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage().startswith("Exception in ASGI application"):
            self.dropped += 1
            return False
        return True


def bind(port: int = 0) -> socket.socket:
    """A listening-ready TCP socket on 127.0.0.1 (``port`` 0: any free port)."""
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted sockets only when the
    # listening socket says TCP; without it every response waits ~40 ms on delayed ACKs.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, port))
    except OSError as exc:
        sock.close()
        raise ServerError(f"cannot listen on {HOST}:{port}: {exc.strerror or exc}") from None
    return sock


@contextmanager
def serve(app: Any, port: int = 0) -> Iterator[str]:
    """Run ``app`` until the block exits; yields the base URL (``http://127.0.0.1:PORT``)."""
    import uvicorn

    sock = bind(port)
    real_port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_config=None,  # leave the process's logging configuration alone
        access_log=False,
        lifespan="off",
        ws="none",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    quiet = _DropAppTracebacks()
    logger = logging.getLogger("uvicorn.error")
    logger.addFilter(quiet)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # reported by the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=run, name="devsecmw-demo-server", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                why = f": {failure[0]!r}" if failure else ""
                raise ServerError(f"the server on {HOST}:{real_port} did not start{why}")
            time.sleep(0.01)
        yield f"http://{HOST}:{real_port}"
    finally:
        server.should_exit = True
        thread.join(timeout=START_TIMEOUT)
        logger.removeFilter(quiet)
        sock.close()


__all__ = ["HOST", "ServerError", "bind", "serve"]

"""A scripted ASGI server for transparency tests.

:func:`drive` plays the server: it hands the app a fresh scope, answers
``receive()`` from a script of messages (then, like a real server, waits until
the response is complete and reports ``http.disconnect``), and records every
message the app sends, whether the app raised, and what the app itself got
from ``receive``. :func:`compare` runs the same exchange with and without
devsecmw so a test can assert the two are identical, message by message.
"""

from __future__ import annotations

import asyncio
import copy
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from devsecmw.asgi import SecurityMiddleware

with warnings.catch_warnings():
    # Starlette >= 1.x nudges TestClient users from httpx to httpx2; httpx is what this project pins.
    warnings.filterwarnings("ignore", message=r"Using `httpx` with `starlette.testclient` is deprecated")
    from starlette.testclient import TestClient

Message = dict[str, Any]


@pytest.fixture(autouse=True)
def steady_time_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """Detection results must not depend on the machine's load: a generous inspection budget.

    Import it into a test module to apply it there (``DEVSECMW_TIME_BUDGET`` is the fallback of
    every middleware built without an explicit ``time_budget=``, subprocess servers included).
    """
    monkeypatch.setenv("DEVSECMW_TIME_BUDGET", "5.0")


App = Callable[..., Any]


def make_scope(
    method: str = "GET",
    path: str = "/",
    query: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
    *,
    kind: str = "http",
    extensions: dict[str, Any] | None = None,
    raw_path: bytes | None = None,
) -> dict[str, Any]:
    scope: dict[str, Any] = {
        "type": kind,
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "scheme": "http" if kind == "http" else "ws",
        "path": path,
        "raw_path": raw_path if raw_path is not None else path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"testserver"), *(headers or [])],
        "client": ("10.1.2.3", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    if kind == "http":
        scope["method"] = method
    if extensions is not None:
        scope["extensions"] = extensions
    return scope


def body_messages(body: bytes, chunk: int | None = None) -> list[Message]:
    """``http.request`` messages carrying ``body`` in chunks of ``chunk`` bytes (one when None)."""
    if not chunk or len(body) <= chunk:
        return [{"type": "http.request", "body": body, "more_body": False}]
    parts = [body[i : i + chunk] for i in range(0, len(body), chunk)]
    return [{"type": "http.request", "body": p, "more_body": i < len(parts) - 1} for i, p in enumerate(parts)]


@dataclass
class Exchange:
    sent: list[Message] = field(default_factory=list)
    #: What the app got from ``receive()`` (recorded between devsecmw and the app).
    app_received: list[Message] = field(default_factory=list)
    #: How many times the server's ``receive`` was called (never more with devsecmw than without).
    server_receives: int = 0
    exception: BaseException | None = None
    #: For each sent message, the value of ``probe()`` at the moment the server got it.
    probes: list[Any] = field(default_factory=list)

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")

    def normalized(self) -> tuple[list[Message], list[Message], int, str | None]:
        exc = None if self.exception is None else f"{type(self.exception).__name__}: {self.exception}"
        return self.sent, self.app_received, self.server_receives, exc


def recording(app: App, into: list[Message]) -> App:
    """Wrap ``app`` so every message its ``receive`` returns is copied into ``into``."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        async def tap() -> Any:
            message = await receive()
            into.append(copy.copy(message))
            return message

        await app(scope, tap, send)

    return wrapped


async def _drive(
    app: App,
    scope: dict[str, Any],
    script: list[Message],
    probe: Callable[[], Any] | None,
    wait_for_response: bool,
) -> Exchange:
    ex = Exchange()
    queue = list(script)
    done = asyncio.Event()
    disconnected = False

    async def receive() -> Message:
        nonlocal disconnected
        ex.server_receives += 1
        if queue and not disconnected:
            message = queue.pop(0)
            if message["type"] in ("http.disconnect", "websocket.disconnect"):
                disconnected = True
            return message
        if wait_for_response and not disconnected:
            await done.wait()  # a real server blocks here until the response is complete
        return {"type": "websocket.disconnect" if scope["type"] == "websocket" else "http.disconnect"}

    async def send(message: Message) -> None:
        ex.sent.append(copy.copy(message))
        if probe is not None:
            ex.probes.append(probe())
        t = message["type"]
        if (t == "http.response.body" and not message.get("more_body", False)) or t in (
            "http.response.pathsend",
            "http.response.trailers",
        ):
            done.set()

    try:
        await app(scope, receive, send)
    except BaseException as exc:
        ex.exception = exc
    return ex


def drive(
    app: App,
    scope: dict[str, Any],
    script: list[Message] | None = None,
    *,
    probe: Callable[[], Any] | None = None,
    wait_for_response: bool = True,
) -> Exchange:
    """Run one exchange with ``app`` on a fresh copy of ``scope``; records what the app received."""
    received: list[Message] = []
    ex = asyncio.run(
        _drive(
            recording(app, received),
            copy.deepcopy(scope),
            list(script if script is not None else body_messages(b"")),
            probe,
            wait_for_response,
        )
    )
    ex.app_received = received
    return ex


def drive_wrapped(
    app: App,
    scope: dict[str, Any],
    script: list[Message] | None = None,
    *,
    probe: Callable[[], Any] | None = None,
    wait_for_response: bool = True,
    **options: Any,
) -> Exchange:
    """Like :func:`drive`, with devsecmw between the server and the (recorded) app."""
    received: list[Message] = []
    mw = SecurityMiddleware(recording(app, received), **options)
    ex = asyncio.run(
        _drive(
            mw,
            copy.deepcopy(scope),
            list(script if script is not None else body_messages(b"")),
            probe,
            wait_for_response,
        )
    )
    ex.app_received = received
    return ex


def compare(
    app: App,
    scope: dict[str, Any],
    script: list[Message] | None = None,
    **options: Any,
) -> tuple[Exchange, Exchange]:
    """The same exchange without and with devsecmw; asserts they are identical and returns both."""
    bare = drive(app, scope, script)
    wrapped = drive_wrapped(app, scope, script, **options)
    assert wrapped.sent == bare.sent, "devsecmw changed what the client receives"
    assert wrapped.app_received == bare.app_received, "devsecmw changed what the app reads"
    assert wrapped.server_receives == bare.server_receives, "devsecmw read the request ahead of the app"
    assert wrapped.normalized()[3] == bare.normalized()[3], "devsecmw changed the app's exception"
    return bare, wrapped


__all__ = [
    "Exchange",
    "TestClient",
    "body_messages",
    "compare",
    "drive",
    "drive_wrapped",
    "make_scope",
    "recording",
]


def bare_get(
    app: App,
    path: str,
    query: bytes = b"",
    headers: Any = (),
    client: tuple[str, int] = ("203.0.113.5", 1),
    method: str = "GET",
) -> list[Message]:
    """One bodiless request straight through ``app`` (a minimal scope: no Host header, server
    127.0.0.1:80): the messages it sent."""
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "headers": list(headers),
        "client": client,
        "server": ("127.0.0.1", 80),
        "scheme": "http",
        "http_version": "1.1",
        "root_path": "",
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent

"""Type aliases for the ASGI and WSGI interfaces (PEP 3333, ASGI 3)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from types import TracebackType
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

Environ = dict[str, Any]
ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
OptExcInfo = ExcInfo | tuple[None, None, None]
WriteCallable = Callable[[bytes], object]
StartResponse = Callable[..., WriteCallable]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]

__all__ = [
    "ASGIApp",
    "Environ",
    "ExcInfo",
    "Message",
    "OptExcInfo",
    "Receive",
    "Scope",
    "Send",
    "StartResponse",
    "WSGIApp",
    "WriteCallable",
]

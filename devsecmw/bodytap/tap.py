"""The tap on a request body stream: :class:`InputTap` shows the inspection each byte the app reads.

Also the small pieces the read-ahead and the unread-body reader share with it: the
``Content-Length`` parser, the size a read call asked for, the optional read methods.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..core import Inspection

_BYTES = (bytes, bytearray)
#: Set in the environ of a request this middleware inspects.
ENVIRON_KEY = "devsecmw.inspected"
# Read methods that consume the stream but only exist on some servers' inputs: tapped when
# present, absent when the server's stream lacks them (``hasattr`` must answer the same).
_OPTIONAL_READS = frozenset({"readinto", "readinto1", "read1"})


def content_length(raw: Any) -> int | None:
    """``CONTENT_LENGTH`` as an int; ``None`` when absent, empty or malformed."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw if raw >= 0 else None
    if isinstance(raw, str):
        raw = raw.strip()
        if raw.isdigit() and raw.isascii():
            return int(raw)
    return None


def _size(args: tuple[Any, ...], kwargs: dict[str, Any], key: str) -> Any:
    """The size a read call asked for (``None`` when it gave none)."""
    return args[0] if args else kwargs.get(key)


class InputTap:
    """A request body stream as the app sees it: each byte it reads is also shown to the inspection.

    Every call is forwarded unchanged (same method, same arguments) and its
    result returned unchanged; the tap never reads on its own. ``length`` is
    the declared body length (``None`` when unknown, e.g. chunked), used only
    to notice the end of the body early. Shared by the WSGI and Django adapters.
    """

    __slots__ = ("_done", "_insp", "_it", "_left", "_stream")

    def __init__(self, stream: Any, insp: Inspection, length: int | None) -> None:
        self._stream = stream
        self._insp = insp
        self._left = length
        self._it: Iterator[bytes] | None = None
        self._done = False
        if length == 0:
            self._end()

    def _end(self) -> None:
        if not self._done:
            self._done = True
            self._insp.body_chunk(b"", more=False)

    def _seen(self, data: Any, eof: bool, size: Any = None) -> None:
        """Account for what a read of ``size`` returned. Never raises (fail open).

        An empty result ends the body, unless the call asked for nothing (``read(0)``).
        """
        try:
            if size == 0 and not eof:
                return
            if isinstance(data, memoryview):
                data = data.tobytes()
            if not isinstance(data, _BYTES):
                return  # not bytes: not ours to judge, the app gets it as it is
            if self._left is not None:
                self._left -= len(data)
                eof = eof or self._left <= 0
            if data:
                self._insp.body_chunk(bytes(data), more=True)
            if eof or not data:
                self._end()
        except Exception as exc:
            self._insp.runtime.report("input", exc)

    def read(self, *args: Any, **kwargs: Any) -> Any:
        data = self._stream.read(*args, **kwargs)
        size = _size(args, kwargs, "size")
        whole = size is None or (isinstance(size, int) and size < 0)  # read() is read to the end
        self._seen(data, whole, size)
        return data

    def readline(self, *args: Any, **kwargs: Any) -> Any:
        line = self._stream.readline(*args, **kwargs)
        self._seen(line, False, _size(args, kwargs, "size"))
        return line

    def readlines(self, *args: Any, **kwargs: Any) -> Any:
        lines = self._stream.readlines(*args, **kwargs)
        try:
            for line in lines:
                self._seen(line, eof=False)
            hint = args[0] if args else kwargs.get("hint")
            if hint is None or (isinstance(hint, int) and hint <= 0) or not lines:
                self._end()
        except Exception as exc:  # an odd return value: still the app's to have
            self._insp.runtime.report("input", exc)
        return lines

    def _seen_into(self, buffer: Any, n: Any) -> None:
        """Account for a ``readinto`` that put ``n`` bytes in ``buffer``."""
        if isinstance(n, int) and n > 0:
            self._seen(bytes(memoryview(buffer)[:n]), eof=False)
        elif n == 0:
            self._seen(b"", False, len(buffer))

    def _readinto(self, name: str) -> Callable[..., Any]:
        method = getattr(self._stream, name)

        def readinto(buffer: Any, *args: Any, **kwargs: Any) -> Any:
            n = method(buffer, *args, **kwargs)
            self._seen_into(buffer, n)
            return n

        return readinto

    def _read1(self, *args: Any, **kwargs: Any) -> Any:
        data = self._stream.read1(*args, **kwargs)
        self._seen(data, False, _size(args, kwargs, "size"))
        return data

    def __iter__(self) -> InputTap:
        return self

    def __next__(self) -> Any:
        if self._it is None:
            self._it = iter(self._stream)
        try:
            line = next(self._it)
        except StopIteration:
            self._seen(b"", eof=True)
            raise
        self._seen(line, eof=False)
        return line

    def __getattr__(self, name: str) -> Any:
        # Called only for names not defined above: server extras (fileno, seek, close...) pass
        # through; optional read methods are tapped when the stream has them.
        if name in InputTap.__slots__:  # unset slot (copy/pickle): no recursion through _stream
            raise AttributeError(name)
        if name in _OPTIONAL_READS:
            if not hasattr(self._stream, name):
                raise AttributeError(name)
            if type(self) is InputTap:
                # First use: the optional reads the stream has become real methods (a subclass
                # of the same layout, made once per combination), so later lookups skip this
                # and its closure (werkzeug looks ``readinto`` up twice per read).
                self.__class__ = _tap_class(self._stream)
                if type(self) is not InputTap:
                    return getattr(self, name)
            return self._read1 if name == "read1" else self._readinto(name)
        return getattr(self._stream, name)


def _tap_readinto(self: InputTap, buffer: Any, *args: Any, **kwargs: Any) -> Any:
    n = self._stream.readinto(buffer, *args, **kwargs)
    self._seen_into(buffer, n)
    return n


def _tap_readinto1(self: InputTap, buffer: Any, *args: Any, **kwargs: Any) -> Any:
    n = self._stream.readinto1(buffer, *args, **kwargs)
    self._seen_into(buffer, n)
    return n


_TAP_METHODS: dict[str, Callable[..., Any]] = {
    "read1": InputTap._read1,
    "readinto": _tap_readinto,
    "readinto1": _tap_readinto1,
}
#: Present optional reads -> the InputTap subclass with them as methods (at most 8 classes).
_TAP_CLASSES: dict[frozenset[str], type[InputTap]] = {frozenset(): InputTap}


def _tap_class(stream: Any) -> type[InputTap]:
    """The tap class for ``stream``: ``hasattr`` on the tap answers as on the stream."""
    try:
        present = frozenset(name for name in _TAP_METHODS if hasattr(stream, name))
    except Exception:  # an odd stream's __getattr__: InputTap.__getattr__ answers per call
        return InputTap
    cls = _TAP_CLASSES.get(present)
    if cls is None:
        methods = {name: _TAP_METHODS[name] for name in present}
        cls = _TAP_CLASSES[present] = type("InputTap", (InputTap,), {"__slots__": (), **methods})
    return cls

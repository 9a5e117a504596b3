"""Body taps for PEP 3333-style input streams, shared by the WSGI and Django adapters.

:class:`InputTap` observes what the app reads from ``wsgi.input`` (Django's request
stream) up to the inspection cap, forwarding each call as made; :func:`read_ahead`
(block mode) reads the start of the body before the app runs and hands the app a
:class:`ReplayInput` of exactly those bytes, then the rest of the stream. The
behaviour is described in :mod:`devsecmw.wsgi` (monitor and block mode, reading ahead).
:func:`read_unread` (monitor mode) reads, once the response is complete, the rest of a
body the app never read, where the server makes that safe.
``ENVIRON_KEY`` marks an environ (Django's ``META``) the request path already inspects.
"""

from __future__ import annotations

import io
import operator
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ._types import Environ

if TYPE_CHECKING:
    from .core import Inspection

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


#: Bytes per read while reading ahead (block mode).
_AHEAD_STEP = 8192
#: Streams that hold the whole body in memory: read ahead inline, a read there cannot stall.
_IN_MEMORY = (io.BytesIO, tempfile.SpooledTemporaryFile)
_NOTHING: Any = object()


class _Ahead:
    """The start of a request body, read before the app runs (block mode only).

    :meth:`run` reads up to ``want`` bytes in steps, stopping early at the end of
    the body; inline for an in-memory stream, else in a helper thread. ``stop``
    (set under ``lock`` when the wait ends) keeps it from starting another read;
    a read already in flight then is never abandoned: :meth:`settle` waits for it.
    """

    __slots__ = (
        "chunks",
        "done",
        "eof",
        "error",
        "got",
        "in_flight",
        "lock",
        "odd",
        "reading",
        "stop",
        "stream",
        "taken",
        "want",
    )

    def __init__(self, stream: Any, want: int) -> None:
        self.stream = stream
        self.want = want
        self.lock = threading.Lock()
        self.done = threading.Event()  # set when run() has returned: no read in flight any more
        self.chunks: list[bytes] = []
        self.got = 0
        self.eof = False
        self.error: BaseException | None = None
        self.odd: Any = _NOTHING  # a read that returned something other than bytes, handed on as is
        self.reading = False
        self.stop = False
        self.taken = 0  # chunks already handed to the inspection
        self.in_flight = False  # a read was in flight when the wait ended

    def run(self) -> None:
        try:
            while True:
                with self.lock:
                    if self.stop or self.got >= self.want:
                        return
                    self.reading = True
                    size = min(_AHEAD_STEP, self.want - self.got)
                try:
                    data = self.stream.read(size)
                except BaseException as exc:  # the server's error: the app gets it from its own read
                    with self.lock:
                        self.error = exc
                        self.reading = False
                    return
                with self.lock:
                    self.reading = False
                    if isinstance(data, memoryview):
                        data = data.tobytes()
                    if not isinstance(data, _BYTES):
                        self.odd = data
                        return
                    if not data:
                        self.eof = True
                        return
                    self.chunks.append(bytes(data))
                    self.got += len(data)
        finally:
            self.done.set()

    def halt(self) -> list[bytes]:
        """The wait is over: no further read starts; the chunks read so far (handed over)."""
        with self.lock:
            self.stop = True
            self.in_flight = self.reading
            chunks = self.chunks[self.taken :]
            self.taken = len(self.chunks)
            return chunks

    def settle(self) -> None:
        """Wait for a read still in flight (the helper never outlives the request)."""
        if self.in_flight:
            self.done.wait()

    def late(self) -> list[bytes]:
        """After :meth:`settle`: what the read in flight brought (not yet handed over)."""
        with self.lock:
            chunks = self.chunks[self.taken :]
            self.taken = len(self.chunks)
            return chunks


class ReplayInput:
    """``wsgi.input`` after a read-ahead (block mode): the bytes read ahead, then the stream.

    The app reads exactly the bytes it would have read without devsecmw, in order, through
    the same methods as :class:`InputTap` (``read``, ``read(n)``, ``readline``,
    ``readlines``, iteration, and ``readinto``/``readinto1``/``read1`` when the stream has
    them) with the same read-to-size behaviour: a read the buffered bytes cannot fill is
    completed from the stream, unless the stream is known to have ended (the read-ahead
    saw its end, or failed). The declared length plays no part: the buffer is a prefix of
    the stream, and the stream goes on after it. What comes from the stream goes through an
    :class:`InputTap`, so it is still inspected (record only: the app already runs).

    A read the helper thread still had in flight when the wait ended comes first: the
    first read past the buffered bytes waits for it. :meth:`settle` waits for it at the
    end of the request if the app never got that far. Shared by the WSGI and Django adapters.
    """

    __slots__ = ("_ahead", "_buf", "_eof", "_odd", "_pos", "_raise", "_tap")

    def __init__(self, tap: InputTap, buffered: bytes, ahead: _Ahead | None) -> None:
        self._tap = tap
        self._buf = buffered
        self._pos = 0
        # Kept while it still has something for the app: a read in flight, or how the read-ahead ended.
        pending = ahead is not None and (
            ahead.in_flight or ahead.error is not None or ahead.odd is not _NOTHING
        )
        self._ahead = ahead if pending else None
        #: The stream's own end was seen (an empty read): no read after the buffer can bring more.
        self._eof = ahead is not None and ahead.eof
        self._raise: BaseException | None = None
        self._odd: Any = _NOTHING

    # ------------------------------------------------------------------ internals
    def settle(self) -> None:
        """The request is ending: a read still in flight is waited for. Never raises."""
        ahead = self._ahead
        if ahead is not None:
            ahead.settle()

    def _collect(self) -> None:
        """Bring in what the helper thread still had: the result of its read in flight."""
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            return
        ahead.settle()
        late = ahead.late()
        tap = self._tap
        for chunk in late:
            tap._seen(chunk, eof=False)
        if ahead.eof:
            self._eof = True
            tap._seen(b"", eof=True)
        if late:
            self._buf = self._buf[self._pos :] + b"".join(late)
            self._pos = 0
        self._raise = ahead.error
        self._odd = ahead.odd

    def _fill(self) -> bool:
        """Whether buffered bytes remain (collecting a read in flight when they ran out)."""
        if self._pos < len(self._buf):
            return True
        if self._ahead is not None:
            self._collect()
            return self._pos < len(self._buf)
        if self._buf:
            self._buf, self._pos = b"", 0  # replayed: let it go
        return False

    def _take(self, n: int | None) -> bytes:
        pos = self._pos
        end = len(self._buf) if n is None else min(len(self._buf), pos + n)
        self._pos = end
        return self._buf[pos:end]

    def _ended(self) -> bool:
        """Nothing more may be read from the stream within the current call: its end was seen,
        or the read-ahead's failure (or odd result) is what the next read must give."""
        return self._eof or self._raise is not None or self._odd is not _NOTHING

    def _defer(self, exc: Exception, data: bytes) -> bytes:
        """The stream failed on the read that continues the replayed bytes. The bare stream's
        one read would have returned what it had (``data``) and failed on the next call: so
        does the replay. A read that had nothing raises at once."""
        if not data:
            raise exc
        self._raise = exc
        return data

    def _failed(self) -> None:
        """``readlines`` reads until the stream ends: a failure pending after the replayed
        lines is what the bare stream's next ``readline`` in it would have raised."""
        error = self._raise
        if error is not None:
            self._raise = None
            raise error

    def _more(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """A call the buffered bytes have no part in: the stream's (through the tap)."""
        error = self._raise
        if error is not None:
            self._raise = None
            raise error
        odd = self._odd
        if odd is not _NOTHING:
            self._odd = _NOTHING
            return odd
        return getattr(self._tap, name)(*args, **kwargs)

    # ------------------------------------------------------------------ reads
    def read(self, *args: Any, **kwargs: Any) -> Any:
        if not self._fill():
            return self._more("read", args, kwargs)
        size = _size(args, kwargs, "size")
        whole = size is None or operator.index(size) < 0
        n = 0 if whole else operator.index(size)
        data = self._take(None if whole else n)
        while whole or len(data) < n:
            if self._fill():
                data += self._take(None if whole else n - len(data))
                continue
            if self._ended():
                break
            try:
                rest = self._tap.read(*args, **kwargs) if whole else self._tap.read(n - len(data))
            except Exception as exc:
                return self._defer(exc, data)
            return data + rest if isinstance(rest, _BYTES) else data
        return data

    def readline(self, *args: Any, **kwargs: Any) -> Any:
        if not self._fill():
            return self._more("readline", args, kwargs)
        size = _size(args, kwargs, "size")
        limit = None if size is None or operator.index(size) < 0 else operator.index(size)
        line = b""
        while True:
            if self._fill():
                buf, pos = self._buf, self._pos
                stop = len(buf) if limit is None else min(len(buf), pos + limit - len(line))
                nl = buf.find(b"\n", pos, stop)
                line += self._take((nl + 1 if nl >= 0 else stop) - pos)
                if nl >= 0 or (limit is not None and len(line) >= limit):
                    return line
                continue
            if self._ended():
                return line
            try:
                rest = self._tap.readline() if limit is None else self._tap.readline(limit - len(line))
            except Exception as exc:
                return self._defer(exc, line)
            return line + rest if isinstance(rest, _BYTES) else line

    def readlines(self, *args: Any, **kwargs: Any) -> Any:
        if not self._fill():
            return self._more("readlines", args, kwargs)
        hint = args[0] if args else kwargs.get("hint")
        limit = None if hint is None or operator.index(hint) <= 0 else operator.index(hint)
        lines: list[bytes] = []
        total = 0
        while self._fill():
            line = self.readline()
            lines.append(line)
            total += len(line)
            if limit is not None and total >= limit:
                return lines
        if self._ended():
            self._failed()
            return lines
        rest = self._tap.readlines() if limit is None else self._tap.readlines(limit - total)
        return lines + list(rest)

    def _readinto(self, name: str) -> Callable[..., Any]:
        def readinto(buffer: Any, *args: Any, **kwargs: Any) -> Any:
            if not self._fill():
                return self._more(name, (buffer, *args), kwargs)
            view = memoryview(buffer).cast("B")
            n = 0
            while n < len(view):
                if self._fill():
                    data = self._take(len(view) - n)
                    view[n : n + len(data)] = data
                    n += len(data)
                    continue
                if name == "readinto1" or self._ended():
                    break  # readinto1: one read at most, and the buffer was it
                got = self._tap.readinto(view[n:])
                n += got if isinstance(got, int) and got > 0 else 0
                break
            return n

        return readinto

    def _read1(self, *args: Any, **kwargs: Any) -> Any:
        if not self._fill():
            return self._more("read1", args, kwargs)
        size = _size(args, kwargs, "size")
        return self._take(None if size is None or operator.index(size) < 0 else operator.index(size))

    def __iter__(self) -> ReplayInput:
        return self

    def __next__(self) -> Any:
        if not self._fill():
            return self._more("__next__", (), {})
        line = self.readline()
        if not line:  # pragma: no cover - _fill() said bytes remain
            raise StopIteration
        return line

    def __getattr__(self, name: str) -> Any:
        if name in ReplayInput.__slots__:  # unset slot (copy/pickle): no recursion through _tap
            raise AttributeError(name)
        if name in _OPTIONAL_READS:
            if not hasattr(self._tap._stream, name):
                raise AttributeError(name)
            return self._read1 if name == "read1" else self._readinto(name)
        return getattr(self._tap, name)


def _spawn(target: Callable[[], None]) -> None:
    threading.Thread(target=target, name="devsecmw-read-ahead", daemon=True).start()


def read_ahead(insp: Inspection, stream: Any, length: int | None, in_memory: bool) -> ReplayInput:
    """Block mode: read the start of the body before the app runs and inspect it.

    ``length`` is the declared body length (``None``: a terminated body, read up to the
    cap or its end). Returns the stream the app reads instead. Never raises: whatever
    happens, the bytes taken from ``stream`` are in the replay.
    """
    config = insp.runtime.config
    want = config.body_limit if length is None else min(length, config.body_limit)
    tap = InputTap(stream, insp, length)
    ahead = _Ahead(stream, want)
    timed_out = False
    skipped: str | None = None
    if in_memory:
        ahead.run()
    else:
        try:
            _spawn(ahead.run)
        except RuntimeError:  # no thread to be had: the head alone decides (counted)
            skipped = "thread"
        else:
            timed_out = not ahead.done.wait(config.block_read_timeout)
    chunks = ahead.halt()
    try:
        for chunk in chunks:
            tap._seen(chunk, eof=False)
        if ahead.eof:
            tap._seen(b"", eof=True)
        insp.body_ahead_end(timed_out, skipped)
    except Exception as exc:  # pragma: no cover - both calls fail open on their own
        insp.runtime.report("read_ahead", exc)
    return ReplayInput(tap, b"".join(chunks), ahead)


def _in_memory(stream: Any) -> bool:
    """A stream holding the whole body in memory: a read there cannot stall (test clients too)."""
    return isinstance(stream, _IN_MEMORY) or type(stream).__name__ == "FakePayload"  # Django's test client


def read_unread(
    insp: Inspection, tap: InputTap, server_stream: Any, environ: Environ, in_memory: bool = False
) -> None:
    """Monitor mode, the response complete: read and inspect the body the app left unread.

    Up to the cap, and never past ``CONTENT_LENGTH`` or the end of a terminated body (the
    reads go through ``tap``, which stops there), and only where no read can stall: an
    in-memory stream (``BytesIO`` or a spooled file: test clients, Django under ASGI; read
    inline), or gunicorn, where a
    read is made only when the bytes it needs are already there (held by gunicorn or in the
    socket's receive buffer), waiting for more with ``poll`` until ``unread_timeout`` ends.
    No read ever blocks, times out or fails inside the server, so gunicorn drains what is
    left and reuses the connection exactly as it would have. Elsewhere nothing is read
    (counted, ``server``): wsgiref and unknown servers offer no way to know a read would
    not block, and werkzeug's development server drains the socket itself.
    Never raises.
    """
    if tap._done or not insp.wants_unread():
        return
    try:
        if in_memory or _in_memory(server_stream):
            timed_out = _read_rest(insp, tap, None)
        else:
            gunicorn = _Gunicorn.of(server_stream, environ, tap)
            if gunicorn is None:
                insp.unread_end(skipped="server")
                return
            timed_out = _read_rest(insp, tap, gunicorn)
    except Exception as exc:
        insp.runtime.report("body_unread", exc)
        return
    insp.unread_end(timed_out)


def _read_rest(insp: Inspection, tap: InputTap, source: _Gunicorn | None) -> bool:
    """Read through ``tap`` up to the cap; True when the wait ran out. ``source`` says how much
    can be read without waiting (``None``: an in-memory stream, everything)."""
    config = insp.runtime.config
    deadline = time.monotonic() + config.unread_timeout
    while not tap._done:
        want = config.body_limit - insp.request.body_seen
        if tap._left is not None:
            want = min(want, tap._left)
        if want <= 0:
            return False
        if source is not None:
            ready = source.ready(want)
            if ready <= 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not source.wait(remaining):
                    return True
                continue
            want = ready
        try:
            tap.read(min(_AHEAD_STEP, want) if source is None else want)
        except OSError:  # the client went away (a reset): what arrived is inspected
            return False
    return False


class _Gunicorn:
    """A gunicorn request body of known length, read only as far as it can be without waiting.

    gunicorn's ``Body.read(n)`` waits until it has ``n`` bytes (at least 1 KiB, or the rest
    of the body), taken from what it holds (its own buffer and its socket reader's) and then
    from the socket. What it holds and what the socket's receive buffer holds (``FIONREAD``)
    tell how much is there; the bytes of this body come first on the connection, so that
    many are this body's. Looked up read-only; any other shape (a chunked body, TLS, another
    version's internals) is not read at all.
    """

    __slots__ = ("body", "eof", "fd", "reader")

    def __init__(self, body: Any, reader: Any, fd: int) -> None:
        self.body = body
        self.reader = reader
        self.fd = fd
        self.eof = False

    @classmethod
    def of(cls, stream: Any, environ: Environ, tap: InputTap) -> _Gunicorn | None:
        sock = environ.get("gunicorn.socket")
        reader = getattr(stream, "reader", None)
        if (
            sock is None
            or tap._left is None
            or _ssl_socket(sock)  # the receive buffer holds records, not body bytes
            or type(reader).__name__ != "LengthReader"
            or not isinstance(getattr(stream, "buf", None), io.BytesIO)
            or not isinstance(getattr(getattr(reader, "unreader", None), "buf", None), io.BytesIO)
            or _fionread(sock.fileno()) is None
        ):
            return None
        return cls(stream, reader, sock.fileno())

    def ready(self, want: int) -> int:
        """How many of the next ``want`` body bytes one read can return without waiting (0: none)."""
        with self.body.buf.getbuffer() as view:
            held: int = view.nbytes  # read from the socket by an earlier call, handed over first
        if want <= held or self.eof:
            return want  # at the end of the stream a read returns at once
        with self.reader.unreader.buf.getbuffer() as view:
            there: int = view.nbytes + (_fionread(self.fd) or 0)
        length = getattr(self.reader, "length", None)
        if not isinstance(length, int):
            return held
        n = min(want, held + there, _MAX_STEP)
        # A read of n takes min(length, max(1 KiB, n - held)) from the reader, which waits for all of it.
        if n > held and there >= min(length, max(1024, n - held)):
            return n
        return held

    def wait(self, timeout: float) -> bool:
        """Wait at most ``timeout`` seconds for the socket to bring more (or its end); False if not."""
        before = _fionread(self.fd) or 0
        if before == 0:
            if not _readable(self.fd, timeout):
                return False
            if not _fionread(self.fd):
                self.eof = True  # readable with nothing to read: the client closed its side
            return True
        # Some bytes are there, not yet enough for a read: poll would answer at once, so look
        # again in small steps until more came.
        end = time.monotonic() + timeout
        while True:
            if _closed_by_peer(self.fd):
                self.eof = True  # nothing more will come: what is there is read at once
                return True
            if time.monotonic() >= end:
                return False
            time.sleep(0.002)
            if (_fionread(self.fd) or 0) != before:
                return True


#: The largest read of the unread body from gunicorn (its Body reads at most 1 MiB per step).
_MAX_STEP = 1 << 20


def _ssl_socket(sock: Any) -> bool:
    ssl = sys.modules.get("ssl")
    return ssl is not None and isinstance(sock, ssl.SSLSocket)


def _fionread(fd: int) -> int | None:
    """Bytes in a socket's receive buffer (``None`` where the platform cannot tell)."""
    try:
        import fcntl
        import termios

        raw = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
    except (ImportError, OSError, AttributeError, ValueError):
        return None
    return int.from_bytes(raw, sys.byteorder, signed=True)


def _closed_by_peer(fd: int) -> bool:
    """Whether the client closed its side (Linux's ``POLLRDHUP``; elsewhere: not known, False)."""
    import select

    poll = getattr(select, "poll", None)
    rdhup = getattr(select, "POLLRDHUP", 0)
    if poll is None or not rdhup:
        return False
    p = poll()
    p.register(fd, rdhup)
    return bool(p.poll(0))


def _readable(fd: int, timeout: float) -> bool:
    import select

    poll = getattr(select, "poll", None)  # gevent's patch removes it: select() then
    if poll is not None:
        p = poll()
        p.register(fd, select.POLLIN)
        return bool(p.poll(max(1, int(timeout * 1000))))
    return bool(select.select([fd], [], [], timeout)[0])


__all__ = ["ENVIRON_KEY", "InputTap", "ReplayInput", "content_length", "read_ahead", "read_unread"]

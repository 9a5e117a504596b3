"""WSGI middleware (PEP 3333).

- ``wsgi.input`` is wrapped so what the app reads (``read``, ``readline``,
  ``readlines``, ``readinto``, iteration) is inspected up to the cap, nothing
  more and nothing ahead of the app: every call is forwarded exactly as the app
  made it, so a missing ``Content-Length`` cannot make devsecmw block.
- ``start_response`` is wrapped (``exc_info`` and the ``write()`` callable
  included) to observe the status and headers; the server's ``start_response``
  is called first, so when it re-raises ``exc_info`` nothing is recorded.
- The returned iterable is wrapped: chunks pass through as they come, the
  span ends after the last one, and the app's ``close()`` is always called
  (also when the server stops early and when iteration raises). ``len()`` is
  kept when the app's iterable has one (servers use it for Content-Length),
  and a ``wsgi.file_wrapper`` response stays a file wrapper, so the server's
  sendfile path still applies.
- The span (when devsecmw owns it) is current during the app call, each
  ``next()`` and ``close()``, attached and detached around each of them;
  except around ``next()`` on a list or tuple iterator and the ``close()`` of
  a plain list or tuple, where no app code can run (it is still current when
  the inspection ends there).

Block mode (``mode="block"``, opt-in) decides before the app runs. A request
whose head already calls for a block is answered at once, its body never
read. Otherwise, when it has a body, the start of the body is read ahead,
inspected, and the decision taken; a blocked request gets the block response
(``start_response`` with the configured status, a small JSON or HTML body by
``Accept``, the trace id in it) and the app is never called. Once the app
runs nothing is blocked any more: what it reads later is inspected and
recorded only (``devsecmw.would_block``).

Reading ahead, honestly: reads on ``wsgi.input`` block and PEP 3333 offers
no timeout, so only what is sure to exist is read: with a ``CONTENT_LENGTH``,
up to ``min(length, body_limit)`` bytes; with ``wsgi.input_terminated``
(chunked), up to ``body_limit`` bytes or the end; with neither there is no
body and nothing is read. The wait is bounded by a helper thread that does
the reads (in steps of 8 KiB: a server's ``read(n)`` waits for ``n`` bytes or
the end, so that is the granularity of what a stalled upload shows before
the wait ends) while the request thread waits at most
``block_read_timeout`` seconds. What did not arrive by then is not waited
for: the decision goes on without it and the skip is counted
(``devsecmw.errors``, stage ``read_ahead``, ``timeout``). In-memory streams
(``io.BytesIO``, spooled files: test clients, buffering servers) are read
inline, without a thread.

The app then reads a :class:`ReplayInput`: exactly the bytes read ahead,
then the rest of the stream as it comes (observed as in monitor mode),
with the same methods as the tap and the same read-to-size behaviour. The
bytes read ahead are a prefix of the stream, nothing more: only the stream's
own end stops a read, never ``CONTENT_LENGTH``, so an app reads what it would
have read from the bare stream (a stream holding more than the declared
length gives the app that more, as it would without devsecmw; the server's
stream is what enforces the length, if anything does). There is never more than one reader
on the server's stream: a read the helper thread still has in flight when
the wait ends is not abandoned; the app's first read past the buffered bytes
waits for its result (as the app's own read would have waited), and before
the request ends (the response's ``close()``, a block response included)
devsecmw waits for it too, so the thread never outlives the request nor
touches a connection the server has moved on with (keep-alive draining,
mod_wsgi's request lifetime). That last wait lasts as long as the client
takes to send the rest of that read, bounded by the server's own timeouts
(gunicorn's worker ``--timeout``, Apache's ``Timeout``, uWSGI's
``socket-timeout``), just as an app reading its body would be. Under
gevent/eventlet, threads must be monkey-patched (gunicorn's gevent and
eventlet workers do so). When no thread can be started the head alone
decides (counted, ``thread``). Monitor mode never reads ahead and starts no
thread.

Usage::

    app.wsgi_app = devsecmw.wsgi.SecurityMiddleware(app.wsgi_app)   # Flask
    application = devsecmw.wsgi.SecurityMiddleware(application)     # any WSGI app
"""

from __future__ import annotations

import io
import operator
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from http import HTTPStatus
from typing import Any

from opentelemetry import metrics, trace

from ._types import Environ, StartResponse, WriteCallable, WSGIApp
from .config import Config
from .core import Inspection, Runtime
from .engine import Detector
from .request import from_wsgi_environ

_BYTES = (bytes, bytearray)
#: Set in the environ of a request this middleware inspects.
ENVIRON_KEY = "devsecmw.inspected"
# Read methods that consume the stream but only exist on some servers' inputs: tapped when
# present, absent when the server's stream lacks them (``hasattr`` must answer the same).
_OPTIONAL_READS = frozenset({"readinto", "readinto1", "read1"})


#: Environ key a framework (or the app) sets to the matched route template (``/items/<int:id>``);
#: read when the app calls ``start_response``. The WSGI adapter imports no framework.
ROUTE_KEY = "devsecmw.route"
#: Werkzeug's environ key for its request object; Flask's request carries the matched ``url_rule``.
_WERKZEUG_REQUEST = "werkzeug.request"


def route_from_environ(environ: Environ) -> str | None:
    """The route template: the ``devsecmw.route`` environ key, else the ``url_rule`` of the
    Werkzeug request (Flask) that the environ names, else ``None``."""
    explicit = environ.get(ROUTE_KEY)
    if isinstance(explicit, str):
        return explicit
    rule = getattr(environ.get(_WERKZEUG_REQUEST), "url_rule", None)  # duck-typed: no Flask import
    template = getattr(rule, "rule", None)
    return template if isinstance(template, str) else None


def content_length(raw: Any) -> int | None:
    """``CONTENT_LENGTH`` as an int; ``None`` when absent, empty or malformed."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw if raw >= 0 else None
    if isinstance(raw, str):
        raw = raw.strip()
        if raw.isdigit() and raw.isascii():
            return int(raw)
    return None


def status_code(status: Any) -> int:
    """The code of a WSGI status line (``"404 Not Found"``); 0 when the app sent something else."""
    head = str(status)[:3]
    return int(head) if head.isdigit() and head.isascii() else 0


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


def _nothing() -> None:
    pass


#: Iterables whose ``iter()`` and ``close`` lookup run no app code (exact types only: a
#: subclass may define ``__iter__`` or ``close``).
_PLAIN = (list, tuple)
#: Iterators whose ``next()`` runs no app code: the interpreter's own over a list or tuple.
_PLAIN_ITERATORS: tuple[type, ...] = (type(iter([])), type(iter(())))


class _Response:
    """The app's iterable, passed through chunk by chunk; ends the inspection, always closes.

    The span is made current around whatever may run app code (``iter()``, ``next()`` on a
    generator or a custom iterator, ``close()``) and around the end of the inspection (its
    metrics then carry the span as their exemplar, as in the ASGI adapter). ``next()`` on a
    list or tuple iterator runs no app code: those chunks are handed over without it, which
    saves an attach and a detach per chunk.
    """

    __slots__ = ("_insp", "_iter", "_plain", "_release", "_result")

    def __init__(
        self, result: Iterable[bytes], insp: Inspection, release: Callable[[], None] = _nothing
    ) -> None:
        self._result = result
        self._insp = insp
        self._iter: Iterator[bytes] | None = None
        self._plain = False  # self._iter is a list or tuple iterator
        if type(result) in _PLAIN:
            self._iter = iter(result)
            self._plain = True
        self._release = release  # block mode: settles a read-ahead before the server moves on

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        insp = self._insp
        if self._plain:
            try:
                chunk = next(self._iter)  # type: ignore[arg-type]  # set with _plain
            except StopIteration:
                self._finish()
                raise
            insp.response_chunk(chunk)
            return chunk
        insp.activate()
        try:
            if self._iter is None:
                it = self._iter = iter(self._result)
                self._plain = type(it) in _PLAIN_ITERATORS  # e.g. __iter__ returning iter(a_list)
            chunk = next(self._iter)
        except StopIteration:
            insp.finish()
            raise
        except BaseException as exc:
            insp.finish(exc)
            raise
        finally:
            insp.deactivate()
        insp.response_chunk(chunk)
        return chunk

    def _finish(self) -> None:
        insp = self._insp
        insp.activate()
        try:
            insp.finish()
        finally:
            insp.deactivate()

    def close(self) -> None:
        insp = self._insp
        if type(self._result) in _PLAIN:  # no close() to call: no app code runs here
            try:
                if not insp.finished:  # the server stopped early
                    self._finish()
            finally:
                self._release()
            return
        insp.activate()
        try:
            close = getattr(self._result, "close", None)
            if close is not None:
                close()
        except BaseException as exc:
            insp.finish(exc)
            raise
        finally:
            insp.finish()
            insp.deactivate()
            self._release()


class _SizedResponse(_Response):
    """Keeps ``len()``: servers (wsgiref) set Content-Length for one-chunk iterables."""

    __slots__ = ()

    def __len__(self) -> int:
        return len(self._result)  # type: ignore[arg-type]


class _FileTap:
    """The file of a ``wsgi.file_wrapper`` response: reads observed, ``close()`` ends the inspection.

    Everything else (``fileno``, ``seek``, ``tell``...) passes through so the
    server can still use sendfile; bytes sent that way are not observed.
    """

    __slots__ = ("_file", "_insp", "_release")

    def __init__(self, file: Any, insp: Inspection, release: Callable[[], None] = _nothing) -> None:
        self._file = file
        self._insp = insp
        self._release = release

    def read(self, *args: Any, **kwargs: Any) -> Any:
        data = self._file.read(*args, **kwargs)
        if isinstance(data, _BYTES):
            self._insp.response_chunk(bytes(data))
        return data

    def close(self) -> None:
        try:
            close = getattr(self._file, "close", None)
            if close is not None:
                close()
        except BaseException as exc:
            self._insp.finish(exc)
            raise
        finally:
            self._insp.finish()
            self._release()

    def __getattr__(self, name: str) -> Any:
        if name in _FileTap.__slots__:
            raise AttributeError(name)
        return getattr(self._file, name)


class _BlockResponse:
    """The block response's body; ``close()`` ends the inspection, then settles the read-ahead."""

    __slots__ = ("_body", "_insp", "_release")

    def __init__(self, body: bytes, insp: Inspection, release: Callable[[], None]) -> None:
        self._body = body
        self._insp = insp
        self._release = release

    def __iter__(self) -> Iterator[bytes]:
        return iter((self._body,))

    def __len__(self) -> int:
        return 1

    def close(self) -> None:
        try:
            self._insp.finish()
        finally:
            self._release()


def _wrap_result(
    result: Iterable[bytes], environ: Environ, insp: Inspection, release: Callable[[], None] = _nothing
) -> Iterable[bytes]:
    try:
        wrapper = environ.get("wsgi.file_wrapper")
        if (
            isinstance(wrapper, type)
            and type(result) is wrapper
            and hasattr(result, "filelike")
            # A close() set on the wrapper itself would be lost by re-wrapping: keep it as it is.
            and getattr(result, "close", None) == getattr(result.filelike, "close", None)
        ):
            blksize = getattr(result, "blksize", None)
            tap = _FileTap(result.filelike, insp, release)
            factory: Callable[..., Iterable[bytes]] = wrapper  # the server's class, not the app's
            return factory(tap, blksize) if blksize else factory(tap)
        if hasattr(result, "__len__"):
            return _SizedResponse(result, insp, release)
    except Exception as exc:
        insp.runtime.report("response", exc)
    return _Response(result, insp, release)


def wsgi_status(code: int) -> str:
    """A WSGI status line for ``code`` (``"403 Forbidden"``)."""
    try:
        return f"{code} {HTTPStatus(code).phrase}"
    except ValueError:
        return f"{code} Blocked"


class SecurityMiddleware:
    """devsecmw for any WSGI application."""

    def __init__(
        self,
        app: WSGIApp,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        detector: Detector | None = None,
        config: Config | None = None,
        **options: Any,
    ) -> None:
        self.app = app
        self.runtime = Runtime.from_options(tracer_provider, meter_provider, detector, config, **options)
        #: False turns the middleware into a pass-through (``devsecmw.flask.uninit_app`` uses it
        #: when another wrapper was added on top and unwrapping would remove that one too).
        self.enabled = True

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if not self.enabled or environ.get(ENVIRON_KEY):
            # Another devsecmw outside already inspects this request (wrapped by hand and by the
            # zero-code instrumentor): once is enough.
            return self.app(environ, start_response)
        runtime = self.runtime
        try:
            request = from_wsgi_environ(environ)
        except Exception as exc:
            runtime.report("request", exc)
            return self.app(environ, start_response)
        insp = runtime.begin(request)
        if insp is None:
            return self.app(environ, start_response)
        replay: ReplayInput | None = None
        try:
            # Tells devsecmw.django, should it also be installed, that this request is covered.
            environ[ENVIRON_KEY] = True
            blocked = runtime.blocking and insp.check_block()  # the head alone may decide
            stream = environ.get("wsgi.input")
            if stream is not None and not blocked:
                length = content_length(environ.get("CONTENT_LENGTH"))
                if length is None and not environ.get("wsgi.input_terminated"):
                    length = 0  # PEP 3333: no Content-Length and not terminated means no body
                if runtime.blocking and length != 0 and insp.wants_body_ahead():
                    replay = read_ahead(insp, stream, length, isinstance(stream, _IN_MEMORY))
                    environ["wsgi.input"] = replay
                    blocked = insp.check_block()
                else:
                    environ["wsgi.input"] = InputTap(stream, insp, length)
        except Exception as exc:
            runtime.report("input", exc)
            blocked = insp.blocked = False  # fail open: the app runs
        release = replay.settle if replay is not None else _nothing
        if blocked:
            response = self._block(environ, start_response, insp, release)
            if response is not None:
                return response

        def wrapped_start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> WriteCallable:
            # The server's own call first: when it re-raises exc_info (headers already sent)
            # the client got the first status, which is the one to keep.
            if exc_info is None:
                write = start_response(status, headers)
            else:
                write = start_response(status, headers, exc_info)
            try:
                if request.route is None:
                    request.route = route_from_environ(environ)
            except Exception as exc:
                runtime.report("route", exc)
            insp.response_start(status_code(status), headers)

            def wrapped_write(data: bytes) -> object:
                insp.response_chunk(data)
                return write(data)

            return wrapped_write

        insp.activate()
        try:
            result = self.app(environ, wrapped_start_response)
        except BaseException as exc:
            insp.finish(exc)
            release()
            raise
        finally:
            insp.deactivate()
        return _wrap_result(result, environ, insp, release)

    @staticmethod
    def _block(
        environ: Environ, start_response: StartResponse, insp: Inspection, release: Callable[[], None]
    ) -> Iterable[bytes] | None:
        """Answer with the block response; ``None`` (the app runs) if it cannot be built."""
        response = insp.block_response(insp.request.header("accept"))
        if response is None:
            return None
        status, headers, body = response  # header values are ASCII (validated by Config)
        try:
            start_response(wsgi_status(status), headers)
        except BaseException as exc:  # the server's own error: passed on, recorded
            insp.finish(exc)
            release()
            raise
        head = str(environ.get("REQUEST_METHOD", "")).upper() == "HEAD"
        return _BlockResponse(b"" if head else body, insp, release)


__all__ = [
    "ENVIRON_KEY",
    "ROUTE_KEY",
    "InputTap",
    "ReplayInput",
    "SecurityMiddleware",
    "content_length",
    "read_ahead",
    "route_from_environ",
    "status_code",
    "wsgi_status",
]

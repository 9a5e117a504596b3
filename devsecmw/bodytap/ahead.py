"""Block mode: read the start of a request body before the app runs, then replay it.

:func:`read_ahead` reads up to the cap (inline for an in-memory stream, else in a helper
thread, waited for at most ``block_read_timeout``) and hands the app a
:class:`ReplayInput` of exactly those bytes, then the rest of the stream through an
:class:`~devsecmw.bodytap.tap.InputTap`.
"""

from __future__ import annotations

import io
import operator
import tempfile
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .tap import _BYTES, _OPTIONAL_READS, InputTap, _size

if TYPE_CHECKING:
    from ..core import Inspection

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

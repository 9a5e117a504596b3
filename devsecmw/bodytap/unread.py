"""Monitor mode: once the response is complete, read the body the app left unread.

:func:`read_unread` reads only where no read can stall: an in-memory stream, or gunicorn,
read as far as the bytes already there allow (:class:`_Gunicorn` and the socket helpers).
"""

from __future__ import annotations

import io
import sys
import time
from typing import TYPE_CHECKING, Any

from .._types import Environ
from .ahead import _AHEAD_STEP, _IN_MEMORY
from .tap import InputTap

if TYPE_CHECKING:
    from ..core import Inspection


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

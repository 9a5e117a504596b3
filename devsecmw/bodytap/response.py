"""Response taps: the app's response body passed through chunk by chunk, observed, never held.

For the WSGI adapter (and so Flask and Falcon under it): the returned iterable wrapped
(:func:`wrap_result`: :class:`Response`, :class:`SizedResponse` keeping ``len()``, a
``wsgi.file_wrapper`` response kept a file wrapper around :class:`FileTap`), the span current
around whatever may run app code, the inspection ended after the last chunk or at
``close()``, which is always passed on; and the block response (:class:`BlockResponse`).
For the Django adapter: streaming content, sync (:func:`sync_stream`) or async
(:func:`async_stream`). The behaviour is described in :mod:`devsecmw.wsgi` and
:mod:`devsecmw.django`.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from .._types import Environ
from .tap import _BYTES

if TYPE_CHECKING:
    from ..core import Inspection


def nothing() -> None:
    pass


#: Iterables whose ``iter()`` and ``close`` lookup run no app code (exact types only: a
#: subclass may define ``__iter__`` or ``close``).
_PLAIN = (list, tuple)
#: Iterators whose ``next()`` runs no app code: the interpreter's own over a list or tuple.
_PLAIN_ITERATORS: tuple[type, ...] = (type(iter([])), type(iter(())))


class Response:
    """The app's iterable, passed through chunk by chunk; ends the inspection, always closes.

    The span is made current around whatever may run app code (``iter()``, ``next()`` on a
    generator or a custom iterator, ``close()``) and around the end of the inspection (its
    metrics then carry the span as their exemplar, as in the ASGI adapter). ``next()`` on a
    list or tuple iterator runs no app code: those chunks are handed over without it, which
    saves an attach and a detach per chunk.
    """

    __slots__ = ("_insp", "_iter", "_plain", "_release", "_result", "_unread")

    def __init__(
        self,
        result: Iterable[bytes],
        insp: Inspection,
        release: Callable[[], None] = nothing,
        unread: Callable[[], None] = nothing,
    ) -> None:
        self._result = result
        self._insp = insp
        self._unread = unread  # monitor mode: reads the body the app left unread (response complete)
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
                self._unread()
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
            self._unread()  # the last chunk has gone: the response is complete
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


class SizedResponse(Response):
    """Keeps ``len()``: servers (wsgiref) set Content-Length for one-chunk iterables."""

    __slots__ = ()

    def __len__(self) -> int:
        return len(self._result)  # type: ignore[arg-type]


class FileTap:
    """The file of a ``wsgi.file_wrapper`` response: reads observed, ``close()`` ends the inspection.

    Everything else (``fileno``, ``seek``, ``tell``...) passes through so the
    server can still use sendfile; bytes sent that way are not observed.
    """

    __slots__ = ("_file", "_insp", "_release", "_unread")

    def __init__(
        self,
        file: Any,
        insp: Inspection,
        release: Callable[[], None] = nothing,
        unread: Callable[[], None] = nothing,
    ) -> None:
        self._file = file
        self._insp = insp
        self._release = release
        self._unread = unread

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
            if not self._insp.finished:  # the file was sent (sendfile too): the response is complete
                self._unread()
            self._insp.finish()
            self._release()

    def __getattr__(self, name: str) -> Any:
        if name in FileTap.__slots__:
            raise AttributeError(name)
        return getattr(self._file, name)


class BlockResponse:
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


def wrap_result(
    result: Iterable[bytes],
    environ: Environ,
    insp: Inspection,
    release: Callable[[], None] = nothing,
    unread: Callable[[], None] = nothing,
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
            tap = FileTap(result.filelike, insp, release, unread)
            factory: Callable[..., Iterable[bytes]] = wrapper  # the server's class, not the app's
            return factory(tap, blksize) if blksize else factory(tap)
        if hasattr(result, "__len__"):
            return SizedResponse(result, insp, release, unread)
    except Exception as exc:
        insp.runtime.report("response", exc)
    return Response(result, insp, release, unread)


def sync_stream(content: Iterable[bytes], insp: Inspection) -> Iterator[bytes]:
    iterator = iter(content)
    try:
        while True:
            insp.activate()
            try:
                chunk = next(iterator)
            except StopIteration:
                break
            finally:
                insp.deactivate()
            insp.response_chunk(chunk)
            yield chunk
    except GeneratorExit:  # closed early by the server: not an error
        raise
    except BaseException as exc:
        insp.finish(exc)
        raise
    finally:
        insp.finish()


async def async_stream(content: AsyncIterable[bytes], insp: Inspection) -> AsyncIterator[bytes]:
    iterator = aiter(content)
    try:
        while True:
            # Attached and detached within one step: the consumer's task may differ between steps.
            insp.activate()
            try:
                chunk = await anext(iterator)
            except StopAsyncIteration:
                break
            finally:
                insp.deactivate()
            insp.response_chunk(chunk)
            yield chunk
    except GeneratorExit:
        raise
    except BaseException as exc:
        insp.finish(exc)
        raise
    finally:
        insp.finish()


__all__ = [
    "BlockResponse",
    "FileTap",
    "Response",
    "SizedResponse",
    "async_stream",
    "nothing",
    "sync_stream",
    "wrap_result",
]

"""When the request path reads a body the app has not read: ahead (block mode) and after (monitor).

The policy half of :class:`devsecmw.core.Inspection` (a base class of it): whether a read
is worth it and what its end means. The reads themselves belong to the body taps
(:mod:`devsecmw.bodytap`), which call these methods.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .request import may_have_body

if TYPE_CHECKING:
    from .core import Runtime
    from .request import HttpRequest


class BodyReads:
    """Read-ahead and unread-body decisions of one request (state lives in ``Inspection``)."""

    __slots__ = ()

    if TYPE_CHECKING:
        runtime: Runtime
        request: HttpRequest
        status: int | None
        finished: bool
        exception: BaseException | None

        def _incomplete(self, cuts: list[tuple[str, str]]) -> None: ...

        def inspect_body(self) -> None: ...

    # ------------------------------------------------------------------ read-ahead (block mode)
    def wants_body_ahead(self) -> bool:
        """Whether block mode should read the body before the app runs, so the decision sees it.

        Not when it cannot matter: nothing is inspected (``body_limit=0``), the request is never
        blocked (allowlisted), or there is surely no body (``Content-Length: 0``, or an HTTP/1
        GET, HEAD, OPTIONS, DELETE or TRACE with neither ``Content-Length`` nor
        ``Transfer-Encoding``). Otherwise it reads (a POST without them, any HTTP/2 or 3
        request): no body costs one empty message, which the server hands over at once.
        """
        try:
            runtime = self.runtime
            if not runtime.blocking or runtime.config.body_limit <= 0 or self.status is not None:
                return False
            req = self.request
            return may_have_body(req) and not runtime.allowlisted(req)
        except Exception as exc:
            self.runtime.report("read_ahead", exc)
            return False

    def body_ahead_needed(self) -> bool:
        """While reading ahead: whether another body message is worth waiting for (up to the cap)."""
        req = self.request
        return not req.body_complete and len(req.body) < self.runtime.config.body_limit

    def body_ahead_end(self, timed_out: bool = False, skipped: str | None = None) -> None:
        """Reading ahead ended (body complete, cap reached, disconnect, or the wait ran out):
        inspect what arrived. What did not arrive in time is not waited for: the decision goes
        without it, and the skip is counted in ``devsecmw.errors`` (stage ``read_ahead``)."""
        try:
            if timed_out:
                self.runtime.telemetry.count_error("read_ahead", "timeout")
            elif skipped is not None:
                self.runtime.telemetry.count_error("read_ahead", skipped)
        except Exception as exc:
            self.runtime.report("read_ahead", exc)
        self.inspect_body()

    # ------------------------------------------------------------------ unread body (monitor mode)
    def wants_unread(self) -> bool:
        """Monitor mode, the response complete: whether to read the body the app left unread.

        The server would discard it (a 405 or 404, an endpoint that ignores its body), so an
        attack in it would go unseen. Not when the app read the body to its end or up to the
        cap (nothing is read twice), when nothing is inspected, in block mode (it read ahead),
        when there is surely no body, nor when the client sent ``Expect`` (it holds the body
        back until asked: reading would ask for a body the server never wanted).
        """
        try:
            runtime = self.runtime
            config = runtime.config
            if runtime.blocking or config.unread_timeout <= 0 or self.finished or self.exception is not None:
                return False
            req = self.request
            if req.body_complete or req.body_seen >= config.body_limit or req.header("expect") is not None:
                return False
            return may_have_body(req)
        except Exception as exc:
            self.runtime.report("body_unread", exc)
            return False

    def unread_end(self, timed_out: bool = False, skipped: str | None = None) -> None:
        """The read of the unread body ended: inspect what arrived (the body phase, again if the
        app had read a part). A client that sent nothing more in time is not waited for: the
        request is marked incomplete and the wait counted (``devsecmw.errors``, stage
        ``body_unread``); a server where the read could stall is skipped, counted the same way.
        """
        try:
            if timed_out:  # seen in part only: said where
                wait = self.runtime.config.unread_timeout
                self._incomplete([("body.unread", f"no more of the body within {wait * 1000:g} ms")])
            if timed_out or skipped is not None:
                # A server where the read could stall is skipped as before this read existed
                # (the app did not read the body either): counted, not marked incomplete.
                self.runtime.telemetry.count_error("body_unread", "timeout" if timed_out else skipped or "")
        except Exception as exc:
            self.runtime.report("body_unread", exc)
        self.inspect_body()


__all__ = ["BodyReads"]

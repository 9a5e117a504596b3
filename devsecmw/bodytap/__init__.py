"""Body taps shared by the adapters; here, those of PEP 3333-style input streams (WSGI, Django).

:class:`InputTap` observes what the app reads from ``wsgi.input`` (Django's request
stream) up to the inspection cap, forwarding each call as made; :func:`read_ahead`
(block mode) reads the start of the body before the app runs and hands the app a
:class:`ReplayInput` of exactly those bytes, then the rest of the stream. The
behaviour is described in :mod:`devsecmw.wsgi` (monitor and block mode, reading ahead).
:func:`read_unread` (monitor mode) reads, once the response is complete, the rest of a
body the app never read, where the server makes that safe.
``ENVIRON_KEY`` marks an environ (Django's ``META``) the request path already inspects.

The package: :mod:`.tap` (:class:`InputTap`), :mod:`.ahead` (block mode: :func:`read_ahead`,
:class:`ReplayInput`), :mod:`.unread` (monitor mode: :func:`read_unread`); for the ASGI
adapter, :mod:`.receive` (the same three over ``receive``); and :mod:`.response`, the
response taps (WSGI iterables and file wrappers, Django streaming content). The adapters
import those two modules by name.
"""

from __future__ import annotations

# _BYTES and _IN_MEMORY: shared with the WSGI adapter (``from .bodytap import ...``).
from .ahead import _IN_MEMORY as _IN_MEMORY
from .ahead import ReplayInput, read_ahead
from .tap import _BYTES as _BYTES
from .tap import ENVIRON_KEY, InputTap, content_length
from .unread import read_unread

__all__ = ["ENVIRON_KEY", "InputTap", "ReplayInput", "content_length", "read_ahead", "read_unread"]

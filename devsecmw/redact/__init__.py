"""Redaction: what may leave the process as telemetry.

Three rules, in this order:

1. A value whose *location* names a secret (``query:password``, ``header:authorization``,
   any cookie) is never shown: its evidence is :data:`REDACTED`.
2. **Cut at a secret name.** Text that follows a secret name (``password``, ``token``,
   ``jsessionid``, ``Authorization``...) is cut off: the name stays, what follows becomes
   :data:`MASK`. Where a secret value ends cannot be known (a quote, a tag, a brace or an
   encoding can close it early), so nothing after the name is shown. In evidence and header
   values any occurrence of a name cuts; in ``url.path`` and ``url.query`` values a name cuts
   where it is used as a key (followed by ``=``, ``:`` or ``>``, past quotes and brackets:
   ``;jsessionid=``, ``{"password": ``, ``<password>``), not where it is a word
   (``/auth/login``, ``q=gift+card``). Names are looked for as written and as the text reads
   after percent, HTML-entity, backslash and NUL decoding (rounds until stable), so
   ``%70assword`` or ``pass&#119;ord`` cut too.
3. **Credential-shaped content is masked wherever it appears**: URL userinfo
   (``scheme://user:pass@``), JWTs (``eyJ...``), AWS access key ids, ``Bearer`` and ``Basic``
   credentials, private-key blocks and long random-looking tokens (UUIDs excepted).

Evidence is an excerpt of at most :data:`MAX_EVIDENCE` characters around the match, cut at the
first secret before its end (never after it). Span attributes that copy request data
(``url.path``, ``url.query``, ``user_agent.original``) go through :func:`scrub_path`,
:func:`scrub_query` and :func:`scrub_header`, which cap them first (:func:`truncate`, with a
visible :data:`TRUNCATED` marker) so the work is bounded by the cap, not by the request.

No backtracking engine runs on request data here (the ``re`` module is not imported): RE2,
linear in its input, answers "can this text hold anything to hide?" and finds name
candidates; the rest are hand-written scans over ``str.find``/``split``/``translate``, each
resumed where the previous one stopped.

The package, by layer (each imports only those above it):

- :mod:`.decode`: escapes undone for the name search, with a map back to the text;
- :mod:`.names`: secret names (lists, modes, where a name cuts), RE2 helpers;
- :mod:`.gate`: the one-look RE2 gate that spares most texts the full scans;
- :mod:`.tokens`: credential-shaped content;
- :mod:`.scrub`: span attributes and signal locations, capped then scrubbed;
- :mod:`.excerpt`: evidence excerpts.

Everything is re-exported here: ``from devsecmw import redact; redact.scrub_query(...)``.
"""

from __future__ import annotations

from .decode import _Fold as _Fold
from .excerpt import ELLIPSIS, MAX_EVIDENCE, REDACTED, evidence
from .gate import _clean as _clean
from .gate import _prepare as _prepare
from .names import KV as KV
from .names import PATHLIKE as PATHLIKE
from .names import SECRET_HEADERS, is_secret_location, is_secret_name
from .names import SECRET_NAME_PARTS as SECRET_NAME_PARTS
from .names import SECRET_NAME_WORDS as SECRET_NAME_WORDS
from .names import STRICT as STRICT
from .names import _first_name as _first_name
from .names import _first_name_scan as _first_name_scan
from .names import _name_cut as _name_cut
from .scrub import (
    DEFAULT_ATTRIBUTE_LIMIT,
    MASK,
    TRUNCATED,
    mask_inline,
    scrub_header,
    scrub_location,
    scrub_path,
    scrub_query,
    truncate,
)
from .scrub import _redact as _redact
from .tokens import _run_end as _run_end
from .tokens import _token_spans as _token_spans
from .tokens import _userinfo_spans as _userinfo_spans

__all__ = [
    "DEFAULT_ATTRIBUTE_LIMIT",
    "ELLIPSIS",
    "MASK",
    "MAX_EVIDENCE",
    "REDACTED",
    "SECRET_HEADERS",
    "TRUNCATED",
    "evidence",
    "is_secret_location",
    "is_secret_name",
    "mask_inline",
    "scrub_header",
    "scrub_location",
    "scrub_path",
    "scrub_query",
    "truncate",
]

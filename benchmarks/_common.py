"""What several benchmarks share: the referee's requests, and SDK providers that record and drop.

``BROWSER`` and ``json_order`` are copies of ``../shared/eval/overhead.py``'s ``get`` and
``post_json`` requests, so the project's figures can be set beside the referee's.
The scripts run from the repository root (``python benchmarks/engine.py``): this directory
is then first on ``sys.path``, and ``from _common import ...`` finds this module.
"""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Any

Header = tuple[bytes, bytes]

#: The referee's browser request headers.
BROWSER: list[Header] = [
    (b"host", b"shop.example.com"),
    (
        b"user-agent",
        b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
    ),
    (b"accept", b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
    (b"accept-language", b"en-US,en;q=0.9"),
    (b"accept-encoding", b"gzip, deflate, br"),
    (b"referer", b"https://shop.example.com/catalog?page=1"),
    (b"cookie", b"session=8f14e45fceea167a5a36dedd4bea2543; theme=dark; _ga=GA1.2.1234567890.1700000000"),
    (b"sec-fetch-mode", b"navigate"),
    (b"connection", b"keep-alive"),
]
#: The referee's ``get`` query string.
GET_QUERY = b"category=books&page=2&sort=price&q=python+cookbook"


def json_order(size: int = 2048) -> bytes:
    """The referee's ``post_json`` body: an order of ``size`` bytes or a little more."""
    items: list[str] = []
    i = 0
    while sum(len(x) for x in items) < size:
        items.append(
            f'{{"sku":"SKU-{i:05d}","name":"Blue cotton shirt, size {i % 5}","qty":{i % 7},'
            '"note":"Leave it at the door, please; ring twice."}'
        )
        i += 1
    return ('{"order":[' + ",".join(items) + '],"coupon":"WINTER-10"}').encode()


def providers() -> tuple[Any, Any]:
    """An SDK TracerProvider whose spans are recorded then dropped, and a MeterProvider
    without a reader: exporting is the SDK's cost, not devsecmw's."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

    tp = TracerProvider()
    tp.add_span_processor(SpanProcessor())  # the base class: on_end does nothing
    return tp, MeterProvider()


#: The development corpus beside the repository (``../shared/corpus/dev``), and where
#: ``fetch_corpora.py`` writes the public sources converted (its default cache).
SHARED = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "dev"
FETCHED = Path.home() / ".cache" / "devsecmw" / "corpora" / "dev"


def corpus_files(given: list[str] | None = None) -> list[str]:
    """The files named, else the shared corpus, else the fetched one; ``[]`` when none is there."""
    return (
        list(given or [])
        or sorted(glob.glob(str(SHARED / "*.jsonl")))
        or sorted(glob.glob(str(FETCHED / "*.jsonl")))
    )


NO_CORPUS = (
    f"# no corpus given and none at {SHARED} or {FETCHED}: nothing to measure "
    "(python benchmarks/fetch_corpora.py downloads and converts the public sources)"
)

"""SQL errors that the application HTML-escapes before showing them are still leaks."""

from __future__ import annotations

import pytest

from devsecmw.engine.response import ResponseRules
from devsecmw.engine.rules import load_packaged
from devsecmw.leaks import Sniffer

_RUNNER = ResponseRules(load_packaged())


def _sniffed(body: str) -> list[str]:
    sniffer = Sniffer(1 << 16, None)
    sniffer.feed(body.encode())
    return [s.rule_id or "" for s in _RUNNER.inspect(sniffer.data)]


@pytest.mark.parametrize(
    ("body", "rule"),
    [
        ("<p>Error: Unknown column &#39;abc&#39; in &#39;where clause&#39;</p>", "951110"),
        ("<pre>ERROR:  column &quot;nam&quot; does not exist</pre>", "951120"),
        ("<div>Incorrect syntax near &#x27;x&#x27;.</div>", "951130"),
        ("<td>sqlite3.OperationalError: no such column: usernam</td>", "951150"),
        ("<p>near &quot;ORDER&quot;: syntax error</p>", "951150"),
    ],
)
def test_escaped_sql_errors_are_leaks(body: str, rule: str) -> None:
    assert rule in _sniffed("<html><body>" + body + "</body></html>")


def test_escaped_ordinary_page_is_not_a_leak() -> None:
    page = "<p>Tom &amp; Jerry&#39;s &quot;best&quot; episodes &lt;3</p><p>There is no such column here.</p>"
    assert _sniffed(page) == []

"""The readings of a value: where an application may paste it, and where the value then
breaks out of its string (the first quote that is not doubled).

The value is read **as-is** (a number or an unquoted fragment: ``WHERE id = <value>``),
**after a single quote**, **after a double quote** and after a backtick (up to the
break-out the value is string content, what follows must parse as SQL), and the same
after typographic quotes that "best fit" code-page conversions turn into ASCII ones.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

# Typographic quotes that "best fit" code-page conversions (MSSQL varchar, some drivers)
# turn into ASCII ones: \u2019 OR \u20191\u2019=\u20191 breaks out of a string there.
_BEST_FIT = str.maketrans(
    {
        "\u2018": "'",  # left single quotation mark
        "\u2019": "'",  # right single quotation mark
        "\u02bc": "'",  # modifier letter apostrophe
        "\u00b4": "'",  # acute accent
        "\uff07": "'",  # fullwidth apostrophe
        "\u2032": "'",  # prime
        "\u201c": '"',  # left double quotation mark
        "\u201d": '"',  # right double quotation mark
        "\uff02": '"',  # fullwidth quotation mark
        "\u2033": '"',  # double prime
    }
)


# Runs of one quote character: an even run is escaped quotes, an odd one ends the string.
_RUNS = {q: re.compile(re.escape(q) + "+") for q in ("'", '"', "`")}
#: Runs of doubled quotes looked through before giving up on a break-out.
MAX_QUOTE_RUNS = 32


def _break_out(text: str, q: str) -> int:
    """Where a value pasted between ``q`` quotes ends the string: the first ``q`` that is
    not doubled ('O''Brien' is one string), or -1."""
    i = text.find(q)
    if i < 0 or not text.startswith(q, i + 1):
        return i  # the common case: a single quote
    run = _RUNS[q]
    for _ in range(MAX_QUOTE_RUNS):
        m = run.match(text, i)
        if m is None:  # pragma: no cover - text[i] is q
            return -1
        if (m.end() - i) % 2:
            return m.end() - 1
        i = text.find(q, m.end())
        if i < 0:
            return -1
    return -1


#: One reading of a value: ``(quote, start, text)``, the quote broken out of ("" as-is),
#: where SQL starts, and the text. A plain tuple, unpacked by name where it is read: it is
#: made once per reading of every value, and a NamedTuple costs ten times as much.
Reading = tuple[str, int, str]


def readings(value: str) -> Iterator[Reading]:
    """Each reading: as-is, after the break-out of ', of " and of `."""
    yield ("", 0, value)
    seen = []
    for q in ("'", '"', "`"):
        i = _break_out(value, q)
        if i >= 0:
            seen.append((q, i))
            yield (q, i + 1, value)
    if not value.isascii():
        alt = value.translate(_BEST_FIT)
        if alt != value:
            for q in ("'", '"'):
                i = _break_out(alt, q)
                if i >= 0 and (q, i) not in seen:
                    yield (q, i + 1, alt)

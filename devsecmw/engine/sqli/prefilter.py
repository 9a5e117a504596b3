"""The operator's prefilter: an RE2 pattern every value :func:`detect` reports matches."""

from __future__ import annotations

import re

from .vocabulary import FN_ALONE, FN_SQL, STMT_NEXT, SYSOBJ_ALONE, SYSPROC


def _alternation(words: frozenset[str] | set[str]) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=lambda w: (-len(w), w)))  # stable: a cache key


#: RE2 pattern every value :func:`detect` reports matches (a property test checks
#: it), so that most benign values never reach the tokenizer: a quote, a comparison,
#: a comment opener, a cast, ``@@``, ``||``, a ``;`` a statement can follow, a call
#: of an SQL function, or one of the few keywords an injection can rest on alone
#: (``1 union select 1``, ``1 order by 3``, ``tempdb``). :func:`detect_strict` is not
#: covered: its rule carries a broader prefilter of its own.
PREFILTER = (
    # Quotes, comparisons, comments, casts, @@variables, pipes: most injections have one.
    # (typographic quotes too: see contexts._BEST_FIT).
    "(?i)['\"`#=<>\u2018\u2019\u02bc\u00b4\uff07\u2032\u201c\u201d\uff02\u2033]"
    r"|--|/\*|::|@@|@\?|\?[|&]|\|\||&&|"
    # ";" only where a statement can start after it, or at the very end: not "; Win64".
    r";[\s+]*(?:$|[;(]|(?:" + _alternation(frozenset(STMT_NEXT) | FN_SQL) + r")\b)|"
    # Calls that are injections alone, and MySQL's 1.e( glue.
    r"\b(?:" + _alternation(FN_ALONE | FN_SQL) + r")[\s+]*\(|\d\.e\b|"
    # Keywords that make an injection without any of the characters above.
    # ("[\s+]": a raw form body spells spaces "+").
    r"\b(?:exec(?:ute)?[\s+]*[(@]|exec(?:ute)?[\s+]+(?:xp|sp)_|declare[\s+]+@|"
    r"(?:r?like|regexp|glob)[\s+]*[-+.\d(]|analy[sz]e[\s+]*\()|"
    # "AND 1 BETWEEN 0 AND 2": a comparison spelled without "=" (sqlmap's between tamper).
    r"\b(?:and|or|xor)[\s+]+(?:not[\s+]+)?[-+]?\d+[\s+]+between[\s+]|"
    r"\b(?:union|select|having|waitfor|(?:order|group)[\s+]+by|case(?:[\s+]+\S+)?[\s+]+when|"
    r"into[\s+]+(?:out|dump)file|procedure[\s+]+analy[sz]e|execute[\s+]+immediate|exec[\s+]+master|"
    # ") AS total FROM": a select-list tail (the alias is one token).
    r"as[\s+]+[^\s+]{1,128}[\s+]+from|" + _alternation(SYSOBJ_ALONE | SYSPROC) + r")\b"
)

"""Candidate patterns of the XSS checks, and the gate that says which checks a value needs.

A candidate pattern is scanned by RE2 (linear time, and fast when matches are rare) over
the value encoded one byte per character, then matched by ``re`` at each hit for its
groups and look-arounds. All patterns read the lower-cased value; a boundary before a
word is checked in Python (``ScanBase.candidates``) so that each pattern starts with a literal.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from ..matcher import loosen, walk_pattern

try:  # pragma: no cover - import-time platform probe
    import re2 as _re2
except ImportError:  # pragma: no cover
    _re2 = None

#: What RE2's ``\s`` misses of Python's (on Latin-1 text): ``\v``, the separators, NEL, NBSP.
_RE2_WS = "\\t-\\r\\x1c-\\x20\\x85\\xa0"


_LOOKAROUNDS = ("(?=", "(?!", "(?<=", "(?<!")


def _re2_form(p: str) -> str:
    r"""``p`` for RE2: look-arounds dropped (a superset; ``re`` re-checks each hit), ``\s`` widened."""
    out: list[str] = []
    depth = 0  # inside a dropped look-around: its parenthesis depth
    for piece in walk_pattern(p):
        if depth:
            depth += (piece.kind == "group") - (piece.kind == "close")
        elif piece.kind == "group" and p.startswith(_LOOKAROUNDS, piece.start):
            depth = 1
        elif piece.text == "\\s":
            out.append(_RE2_WS if piece.in_class else f"[{_RE2_WS}]")
        else:
            out.append(piece.text)
    return "".join(out)


def _re2_options() -> Any:
    assert _re2 is not None
    opts = _re2.Options()
    opts.encoding = _re2.Options.Encoding.LATIN1
    opts.max_mem = 16 << 20
    opts.log_errors = False
    return opts


class Finder:
    """One candidate pattern: RE2 finds where it may match, ``re`` confirms and gives the groups."""

    __slots__ = ("r2", "rx", "source")

    def __init__(
        self, pattern: str, flags: int = 0, re2_pattern: str | None = None, word: bool = False
    ) -> None:
        self.rx = re.compile(pattern, flags)
        self.source = _re2_form(re2_pattern if re2_pattern is not None else pattern)
        if word:  # a word start: RE2 skips ``condition=`` as ``ScanBase.candidates`` would (a superset)
            self.source = rf"\b(?:{self.source})"
        if flags & re.S:
            self.source = "(?s)" + self.source
        self.r2: Any = None
        if _re2 is not None:
            self.r2 = _re2.compile(self.source.encode("latin-1"), _re2_options())


#: ``<`` + a tag that is dangerous by name (optionally namespaced: ``<x:script``).
F_DANGER_TAG = Finder(
    r"<(?:[a-z][a-z0-9_.-]{0,24}:)?"
    r"(script|iframe|frame|frameset|object|embed|applet|base|meta|link|style|xml|vmlframe|layer|ilayer"
    r"|bgsound|import|\?import)(?![a-z0-9_.:-])"
)
#: A script tag assembled from pieces: ``'<scr'+'ipt>'``, ``echo('<scr)';echo('ipt>...')``.
F_SPLIT_SCRIPT = Finder(r"<scr[^<>]{0,60}?['\"`+][^<>]{0,60}?ipt[\s/>]")
#: Paranoia 2: markup that is unusual in user content even without an active attribute.
F_STRICT_TAG = Finder(
    r"<(/?)(?:[a-z][a-z0-9_.-]{0,24}:)?"
    r"(svg|math|form|meta|link|style|script|textarea|title|noscript|xmp|noembed|noframes|template|isindex)"
    r"(?![a-z0-9_.:-])"
)
#: An event-handler attribute: ``on`` + letters, optional junk (``onload!#$%&()=``), then ``=``.
F_HANDLER = Finder(r"on([a-z]{3,40})[^\s=>\"'a-z0-9]{0,40}\s{0,16}=", word=True)
#: Event bindings of client-side frameworks (AngularJS, Vue, Alpine): code like ``on...=``.
F_FRAMEWORK_HANDLER = Finder(
    r"(?:ng-[a-z-]{2,30}|v-on:[a-z.-]{2,30}|x-on:[a-z.-]{2,30}|@[a-z][a-z.-]{1,30})\s{0,16}="
)
#: A URL attribute whose value starts like a script or data URL, possibly obfuscated with
#: entities or control characters (``&#106;avascript:``, ``jav&#x09;ascript:``, ``\x01javascript:``).
F_URL_ATTR = Finder(
    r"(href|src|action|formaction|data|xlink:href|background|lowsrc|dynsrc|poster|codebase|ping|cite"
    r"|longdesc|code|classid)\s{0,16}=\s{0,16}([\"'`]?)\s{0,16}"
    r"(?:[\x00-\x1f\x7f-\xff]|&(?:#|[a-z]{2,12};)){0,32}"
    r"(?:[&%\\]|[jvlmd][\x00-\x1f\x7f-\xff]{0,8}[&abiho])",
    word=True,
)
#: ``srcdoc``: a whole document in an attribute.
F_SRCDOC = Finder(r"srcdoc\s{0,16}=", word=True)
#: SMIL animation values that set an attribute to a script URL or markup: ``values="x;javascript:..."``.
F_SMIL = Finder(r"(values|to|from|by)\s{0,16}=\s{0,16}[\"'`]?[^\"'`>]{0,256}?(?:script|<)", word=True)
#: IE data binding attributes: they render a data island's content as HTML.
F_DATABIND = Finder(r"data(?:src|fld|formatas)\s{0,16}=", word=True)
#: A quote, optional closers, a JS operator, then something called: ``';alert(1)//``, ``"-alert(1)-"``.
F_QUOTE_BREAK = Finder(
    r"(['\"`])[\s)\]}]{0,8}((?:[;,+\-*/%|&^?:<>=!~]{1,3}|(?:in|instanceof|typeof|void|new|delete)\s)"
    r"\s{0,8}[\w$.\[\]'\"+`]{0,60}?[\w$\])][(`])"
)
#: What follows an injected call when the rest of the original string must still parse.
RX_JS_TAIL = re.compile(r"\s{0,8}(?://|<!--|-->|;|[-+*/%|&^,?:<>=]{1,3}\s{0,8}\\?['\"`]|\)\s{0,8}[;,]|\})")
#: A quote, an operator, then a write to a property that navigates or runs code: ``';location=...``.
F_QUOTE_ASSIGN = Finder(
    r"(['\"`])[\s)\]}]{0,8}(?:[;,+\-*/%|&^?:<>!~]{1,3}|in\s)\s{0,8}(?:[\w$]{1,30}\s{0,4}\.\s{0,4}){0,4}"
    r"(?:location|onerror|onload|valueof|tostring|cookie|innerhtml|outerhtml|href|src|domain)\s{0,4}=(?!=)"
)
#: A call of a JS sink, the Function constructor, a cookie/domain read or write, a markup write.
F_SINK = Finder(
    r"(?:(alert|prompt|confirm)(?=[(`])"  # English words too: only ``alert(``, not ``alert (``
    r"|(eval|settimeout|setinterval|execscript|msgbox|fromcharcode)\s{0,4}(?=[(`])"
    r"|(new\s{1,4}function\s{0,4}\(|function\s{0,4}\(\s{0,4}['\"`])"
    r"|(document\s{0,4}\.\s{0,4}(?:cookie|domain|write(?:ln)?\s{0,4}\())"
    r"|((?:inner|outer)html\s{0,4}=(?!=)))",
    re2_pattern=r"(?:alert|prompt|confirm)[(`]|(?:eval|settimeout|setinterval|execscript|msgbox|fromcharcode)"
    r"\s{0,4}[(`]|new\s{1,4}function\s{0,4}\(|function\s{0,4}\(\s{0,4}['\"`]"
    r"|document\s{0,4}\.\s{0,4}(?:cookie|domain|write)|(?:inner|outer)html\s{0,4}=",
    word=True,
)
#: A timer given code as a string, or a sink: ``setTimeout('alert(1)')``, ``setTimeout(alert,0)``.
RX_TIMER_EVAL = re.compile(r"\s{0,4}[(`]\s{0,4}(?:['\"`]|(?:alert|prompt|confirm|eval)\b)")
RX_GLOBAL_DOT = re.compile(r"(?<![\w$.])(?:window|top|self|parent|this|globalthis|frames)\s{0,4}\.\s{0,4}\Z")
#: Bracket access on a global object: ``top['al'+'ert'](1)``, ``self[/*x*/'alert'](1)``.
F_GLOBAL = Finder(
    # No space before ``[`` (unless a comment hides it): ``this [link](url)`` is Markdown.
    r"(?:top|window|self|this|parent|frames|globalthis|document|content|opener)(?:\s{0,4}/\*.{0,64}?\*/\s{0,4})?\[",
    word=True,
)
#: Function-constructor and parenthesis-free call tricks.
F_CTOR = Finder(
    r"constructor\s{0,8}\.\s{0,8}constructor\s{0,8}\(|\[\s{0,8}['\"`]constructor['\"`]\s{0,8}\]\s{0,8}\("
    r"|\.\s{0,8}(?:call|apply|bind)\s{0,8}`|import\s{0,4}\(\s{0,4}['\"`]"
)
#: AngularJS-style client-side template expressions: ``{{constructor.constructor('alert(1)')()}}``.
F_TEMPLATE = Finder(
    r"\{\{(?:[^}]|\}(?!\})){0,300}?(?:constructor|\$eval|\$on\b|\$parse|__proto__|\$window|fromcharcode"
    r"|\b(?:alert|prompt|confirm)\s{0,8}\(|\)\s{0,8}\()",
    re.S,
)
#: Expressions of a JS template literal: ``${alert(1)}``.
F_TEMPLATE_LITERAL = Finder(r"\$\{\s{0,8}[\w$.\[\]'\"]{1,60}?\s{0,4}[(`]")
#: Netscape JS entities in attribute values: ``<br size="&{alert(1)}">``.
F_JS_ENTITY = Finder(r"&\{")
#: JSFuck / hieroglyphy fragments (Markdown's ``![](url)`` is followed by ``(``, never by these).
F_JSFUCK = Finder(r"!\s{0,4}\+\s{0,4}\[\s{0,4}\]|!\s{0,4}\[\s{0,4}\]\s{0,4}[+)\]]|\+\s{0,4}\[\s{0,4}\]")
#: ``javascript:`` and friends inside a value.
F_SCHEME = Finder(r"(?:java|vb|live)script\s{0,4}:", word=True)
#: ``data:`` documents inside a value: ``data:text/html;base64,...``.
F_DATA_DOC = Finder(
    r"data:\s{0,4}(?:text/html|application/xhtml|image/svg\+xml|text/xml)([^,]{0,64}),", word=True
)
#: CSS that runs script or binds behaviour, on the normalised CSS view.
F_CSS_BAD = Finder(
    r"(?:^|[:=,(])\s{0,16}expression\s{0,16}(\()"
    r"|url\s{0,16}\(\s{0,16}['\"]?\s{0,16}(?:javascript|vbscript|livescript)\s{0,16}(?::|$)"
    r"|behaviou?r\s{0,16}:\s{0,16}url|binding\s{0,16}:\s{0,16}url"
    # @import of a style sheet that is not https (a web font is): at a rule's start.
    r"|(?:^|[>{};'\"]|<style[^>]{0,64}>)\s{0,16}@import(?!\s{0,16}(?:url\s{0,16}\(\s{0,16})?['\"]?\s{0,8}https://)"
)
#: Is there any CSS to read? (A necessary condition of what ``F_CSS_BAD`` finds after normalising.)
_CSS_HINT = r"style|expr|ession|behavio|binding|@import|@\\|url\s{0,8}\(|\\[0-9a-f]"

#: A script URL's body when it is code: punctuation, or ``name(`` / ``name=`` / ``name[``.
SCHEME_BODY = re.compile(r"[\"'`/(\[{!+\-~\\%]|[a-z_$][\w$.]*[=(\[`]")
#: Characters a (possibly obfuscated) ``javascript:``/``vbscript:``/``data:`` value can start with.
#: Whole-value filter probes: an encoded ``<`` (``&#x003C``, ``&lt``, ``\x3c``).
RX_PROBE = re.compile(r"&(?:lt|#0*60|#x0*3c);?|\\(?:x3c|u0*3c|u\{0*3c\})")


#: Checks and the candidate patterns (on the lower-cased text; the entity-decoded text is
#: appended when it differs) that gate them: one RE2 set pass tells which checks to run.
class Check(NamedTuple):
    """A check of the scan (a method name) and the candidate patterns that gate it."""

    name: str
    sources: tuple[str, ...]


CHECKS: tuple[Check, ...] = (
    Check("danger_tags", (F_DANGER_TAG.source, F_SPLIT_SCRIPT.source)),
    Check("handlers", (F_HANDLER.source, F_FRAMEWORK_HANDLER.source)),
    Check("url_attrs", (F_URL_ATTR.source, F_SRCDOC.source, F_SMIL.source, F_DATABIND.source)),
    Check("css", (_re2_form(_CSS_HINT),)),
    Check("schemes", (F_SCHEME.source, F_DATA_DOC.source)),
    Check("quote_breaks", (F_QUOTE_BREAK.source,)),
    Check("quote_assigns", (F_QUOTE_ASSIGN.source,)),
    Check("sinks", (F_SINK.source,)),
    Check("globals_", (F_GLOBAL.source, F_CTOR.source)),
    Check("templates", (F_TEMPLATE.source, F_TEMPLATE_LITERAL.source)),
    Check("misc", (F_JS_ENTITY.source, F_JSFUCK.source)),
    Check("strict_tags", (F_STRICT_TAG.source,)),
)
GATE_CHECK: list[int] = []  # gate pattern index -> index in CHECKS
GATES: Any = None
if _re2 is not None:  # pragma: no branch - without RE2 every check runs
    GATES = _re2.Set.SearchSet(_re2_options())
    for _n, (_check, _sources) in enumerate(CHECKS):
        for _source in _sources:
            GATES.Add(loosen(_source).encode("latin-1"))  # large counted repeats open: a small DFA
            GATE_CHECK.append(_n)
    GATES.Compile()


def latin1(text: str) -> bytes:
    """One byte per character (what RE2 scans): characters beyond Latin-1 become ``?``."""
    return text.encode("latin-1", "replace")

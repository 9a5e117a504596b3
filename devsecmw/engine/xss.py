"""XSS detector: does a value inject active content into the page it is reflected in?

A reflected value can land in several contexts: HTML text, inside a double-,
single- or un-quoted attribute value, inside a string of a script, or inside a
style. Running a full tokenizer per context from every offset would be
quadratic (and slow in Python), so the detector works in three stages:

1. **Gate.** One RE2 set pass over the lower-cased value (and its entity-decoded
   form) says which checks have a candidate at all; most values need one or two.
2. **Candidates.** Each check has patterns for where active content could start:
   a dangerous tag name right after ``<``, an ``on...=`` attribute, a URL
   attribute whose value starts like ``javascript:``, a quote followed by a JS
   operator and a call, a call of a JS sink... RE2 scans for them (linear, and
   fast when they are rare); ``re`` matches at each hit for the groups.
3. **Verification** of each candidate in a bounded window, the way a browser
   would read it: the enclosing start tag is parsed like an HTML5 tokenizer
   (quoting, ``/`` separators, attribute values that hide ``>``), attribute
   values are entity-decoded and stripped of the characters browsers ignore in
   URL schemes (``jav&#x09;ascript:``), CSS is read without comments and
   escapes, and JS is tokenised to tell a call (``alert(1)``) from prose that
   merely mentions a word (``alert (from the bank)``) or code whose strings the
   value opened and closed itself (``f("a", g(1))``).

Work is bounded: windows are capped, and candidates per value are capped in
proportion to its length. Markup-shaped candidates share one budget, and a value
that exhausts it is reported: benign text does not carry a hundred of them. The
checks that also read ordinary source code (JS break-outs, sinks, globals) each
have their own budget and stop quietly when it is spent.

The module exposes ``PREFILTER`` (RE2 syntax: every value the detector reports
matches it), ``detect(value) -> (start, end) | None``, and ``make_detector(param)``
for rule parameters: ``{"strict": true}`` (paranoia 2: also lone ``<svg>``,
``<form>``, ``<style>``, ``</script>`` break-outs, sink calls inside prose) and
``{"mode": "raw_body"}`` (unparsed bodies: each text node and attribute of an XML
document, entity-decoded).
"""

from __future__ import annotations

import base64
import binascii
import re
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from html.entities import html5 as _HTML5
from typing import Any

from .matcher import compile_pattern, loosen

Span = tuple[int, int]

#: What :func:`detect_probe` reports is a whole value matching this (RE2 syntax).
PROBE_PREFILTER = r"(?im)^\s*(?:on[a-z]{3,40}|&(?:lt|#0*60|#x0*3c);?|\\(?:x3c|u0*3c|u\{0*3c\}))\s*$"
#: Every value the detector reports contains one of these (RE2 syntax). Broad on purpose:
#: it only decides whether the detector runs at all; most benign values never match it.
PREFILTER = (
    r"(?i)<[a-z!/?]|¼|ADw-|\bon[a-z]{3,}[^a-z0-9=]{0,60}="
    r"|\\(?:x[0-9a-f]{2}|u[0-9a-f]{4}|u\{)|script|mocha:|mhtml:|&#|&[a-z]{2,10};|&\{|\bdata\s*:"
    r"|\b(?:href|src|action|formaction|data[a-z]{0,12}|srcdoc|background|lowsrc|dynsrc|poster|codebase"
    r"|values|to|from|by|ping|cite|longdesc|code|classid|style)\s*="
    r"|expr|ression|behaviou?r|binding|@import|@\\|url\s*\(|\\[0-9a-f]{2}"
    r"|\{\{|\$\{|!\+?\[\]|\+\[\]|\.\s*(?:call|apply|bind)\s*`"
    r"|\b(?:alert|prompt|confirm|eval|settimeout|setinterval|execscript|msgbox|fromcharcode|function"
    r"|import)\s*[(`]"
    r"|\b(?:top|window|self|this|parent|frames|globalthis|document|content|opener)\s*(?:/\*[^*]*\*/\s*)?\["
    r"|\bdocument\s*\.|\b(?:inner|outer)html\s*=|constructor"
    r"|['\"`]\s*[)\]}]{0,8}\s*(?:[;,+\-*/%|&^?:<>=!~]|\bin\s|\binstanceof\s|\btypeof\s|\bvoid\s|\bnew\s|\bdelete\s)"
)

# --------------------------------------------------------------------------- vocabulary


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


#: DOM event names (without the ``on`` prefix): element, window, media, SVG/SMIL
#: animation, pointer/touch/drag events, and the legacy IE ones attack lists still use.
EVENT_NAMES = _words(
    "abort activate afterprint afterscriptexecute afterupdate animationcancel animationend "
    "animationiteration animationstart auxclick beforeactivate beforecopy beforecut "
    "beforedeactivate beforeeditfocus beforeinput beforematch beforepaste beforeprint "
    "beforescriptexecute beforetoggle beforeunload beforeupdate begin blur bounce cancel "
    "canplay canplaythrough cellchange change click close command contextlost contextmenu "
    "contextrestored contentvisibilityautostatechange controlselect copy cuechange cut "
    "dataavailable datasetchanged datasetcomplete dblclick deactivate drag dragdrop dragend "
    "dragenter dragexit dragleave dragover dragstart drop durationchange emptied end ended "
    "error errorupdate filterchange finish focus focusin focusout formdata fullscreenchange "
    "fullscreenerror gotpointercapture hashchange help input invalid keydown keypress keyup "
    "layoutcomplete load loadeddata loadedmetadata loadend loadstart losecapture "
    "lostpointercapture message messageerror mousedown mouseenter mouseleave mousemove "
    "mouseout mouseover mouseup mousewheel move moveend movestart mozfullscreenchange offline "
    "online pagehide pagereveal pageshow pageswap paste pause play playing pointercancel "
    "pointerdown pointerenter pointerleave pointermove pointerout pointerover pointerrawupdate "
    "pointerup popstate progress propertychange ratechange readystatechange repeat reset "
    "resize rowenter rowexit rowsdelete rowsinserted scroll scrollend scrollsnapchange "
    "scrollsnapchanging search securitypolicyviolation seeked seeking select selectionchange "
    "selectstart show slotchange stalled start stop storage submit suspend timeupdate toggle "
    "touchcancel touchend touchmove touchstart transitioncancel transitionend transitionrun "
    "transitionstart unhandledrejection unload volumechange waiting webkitanimationend "
    "webkitanimationiteration webkitanimationstart webkitmouseforcechanged "
    "webkitmouseforcedown webkitmouseforceup webkitmouseforcewillbegin "
    "webkitplaybacktargetavailabilitychanged webkittransitionend webkitwillrevealbottom "
    "wheel zoom "
    # Internet Explorer's own (HTML+TIME, data binding, editing), still in every attack list.
    "mediacomplete mediaerror outofsync redo resizeend resizestart resume reverse rowdelete "
    "rowinserted rowsenter seek syncrestored timeerror trackchange undo urlflip"
)

#: JS functions that execute code or show that it ran: calling one is what a payload is for.
_SINKS = _words("alert prompt confirm eval settimeout setinterval execscript msgbox fromcharcode")
#: Globals whose methods or properties a payload reaches for.
_GLOBALS = _words("top window self parent frames globalthis document location")
#: Properties whose assignment navigates, writes markup or steals: ``document.cookie=...``.
_SINK_PROPS = _words("cookie location href src innerhtml outerhtml domain onerror onload action")
#: Keywords after which an operand is expected (``new X``, ``typeof x``, ``return f()``).
_JS_PREFIX_KW = _words(
    "new typeof void delete return throw await yield case do else var let const async function if"
    " while for with try catch finally"
)
_JS_BINARY_KW = frozenset({"in", "instanceof", "of"})

_SCRIPT_SCHEMES = ("javascript:", "vbscript:", "livescript:", "mocha:")
#: ``data:`` media types a browser renders as a document or runs as a script.
_ACTIVE_DATA = (
    *("text/html", "application/xhtml", "image/svg", "text/xml", "application/xml"),
    *("text/javascript", "application/javascript", "application/x-javascript", "text/ecmascript"),
    *("application/ecmascript", "text/vbscript", "text/x-scriptlet"),
)
#: Tags that load and run foreign content whatever their attributes.
_ACTIVE_TAGS = frozenset({"script", "object", "embed", "applet", "vmlframe", "iframe", "frame", "frameset"})
#: Tags where a ``data:`` URL of any media type is active (the document or script it loads runs).
_DATA_HOST_TAGS = frozenset({"script", "iframe", "frame", "object", "embed", "applet"})
#: Tags that show an image: an SVG ``data:`` URL there runs no script.
_IMAGE_TAGS = frozenset({"img", "image", "input", "picture", "source"})
#: What ``<link rel>`` / ``<meta http-equiv>`` / charsets of an ordinary pasted page say.
_PLAIN_LINK_RELS = frozenset(
    {"stylesheet", "icon", "shortcut", "apple-touch-icon", "preconnect", "dns-prefetch", "canonical"}
    | {"alternate", "preload", "manifest", "author", "license", "prev", "next"}
)
_PLAIN_META_EQUIV = frozenset({"content-type", "x-ua-compatible", "content-language"})
_PLAIN_CHARSETS = _words("utf-8 utf8 iso-8859-1 windows-1252 us-ascii shift_jis euc-jp gb2312 big5")
#: Raw-text elements: their end tag lets a value escape a script, style or title (paranoia 2).
_RAWTEXT_TAGS = frozenset({"script", "style", "textarea", "title", "noscript", "xmp", "noembed", "noframes"})

# --------------------------------------------------------------------------- limits

_BUDGET_BASE = 48  # candidates verified per value: this many,
_BUDGET_PER = 1024  # plus one per this many characters
_TAG_WINDOW = 2048  # how far back an attribute may be from its ``<tag``
_VALUE_WINDOW = 512  # how much of an attribute value is decoded and inspected
_JS_WINDOW = 256  # how much JS is tokenised from a candidate
_JS_TOKENS = 48
_MAX_ATTRS = 48
_MAX_DECODES = 256  # character references / JS escapes decoded in a whole value
_PROBE_MAX = 48  # whole-value probes are short

# --------------------------------------------------------------------------- normalisation

_ASCII_LOWER = {c: c + 32 for c in range(0x41, 0x5B)}
# Full-width forms of ASCII (U+FF01..U+FF5E) and look-alike angle brackets: an app that
# NFKC-normalises its input turns them into markup. Folding keeps the length (and offsets).
_FULLWIDTH: dict[int, int] = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)}
_FULLWIDTH.update({c: c - 0xFEE0 + 0x20 for c in range(0xFF21, 0xFF3B)})  # upper-case letters
_FULLWIDTH.update({0xFE64: 0x3C, 0xFE65: 0x3E, 0x2039: 0x3C, 0x203A: 0x3E})
_FULLWIDTH_ANY = re.compile("[\uff01-\uff5e\ufe64\ufe65\u2039\u203a]")


def _lower(value: str) -> str:
    """Lower-case without changing the length (so offsets stay valid); fold full-width ASCII."""
    low = value.lower()
    if len(low) != len(value):  # "İ" lowers to two code points: fold ASCII only
        low = value.translate(_ASCII_LOWER)
    if not low.isascii() and _FULLWIDTH_ANY.search(low):
        low = low.translate(_FULLWIDTH)
    return low


def _rewrite(
    text: str, rx: re.Pattern[str], fn: Callable[[re.Match[str]], str | None], limit: int
) -> tuple[str, list[tuple[int, int]]]:
    """Replace matches of ``rx`` by ``fn(match)`` (None keeps the match), at most ``limit`` of them.

    Returns the new text and anchors ``(new_pos, old_pos)`` after each replacement, so
    that offsets found in the new text map back to the old one (:func:`_map_back`).
    """
    out: list[str] = []
    anchors: list[tuple[int, int]] = []
    pos = size = 0
    for n, m in enumerate(rx.finditer(text)):
        if n >= limit:
            break
        rep = fn(m)
        if rep is None:
            continue
        out.append(text[pos : m.start()])
        out.append(rep)
        size += m.start() - pos + len(rep)
        pos = m.end()
        anchors.append((size, pos))
    if not anchors:
        return text, anchors
    out.append(text[pos:])
    return "".join(out), anchors


def _map_back(anchors: list[tuple[int, int]], pos: int) -> int:
    i = bisect_right(anchors, (pos, 1 << 62)) - 1
    if i < 0:
        return pos
    new, old = anchors[i]
    return old + (pos - new)


def _map_span(anchors: list[tuple[int, int]], span: Span, size: int) -> Span:
    if not anchors:
        return span
    a = max(0, min(_map_back(anchors, span[0]), size))
    return a, max(min(_map_back(anchors, span[1]), size), min(a + 1, size))


# Character references: numeric (with or without ``;``) and named (HTML5 table, case-folded
# because the detector reads lower-cased text; the lower-case spelling wins a collision).
_RX_ENTITY = re.compile(r"&(?:#(?:x([0-9a-f]{1,8})|([0-9]{1,10}))|([a-z][a-z0-9]{1,31}))(;?)")
_ENTITIES: dict[str, str] = {}
for _name, _text in sorted(_HTML5.items(), key=lambda kv: kv[0] != kv[0].lower()):
    _ENTITIES.setdefault(_name.lower(), _text)


def _decode_entity(m: re.Match[str]) -> str | None:
    hx, dec, name, semi = m.groups()
    if name is not None:
        return _ENTITIES.get(name + ";") if semi else _ENTITIES.get(name)
    cp = int(hx, 16) if hx is not None else int(dec)
    return chr(cp) if 0 < cp <= 0x10FFFF and not 0xD800 <= cp <= 0xDFFF else "\ufffd"


def unescape(text: str, limit: int = _MAX_DECODES) -> tuple[str, list[tuple[int, int]]]:
    """Decode character references (at most ``limit``) the way a browser does in attribute values.

    Returns the decoded text and anchors to map offsets back. A second round decodes what
    the first revealed (``&amp;#106;`` -> ``&#106;`` -> ``j``); its offsets map approximately.
    """
    if "&" not in text:
        return text, []
    decoded, anchors = _rewrite(text, _RX_ENTITY, _decode_entity, limit)
    if anchors and "&" in decoded and len(anchors) < limit:
        decoded = _rewrite(decoded, _RX_ENTITY, _decode_entity, limit - len(anchors))[0]
    return decoded, anchors


#: JS escapes (``\x3c``, ``\u0061``, ``\u{61}``). Not octal: that would eat CSS escapes
#: such as ``\0075``, which the CSS reader decodes itself.
_RX_JS_ESCAPE = re.compile(r"\\(?:x([0-9a-fA-F]{2})|u\{([0-9a-fA-F]{1,6})\}|u([0-9a-fA-F]{4}))")


def _decode_js_escape(m: re.Match[str]) -> str | None:
    cp = int(m.group(1) or m.group(2) or m.group(3), 16)
    return chr(cp) if cp <= 0x10FFFF and not 0xD800 <= cp <= 0xDFFF else None


#: What a URL parser ignores or strips from a scheme (C0 controls, space, DEL, C1), and what
#: XML-island tricks insert into one (``javas<!-- -->cript:``, ``javas]]><![CDATA[cript:``).
_URL_JUNK = re.compile(r"[\x00-\x20\x7f-\x9f]+|<!--.*?-->|<!\[cdata\[|\]\]>?", re.S)
_URL_LEAD_JUNK = re.compile(r"[^\x21-\x7e]+")


def _url_norm(raw: str) -> str:
    """An attribute value as a URL parser reads its scheme: decoded, junk removed, lower-case."""
    v = raw[:_VALUE_WINDOW]
    if "&" in v:
        v = _lower(unescape(v, 128)[0])
    v = _URL_JUNK.sub("", v)
    lead = _URL_LEAD_JUNK.match(v)
    return v[lead.end() :] if lead is not None else v


_RX_ACTIVE_MARKUP = re.compile(
    r"<(?:script|svg|iframe|frame|img|object|embed|body|math|style|link|meta|base)[\s/>]"
    r"|\bon[a-z]{3,}\s*=|script:"
)


def _dangerous_url(norm: str, tag: str = "") -> bool:
    """A normalised URL that runs script where ``tag`` would load or follow it."""
    if norm.startswith(_SCRIPT_SCHEMES) or norm.startswith("mhtml:"):
        return True
    if not norm.startswith("data:"):
        return False
    mime = norm[5:69]
    if mime.startswith(_ACTIVE_DATA):
        return not (mime.startswith("image/svg") and tag in _IMAGE_TAGS)
    if mime.startswith(("image/", "audio/", "video/", "font/")):
        return False  # rendered as media whatever the payload says
    if tag in _DATA_HOST_TAGS:
        return True
    comma = norm.find(",", 5, 200)
    if comma < 0:
        return False
    payload = norm[comma + 1 : comma + 400]
    if "base64" in norm[5:comma]:
        payload = _b64_text(payload)
    return _RX_ACTIVE_MARKUP.search(payload) is not None


def _b64_text(data: str) -> str:
    """The start of a base64 payload as lower-case text ('' when it is not base64)."""
    data = data[: len(data) - len(data) % 4]
    try:
        return base64.b64decode(data).decode("latin-1").lower()
    except (binascii.Error, ValueError):
        return ""


_CSS_COMMENT = re.compile(r"/\*.*?(?:\*/|\Z)", re.S)
_CSS_ESCAPE = re.compile(r"\\([0-9a-f]{1,6})\s?|\\(.)", re.S)


def _css_escape(m: re.Match[str]) -> str:
    hx, other = m.groups()
    if hx is not None:
        cp = int(hx, 16)
        return chr(cp) if 0 < cp <= 0x10FFFF and not 0xD800 <= cp <= 0xDFFF else ""
    return "" if other in "\r\n" else other


def _css_norm(text: str) -> str:
    """CSS as a browser tokenises it: comments dropped, escapes decoded, lower-case."""
    if "/*" in text:
        text = _CSS_COMMENT.sub("", text)
    if "\\" in text:
        text = _rewrite(text, _CSS_ESCAPE, _css_escape, _MAX_DECODES)[0]
    return text.lower()


# --------------------------------------------------------------------------- JS tokenizer

_JS_TOKEN = re.compile(
    r"(?P<ws>\s+)"
    r"|(?P<comment>//[^\n]*|<!--[^\n]*|/\*.*?(?:\*/|\Z))"
    r"|(?P<ident>[^\W\d][\w$]*|\$[\w$]*)"
    r"|(?P<num>\d[\w.]*|\.\d\w*)"
    r"|(?P<str>\"(?:[^\"\\\n]|\\.)*\"|'(?:[^'\\\n]|\\.)*')"
    r"|(?P<tpl>`(?:[^`\\]|\\.)*`)"
    r"|(?P<punct>\.\.\.|=>|[=!]==?|<<=?|>>>?=?|[<>]=?|&&=?|\|\|=?|\?\?=?|\?\.(?!\d)|\+\+|--|\*\*=?"
    r"|[-+*/%&|^]=?|[=~!?:.,;()\[\]{}])",
    re.S,
)
_JS_REGEX = re.compile(r"/(?![*/])(?:[^/\\\n\[]|\\.|\[(?:[^\]\\\n]|\\.)*\])+/[a-z]*")

# Parser states: what the previous token leaves the expression expecting.
_START, _OPERAND, _OPERATOR, _OPEN, _DOT = range(5)
_NO_CALL = (-1, "")


def js_call(text: str, i: int, limit: int, prev: int = _START, tight: bool = False) -> tuple[int, str]:
    """Does the JS at ``text[i:limit]`` call something (or write a sink) before it stops parsing?

    Returns ``(end, callee)``: the index just after the first call (or sink assignment)
    and the called name (``""`` for ``(f)(x)``); ``(-1, "")`` when the text is not such
    code. A call is a name, ``)`` or ``]`` followed by ``(`` or a template literal.
    Prose fails fast: two operands in a row (``alert(from the bank)``), an operator
    before a closer, a member access on nothing. A character JS has no use for ends
    the reading. ``tight``: the ``(`` of a call must follow its callee directly.
    ``prev`` is the state before ``text[i]`` (``_OPERAND`` after a closed string).
    """
    limit = min(limit, len(text), i + _JS_WINDOW)
    stack: list[str] = []
    call_depth = -1  # stack depth at which the first call's arguments start
    callee = ""
    operand_name = ""  # the previous operand when it was a name (``alert`` in ``alert(``)
    last_name = ""
    callable_prev = False  # the previous operand can be called: a name, ``)`` or ``]``
    assigned = False  # a sink property was assigned: ``document.cookie=...``
    ws_before = False
    tokens = 0
    while i < limit and tokens < _JS_TOKENS:
        if text[i] == "/" and prev not in (_OPERAND, _DOT) and text[i + 1 : i + 2] not in ("/", "*"):
            r = _JS_REGEX.match(text, i, limit)  # a regex literal where an operand is expected
            if r is None:
                return _NO_CALL
            i = r.end()
            prev, callable_prev, operand_name, ws_before = _OPERAND, False, "", False
            tokens += 1
            continue
        m = _JS_TOKEN.match(text, i, limit)
        if m is None:
            break
        kind = m.lastgroup
        tok = m.group()
        i = m.end()
        if kind == "ws" or kind == "comment":
            ws_before = True
            continue
        tokens += 1
        spaced, ws_before = ws_before, False
        if prev == _DOT:
            if kind != "ident":
                return _NO_CALL
            prev, callable_prev, last_name, operand_name = _OPERAND, True, tok, tok
            continue
        if kind == "ident" and tok in _JS_BINARY_KW:
            if prev != _OPERAND:
                return _NO_CALL
            prev = _OPERATOR
            continue
        if kind == "ident" and tok in _JS_PREFIX_KW:
            prev = _OPEN
            continue
        if kind in ("ident", "num", "str", "tpl"):
            if prev == _OPERAND:
                if kind == "tpl" and callable_prev:  # tagged template: alert`1`
                    if call_depth < 0:
                        return i, operand_name
                    continue
                return _NO_CALL  # two operands in a row: prose, not code
            prev, callable_prev = _OPERAND, kind == "ident"
            operand_name = tok if kind == "ident" else ""
            if kind == "ident":
                last_name = tok
        elif tok == "(":
            if prev == _OPERAND:
                if not callable_prev or (tight and spaced):
                    return _NO_CALL
                if call_depth < 0:
                    call_depth, callee = len(stack), operand_name
            stack.append(tok)
            prev = _OPEN
        elif tok in ("[", "{"):
            stack.append(tok)
            prev = _OPEN
        elif tok in (")", "]", "}"):
            if prev == _OPERATOR:
                return _NO_CALL
            if not stack:
                break
            stack.pop()
            prev, callable_prev, operand_name = _OPERAND, tok != "}", ""
            if call_depth >= 0 and len(stack) == call_depth:
                return i, callee
        elif tok in (".", "?."):
            if prev != _OPERAND:
                return _NO_CALL
            prev = _DOT
        elif tok in (",", ";"):
            if prev == _OPERATOR:
                return _NO_CALL
            if assigned and tok == ";":
                return i, last_name
            prev = _START if tok == ";" else _OPERATOR
        elif tok in ("++", "--"):
            continue
        elif tok in ("!", "~", "+", "-", "...", "=>"):
            prev = _OPERATOR
        elif tok == "=":
            if prev != _OPERAND:
                return _NO_CALL
            assigned = assigned or last_name in _SINK_PROPS
            prev = _OPERATOR
        else:  # other binary operators, ``?`` and ``:``
            if prev != _OPERAND and tok != ":":
                return _NO_CALL
            prev = _OPERATOR
    # Out of input or window: a call whose arguments were cut short still counts.
    if call_depth >= 0 or (assigned and prev == _OPERAND):
        return i, callee or last_name
    return _NO_CALL


def js_active(
    text: str, i: int = 0, limit: int | None = None, prev: int = _START, tight: bool = False
) -> bool:
    """Whether :func:`js_call` finds a call (or a sink write) in ``text[i:limit]``."""
    return js_call(text, i, len(text) if limit is None else limit, prev, tight)[0] >= 0


_RX_LEADING_NAME = re.compile(r"\s*([a-z]+)")


def _runs_code(value: str) -> bool:
    """A handler or ``expression()`` body that calls something, or just names a sink (``onerror=alert``)."""
    if js_active(value):
        return True
    m = _RX_LEADING_NAME.match(value)
    return m is not None and m.group(1) in _SINKS


# --------------------------------------------------------------------------- HTML start tags

_TAG_NAME = re.compile(r"[a-z][^\s/>]*")
_ATTR_SEP = re.compile(r"[\s/]*")
_ATTR_NAME = re.compile(r"[^\s/>][^\s/>=]*")
_ATTR_EQ = re.compile(r"\s*=\s*")
_UNQUOTED = re.compile(r"[^\s>]*")


@dataclass(slots=True)
class Tag:
    """A start tag as an HTML5 tokenizer reads it (lower-cased)."""

    name: str
    #: ``(name, name_start, value_start, value_end)``; value_start is -1 without a value.
    attrs: list[tuple[str, int, int, int]]
    #: Index after the tag (after ``>``, or where parsing stopped).
    end: int

    @property
    def local(self) -> str:
        """The name without its namespace prefix (``x:script`` -> ``script``)."""
        return self.name.rsplit(":", 1)[-1]

    def attr(self, name: str) -> tuple[str, int, int, int] | None:
        for a in self.attrs:
            if a[0] == name:
                return a
        return None


def parse_tag(low: str, lt: int, limit: int) -> Tag:
    """Parse the start tag at ``low[lt] == '<'`` up to ``limit`` (at most ``_MAX_ATTRS`` attributes).

    The HTML5 rules that payloads play with are kept: ``/`` separates attributes
    (``<svg/onload=...>``), a quoted value may hold ``>`` (``<img alt=">" onerror=...>``),
    a name runs up to whitespace, ``/``, ``>`` or ``=`` whatever else it holds.
    """
    m = _TAG_NAME.match(low, lt + 1, limit)
    if m is None:
        return Tag("", [], lt + 1)
    i = m.end()
    tag = Tag(m.group(), [], i)
    attrs = tag.attrs
    while len(attrs) < _MAX_ATTRS:
        sep = _ATTR_SEP.match(low, i, limit)
        i = sep.end() if sep is not None else i
        if i >= limit:
            break
        if low[i] == ">":
            tag.end = i + 1
            return tag
        n = _ATTR_NAME.match(low, i, limit)
        if n is None:  # pragma: no cover - low[i] is a name character here
            break
        start, i = i, n.end()
        eq = _ATTR_EQ.match(low, i, limit)
        if eq is None:
            attrs.append((n.group(), start, -1, -1))
            continue
        i = eq.end()
        if i < limit and low[i] in "\"'":
            j = low.find(low[i], i + 1, limit)
            end = j if j >= 0 else limit
            attrs.append((n.group(), start, i + 1, end))
            i = end + 1
        else:
            u = _UNQUOTED.match(low, i, limit)
            end = u.end() if u is not None else i
            attrs.append((n.group(), start, i, end))
            i = end
    tag.end = min(i, limit)
    return tag


# --------------------------------------------------------------------------- candidates
# A candidate pattern is scanned by RE2 (linear time, and fast when matches are rare) over
# the value encoded one byte per character, then matched by ``re`` at each hit for its
# groups and look-arounds. All patterns read the lower-cased value; a boundary before a
# word is checked in Python (``_Scan._iter``) so that each pattern starts with a literal.

try:  # pragma: no cover - import-time platform probe
    import re2 as _re2
except ImportError:  # pragma: no cover
    _re2 = None

#: What RE2's ``\s`` misses of Python's (on Latin-1 text): ``\v``, the separators, NEL, NBSP.
_RE2_WS = "\\t-\\r\\x1c-\\x20\\x85\\xa0"


def _skip_group(p: str, i: int) -> int:
    """Index after the group that opens at ``p[i] == '('``."""
    depth = 0
    in_class = False
    while i < len(p):
        c = p[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return i


def _re2_form(p: str) -> str:
    r"""``p`` for RE2: look-arounds dropped (a superset; ``re`` re-checks each hit), ``\s`` widened."""
    out: list[str] = []
    i = 0
    in_class = False
    while i < len(p):
        c = p[i]
        if c == "\\":
            esc = p[i : i + 2]
            out.append((_RE2_WS if in_class else f"[{_RE2_WS}]") if esc == "\\s" else esc)
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
            out.append(c)
            i += 1
            for lead in "^]":  # "[^]..." and "[]...": a leading "]" is a member
                if p[i : i + 1] == lead:
                    out.append(lead)
                    i += 1
            continue
        elif p.startswith(("(?=", "(?!", "(?<=", "(?<!"), i):
            i = _skip_group(p, i)
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _re2_options() -> Any:
    assert _re2 is not None
    opts = _re2.Options()
    opts.encoding = _re2.Options.Encoding.LATIN1
    opts.max_mem = 16 << 20
    opts.log_errors = False
    return opts


class _Finder:
    """One candidate pattern: RE2 finds where it may match, ``re`` confirms and gives the groups."""

    __slots__ = ("r2", "rx", "source")

    def __init__(
        self, pattern: str, flags: int = 0, re2_pattern: str | None = None, word: bool = False
    ) -> None:
        self.rx = re.compile(pattern, flags)
        self.source = _re2_form(re2_pattern if re2_pattern is not None else pattern)
        if word:  # a word start: RE2 skips ``condition=`` as ``_Scan._iter`` would (a superset of it)
            self.source = rf"\b(?:{self.source})"
        if flags & re.S:
            self.source = "(?s)" + self.source
        self.r2: Any = None
        if _re2 is not None:
            self.r2 = _re2.compile(self.source.encode("latin-1"), _re2_options())


#: ``<`` + a tag that is dangerous by name (optionally namespaced: ``<x:script``).
_F_DANGER_TAG = _Finder(
    r"<(?:[a-z][a-z0-9_.-]{0,24}:)?"
    r"(script|iframe|frame|frameset|object|embed|applet|base|meta|link|style|xml|vmlframe|layer|ilayer"
    r"|bgsound|import|\?import)(?![a-z0-9_.:-])"
)
#: A script tag assembled from pieces: ``'<scr'+'ipt>'``, ``echo('<scr)';echo('ipt>...')``.
_F_SPLIT_SCRIPT = _Finder(r"<scr[^<>]{0,60}?['\"`+][^<>]{0,60}?ipt[\s/>]")
#: Paranoia 2: markup that is unusual in user content even without an active attribute.
_F_STRICT_TAG = _Finder(
    r"<(/?)(?:[a-z][a-z0-9_.-]{0,24}:)?"
    r"(svg|math|form|meta|link|style|script|textarea|title|noscript|xmp|noembed|noframes|template|isindex)"
    r"(?![a-z0-9_.:-])"
)
#: An event-handler attribute: ``on`` + letters, optional junk (``onload!#$%&()=``), then ``=``.
_F_HANDLER = _Finder(r"on([a-z]{3,40})[^\s=>\"'a-z0-9]{0,40}\s{0,16}=", word=True)
#: Event bindings of client-side frameworks (AngularJS, Vue, Alpine): code like ``on...=``.
_F_FRAMEWORK_HANDLER = _Finder(
    r"(?:ng-[a-z-]{2,30}|v-on:[a-z.-]{2,30}|x-on:[a-z.-]{2,30}|@[a-z][a-z.-]{1,30})\s{0,16}="
)
#: A URL attribute whose value starts like a script or data URL, possibly obfuscated with
#: entities or control characters (``&#106;avascript:``, ``jav&#x09;ascript:``, ``\x01javascript:``).
_F_URL_ATTR = _Finder(
    r"(href|src|action|formaction|data|xlink:href|background|lowsrc|dynsrc|poster|codebase|ping|cite"
    r"|longdesc|code|classid)\s{0,16}=\s{0,16}([\"'`]?)\s{0,16}"
    r"(?:[\x00-\x1f\x7f-\xff]|&(?:#|[a-z]{2,12};)){0,32}"
    r"(?:[&%\\]|[jvlmd][\x00-\x1f\x7f-\xff]{0,8}[&abiho])",
    word=True,
)
#: ``srcdoc``: a whole document in an attribute.
_F_SRCDOC = _Finder(r"srcdoc\s{0,16}=", word=True)
#: SMIL animation values that set an attribute to a script URL or markup: ``values="x;javascript:..."``.
_F_SMIL = _Finder(r"(values|to|from|by)\s{0,16}=\s{0,16}[\"'`]?[^\"'`>]{0,256}?(?:script|<)", word=True)
#: IE data binding attributes: they render a data island's content as HTML.
_F_DATABIND = _Finder(r"data(?:src|fld|formatas)\s{0,16}=", word=True)
#: A quote, optional closers, a JS operator, then something called: ``';alert(1)//``, ``"-alert(1)-"``.
_F_QUOTE_BREAK = _Finder(
    r"(['\"`])[\s)\]}]{0,8}((?:[;,+\-*/%|&^?:<>=!~]{1,3}|(?:in|instanceof|typeof|void|new|delete)\s)"
    r"\s{0,8}[\w$.\[\]'\"+`]{0,60}?[\w$\])][(`])"
)
#: What follows an injected call when the rest of the original string must still parse.
_RX_JS_TAIL = re.compile(r"\s{0,8}(?://|<!--|-->|;|[-+*/%|&^,?:<>=]{1,3}\s{0,8}\\?['\"`]|\)\s{0,8}[;,]|\})")
#: A quote, an operator, then a write to a property that navigates or runs code: ``';location=...``.
_F_QUOTE_ASSIGN = _Finder(
    r"(['\"`])[\s)\]}]{0,8}(?:[;,+\-*/%|&^?:<>!~]{1,3}|in\s)\s{0,8}(?:[\w$]{1,30}\s{0,4}\.\s{0,4}){0,4}"
    r"(?:location|onerror|onload|valueof|tostring|cookie|innerhtml|outerhtml|href|src|domain)\s{0,4}=(?!=)"
)
#: A call of a JS sink, the Function constructor, a cookie/domain read or write, a markup write.
_F_SINK = _Finder(
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
_RX_TIMER_EVAL = re.compile(r"\s{0,4}[(`]\s{0,4}(?:['\"`]|(?:alert|prompt|confirm|eval)\b)")
_RX_GLOBAL_DOT = re.compile(r"(?<![\w$.])(?:window|top|self|parent|this|globalthis|frames)\s{0,4}\.\s{0,4}\Z")
#: Bracket access on a global object: ``top['al'+'ert'](1)``, ``self[/*x*/'alert'](1)``.
_F_GLOBAL = _Finder(
    # No space before ``[`` (unless a comment hides it): ``this [link](url)`` is Markdown.
    r"(?:top|window|self|this|parent|frames|globalthis|document|content|opener)(?:\s{0,4}/\*.{0,64}?\*/\s{0,4})?\[",
    word=True,
)
#: Function-constructor and parenthesis-free call tricks.
_F_CTOR = _Finder(
    r"constructor\s{0,8}\.\s{0,8}constructor\s{0,8}\(|\[\s{0,8}['\"`]constructor['\"`]\s{0,8}\]\s{0,8}\("
    r"|\.\s{0,8}(?:call|apply|bind)\s{0,8}`|import\s{0,4}\(\s{0,4}['\"`]"
)
#: AngularJS-style client-side template expressions: ``{{constructor.constructor('alert(1)')()}}``.
_F_TEMPLATE = _Finder(
    r"\{\{(?:[^}]|\}(?!\})){0,300}?(?:constructor|\$eval|\$on\b|\$parse|__proto__|\$window|fromcharcode"
    r"|\b(?:alert|prompt|confirm)\s{0,8}\(|\)\s{0,8}\()",
    re.S,
)
#: Expressions of a JS template literal: ``${alert(1)}``.
_F_TEMPLATE_LITERAL = _Finder(r"\$\{\s{0,8}[\w$.\[\]'\"]{1,60}?\s{0,4}[(`]")
#: Netscape JS entities in attribute values: ``<br size="&{alert(1)}">``.
_F_JS_ENTITY = _Finder(r"&\{")
#: JSFuck / hieroglyphy fragments (Markdown's ``![](url)`` is followed by ``(``, never by these).
_F_JSFUCK = _Finder(r"!\s{0,4}\+\s{0,4}\[\s{0,4}\]|!\s{0,4}\[\s{0,4}\]\s{0,4}[+)\]]|\+\s{0,4}\[\s{0,4}\]")
#: ``javascript:`` and friends inside a value.
_F_SCHEME = _Finder(r"(?:java|vb|live)script\s{0,4}:", word=True)
#: ``data:`` documents inside a value: ``data:text/html;base64,...``.
_F_DATA_DOC = _Finder(
    r"data:\s{0,4}(?:text/html|application/xhtml|image/svg\+xml|text/xml)([^,]{0,64}),", word=True
)
#: CSS that runs script or binds behaviour, on the normalised CSS view.
_F_CSS_BAD = _Finder(
    r"(?:^|[:=,(])\s{0,16}expression\s{0,16}(\()"
    r"|url\s{0,16}\(\s{0,16}['\"]?\s{0,16}(?:javascript|vbscript|livescript)\s{0,16}(?::|$)"
    r"|behaviou?r\s{0,16}:\s{0,16}url|binding\s{0,16}:\s{0,16}url"
    # @import of a style sheet that is not https (a web font is): at a rule's start.
    r"|(?:^|[>{};'\"]|<style[^>]{0,64}>)\s{0,16}@import(?!\s{0,16}(?:url\s{0,16}\(\s{0,16})?['\"]?\s{0,8}https://)"
)
#: Is there any CSS to read? (A necessary condition of what ``_F_CSS_BAD`` finds after normalising.)
_CSS_HINT = r"style|expr|ession|behavio|binding|@import|@\\|url\s{0,8}\(|\\[0-9a-f]"

#: A script URL's body when it is code: punctuation, or ``name(`` / ``name=`` / ``name[``.
_SCHEME_BODY = re.compile(r"[\"'`/(\[{!+\-~\\%]|[a-z_$][\w$.]*[=(\[`]")
#: Characters a (possibly obfuscated) ``javascript:``/``vbscript:``/``data:`` value can start with.
_SCHEME_FIRST = frozenset("jvlmd&%\\") | frozenset(chr(c) for c in (*range(0x20), 0x7F))
#: UTF-7 (``+ADw-script+AD4-``; ``+`` may have become a space in a form) and US-ASCII
#: 7-bit (``¼script¾``: the high bit set on ``<`` and ``>``) encodings of markup.
_RX_UTF7 = re.compile(r"(?:^|(?<=[+\s]))AD([w4IcC])-")
_UTF7_MAP = {"w": "<", "4": ">", "I": '"', "c": "'", "C": "'"}
_USASCII = str.maketrans({"\xbc": "<", "\xbe": ">", "\xa2": '"'})

#: Whole-value filter probes: an encoded ``<`` (``&#x003C``, ``&lt``, ``\x3c``).
_RX_PROBE = re.compile(r"&(?:lt|#0*60|#x0*3c);?|\\(?:x3c|u0*3c|u\{0*3c\})")

#: Checks and the candidate patterns (on the lower-cased text; the entity-decoded text is
#: appended when it differs) that gate them: one RE2 set pass tells which checks to run.
_CHECKS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("danger_tags", (_F_DANGER_TAG.source, _F_SPLIT_SCRIPT.source)),
    ("handlers", (_F_HANDLER.source, _F_FRAMEWORK_HANDLER.source)),
    ("url_attrs", (_F_URL_ATTR.source, _F_SRCDOC.source, _F_SMIL.source, _F_DATABIND.source)),
    ("css", (_re2_form(_CSS_HINT),)),
    ("schemes", (_F_SCHEME.source, _F_DATA_DOC.source)),
    ("quote_breaks", (_F_QUOTE_BREAK.source,)),
    ("quote_assigns", (_F_QUOTE_ASSIGN.source,)),
    ("sinks", (_F_SINK.source,)),
    ("globals_", (_F_GLOBAL.source, _F_CTOR.source)),
    ("templates", (_F_TEMPLATE.source, _F_TEMPLATE_LITERAL.source)),
    ("misc", (_F_JS_ENTITY.source, _F_JSFUCK.source)),
    ("strict_tags", (_F_STRICT_TAG.source,)),
)
_GATE_CHECK: list[int] = []  # gate pattern index -> index in _CHECKS
_GATES: Any = None
if _re2 is not None:  # pragma: no branch - without RE2 every check runs
    _GATES = _re2.Set.SearchSet(_re2_options())
    for _n, (_check, _sources) in enumerate(_CHECKS):
        for _source in _sources:
            _GATES.Add(loosen(_source).encode("latin-1"))  # large counted repeats open: a small DFA
            _GATE_CHECK.append(_n)
    _GATES.Compile()


def _latin1(text: str) -> bytes:
    """One byte per character (what RE2 scans): characters beyond Latin-1 become ``?``."""
    return text.encode("latin-1", "replace")


# --------------------------------------------------------------------------- the scan


class _Exhausted(Exception):
    """The value exhausted its verification budget; reported at ``span``."""

    def __init__(self, span: Span) -> None:
        super().__init__()
        self.span = span


class _CheckExhausted(Exception):
    """A check that also reads ordinary code ran out of its own budget: it stops, unreported."""


#: Checks whose candidates also fill ordinary source code (``print("a", f(1))``, ``window[k]``):
#: a long code sample can exhaust them without being an attack, so each gets its own budget
#: and stops quietly when it is spent. The other checks share the value's budget, and a value
#: that exhausts it is reported (dense markup-shaped fragments are not benign text).
_CODE_CHECKS = frozenset({"quote_breaks", "quote_assigns", "sinks", "globals_"})


@dataclass(slots=True)
class ScanResult:
    """What :func:`scan` found, and how much work it took."""

    span: Span | None
    #: Characters scanned by candidate patterns plus characters read while verifying.
    steps: int


class _Scan:
    """One value's analysis. ``low`` is the value lower-cased; ``dec`` also entity-decoded."""

    __slots__ = ("_anchors", "_bytes", "_check_budget", "_dec", "budget", "low", "n", "s", "steps", "strict")

    def __init__(self, value: str, strict: bool) -> None:
        self.s = value
        self.low = _lower(value)
        self.n = len(value)
        self.strict = strict
        self.budget = _BUDGET_BASE + self.n // _BUDGET_PER
        self._check_budget = -1  # >= 0 while a check of _CODE_CHECKS runs on its own budget
        self.steps = 0
        self._dec: str | None = None
        self._anchors: list[tuple[int, int]] = []
        self._bytes: dict[int, tuple[str, bytes]] = {}  # id(view) -> (view, its Latin-1 form)

    # -- bookkeeping
    def _iter(self, finder: _Finder, text: str, word: str = "") -> Iterator[re.Match[str]]:
        """Candidates of ``finder`` in ``text`` (a view of the value), each spending budget.

        With ``word``, a candidate preceded by a letter, digit or one of ``word`` is skipped.
        """
        self.steps += len(text)
        if finder.r2 is None:  # pragma: no cover - RE2 missing: ``re`` alone
            hits: Iterator[int] = (m.start() for m in finder.rx.finditer(text))
        else:
            hits = self._re2_hits(finder, text)
        for p in hits:
            self.steps += 16
            if self._check_budget >= 0:
                self._check_budget -= 1
                if self._check_budget < 0:
                    raise _CheckExhausted
            else:
                self.budget -= 1
                if self.budget < 0:
                    raise _Exhausted(self.dspan(p, p + 16) if text is self._dec else (p, min(self.n, p + 16)))
            if word and p and (text[p - 1].isalnum() or text[p - 1] in word):
                continue
            m = finder.rx.match(text, p)
            if m is not None:
                yield m

    def _re2_hits(self, finder: _Finder, text: str) -> Iterator[int]:
        entry = self._bytes.get(id(text))
        if entry is not None and entry[0] is text:
            data = entry[1]
        else:
            data = _latin1(text)
            self._bytes[id(text)] = (text, data)
        pos = 0
        size = len(data)
        while pos <= size:
            m = finder.r2.search(data, pos)
            if m is None:
                return
            yield m.start()
            pos = m.start() + 1

    @property
    def dec(self) -> str:
        """The lower-cased value with character references decoded (attribute and JS checks read it)."""
        if self._dec is None:
            self._dec = self.low
            if "&" in self.low and _RX_ENTITY.search(self.low) is not None:
                dec, self._anchors = unescape(self.low)
                self._dec = _lower(dec)
                self.steps += self.n
        return self._dec

    def dspan(self, a: int, b: int) -> Span:
        """A span of :attr:`dec` as a span of the value."""
        if not self._anchors:
            return min(a, self.n), min(max(b, a + 1), self.n)
        return _map_span(self._anchors, (a, b), self.n)

    # -- entry
    def run(self) -> Span | None:
        low = self.low
        hit = self.value_start(low)
        if hit is not None:
            return hit
        todo: Iterable[int]
        if _GATES is None:  # pragma: no cover - RE2 missing: every check runs
            todo = range(len(_CHECKS))
        else:
            dec = self.dec
            gate_text = _latin1(low)
            self._bytes[id(low)] = (low, gate_text)
            if dec is not low:
                gate_text += b"\n\x00\n" + _latin1(dec)
            self.steps += len(gate_text)
            todo = sorted({_GATE_CHECK[i] for i in (_GATES.Match(gate_text) or ())})
        for i in todo:
            name = _CHECKS[i][0]
            self._check_budget = -1
            if name in _CODE_CHECKS:
                self._check_budget = (_BUDGET_BASE + self.n // _BUDGET_PER) // 2
            try:
                found: Span | None = getattr(self, name)(low)
            except _CheckExhausted:
                continue
            finally:
                self._check_budget = -1
            if found is not None:
                return found
        return self.encodings()

    # -- the whole value is a script URL (it lands in an href or src)
    def value_start(self, low: str) -> Span | None:
        return (0, min(self.n, 32)) if _is_script_url(low) else None

    # -- tags dangerous by name
    def danger_tags(self, low: str) -> Span | None:
        for m in self._iter(_F_DANGER_TAG, low):
            lt = m.start()
            if self._danger_tag(low, lt, m.group(1)):
                return lt, min(self.n, max(m.end(), lt + 16))
        for m in self._iter(_F_SPLIT_SCRIPT, low):
            return m.span()
        return None

    def _danger_tag(self, low: str, lt: int, name: str) -> bool:
        if name in _ACTIVE_TAGS or name == "base":
            return True
        if name == "?import":
            return "implementation" in low[lt : lt + _VALUE_WINDOW]
        tag = parse_tag(low, lt, min(self.n, lt + _TAG_WINDOW))
        self.steps += tag.end - lt
        names = {a[0] for a in tag.attrs}
        if name == "link":
            return "href" in names and not self._plain_link(low, tag)
        if name == "meta":
            return self._active_meta(low, tag)
        if name == "style":
            t = tag.attr("type")
            if t is not None and "script" in low[t[2] : t[3]]:
                return True  # <style type="text/javascript">: Netscape JSSS
            close = low.find("</style", tag.end, tag.end + 4096)
            body = low[tag.end : close if close >= 0 else tag.end + 4096]
            self.steps += len(body)
            return _bad_style_body(body)
        if name == "xml":
            return bool(names & {"id", "src"})  # an IE data island
        if name == "import":
            return "implementation" in names  # an IE behaviour
        return "src" in names  # layer, ilayer, bgsound

    @staticmethod
    def _value_of(low: str, tag: Tag, name: str) -> str | None:
        a = tag.attr(name)
        return None if a is None else ("" if a[2] < 0 else low[a[2] : a[3]].strip())

    def _plain_link(self, low: str, tag: Tag) -> bool:
        """``<link rel="stylesheet" href="https://...">`` of a pasted page: no code, no import."""
        rel = self._value_of(low, tag, "rel") or ""
        href = self._value_of(low, tag, "href") or ""
        kind = self._value_of(low, tag, "type") or ""
        return (
            bool(rel)
            and set(rel.split()) <= _PLAIN_LINK_RELS
            and href.startswith("https://")
            and "script" not in kind
        )

    def _active_meta(self, low: str, tag: Tag) -> bool:
        """``<meta http-equiv=refresh|set-cookie|link>``, a ``url=`` redirect, or a charset that
        re-reads the page (UTF-7); ``<meta charset="utf-8">`` of a pasted page is not."""
        equiv = self._value_of(low, tag, "http-equiv")
        content = (self._value_of(low, tag, "content") or "").replace(" ", "")
        charset = self._value_of(low, tag, "charset")
        if equiv is not None and equiv not in _PLAIN_META_EQUIV:
            return True
        if "url=" in content:
            return True
        if charset is None and "charset=" in content:
            charset = content.split("charset=", 1)[1].split(";", 1)[0]
        return charset is not None and charset.strip("\"'") not in _PLAIN_CHARSETS

    # -- event-handler attributes
    def handlers(self, low: str) -> Span | None:
        for m in self._iter(_F_HANDLER, low, "_$.:-"):
            # HTML allows whitespace (LF, CR, FF, tab) after "=" too: ``onclick=\n(confirm)()``.
            p, q = m.start(), _skip_spaces(low, m.end())
            span = (p, min(self.n, q + 24))
            value = self._attr_value(low, q)
            if not value.strip(" \t\n\r\f/>"):
                continue
            if self._enclosing_tag(low, p) is not None:
                return span  # a handler on a real tag: whatever it runs, it runs
            if not self.strict and _in_escaped_tag(low, p):
                continue  # ``<code>&lt;img onerror=alert(1)&gt;</code>`` is shown, not parsed
            if "&" in value:
                value = _lower(unescape(value, 128)[0])
            # Outside a tag the value must land in one: after a quote (``" onmouseover=...``)
            # or a space of an unquoted attribute. Then it has to be a known event, or code.
            if _runs_code(value) and (m.group(1) in EVENT_NAMES or _after_breakout(low, p)):
                return span
        for m in self._iter(_F_FRAMEWORK_HANDLER, low):
            # ``ng-click=$event.view.alert(1)``, ``@click="constructor.constructor('...')()"``:
            # a framework event binding on a tag that calls a sink. Code calling its own
            # functions (``@click="save()"``) is an ordinary template.
            if self._enclosing_tag(low, m.start()) is None:
                continue
            value = self._attr_value(low, m.end())
            if "&" in value:
                value = _lower(unescape(value, 128)[0])
            callee = js_call(value, 0, len(value))[1]
            if callee in _SINKS or "constructor" in value:
                return m.start(), min(self.n, m.end() + 24)
        return None

    def _attr_value(self, low: str, q: int) -> str:
        """The attribute value starting at ``q`` (just after ``=`` and spaces), bounded."""
        lim = min(self.n, q + _VALUE_WINDOW)
        self.steps += lim - q
        if q < self.n and low[q] in "\"'`":
            j = low.find(low[q], q + 1, lim)
            return low[q + 1 : j if j >= 0 else lim]
        u = _UNQUOTED.match(low, q, lim)
        return low[q : u.end() if u is not None else lim]

    def _enclosing_tag(self, low: str, p: int) -> Tag | None:
        """The start tag with an attribute name starting at ``p``, if there is one."""
        lo = max(0, p - _TAG_WINDOW)
        lt = p
        for _ in range(3):  # skip a few ``<`` that start no tag (``a < b``)
            lt = low.rfind("<", lo, lt)
            if lt < 0:
                return None
            if lt + 1 < self.n and "a" <= low[lt + 1] <= "z":
                tag = parse_tag(low, lt, min(self.n, p + 64))
                self.steps += p - lt
                for a in tag.attrs:
                    if a[1] >= p:
                        return tag if a[1] == p else None
                return None
        return None

    # -- URL attributes with script schemes, srcdoc, animation values, data binding
    def url_attrs(self, low: str) -> Span | None:
        for m in self._iter(_F_URL_ATTR, low, "_:.-"):
            span = (m.start(), min(self.n, m.end() + 24))
            norm = _url_norm(self._attr_value(low, m.start(2)))
            if not norm.startswith((*_SCRIPT_SCHEMES, "data:", "mhtml:")):
                continue
            tag = self._enclosing_tag(low, m.start())
            if _dangerous_url(norm, tag.local if tag is not None else ""):
                return span
        for m in self._iter(_F_SRCDOC, low, "_:.-"):
            value = self._attr_value(low, _skip_spaces(low, m.end()))
            if _RX_ACTIVE_MARKUP.search(unescape(value, 256)[0] if "&" in value else value):
                return m.start(), min(self.n, m.end() + 24)
        for m in self._iter(_F_SMIL, low, "_:.-"):
            # SMIL animation: ``values="x;javascript:alert(1)"`` sets an href frame by frame.
            norm = _url_norm(self._attr_value(low, _skip_spaces(low, low.index("=", m.start()) + 1)))
            if any(v.startswith(_SCRIPT_SCHEMES) for v in norm.split(";")) or "<script" in norm:
                return m.start(), min(self.n, m.end() + 24)
        for m in self._iter(_F_DATABIND, low, "_-"):
            return m.span()
        return None

    # -- CSS that runs script or binds behaviour
    def css(self, low: str) -> Span | None:
        css = _css_norm(self.dec)
        self.steps += self.n
        for m in self._iter(_F_CSS_BAD, css):
            paren = m.start(1)
            if paren >= 0 and not _runs_code(css[paren + 1 : paren + 1 + _JS_WINDOW]):
                continue  # ``expression(`` only when what follows is code
            return self._keyword_span(m.group())
        return None

    def _keyword_span(self, text: str) -> Span:
        """Where a CSS finding (read on normalised text) is in the value, roughly."""
        for key in ("expr", "url", "behavio", "binding", "@"):
            if key in text:
                i = self.low.find(key)
                if i >= 0:
                    return i, min(self.n, i + 32)
        return 0, min(self.n, 32)

    # -- script and data URLs inside the value
    def schemes(self, low: str) -> Span | None:
        dec = self.dec
        for m in self._iter(_F_DATA_DOC, dec, "_-"):
            if "base64" in m.group(1) or _RX_ACTIVE_MARKUP.search(dec, m.end(), m.end() + 256):
                return self.dspan(m.start(), m.end())
        for m in self._iter(_F_SCHEME, dec, "_-"):
            self.steps += _JS_WINDOW
            if js_active(dec, m.end(), m.end() + _JS_WINDOW, tight=not self.strict):
                return self.dspan(m.start(), m.end() + 16)
        return None

    # -- breaking out of a JS string
    def quote_breaks(self, low: str) -> Span | None:
        dec = self.dec
        closes = _QuoteParity(dec)
        for m in self._iter(_F_QUOTE_BREAK, dec):
            if not closes(m.start()):
                continue  # this quote ends a string the value itself opened: ``f("a", g(1))``
            self.steps += _JS_WINDOW
            end, callee = js_call(dec, m.start(2), m.start(2) + _JS_WINDOW, prev=_OPERAND, tight=True)
            if end < 0:
                continue
            # ``'Hello' - World(2)`` is prose. A break-out calls a sink or a global, or the
            # string goes on like code: a comment, ``;``, an operator that re-opens the quote.
            if (
                self.strict
                or callee in _SINKS
                or callee in _GLOBALS
                or dec[end - 1 : end] == "`"
                or _RX_JS_TAIL.match(dec, end)
            ):
                return self.dspan(m.start(), end)
        return None

    def quote_assigns(self, low: str) -> Span | None:
        closes = _QuoteParity(self.dec)
        for m in self._iter(_F_QUOTE_ASSIGN, self.dec):
            if closes(m.start()):
                return self.dspan(m.start(), m.end())
        return None

    # -- calls of JS sinks in a code context
    def sinks(self, low: str) -> Span | None:
        dec = self.dec
        for m in self._iter(_F_SINK, dec, "_$"):
            p = m.start()
            self.steps += _JS_WINDOW
            if dec[m.end() : m.end() + 1] == "`" and p and dec[p - 1] == "`":
                continue  # Markdown inline code (`` `alert` ``), not a tagged template
            if p and dec[p - 1] == ".":  # window.alert(1), top.eval(...): from the global on
                g = _RX_GLOBAL_DOT.search(dec, max(0, p - 24), p)
                if g is None:
                    continue
                p = g.start()
            if not self._code_context(dec, p):
                continue
            if not self.strict and _in_escaped_tag(self.low, self.dspan(p, p + 1)[0]):
                continue
            word, sink, ctor, doc, markup = m.groups()
            # ``document.cookie`` read by code, or as the whole value; not prose naming it.
            if (
                doc is not None
                and not doc.endswith("(")
                and not (self.strict or _used_as_code(dec, p, m.end()) or dec.strip(" ;") == doc)
            ):
                continue
            if markup and not self.strict:
                continue  # ``el.innerHTML = html`` is everyday code; what it writes is checked anyway
            if ctor or doc or markup:
                return self.dspan(p, m.end())
            timer = sink in ("settimeout", "setinterval")
            if timer and not self.strict and not _RX_TIMER_EVAL.match(dec, m.end()):
                continue  # ``setTimeout(cb, 10)`` is everyday code; a string argument is eval
            if js_active(dec, p, p + _JS_WINDOW, tight=word is not None):
                return self.dspan(p, m.end() + 8)
        return None

    def _code_context(self, dec: str, p: int) -> bool:
        """Is ``dec[p]`` at the start of the value or right after JS punctuation?

        ``"><svg>alert(1)`` is a payload; ``<code>alert(1)</code>`` in a post is not,
        so ``>`` counts only as the first character of the value.
        """
        j = p - 1
        stop = max(-1, p - 32)
        while j > stop and dec[j] in " \t\n\r\f\v":
            j -= 1
        if j < 0 or self.strict:
            return True
        return dec[j] in ";,(=+-*/|&!?:{}[\"'" or (dec[j] == ">" and j == 0)

    # -- bracket access on globals, constructor tricks
    def globals_(self, low: str) -> Span | None:
        dec = self.dec
        for m in self._iter(_F_GLOBAL, dec, "_$."):
            self.steps += 160
            close = _closing_bracket(dec, m.end() - 1)
            if close < 0:
                continue
            k = _skip_spaces(dec, close + 1, 8)
            if k < len(dec) and dec[k] in "(`":
                return self.dspan(m.start(), k + 1)
            # ``document['coo'+'kie']``, ``self[/*x*/'location']``: a property name built or
            # hidden to get past a filter, or a quoted sink (``window['location']``).
            if _RX_OBFUSCATED_KEY.search(dec, m.end(), close):
                return self.dspan(m.start(), close + 1)
        for m in self._iter(_F_CTOR, dec):
            return self.dspan(m.start(), m.end())
        return None

    # -- client-side template expressions
    def templates(self, low: str) -> Span | None:
        dec = self.dec
        for m in self._iter(_F_TEMPLATE, dec):
            return self.dspan(m.start(), m.end())
        for m in self._iter(_F_TEMPLATE_LITERAL, dec):
            # ``${alert(1)}`` inside a JS template literal: a call of a sink or a global's method.
            self.steps += _JS_WINDOW
            end, callee = js_call(dec, m.start() + 2, m.start() + 2 + _JS_WINDOW)
            if end >= 0 and (callee in _SINKS or callee in _GLOBALS or self.strict):
                return self.dspan(m.start(), end)
        return None

    # -- Netscape JS entities, JSFuck
    def misc(self, low: str) -> Span | None:
        dec = self.dec
        for m in self._iter(_F_JS_ENTITY, dec):
            i = m.start()
            self.steps += _JS_WINDOW
            close = dec.find("}", i + 2, i + 2 + _JS_WINDOW)
            body = dec[i + 2 : close].strip() if close >= 0 else ""
            # ``&{alert(1)}``, and the ``&{()}`` of the classic XSS locator string.
            if body and (body[0] in "(\"'" or js_active(body)):
                return self.dspan(i, close + 1)
        first = -1
        for n, m in enumerate(self._iter(_F_JSFUCK, low), 1):
            first = m.start() if first < 0 else first
            if n >= 3:
                return first, m.end()
        return None

    # -- paranoia 2: unusual markup, raw-text end tags
    def strict_tags(self, low: str) -> Span | None:
        if not self.strict:
            return None
        for m in self._iter(_F_STRICT_TAG, low):
            closing, name = m.groups()
            if not closing or name in _RAWTEXT_TAGS:  # ``</script>``: out of a script or title
                return m.start(), min(self.n, m.end() + 16)
        return None

    # -- markup hidden in UTF-7 or US-ASCII 7-bit encodings
    def encodings(self) -> Span | None:
        if "AD" in self.s and _RX_UTF7.search(self.s):
            alt = _RX_UTF7.sub(lambda m: _UTF7_MAP[m.group(1)], self.s)
            alt = alt.replace("+<", "<").replace("+>", ">")
            first = self.s.find("AD")
        elif "\xbc" in self.s:
            alt = self.s.translate(_USASCII)
            first = self.s.find("\xbc")
        else:
            return None
        inner = _Scan(alt, self.strict)
        inner.budget = self.budget
        hit = inner.danger_tags(inner.low) or inner.handlers(inner.low)
        self.steps += inner.steps
        return None if hit is None else (first, min(self.n, first + 32))


class _QuoteParity:
    """Does the quote at ``p`` close a string the value did not open (an even number of the
    same quote before it)? Positions must be asked in increasing order: linear overall."""

    __slots__ = ("_counts", "_text")

    def __init__(self, text: str) -> None:
        self._text = text
        self._counts: dict[str, tuple[int, int]] = {}  # quote -> (position counted up to, count)

    def __call__(self, p: int) -> bool:
        q = self._text[p]
        upto, count = self._counts.get(q, (0, 0))
        count += self._text.count(q, upto, p)
        self._counts[q] = (p, count)
        return count % 2 == 0


def _is_script_url(low: str) -> bool:
    """Is the (lower-cased) value, as a whole, a URL that runs script where it lands?"""
    head = low[: _VALUE_WINDOW * 2]
    if ":" not in head and "&" not in head:
        return False
    stripped = head.lstrip(" \t\n\r\f\v\x00")
    if stripped[:1].isascii() and stripped[:1] not in _SCHEME_FIRST:
        return False  # cannot start even an obfuscated javascript:, vbscript:, data: ...
    norm = _url_norm(head)
    if norm.startswith(_SCRIPT_SCHEMES):
        colon = norm.find(":")
        if not stripped.startswith(norm[: colon + 1]):
            return True  # an obfuscated scheme (entities, controls inside) is intent enough
        # ``javascript: the good parts`` is a book title; ``javascript:alert(1)`` is not.
        # The other script schemes are not words anyone writes in prose.
        body = stripped[colon + 1 :]
        return not norm.startswith("javascript:") or bool(_SCHEME_BODY.match(body)) or js_active(body)
    return norm.startswith(("data:", "mhtml:")) and _dangerous_url(norm)


def _skip_spaces(text: str, i: int, most: int = 16) -> int:
    end = min(len(text), i + most)
    while i < end and text[i] in " \t\n\r\f":
        i += 1
    return i


def _bad_style_body(body: str) -> bool:
    """A ``<style>`` block that runs script, imports or binds behaviour."""
    if "&" in body:
        body = unescape(body, 256)[0]
    css = _css_norm(body)
    if _F_CSS_BAD.rx.search(css) or "script:" in css or "expression(" in css:
        return True
    # An escaped at-rule (``@\i\m\p\o\r\t``) is obfuscation and nothing else.
    if "@\\" in body:
        return True
    return "-moz-binding" in css or "behavior:" in css


def _in_escaped_tag(low: str, p: int) -> bool:
    """Is ``low[p]`` inside markup written with entities (``&lt;img`` before it, no ``>`` since)?"""
    esc = low.rfind("&lt;", max(0, p - _VALUE_WINDOW), p)
    if esc < 0 or not low[esc + 4 : esc + 5].isalpha():
        return False
    between = low[esc:p]
    return "<" not in between and ">" not in between and "&gt" not in between


def _after_breakout(low: str, p: int) -> bool:
    """Is ``low[p]`` preceded (over spaces and ``/``) by a quote or the start of the value?"""
    j = p - 1
    stop = max(-1, p - 32)
    while j > stop and low[j] in " \t\n\r\f/":
        j -= 1
    return j < 0 or low[j] in "\"'`"


def _used_as_code(dec: str, p: int, end: int) -> bool:
    """``+document.cookie``, ``(document.cookie)``, ``document.cookie=``: code, not a sentence."""
    j = p - 1
    while j >= 0 and j > p - 16 and dec[j] in " \t":
        j -= 1
    k = _skip_spaces(dec, end)
    return (j >= 0 and dec[j] in "(+=,;[\"'") or (k < len(dec) and dec[k] in "=+);,]")


_RX_OBFUSCATED_KEY = re.compile(
    r"['\"`]\s*\+|\+\s*['\"`]|/\*|\\|\.source\b|tostring|fromcharcode|atob"
    r"|['\"`](?:alert|prompt|confirm|eval|cookie|domain|location|innerhtml|outerhtml|write|settimeout)['\"`]"
)
_RX_BRACKETED = re.compile(
    r"\[(?:[^\[\]'\"`]|'[^'\n]{0,64}'|\"[^\"\n]{0,64}\"|`[^`]{0,64}`|\[[^\[\]]{0,64}\]){0,64}\]"
)


def _closing_bracket(text: str, i: int) -> int:
    """Index of the ``]`` closing the ``[`` at ``i`` (strings and one nested level allowed), or -1."""
    m = _RX_BRACKETED.match(text, i)
    return m.end() - 1 if m is not None else -1


def _is_probe(value: str) -> bool:
    """A whole value that probes a filter: a bare handler name, an encoded ``<``."""
    v = value.strip().lower()
    if v.startswith("on"):
        return v[2:] in EVENT_NAMES
    return v[:1] in ("&", "\\") and _RX_PROBE.fullmatch(v) is not None


def scan(value: str, strict: bool = False) -> ScanResult:
    """:func:`detect` (or, with ``strict``, :func:`detect_strict`) plus the work it took."""
    n = len(value)
    if not n:
        return ScanResult(None, 0)
    text, anchors = value, list[tuple[int, int]]()
    if "\\" in value:  # payloads written as JS escapes: ``\x3cscript\x3e``, ``al\u0065rt(1)``
        text, anchors = _rewrite(value, _RX_JS_ESCAPE, _decode_js_escape, _MAX_DECODES)
    sc = _Scan(text, strict)
    try:
        span = sc.run()
    except _Exhausted as exc:
        span = exc.span
    steps = sc.steps + (n if anchors else 0)
    return ScanResult(None if span is None else _map_span(anchors, span, n), steps)


def detect(value: str) -> Span | None:
    """The span of active content ``value`` would inject into a page, or None (paranoia 1)."""
    try:
        return scan(value).span
    except Exception:  # pragma: no cover - defensive: a detector bug must not cost a request
        return None


def detect_strict(value: str) -> Span | None:
    """Like :func:`detect`, also reporting lone ``<svg>``/``<form>``/``<style>``, ``</script>``
    break-outs, sink calls inside prose and handlers inside entity-escaped markup."""
    try:
        return scan(value, strict=True).span
    except Exception:  # pragma: no cover - defensive
        return None


# --------------------------------------------------------------------------- unparsed bodies

_XML_START = re.compile(r"\s*<(?:\?xml|[a-z_][\w.-]*:[\w.-]+[\s>/]|[a-z_][\w.-]*\s[^>]*xmlns)", re.I)
_XML_PIECES = re.compile(r"<!\[CDATA\[(.*?)(?:\]\]>|\Z)|=\s*\"([^\"]*)\"|=\s*'([^']*)'|>([^<]+)", re.S)
_PREFILTER = compile_pattern(PREFILTER)


def detect_raw_body(value: str, strict: bool = False) -> Span | None:
    """An XML document: its text nodes, CDATA sections and attribute values, entity-decoded.

    Form, JSON and multipart fields reach the value rule through the body parser; an XML
    document arrives whole, with its payloads behind ``&lt;`` and ``&quot;``. The decoded
    pieces are read as one text (separated by line breaks and a NUL, which no markup or
    script construct spans in benign documents): one linear scan whatever their number.
    Other bodies (JSON, forms, plain text) are left to the rules that see their fields.
    """
    try:
        if not _XML_START.match(value):
            return None
        parts: list[str] = []
        starts: list[int] = []  # offset of each piece in the joined text
        where: list[Span] = []  # the piece's span in the document
        size = 0
        decodes = 4 * _MAX_DECODES  # character references decoded in the whole document
        for m in _XML_PIECES.finditer(value):
            k = m.lastindex or 1
            piece = m.group(k)
            if not piece or piece.isspace():
                continue
            if "&" in piece and decodes > 0:
                text, anchors = unescape(piece, decodes)
                decodes -= len(anchors)
            else:
                text = piece
            if _is_script_url(_lower(text)):  # a piece that is a script URL on its own
                return m.span(k)
            starts.append(size)
            where.append(m.span(k))
            parts.append(text)
            size += len(text) + len(_PIECE_SEP)
        joined = _PIECE_SEP.join(parts)
        if not joined or _PREFILTER.search(joined) is None:
            return None
        span = scan(joined, strict).span
        return None if span is None else where[bisect_right(starts, span[0]) - 1]
    except Exception:  # pragma: no cover - defensive
        return None


_PIECE_SEP = "\n\x00\n"


def detect_probe(value: str) -> Span | None:
    """A filter probe sent alone: an event-handler name (``onmouseover``) or an encoded ``<``.

    Not active content by itself: the reconnaissance step of a fuzzer that fills a tag's
    attribute position with every handler name, or tests which encodings of ``<`` survive.
    Its own rule (941120), on parameter values only: a JSON key may well be ``onError``.
    """
    n = len(value)
    return (0, n) if 0 < n <= _PROBE_MAX and _is_probe(value) else None


def make_detector(param: Any = None) -> Callable[[str], Span | None]:
    """The detector for a rule's ``value``: ``{"strict": bool, "mode": "value" | "raw_body" | "probe"}``."""
    opts = param if isinstance(param, dict) else {}
    unknown = sorted(set(opts) - {"strict", "mode", "prefilter"})
    if unknown:
        raise ValueError(f"unknown detect_xss option {unknown[0]!r} (allowed: mode, prefilter, strict)")
    strict = bool(opts.get("strict", False))
    mode = opts.get("mode", "value")
    if mode == "raw_body":
        return (lambda v: detect_raw_body(v, True)) if strict else detect_raw_body
    if mode == "probe":
        return detect_probe
    if mode != "value":
        raise ValueError(f"invalid detect_xss mode {mode!r} (must be 'value', 'raw_body' or 'probe')")
    return detect_strict if strict else detect


__all__ = [
    "EVENT_NAMES",
    "PREFILTER",
    "PROBE_PREFILTER",
    "ScanResult",
    "Tag",
    "detect",
    "detect_probe",
    "detect_raw_body",
    "detect_strict",
    "js_active",
    "js_call",
    "make_detector",
    "parse_tag",
    "scan",
    "unescape",
]

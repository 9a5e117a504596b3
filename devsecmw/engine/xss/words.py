"""What the XSS detector knows by name: events, sinks, tags, schemes, and its work limits."""

from __future__ import annotations

#: A ``(start, end)`` slice of a value: where the detector found active content.
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
SINKS = _words("alert prompt confirm eval settimeout setinterval execscript msgbox fromcharcode")
#: Globals whose methods or properties a payload reaches for.
GLOBALS = _words("top window self parent frames globalthis document location")
#: Properties whose assignment navigates, writes markup or steals: ``document.cookie=...``.
SINK_PROPS = _words("cookie location href src innerhtml outerhtml domain onerror onload action")
#: Keywords after which an operand is expected (``new X``, ``typeof x``, ``return f()``).
JS_PREFIX_KW = _words(
    "new typeof void delete return throw await yield case do else var let const async function if"
    " while for with try catch finally"
)
JS_BINARY_KW = frozenset({"in", "instanceof", "of"})

SCRIPT_SCHEMES = ("javascript:", "vbscript:", "livescript:", "mocha:")
#: ``data:`` media types a browser renders as a document or runs as a script.
ACTIVE_DATA = (
    *("text/html", "application/xhtml", "image/svg", "text/xml", "application/xml"),
    *("text/javascript", "application/javascript", "application/x-javascript", "text/ecmascript"),
    *("application/ecmascript", "text/vbscript", "text/x-scriptlet"),
)
#: Tags that load and run foreign content whatever their attributes.
ACTIVE_TAGS = frozenset({"script", "object", "embed", "applet", "vmlframe", "iframe", "frame", "frameset"})
#: Tags where a ``data:`` URL of any media type is active (the document or script it loads runs).
DATA_HOST_TAGS = frozenset({"script", "iframe", "frame", "object", "embed", "applet"})
#: Tags that show an image: an SVG ``data:`` URL there runs no script.
IMAGE_TAGS = frozenset({"img", "image", "input", "picture", "source"})
#: What ``<link rel>`` / ``<meta http-equiv>`` / charsets of an ordinary pasted page say.
PLAIN_LINK_RELS = frozenset(
    {"stylesheet", "icon", "shortcut", "apple-touch-icon", "preconnect", "dns-prefetch", "canonical"}
    | {"alternate", "preload", "manifest", "author", "license", "prev", "next"}
)
PLAIN_META_EQUIV = frozenset({"content-type", "x-ua-compatible", "content-language"})
PLAIN_CHARSETS = _words("utf-8 utf8 iso-8859-1 windows-1252 us-ascii shift_jis euc-jp gb2312 big5")
#: Raw-text elements: their end tag lets a value escape a script, style or title (paranoia 2).
RAWTEXT_TAGS = frozenset({"script", "style", "textarea", "title", "noscript", "xmp", "noembed", "noframes"})

# Limits.

BUDGET_BASE = 48  # candidates verified per value: this many,
BUDGET_PER = 1024  # plus one per this many characters
TAG_WINDOW = 2048  # how far back an attribute may be from its ``<tag``
VALUE_WINDOW = 512  # how much of an attribute value is decoded and inspected
JS_WINDOW = 256  # how much JS is tokenised from a candidate
JS_TOKENS = 48
MAX_ATTRS = 48
MAX_DECODES = 256  # character references / JS escapes decoded in a whole value
PROBE_MAX = 48  # whole-value probes are short

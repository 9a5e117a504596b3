"""The markup checks: tags dangerous by name, event handlers, URL attributes, CSS.

Each reads the lower-cased value (attribute values entity-decoded where a browser
decodes them) and verifies a candidate the way the browser would parse the tag.
"""

from __future__ import annotations

from .base import ScanBase
from .decoding import css_norm, lowered, unescape, url_norm
from .finders import (
    F_CSS_BAD,
    F_DANGER_TAG,
    F_DATABIND,
    F_FRAMEWORK_HANDLER,
    F_HANDLER,
    F_SMIL,
    F_SPLIT_SCRIPT,
    F_SRCDOC,
    F_STRICT_TAG,
    F_URL_ATTR,
)
from .html import (
    RX_ACTIVE_MARKUP,
    UNQUOTED,
    Tag,
    after_breakout,
    dangerous_url,
    in_escaped_tag,
    parse_tag,
)
from .js import js_call, runs_code, skip_spaces
from .words import (
    ACTIVE_TAGS,
    EVENT_NAMES,
    JS_WINDOW,
    PLAIN_CHARSETS,
    PLAIN_LINK_RELS,
    PLAIN_META_EQUIV,
    RAWTEXT_TAGS,
    SCRIPT_SCHEMES,
    SINKS,
    TAG_WINDOW,
    VALUE_WINDOW,
    Span,
)


class MarkupChecks(ScanBase):
    """Checks of markup a value would inject (methods named in ``finders._CHECKS``)."""

    __slots__ = ()

    # -- tags dangerous by name
    def danger_tags(self, low: str) -> Span | None:
        for m in self.candidates(F_DANGER_TAG, low):
            lt = m.start()
            if self._danger_tag(low, lt, m.group(1)):
                return lt, min(self.n, max(m.end(), lt + 16))
        for m in self.candidates(F_SPLIT_SCRIPT, low):
            return m.span()
        return None

    def _danger_tag(self, low: str, lt: int, name: str) -> bool:
        if name in ACTIVE_TAGS or name == "base":
            return True
        if name == "?import":
            return "implementation" in low[lt : lt + VALUE_WINDOW]
        tag = parse_tag(low, lt, min(self.n, lt + TAG_WINDOW))
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
            and set(rel.split()) <= PLAIN_LINK_RELS
            and href.startswith("https://")
            and "script" not in kind
        )

    def _active_meta(self, low: str, tag: Tag) -> bool:
        """``<meta http-equiv=refresh|set-cookie|link>``, a ``url=`` redirect, or a charset that
        re-reads the page (UTF-7); ``<meta charset="utf-8">`` of a pasted page is not."""
        equiv = self._value_of(low, tag, "http-equiv")
        content = (self._value_of(low, tag, "content") or "").replace(" ", "")
        charset = self._value_of(low, tag, "charset")
        if equiv is not None and equiv not in PLAIN_META_EQUIV:
            return True
        if "url=" in content:
            return True
        if charset is None and "charset=" in content:
            charset = content.split("charset=", 1)[1].split(";", 1)[0]
        return charset is not None and charset.strip("\"'") not in PLAIN_CHARSETS

    # -- event-handler attributes
    def handlers(self, low: str) -> Span | None:
        for m in self.candidates(F_HANDLER, low, "_$.:-"):
            # HTML allows whitespace (LF, CR, FF, tab) after "=" too: ``onclick=\n(confirm)()``.
            p, q = m.start(), skip_spaces(low, m.end())
            span = (p, min(self.n, q + 24))
            value = self._attr_value(low, q)
            if not value.strip(" \t\n\r\f/>"):
                continue
            if self._enclosing_tag(low, p) is not None:
                return span  # a handler on a real tag: whatever it runs, it runs
            if not self.strict and in_escaped_tag(low, p):
                continue  # ``<code>&lt;img onerror=alert(1)&gt;</code>`` is shown, not parsed
            if "&" in value:
                value = lowered(unescape(value, 128)[0])
            # Outside a tag the value must land in one: after a quote (``" onmouseover=...``)
            # or a space of an unquoted attribute. Then it has to be a known event, or code.
            if runs_code(value) and (m.group(1) in EVENT_NAMES or after_breakout(low, p)):
                return span
        for m in self.candidates(F_FRAMEWORK_HANDLER, low):
            # ``ng-click=$event.view.alert(1)``, ``@click="constructor.constructor('...')()"``:
            # a framework event binding on a tag that calls a sink. Code calling its own
            # functions (``@click="save()"``) is an ordinary template.
            if self._enclosing_tag(low, m.start()) is None:
                continue
            value = self._attr_value(low, m.end())
            if "&" in value:
                value = lowered(unescape(value, 128)[0])
            _, callee = js_call(value, 0, len(value))
            if callee in SINKS or "constructor" in value:
                return m.start(), min(self.n, m.end() + 24)
        return None

    def _attr_value(self, low: str, q: int) -> str:
        """The attribute value starting at ``q`` (just after ``=`` and spaces), bounded."""
        lim = min(self.n, q + VALUE_WINDOW)
        self.steps += lim - q
        if q < self.n and low[q] in "\"'`":
            j = low.find(low[q], q + 1, lim)
            return low[q + 1 : j if j >= 0 else lim]
        u = UNQUOTED.match(low, q, lim)
        return low[q : u.end() if u is not None else lim]

    def _enclosing_tag(self, low: str, p: int) -> Tag | None:
        """The start tag with an attribute name starting at ``p``, if there is one."""
        lo = max(0, p - TAG_WINDOW)
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
        for m in self.candidates(F_URL_ATTR, low, "_:.-"):
            span = (m.start(), min(self.n, m.end() + 24))
            norm = url_norm(self._attr_value(low, m.start(2)))
            if not norm.startswith((*SCRIPT_SCHEMES, "data:", "mhtml:")):
                continue
            tag = self._enclosing_tag(low, m.start())
            if dangerous_url(norm, tag.local if tag is not None else ""):
                return span
        for m in self.candidates(F_SRCDOC, low, "_:.-"):
            value = self._attr_value(low, skip_spaces(low, m.end()))
            if RX_ACTIVE_MARKUP.search(unescape(value, 256)[0] if "&" in value else value):
                return m.start(), min(self.n, m.end() + 24)
        for m in self.candidates(F_SMIL, low, "_:.-"):
            # SMIL animation: ``values="x;javascript:alert(1)"`` sets an href frame by frame.
            norm = url_norm(self._attr_value(low, skip_spaces(low, low.index("=", m.start()) + 1)))
            if any(v.startswith(SCRIPT_SCHEMES) for v in norm.split(";")) or "<script" in norm:
                return m.start(), min(self.n, m.end() + 24)
        for m in self.candidates(F_DATABIND, low, "_-"):
            return m.span()
        return None

    # -- CSS that runs script or binds behaviour
    def css(self, low: str) -> Span | None:
        css = css_norm(self.dec)
        self.steps += self.n
        for m in self.candidates(F_CSS_BAD, css):
            paren = m.start(1)
            if paren >= 0 and not runs_code(css[paren + 1 : paren + 1 + JS_WINDOW]):
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

    # -- paranoia 2: unusual markup, raw-text end tags
    def strict_tags(self, low: str) -> Span | None:
        if not self.strict:
            return None
        for m in self.candidates(F_STRICT_TAG, low):
            closing, name = m.groups()
            if not closing or name in RAWTEXT_TAGS:  # ``</script>``: out of a script or title
                return m.start(), min(self.n, m.end() + 16)
        return None


def _bad_style_body(body: str) -> bool:
    """A ``<style>`` block that runs script, imports or binds behaviour."""
    if "&" in body:
        body = unescape(body, 256)[0]
    css = css_norm(body)
    if F_CSS_BAD.rx.search(css) or "script:" in css or "expression(" in css:
        return True
    # An escaped at-rule (``@\i\m\p\o\r\t``) is obfuscation and nothing else.
    if "@\\" in body:
        return True
    return "-moz-binding" in css or "behavior:" in css

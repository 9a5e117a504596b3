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

The package exposes ``PREFILTER`` (RE2 syntax: every value the detector reports
matches it), ``detect(value) -> (start, end) | None``, and ``make_detector(param)``
for rule parameters: ``{"strict": true}`` (paranoia 2: also lone ``<svg>``,
``<form>``, ``<style>``, ``</script>`` break-outs, sink calls inside prose) and
``{"mode": "raw_body"}`` (unparsed bodies: each text node and attribute of an XML
document, entity-decoded).

The package, by concern: :mod:`.words` (vocabulary, limits, prefilters), :mod:`.decoding`
(case, character references, JS/CSS escapes, URL schemes), :mod:`.html` (start tags as a
browser reads them), :mod:`.js` (the JS call reader), :mod:`.finders` (candidate patterns
and the gate), :mod:`.base` (views and budget), :mod:`.markup` and :mod:`.script` (the
checks), :mod:`.judgement` (the scan), :mod:`.entry` (raw bodies, probes, rule parameters).
"""

from __future__ import annotations

from .base import ScanResult
from .decoding import Anchor, _map_back, unescape
from .entry import detect_probe, detect_raw_body, make_detector
from .html import Attr, Tag, parse_tag
from .js import Call, js_active, js_call
from .judgement import detect, detect_strict, scan
from .words import EVENT_NAMES, PREFILTER, PROBE_PREFILTER, Span

__all__ = [
    "EVENT_NAMES",
    "PREFILTER",
    "PROBE_PREFILTER",
    "Anchor",
    "Attr",
    "Call",
    "ScanResult",
    "Span",
    "Tag",
    "_map_back",
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

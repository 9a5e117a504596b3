"""Request body parsing, by content type, within the inspection cap.

Every parser here is total: hostile input (broken JSON, a bad multipart
boundary, invalid UTF-8, nesting 10,000 levels deep) falls back to the raw
text and never raises.
"""

from __future__ import annotations

import codecs
import json
import re
from dataclasses import dataclass, field

MAX_JSON_DEPTH = 64  # deeper values are still in the raw text, just not addressed one by one
#: Fields per body by default (the ``max_params`` option): bounded work, whatever the body holds.
MAX_FIELDS = 1000


@dataclass(slots=True)
class Field:
    """One named value of the request: a parameter, a cookie, a JSON leaf or key.

    Treat it as immutable. (Not ``frozen``: a frozen dataclass is built through
    ``object.__setattr__``, four times slower, and a JSON body has hundreds.)
    """

    location: str  # "query:id", "body:json:user.name", "cookie:theme"
    value: str
    name: str
    raw: str = ""  # the value as it was on the wire, when it differs (urlencoded forms)
    utf8: bool = True


@dataclass(slots=True)
class ParsedBody:
    kind: str = "none"  # none | form | json | multipart | xml | text | binary
    text: str = ""  # the raw body as text (UTF-8, or latin-1 when not UTF-8)
    fields: list[Field] = field(default_factory=list)
    #: Names as values: JSON object keys and form/multipart field names.
    keys: list[Field] = field(default_factory=list)
    #: Multipart file names.
    files: list[Field] = field(default_factory=list)
    size: int = 0
    utf8: bool = True
    truncated: bool = False
    #: Why structured parsing fell back to raw text (for the span, never an exception).
    error: str | None = None
    #: The field cap stopped the parse: later fields are in ``text`` only, not addressed one by one.
    capped: bool = False


_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")


def unquote_bytes(raw: bytes | str) -> bytes:
    """``urllib.parse.unquote_to_bytes``, a few times faster on long values.

    The standard one loops in Python over every ``%``; here every ``%XX`` becomes
    ``\\xXX`` and the C escape decoder reads them (original backslashes doubled first).
    A ``%`` not followed by two hex digits stays as it is, as there. Text is read as UTF-8.
    """
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    if b"%" not in raw:
        return raw
    if b"\\" in raw:
        raw = raw.replace(b"\\", b"\\\\")
    try:
        return codecs.escape_decode(raw.replace(b"%", b"\\x"))[0]
    except ValueError:  # a stray "%": spelled as the escape of "%" itself
        fixed = _BAD_ESCAPE.sub(b"\\\\x25", raw)
        return codecs.escape_decode(fixed.replace(b"%", b"\\x"))[0]


def _decode(raw: bytes, cut: bool = False) -> tuple[str, bool]:
    """UTF-8 text, else latin-1 (every byte kept). A body ``cut`` short (at the cap) may end in
    the middle of a character: those last bytes (3 at most) are dropped, not the whole body
    read as latin-1 (every accented letter of it garbled)."""
    try:
        return raw.decode("utf-8"), True
    except UnicodeDecodeError as exc:
        if cut and exc.start >= len(raw) - 3 and exc.reason == "unexpected end of data":
            return raw[: exc.start].decode("utf-8"), True
        return raw.decode("latin-1"), False


def _media_type(content_type: str) -> tuple[str, dict[str, str]]:
    mt, _, rest = content_type.partition(";")
    params: dict[str, str] = {}
    for p in rest.split(";"):
        k, eq, v = p.strip().partition("=")
        if eq:
            params[k.strip().lower()] = v.strip().strip('"')
    return mt.strip().lower(), params


def _form_fields(
    text: str, prefix: str, max_fields: int = MAX_FIELDS, cut: bool = False
) -> tuple[list[Field], list[Field], bool]:
    """Fields and their names, and whether ``max_fields`` stopped the parse. ``cut``: the
    body was cut short, so its last field may end in the middle of an escape or a character."""
    fields: list[Field] = []
    keys: list[Field] = []
    room = max_fields
    parts = text.split("&")
    last = len(parts) - 1
    for n, part in enumerate(parts):
        if not part:
            continue
        if room <= 0:
            return fields, keys, True
        room -= 1
        name, eq, value = part.partition("=")
        end = cut and n == last
        if end:  # "%C3%A" at the cut: the half escape left out, as a half character is
            if eq:
                value = _whole_escapes(value)
            else:
                name = _whole_escapes(name)
        # Most names and values hold no escape: no bytes round trip for them.
        dn, ok1 = (
            _decode(unquote_bytes(name.replace("+", " ")), end)
            if "%" in name
            else (name.replace("+", " "), True)
        )
        dv, ok2 = (
            _decode(unquote_bytes(value.replace("+", " ")), end)
            if "%" in value
            else (value.replace("+", " "), True)
        )
        loc = f"{prefix}:{dn}"
        fields.append(Field(loc, dv, dn, raw=value, utf8=ok1 and ok2))
        keys.append(Field(loc, dn, dn, raw=name, utf8=ok1))
    return fields, keys, False


def _whole_escapes(text: str) -> str:
    """``text`` without a ``%`` escape cut short at its end (``%`` or ``%C``)."""
    at = text.find("%", len(text) - 2)
    return text[:at] if at >= 0 else text


def looks_urlencoded(text: str) -> bool:
    """Plausibly ``a=b&c=d``: the way CRS treats bodies without a usable Content-Type."""
    if "=" not in text or "\n" in text.strip():
        return False
    first = text.split("&", 1)[0]
    name = first.split("=", 1)[0]
    return 0 < len(name) <= 256 and " " not in name


def _json_walk(doc: object, max_fields: int = MAX_FIELDS) -> tuple[list[Field], list[Field], bool]:
    """String values and object keys, and whether ``max_fields`` members stopped the walk.

    A member is an object's key and value, or an array's element; numbers, booleans and
    null in arrays are not counted (nothing to inspect in them one by one).
    """
    fields: list[Field] = []
    keys: list[Field] = []
    # Iterative walk: a deep document cannot exhaust the Python stack. json.loads makes
    # exact dicts, lists and strs, so type() identity is enough (and faster than isinstance).
    stack: list[tuple[str, object, int]] = [("", doc, 0)]
    pop, push = stack.pop, stack.append
    add_field, add_key = fields.append, keys.append
    members = 0
    capped = False
    while stack:
        path, node, depth = pop()
        kind = type(node)
        if kind is str:
            add_field(Field("body:json:" + path, node, path))  # type: ignore[arg-type]
        elif kind is dict:
            if depth >= MAX_JSON_DEPTH:
                continue
            depth += 1
            prefix = path + "." if path else ""
            items = list(node.items())  # type: ignore[attr-defined]
            if members + len(items) > max_fields:
                # Document order: the members that fit are kept, the walk ends after them.
                items = items[: max(0, max_fields - members)]
                capped = True
            members += len(items)
            for k, v in reversed(items):
                k = k if type(k) is str else str(k)
                sub = prefix + k
                add_key(Field("body:json:" + sub, k, sub))
                push((sub, v, depth))
        elif kind is list:
            if depth >= MAX_JSON_DEPTH:
                continue
            depth += 1
            elements: list[object] = node  # type: ignore[assignment]
            todo = [i for i, item in enumerate(elements) if type(item) in _CONTAINERS]
            if members + len(todo) > max_fields:
                todo = todo[: max(0, max_fields - members)]
                capped = True
            members += len(todo)
            for i in reversed(todo):
                push((f"{path}[{i}]", elements[i], depth))
        # Numbers, booleans and null are harmless as values; they stay visible in the raw text.
    keys.reverse()
    return fields, keys, capped


_CONTAINERS = (str, dict, list)


def _parse_json(
    text: str, max_fields: int = MAX_FIELDS, truncated: bool = False
) -> tuple[list[Field], list[Field], bool] | None:
    """Leaves of a JSON body; of a body cut short (``truncated``: at the cap, or not all read
    yet), the leaves of the part that arrived (:func:`partial_json`). ``None``: not JSON."""
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        if not truncated:
            return None
        doc = _cut_json(text)
        if doc is _BAD:
            return None
    return _json_walk(doc, max_fields)


# ----------------------------------------------------------------- JSON cut short
# A body longer than the cap is cut, and a cut JSON text no longer parses: padding a body past
# the cap would turn field-by-field inspection into a raw-text scan. The cut text is completed
# instead (the string the cut fell in closed, a scalar cut in its middle dropped, a key without
# its value given ``null``, the open arrays and objects closed) and parsed by json.loads. Every
# step runs in C (str.replace, split, translate, rstrip, the json scanner) but one loop over
# the unclosed brackets: linear in the length, whatever the text.

_BAD: object = object()  # "not a prefix of a JSON text": the caller falls back to raw text
#: Everything that may stand between strings but brackets (whitespace, separators, scalars).
_NOT_BRACKETS = str.maketrans("", "", " \t\n\r,:0123456789.+-eEtrufalsnNIiy")
_BRACKETS = str.maketrans("", "", "[]{}")
_CLOSE = str.maketrans("[{", "]}")
_OPEN = {"]": "[", "}": "{"}
#: Characters of a scalar (number or literal) that a cut may leave unfinished.
_SCALAR = "0123456789.+-eEabcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_LITERALS = ("true", "false", "null", "NaN", "Infinity")
_HIGH = frozenset("89abAB")  # \ud800-\udbff: the first half of a surrogate pair


def partial_json(text: str) -> object:
    """The document of JSON ``text`` cut short anywhere: what ``json.loads`` returns when it
    parses; else every complete value and the start of the value the cut fell in (a string
    read up to the cut, an escape cut in its middle left out; the members of an open object or
    array so far; a key without its value maps to ``None``; a number or literal cut short is
    left out). ``_BAD`` when ``text`` is not a prefix of a JSON text. Never raises."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return _cut_json(text)


def _cut_json(text: str) -> object:
    """:func:`partial_json` of a text ``json.loads`` refused."""
    completed = _complete(text)
    if completed is None:
        return _BAD
    if not completed.strip():  # a lone scalar cut short ("tr", "-"): no value yet; or blank
        return None if text.strip() else _BAD
    try:
        return json.loads(completed)
    except (ValueError, RecursionError):  # malformed before the cut (or nested past recursion)
        return _BAD


def _complete(text: str) -> str | None:
    """``text`` made a whole JSON text (see :func:`partial_json`), or ``None``."""
    # Escaped backslashes, then escaped quotes, masked (same length: positions hold), so that
    # splitting at quotes alternates outside and inside strings.
    masked = text.replace("\\\\", "__").replace('\\"', "__") if "\\" in text else text
    segs = masked.split('"')
    opens = _unclosed("".join(segs[0::2]))  # (an unterminated string is an odd segment: left out)
    if opens is None:
        return None
    cut, suffix = len(text), ""
    in_key = bool(opens) and opens[-1] == "{"
    if len(segs) % 2 == 0:  # the cut fell in a string
        tail = segs[-1]
        cut -= len(tail) - _string_end(tail)
        suffix = '"'
        if in_key and segs[-2].rstrip()[-1:] in ("{", ","):
            suffix += ":null"
    else:
        last = segs[-1]
        kept = last.rstrip()
        word = kept[len(kept.rstrip(_SCALAR)) :]
        if word and not (word[-1].isdigit() or word.lstrip("-") in _LITERALS):  # cut short
            if word.strip("0123456789.eE+-") and not any(w.startswith(word.lstrip("-")) for w in _LITERALS):
                return None  # not the start of a scalar
            kept = kept[: len(kept) - len(word)].rstrip()
        if kept.endswith(","):
            kept = kept[:-1]
        elif kept.endswith(":"):
            suffix = "null"
        elif not kept and len(segs) >= 3 and in_key and segs[-3].rstrip()[-1:] in ("{", ","):
            suffix = ":null"  # a key, complete, then the cut
        cut -= len(last) - len(kept)
    return text[:cut] + suffix + opens[::-1].translate(_CLOSE)


def _string_end(tail: str) -> int:
    """Where the content of a string cut short ends: before an escape cut in its middle, and
    before the first half of a surrogate pair (``\\ud83d`` without its ``\\ude00``)."""
    end = len(tail)
    at = tail.rfind("\\", max(0, end - 6))
    if at >= 0 and end - at < (6 if tail[at + 1 : at + 2] == "u" else 2):
        end = at
    last = tail[max(0, end - 6) : end]
    if last[:3] in ("\\ud", "\\uD") and last[3:4] in _HIGH and len(last) == 6:
        end -= 6
    return end


def _unclosed(outside: str) -> str | None:
    """The brackets still open at the end of ``outside`` (the text between strings), in
    order; ``None`` when they do not nest or anything but JSON's own characters is there."""
    brackets = outside.translate(_NOT_BRACKETS)
    if brackets.translate(_BRACKETS):
        return None
    for _ in range(8):  # innermost pairs first, in C (most documents nest a few levels)
        shorter = brackets.replace("[]", "").replace("{}", "")
        if len(shorter) == len(brackets):
            break
        brackets = shorter
    if "]" not in brackets and "}" not in brackets:
        return brackets
    stack: list[str] = []
    for c in brackets:  # one pass over what is left (deeper nesting): linear
        if c in "[{":
            stack.append(c)
        elif not stack or stack.pop() != _OPEN[c]:
            return None
    return "".join(stack)


def _parse_multipart(
    raw: bytes, boundary: str, max_fields: int = MAX_FIELDS, cut: bool = False
) -> tuple[list[Field], list[Field], list[Field], bool] | None:
    """Parts as fields, their names, file names; whether ``max_fields`` stopped the parse.
    ``cut``: the body was cut short, so its last part may end in the middle of a character."""
    if not boundary or len(boundary) > 200:
        return None
    delim = b"--" + boundary.encode("latin-1", "replace")
    if delim not in raw:
        return None
    fields: list[Field] = []
    keys: list[Field] = []
    files: list[Field] = []
    parts = raw.split(delim, max_fields + 1)[1:]
    capped = len(parts) > max_fields and not parts[max_fields].startswith(b"--")
    last = len(parts) - 1
    for n, part in enumerate(parts[:max_fields]):
        if part.startswith(b"--"):
            break
        part = part[2:] if part.startswith(b"\r\n") else part.lstrip(b"\n")
        head, sep, content = part.partition(b"\r\n\r\n")
        if not sep:
            head, sep, content = part.partition(b"\n\n")
            if not sep:
                continue
        if content.endswith(b"\r\n"):
            content = content[:-2]
        headers_text = head.decode("latin-1")
        name = filename = None
        ctype = ""
        for line in headers_text.splitlines():
            hname, _, hvalue = line.partition(":")
            hname = hname.strip().lower()
            if hname == "content-disposition":
                _, params = _media_type(hvalue)
                name = params.get("name")
                filename = params.get("filename")
            elif hname == "content-type":
                ctype = hvalue.strip().lower()
        if name is None:
            continue
        dname, _ = _decode(name.encode("latin-1"))
        loc = f"body:multipart:{dname}"
        keys.append(Field(loc, dname, dname))
        if filename is not None:
            dfile, ok = _decode(filename.encode("latin-1"))
            files.append(Field(f"{loc}:filename", dfile, dname, utf8=ok))
            # File contents are data, not parameters: only text parts are inspected as values.
            if not ctype.startswith("text/") or ctype.startswith("text/csv"):
                continue
        value, ok = _decode(content, cut and n == last)
        fields.append(Field(loc, value, dname, utf8=ok))
    return fields, keys, files, capped


_BINARY_TYPES = frozenset(
    {
        "application/octet-stream",
        "application/pdf",
        "application/zip",
        "application/gzip",
        "application/protobuf",
        "application/x-protobuf",
        "application/grpc",
    }
)


def _binary_type(mt: str) -> bool:
    return mt.startswith(("image/", "audio/", "video/", "font/")) or mt in _BINARY_TYPES


def is_binary(content_type: str | None) -> bool:
    """Whether a body of this Content-Type is data, not inspected as text (kind ``binary``)."""
    return _binary_type(_media_type(content_type or "")[0])


def parse_body(
    raw: bytes, content_type: str | None, truncated: bool = False, max_fields: int = MAX_FIELDS
) -> ParsedBody:
    """Parse ``raw`` (already capped) by ``content_type``, at most ``max_fields`` fields
    (form fields, JSON members, multipart parts; ``capped`` says when more were left).
    Never raises."""
    if not raw:
        return ParsedBody(truncated=truncated)
    text, utf8 = _decode(raw, truncated)
    pb = ParsedBody(kind="text", text=text, size=len(raw), utf8=utf8, truncated=truncated)
    mt, params = _media_type(content_type or "")
    try:
        if mt == "application/x-www-form-urlencoded":
            pb.kind = "form"
            pb.fields, pb.keys, pb.capped = _form_fields(text, "body:form", max_fields, truncated)
        elif mt == "application/json" or mt.endswith("+json") or mt == "text/json":
            parsed = _parse_json(text, max_fields, truncated)
            if parsed is None:
                pb.error = "invalid json"
            else:
                pb.kind = "json"
                pb.fields, pb.keys, pb.capped = parsed
        elif mt.startswith("multipart/"):
            mp = _parse_multipart(raw, params.get("boundary", ""), max_fields, truncated)
            if mp is None:
                pb.error = "invalid multipart"
            else:
                pb.kind = "multipart"
                pb.fields, pb.keys, pb.files, pb.capped = mp
        elif mt in ("application/xml", "text/xml") or mt.endswith("+xml"):
            pb.kind = "xml"
        elif _binary_type(mt):
            pb.kind = "binary"
        else:
            _sniff(pb, max_fields)
    except Exception as exc:  # pragma: no cover - parsers above are total; belt and braces
        pb.kind, pb.fields, pb.keys, pb.files = "text", [], [], []
        pb.error = type(exc).__name__
    return pb


def _sniff(pb: ParsedBody, max_fields: int = MAX_FIELDS) -> None:
    """No or unknown Content-Type: JSON if it parses, form fields if it looks urlencoded."""
    stripped = pb.text.lstrip()
    if stripped[:1] in ("{", "["):
        parsed = _parse_json(stripped, max_fields, pb.truncated)
        if parsed is not None:
            pb.kind = "json"
            pb.fields, pb.keys, pb.capped = parsed
            return
    if stripped.startswith("<") and (stripped.startswith("<?xml") or "<!DOCTYPE" in stripped[:512]):
        pb.kind = "xml"
        return
    if looks_urlencoded(pb.text):
        pb.fields, pb.keys, pb.capped = _form_fields(pb.text, "body:form", max_fields, pb.truncated)
    elif "=" not in pb.text and _ENCODED_EQ.search(pb.text):
        _encoded_form(pb, max_fields)


#: "%3D": an "=" spelled as an escape. A body made only of escapes (no "=" of its own)
#: is a form to an application that decodes the body before it parses it.
_ENCODED_EQ = re.compile(r"%3[dD]")


def _encoded_form(pb: ParsedBody, max_fields: int = MAX_FIELDS) -> None:
    """``pay%3DAND+1%3D1``: the whole form percent-encoded, "=" included. Decoded once,
    it reads ``pay=AND 1=1``; its fields are exposed as a form's (decoded once only, so
    ``%2527`` stays ``%27``), at most ``max_fields``."""
    text, ok = _decode(unquote_bytes(pb.text.replace("+", " ")))
    if not looks_urlencoded(text):
        return
    room = max_fields
    for part in text.split("&"):
        if not part:
            continue
        if room <= 0:
            pb.capped = True
            return
        room -= 1
        name, _, value = part.partition("=")
        loc = f"body:form:{name}"
        pb.fields.append(Field(loc, value, name, raw=pb.text, utf8=ok))
        pb.keys.append(Field(loc, name, name, utf8=ok))


__all__ = [
    "MAX_FIELDS",
    "MAX_JSON_DEPTH",
    "Field",
    "ParsedBody",
    "is_binary",
    "looks_urlencoded",
    "parse_body",
    "partial_json",
]

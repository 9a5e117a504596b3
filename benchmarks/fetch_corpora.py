"""Download the public sources of the detection figures and convert them to the corpus format.

    python benchmarks/fetch_corpora.py                    # into ~/.cache/devsecmw/corpora
    python benchmarks/fetch_corpora.py --cache DIR --half all --sources crs pat
    python benchmarks/detection.py ~/.cache/devsecmw/corpora/dev/*.jsonl

The README's detection table is measured on labeled requests converted from public
repositories, each pinned to the commit named in :data:`SOURCES`. This script fetches
each repository's archive at that commit (once: archives are kept in the cache), converts
it the way the project's corpus was converted (one request a line, the format of
``docs/corpus-format.md``: id, source, category, expect, method, uri, headers, body), and
writes ``<cache>/<half>/<source>.jsonl``.

- Split: a row is in the development half when ``sha256("<source>:<key>")`` starts with an
  even byte; the key is the CRS rule id (all tests of one rule on one side), else the row id.
  ``--half holdout`` writes the other half, ``--half all`` both in one file.
- Payload-only sources (lists of attack strings, parameter values) are wrapped into requests
  in turn: every tenth as a JSON body ``{"q": payload}``, then alternately a GET query
  ``/search?q=...`` and a form body ``q=...``, with a desktop browser's headers.
- Sampling: ``random.Random(20240601)``, at most 20,000 benign and 10,000 rows per attack
  category and source.
- Bytes that are not ASCII are written as latin-1 text of their UTF-8 bytes in ``uri`` and
  headers; bodies that are not ASCII are base64 (``body_b64``).

Row ids and sampling follow the same rules as the project's own corpus but are not
guaranteed to pick the very same rows, so figures come out close to, not equal to, the
README's. The generated ``modern_benign`` traffic is the project's own and is not public.
Needs network access to the source host, and PyYAML for the CRS tests (``pip install pyyaml``).
"""

from __future__ import annotations

import argparse
import base64
import csv
import gzip
import hashlib
import io
import json
import random
import re
import sys
import tarfile
import urllib.request
import zipfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

ARCHIVE = "https://github.com/{repo}/archive/{commit}.tar.gz"

#: Each source: repository and the commit its rows are converted from.
SOURCES: dict[str, tuple[str, str]] = {
    "crs": ("coreruleset/coreruleset", "2cbd1d019cb7c85319ba4d9102a382c9de7a8e53"),
    "pat": ("swisskyrepo/PayloadsAllTheThings", "f9fa51417886ac11476cb62db2dff21773dc570b"),
    "httpparams": ("Morzeux/HttpParamsDataset", "926670a710283f87c05b554680facf3f9530548c"),
    "csic": ("realivanivani/net-traffic-classifier", "ccde594758051e1c22814e511d21e68e3ded40fb"),
}

SEED = 20240601
MAX_BENIGN = 20_000
MAX_ATTACK = 10_000

BROWSER = [
    ("Host", "app.example.test"),
    ("User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.0.0 Safari/537.36"),
    ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
    ("Accept-Language", "en-US,en;q=0.9"),
    ("Accept-Encoding", "gzip, deflate, br"),
]  # fmt: skip

Row = dict[str, Any]

# -- the corpus format ------------------------------------------------------------------


def wire(text: str) -> str:
    """A request target or header value as the wire carries it: latin-1 text of UTF-8 bytes."""
    return text.encode("utf-8", "surrogateescape").decode("latin-1")


def row(
    source: str,
    rid: str,
    category: str,
    method: str,
    uri: str,
    headers: Iterable[tuple[str, str]],
    body: bytes = b"",
) -> Row:
    out: Row = {
        "id": rid,
        "source": source,
        "category": category,
        "expect": "benign" if category == "benign" else "attack",
        "method": method,
        "uri": wire(uri),
        "headers": [[k, wire(v)] for k, v in headers],
    }
    if body.isascii():
        out["body"], out["body_b64"] = body.decode("ascii"), False
    else:
        out["body"], out["body_b64"] = base64.b64encode(body).decode("ascii"), True
    return out


def wrap(source: str, rid: str, category: str, payload: str, n: int) -> Row:
    """A payload-only row as a request: n % 10 == 9 JSON, else even n GET, odd n form."""
    if n % 10 == 9:
        body = json.dumps({"q": payload}).encode()
        headers = [*BROWSER, ("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        return row(source, rid, category, "POST", "/api/submit", headers, body)
    if n % 2 == 0:
        return row(source, rid, category, "GET", "/search?q=" + quote_plus(payload), BROWSER)
    body = ("q=" + quote_plus(payload)).encode()
    headers = [
        *BROWSER,
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Content-Length", str(len(body))),
    ]
    return row(source, rid, category, "POST", "/submit", headers, body)


def half_of(source: str, key: str) -> str:
    return "dev" if hashlib.sha256(f"{source}:{key}".encode()).digest()[0] % 2 == 0 else "holdout"


def sample(rows: list[Row]) -> list[Row]:
    """At most MAX_BENIGN benign and MAX_ATTACK rows per attack category, seeded."""
    rng = random.Random(SEED)
    by_cat: dict[str, list[Row]] = {}
    for r in rows:
        by_cat.setdefault(r["category"], []).append(r)
    out: list[Row] = []
    for cat in sorted(by_cat):
        group = by_cat[cat]
        limit = MAX_BENIGN if cat == "benign" else MAX_ATTACK
        out.extend(rng.sample(group, limit) if len(group) > limit else group)
    return out


# -- archives ---------------------------------------------------------------------------


def fetch(source: str, cache: Path, base: str = ARCHIVE) -> Path:
    """The source's archive at its pinned commit, downloaded once into ``cache``."""
    repo, commit = SOURCES[source]
    path = cache / "archives" / f"{source}-{commit[:12]}.tar.gz"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    url = base.format(repo=repo, commit=commit)
    print(f"fetching {source}: {url}", file=sys.stderr)
    tmp = path.with_suffix(".part")
    with urllib.request.urlopen(url, timeout=120) as resp, tmp.open("wb") as fh:
        while chunk := resp.read(1 << 20):
            fh.write(chunk)
    with tarfile.open(tmp) as tar:
        tar.getmembers()  # a truncated download fails here, not in a converter
    tmp.replace(path)
    return path


def members(archive: Path) -> Iterator[tuple[str, bytes]]:
    """(path inside the repository, bytes) of every file, the archive's top folder removed."""
    with tarfile.open(archive) as tar:
        for m in tar:
            if not m.isfile():
                continue
            fh = tar.extractfile(m)
            if fh is not None:
                yield m.name.split("/", 1)[-1], fh.read()


# -- CRS regression tests (go-ftw YAML) -------------------------------------------------

_CRS_FILE = {"913": "scanner", "920": "protocol", "921": "protocol", "922": "protocol", "930": "traversal",
             "931": "rfi", "932": "cmdi", "933": "php", "941": "xss", "942": "sqli",
             "943": "session_fixation", "944": "java"}  # fmt: skip
_CRS_934 = {"934100": "nodejs", "934101": "nodejs", "934130": "nodejs", "934160": "nodejs",
            "934110": "ssrf", "934120": "ssrf", "934190": "ssrf", "934170": "php",
            "934180": "ssti", "934200": "ssti", "934140": "code_injection", "934150": "code_injection",
            "934210": "code_injection", "934220": "code_injection"}  # fmt: skip


def crs_category(rule_id: str) -> str | None:
    return _CRS_934.get(rule_id) if rule_id.startswith("934") else _CRS_FILE.get(rule_id[:3])


def _raw_request(encoded: str) -> tuple[str, str, list[tuple[str, str]], bytes]:
    raw = base64.b64decode(encoded)
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, _, rest = lines[0].partition(" ")
    uri = rest.rsplit(" ", 1)[0] if " HTTP/" in rest else rest
    headers = [(k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines[1:] if line)]
    return method, uri, headers, body


def convert_crs(files: Iterable[tuple[str, bytes]]) -> list[Row]:
    import yaml

    rows: list[Row] = []
    for name, data in files:
        if not (name.startswith("tests/regression/tests/") and name.endswith((".yaml", ".yml"))):
            continue
        doc = yaml.safe_load(data) or {}
        rule = str(doc.get("rule_id") or Path(name).stem)
        own = crs_category(rule)
        for test in doc.get("tests") or []:
            for n, stage in enumerate(test.get("stages") or [], start=1):
                stage = stage.get("stage", stage)
                inp, out = stage.get("input") or {}, stage.get("output") or {}
                log = out.get("log") or {}
                expect = [str(i) for i in log.get("expect_ids") or []]
                if not expect:
                    continue  # only "must not fire" expectations: not an attack row
                category = own if rule in expect else crs_category(expect[0])
                if category is None:
                    continue
                if inp.get("encoded_request"):
                    method, uri, headers, body = _raw_request(inp["encoded_request"])
                else:
                    method = str(inp.get("method", "GET"))
                    uri = str(inp.get("uri", "/"))
                    headers = [(str(k), str(v)) for k, v in (inp.get("headers") or {}).items()]
                    data = inp.get("data", "")
                    text = "\r\n".join(map(str, data)) if isinstance(data, list) else str(data or "")
                    body = text.encode("utf-8", "surrogateescape")
                    names = {k.lower() for k, _ in headers}
                    if body and inp.get("autocomplete_headers", True) and "content-length" not in names:
                        headers.append(("Content-Length", str(len(body))))
                rid = f"crs-{rule}-{test.get('test_id', test.get('test_title', '?'))}-s{n}"
                r = row("crs", rid, category, method, uri, headers, body)
                r["_key"] = rule
                rows.append(r)
    return rows


# -- PayloadsAllTheThings ---------------------------------------------------------------

_PAT_DIRS = {
    "SQL Injection": "sqli",
    "XSS Injection": "xss",
    "Command Injection": "cmdi",
    "Directory Traversal": "traversal",
    "File Inclusion": "traversal",
    "Server Side Template Injection": "ssti",
    "XXE Injection": "xxe",
    "NoSQL Injection": "nosqli",
}
_FENCE = re.compile(r"```[^\n]*\n(.*?)```", re.S)
_URL_LINE = re.compile(r"^\s*((?:https?|gopher|file|dict|ftp|ldap|tftp|jar|netdoc)://\S+)", re.M)
_JNDI = re.compile(r"\$\{[^\s]*jndi[^\s]*\}", re.I)


def convert_pat(files: Iterable[tuple[str, bytes]]) -> list[Row]:
    found: dict[str, list[str]] = {}
    for name, data in files:
        parts = name.split("/")
        text = data.decode("utf-8", "replace")
        if len(parts) >= 3 and parts[0] in _PAT_DIRS and parts[1] in ("Intruder", "Intruders"):
            if name.endswith(".md"):
                continue
            cat = "php" if parts[-1] == "php-filter-iconv.txt" else _PAT_DIRS[parts[0]]
            lines = [ln.rstrip("\r") for ln in text.split("\n")]
            found.setdefault(cat, []).extend(ln for ln in lines if ln.strip() and not ln.startswith("#"))
        elif name == "Server Side Request Forgery/README.md":
            for block in _FENCE.findall(text):
                found.setdefault("ssrf", []).extend(m.group(1) for m in _URL_LINE.finditer(block))
        elif name == "CVE Exploits/Log4Shell.md":
            for block in _FENCE.findall(text):
                found.setdefault("log4shell", []).extend(_JNDI.findall(block))
    rows: list[Row] = []
    for cat in sorted(found):
        for n, payload in enumerate(dict.fromkeys(found[cat])):
            rid = f"pat-{cat}-{n:06d}"
            if cat == "xxe":
                body = payload.encode("utf-8", "surrogateescape")
                headers = [*BROWSER, ("Content-Type", "application/xml"), ("Content-Length", str(len(body)))]
                rows.append(row("pat", rid, cat, "POST", "/api/xml", headers, body))
            else:
                rows.append(wrap("pat", rid, cat, payload, n))
    return rows


# -- HttpParamsDataset ------------------------------------------------------------------

_PARAMS = {"norm": "benign", "sqli": "sqli", "xss": "xss", "cmdi": "cmdi", "path-traversal": "traversal"}


def convert_httpparams(files: Iterable[tuple[str, bytes]]) -> list[Row]:
    rows: list[Row] = []
    for name, data in files:
        if Path(name).name != "payload_full.csv":
            continue
        seen: dict[str, dict[str, None]] = {}
        for rec in csv.DictReader(io.StringIO(data.decode("utf-8", "replace"))):
            cat = _PARAMS.get((rec.get("attack_type") or "").strip())
            if cat is not None:
                seen.setdefault(cat, {})[rec.get("payload") or ""] = None
        for cat in sorted(seen):
            for n, payload in enumerate(seen[cat]):
                rows.append(wrap("httpparams", f"httpparams-{cat}-{n:06d}", cat, payload, n))
    return rows


# -- CSIC 2010 normal traffic -----------------------------------------------------------


def _csic_requests(text: str) -> Iterator[tuple[str, str, list[tuple[str, str]], str]]:
    lines = text.replace("\r\n", "\n").split("\n")
    i = 0
    while i < len(lines):
        parts = lines[i].split(" ")
        if len(parts) < 2 or parts[0] not in ("GET", "POST", "PUT"):
            i += 1
            continue
        method, uri = parts[0], parts[1]
        headers: list[tuple[str, str]] = []
        i += 1
        while i < len(lines) and lines[i].strip():
            k, _, v = lines[i].partition(":")
            headers.append((k.strip(), v.strip()))
            i += 1
        body = ""
        if method != "GET":
            while i < len(lines) and not lines[i].strip():
                i += 1
            if i < len(lines) and lines[i].split(" ")[0] not in ("GET", "POST", "PUT"):
                body = lines[i].strip()
                i += 1
        yield method, uri, headers, body


def convert_csic(files: Iterable[tuple[str, bytes]]) -> list[Row]:
    rows: list[Row] = []
    for name, data in files:
        if Path(name).name != "csic_dataset.zip":
            continue
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for inner in sorted(zf.namelist()):
                if "normalTraffic" not in inner:
                    continue
                raw = zf.read(inner)
                text = (gzip.decompress(raw) if inner.endswith(".gz") else raw).decode("latin-1")
                for method, uri, headers, body in _csic_requests(text):
                    heads = [(k, v) for k, v in headers if k.lower() != "content-length"]
                    if body:
                        heads.append(("Content-Length", str(len(body))))
                    n = len(rows)
                    rows.append(
                        row("csic", f"csic-{n:06d}", "benign", method, uri, heads, body.encode("latin-1"))
                    )
    return rows


CONVERTERS: dict[str, Callable[[Iterable[tuple[str, bytes]]], list[Row]]] = {
    "crs": convert_crs,
    "pat": convert_pat,
    "httpparams": convert_httpparams,
    "csic": convert_csic,
}


def build(source: str, archive: Path, out_dir: Path, half: str) -> tuple[Path, int]:
    rows = sample(CONVERTERS[source](members(archive)))
    path = out_dir / half / f"{source}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8") as fh:
        for r in rows:
            key = r.pop("_key", r["id"])
            if half != "all" and half_of(source, key) != half:
                continue
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
            n += 1
    return path, n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "devsecmw" / "corpora")
    ap.add_argument("--half", choices=("dev", "holdout", "all"), default="dev")
    ap.add_argument("--sources", nargs="+", choices=sorted(SOURCES), default=sorted(SOURCES))
    ap.add_argument("--base-url", default=ARCHIVE, help="archive URL template ({repo}, {commit})")
    args = ap.parse_args(argv)
    for source in args.sources:
        try:
            archive = fetch(source, args.cache, args.base_url)
        except OSError as exc:
            print(f"{source}: could not fetch the archive: {exc}", file=sys.stderr)
            return 1
        path, n = build(source, archive, args.cache, args.half)
        print(f"{source}: {n} rows -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

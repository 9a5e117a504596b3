"""The ``devsecmw`` command: rules list / validate, scan, entry points (the demo: test_demo.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from devsecmw import __version__
from devsecmw.cli import main, request_from_row
from devsecmw.engine.rules import load_all


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


# --------------------------------------------------------------------------- rules list
def test_rules_list_shows_every_packaged_rule(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = _run(capsys, "rules", "list")
    assert rc == 0
    rules = load_all()
    lines = out.splitlines()
    assert len(lines) == len(rules)
    assert {line.split()[0] for line in lines} == {r.id for r in rules}
    assert err.strip() == f"{len(rules)} rules"


def test_rules_list_filters_by_type_and_speaks_json(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(capsys, "rules", "list", "--type", "sqli", "--json")
    assert rc == 0
    docs = [json.loads(line) for line in out.splitlines()]
    assert docs and {d["type"] for d in docs} == {"sqli"}
    assert {d["id"] for d in docs} == {r.id for r in load_all() if r.type == "sqli"}
    assert set(docs[0]) == {"id", "name", "type", "severity", "paranoia", "phases", "ruleset", "source"}


# --------------------------------------------------------------------------- rules validate
def _rule_file(tmp_path: Path, rule: dict[str, Any], name: str = "extra.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps({"ruleset": "local", "rules": [rule]}), encoding="utf-8")
    return str(path)


GOOD_RULE = {
    "id": "990100",
    "name": "Local: internal admin token in a parameter",
    "type": "backdoor",
    "severity": "critical",
    "targets": ["args"],
    "operator": "rx",
    "value": "(?i)\\bx-internal-admin\\b",
    "examples": {"match": ["X-Internal-Admin"], "nomatch": ["internal administration"]},
}


def test_rules_validate_accepts_a_good_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _rule_file(tmp_path, GOOD_RULE)
    rc, out, err = _run(capsys, "rules", "validate", path)
    assert (rc, err) == (0, "")
    assert out.strip() == f"ok: {path}: 1 rules"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"type": "sqlinjection"}, "invalid type 'sqlinjection'"),
        ({"targets": ["params"]}, "invalid target 'params'"),
        ({"id": "942100"}, "duplicate id"),
        ({"examples": {"match": ["admin"], "nomatch": []}}, "example does not match: 'admin'"),
        ({"examples": {"match": [], "nomatch": ["x-internal-admin"]}}, "'nomatch' example matches"),
    ],
)
def test_rules_validate_names_the_file_the_rule_and_the_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: dict[str, Any], message: str
) -> None:
    path = _rule_file(tmp_path, {**GOOD_RULE, **change})
    rc, out, err = _run(capsys, "rules", "validate", path)
    assert rc == 1 and out == ""
    assert err.startswith(f"error: {path}: rule ")
    assert message in err


def test_rules_validate_reports_unreadable_files_and_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = _rule_file(tmp_path, GOOD_RULE)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    rc, out, err = _run(capsys, "rules", "validate", str(broken), str(tmp_path / "missing.json"), good)
    assert rc == 1
    assert f"{broken}: not valid JSON" in err
    assert "missing.json: cannot read rule file" in err
    assert f"ok: {good}" in out


def test_rules_list_includes_extra_rule_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(
        capsys, "rules", "list", "--rule-file", _rule_file(tmp_path, GOOD_RULE), "--type", "backdoor"
    )
    assert rc == 0
    assert "990100" in {line.split()[0] for line in out.splitlines()}


# --------------------------------------------------------------------------- scan
ROWS = [
    {
        "id": "t-benign",
        "expect": "benign",
        "method": "GET",
        "uri": "/search?q=blue+shirt&page=2",
        "headers": [["Host", "shop.test"], ["User-Agent", "Mozilla/5.0"]],
        "body": "",
        "body_b64": False,
    },
    {
        "id": "t-sqli",
        "expect": "attack",
        "method": "GET",
        "uri": "/items?id=1%27%20UNION%20SELECT%20password%20FROM%20users--",
        "headers": [["Host", "shop.test"]],
        "body": "",
        "body_b64": False,
    },
    {
        "id": "t-xss-body",
        "expect": "attack",
        "method": "POST",
        "uri": "http://shop.test/comments",
        "headers": [["Content-Type", "application/x-www-form-urlencoded"]],
        # base64 of: text=<script>alert(document.cookie)</script>
        "body": "dGV4dD08c2NyaXB0PmFsZXJ0KGRvY3VtZW50LmNvb2tpZSk8L3NjcmlwdD4=",
        "body_b64": True,
    },
    {
        "id": "t-missed",
        "expect": "attack",
        "method": "GET",
        "uri": "/about",
        "headers": [],
        "body": "",
        "body_b64": False,
        "status": 503,
    },
]


@pytest.fixture
def rows_file(tmp_path: Path) -> str:
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n\n", encoding="utf-8")
    return str(path)


def test_request_from_row_keeps_the_raw_target_and_decodes_the_body() -> None:
    req, body = request_from_row(ROWS[2])
    assert req.method == "POST" and req.target == "/comments" and req.path == "/comments"
    assert body == b"text=<script>alert(document.cookie)</script>"
    req, body = request_from_row(ROWS[1])
    assert req.target == ROWS[1]["uri"] and req.path == "/items" and body == b""
    assert req.header("host") == "shop.test"


def test_scan_prints_one_verdict_a_row_and_a_tally(
    rows_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, err = _run(capsys, "scan", rows_file)
    assert rc == 0
    lines = {line.split(":", 1)[0]: line for line in out.splitlines()}
    assert list(lines) == ["t-benign", "t-sqli", "t-xss-body", "t-missed"]
    assert lines["t-benign"].startswith("t-benign: benign score=0 expected benign")
    assert "MISMATCH" not in lines["t-benign"]
    assert lines["t-sqli"].startswith("t-sqli: attack ") and "sqli(" in lines["t-sqli"]
    assert "@query:id" in lines["t-sqli"]
    assert "xss(" in lines["t-xss-body"] and "@body:" in lines["t-xss-body"]
    # A row's recorded status is used: a 5xx with no attack is an anomaly, and a miss.
    assert lines["t-missed"].startswith("t-missed: anomaly")
    assert "http_5xx@response:status" in lines["t-missed"] and "MISMATCH" in lines["t-missed"]
    assert err.strip() == "attacks flagged 2/3; benign flagged 0/1 (false positives)"


def test_scan_mismatches_only_and_json(rows_file: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(capsys, "scan", "--mismatches", rows_file)
    assert rc == 0 and [line.split(":")[0] for line in out.splitlines()] == ["t-missed"]
    rc, out, _ = _run(capsys, "scan", "--json", rows_file)
    docs = [json.loads(line) for line in out.splitlines()]
    assert [d["id"] for d in docs] == ["t-benign", "t-sqli", "t-xss-body", "t-missed"]
    sqli = docs[1]
    assert sqli["classification"] == "attack" and sqli["score"] >= 5
    assert any(s["type"] == "sqli" and s["location"] == "query:id" and s["rule"] for s in sqli["signals"])


def test_scan_reports_a_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{oops\n", encoding="utf-8")
    rc, _, err = _run(capsys, "scan", str(bad))
    assert rc == 1 and err.startswith("devsecmw scan: ")
    rc, _, err = _run(capsys, "scan", str(tmp_path / "absent.jsonl"))
    assert rc == 1 and "absent.jsonl" in err


# --------------------------------------------------------------------------- entry points
def test_a_command_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2
    assert "COMMAND" in capsys.readouterr().err


def test_python_dash_m_devsecmw() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "devsecmw", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"devsecmw {__version__}"


def test_the_command_loads_no_demo_dependency_until_the_demo_runs() -> None:
    # `devsecmw rules` and `devsecmw scan` must work with the runtime dependencies alone.
    code = (
        "import sys, devsecmw.cli\n"
        "heavy = ('starlette', 'uvicorn', 'httpx', 'opentelemetry.sdk')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


# --------------------------------------------------------------------------- rough edges
def test_rules_list_into_a_closed_pipe_ends_quietly() -> None:
    # `devsecmw rules list | head -1`: the reader leaves after one line; no BrokenPipe traceback.
    proc = subprocess.run(
        f"'{sys.executable}' -m devsecmw rules list | head -1",
        shell=True,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        executable="/bin/bash",
    )
    assert proc.returncode == 0
    assert len(proc.stdout.splitlines()) == 1
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr


def test_rules_list_in_process_reports_a_closed_pipe(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from devsecmw import cli

    def gone(args: Any) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(cli, "cmd_rules_list", gone)  # bound when main() builds the parser
    monkeypatch.setattr(cli.os, "dup2", lambda fd, fd2: None)  # keep pytest's stdout usable
    assert cli.main(["rules", "list"]) == cli.EXIT_BROKEN_PIPE
    assert capsys.readouterr().err == ""


def test_rules_list_rejects_an_unknown_type(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["rules", "list", "--type", "xsss"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "unknown signal type 'xsss'" in err
    assert "valid types: " in err and " xss" in err and "sqli" in err


@pytest.mark.parametrize(
    ("lines", "where", "what"),
    [
        (['{"uri": "/"}', "{oops"], ":2: ", "not a JSON object: Expecting property name"),
        (['{"uri": "/"}', "", '["a list"]'], ":3: ", "not a JSON object (a list)"),
        (['{"uri": "/", "headers": [["x"]]}'], ":1: ", "not a request row"),
        (['{"uri": "/", "body": "!!", "body_b64": true}'], ":1: ", "not a request row"),
    ],
)
def test_scan_errors_name_the_file_and_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], lines: list[str], where: str, what: str
) -> None:
    bad = tmp_path / "rows.jsonl"
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rc, _, err = _run(capsys, "scan", str(bad))
    assert rc == 1
    assert err.startswith(f"devsecmw scan: {bad}{where}")
    assert what in err


# --------------------------------------------------------------------------- config
def test_config_prints_each_value_and_where_it_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.devsecmw]\nmode = "block"\nclient_window = "2m"\n', encoding="utf-8"
    )
    monkeypatch.chdir(tmp_path)
    for name in [k for k in os.environ if k.startswith("DEVSECMW_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("DEVSECMW_PARANOIA_LEVEL", "2")
    monkeypatch.setenv("DEVSECMW_PARANOIA", "3")  # a typo: not an option, said so
    rc, out, err = _run(capsys, "config")
    assert rc == 0
    lines = {line.split("=", 1)[0].strip(): line for line in out.splitlines()}
    assert lines["mode"].endswith(f'= "block"  # file {tmp_path / "pyproject.toml"}: tool.devsecmw.mode')
    assert lines["client_window"].split("=", 1)[1].startswith(" 120.0  # file ")
    assert lines["paranoia_level"].endswith("= 2  # environment: DEVSECMW_PARANOIA_LEVEL")
    assert lines["body_limit"].endswith("= 65536  # default")
    assert "DEVSECMW_PARANOIA is not an option of devsecmw" in err
    rc, out, _ = _run(capsys, "config", "--json")
    doc = json.loads(out)
    assert doc["mode"] == {
        "value": "block",
        "source": f"file {tmp_path / 'pyproject.toml'}",
        "key": "tool.devsecmw.mode",
    }
    assert doc["paranoia_level"]["source"] == "environment"


def test_config_rejects_a_bad_value_naming_source_and_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DEVSECMW_BLOCK_FLAGGED", "flase")
    rc, out, err = _run(capsys, "config")
    assert rc == 1 and out == ""
    assert err.strip().startswith("devsecmw: DEVSECMW_BLOCK_FLAGGED (environment): 'flase' is not a boolean")
    monkeypatch.delenv("DEVSECMW_BLOCK_FLAGGED")
    monkeypatch.setenv("DEVSECMW_DISABLED_RULES", "941100")
    rc, _, err = _run(capsys, "config")
    assert rc == 1 and "switching rule '941100' off everywhere would switch xss detection off" in err

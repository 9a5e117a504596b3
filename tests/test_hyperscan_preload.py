"""A server that preloads the app before forking (gunicorn --preload) compiles once, in the
master: its workers inherit the RE2 sets, and load the Hyperscan database the master builds
(waiting on its lock) instead of compiling it each. Real gunicorn on 127.0.0.1."""

from __future__ import annotations

import json
import os
import textwrap
import time
from pathlib import Path

import httpx
import pytest
from servers import gunicorn_ports

from devsecmw.engine import hsscan

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(os.name != "posix", reason="gunicorn and fork: POSIX only"),
    pytest.mark.skipif(not hsscan.HAVE_HYPERSCAN, reason="hyperscan is not installed (devsecmw[hyperscan])"),
]
pytest.importorskip("gunicorn")

APP = textwrap.dedent(
    """
    import json, os

    from devsecmw.engine import hsscan, plan
    from devsecmw.wsgi import SecurityMiddleware

    LOADED_IN = os.getpid()  # the process that imported the app (and built the middleware)


    def inner(environ, start_response):
        ready = [d.ready.is_set() for d in plan.databases.values() if d is not None]
        body = json.dumps({
            "pid": os.getpid(), "loaded_in": LOADED_IN, "ready": ready, "builds": hsscan.Database.builds,
        }).encode()
        start_response("200 OK", [("content-type", "application/json")])
        return [body]


    app = SecurityMiddleware(inner)
    """
)


def test_preloaded_workers_do_not_compile(tmp_path: Path) -> None:
    (tmp_path / "hsapp.py").write_text(APP)
    cache = tmp_path / "cache"  # empty: the master must build the database
    env = {"DEVSECMW_CACHE_DIR": str(cache), "PYTHONPATH": os.pathsep.join([str(tmp_path), os.getcwd()])}
    with gunicorn_ports("hsapp:app", tmp_path, env, "/", workers=2, args=["--preload"]) as (base,):
        seen: dict[int, dict[str, object]] = {}
        deadline = time.monotonic() + 120  # the master's build: a few seconds of CPU
        with httpx.Client(base_url=base, timeout=10) as client:
            while time.monotonic() < deadline:
                report = client.get("/state").json()
                seen[int(report["pid"])] = report
                if all(r["ready"] == [True] for r in seen.values()):
                    break
                time.sleep(0.5)
    assert seen, "no worker answered"
    for pid, report in seen.items():
        assert report["loaded_in"] != pid, "the app was not preloaded in the master"
        assert report["ready"] == [True], f"worker {pid}: database not ready: {report}"
        builds = [tuple(b) for b in report["builds"]]  # type: ignore[attr-defined]
        # The worker loaded the file (or inherited a finished database): it never compiled.
        assert (pid, "compiled") not in builds, json.dumps(report)
    assert len(list(cache.glob("hs-*.db"))) == 1  # built once, by the master

"""Start-up memory (issue 10): optional heavy modules are imported only by a process that uses them.

Each check runs in a fresh interpreter: ``sys.modules`` of the test process already holds
whatever other tests imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from devsecmw.engine import hsscan

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys
import devsecmw.asgi
async def app(scope, receive, send):
    pass
devsecmw.asgi.SecurityMiddleware(app, **json.loads(sys.argv[1]))
from devsecmw.engine import plan
used = any(d is not None for d in plan.databases.values())
print(json.dumps({"imported": "hyperscan" in sys.modules, "enabled": used}))
"""


def _child(env_value: str | None, **options: object) -> dict[str, bool]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEVSECMW_")}
    env.update({"DEVSECMW_CACHE_DIR": "off", "DEVSECMW_CONFIG": "none", "PYTHONPATH": str(ROOT)})
    if env_value is not None:
        env["DEVSECMW_HYPERSCAN"] = env_value
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(options)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result: dict[str, bool] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_hyperscan_switched_off_is_never_imported() -> None:
    # ~1.5 MiB of RSS and ~6 ms that a process keeping every scan on RE2 has no use for.
    # The environment variable (unchanged for existing users) goes through the configuration.
    assert _child("off") == {"imported": False, "enabled": False}


def test_hyperscan_keyword_false_keeps_re2_alone() -> None:
    # The keyword argument wins over the environment, as for every option.
    assert _child("on", hyperscan=False) == {"imported": False, "enabled": False}
    assert _child(None, hyperscan=False) == {"imported": False, "enabled": False}


@pytest.mark.skipif(not hsscan.HAVE_HYPERSCAN, reason="hyperscan is not installed (devsecmw[hyperscan])")
def test_hyperscan_switched_on_is_imported_and_used() -> None:
    assert _child("on") == {"imported": True, "enabled": True}
    assert _child(None) == {"imported": True, "enabled": True}  # the default: used when installed
    assert _child("off", hyperscan=True) == {"imported": True, "enabled": True}


def test_found_without_being_imported() -> None:
    # HAVE_HYPERSCAN says whether the package can be found; loading it is _load's job.
    out = subprocess.run(
        [sys.executable, "-c", "import sys; from devsecmw.engine import hsscan; "
         "print(hsscan.HAVE_HYPERSCAN, 'hyperscan' in sys.modules)"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120,
        check=True,
    ).stdout.split()  # fmt: skip
    assert out == [str(hsscan.HAVE_HYPERSCAN), "False"]

"""The Hyperscan options (``hyperscan``, ``cache_dir``) are ordinary options of the configuration:
every source sets them with the usual precedence, a bad value stops start-up naming its source
and key, ``devsecmw config`` lists them, and they reach the plan / hsscan per engine."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from devsecmw.cli import main
from devsecmw.config import Config, ConfigError
from devsecmw.engine import Engine, hsscan, plan


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in [k for k in os.environ if k.startswith("DEVSECMW_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no devsecmw.toml / pyproject.toml of the checkout


def test_defaults() -> None:
    config = Config.from_options()
    assert config.hyperscan is True and config.cache_dir == ""


def test_every_source_with_the_usual_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "devsecmw.toml").write_text('hyperscan = false\ncache_dir = "/from/file"\n', encoding="utf-8")
    config = Config.from_options()
    assert (config.hyperscan, config.cache_dir) == (False, "/from/file")
    monkeypatch.setenv("DEVSECMW_HYPERSCAN", "on")
    monkeypatch.setenv("DEVSECMW_CACHE_DIR", "off")
    config = Config.from_options()
    assert (config.hyperscan, config.cache_dir) == (True, "off")
    config = Config.from_options({"hyperscan": False, "cache_dir": "/from/kwargs"})
    assert (config.hyperscan, config.cache_dir) == (False, "/from/kwargs")


def test_flask_app_config_sets_them() -> None:
    flask = pytest.importorskip("flask")
    from devsecmw.flask import app_config

    app = flask.Flask(__name__)
    app.config.update(DEVSECMW_HYPERSCAN="off", DEVSECMW_CACHE_DIR="/var/cache/app")
    config = app_config(app, {})
    assert (config.hyperscan, config.cache_dir) == (False, "/var/cache/app")


def test_a_bad_value_stops_start_up_naming_source_and_key(monkeypatch: pytest.MonkeyPatch) -> None:
    from devsecmw.asgi import SecurityMiddleware

    async def app(scope: object, receive: object, send: object) -> None:
        raise AssertionError("never called")

    monkeypatch.setenv("DEVSECMW_HYPERSCAN", "maybe")
    with pytest.raises(ConfigError) as exc:
        SecurityMiddleware(app)
    assert str(exc.value).startswith("devsecmw: DEVSECMW_HYPERSCAN (environment): 'maybe' is not a boolean")


def test_keyword_values_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"hyperscan \(keyword argument\): 'yes please' is not a boolean"):
        Config.from_options({"hyperscan": "yes please"})
    with pytest.raises(ConfigError, match=r"cache_dir \(keyword argument\): 3 is not a string"):
        Config.from_options({"cache_dir": 3})
    with pytest.raises(ConfigError) as exc:
        Config.from_options({"cache_dir": "/a\0b"})
    assert str(exc.value).startswith("devsecmw: cache_dir (keyword argument): invalid cache_dir")


def test_devsecmw_config_lists_both_with_their_source(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DEVSECMW_HYPERSCAN", "off")
    rc = main(["config"])
    out = capsys.readouterr().out
    assert rc == 0
    lines = {line.split("=", 1)[0].strip(): line for line in out.splitlines()}
    assert lines["hyperscan"].endswith("= false  # environment: DEVSECMW_HYPERSCAN")
    assert lines["cache_dir"].endswith('= ""  # default')
    monkeypatch.setenv("DEVSECMW_CACHE_DIR", "off")
    rc = main(["config", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert doc["cache_dir"] == {"value": "off", "source": "environment", "key": "DEVSECMW_CACHE_DIR"}
    assert doc["hyperscan"] == {"value": False, "source": "environment", "key": "DEVSECMW_HYPERSCAN"}


def test_hyperscan_false_engine_is_re2_alone() -> None:
    engine = Engine(Config(hyperscan=False))
    assert plan.database_for(engine.rules, False) is None
    for phase in engine._phases.values():
        for group in phase.groups:
            assert not isinstance(group.matcher, hsscan.HsSet)


@pytest.mark.skipif(not hsscan.HAVE_HYPERSCAN, reason="hyperscan is not installed (devsecmw[hyperscan])")
def test_the_options_reach_the_database_per_engine(tmp_path: Path) -> None:
    cache = tmp_path / "hs"
    on = Engine(Config(hyperscan=True, cache_dir=str(cache)))
    off = Engine(Config(hyperscan=False))
    # The compiled rule sets are keyed by rules *and* options: neither engine sees the other's.
    assert on._phases is not off._phases
    db = plan.database_for(on.rules, True, str(cache))
    assert db is not None and db.directory == cache
    assert db.wait(300) and db.source in ("compiled", "cache")
    assert len(list(cache.glob("hs-*.db"))) == 1  # the file is where the option says
    assert plan.database_for(off.rules, False) is None
    assert plan.database_for(on.rules, True, "off") is None  # another key: not built here
    # Equal options share the compiled sets (one database per rule set and options).
    assert Engine(Config(hyperscan=True, cache_dir=str(cache)))._phases is on._phases


def test_django_settings_set_them(monkeypatch: pytest.MonkeyPatch) -> None:
    # settings.DEVSECMW as Django gives it (configuring Django itself is per process: see
    # test_config_frameworks for the real system check).
    from devsecmw import django_settings

    options = {"hyperscan": False, "cache_dir": "off"}
    monkeypatch.setattr(django_settings, "_settings_options", lambda: dict(options))
    config, _ = django_settings.settings_config()
    assert (config.hyperscan, config.cache_dir) == (False, "off")
    options["hyperscan"] = "sometimes"
    with pytest.raises(ConfigError) as exc:
        django_settings.settings_config()
    assert str(exc.value).startswith(
        "devsecmw: DEVSECMW['hyperscan'] (Django settings.DEVSECMW): 'sometimes' is not a boolean"
    )

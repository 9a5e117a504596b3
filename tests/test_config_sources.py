"""Configuration sources: file, environment, keyword arguments; one precedence; strict parsing.

Every rejected value names its source and its key (the framework sources are tested in
test_config_frameworks.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from devsecmw import ConfigError
from devsecmw.config import Config, Exclusion, Layer, find_config_file, resolve, route_key, sources
from devsecmw.signals import Severity, Signal


def _config(tmp_path: Path, options: dict[str, Any] | None = None, **env: str) -> Config:
    return Config.from_options(options, environ=env, cwd=tmp_path)


# --------------------------------------------------------------------------- file
def test_pyproject_tool_table_is_read_from_the_current_directory(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "shop"\n\n[tool.devsecmw]\nmode = "block"\nparanoia_level = 2\n'
        'ignore_paths = ["/healthz"]\nclient_window = "2m"\nblock_read_timeout = 0.5\n'
        '[[tool.devsecmw.exclusions]]\nrules = ["xss"]\nroute = "/cms/{id}"\nlocation = "body:json:html"\n',
        encoding="utf-8",
    )
    c = _config(tmp_path)
    assert (c.mode, c.paranoia_level, c.ignore_paths) == ("block", 2, ("/healthz",))
    assert c.client_window == 120.0 and c.block_read_timeout == 0.5
    assert c.exclusions == (Exclusion(("xss",), "/cms/{id}", "body:json:html"),)


def test_a_pyproject_without_the_table_is_not_a_configuration_file(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "shop"\n', encoding="utf-8")
    assert find_config_file({}, tmp_path) is None
    assert _config(tmp_path) == Config()


def test_devsecmw_toml_comes_before_pyproject(tmp_path: Path) -> None:
    (tmp_path / "devsecmw.toml").write_text("paranoia_level = 3\n", encoding="utf-8")
    (tmp_path / "pyproject.toml").write_text("[tool.devsecmw]\nparanoia_level = 2\n", encoding="utf-8")
    assert _config(tmp_path).paranoia_level == 3


def test_devsecmw_config_names_the_file(tmp_path: Path) -> None:
    other = tmp_path / "conf" / "security.toml"
    other.parent.mkdir()
    other.write_text('mode = "block"\n', encoding="utf-8")
    (tmp_path / "devsecmw.toml").write_text('mode = "monitor"\n', encoding="utf-8")
    assert _config(tmp_path, DEVSECMW_CONFIG=str(other)).mode == "block"
    assert _config(tmp_path, DEVSECMW_CONFIG="none").mode == "monitor"  # no file at all... but cwd?
    with pytest.raises(ConfigError, match=r"DEVSECMW_CONFIG \(environment\): no such file '.*absent.toml'"):
        _config(tmp_path, DEVSECMW_CONFIG=str(tmp_path / "absent.toml"))


def test_bad_toml_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "devsecmw.toml").write_text("mode = \n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"devsecmw\.toml: not valid TOML"):
        _config(tmp_path)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            "block_flagged = 1\n",
            r"tool\.devsecmw\.block_flagged \(file .*pyproject\.toml\): 1 is not a boolean",
        ),
        (
            'ignore_paths = ["healthz"]\n',
            r"tool\.devsecmw\.ignore_paths \(file .*\): 'healthz' is not a path",
        ),
        (
            'trusted_proxies = ["10.0.0.0/33"]\n',
            r"trusted_proxies \(file .*\): '10\.0\.0\.0/33' is not an IP",
        ),
        ('flag_ttl = "soon"\n', r"flag_ttl \(file .*\): 'soon' is not a duration"),
        ("paranoia_level = 9\n", r"paranoia_level \(file .*\): invalid paranoia_level 9"),
        ('[[tool.devsecmw.exclusions]]\nrules = ["xsss"]\n', r"exclusions\[0\] \(file .*\): .*'xsss'"),
    ],
)
def test_bad_file_values_name_the_file_and_the_key(tmp_path: Path, toml: str, message: str) -> None:
    (tmp_path / "pyproject.toml").write_text(f"[tool.devsecmw]\n{toml}", encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        _config(tmp_path)


def test_unknown_file_key_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "devsecmw.toml").write_text("paranoia = 2\n", encoding="utf-8")
    with pytest.raises(TypeError, match=r"unknown option 'paranoia' in file .*devsecmw\.toml"):
        _config(tmp_path)


# --------------------------------------------------------------------------- precedence
def test_one_precedence_kwargs_env_framework_file_default(tmp_path: Path) -> None:
    (tmp_path / "devsecmw.toml").write_text(
        "paranoia_level = 4\nmax_events = 4\nflag_404s = 4\nflag_5xx = 4\n", encoding="utf-8"
    )
    framework = Layer.from_mapping(
        "Django settings.DEVSECMW", {"paranoia_level": 3, "max_events": 3, "flag_404s": 3}
    )
    env = {"DEVSECMW_PARANOIA_LEVEL": "2", "DEVSECMW_MAX_EVENTS": "2"}
    layers = sources({"paranoia_level": 1}, env, framework=framework, cwd=tmp_path)
    config, origins = resolve(layers)
    assert (config.paranoia_level, config.max_events, config.flag_404s, config.flag_5xx) == (1, 2, 3, 4)
    assert config.flag_attacks == Config().flag_attacks
    assert origins["paranoia_level"] == ("keyword argument", "paranoia_level")
    assert origins["max_events"] == ("environment", "DEVSECMW_MAX_EVENTS")
    assert origins["flag_404s"] == ("Django settings.DEVSECMW", "flag_404s")
    assert origins["flag_5xx"] == (f"file {tmp_path / 'devsecmw.toml'}", "flag_5xx")
    assert origins["flag_attacks"] == ("default", "")


def test_an_empty_variable_is_no_variable(tmp_path: Path) -> None:
    assert _config(tmp_path, DEVSECMW_MODE="").mode == "monitor"


# --------------------------------------------------------------------------- strict parsing
@pytest.mark.parametrize("text", ["true", "1", "yes", "on", "TRUE", " On "])
def test_true_booleans(tmp_path: Path, text: str) -> None:
    assert _config(tmp_path, DEVSECMW_BLOCK_FLAGGED="false").block_flagged is False
    assert _config(tmp_path, DEVSECMW_BLOCK_FLAGGED=text).block_flagged is True


@pytest.mark.parametrize("text", ["false", "0", "no", "off"])
def test_false_booleans(tmp_path: Path, text: str) -> None:
    assert _config(tmp_path, DEVSECMW_BLOCK_FLAGGED=text).block_flagged is False


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"DEVSECMW_BLOCK_FLAGGED": "flase"},
            "devsecmw: DEVSECMW_BLOCK_FLAGGED (environment): 'flase' is not a boolean",
        ),
        ({"DEVSECMW_BLOCK_FLAGGED": "2"}, "DEVSECMW_BLOCK_FLAGGED (environment): '2' is not a boolean"),
        ({"DEVSECMW_BODY_LIMIT": "64k"}, "DEVSECMW_BODY_LIMIT (environment): '64k' is not an integer"),
        ({"DEVSECMW_TIME_BUDGET": "fast"}, "DEVSECMW_TIME_BUDGET (environment): 'fast' is not a duration"),
        ({"DEVSECMW_TIME_BUDGET": "-1s"}, "DEVSECMW_TIME_BUDGET (environment): '-1s' is not a duration"),
        ({"DEVSECMW_TIME_BUDGET": "0ms"}, "DEVSECMW_TIME_BUDGET (environment): invalid time_budget 0.0"),
        (
            {"DEVSECMW_ALLOW_NETWORKS": "10.0.0.0/8, office"},
            "DEVSECMW_ALLOW_NETWORKS (environment): 'office' is not an IP address or CIDR network",
        ),
        (
            {"DEVSECMW_TRUSTED_PROXIES": "300.1.1.1"},
            "DEVSECMW_TRUSTED_PROXIES (environment): '300.1.1.1' is not an IP address",
        ),
        (
            {"DEVSECMW_IGNORE_PATHS": "/healthz,metrics"},
            "DEVSECMW_IGNORE_PATHS (environment): 'metrics' is not a path (it must start with /)",
        ),
        (
            {"DEVSECMW_ALLOW_PATHS": "status"},
            "DEVSECMW_ALLOW_PATHS (environment): 'status' is not a path (it must start with /)",
        ),
        ({"DEVSECMW_MODE": "enforce"}, "DEVSECMW_MODE (environment): invalid mode 'enforce'"),
        (
            {"DEVSECMW_BLOCK_TYPES": "sqli,http_404"},
            "DEVSECMW_BLOCK_TYPES (environment): invalid block_types entry 'http_404'",
        ),
        (
            {"DEVSECMW_EXCLUSIONS": '[{"rules": ["xsss"]}]'},
            "DEVSECMW_EXCLUSIONS[0] (environment): invalid exclusion rule 'xsss': not a signal type",
        ),
        ({"DEVSECMW_EXCLUSIONS": "{oops"}, "DEVSECMW_EXCLUSIONS (environment): not a JSON list"),
        (
            {"DEVSECMW_BEFORE_EMIT": "no_such_module_here:hook"},
            "DEVSECMW_BEFORE_EMIT (environment): cannot import 'no_such_module_here:hook'",
        ),
        (
            {"DEVSECMW_EXCLUDED_URLS": "healthz,(unclosed"},
            "DEVSECMW_EXCLUDED_URLS (environment): invalid excluded_urls pattern '(unclosed'",
        ),
    ],
)
def test_bad_environment_values_name_the_variable(tmp_path: Path, env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        _config(tmp_path, **env)
    assert message in str(exc.value)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"block_flagged": "flase"}, "block_flagged (keyword argument): 'flase' is not a boolean"),
        ({"block_flagged": 1}, "block_flagged (keyword argument): 1 is not a boolean"),
        ({"body_limit": 1.5}, "body_limit (keyword argument): 1.5 is not an integer"),
        ({"ignore_paths": ["healthz"]}, "ignore_paths (keyword argument): 'healthz' is not a path"),
        (
            {"exclusions": [{"rules": ["sqlinjection"]}]},
            "exclusions[0] (keyword argument): invalid exclusion",
        ),
        ({"before_emit": 42}, "before_emit (keyword argument): 42 is not a callable"),
    ],
)
def test_bad_keyword_values_name_the_option(tmp_path: Path, options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        _config(tmp_path, options)
    assert message in str(exc.value)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0.05", 0.05), ("50ms", 0.05), ("2s", 2.0), ("5m", 300.0), ("1h", 3600.0), ("3", 3.0)],
)
def test_durations(tmp_path: Path, text: str, seconds: float) -> None:
    assert _config(tmp_path, DEVSECMW_FLAG_TTL=text).flag_ttl == pytest.approx(seconds)


def test_exclusion_rules_accept_types_ids_and_star(tmp_path: Path) -> None:
    env = {"DEVSECMW_EXCLUSIONS": json.dumps([{"rules": ["xss", "942100", "*"], "location": "query:q"}])}
    assert _config(tmp_path, **env).exclusions == (Exclusion(("xss", "942100", "*"), None, "query:q"),)


def test_before_emit_from_a_dotted_name(tmp_path: Path) -> None:
    c = _config(tmp_path, DEVSECMW_BEFORE_EMIT="json:dumps")
    assert c.before_emit is json.dumps


# --------------------------------------------------------------------------- route templates
@pytest.mark.parametrize(
    "template",
    ["/cms/{id}", "/cms/<int:page_id>", "cms/<int:pk>/", "/cms/{page_id:int}", "/cms/<slug>", "cms/{}"],
)
def test_route_templates_of_every_framework_are_one(template: str) -> None:
    assert route_key(template) == "cms/{}"
    assert Exclusion(("xss",), route="/cms/{id}").applies("941100", "xss", template, "body:json:html")


def test_route_exclusions_do_not_match_other_routes_and_take_prefixes() -> None:
    x = Exclusion(("xss",), route="/cms/{id}")
    assert not x.applies("941100", "xss", "/cms/<int:id>/edit", "query:q")
    assert not x.applies("941100", "xss", "/cms", "query:q")
    assert not x.applies("941100", "xss", "/cms/12", "query:q")  # a raw path is no template
    prefix = Exclusion(("*",), route="/admin/*")
    assert prefix.applies(None, "sqli", "admin/<path:rest>", "query:q")
    assert prefix.applies(None, "sqli", "/admin/users/{id}", "query:q")
    assert not prefix.applies(None, "sqli", "/administrator", "query:q")


def test_before_emit_signature_is_a_signal() -> None:
    s = Signal("xss", "query:q", "<script>", Severity.CRITICAL, rule_id="941100")
    assert Config(before_emit=lambda sig: None).before_emit is not None and s.type == "xss"


# --------------------------------------------------------------------------- one rule, not a category
def _types(engine: Any, uri: str) -> list[tuple[str, str | None]]:
    from devsecmw.cli import request_from_row

    request, _ = request_from_row({"uri": uri})
    return [(s.type, s.rule_id) for s in engine.inspect(request, "head")]


XSS_URI = "/s?q=%3Cimg%20src=x%20onerror=alert(1)%3E&other=%3Cscript%3Ealert(1)%3C/script%3E"


@pytest.mark.parametrize(
    "options",
    [
        {"disabled_rules": ["941100"]},
        {"disabled_rules": ["942100"]},
        {"disabled_rules": ["941100"], "paranoia_level": 2},  # 941101 alone does not make an attack
    ],
)
def test_switching_off_the_one_rule_of_a_category_is_refused(options: dict[str, Any]) -> None:
    # 941100 (the XSS tokenizer) is the one XSS rule on parameters at paranoia 1 (its siblings
    # read XML bodies and lone probes): switching it off everywhere switched XSS off entirely.
    from devsecmw.engine import Engine, RuleError

    with pytest.raises(RuleError) as exc:
        Engine(Config.from_options(options, environ={}))
    message = str(exc.value)
    rule = (options.get("disabled_rules") or ["941100"])[0]
    kind = "sqli" if rule == "942100" else "xss"
    assert f"switching rule {rule!r} off everywhere would switch {kind} detection off" in message
    assert f'{{"rules": ["{rule}"], "location": "query:q"}}' in message  # what to write instead
    assert f'{{"rules": ["{kind}"]}}' in message


def test_a_rule_with_siblings_switches_off_alone() -> None:
    from devsecmw.engine import Engine

    uri = "/s?cmd=$(whoami)"
    assert {"932100", "932130"} <= {rid for _, rid in _types(Engine(Config()), uri)}
    found = _types(Engine(Config.from_options({"disabled_rules": ["932100"]}, environ={})), uri)
    assert ("cmdi", "932130") in found and "932100" not in {rid for _, rid in found}


def test_excluding_the_rule_where_it_misfires_keeps_the_category_elsewhere(otel: Any) -> None:
    from devsecmw.asgi import SecurityMiddleware

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    exclusion = {"rules": ["941100"], "location": "query:q"}
    middleware = SecurityMiddleware(app, exclusions=[exclusion], time_budget=5.0, **otel.providers)
    import asyncio

    async def call() -> None:
        path, _, query = XSS_URI.partition("?")
        scope = {"type": "http", "method": "GET", "path": path, "query_string": query.encode(), "headers": []}
        messages = iter([{"type": "http.request", "body": b"", "more_body": False}])

        async def receive() -> Any:
            return next(messages)

        async def send(message: Any) -> None:
            pass

        await middleware(scope, receive, send)

    asyncio.run(call())
    locations = {e["devsecmw.signal.location"] for e in otel.events() if e["devsecmw.signal.type"] == "xss"}
    assert locations == {"query:other"}


# --------------------------------------------------------------------------- properties
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_WORDS = {
    "true": True,
    "1": True,
    "yes": True,
    "on": True,
    "false": False,
    "0": False,
    "no": False,
    "off": False,
}


@given(st.text(max_size=12))
def test_booleans_are_exactly_the_eight_words(text: str) -> None:
    try:
        value = Config.from_options(
            {}, environ={"DEVSECMW_BLOCK_FLAGGED": text}, cwd="/nonexistent"
        ).block_flagged
    except ConfigError as exc:
        assert text.strip().lower() not in _WORDS and text != ""
        assert "DEVSECMW_BLOCK_FLAGGED (environment)" in str(exc)
    else:
        assert value is _WORDS.get(text.strip().lower(), True)  # "" unsets: the default, True


_SEGMENTS = st.lists(
    st.one_of(st.from_regex(r"[a-z][a-z0-9_-]{0,7}", fullmatch=True), st.just(None)), min_size=1, max_size=6
)


@given(_SEGMENTS, st.from_regex(r"[a-z_]{1,8}", fullmatch=True))
def test_one_route_whatever_the_framework_syntax(segments: list[str | None], name: str) -> None:
    canonical = "/".join(s if s is not None else "{}" for s in segments)
    flask = "/" + "/".join(s if s is not None else f"<int:{name}>" for s in segments)
    django = "/".join(s if s is not None else f"<{name}>" for s in segments) + "/"
    starlette = "/" + "/".join(s if s is not None else f"{{{name}:int}}" for s in segments)
    assert route_key(flask) == route_key(django) == route_key(starlette) == canonical
    assert route_key(canonical) == canonical


@given(st.text(max_size=200))
def test_route_key_of_anything_is_a_fixed_point(route: str) -> None:
    key = route_key(route)
    assert route_key(key) == key and len(key) <= 2 * len(route)

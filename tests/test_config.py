"""Configuration: keyword options first, DEVSECMW_* as fallback, bad values fail at start-up."""

from __future__ import annotations

from typing import Any

import pytest

from devsecmw import Config, ConfigError, Exclusion
from devsecmw.asgi import SecurityMiddleware as AsgiMiddleware
from devsecmw.wsgi import SecurityMiddleware as WsgiMiddleware


async def _asgi_app(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover - never called
    pass


def _wsgi_app(environ: Any, start_response: Any) -> list[bytes]:  # pragma: no cover - never called
    return []


def test_defaults() -> None:
    c = Config.from_options({}, environ={})
    assert c.mode == "monitor"
    assert c.paranoia_level == 1
    assert c.body_limit == 64 * 1024
    assert c.max_events == 32


def test_keyword_beats_environment() -> None:
    c = Config.from_options({"paranoia_level": 2}, environ={"DEVSECMW_PARANOIA_LEVEL": "3"})
    assert c.paranoia_level == 2


def test_environment_fallback_parses_types() -> None:
    env = {
        "DEVSECMW_MODE": "BLOCK",
        "DEVSECMW_BODY_LIMIT": "1024",
        "DEVSECMW_TIME_BUDGET": "0.02",
        "DEVSECMW_DISABLED_RULES": "942100, 941100",
        "DEVSECMW_EXCLUSIONS": '[{"rules": ["xss"], "route": "/cms/{id}", "location": "body:json:html"}]',
    }
    c = Config.from_options({}, environ=env)
    assert c.mode == "block"
    assert c.body_limit == 1024
    assert c.time_budget == 0.02
    assert c.disabled_rules == ("942100", "941100")
    assert c.exclusions == (Exclusion(("xss",), "/cms/{id}", "body:json:html"),)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"mode": "blok"}, "invalid mode 'blok' (must be one of monitor, block)"),
        ({"paranoia_level": 7}, "invalid paranoia_level 7 (must be 1, 2, 3 or 4)"),
        ({"body_limit": -1}, "invalid body_limit -1"),
        ({"time_budget": 0}, "invalid time_budget 0"),
        ({"block_status": 200}, "invalid block_status 200"),
        ({"exclusions": [{"rule": "x"}]}, "invalid exclusion key 'rule' (allowed: rules, route, location)"),
    ],
)
def test_bad_values_fail_fast_naming_the_option(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Config.from_options(options, environ={})


def test_bad_environment_value_fails_fast() -> None:
    with pytest.raises(ConfigError, match=r"DEVSECMW_BODY_LIMIT \(environment\): 'lots' is not an integer"):
        Config.from_options({}, environ={"DEVSECMW_BODY_LIMIT": "lots"})


def test_unknown_option_is_a_type_error_listing_valid_ones() -> None:
    with pytest.raises(TypeError, match=r"unknown option 'paranoia' \(valid options: .*paranoia_level"):
        Config.from_options({"paranoia": 2}, environ={})


@pytest.mark.parametrize(
    "factory", [lambda **kw: AsgiMiddleware(_asgi_app, **kw), lambda **kw: WsgiMiddleware(_wsgi_app, **kw)]
)
def test_middleware_constructors_fail_fast(factory: Any) -> None:
    with pytest.raises(ConfigError, match="invalid mode"):
        factory(mode="enforce")
    with pytest.raises(TypeError, match="unknown option"):
        factory(bogus=True)


def test_unknown_disabled_rule_id_fails_fast() -> None:
    from devsecmw.engine import RuleError

    with pytest.raises(RuleError, match="unknown rule id '999999'"):
        AsgiMiddleware(_asgi_app, disabled_rules=["999999"])


@pytest.mark.parametrize(
    ("exclusion", "args", "expected"),
    [
        (Exclusion(("xss",)), ("941100", "xss", "/a", "query:q"), True),
        (Exclusion(("941100",)), ("941100", "xss", "/a", "query:q"), True),
        (Exclusion(("sqli",)), ("941100", "xss", "/a", "query:q"), False),
        (Exclusion(("*",), route="/cms"), ("941100", "xss", "/cms", "query:q"), True),
        (Exclusion(("*",), route="/cms"), ("941100", "xss", "/other", "query:q"), False),
        (Exclusion(("*",), location="body:json:page.*"), ("1", "xss", "/", "body:json:page.html"), True),
        (Exclusion(("*",), location="body:json:page.*"), ("1", "xss", "/", "body:json:title"), False),
        (Exclusion(("*",), location="query:q"), ("1", "xss", "/", "query:q"), True),
    ],
)
def test_exclusion_matching(exclusion: Exclusion, args: tuple[str, str, str, str], expected: bool) -> None:
    assert exclusion.applies(*args) is expected

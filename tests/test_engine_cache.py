"""Caching (``devsecmw.engine.cache``): what the engine remembers of clean inspections, that
attacks are never remembered, that the caches are bounded and keep no credential."""

from __future__ import annotations

from engine_helpers import found, get, post, rule

from devsecmw.engine import Budget, Engine
from devsecmw.engine.cache import BODY_PART_MAX, CACHE_SIZE, digest


def test_clean_header_values_are_cached_but_attacks_never_are() -> None:
    e = Engine(rules=[rule("900014", "evil", ["headers"])])
    benign = [("accept", "text/html"), ("user-agent", "Mozilla/5.0")]
    assert found(e, get("/", headers=benign)) == set()
    assert ("header:accept", "text/html") in e.clean_values
    attack = [("accept", "text/html"), ("user-agent", "evil/1.0")]
    for _ in range(3):  # the attack is found every time, never cached as clean
        assert found(e, get("/", headers=attack)) == {("900014", "header:user-agent")}
    assert ("header:user-agent", "evil/1.0") not in e.clean_values


def test_parameter_values_are_never_cached() -> None:
    e = Engine(rules=[rule("900015", "evil", ["args", "args.names"])])
    found(e, get("/?name=value"))  # no Referer: a request from elsewhere
    assert ("query.names.offsite", "name") in e.clean_values
    assert not any(k == "query" for k, _ in list(e.clean_values._d))


SAME_SITE = [("host", "shop.test"), ("referer", "https://shop.test/list")]


def test_names_from_elsewhere_are_judged_by_both_rule_sets_and_cached_apart() -> None:
    offsite_only = rule("900030", "^sessionid$", ["args.names.offsite"])
    e = Engine(rules=[offsite_only, rule("900031", "evil", ["args.names"])])
    assert found(e, get("/?sessionid=1", headers=SAME_SITE)) == set()
    assert ("query.names", "sessionid") in e.clean_values
    # Clean as a same-site name, still a planted session id from elsewhere (never taken from the cache).
    for _ in range(2):
        assert found(e, get("/?sessionid=1")) == {("900030", "query:sessionid")}
    assert ("query.names.offsite", "sessionid") not in e.clean_values
    # The plain names' rules judge the names of a request from elsewhere too, once each.
    sigs = e.inspect(get("/?evil=1&x=2"), "head")
    assert [(s.rule_id, s.location) for s in sigs] == [("900031", "query:evil")]
    assert found(e, get("/?evil=1", headers=SAME_SITE)) == {("900031", "query:evil")}
    # Body names likewise (a form's names, a JSON body's keys).
    form = post(b"sessionid=1&evil=2", "application/x-www-form-urlencoded")
    assert found(e, form) == {("900030", "body:form:sessionid"), ("900031", "body:form:evil")}


def test_cache_is_bounded() -> None:
    e = Engine(rules=[rule("900016", "evil", ["headers"])])
    for i in range(CACHE_SIZE + 50):
        e.inspect(get("/", headers=[("x-request-id", f"id-{i}")]), "head")
    assert len(e.clean_values) <= CACHE_SIZE


def test_clean_head_parts_are_skipped_whole_and_attacks_never_cached() -> None:
    e = Engine(rules=[rule("900019", "evil", ["args", "cookies", "headers"])])
    headers = [("cookie", "sid=abc"), ("accept", "text/html")]
    assert found(e, get("/?q=book", headers=headers)) == set()
    assert len(e.clean_parts) == 3  # request line, Cookie header, header block
    # The same parts again: nothing is even parsed (a query that was never split stays so).
    again = get("/?q=book", headers=headers)
    assert e.inspect(again, "head") == []
    assert again._query is None and again._cookies is None
    # Each part is inspected again as soon as it differs.
    assert found(e, get("/?q=evil", headers=headers)) == {("900019", "query:q")}
    assert found(e, get("/?q=book", headers=[("cookie", "sid=evil"), *headers[1:]])) == {
        ("900019", "cookie:sid")
    }
    assert found(e, get("/?q=book", headers=[*headers, ("x-a", "evil")])) == {("900019", "header:x-a")}
    for _ in range(2):  # an attack is found every time: its part is never cached
        assert found(e, get("/?q=evil", headers=headers)) == {("900019", "query:q")}


def test_cache_keys_leave_credentials_out() -> None:
    e = Engine(rules=[rule("900020", "evil", ["args", "cookies", "headers"])])
    headers = [("authorization", "Bearer s3cret"), ("cookie", "sid=s3cret"), ("accept", "x")]
    req = get("/reset/s3cret?token=s3cret", headers=headers)
    assert e.inspect(req, "head") == []
    form = post(b"user=ann&password=s3cret", "application/x-www-form-urlencoded")
    assert e.inspect(form, "body") == []
    assert len(e.clean_parts) == 3 and len(e.clean_bodies) == 1
    kept = [*e.clean_parts._d, *e.clean_bodies._d, *e.clean_values._d]
    assert not any("s3cret" in repr(k) or b"s3cret" in repr(k).encode() for k in kept)


def test_clean_small_bodies_are_cached_but_attacks_never_are() -> None:
    e = Engine(rules=[rule("900024", "evil", ["body", "body.names"])])
    assert found(e, post(b'{"a": "book"}', "application/json")) == set()
    assert len(e.clean_bodies) == 1
    again = post(b'{"a": "book"}', "application/json")
    assert e.inspect(again, "body") == []
    assert again._body is None  # not even parsed
    # Other bytes, another type (the same bytes read as a form), an attack: inspected.
    assert found(e, post(b"a=book", "application/x-www-form-urlencoded")) == set()
    assert found(e, post(b"evil=1", "application/x-www-form-urlencoded")) == {("900024", "body:form:evil")}
    assert found(e, post(b"evil=1", "text/plain")) == {("900024", "body:form:evil")}
    for _ in range(2):
        assert found(e, post(b'{"a": "evil"}', "application/json")) == {("900024", "body:json:a")}
    assert len(e.clean_bodies) == 2


def test_large_bodies_are_never_cached() -> None:
    e = Engine(rules=[rule("900025", "evil", ["body"])])
    found(e, post(b"a=" + b"x" * (BODY_PART_MAX + 1), "application/x-www-form-urlencoded"))
    assert len(e.clean_bodies) == 0


def test_digests_tell_every_split_apart() -> None:
    # The part and body caches keep digests: texts that join alike must still differ.
    cases = [("a", "b"), ("ab",), ("a\x00", "b"), ("a", "\x00b"), ("1:a",), ("a", "b", "")]
    assert len({digest(*texts) for texts in cases}) == len(cases)
    assert digest("a", body=b"b") != digest("ab") != digest("a", body=b"")


def test_exhausted_budget_caches_no_head_part() -> None:
    e = Engine(rules=[rule("900021", "evil", ["args"])])
    e.inspect(get("/?q=1", headers=[("accept", "text/html")]), "head", Budget(deadline=-1.0))
    assert len(e.clean_parts) == 0
    assert found(e, get("/?q=evil")) == {("900021", "query:q")}

"""Command lines as whole values (932236): admin and devops tools run from a parameter, a
User-Agent or a Referer's query, and the client names, prose and search syntax that must pass.

Rule 932236's own examples run in ``test_rule_examples.py``; here whole requests go through
the engine (signal type, location, rule id), and properties pin the two guards the rule
relies on: a tool name followed by ``/`` is a client's product token, never a command line,
and a word-like tool name needs a real option (``-x``, ``--long``) to count.
"""

from __future__ import annotations

import pytest
from detect_harness import Req, engine_signals, fired, types
from hypothesis import given, settings
from hypothesis import strategies as st

from devsecmw.engine.rules import Rule, load_packaged

RULE: Rule = next(r for r in load_packaged() if r.id == "932236")

ATTACKS = [
    (Req.header("user-agent", "ansible-config dump"), "header:user-agent"),
    (Req.header("user-agent", "chef-vault -i secret"), "header:user-agent"),
    (Req.header("user-agent", "'cscli' alerts list"), "header:user-agent"),
    (Req.header("user-agent", "code=ansible-console"), "header:user-agent"),
    (Req.header("referer", "https://example.com/?args=env --version"), "header:referer"),
    (Req.header("referer", "https://example.com/p?x=1&cmd=salt-call%20cmd.run%20id"), "header:referer"),
    (Req.query("param", "pip install something"), "query:param"),
    (Req.query("host", "example.com; kubectl -n kube-system get secrets"), "query:host"),
    (Req.form("code", "cpulimit -l 100 -f whoami\n"), "body:form:code"),
    (Req.form("code", "flock -u / whoami\n"), "body:form:code"),
    (Req.json_body({"task": {"run": "ansible all -m shell -a id"}}), "body:json:task.run"),
    # No Content-Type: the body is sniffed as a form; the line break ends the injected command.
    (Req("/post", "POST", body=b"code=ansible-playbook site.yml\n"), "body:form:code"),
]


@pytest.mark.parametrize(("req", "location"), ATTACKS)
def test_command_line_detected(req: Req, location: str) -> None:
    assert ("cmdi", location, "932236") in fired(engine_signals(req))


CLIENT_AGENTS = [
    "curl/8.4.0",
    "python-requests/2.31.0",
    "Go-http-client/1.1",
    "kube-probe/1.29",
    "Amazon CloudFront",
    "Apache-HttpClient/4.5.14 (Java/17)",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0",
    "ansible-httpget",
    "ansible-galaxy/2.14.1 (Linux; python:3.11.2)",
    "Chef Client/18.2.7 (ruby-3.1.2-p20; ohai-18.1.3; x86_64-linux; +https://chef.io)",
    "Puppet/8.3.1 Ruby/3.2.2 (x86_64-linux)",
    "Terraform/1.6.0 (+https://www.terraform.io) terraform-provider-aws/5.31.0",
    "docker/24.0.7 go/go1.20.10 git-commit/311b9ff kernel/6.5.0 os/linux arch/amd64",
    "git/2.43.0",
    "npm/10.2.3 node/v20.10.0 linux x64 workspaces/false",
    'pip/23.3.1 {"ci":null,"python":"3.11.6"}',
    "Consul Health Check",
    "Datadog Agent/7.50.0",
]

PROSE = [
    "top of the page",
    "find the best",
    "date night ideas",
    "date night ideas -kids",
    "top movies -tv",
    "top -rated products",
    "env var docs",
    "ansible playbook examples",
    "chef report nodes",
    "Salt & Pepper; sort by price",
    "docker vs podman: which one?",
    "Cut the dough; watch it rise",
    "git tutorial for beginners",
    "Our chef - trained in Lyon - cooks daily",
]


@pytest.mark.parametrize("agent", CLIENT_AGENTS)
def test_client_user_agents_pass(agent: str) -> None:
    assert "cmdi" not in types(engine_signals(Req.header("user-agent", agent)))


@pytest.mark.parametrize("text", PROSE)
def test_prose_and_search_syntax_pass(text: str) -> None:
    assert "cmdi" not in types(engine_signals(Req.query("q", text)))
    assert "cmdi" not in types(engine_signals(Req.form("message", text)))


def test_referer_of_an_ordinary_page_passes() -> None:
    req = Req.header("referer", "https://shop.example.com/search?q=top%20of%20the%20page&sort=date%20desc")
    assert "cmdi" not in types(engine_signals(req))


# --------------------------------------------------------------------------- properties
TOOLS = ["ansible-galaxy", "chef-client", "cscli", "kubectl", "docker", "pip", "git", "helm", "terraform"]
VERSION = st.from_regex(r"v?[0-9]{1,2}(\.[0-9]{1,3}){0,3}", fullmatch=True)
COMMENT = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789 ;:.-_+/()", max_size=40)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(TOOLS), VERSION, COMMENT)
def test_product_tokens_are_not_command_lines(tool: str, version: str, comment: str) -> None:
    """``name/version (comment)``, the User-Agent grammar, never fires, whatever the name."""
    agent = f"{tool}/{version} ({comment})" if comment else f"{tool}/{version}"
    assert RULE.matches_value(agent) is None


WORD_TOOLS = ["ansible", "chef", "docker", "top", "date", "sort", "watch", "screen", "service", "git"]
WORDS = st.lists(st.from_regex(r"[a-z]{2,9}", fullmatch=True), min_size=0, max_size=6)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(WORD_TOOLS), WORDS, st.sampled_from(["", ".", "!", "?", " -", " - ok"]))
def test_word_like_tools_need_an_option(tool: str, words: list[str], tail: str) -> None:
    """A tool name that is also a word, followed by words (no ``-x`` option), is prose."""
    assert RULE.matches_value(" ".join([tool, *words]) + tail) is None


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(WORD_TOOLS), st.from_regex(r"[a-z]", fullmatch=True), WORDS)
def test_word_like_tools_with_an_option_fire(tool: str, letter: str, words: list[str]) -> None:
    assert RULE.matches_value(" ".join([tool, f"-{letter}", *words])) is not None


# --------------------------------------------------------------------------- 932130 additions
def test_command_word_spelled_by_concatenated_variables() -> None:
    """``c1=c;c2=at;$c1$c2 /etc/passwd``: the command word is built from variables set before."""
    req = Req.form("exec", "c4=\\ ;c3=t;c2=a;c1=c;a1=/etc/passwd;$c1$c2$c3$c4$a1")
    assert ("cmdi", "body:form:exec", "932130") in fired(engine_signals(req))


def test_pipe_to_a_shell_in_a_raw_body() -> None:
    """A raw body is read by a form decoder as well: ``|sh+`` is ``|sh `` to it."""
    req = Req("/post", "POST", body=b"id|sh+``")
    assert "932130" in {rule for _, _, rule in fired(engine_signals(req))}


def test_php_and_prose_variables_pass() -> None:
    for text in ("$a = 1; echo $b.$c;", "price=10;$5$6 off", "Fish|Shrimp+Rice"):
        assert "cmdi" not in types(engine_signals(Req.form("note", text)))

"""The ``devsecmw`` command.

- ``devsecmw demo``: a demo shop behind devsecmw, traffic, and a summary of the telemetry.
- ``devsecmw rules list`` / ``devsecmw rules validate FILE...``: the rule set.
- ``devsecmw scan FILE.jsonl...``: replay recorded requests through the engine, offline.
- ``devsecmw gameday --target URL``: a safe attack suite against a running service, and a scorecard.
- ``devsecmw report FILE``: spans or a gameday run as one self-contained HTML page.
- ``devsecmw config``: the effective configuration and where each value came from.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import unquote_to_bytes

from . import __version__
from .demo import DEFAULT_REQUESTS  # no third-party import: the demo's modules load lazily
from .gameday.command import add_parsers as add_gameday_parsers

if TYPE_CHECKING:
    from .request import HttpRequest

DEMO_MODULES = ("starlette", "uvicorn", "httpx", "opentelemetry.sdk")


# --------------------------------------------------------------------------- demo
def _wants_color(stream: TextIO, no_color: bool) -> bool:
    if no_color or os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def cmd_demo(args: argparse.Namespace) -> int:
    try:
        from .demo import run_demo
        from .demo.server import ServerError

        for name in DEMO_MODULES:
            __import__(name)
    except ImportError as exc:
        missing = getattr(exc, "name", None) or str(exc)
        print(
            f"devsecmw demo: {missing} is not installed; the demo needs the demo extra:\n"
            '    python -m pip install "devsecmw[demo]"',
            file=sys.stderr,
        )
        return 1
    try:
        return run_demo(
            requests=args.requests,
            seed=args.seed,
            port=args.port,
            color=_wants_color(sys.stdout, args.no_color),
            report=args.report,
        )
    except ServerError as exc:
        hint = " (pick another --port, or 0 for any free port)" if args.port else ""
        print(f"devsecmw demo: {exc}{hint}", file=sys.stderr)
        return 1


# --------------------------------------------------------------------------- rules
def cmd_rules_list(args: argparse.Namespace) -> int:
    from .engine.rules import RuleError, load_all

    try:
        rules = load_all(args.rule_file)
    except RuleError as exc:
        print(f"devsecmw rules list: {exc}", file=sys.stderr)
        return 1
    shown = [
        r
        for r in rules
        if (not args.type or r.type in args.type)
        and r.paranoia <= args.paranoia
        and (not args.phase or set(r.phase_names) & set(args.phase))
    ]
    if args.json:
        for r in shown:
            doc = {
                "id": r.id,
                "name": r.name,
                "type": r.type,
                "severity": r.severity.name.lower(),
                "paranoia": r.paranoia,
                "phases": list(r.phase_names),
                "ruleset": r.ruleset,
                "source": r.source,
            }
            print(json.dumps(doc))
        return 0
    width = max((len(r.id) for r in shown), default=2)
    for r in shown:
        sev = r.severity.name.lower()
        phases = ",".join(r.phase_names)
        print(f"{r.id.ljust(width)}  {r.type:<16} PL{r.paranoia} {sev:<8}  {phases:<25} {r.name}")
    print(f"{len(shown)} rules", file=sys.stderr)
    return 0


def _check_examples(rule: Any) -> list[str]:
    problems = []
    for ex in rule.examples_match:
        if rule.matches_value(ex) is None:
            problems.append(f"{rule.source}: rule {rule.id!r}: example does not match: {ex!r}")
    for ex in rule.examples_nomatch:
        if rule.matches_value(ex) is not None:
            problems.append(f"{rule.source}: rule {rule.id!r}: 'nomatch' example matches: {ex!r}")
    return problems


def cmd_rules_validate(args: argparse.Namespace) -> int:
    """Schema, operators, ids unique against the packaged rules, and every rule's examples."""
    from .engine.rules import RuleError, load_all, load_file

    failed = False
    for path in args.files:
        try:
            rules = load_file(path)
            load_all([path])  # ids must not clash with the packaged rules
        except RuleError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed = True
            continue
        problems = [p for r in rules for p in _check_examples(r)]
        for p in problems:
            print(f"error: {p}", file=sys.stderr)
        failed = failed or bool(problems)
        if not problems:
            print(f"ok: {path}: {len(rules)} rules")
    return 1 if failed else 0


# --------------------------------------------------------------------------- scan
class RowError(ValueError):
    """A scan input line that is not a request row; the message names the file and the line."""


def _rows(paths: Sequence[str]) -> Iterator[tuple[str, int, dict[str, Any]]]:
    for path in paths:
        with open(path, "rb") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise RowError(f"{path}:{n}: not a JSON object: {exc.msg} (column {exc.colno})") from None
                except ValueError as exc:  # bytes that are not UTF-8
                    raise RowError(f"{path}:{n}: not a JSON object: {exc}") from None
                if not isinstance(row, dict):
                    raise RowError(f"{path}:{n}: not a JSON object (a {type(row).__name__})")
                yield path, n, row


def request_from_row(row: dict[str, Any]) -> tuple[HttpRequest, bytes]:
    """The request model and the raw body of a corpus-format JSONL row.

    ``uri`` is the raw target (absolute-form allowed), ``headers`` ``[name, value]`` pairs,
    ``body`` latin-1 text or base64 when ``body_b64`` is true.
    """
    from .request import from_asgi_scope

    raw = str(row.get("uri") or "/").encode("latin-1", "replace")
    if raw.startswith((b"http://", b"https://")):  # absolute-form target: keep what routing sees
        rest = raw.split(b"//", 1)[1]
        raw = b"/" + rest.split(b"/", 1)[1] if b"/" in rest else b"/"
    path, _, query = raw.partition(b"?")
    path = path or b"/"
    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": str(row.get("method") or "GET"),
        "scheme": "http",
        "path": unquote_to_bytes(path).decode("utf-8", "replace"),
        "raw_path": path,
        "query_string": query,
        "headers": [
            (str(k).lower().encode("latin-1", "replace"), str(v).encode("latin-1", "replace"))
            for k, v in row.get("headers") or ()
        ],
    }
    request = from_asgi_scope(scope)
    body = row.get("body") or ""
    if row.get("body_b64"):
        data = base64.b64decode(body, validate=True)  # invalid base64 is an error, not an empty body
    else:
        data = str(body).encode("latin-1", "replace")
    return request, data


def cmd_scan(args: argparse.Namespace) -> int:
    from .config import Config, expand_tags
    from .decision import decide_request
    from .engine import Engine
    from .engine.rules import RuleError

    try:
        config = Config.from_options({"paranoia_level": args.paranoia, "rule_files": args.rule_file})
        engine = Engine(config)
        exclusions = expand_tags(config.exclusions, engine.rules)  # as the middleware does
    except (RuleError, ValueError) as exc:
        print(f"devsecmw scan: {exc}", file=sys.stderr)
        return 1
    tally: Counter[str] = Counter()
    try:
        for path, n, row in _rows(args.files):
            try:
                request, body = request_from_row(row)
            except (TypeError, ValueError) as exc:  # headers that are not pairs, bad base64...
                raise RowError(f"{path}:{n}: not a request row: {exc}") from None
            signals = engine.inspect(request, "head")
            if body:
                request.add_body(body, config.body_limit)
                request.body_complete = True
                signals += engine.inspect(request, "body")
            status = row.get("status") if isinstance(row.get("status"), int) else None
            # The middleware's decision (exclusions at the path: a row has no route; no response
            # body, so no leak; rows are independent, so no client windows).
            verdict = decide_request(
                signals, config, where=request.path, status=status, exclusions=exclusions
            )
            expect = row.get("expect")
            flagged = verdict.classification == "attack"
            if expect in ("attack", "benign"):
                tally[f"{expect}.rows"] += 1
                tally[f"{expect}.flagged"] += flagged
            mismatch = expect in ("attack", "benign") and flagged != (expect == "attack")
            if args.mismatches and not mismatch:
                continue
            rid = row.get("id") or f"{Path(path).name}:{n}"
            if args.json:
                doc = {
                    "id": rid,
                    "expect": expect,
                    "classification": verdict.classification,
                    "score": verdict.score,
                    "signals": [
                        {"type": s.type, "location": s.location, "rule": s.rule_id, "evidence": s.evidence}
                        for s in verdict.signals
                    ],
                }
                print(json.dumps(doc))
                continue
            found = " ".join(
                f"{s.type}({s.rule_id}@{s.location})" if s.rule_id else f"{s.type}@{s.location}"
                for s in verdict.signals
            )
            mark = "  MISMATCH" if mismatch else ""
            want = f" expected {expect}" if expect else ""
            print(f"{rid}: {verdict.classification} score={verdict.score}{want}{mark}  {found}".rstrip())
    except RowError as exc:
        print(f"devsecmw scan: {exc}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:  # an OSError names the file (strerror and filename)
        print(f"devsecmw scan: {exc}", file=sys.stderr)
        return 1
    if tally and not args.json:
        parts = []
        if tally["attack.rows"]:
            parts.append(f"attacks flagged {tally['attack.flagged']}/{tally['attack.rows']}")
        if tally["benign.rows"]:
            parts.append(f"benign flagged {tally['benign.flagged']}/{tally['benign.rows']} (false positives)")
        print("; ".join(parts), file=sys.stderr)
    return 0


# --------------------------------------------------------------------------- config
def _shown(value: Any) -> Any:
    """An option's value as ``devsecmw config`` prints it (JSON-friendly)."""
    import dataclasses

    if isinstance(value, tuple):
        return [_shown(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _shown(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init}
    if callable(value):
        return f"{getattr(value, '__module__', '?')}:{getattr(value, '__qualname__', repr(value))}"
    if callable(getattr(value, "emit", None)):  # an output object: its class
        return f"{type(value).__module__}:{type(value).__qualname__}"
    return value


def cmd_config(args: argparse.Namespace) -> int:
    """The effective configuration (environment, file, defaults) and where each value came from."""
    from .config import ENV_PREFIX, ConfigError, option_names, resolve, sources
    from .engine import Engine
    from .engine.rules import RuleError

    try:
        config, origins = resolve(sources())
        Engine(config)  # rule files and disabled rule ids, checked as at start-up
    except (ConfigError, TypeError, RuleError) as exc:
        print(str(exc), file=sys.stderr)  # the message starts with "devsecmw: " and names the key
        return 1
    names = sorted(option_names())
    ignored = sorted(
        k for k in os.environ if k.startswith(ENV_PREFIX) and k[len(ENV_PREFIX) :].lower() not in names
    )
    ignored = [k for k in ignored if k != "DEVSECMW_CONFIG"]
    if args.json:
        doc = {
            n: {"value": _shown(getattr(config, n)), "source": origins[n][0], "key": origins[n][1]}
            for n in names
        }
        print(json.dumps(doc, indent=2))
    else:
        rows = [(n, json.dumps(_shown(getattr(config, n))), origins[n]) for n in names]
        width = max(len(n) for n, _, _ in rows)
        for n, text, (source, key) in rows:
            where = source if source == "default" else f"{source}: {key}"
            print(f"{n.ljust(width)} = {text}  # {where}")
    for k in ignored:
        print(f"devsecmw config: warning: {k} is not an option of devsecmw (ignored)", file=sys.stderr)
    return 0


# --------------------------------------------------------------------------- main
def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _requests(text: str) -> int:
    from .demo.traffic import MAX_REQUESTS

    value = _non_negative(text)
    if not 1 <= value <= MAX_REQUESTS:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_REQUESTS}, got {value}")
    return value


def _signal_type(text: str) -> str:
    from .signals import SIGNAL_TYPES

    if text not in SIGNAL_TYPES:
        raise argparse.ArgumentTypeError(
            f"unknown signal type {text!r} (valid types: {', '.join(sorted(SIGNAL_TYPES))})"
        )
    return text


def _port(text: str) -> int:
    value = _non_negative(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be a TCP port (0-65535), got {value}")
    return value


def _add_demo(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = sub.add_parser(
        "demo",
        help="run a demo app behind devsecmw, send it traffic, summarise the telemetry",
        description="Start a small Starlette shop behind devsecmw on 127.0.0.1, send it benign "
        "traffic, attacks and failing requests, and print what devsecmw reported. Set "
        "OTEL_EXPORTER_OTLP_ENDPOINT (e.g. http://localhost:4318) to also export over OTLP.",
    )
    demo.add_argument(
        "--requests", type=_requests, default=DEFAULT_REQUESTS, metavar="N", help="requests to send"
    )
    demo.add_argument("--seed", type=int, default=1, help="seed of the traffic mix (default 1)")
    demo.add_argument("--port", type=_port, default=0, help="port on 127.0.0.1 (default: any free port)")
    demo.add_argument("--no-color", action="store_true", help="plain text output")
    demo.add_argument(
        "--report", metavar="FILE", help="where the HTML report goes (default: a new file in the temp dir)"
    )
    demo.set_defaults(func=cmd_demo)


#: ``engine.rules.PHASES`` (written out: the parser is built without importing the engine).
RULE_PHASES = ("request.head", "request.body", "response.head", "response.body")


def _add_rules(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rules = sub.add_parser("rules", help="list or validate detection rules")
    rules_sub = rules.add_subparsers(dest="rules_command", required=True, metavar="ACTION")
    lst = rules_sub.add_parser("list", help="list the packaged rules (and extra rule files)")
    lst.add_argument(
        "--type", action="append", type=_signal_type, help="only rules of this signal type (repeatable)"
    )
    lst.add_argument("--paranoia", type=int, default=4, choices=(1, 2, 3, 4), help="up to this level")
    lst.add_argument(
        "--phase", action="append", choices=RULE_PHASES, help="only rules that run in this phase (repeatable)"
    )
    lst.add_argument("--rule-file", action="append", default=[], help="an extra rule file to include")
    lst.add_argument("--json", action="store_true", help="one JSON object per line")
    lst.set_defaults(func=cmd_rules_list)
    val = rules_sub.add_parser("validate", help="validate rule files (schema, ids, examples)")
    val.add_argument("files", nargs="+", metavar="FILE")
    val.set_defaults(func=cmd_rules_validate)


def _add_scan(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    scan = sub.add_parser(
        "scan",
        help="replay JSONL requests through the engine (offline)",
        description="Each line: {id, method, uri, headers: [[name, value]...], body, body_b64, "
        "expect?, status?}. Prints one verdict a line; a tally on stderr when rows carry 'expect'.",
    )
    scan.add_argument("files", nargs="+", metavar="FILE.jsonl")
    scan.add_argument("--paranoia", type=int, default=1, choices=(1, 2, 3, 4))
    scan.add_argument("--rule-file", action="append", default=[], help="an extra rule file")
    scan.add_argument(
        "--mismatches", action="store_true", help="only rows whose verdict differs from 'expect'"
    )
    scan.add_argument("--json", action="store_true", help="one JSON object per line")
    scan.set_defaults(func=cmd_scan)


def _add_tune(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tune = sub.add_parser(
        "tune",
        help="propose exclusions for the noisiest benign-looking locations",
        description="Reads span records / OTLP JSON lines (gameday --save, the Collector's file "
        "exporter) or 'devsecmw scan --json' output. See devsecmw.tune for the heuristic.",
    )
    tune.add_argument("files", nargs="+", metavar="FILE.jsonl")
    tune.add_argument("--min-count", type=_positive, default=10, help="requests a location fired on (10)")
    tune.add_argument(
        "--min-share", type=_fraction, default=0.02, help="share of its route's requests (0.02)"
    )
    tune.add_argument("--quiet", type=_fraction, default=0.9, help="share alone and not 5xx (0.9)")
    tune.add_argument("--limit", type=_positive, default=20, help="proposals at most (20)")
    tune.add_argument("--format", choices=("table", "toml", "json"), default="table")
    tune.set_defaults(func=cmd_tune)


def _add_config(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cfg = sub.add_parser(
        "config",
        help="print the effective configuration and where each value comes from",
        description="Options from DEVSECMW_* environment variables, the configuration file "
        "($DEVSECMW_CONFIG, else devsecmw.toml or pyproject.toml [tool.devsecmw] in the current "
        "directory) and the defaults, validated as the middleware validates them (exit 1 on an "
        "error). Keyword arguments and Flask/Django settings are the application's own, above these.",
    )
    cfg.add_argument("--json", action="store_true", help="one JSON object: value, source and key per option")
    cfg.set_defaults(func=cmd_config)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="devsecmw", description="Security signals from HTTP traffic, on OpenTelemetry."
    )
    parser.add_argument("--version", action="version", version=f"devsecmw {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # In this order: the help lists the commands as they are added.
    _add_demo(sub)
    _add_rules(sub)
    _add_scan(sub)
    add_gameday_parsers(sub)
    _add_tune(sub)
    _add_config(sub)
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value


def cmd_tune(args: argparse.Namespace) -> int:
    from . import tune

    try:
        proposals = tune.propose(
            tune.read(args.files), args.min_count, args.min_share, args.quiet, args.limit
        )
    except (OSError, ValueError) as exc:
        print(f"devsecmw tune: {exc}", file=sys.stderr)
        return 1
    render = {"table": tune.as_table, "toml": tune.as_toml, "json": tune.as_json}[args.format]
    print(render(proposals))
    return 0


#: The exit status of a command whose reader went away (128 + SIGPIPE), as the shell reports it.
EXIT_BROKEN_PIPE = 141


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
        sys.stdout.flush()  # inside the try: a reader gone (`| head`) surfaces here at the latest
    except BrokenPipeError:
        # `devsecmw rules list | head`: the reader has what it wanted. No traceback, and stdout
        # pointed at devnull so that the interpreter's own flush at exit does not raise again.
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    return result


__all__ = ["build_parser", "main", "request_from_row"]

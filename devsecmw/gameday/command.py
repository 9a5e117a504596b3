"""The ``devsecmw gameday`` and ``devsecmw report`` subcommands (parsers and entry points).

Kept here rather than in :mod:`devsecmw.cli`, which only adds them; everything they need is
imported when they run.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def cmd_gameday(args: argparse.Namespace) -> int:
    from .receiver import ReceiverError
    from .run import Options, UsageError, run

    options = Options(
        target=args.target,
        allow_hosts=args.allow_host,
        path=args.path,
        auth_path=args.auth_path,
        run_id=args.run_id,
        rate=args.rate,
        burst=args.burst,
        max_requests=args.max_requests,
        wait=args.wait,
        otlp_listen=args.otlp_listen,
        prometheus=args.prometheus,
        prometheus_selector=args.prometheus_selector,
        json_path=args.json,
        save_path=args.save,
    )
    try:
        return run(options)
    except (UsageError, ReceiverError) as exc:
        print(f"devsecmw gameday: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:
        print(
            f"devsecmw gameday: {exc.name or exc} is not installed; the OTLP receiver needs "
            "opentelemetry-proto (pip install opentelemetry-exporter-otlp-proto-http)",
            file=sys.stderr,
        )
        return 2


def cmd_report(args: argparse.Namespace) -> int:
    from ..report import write_report

    try:
        path = write_report(args.files, args.output, title=args.title)
    except (OSError, ValueError) as exc:
        print(f"devsecmw report: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


def add_parsers(sub: Any) -> None:
    """Add ``gameday`` and ``report`` to the ``devsecmw`` command's subparsers."""
    gd = sub.add_parser(
        "gameday",
        help="send a safe, labeled attack suite to a running service and check its telemetry",
        description="Send every attack category (harmless payloads), a scanner burst, 404 and "
        "auth-failure bursts to the service you name, then check they arrived: over OTLP/HTTP "
        "(export the service's telemetry to --otlp-listen) or in Prometheus. Exit 1 names the "
        "categories that did not arrive; 2 on a refused or invalid option.",
    )
    gd.add_argument("--target", required=True, help="base URL of the service, e.g. http://127.0.0.1:8000")
    gd.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="HOST",
        help="allow this non-loopback host as target or listen address (repeatable)",
    )
    gd.add_argument("--path", help="path the payloads are sent to (default: the target's path or /)")
    gd.add_argument("--auth-path", help="path that checks credentials, for the auth-failure burst")
    gd.add_argument("--run-id", help="label of this run (default: gd-<UTC time>-<random>)")
    gd.add_argument("--rate", type=float, default=20.0, help="requests per second at most (default 20)")
    gd.add_argument("--burst", type=int, default=10, help="requests per burst (default 10)")
    gd.add_argument("--max-requests", type=int, default=200, help="refuse a suite larger than this (200)")
    gd.add_argument(
        "--wait",
        type=float,
        default=60.0,
        help="seconds to wait for the telemetry after the last request (default 60)",
    )
    how = gd.add_mutually_exclusive_group(required=True)
    how.add_argument("--otlp-listen", metavar="HOST:PORT", help="receive OTLP/HTTP here, e.g. 127.0.0.1:4318")
    how.add_argument("--prometheus", metavar="URL", help="query this Prometheus, e.g. http://127.0.0.1:9090")
    gd.add_argument(
        "--prometheus-selector",
        default="",
        metavar="LABELS",
        help='extra label matchers for devsecmw_signals_total, e.g. job="shop"',
    )
    gd.add_argument("--json", metavar="FILE", help="write the scorecard as JSON")
    gd.add_argument("--save", metavar="FILE", help="write every span received as JSON lines (OTLP mode)")
    gd.set_defaults(func=cmd_gameday)

    rep = sub.add_parser(
        "report",
        help="spans (JSON lines, OTLP JSON) or a gameday JSON as one self-contained HTML file",
        description="Read span records (devsecmw gameday --save), OTLP JSON lines (the "
        "OpenTelemetry Collector's file exporter) or a devsecmw gameday --json document, and "
        "write one HTML file that opens without network: attacks and 5xx per route over time, "
        "top signal types, attack_5xx trace ids, flagged clients.",
    )
    rep.add_argument("files", nargs="+", metavar="FILE")
    rep.add_argument("-o", "--output", default="devsecmw-report.html", help="default devsecmw-report.html")
    rep.add_argument("--title", default=None, help="page title")
    rep.set_defaults(func=cmd_report)


__all__ = ["add_parsers", "cmd_gameday", "cmd_report"]

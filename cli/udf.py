"""`iot-monitoring udf serve NAME`: run a sample UDF as a gRPC server.

The server speaks Streaming Runtime's UDF protocol, so the pipeline (or
Streaming Runtime itself) can call it as a sidecar on port 55554.
"""

from __future__ import annotations

import argparse
from typing import Callable

from cli.main import UserError
from udf.sdk import DEFAULT_PORT, UdfFunction, serve


def _uppercase(args: argparse.Namespace) -> UdfFunction:
    from udf.samples.uppercase import uppercase

    return uppercase


def _alerting(args: argparse.Namespace) -> UdfFunction:
    from udf.samples.alerting import AlertingUdf, rules_from

    try:
        return AlertingUdf(rules_from(args))
    except ValueError as exc:
        raise UserError(str(exc)) from None


SAMPLES: dict[str, Callable[[argparse.Namespace], UdfFunction]] = {
    "uppercase": _uppercase,
    "alerting": _alerting,
}


def register(subparsers: argparse._SubParsersAction) -> None:
    from udf.samples.alerting import add_rule_options

    parser = subparsers.add_parser("udf", help="run a sample UDF (gRPC, Streaming Runtime protocol)")
    udf_sub = parser.add_subparsers(dest="udf_command", required=True)
    serve_parser = udf_sub.add_parser("serve", help="serve a sample UDF until SIGTERM/SIGINT")
    serve_parser.add_argument("name", choices=sorted(SAMPLES), help="which sample UDF")
    serve_parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port to listen on (default {DEFAULT_PORT})")
    serve_parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    add_rule_options(serve_parser.add_argument_group("alerting rules (alerting only)"))
    serve_parser.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    if not 0 < args.port < 65536:
        raise UserError(f"--port {args.port} is not a TCP port")
    fn = SAMPLES[args.name](args)
    try:
        serve(fn, args.port, args.host)
    except OSError as exc:
        raise UserError(str(exc)) from None
    return 0

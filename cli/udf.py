"""`iot-monitoring udf serve NAME`: run a sample UDF as a gRPC server.

The server speaks Streaming Runtime's UDF protocol, so the pipeline (or
Streaming Runtime itself) can call it as a sidecar on port 55554; with
`--tls-cert` and `--tls-key` over TLS, and with `--tls-client-ca` only to
clients presenting a certificate signed by that CA (mutual TLS).
"""

from __future__ import annotations

import argparse
from typing import Callable

from cli.main import UserError
from udf.sdk import DEFAULT_PORT, ServerTls, UdfFunction, serve


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
    tls = serve_parser.add_argument_group("TLS (default: plaintext, for a sidecar reached on localhost)")
    tls.add_argument("--tls-cert", metavar="PEM", help="the server's certificate chain")
    tls.add_argument("--tls-key", metavar="PEM", help="the server's private key (unencrypted)")
    tls.add_argument("--tls-client-ca", metavar="PEM", help="require client certificates signed by this CA (mutual TLS)")
    add_rule_options(serve_parser.add_argument_group("alerting rules (alerting only)"))
    serve_parser.set_defaults(func=run_serve)


def server_tls(args: argparse.Namespace) -> ServerTls | None:
    """The TLS options as one setting; a UserError when they do not go together."""
    if not (args.tls_cert or args.tls_key or args.tls_client_ca):
        return None
    if not (args.tls_cert and args.tls_key):
        raise UserError("--tls-cert and --tls-key go together" + (" (--tls-client-ca needs both)" if args.tls_client_ca else ""))
    return ServerTls(args.tls_cert, args.tls_key, args.tls_client_ca)


def run_serve(args: argparse.Namespace) -> int:
    if not 0 < args.port < 65536:
        raise UserError(f"--port {args.port} is not a TCP port")
    tls = server_tls(args)
    fn = SAMPLES[args.name](args)
    try:
        serve(fn, args.port, args.host, tls=tls)
    except OSError as exc:
        raise UserError(str(exc)) from None
    return 0

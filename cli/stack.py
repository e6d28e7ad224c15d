"""`iot-monitoring stack up [--secure] | down | status`: the local Kafka and RabbitMQ."""

from __future__ import annotations

import argparse

from cli.local_stack import LocalStack, StackError
from cli.main import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("stack", help="start, stop or inspect the local Kafka + RabbitMQ")
    parser.add_argument("action", choices=("up", "down", "status"))
    parser.add_argument("--secure", action="store_true",
                        help="with up: also Kafka over SASL_SSL and mutual TLS, RabbitMQ over TLS; "
                             "prints the path of the file with their settings (.stack/secure.env)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.secure and args.action != "up":
        raise UserError("--secure goes with `stack up`")
    stack = LocalStack()
    try:
        lines = stack.up(secure=True) if args.secure else getattr(stack, args.action)()
    except StackError as exc:
        raise UserError(str(exc)) from None
    print("\n".join(lines))
    return 0

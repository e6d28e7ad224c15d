"""`iot-monitoring stack up | down | status`: the local Kafka and RabbitMQ."""

from __future__ import annotations

import argparse

from cli.local_stack import LocalStack, StackError
from cli.main import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("stack", help="start, stop or inspect the local Kafka + RabbitMQ")
    parser.add_argument("action", choices=("up", "down", "status"))
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    stack = LocalStack()
    try:
        lines = getattr(stack, args.action)()
    except StackError as exc:
        raise UserError(str(exc)) from None
    print("\n".join(lines))
    return 0

"""Entry point of the `iot-monitoring` console script.

Each sub-command lives in its own module under `cli/` and exposes
`register(subparsers)`, which adds its parser and sets `func`; a command's
`func(args)` returns the process exit code. User errors are reported as one
clear message (exit 2), never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMAND_MODULES = ("cli.stack", "cli.validate", "cli.generate", "cli.udf", "cli.watch", "cli.demo")


class UserError(Exception):
    """A problem in what the user asked for or configured: printed, not traced."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="iot-monitoring", description=__doc__.splitlines()[0])
    parser.add_argument("--log-format", choices=("text", "json"), help="log lines as text or JSON (default: $IOT_LOG_FORMAT, else text)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from runtime.logs import configure_logging
    from runtime.settings import SettingsError

    try:
        configure_logging(args.log_format)
    except SettingsError as exc:
        print(f"iot-monitoring: {exc}", file=sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"iot-monitoring {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    # run as `python -m cli.main`: use the module's own classes (cli.main's
    # UserError), not this __main__ copy's, so user errors are caught.
    from cli.main import main as cli_main

    sys.exit(cli_main())

"""Logging set-up: human-readable by default, JSON lines when asked; no secret in either.

`configure_logging` also puts the process's standard streams behind
`runtime.redact.RedactingWriter` (prints, tracebacks and other libraries'
output are covered too), remembers the secrets of the environment, and
reports a `FatalError` that ends the process (a configuration the brokers
refuse, found while running) in one line instead of a traceback.
"""

from __future__ import annotations

import logging
import os
import sys
from types import TracebackType

import orjson

from runtime import redact

FATAL_EXIT_CODE = 2


class FatalError(RuntimeError):
    """A configuration that cannot work (credentials refused, a certificate not
    trusted): retrying will not help, so the process stops and says why in one line."""


class RedactingFormatter(logging.Formatter):
    """The usual text line, with every secret masked (message, arguments and traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact.redact_text(super().format(record))


class JsonLineFormatter(logging.Formatter):
    """One JSON object per line, for log collectors; secrets masked before encoding."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact.redact_text(record.getMessage()),
        }
        if record.exc_info:
            entry["exception"] = redact.redact_text(self.formatException(record.exc_info))
        return orjson.dumps(entry).decode()


def fatal_in(exc: BaseException | None) -> FatalError | None:
    """The `FatalError` among an exception and its causes (Bytewax wraps what a step raised)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, FatalError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _excepthook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    from runtime.stop import stop_requested

    fatal = fatal_in(exc)
    stopped = stop_requested()
    if fatal is None and stopped is None:
        sys.__excepthook__(kind, exc, tb)  # writes to sys.stderr, which redacts
        return
    if fatal is not None:
        print(f"iot-monitoring: {fatal}", file=sys.stderr)
        _exit(FATAL_EXIT_CODE)  # the interpreter is exiting on this error anyway; say so with the usual code
    # The error is Bytewax's answer to the stop signal (or a step interrupted by it): a requested stop.
    print(f"iot-monitoring: stopped on {stopped.name}", file=sys.stderr)
    _exit(0)


def _exit(code: int) -> None:
    """Close what the run opened, flush the streams and exit with `code`, now."""
    from runtime.lifecycle import close_all

    close_all()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def configure_logging(log_format: str | None = None, level: str | None = None) -> None:
    """Configure the root logger; what is not given comes from `runtime.settings.LogOptions`
    (`IOT_LOG_FORMAT`, `IOT_LOG_LEVEL`). Standard streams redact from now on."""
    from runtime.settings import LogOptions, environment

    if log_format is None or level is None:
        defaults = LogOptions.from_env()
        log_format, level = log_format or defaults.format, level or defaults.level
    redact.remember_environment(environment())
    sys.stdout = redact.redacting(sys.stdout)
    sys.stderr = redact.redacting(sys.stderr)
    sys.excepthook = _excepthook
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonLineFormatter())
    else:
        handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # pika logs every failed connection attempt with a traceback; our own
    # retry loops report connection problems once, clearly.
    logging.getLogger("pika").setLevel(logging.CRITICAL)

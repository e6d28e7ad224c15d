"""Logging set-up: human-readable by default, JSON lines when asked."""

from __future__ import annotations

import logging
import sys

import orjson


class JsonLineFormatter(logging.Formatter):
    """One JSON object per line, for log collectors."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def configure_logging(log_format: str | None = None, level: str | None = None) -> None:
    """Configure the root logger; what is not given comes from `runtime.settings.LogOptions`
    (`IOT_LOG_FORMAT`, `IOT_LOG_LEVEL`)."""
    if log_format is None or level is None:
        from runtime.settings import LogOptions

        defaults = LogOptions.from_env()
        log_format, level = log_format or defaults.format, level or defaults.level
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonLineFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # pika logs every failed connection attempt with a traceback; our own
    # retry loops report connection problems once, clearly.
    logging.getLogger("pika").setLevel(logging.CRITICAL)

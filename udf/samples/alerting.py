"""Turn an error count into an alert: "notify a third party" from the seed.

Input, one window's count (the `error-count` stream's JSON value)::

    {"window_start": "2022-02-16 14:18:00", "window_end": "2022-02-16 14:19:00",
     "error_code": "C009_OUT_OF_RANGE", "error_count": 42}

Output, only when an alert is warranted::

    {"error_code": ..., "window_start": ..., "window_end": ..., "error_count": 42,
     "previous_count": 12, "severity": "critical", "reason": "..."}

Rules (each configurable by environment variable or command-line option):

- threshold (`ALERT_THRESHOLD`, default 50): `error_count >= threshold` alerts;
  `critical` when it is also `>= critical_factor * threshold`
  (`ALERT_CRITICAL_FACTOR`, default 2), else `warning`.
- jump (`ALERT_JUMP_FACTOR`, default 2.0): `error_count >= jump_factor *
  previous_count` alerts as `warning`, where `previous_count` is the count of
  the same error code in the window right before this one (0 when that
  window had no errors of this code), and only when `error_count >=
  min_count` (`ALERT_MIN_COUNT`, default 5) so that 1 -> 2 is no alarm.

`previous_count` is `null` while the window before is unknown: this process
has not seen that window (it started later, or the windows arrive out of
order beyond what it keeps). A jump needs a known, non-zero previous count;
the threshold alone still applies.

No alert warranted: the UDF replies with no output (an empty payload), and
the pipeline publishes nothing for that count. A payload that is not a count
record fails the call with INVALID_ARGUMENT, so the pipeline dead-letters it.
"""

from __future__ import annotations

import argparse
import logging
import os
import threading
from dataclasses import dataclass
from typing import Mapping

import grpc
import orjson

from udf import headers as h
from udf.sdk import DEFAULT_PORT, UdfError, serve
from udf.times import epoch_ms

KEPT_WINDOWS = 64  # windows remembered per error code, to find the one before a window


@dataclass(frozen=True)
class AlertRules:
    """The thresholds an alert is judged by."""

    threshold: int = 50
    critical_factor: float = 2.0
    jump_factor: float = 2.0
    min_count: int = 5

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AlertRules:
        """Rules from `ALERT_*` variables; a malformed value is a `ValueError` naming it."""
        environ = os.environ if environ is None else environ
        values = {}
        for name, field_type in (("threshold", int), ("critical_factor", float), ("jump_factor", float), ("min_count", int)):
            var = f"ALERT_{name.upper()}"
            if environ.get(var):
                try:
                    values[name] = field_type(environ[var])
                except ValueError:
                    raise ValueError(f"{var}={environ[var]!r} is not a valid {field_type.__name__}") from None
        return cls(**values)


@dataclass(frozen=True)
class ErrorCount:
    """One window's count of one error code, as read from the payload."""

    error_code: str
    window_start: object  # kept as received, to echo it unchanged
    window_end: object
    error_count: int
    start_ms: int
    end_ms: int

    @property
    def previous_start_ms(self) -> int:
        return self.start_ms - (self.end_ms - self.start_ms)


def parse_count(payload: bytes) -> ErrorCount:
    """The count record in a payload; `ValueError` saying what is wrong."""
    try:
        record = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"payload is not JSON: {exc}") from None
    if not isinstance(record, dict):
        raise ValueError("payload is not a JSON object")
    missing = [k for k in ("error_code", "window_start", "window_end", "error_count") if k not in record]
    if missing:
        raise ValueError(f"payload lacks {', '.join(missing)}")
    count = record["error_count"]
    if isinstance(count, bool) or not isinstance(count, int):
        raise ValueError(f"error_count is not an integer: {count!r}")
    start_ms, end_ms = epoch_ms(record["window_start"]), epoch_ms(record["window_end"])
    if end_ms <= start_ms:
        raise ValueError("window_end is not after window_start")
    return ErrorCount(str(record["error_code"]), record["window_start"], record["window_end"], count, start_ms, end_ms)


def judge(count: ErrorCount, previous_count: int | None, rules: AlertRules) -> tuple[str, str] | None:
    """(severity, reason) when `count` warrants an alert, else None."""
    reasons = []
    severity = None
    n = count.error_count
    if n >= rules.threshold:
        severity = "critical" if n >= rules.critical_factor * rules.threshold else "warning"
        reasons.append(f"error_count {n} reached the threshold {rules.threshold}")
    if previous_count and n >= rules.min_count and n >= rules.jump_factor * previous_count:
        severity = severity or "warning"
        reasons.append(
            f"error_count {n} is {n / previous_count:.1f}x the previous window's {previous_count}"
            f" (jump factor {rules.jump_factor:g})"
        )
    return (severity, "; ".join(reasons)) if severity else None


class AlertingUdf:
    """The UDF: remembers recent counts per error code to compare a window with the one before."""

    __name__ = "alerting"

    def __init__(self, rules: AlertRules | None = None, kept_windows: int = KEPT_WINDOWS) -> None:
        self.rules = rules or AlertRules()
        self._kept = kept_windows
        self._history: dict[str, dict[int, int]] = {}  # code -> window start ms -> count
        self._known_from: dict[str, int] = {}  # code -> earliest window start this process can vouch for
        self._lock = threading.Lock()  # plain UDF functions run on worker threads

    def previous_count(self, count: ErrorCount) -> int | None:
        """Count of the window before, 0 if it had none, None if this process cannot know."""
        with self._lock:
            history = self._history.get(count.error_code)
            if history is None:
                return None
            if count.previous_start_ms in history:
                return history[count.previous_start_ms]
            return 0 if count.previous_start_ms >= self._known_from[count.error_code] else None

    def remember(self, count: ErrorCount) -> None:
        with self._lock:
            history = self._history.setdefault(count.error_code, {})
            self._known_from.setdefault(count.error_code, count.start_ms)
            history[count.start_ms] = count.error_count
            while len(history) > self._kept:
                oldest = min(history)
                del history[oldest]
                self._known_from[count.error_code] = max(self._known_from[count.error_code], oldest + 1)

    def __call__(self, payload: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]] | None:
        try:
            count = parse_count(payload)
        except ValueError as exc:
            raise UdfError(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
        previous = self.previous_count(count)
        self.remember(count)
        verdict = judge(count, previous, self.rules)
        if verdict is None:
            return None
        severity, reason = verdict
        alert = {
            "error_code": count.error_code,
            "window_start": count.window_start,
            "window_end": count.window_end,
            "error_count": count.error_count,
            "previous_count": previous,
            "severity": severity,
            "reason": reason,
        }
        return orjson.dumps(alert), {h.CONTENT_TYPE: h.JSON}


def add_rule_options(parser: argparse.ArgumentParser) -> None:
    """Command-line options overriding the `ALERT_*` environment variables."""
    parser.add_argument("--threshold", type=int, help="alert when a window's count reaches this (ALERT_THRESHOLD)")
    parser.add_argument("--critical-factor", type=float, help="critical from this many thresholds (ALERT_CRITICAL_FACTOR)")
    parser.add_argument("--jump-factor", type=float, help="alert when a count is this many times the previous window's (ALERT_JUMP_FACTOR)")
    parser.add_argument("--min-count", type=int, help="smallest count a jump alert considers (ALERT_MIN_COUNT)")


def rules_from(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> AlertRules:
    """Environment first, then command-line options on top."""
    rules = AlertRules.from_env(environ)
    overrides = {
        name: getattr(args, name, None)
        for name in ("threshold", "critical_factor", "jump_factor", "min_count")
        if getattr(args, name, None) is not None
    }
    return AlertRules(**{**rules.__dict__, **overrides})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--host", default="0.0.0.0")
    add_rule_options(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve(AlertingUdf(rules_from(args)), args.port, args.host)


if __name__ == "__main__":
    main()

"""Timestamps as Flink's JSON format writes a TIMESTAMP(p): `yyyy-MM-dd HH:mm:ss`
in UTC, with the fraction only when it is not zero and without trailing zeros
(`.5`, `.05`, `.123`, `.123456`); and read back, so that a query can read a
Stream another query wrote."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

DIGITS = {"timestamp-millis": 3, "timestamp-micros": 6, "timestamp-nanos": 9}
# seconds of 0000-01-01 00:00:00 and of 9999-12-31 23:59:59 UTC: the range of Flink's TIMESTAMP
FIRST_SECOND, LAST_SECOND = -62_167_219_200, 253_402_300_799


def digits_of(type_name: str) -> int:
    """The fraction digits of a timestamp column's type (`long_timestamp-micros`: 6)."""
    return next((d for logical, d in DIGITS.items() if type_name.endswith(logical)), 3)


def format_timestamp(value: int, digits: int = 3) -> str:
    """An epoch time counted in units of 10^-digits s, as Flink prints it:
    `2022-02-16 14:18:00`, `2022-02-16 14:18:00.5`, `2022-02-16 14:18:00.000001`.
    Raises ValueError outside years 0000..9999, which a TIMESTAMP cannot hold."""
    seconds, fraction = divmod(value, 10**digits)
    if not FIRST_SECOND <= seconds <= LAST_SECOND:
        raise ValueError(f"{value} (in 10^-{digits} s) is outside years 0000..9999")
    t = time.gmtime(seconds)
    text = f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d} {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
    if fraction:
        text += "." + f"{fraction:0{digits}d}".rstrip("0")
    return text


def format_timestamp_ms(ms: int) -> str:
    """Epoch milliseconds -> `2022-02-16 14:18:00` / `2022-02-16 14:18:00.5`."""
    return format_timestamp(ms, 3)


EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MICROSECOND = timedelta(microseconds=1)


def parse_timestamp(text: str, digits: int = 3) -> int:
    """`2022-02-16 14:18:00.5` (Flink's SQL form) or ISO-8601 (`2022-02-16T14:18:00.5Z`)
    -> an epoch time in units of 10^-digits s; without a zone, UTC. Raises
    ValueError for anything else."""
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    micros = (parsed - EPOCH) // MICROSECOND
    return micros // 10 ** (6 - digits) if digits <= 6 else micros * 10 ** (digits - 6)


def parse_timestamp_ms(text: str) -> int:
    return parse_timestamp(text, 3)

"""Timestamps as Flink's JSON format writes a TIMESTAMP(3): `yyyy-MM-dd HH:mm:ss`
in UTC, with the millisecond fraction only when it is not zero and without
trailing zeros (`.5`, `.05`, `.123`)."""

from __future__ import annotations

import time


def format_timestamp_ms(ms: int) -> str:
    """Epoch milliseconds -> `2022-02-16 14:18:00` / `2022-02-16 14:18:00.5`."""
    seconds, millis = divmod(ms, 1000)
    t = time.gmtime(seconds)
    text = f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d} {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
    if millis:
        text += "." + f"{millis:03d}".rstrip("0")
    return text

"""Times in the count records a UDF receives: a window bound is epoch
milliseconds, or Flink's `yyyy-MM-dd HH:mm:ss[.fff]` in UTC (the seed's
JSON format). Shared by the UDF client, which reads a result's window to
build the window headers, and by UDFs that read the payload."""

from __future__ import annotations

from datetime import datetime, timezone


def epoch_ms(value: object) -> int:
    """Epoch millis of a number or a Flink timestamp; ValueError for anything else."""
    if isinstance(value, bool):
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value.strip().replace(" ", "T", 1))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        return int(parsed.timestamp() * 1000)
    raise ValueError(f"not a time: {value!r}")

"""The two time notations the resources use: watermark expressions and durations.

Watermarks are Flink SQL text (`` `ts` - INTERVAL '3' SECONDS ``), which the
Streaming Runtime passed through verbatim; durations are Flink configuration
values (`5 s`, `5000 ms`, `5 min`). Both become integer milliseconds here so
the engine never parses text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

INTERVAL_UNIT_MS = {"MILLISECOND": 1, "SECOND": 1_000, "MINUTE": 60_000, "HOUR": 3_600_000, "DAY": 86_400_000}

_WATERMARK = re.compile(
    r"""^\s*(?P<column>`[^`]+`|[A-Za-z_][A-Za-z0-9_]*)\s*
        (?:-\s*INTERVAL\s+'(?P<amount>\d+(?:\.\d+)?)'\s+(?P<unit>[A-Za-z]+)\s*)?$""",
    re.IGNORECASE | re.VERBOSE,
)


@dataclass(frozen=True)
class Watermark:
    """A bounded out-of-orderness watermark: `column` minus `delay_ms`."""

    column: str
    delay_ms: int


def parse_watermark(text: str) -> Watermark:
    """Parse `` `col` - INTERVAL 'n' UNIT `` (or just `` `col` ``); raises ValueError."""
    match = _WATERMARK.match(text)
    if match is None:
        raise ValueError(
            f"malformed watermark expression {text!r}"
            " (expected `<column>` - INTERVAL '<n>' SECOND(S)|MINUTE(S)|MILLISECOND(S)|HOUR(S))"
        )
    column = match["column"].strip("`")
    if match["amount"] is None:
        return Watermark(column, 0)
    unit = match["unit"].upper().removesuffix("S")
    if unit not in INTERVAL_UNIT_MS:
        raise ValueError(
            f"unknown interval unit {match['unit']!r} in watermark expression {text!r}"
            " (expected SECOND(S), MINUTE(S), MILLISECOND(S) or HOUR(S))"
        )
    millis = Decimal(match["amount"]) * INTERVAL_UNIT_MS[unit]
    if millis != millis.to_integral_value():
        raise ValueError(f"watermark delay in {text!r} is not a whole number of milliseconds")
    return Watermark(column, int(millis))


_DURATION_UNIT_MS = {
    **dict.fromkeys(("ms", "milli", "millis", "millisecond", "milliseconds"), 1),
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1_000),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60_000),
    **dict.fromkeys(("h", "hour", "hours"), 3_600_000),
    **dict.fromkeys(("d", "day", "days"), 86_400_000),
}
_DURATION = re.compile(r"^\s*(?P<amount>\d+)\s*(?P<unit>[A-Za-z]*)\s*$")


def parse_duration_ms(text: str) -> int:
    """Parse a Flink-style duration (`5 s`, `5000 ms`, `5min`; a bare number is ms); raises ValueError."""
    match = _DURATION.match(text)
    unit = match["unit"].lower() if match else ""
    if match is None or (unit and unit not in _DURATION_UNIT_MS):
        raise ValueError(f"malformed duration {text!r} (expected e.g. '5 s', '5000 ms', '5 min', '1 h')")
    return int(match["amount"]) * _DURATION_UNIT_MS.get(unit, 1)


def parse_boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "yes", "on"):
        return True
    if lowered in ("false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


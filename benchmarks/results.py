"""Read each contender's output topic back as counts per (window, code), and
compare them with the counts the generator knows to be right."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone

import orjson

from benchmarks.dataset import Counts
from benchmarks.kafka_read import read_values


def parse_timestamp(text: str) -> int:
    """`2022-02-16 14:18:00[.fff]` (UTC) -> epoch millis."""
    fmt = "%Y-%m-%d %H:%M:%S.%f" if "." in text else "%Y-%m-%d %H:%M:%S"
    return int(datetime.strptime(text, fmt).replace(tzinfo=timezone.utc).timestamp() * 1000)


@dataclass
class Output:
    counts: Counts
    duplicates: int = 0  # the same (window, code) emitted more than once
    late_reported: Counter = field(default_factory=Counter)  # (window, code) -> records the engine reported late


def read_output(bootstrap: str, topic: str, kind: str) -> Output:
    """kind: `package` (the seed's JSON), `quix` ({start, end, value} keyed by
    code) or `plain` (window_start_ms, error_code, error_count)."""
    out = Output({})
    for key, value in read_values(bootstrap, topic):
        row = orjson.loads(value)
        if kind == "package":
            window_key = (parse_timestamp(row["window_start"]), row["error_code"])
            n = row["error_count"]
        elif kind == "quix":
            window_key = (int(row["start"]), key.decode())
            n = row["value"]
        elif "late_window_start_ms" in row:
            out.late_reported[(row["late_window_start_ms"], row["error_code"])] += 1
            continue
        else:
            window_key = (row["window_start_ms"], row["error_code"])
            n = row["error_count"]
        if window_key in out.counts:
            out.duplicates += 1
        out.counts[window_key] = out.counts.get(window_key, 0) + n
    return out


@dataclass
class Agreement:
    matching: int
    missing: list[tuple[int, str]]  # expected, not emitted
    open_at_end: list[tuple[int, str]]  # missing, but the window had not closed when the input ended
    wrong: list[tuple[tuple[int, str], int, int]]  # (window, code), got, expected
    extra: list[tuple[int, str]]
    late_reported: int
    duplicates: int

    @property
    def exact(self) -> bool:
        return not (self.missing or self.open_at_end or self.wrong or self.extra or self.duplicates)

    def describe(self) -> str:
        if self.exact:
            return f"all {self.matching} counts agree"
        parts = [f"{self.matching} agree"]
        if self.open_at_end:
            parts.append(f"{len(self.open_at_end)} windows never emitted because they were still open when the input ended "
                         f"(no end-of-input flush)")
        if self.missing:
            parts.append(f"{len(self.missing)} closed windows missing")
        if self.wrong:
            short = sum(e - g for _, g, e in self.wrong if g < e)
            parts.append(f"{len(self.wrong)} counts differ ({short} records short in total"
                         + (f"; the engine reported {self.late_reported} records late" if self.late_reported else "") + ")")
        if self.extra:
            parts.append(f"{len(self.extra)} unexpected windows")
        if self.duplicates:
            parts.append(f"{self.duplicates} windows emitted more than once")
        return "; ".join(parts)


def agree(got: Output, expected: Counts, closed_before_ms: dict[str, int] | None = None) -> Agreement:
    """`closed_before_ms[code]`: windows of that code ending after this were
    still open at the end of the input for an engine that only closes windows
    on new records (event time of its partition minus the grace)."""
    matching, missing, open_at_end, wrong = 0, [], [], []
    for key, n in expected.items():
        g = got.counts.get(key)
        if g is None:
            start, code = key
            if closed_before_ms is not None and start + 60_000 > closed_before_ms[code]:
                open_at_end.append(key)
            else:
                missing.append(key)
        elif g == n:
            matching += 1
        else:
            wrong.append((key, g, n))
    extra = [k for k in got.counts if k not in expected]
    return Agreement(matching, missing, open_at_end, wrong, extra, sum(got.late_reported.values()), got.duplicates)

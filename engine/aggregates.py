"""Mergeable accumulators for the SQL aggregates (two-phase aggregation).

Rows are folded into an accumulator per (window, key) in slices, and the
final value is read once, when the window fires. SQL semantics: NULL inputs
are ignored; SUM/MIN/MAX/AVG of no non-NULL value is NULL; COUNT(*) counts
rows, COUNT(col) non-NULL values.

SUM over `long` (and `int`, whose SUM is a `long` here) wraps around in 64-bit
two's complement, as Flink's BIGINT SUM does: `SumAggFunction.LongSumAggFunction`
(flink-table-planner, `org.apache.flink.table.planner.functions.aggfunctions`)
accumulates with `plus`, which Flink compiles to Java `long` addition, and Java
keeps the low-order 64 bits of an overflowing sum (JLS 15.18.2). Addition
modulo 2^64 does not depend on the order, so the result is exactly Flink's
whatever the slices.
"""

from __future__ import annotations

from typing import Any, Sequence

from config.sql.plan import Aggregate

FLOAT_TYPES = frozenset({"float", "double"})


def wrap_long(n: int) -> int:
    """`n` as a Java long: its low-order 64 bits, in two's complement."""
    return ((n + 2**63) & (2**64 - 1)) - 2**63


class Accumulator:
    """The running state of every aggregate of one (window, key)."""

    __slots__ = ("state",)

    def __init__(self, aggregates: Sequence[Aggregate]):
        self.state: list[Any] = [0 if a.function == "COUNT" else [0, 0] if a.function == "AVG" else None for a in aggregates]

    def fold(self, aggregates: Sequence[Aggregate], values: dict[str, Sequence[Any]], lo: int, hi: int) -> None:
        """Add rows lo..hi-1 of a batch slice (`values` by input column)."""
        for i, agg in enumerate(aggregates):
            if agg.function == "COUNT" and agg.column is None:
                self.state[i] += hi - lo
                continue
            present = [v for v in values[agg.column][lo:hi] if v is not None]  # type: ignore[index]
            if not present:
                continue
            fn = agg.function
            if fn == "COUNT":
                self.state[i] += len(present)
            elif fn == "SUM":
                total = sum(present) if self.state[i] is None else self.state[i] + sum(present)
                self.state[i] = total if agg.result_type in FLOAT_TYPES else wrap_long(total)
            elif fn == "MIN":
                low = min(present)
                self.state[i] = low if self.state[i] is None else min(self.state[i], low)
            elif fn == "MAX":
                high = max(present)
                self.state[i] = high if self.state[i] is None else max(self.state[i], high)
            else:  # AVG
                self.state[i][0] += sum(present)
                self.state[i][1] += len(present)

    def result(self, aggregates: Sequence[Aggregate]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for agg, state in zip(aggregates, self.state):
            if agg.function == "AVG":
                out[agg.alias] = state[0] / state[1] if state[1] else None
            else:
                out[agg.alias] = state
        return out

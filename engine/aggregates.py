"""Mergeable accumulators for the SQL aggregates (two-phase aggregation).

Rows are folded into an accumulator per (window, key) in slices, and the
final value is read once, when the window fires. SQL semantics: NULL inputs
are ignored; SUM/MIN/MAX/AVG of no non-NULL value is NULL; COUNT(*) counts
rows, COUNT(col) non-NULL values.

Slices follow the reads, whose sizes change from run to run (a restart, a
slower broker), so every aggregate here gives the same bits whatever the
slicing and the order of the slices: a re-emitted window is byte-identical.

- SUM over `long` (and `int`, whose SUM is a `long` here) wraps around in 64-bit
  two's complement, as Flink's BIGINT SUM does: `SumAggFunction.LongSumAggFunction`
  (flink-table-planner, `org.apache.flink.table.planner.functions.aggfunctions`)
  accumulates with `plus`, which Flink compiles to Java `long` addition, and Java
  keeps the low-order 64 bits of an overflowing sum (JLS 15.18.2). Addition
  modulo 2^64 does not depend on the order, so the result is exactly Flink's.
- SUM and AVG over `float`/`double` are exact: the accumulator holds the
  exact sum of its values (a whole number of 2^-1074, the smallest double)
  and rounds once, at the end, to the nearest double (`math.fsum`'s result).
  NaN, or both infinities, give NaN; one infinity gives it; an exact sum past
  the double range gives an infinity; a zero sum is -0.0 only when every
  value was -0.0, as IEEE addition gives it in any order. AVG is that SUM
  divided by the count; AVG over integers divides their exact sum.
- MIN and MAX over `float`/`double` order values as Java's `Double.compare`
  does (and Flink's ORDER BY): -0.0 before 0.0, NaN after +infinity. So MAX is
  NaN once any value is NaN, and MIN is NaN only when every value is. Flink's
  own MIN/MAX compare with IEEE `<`/`>`, under which a NaN is kept only if it
  came first: its answer depends on the arrival order, which no re-emit may.
"""

from __future__ import annotations

import math
from itertools import chain
from typing import Any, Sequence

from config.sql.plan import Aggregate

FLOAT_TYPES = frozenset({"float", "double"})
_UNITS = 2**1074  # 1 / the smallest positive double: every finite double is a whole number of them


def wrap_long(n: int) -> int:
    """`n` as a Java long: its low-order 64 bits, in two's complement."""
    return ((n + 2**63) & (2**64 - 1)) - 2**63


def _units(value: float) -> int:
    num, den = float(value).as_integer_ratio()
    return num * (_UNITS // den)


def _exact_units(values: Sequence[float]) -> int:
    """The exact sum of finite `values`, in units of 2^-1074.

    `fsum` rounds the exact sum once; what it leaves out is summed again with
    the terms found so far negated, until nothing is left: a few passes in C
    (each leaves less than half the last term's last bit), whatever the count."""
    terms: list[float] = []
    try:
        while True:
            term = math.fsum(chain(values, terms))
            if not term:
                return -sum(map(_units, terms))
            terms.append(-term)
    except OverflowError:  # a partial sum past the double range: exact integers one by one
        return sum(map(_units, values))


class ExactSum:
    """The exact sum of floating-point values, mergeable in any order."""

    __slots__ = ("units", "nan", "plus_inf", "minus_inf", "only_minus_zero")

    def __init__(self) -> None:
        self.units = 0
        self.nan = self.plus_inf = self.minus_inf = False
        self.only_minus_zero = True

    def add(self, values: Sequence[float]) -> None:
        if not all(map(math.isfinite, values)):
            self.nan |= any(map(math.isnan, values))
            self.plus_inf |= math.inf in values
            self.minus_inf |= -math.inf in values
            values = [v for v in values if math.isfinite(v)]
        units = _exact_units(values)
        self.units += units
        if self.only_minus_zero:
            self.only_minus_zero = units == 0 and all(v == 0 and math.copysign(1.0, v) < 0 for v in values)

    def value(self) -> float:
        if self.nan or (self.plus_inf and self.minus_inf):
            return math.nan
        if self.plus_inf or self.minus_inf:
            return math.inf if self.plus_inf else -math.inf
        if not self.units:
            return -0.0 if self.only_minus_zero else 0.0
        try:
            return self.units / _UNITS  # int / int: correctly rounded
        except OverflowError:
            return math.inf if self.units > 0 else -math.inf


def _float_min(values: Sequence[float]) -> float:
    """The least value in `Double.compare` order (-0.0 < 0.0, NaN above all)."""
    if any(map(math.isnan, values)):
        values = [v for v in values if not math.isnan(v)]
        if not values:
            return math.nan
    low = min(values)
    if low == 0:
        return -0.0 if any(v == 0 and math.copysign(1.0, v) < 0 for v in values) else 0.0
    return low


def _float_max(values: Sequence[float]) -> float:
    """The greatest value in `Double.compare` order (-0.0 < 0.0, NaN above all)."""
    if any(map(math.isnan, values)):
        return math.nan
    high = max(values)
    if high == 0:
        return 0.0 if any(v == 0 and math.copysign(1.0, v) > 0 for v in values) else -0.0
    return high


class Accumulator:
    """The running state of every aggregate of one (window, key)."""

    __slots__ = ("state",)

    def __init__(self, aggregates: Sequence[Aggregate]):
        self.state: list[Any] = [0 if a.function == "COUNT" else [None, 0] if a.function == "AVG" else None for a in aggregates]

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
            state = self.state[i]
            if fn == "COUNT":
                self.state[i] += len(present)
            elif fn == "SUM":
                self.state[i] = _sum(state, present, agg.result_type in FLOAT_TYPES)
            elif fn == "MIN":
                if agg.result_type in FLOAT_TYPES:
                    self.state[i] = _float_min(present if state is None else [state, *present])
                else:
                    low = min(present)
                    self.state[i] = low if state is None else min(state, low)
            elif fn == "MAX":
                if agg.result_type in FLOAT_TYPES:
                    self.state[i] = _float_max(present if state is None else [state, *present])
                else:
                    high = max(present)
                    self.state[i] = high if state is None else max(state, high)
            else:  # AVG: the sum's type follows the column's values
                state[0] = _sum(state[0], present, type(present[0]) is float, wrap=False)
                state[1] += len(present)

    def result(self, aggregates: Sequence[Aggregate]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for agg, state in zip(aggregates, self.state):
            if agg.function == "AVG":
                total, count = state
                out[agg.alias] = _value(total) / count if count else None
            else:
                out[agg.alias] = _value(state)
        return out


def _sum(state: Any, present: list[Any], floating: bool, wrap: bool = True) -> Any:
    """`state` (None, an int or an ExactSum) plus the values; integers wrapped
    to a long for SUM, kept exact for AVG (whose result is a double)."""
    if floating:
        if state is None:
            state = ExactSum()
        elif type(state) is float:  # kept by an older version of the engine
            old, state = state, ExactSum()
            state.add([old])
        state.add(present)
        return state
    total = sum(present) + (state or 0)
    return wrap_long(total) if wrap else total


def _value(state: Any) -> Any:
    return state.value() if isinstance(state, ExactSum) else state

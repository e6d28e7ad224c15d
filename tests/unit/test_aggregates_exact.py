"""Aggregates give the same bits whatever the slices a window's rows arrive
in (read sizes change across restarts), and SUM over longs stays a long as
Flink's does: wrapping around in two's complement, never an unbounded int."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from config.sql.plan import Aggregate, OutputColumn
from engine.aggregates import Accumulator
from engine.serde import encode_json_value

LONG = st.integers(-(2**63), 2**63 - 1)
EXTREME_LONG = st.sampled_from([-(2**63), 2**63 - 1, 2**62, -(2**62), 1, -1, 0])


def fold_in_slices(aggregates: tuple[Aggregate, ...], column: str, values: list, cuts: list[int]) -> dict:
    """Fold `values` into one accumulator, one slice per stretch between `cuts`."""
    acc = Accumulator(aggregates)
    bounds = sorted({0, len(values), *(c % (len(values) + 1) for c in cuts)})
    for lo, hi in zip(bounds, bounds[1:]):
        acc.fold(aggregates, {column: values}, lo, hi)
    return acc.result(aggregates)


def java_long_sum(values: list[int]) -> int:
    """What Java's `long` addition gives, one value after the other (an independent reference)."""
    total = 0
    for v in values:
        total = (total + v) % 2**64
    return total - 2**64 if total >= 2**63 else total


LONG_SUM = (Aggregate("SUM", "v", "total", "long"),)


def test_sum_over_long_wraps_around_like_java() -> None:
    assert fold_in_slices(LONG_SUM, "v", [2**63 - 1, 1], [])["total"] == -(2**63)
    assert fold_in_slices(LONG_SUM, "v", [-(2**63), -1], [1])["total"] == 2**63 - 1
    assert fold_in_slices(LONG_SUM, "v", [2**63 - 1] * 4, [1, 2, 3])["total"] == -4


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(LONG, EXTREME_LONG, st.none()), max_size=40), st.lists(st.integers(0, 40), max_size=6))
def test_sum_over_long_is_javas_whatever_the_slices_and_always_encodes(values, cuts) -> None:
    total = fold_in_slices(LONG_SUM, "v", values, cuts)["total"]
    present = [v for v in values if v is not None]
    assert total == (java_long_sum(present) if present else None)
    assert total is None or -(2**63) <= total < 2**63
    encoded = encode_json_value((OutputColumn("total", "aggregate", "total", "long"),), {"total": total})
    assert orjson.loads(encoded) == {"total": total}

"""Aggregates give the same bits whatever the slices a window's rows arrive
in (read sizes change across restarts), and SUM over longs stays a long as
Flink's does: wrapping around in two's complement, never an unbounded int."""

from __future__ import annotations

import math
import struct
from fractions import Fraction

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


# --- floating point: the same bits whatever the slices and their order ----------------------

FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-1e6, 1e6),
    st.sampled_from([0.0, -0.0, 0.1, 0.2, 0.3, 1e308, -1e308, 1.7976931348623157e308, 5e-324, -5e-324, 1e16, 1.0]),
)
FLOAT_AGGREGATES = (
    Aggregate("SUM", "x", "sum", "double"), Aggregate("AVG", "x", "avg", "double"),
    Aggregate("MIN", "x", "min", "double"), Aggregate("MAX", "x", "max", "double"),
    Aggregate("COUNT", "x", "n", "long"),
)
FLOAT_COLUMNS = tuple(OutputColumn(a.alias, "aggregate", a.alias, a.result_type) for a in FLOAT_AGGREGATES)


def exactly(v: float) -> bytes | str:
    """A float's bits (-0.0 told from 0.0), every NaN alike."""
    return "nan" if math.isnan(v) else struct.pack("<d", v)


def bits(result: dict) -> tuple:
    """Every value exactly, and the JSON the sink would write."""
    return tuple(exactly(v) if isinstance(v, float) else v for v in result.values()), encode_json_value(FLOAT_COLUMNS, result)


def total_order(v: float) -> tuple:
    """Java's Double.compare as a sort key: -0.0 < 0.0, NaN above +infinity."""
    return (math.isnan(v), 0.0 if math.isnan(v) else v, math.copysign(1.0, v))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(FLOATS, st.none()), max_size=30), st.lists(st.integers(0, 30), max_size=6),
       st.lists(st.integers(0, 30), max_size=6), st.randoms(use_true_random=False))
def test_float_aggregates_are_identical_whatever_the_slices_and_order(values, cuts, other_cuts, rng) -> None:
    shuffled = list(values)
    rng.shuffle(shuffled)
    first = fold_in_slices(FLOAT_AGGREGATES, "x", values, cuts)
    assert bits(first) == bits(fold_in_slices(FLOAT_AGGREGATES, "x", shuffled, other_cuts))
    assert bits(first) == bits(fold_in_slices(FLOAT_AGGREGATES, "x", values, []))

    present = [v for v in values if v is not None]
    if not present:
        assert first == {"sum": None, "avg": None, "min": None, "max": None, "n": 0}
        return
    ordered = sorted(present, key=total_order)
    assert exactly(first["min"]) == exactly(ordered[0])
    assert exactly(first["max"]) == exactly(ordered[-1])
    if all(math.isfinite(v) for v in present):
        exact = sum(map(Fraction, present))
        try:
            expected = float(exact)
        except OverflowError:
            expected = math.inf if exact > 0 else -math.inf
        if exact == 0:
            expected = -0.0 if all(math.copysign(1.0, v) < 0 for v in present) else 0.0
        assert exactly(first["sum"]) == exactly(expected)
        if math.isfinite(expected):
            assert first["avg"] == expected / len(present)


def test_float_sum_is_the_exact_sum_rounded_once() -> None:
    values = [0.1] * 10 + [1e16, 1.0, -1e16]
    assert fold_in_slices(FLOAT_AGGREGATES[:1], "x", values, [3, 7, 11])["sum"] == math.fsum(values) == 2.0
    assert fold_in_slices(FLOAT_AGGREGATES[:1], "x", [1e308, 1e308, -1e308], [1])["sum"] == 1e308
    assert fold_in_slices(FLOAT_AGGREGATES[:1], "x", [1e308, 1e308], [1])["sum"] == math.inf
    assert math.isnan(fold_in_slices(FLOAT_AGGREGATES[:1], "x", [math.inf, 1.0, -math.inf], [1])["sum"])


def test_nan_is_the_largest_value_for_min_and_max() -> None:
    for cuts in ([], [1], [2]):
        result = fold_in_slices(FLOAT_AGGREGATES, "x", [math.nan, 2.0, -1.0], cuts)
        assert result["min"] == -1.0 and math.isnan(result["max"])
    assert math.isnan(fold_in_slices(FLOAT_AGGREGATES, "x", [math.nan, math.nan], [1])["min"])
    assert str(fold_in_slices(FLOAT_AGGREGATES, "x", [0.0, -0.0], [1])["min"]) == "-0.0"
    assert str(fold_in_slices(FLOAT_AGGREGATES, "x", [-0.0, 0.0], [1])["max"]) == "0.0"

"""WHERE over floating-point columns: the row check and the polars expression
give IEEE's answers (Flink compares doubles with Java's operators): anything
compared with NaN is false except `<>`, -0.0 equals 0.0, and NULL stays
unknown. SQLite cannot hold a NaN, so here the two paths are compared with
each other and with hand-worked cases."""

from __future__ import annotations

import math
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.pipeline import SchemaField
from config.sql.parser import parse_query
from config.sql.plan import Predicate
from config.sql.predicate import compile_predicate
from tests.unit.test_sql_predicate import boolean_combinations

FIELDS = {f.name: f for f in (SchemaField("x", "double"), SchemaField("y", "double"), SchemaField("f", "float", optional=True),
                              SchemaField("n", "long"))}
SCHEMA = {"x": pl.Float64, "y": pl.Float64, "f": pl.Float32, "n": pl.Int64}
OPERATORS = ["=", "<>", "!=", "<", "<=", ">", ">="]
NAN = math.nan


def compile_where(where: str) -> Predicate:
    query = f"INSERT INTO `out` SELECT x FROM `in` WHERE {where}"
    return compile_predicate(parse_query(query).statement.expression.args["where"].this, FIELDS, query, "in")


def both_paths(where: str, batch: list[dict[str, Any]]) -> tuple[list[bool], list[bool]]:
    predicate = compile_where(where)
    frame = pl.DataFrame(batch, schema=SCHEMA).with_row_index("i")
    kept = set(frame.filter(predicate.polars().fill_null(False))["i"].to_list())
    return [predicate.row(r) for r in batch], [i in kept for i in range(len(batch))]


CASES = [
    ("x = y", {"x": NAN, "y": NAN}, False),
    ("x <> y", {"x": NAN, "y": NAN}, True),
    ("x > 5", {"x": NAN}, False),
    ("x >= 5", {"x": NAN}, False),
    ("x < 5", {"x": NAN}, False),
    ("x <> 5", {"x": NAN}, True),
    ("NOT x > 5", {"x": NAN}, True),
    ("x < y", {"x": math.inf, "y": NAN}, False),
    ("x = 0", {"x": -0.0}, True),
    ("x = y", {"x": -0.0, "y": 0.0}, True),
    ("x < y", {"x": -0.0, "y": 0.0}, False),
    ("x IN (1.5, 2)", {"x": NAN}, False),
    ("x NOT IN (1.5, 2)", {"x": NAN}, True),
    ("x <> y", {"x": None, "y": NAN}, False),  # NULL <> NaN is unknown
    ("NOT x = y", {"x": NAN, "y": None}, False),
    ("x > n", {"x": NAN, "n": 1}, False),
    ("f < x", {"f": NAN, "x": 1.0}, False),
]


@pytest.mark.parametrize(("where", "values", "expected"), CASES)
def test_ieee_comparisons(where: str, values: dict[str, Any], expected: bool) -> None:
    row = {name: values.get(name) for name in FIELDS}
    assert both_paths(where, [row]) == ([expected], [expected])


specials = st.sampled_from([NAN, math.inf, -math.inf, 0.0, -0.0, 1.0, -1.5, 2.0])
floats = st.one_of(specials, st.floats(allow_nan=True, allow_infinity=True, width=32))
literals = st.sampled_from(["0", "-0.0", "1", "1.0", "-1.5", "2", "1e308", "-1e308", "NULL"])


@st.composite
def atoms(draw: st.DrawFn) -> str:
    column = draw(st.sampled_from(["x", "y", "f"]))
    kind = draw(st.sampled_from(["columns", "literal", "literal-first", "in"]))
    op = draw(st.sampled_from(OPERATORS))
    if kind == "columns":
        return f"{column} {op} {draw(st.sampled_from(['x', 'y', 'f', 'n']))}"
    if kind == "literal":
        return f"{column} {op} {draw(literals)}"
    if kind == "literal-first":
        return f"{draw(literals)} {op} {column}"
    items = draw(st.lists(literals, min_size=1, max_size=3))
    return f"{column} {draw(st.sampled_from(['', 'NOT ']))}IN ({', '.join(items)})"


predicates = boolean_combinations(atoms(), 4)
rows = st.fixed_dictionaries({"x": st.none() | floats, "y": st.none() | floats, "f": st.none() | floats,
                              "n": st.none() | st.integers(-3, 3)})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(where=predicates, batch=st.lists(rows, min_size=1, max_size=8))
def test_row_check_and_polars_agree_on_nan_infinities_and_signed_zeros(where: str, batch: list[dict[str, Any]]) -> None:
    by_row, by_polars = both_paths(where, batch)
    assert by_row == by_polars

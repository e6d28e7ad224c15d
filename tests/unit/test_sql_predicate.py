"""WHERE clauses: the row check, the polars expression, and SQL's own answer.

Hand-written truth tables pin the three-valued logic; a property test then
generates predicates and rows (NULLs included) and requires the row check,
the polars expression and SQLite, an independent SQL engine, to select the
same rows.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.pipeline import SchemaField
from config.sql import SqlError
from config.sql.parser import parse_query
from config.sql.plan import Predicate
from config.sql.predicate import compile_predicate

FIELDS = {
    f.name: f
    for f in (
        SchemaField("s", "string"),
        SchemaField("t", "string"),
        SchemaField("n", "long"),
        SchemaField("m", "int"),
        SchemaField("x", "double"),
        SchemaField("b", "boolean"),
    )
}
POLARS_SCHEMA = {"s": pl.String, "t": pl.String, "n": pl.Int64, "m": pl.Int32, "x": pl.Float64, "b": pl.Boolean}


def compile_where(where: str) -> Predicate:
    query = f"INSERT INTO `out` SELECT s FROM `in` WHERE {where}"
    where_node = parse_query(query).statement.expression.args["where"].this
    return compile_predicate(where_node, FIELDS, query, "in")


def row(**values: Any) -> dict[str, Any]:
    return {name: values.get(name) for name in FIELDS}


def polars_selects(predicate: Predicate, rows: list[dict[str, Any]]) -> list[bool]:
    frame = pl.DataFrame(rows, schema=POLARS_SCHEMA).with_row_index("i")
    kept = set(frame.filter(predicate.polars())["i"].to_list())
    return [i in kept for i in range(len(rows))]


# (WHERE clause, row, whether the row passes): worked out from SQL's rules by hand.
TRUTH_TABLE = [
    ("s = 'a'", row(s="a"), True),
    ("s = 'a'", row(s="b"), False),
    ("s = 'a'", row(), False),  # NULL = 'a' is unknown
    ("s <> 'a'", row(), False),  # so is NULL <> 'a'
    ("NOT s = 'a'", row(), False),  # NOT unknown is unknown
    ("s != 'a'", row(s="b"), True),
    ("n > 3", row(n=4), True),
    ("n >= 4 AND n <= 4", row(n=4), True),
    ("n < -1", row(n=-2), True),
    ("x < 0.5", row(x=0.25), True),
    ("x > n", row(x=2.5, n=2), True),
    ("x > n", row(x=2.5), False),
    ("s = 'a' OR n > 3", row(n=5), True),  # unknown OR true is true
    ("s = 'a' OR n > 3", row(n=1), False),  # unknown OR false is unknown
    ("s = 'a' AND n > 3", row(n=1), False),  # unknown AND false is false
    ("NOT (s = 'a' AND n > 3)", row(n=1), True),  # ... so its negation is true
    ("NOT (s = 'a' AND n > 3)", row(n=5), False),  # unknown AND true is unknown
    ("s IN ('a', 'b')", row(s="b"), True),
    ("s IN ('a', 'b')", row(s="c"), False),
    ("s IN ('a', 'b')", row(), False),
    ("s NOT IN ('a', 'b')", row(s="c"), True),
    ("s NOT IN ('a', NULL)", row(s="c"), False),  # c <> NULL is unknown
    ("s IN ('a', NULL)", row(s="a"), True),
    ("n IN (1, 2.0)", row(n=2), True),
    ("s LIKE 'C0%'", row(s="C001_ABORTED"), True),
    ("s LIKE 'C0%'", row(s="c001"), False),  # LIKE is case-sensitive
    ("s LIKE 'C0_'", row(s="C01"), True),
    ("s LIKE 'C0_'", row(s="C012"), False),
    ("s LIKE '%.%'", row(s="a.b"), True),  # regex characters are literal
    ("s LIKE '%.%'", row(s="ab"), False),
    ("s LIKE 'a(b'", row(s="a(b"), True),
    ("s LIKE '%'", row(s="line\nbreak"), True),
    ("s NOT LIKE 'a%'", row(s="ba"), True),
    ("s NOT LIKE 'a%'", row(), False),
    ("s LIKE '100!%' ESCAPE '!'", row(s="100%"), True),
    ("s LIKE '100!%' ESCAPE '!'", row(s="1000"), False),
    ("s IS NULL", row(), True),
    ("s IS NULL", row(s="a"), False),
    ("s IS NOT NULL", row(), False),
    ("b", row(b=True), True),
    ("b", row(), False),
    ("NOT b", row(b=False), True),
    ("b = FALSE", row(b=False), True),
    ("s = 'it''s'", row(s="it's"), True),
    ("`s` = `t`", row(s="a", t="a"), True),
    ("((n = 1))", row(n=1), True),
    ("n = NULL", row(n=1), False),
    ("NULL IS NULL", row(), True),
]


@pytest.mark.parametrize("where, values, expected", TRUTH_TABLE, ids=[f"{w} | {v}" for w, v, _ in TRUTH_TABLE])
def test_truth_table(where: str, values: dict[str, Any], expected: bool) -> None:
    predicate = compile_where(where)
    assert predicate.row(values) is expected
    assert polars_selects(predicate, [values]) == [expected]


def test_polars_copes_with_a_batch_whose_columns_are_all_null() -> None:
    """A batch built from Python lists types an all-NULL column as Null."""
    predicate = compile_where("s LIKE 'a%' OR n > 1 OR b OR x IS NOT NULL")
    frame = pl.DataFrame({name: [None, None] for name in FIELDS}, strict=False)
    assert frame.filter(predicate.polars()).height == 0
    assert predicate.row(dict.fromkeys(FIELDS)) is False


def test_missing_columns_count_as_null() -> None:
    predicate = compile_where("s IS NULL AND n IS NULL")
    assert predicate.row({}) is True


def test_columns_are_listed_once_in_order() -> None:
    assert compile_where("n > 1 AND (s = 'a' OR n < 5) AND x IS NULL").columns == ("n", "s", "x")


@pytest.mark.parametrize(
    "where, message",
    [
        ("s = 1", "cannot compare string with number"),
        ("n = 'a'", "cannot compare number with string"),
        ("b > TRUE", "boolean values have no order"),
        ("s", "s is a string, not a condition"),
        ("n LIKE '1%'", "LIKE needs a string"),
        ("s LIKE t", "the LIKE pattern must be a string literal"),
        ("s LIKE 'a' ESCAPE '!!'", "ESCAPE takes a one-character string"),
        ("s IN ('a', t)", "IN lists take literals only"),
        ("n + 1 > 2", "unsupported value in WHERE: n + 1"),
        ("UPPER(s) = 'A'", "unsupported value in WHERE: UPPER(s)"),
        ("zz = 1", "unknown column `zz` in WHERE"),
        ("n BETWEEN 1 AND 2", "unsupported expression in WHERE"),
    ],
)
def test_unsupported_predicates_are_refused(where: str, message: str) -> None:
    with pytest.raises(SqlError, match=message.replace("(", r"\(").replace(")", r"\)").replace("+", r"\+")):
        compile_where(where)


# -- generated predicates against SQLite ----------------------------------------------

ALPHABET = "ab%_.*(\\'"
strings = st.text(alphabet=ALPHABET, max_size=4)
ints = st.integers(min_value=-20, max_value=20)
floats = st.floats(min_value=-20, max_value=20, allow_nan=False, allow_infinity=False).map(lambda v: round(v, 2))
OPERATORS = ["=", "<>", "!=", "<", "<=", ">", ">="]


def string_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def number_literal(value: float) -> str:
    return repr(value)


@st.composite
def atoms(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["string", "number", "columns", "in", "like", "null", "bool"]))
    if kind == "string":
        column = draw(st.sampled_from(["s", "t"]))
        return f"{column} {draw(st.sampled_from(OPERATORS))} {string_literal(draw(strings))}"
    if kind == "number":
        column = draw(st.sampled_from(["n", "m", "x"]))
        literal = number_literal(draw(st.one_of(ints, floats)))
        return f"{column} {draw(st.sampled_from(OPERATORS))} {literal}"
    if kind == "columns":
        left, right = draw(st.sampled_from([("s", "t"), ("n", "m"), ("n", "x"), ("x", "m")]))
        return f"`{left}` {draw(st.sampled_from(OPERATORS))} `{right}`"
    if kind == "in":
        column, values = draw(
            st.one_of(
                st.tuples(
                    st.just("s"), st.lists(strings.map(string_literal) | st.just("NULL"), min_size=1, max_size=3)
                ),
                st.tuples(st.just("n"), st.lists(ints.map(number_literal) | st.just("NULL"), min_size=1, max_size=3)),
            )
        )
        negation = draw(st.sampled_from(["", "NOT "]))
        return f"{column} {negation}IN ({', '.join(values)})"
    if kind == "like":
        negation = draw(st.sampled_from(["", "NOT "]))
        return f"{draw(st.sampled_from(['s', 't']))} {negation}LIKE {string_literal(draw(strings))}"
    if kind == "null":
        return f"{draw(st.sampled_from(list(FIELDS)))} IS {draw(st.sampled_from(['', 'NOT ']))}NULL"
    return draw(st.sampled_from(["b", "b = TRUE", "b <> FALSE", "NOT b"]))


def boolean_combinations(leaves: st.SearchStrategy[str], max_leaves: int) -> st.SearchStrategy[str]:
    """Conditions made of `leaves` with AND, OR, NOT and parentheses."""
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.tuples(inner, st.sampled_from(["AND", "OR"]), inner).map(lambda p: f"({p[0]} {p[1]} {p[2]})"),
            inner.map(lambda p: f"NOT ({p})"),
        ),
        max_leaves=max_leaves,
    )


predicates = boolean_combinations(atoms(), 6)
rows = st.fixed_dictionaries(
    {
        "s": st.none() | strings,
        "t": st.none() | strings,
        "n": st.none() | ints,
        "m": st.none() | ints,
        "x": st.none() | floats,
        "b": st.none() | st.booleans(),
    }
)


def sqlite_selects(where: str, batch: list[dict[str, Any]]) -> list[bool]:
    with sqlite3.connect(":memory:") as db:
        db.execute("PRAGMA case_sensitive_like = ON")  # SQL's LIKE is case-sensitive; SQLite's is not by default
        db.execute("CREATE TABLE t_in (i INTEGER, s TEXT, t TEXT, n INTEGER, m INTEGER, x REAL, b BOOLEAN)")
        db.executemany(
            "INSERT INTO t_in VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(i, r["s"], r["t"], r["n"], r["m"], r["x"], r["b"]) for i, r in enumerate(batch)],
        )
        kept = {i for (i,) in db.execute(f"SELECT i FROM t_in WHERE {where}")}
    return [i in kept for i in range(len(batch))]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(where=predicates, batch=st.lists(rows, min_size=1, max_size=8))
def test_row_check_polars_and_sqlite_agree(where: str, batch: list[dict[str, Any]]) -> None:
    predicate = compile_where(where)
    by_row = [predicate.row(r) for r in batch]
    assert all(isinstance(v, bool) for v in by_row)
    assert by_row == polars_selects(predicate, batch)
    assert by_row == sqlite_selects(where, batch)

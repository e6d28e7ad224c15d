"""HAVING, joins, Window Top-N and the positional INSERT INTO: the plans they
compile to, and the queries still refused (with line, column and what to
write instead). Streams are built directly; positions are found by
searching the query text."""

from __future__ import annotations

import pytest

from config.pipeline import LOCAL_KAFKA, Pipeline, QueryProcessor, SchemaField, StreamSpec, TimeAttribute
from config.sql import SqlError, compile_query
from config.sql.plan import Plan

TS = SchemaField("ts", "long", "timestamp-millis")


def stream(name: str, *fields: SchemaField, time: str | None = None, schema: str | None = None, **extra) -> StreamSpec:
    return StreamSpec(
        name=name, topic=name, protocol="kafka", servers=LOCAL_KAFKA, modes=frozenset({"read", "write"}),
        fields=fields, schema_name=schema, time_attribute=TimeAttribute(time, 1_000) if time else None, **extra,
    )


ORDERS = stream("orders-stream", SchemaField("order_id", "long"), SchemaField("customer", "string"),
                SchemaField("amount", "double", optional=True), SchemaField("region", "string"), TS,
                time="ts", schema="Orders")
CUSTOMERS = stream("customers-stream", SchemaField("customer", "string"), SchemaField("name", "string"),
                   SchemaField("segment", "string"), SchemaField("since", "long", "timestamp-millis"),
                   SchemaField("seen", "long", "timestamp-millis", proctime=True), schema="Customers")
OUT = stream("out")  # no declared schema
UPSERT_OUT = stream("upsert-out", connector="upsert-kafka", primary_key=("order_id",), key_fields=("order_id",))
COUNTS = stream("counts-stream", SchemaField("window_start", "long", "timestamp-millis"),
                SchemaField("window_end", "long", "timestamp-millis"), SchemaField("who", "string"),
                SchemaField("how_many", "long"))
PIPELINE = Pipeline("test.yaml", {s.name: s for s in (ORDERS, CUSTOMERS, OUT, UPSERT_OUT, COUNTS)}, (), ())
WINDOWED = "FROM TABLE(TUMBLE(TABLE `orders-stream`, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) "
GROUPED = "GROUP BY window_start, window_end, customer"


def compile_text(query: str, ttl: int | None = None) -> Plan:
    return compile_query(QueryProcessor("q", query, query, state_ttl_ms=ttl), PIPELINE)


def refused(query: str) -> SqlError:
    with pytest.raises(SqlError) as caught:
        compile_text(query)
    return caught.value


def at(query: str, marker: str, occurrence: int = 1) -> tuple[int, int]:
    index = -1
    for _ in range(occurrence):
        index = query.index(marker, index + 1)
    before = query[:index]
    return before.count("\n") + 1, index - (before.rfind("\n") + 1) + 1


# --- HAVING -----------------------------------------------------------------------------


def test_having_reuses_the_selected_aggregate():
    plan = compile_text(f"INSERT INTO `out` SELECT window_start, customer, COUNT(*) AS n {WINDOWED}{GROUPED} HAVING COUNT(*) > 5")
    assert [a.alias for a in plan.aggregates] == ["n"]
    assert plan.having.sql == "COUNT(*) > 5" and plan.having.columns == ("n",)


def test_having_computes_the_aggregates_it_alone_uses():
    plan = compile_text(
        f"INSERT INTO `out` SELECT window_start, customer, COUNT(*) AS n {WINDOWED}{GROUPED} "
        "HAVING SUM(amount) >= 100 AND (customer <> 'guest' OR MAX(amount) > 50)"
    )
    assert [(a.function, a.column) for a in plan.aggregates] == [("COUNT", None), ("SUM", "amount"), ("MAX", "amount")]
    assert [c.name for c in plan.projection] == ["window_start", "customer", "n"]  # the others are not written
    hidden_sum, hidden_max = plan.aggregates[1].alias, plan.aggregates[2].alias
    row = {"customer": "guest", "window_start": 0, "window_end": 60_000, "n": 3, hidden_sum: 100.0, hidden_max: 10.0}
    assert plan.having.row(row) is False
    assert plan.having.row({**row, "customer": "c1"}) is True
    assert plan.having.row({**row, hidden_sum: None}) is False  # unknown fails HAVING, as in SQL
    assert "(not selected)" in plan.describe() and "having   SUM(amount) >= 100" in plan.describe()


@pytest.mark.parametrize("query, message, marker", [
    (f"INSERT INTO `out` SELECT window_start, COUNT(*) AS n {WINDOWED}{GROUPED} HAVING n > 5",
     "HAVING cannot use the SELECT alias `n`", "n > 5"),
    (f"INSERT INTO `out` SELECT window_start, COUNT(*) AS n {WINDOWED}{GROUPED} HAVING region = 'eu'",
     "column `region` in HAVING is neither in GROUP BY nor aggregated", "region ="),
    (f"INSERT INTO `out` SELECT window_start, COUNT(*) AS n {WINDOWED}{GROUPED} HAVING SUM(customer) > 1",
     "SUM(customer) needs a numeric column", "SUM"),
    (f"INSERT INTO `out` SELECT window_start, COUNT(*) AS n {WINDOWED}{GROUPED} HAVING MAX(amount) > 'x'",
     "cannot compare number with string", "MAX(amount) >"),
])
def test_having_refusals(query, message, marker):
    error = refused(query)
    assert message in str(error)
    assert (error.line, error.column) == at(query, marker)


# --- joins ------------------------------------------------------------------------------


def test_conditions_go_where_they_apply_in_an_inner_join():
    query = (
        "INSERT INTO `out` SELECT o.order_id, c.name FROM `orders-stream` AS o JOIN `customers-stream` AS c "
        "ON o.customer = c.customer AND o.amount > 10 AND o.region <> c.segment "
        "WHERE c.segment = 'retail' AND (o.amount < 1000 OR c.name = 'x')"
    )
    join = compile_text(query, ttl=3_600_000).join
    assert join.kind == "INNER" and join.keys == (("customer", "customer"),)
    assert join.left.predicate.sql == "o.amount > 10"
    assert join.right.predicate.sql == "c.segment = 'retail'"
    assert join.condition.sql == "o.region <> c.segment" and set(join.condition.columns) == {"left.region", "right.segment"}
    assert join.residual.sql == "o.amount < 1000 OR c.name = 'x'"
    assert join.state_ttl_ms == 3_600_000
    assert join.left.columns == ("order_id", "customer", "amount", "region")
    assert join.right.columns == ("customer", "name", "segment")


def test_several_key_pairs_either_way_round():
    join = compile_text(
        "INSERT INTO `out` SELECT Orders.order_id FROM `orders-stream` JOIN `customers-stream` "
        "ON Customers.customer = Orders.customer AND Orders.ts = Customers.since"
    ).join
    assert join.keys == (("customer", "customer"), ("ts", "since"))
    assert (join.left.name, join.right.name) == ("Orders", "Customers")


def test_left_join_into_an_append_only_stream_is_refused_as_flink_refuses_it():
    query = "INSERT INTO `out` SELECT o.order_id, c.name FROM `orders-stream` o LEFT JOIN `customers-stream` c ON o.customer = c.customer"
    error = refused(query)
    assert "a LEFT JOIN emits a changelog" in str(error) and "upsert-kafka" in str(error)
    assert (error.line, error.column) == at(query, "LEFT")


def test_left_join_into_upsert_kafka():
    plan = compile_text(
        "INSERT INTO `upsert-out` SELECT o.order_id, c.name FROM `orders-stream` o LEFT OUTER JOIN `customers-stream` c "
        "ON o.customer = c.customer AND c.segment = 'retail' AND o.amount > 5 WHERE o.region = 'eu'"
    )
    join = plan.join
    assert join.kind == "LEFT" and join.note is None
    assert join.right.predicate.sql == "c.segment = 'retail'"  # a right row that fails it never matches
    assert join.condition.sql == "o.amount > 5"  # a left row that fails it is still emitted, padded
    assert join.left.predicate.sql == "o.region = 'eu'"  # WHERE on the preserved side runs before the join
    assert "changelog" in plan.describe()


def test_a_where_that_drops_null_padded_rows_makes_a_left_join_inner():
    join = compile_text(
        "INSERT INTO `out` SELECT o.order_id FROM `orders-stream` o LEFT JOIN `customers-stream` c "
        "ON o.customer = c.customer WHERE c.segment = 'retail'"
    ).join
    assert join.kind == "INNER" and "runs as an INNER JOIN" in join.note
    assert join.right.predicate.sql == "c.segment = 'retail'"


def test_a_where_that_keeps_null_padded_rows_keeps_the_left_join():
    join = compile_text(
        "INSERT INTO `upsert-out` SELECT o.order_id, c.name FROM `orders-stream` o LEFT JOIN `customers-stream` c "
        "ON o.customer = c.customer WHERE c.name IS NULL OR c.segment = 'retail'"
    ).join
    assert join.kind == "LEFT" and join.residual.sql == "c.name IS NULL OR c.segment = 'retail'"


def test_select_star_of_a_join_names_a_repeated_column_as_flink_does():
    plan = compile_text(
        "INSERT INTO `out` SELECT * FROM (SELECT customer, name FROM `customers-stream`) AS a "
        "JOIN (SELECT customer, segment AS name FROM `customers-stream`) AS b ON a.customer = b.customer"
    )
    assert [c.name for c in plan.projection] == ["customer", "name", "customer0", "name0"]
    assert [(c.source, c.ref) for c in plan.projection][-1] == ("right", "segment")  # renamed in the subquery
    assert plan.sources == ("customers-stream", "customers-stream")


@pytest.mark.parametrize("query, message, marker", [
    ("INSERT INTO `out` SELECT customer FROM `orders-stream` o JOIN `customers-stream` c ON o.customer = c.customer",
     "column `customer` is ambiguous", "customer FROM"),
    ("INSERT INTO `out` SELECT x.name FROM `orders-stream` o JOIN `customers-stream` c ON o.customer = c.customer",
     "unknown table `x`", "x.name"),
    ("INSERT INTO `out` SELECT c.name FROM `orders-stream` o JOIN `customers-stream` c ON o.amount > 1",
     "a join needs at least one equality", "ON"),
    ("INSERT INTO `out` SELECT c.name FROM `orders-stream` o FULL JOIN `customers-stream` c ON o.customer = c.customer",
     "FULL JOIN is not supported", "JOIN"),
    ("INSERT INTO `out` SELECT c.name FROM `orders-stream` o CROSS JOIN `customers-stream` c",
     "CROSS JOIN is not supported", "JOIN"),
    ("INSERT INTO `out` SELECT c.name FROM `orders-stream` o JOIN `customers-stream` c ON o.order_id = c.customer",
     "cannot join long `order_id` with string `customer`", "o.order_id ="),
    ("INSERT INTO `out` SELECT COUNT(*) AS n FROM `orders-stream` o JOIN `customers-stream` c ON o.customer = c.customer",
     "over a join needs a window", "COUNT"),
    ("INSERT INTO `out` SELECT c.seen FROM `orders-stream` o JOIN `customers-stream` c ON o.customer = c.customer",
     "the processing-time attribute `seen`", "seen"),
    ("INSERT INTO `out` SELECT o.order_id FROM `orders-stream` o JOIN `customers-stream` c ON o.customer = c.customer "
     "JOIN `out` d ON o.customer = d.customer", "one join per query", "JOIN", ),
    ("INSERT INTO `out` SELECT o.order_id FROM (SELECT * FROM `orders-stream` GROUP BY region) AS o",
     "a subquery in FROM takes SELECT, FROM and WHERE only, not GROUP", "GROUP BY"),
])
def test_join_refusals(query, message, marker):
    error = refused(query)
    assert message in str(error)
    occurrence = 2 if message == "one join per query" else 1
    assert (error.line, error.column) == at(query, marker, occurrence)
    assert error.supported


# --- Window Top-N ----------------------------------------------------------------------------

AGGREGATE = f"SELECT window_start, window_end, customer, COUNT(*) AS n, SUM(amount) AS total {WINDOWED}{GROUPED}"


def top_n(outer_where: str, over: str = "PARTITION BY window_start, window_end ORDER BY n DESC", outer: str = "window_start, customer, n") -> str:
    return (
        f"INSERT INTO `out` SELECT {outer} FROM (\n"
        f"  SELECT *, ROW_NUMBER() OVER ({over}) AS rn FROM ({AGGREGATE})\n"
        f") WHERE {outer_where}"
    )


@pytest.mark.parametrize("where, expected", [
    ("rn <= 3", (1, 3)), ("rn < 3", (1, 2)), ("rn = 2", (2, 2)), ("3 >= rn", (1, 3)),
    ("rn BETWEEN 2 AND 4", (2, 4)), ("rn > 1 AND rn <= 5", (2, 5)), ("rn >= 2 AND rn < 4", (2, 3)),
])
def test_rank_ranges_flink_accepts(where, expected):
    spec = compile_text(top_n(where)).top_n
    assert (spec.rank_start, spec.rank_end) == expected


def test_top_n_order_nulls_and_tie_breaks():
    spec = compile_text(top_n(
        "rn <= 2", "PARTITION BY window_start, window_end ORDER BY total DESC NULLS FIRST, n ASC", "*")).top_n
    assert [(k.column, k.descending, k.nulls_come_first) for k in spec.order_by] == [("total", True, True), ("n", False, True)]
    assert spec.tie_break == ("customer",)
    assert spec.row_number_emitted and spec.row_number == "rn"


def test_the_row_number_can_be_written():
    plan = compile_text(top_n("rn <= 3", outer="window_start, customer, n, rn AS position"))
    assert [(c.name, c.source) for c in plan.projection][-1] == ("position", "row_number")


@pytest.mark.parametrize("query, message, marker", [
    (top_n("rn <= 3", "PARTITION BY window_start, customer ORDER BY n DESC"),
     "a Window Top-N must PARTITION BY window_start, window_end; window_end missing", "PARTITION BY"),
    (top_n("rn <= 3").replace("ROW_NUMBER()", "RANK()"), "RANK() is not supported in a Top-N", "RANK"),
    (top_n("rn >= 3"), "a Top-N needs an upper bound on `rn`", "rn >= 3"),
    (top_n("rn <= 3 AND n > 10"), "the WHERE of a Top-N takes conditions on `rn` only", "n > 10"),
    (top_n("rn <= 3", "PARTITION BY window_start, window_end ORDER BY region"), "unknown column `region` in ORDER BY", "region"),
    (top_n("rn <= 0"), "keeps no row", "rn <= 0"),
])
def test_top_n_refusals(query, message, marker):
    error = refused(query)
    assert message in str(error)
    assert (error.line, error.column) == at(query, marker)


# --- INSERT INTO maps by position ---------------------------------------------------------------


def test_insert_into_maps_columns_by_position():
    plan = compile_text(f"INSERT INTO `counts-stream` SELECT window_start, window_end, customer, COUNT(*) AS n {WINDOWED}{GROUPED}")
    assert [(c.name, c.selected_as) for c in plan.projection] == [
        ("window_start", None), ("window_end", None), ("who", "customer"), ("how_many", "n")]
    assert "customer AS who, n AS how_many" in plan.describe()


def test_insert_into_refuses_an_incompatible_type_at_its_position():
    query = f"INSERT INTO `counts-stream` SELECT window_start, window_end, customer, MAX(region) AS n {WINDOWED}{GROUPED}"
    error = refused(query)
    assert "column `n` is string, stream `counts-stream` declares long for `how_many` (position 4)" in str(error)
    assert (error.line, error.column) == at(query, "MAX")


def test_a_stateless_query_over_a_filtered_subquery_and_select_star():
    plan = compile_text("INSERT INTO `out` SELECT * FROM (SELECT * FROM `orders-stream` WHERE amount > 5) AS big WHERE big.region = 'eu'")
    assert plan.predicate.sql == "amount > 5 AND big.region = 'eu'"
    assert [c.name for c in plan.projection] == ["order_id", "customer", "amount", "region", "ts"]
    assert plan.join is None and plan.window is None

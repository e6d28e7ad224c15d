"""The join state machine against an independent reading of Flink's regular
join: nested loops over the rows in arrival order, written here, sharing
no code with `engine.join`. Plans are compiled from SQL, so the conditions
the engine evaluates are the compiler's."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.pipeline import LOCAL_KAFKA, Pipeline, QueryProcessor, SchemaField, StreamSpec
from config.sql import compile_query
from config.sql.plan import Plan
from engine.join import DELETE, INSERT, JoinOutput, StreamJoin, output_dicts


def stream(name: str, *fields: SchemaField, **extra) -> StreamSpec:
    return StreamSpec(name=name, topic=name, protocol="kafka", servers=LOCAL_KAFKA, fields=fields,
                      modes=frozenset({"read", "write"}), **extra)


LEFT_STREAM = stream("plays", SchemaField("id", "long"), SchemaField("k", "string", optional=True),
                     SchemaField("a", "long", optional=True))
RIGHT_STREAM = stream("songs", SchemaField("id", "long"), SchemaField("k", "string", optional=True),
                      SchemaField("v", "long", optional=True))
OUT = stream("out")
UPSERT = stream("upsert-out", connector="upsert-kafka", primary_key=("lid",), key_fields=("lid",))
PIPELINE = Pipeline("t.yaml", {s.name: s for s in (LEFT_STREAM, RIGHT_STREAM, OUT, UPSERT)}, (), ())
INNER_SQL = "INSERT INTO `out` SELECT p.id AS lid, s.id AS rid, s.v FROM `plays` p JOIN `songs` s ON p.k = s.k"
INNER_CONDITION_SQL = INNER_SQL + " AND p.a < s.v WHERE p.a <> 3 OR s.v > 4"
LEFT_SQL = ("INSERT INTO `upsert-out` SELECT p.id AS lid, s.id AS rid, s.v FROM `plays` p LEFT JOIN `songs` s "
            "ON p.k = s.k AND p.a < s.v")


def plan_of(sql: str, ttl: int | None = None) -> Plan:
    return compile_query(QueryProcessor("q", sql, sql, state_ttl_ms=ttl), PIPELINE)


# --- the reference ----------------------------------------------------------------------


def less(x: Any, y: Any) -> bool:
    return x is not None and y is not None and x < y


def reference(sql: str, batches: list[tuple[int, float, list[tuple]]], ttl: float | None) -> list[tuple[str, tuple]]:
    """Flink's regular join, one row at a time, nested loops over what arrived before."""
    outer = "LEFT JOIN" in sql
    on_extra = "p.a < s.v" in sql
    where = "WHERE" in sql
    arrived: list[dict] = []  # every row so far: side, row, time, last write, matches
    out: list[tuple[str, tuple]] = []

    def visible(entry: dict, now: float) -> bool:
        return ttl is None or entry["written"] + ttl > now

    def passes(left: tuple, right: tuple | None) -> bool:
        if not where:
            return True
        a, v = left[2], None if right is None else right[2]
        return (a is not None and a != 3) or (v is not None and v > 4)

    def emit(kind: str, left: tuple, right: tuple | None) -> None:
        if passes(left, right):
            out.append((kind, (left[0], None if right is None else right[0], None if right is None else right[2])))

    for side, now, rows in batches:
        for row in rows:
            matches = 0
            for entry in arrived:
                if entry["side"] == side or not visible(entry, now):
                    continue
                left, right = (row, entry["row"]) if side == 0 else (entry["row"], row)
                if left[1] is None or left[1] != right[1] or (on_extra and not less(left[2], right[2])):
                    continue
                matches += 1
                if side == 1 and outer:
                    if entry["matches"] == 0:
                        emit(DELETE, left, None)
                    entry["matches"] += 1
                    entry["written"] = now
                emit(INSERT, left, right)
            if side == 0 and outer and matches == 0:
                emit(INSERT, row, None)
            arrived.append({"side": side, "row": row, "written": now, "matches": matches})
    return out


def engine_run(sql: str, batches, ttl: float | None, restore_at: int | None = None) -> tuple[list, StreamJoin]:
    plan = plan_of(sql, int(ttl) if ttl is not None else None)
    join = StreamJoin(plan.join, plan.projection)
    out: list[tuple[str, tuple]] = []
    for i, (side, now, rows) in enumerate(batches):
        if i == restore_at:  # a restart: the state goes through the recovery store and back
            join = StreamJoin(plan.join, plan.projection, pickle.loads(pickle.dumps(join.snapshot())))
        names = ("id", "k", "a") if side == 0 else ("id", "k", "v")
        columns = (plan.join.left if side == 0 else plan.join.right).columns
        kept = [tuple(dict(zip(names, row))[c] for c in columns) for row in rows]  # as the side's state keeps them
        made = join.on_left(kept, now) if side == 0 else join.on_right(kept, now)
        out += made.changes()
    return out, join


keys = st.sampled_from(["x", "y", None])
values = st.one_of(st.none(), st.integers(0, 6))
batch = st.tuples(st.sampled_from([0, 1]), st.floats(0, 40, allow_nan=False), st.lists(st.tuples(keys, values), max_size=4))


def numbered(raw: list[tuple[int, float, list[tuple]]]) -> list[tuple[int, float, list[tuple]]]:
    """Rows get unique ids; processing time only goes forward."""
    out, now, next_id = [], 1_000.0, 0
    for side, step, rows in raw:
        now += step
        made = []
        for k, v in rows:
            made.append((next_id, k, v))
            next_id += 1
        out.append((side, now, made))
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(batch, max_size=14), st.sampled_from([None, 15.0, 60.0]), st.sampled_from([INNER_SQL, INNER_CONDITION_SQL, LEFT_SQL]),
       st.integers(0, 14))
def test_the_join_is_the_nested_loop_reference(raw, ttl, sql, restore_at):
    batches = numbered(raw)
    got, join = engine_run(sql, batches, ttl, restore_at)
    assert got == reference(sql, batches, ttl)
    if ttl is not None and batches:
        end = batches[-1][1] + ttl / 2
        join.on_tick(end)
        # what is still kept: rows with a key whose last write is within the TTL
        kept = [r for s, t, rows in batches for r in rows if r[1] is not None]
        assert join.rows_kept <= len(kept)
        assert all(t + ttl > end for side in join.state.rows for _, times, _ in side.values() for t in times)


def test_a_pair_is_emitted_when_its_second_row_arrives_whichever_side():
    plan = plan_of(INNER_SQL)
    join = StreamJoin(plan.join, plan.projection)
    assert plan.join.left.columns == ("id", "k") and plan.join.right.columns == ("id", "k", "v")
    assert join.on_left([(1, "x"), (2, "x")], 1.0).rows == []
    assert join.on_right([(10, "x", 7)], 2.0).rows == [(1, 10, 7), (2, 10, 7)]  # buffered plays come out together
    assert join.on_left([(3, "x")], 3.0).rows == [(3, 10, 7)]
    assert join.on_right([(11, "y", 8)], 4.0).rows == []
    assert join.rows_kept == 5 and join.on_left([], 5.0).kinds is None  # INNER: append-only


def test_left_join_emits_padded_rows_and_retracts_them_when_a_match_arrives():
    plan = plan_of(LEFT_SQL)
    join = StreamJoin(plan.join, plan.projection)
    first = join.on_left([(1, "x", 1), (2, None, 1)], 1.0)
    assert first.changes() == [(INSERT, (1, None, None)), (INSERT, (2, None, None))]  # a NULL key never matches
    assert join.on_right([(10, "x", 0)], 2.0).changes() == []  # fails ON's p.a < s.v: no match
    assert join.on_right([(11, "x", 5)], 3.0).changes() == [(DELETE, (1, None, None)), (INSERT, (1, 11, 5))]
    assert join.on_right([(12, "x", 6)], 4.0).changes() == [(INSERT, (1, 12, 6))]  # no second retraction
    assert output_dicts(JoinOutput([(1, 12, 6)], [INSERT]), plan.projection) == [(INSERT, {"lid": 1, "rid": 12, "v": 6})]


def test_state_ttl_forgets_rows_in_processing_time():
    plan = plan_of(INNER_SQL, ttl=1_000)
    join = StreamJoin(plan.join, plan.projection)
    join.on_right([(10, "x", 1)], 0.0)
    assert join.on_left([(1, "x")], 999.0).rows == [(1, 10, 1)]
    assert join.on_left([(2, "x")], 1_000.0).rows == []  # the song expired at 1000 ms
    assert join.rows_kept == 2 and join.on_tick(2_000.0) == 2 and join.rows_kept == 0
    assert join.state.counters["expired"] == 3


def test_a_left_rows_ttl_starts_again_when_it_matches_as_flink_rewrites_it():
    plan = plan_of(LEFT_SQL, ttl=1_000)
    join = StreamJoin(plan.join, plan.projection)
    join.on_left([(1, "x", 1)], 0.0)
    assert join.on_right([(10, "x", 5)], 900.0).changes() == [(DELETE, (1, None, None)), (INSERT, (1, 10, 5))]
    assert join.on_right([(11, "x", 6)], 1_500.0).changes() == [(INSERT, (1, 11, 6))]  # kept until 1900 ms
    assert join.on_right([(12, "x", 7)], 2_500.0).changes() == []  # refreshed at 1500, gone at 2500


@pytest.mark.parametrize("ttl", [None, 500])
def test_the_state_pickles_and_restores(ttl):
    plan = plan_of(LEFT_SQL, ttl=ttl)
    join = StreamJoin(plan.join, plan.projection)
    join.on_left([(1, "x", 1)], 0.0)
    restored = StreamJoin(plan.join, plan.projection, pickle.loads(pickle.dumps(join.snapshot())))
    assert restored.on_right([(10, "x", 5)], 100.0).changes() == join.on_right([(10, "x", 5)], 100.0).changes()
    assert restored.rows_kept == join.rows_kept == 2

"""HAVING and Window Top-N over fired windows: against sorting and counting
written here, through the window engine (accounting included), and the
HAVING boundaries `> 5` / `>= 5`."""

from __future__ import annotations

import functools
import random

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from config.pipeline import LOCAL_KAFKA, EngineSettings, Pipeline, QueryProcessor, SchemaField, StreamSpec, TimeAttribute
from config.sql import compile_query
from config.sql.plan import Plan
from engine.having_topn import top_n
from engine.partition_stage import PartitionStage
from engine.records import PartitionId, RawRecord, RecordList, WindowResult
from engine.serde import make_decoder
from engine.window_engine import WindowEngine, result_row

BASE = 1_700_000_000_000
NOW = BASE + 3_600_000
PLAYS = StreamSpec(
    name="plays", topic="plays", protocol="kafka", servers=LOCAL_KAFKA, value_format="json",
    fields=(SchemaField("track", "long"), SchemaField("style", "string", optional=True),
            SchemaField("ms", "long", optional=True), SchemaField("at", "long", "timestamp-millis")),
    time_attribute=TimeAttribute("at", 1_000),
)
OUT = StreamSpec(name="out", topic="out", protocol="kafka", servers=LOCAL_KAFKA, modes=frozenset({"write"}))
PIPELINE = Pipeline("t.yaml", {"plays": PLAYS, "out": OUT}, (), ())
WINDOW = "FROM TABLE(TUMBLE(TABLE `plays`, DESCRIPTOR(at), INTERVAL '10' SECONDS)) "
SETTINGS = EngineSettings(idle_timeout_ms=10**12, max_future_skew_ms=None)


def plan_of(sql: str) -> Plan:
    return compile_query(QueryProcessor("q", sql, sql), PIPELINE)


def run(plan: Plan, rows: list[dict]) -> tuple[list[dict], dict[str, int]]:
    """Rows through a partition stage and the engine, to the end of input (in
    event-time order, so none is late: lateness is the engine's own test)."""
    rows = sorted(rows, key=lambda r: r["at"])
    partition = PartitionId("plays", 0)
    stage = PartitionStage(plan, PLAYS, SETTINGS, make_decoder(PLAYS), partition, (partition,), "dlq", clock=lambda: NOW / 1000)
    engine = WindowEngine(plan, SETTINGS, 1_000)
    records = [RawRecord("plays", 0, i, None, orjson.dumps(r), None, None) for i, r in enumerate(rows)]
    read = stage.process(RecordList(records))
    fired = engine.on_batch(read.batch, NOW)
    assert fired.late == []
    results = fired.results + engine.on_end().results
    return [result_row(plan, r) for r in results], engine.state.counters


# --- HAVING ---------------------------------------------------------------------------------


@given(st.lists(st.tuples(st.integers(1, 4), st.integers(0, 29_999)), max_size=60), st.sampled_from([">", ">="]))
@settings(max_examples=60, deadline=None)
def test_having_boundaries_and_accounting(plays, op):
    sql = (f"INSERT INTO `out` SELECT window_start, track, COUNT(*) AS n {WINDOW}"
           f"WHERE ms IS NULL OR ms > 0 GROUP BY window_start, window_end, track HAVING COUNT(*) {op} 5")
    rows = [{"track": t, "style": None, "ms": (None if i % 7 == 0 else 0 if i % 11 == 0 else 1), "at": BASE + at}
            for i, (t, at) in enumerate(plays)]
    got, counters = run(plan_of(sql), rows)
    groups: dict[tuple, int] = {}
    for r in rows:
        if r["ms"] != 0:
            start = (r["at"] // 10_000) * 10_000
            groups[(start, r["track"])] = groups.get((start, r["track"]), 0) + 1
    wanted = {k: n for k, n in groups.items() if (n > 5 if op == ">" else n >= 5)}
    assert {(r["window_start"], r["track"]): r["n"] for r in got} == wanted
    # groups HAVING drops are not emitted, their records still count as counted
    assert counters["records_in"] == counters["filtered"] + counters["counted"] + counters["late"] + counters["dead_lettered"]
    assert counters["counted"] == sum(groups.values())
    assert counters["results_out"] == len(wanted)
    assert counters["results_out"] + counters.get("results_suppressed", 0) == len(groups)


def test_exactly_five_is_the_boundary():
    rows = [{"track": 1, "style": "a", "ms": 1, "at": BASE + i} for i in range(5)]
    for op, emitted in ((">", []), (">=", [5])):
        sql = f"INSERT INTO `out` SELECT track, COUNT(*) AS n {WINDOW}GROUP BY window_start, window_end, track HAVING COUNT(*) {op} 5"
        assert [r["n"] for r in run(plan_of(sql), rows)[0]] == emitted


def test_having_on_an_aggregate_that_is_not_selected():
    rows = [{"track": t, "style": "a", "ms": ms, "at": BASE + i} for i, (t, ms) in enumerate([(1, 10), (1, 20), (2, 5), (2, None)])]
    sql = f"INSERT INTO `out` SELECT track, COUNT(*) AS n {WINDOW}GROUP BY window_start, window_end, track HAVING SUM(ms) >= 10"
    assert run(plan_of(sql), rows)[0] == [{"track": 1, "n": 2}]


# --- Window Top-N -------------------------------------------------------------------------------

TOP_SQL = (
    "INSERT INTO `out` SELECT {outer} FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end, style "
    "ORDER BY {order}) AS rn FROM (SELECT window_start, window_end, style, track, COUNT(*) AS plays, MAX(ms) AS longest "
    + WINDOW + "GROUP BY window_start, window_end, style, track)) WHERE {where}"
)


def reference_top(rows: list[dict], order: list[tuple[str, bool, bool]], ties: list[str], first: int, last: int) -> list[dict]:
    """Per window and style: sort with a comparison written out, keep ranks first..last."""
    def compare(a: dict, b: dict) -> int:
        for column, descending, nulls_first in order:
            x, y = a[column], b[column]
            if x == y:
                continue
            if x is None or y is None:
                return -1 if (x is None) == nulls_first else 1
            return (-1 if x < y else 1) * (-1 if descending else 1)
        for column in ties:
            x, y = a[column], b[column]
            if x != y:
                if x is None or y is None:
                    return -1 if x is None else 1
                return -1 if x < y else 1
        return 0

    kept = []
    parts: dict[tuple, list[dict]] = {}
    for r in rows:
        parts.setdefault((r["window_start"], r["window_end"], r["style"]), []).append(r)
    for members in parts.values():
        ranked = sorted(members, key=functools.cmp_to_key(compare))
        for rank, r in enumerate(ranked, 1):
            if first <= rank <= last:
                kept.append({**r, "rn": rank})
    return kept


def aggregate_rows(rows: list[dict]) -> list[dict]:
    groups: dict[tuple, list[int | None]] = {}
    for r in rows:
        start = (r["at"] // 10_000) * 10_000
        groups.setdefault((start, start + 10_000, r["style"], r["track"]), []).append(r["ms"])
    return [{"window_start": s, "window_end": e, "style": st_, "track": t, "plays": len(ms),
             "longest": max((m for m in ms if m is not None), default=None)} for (s, e, st_, t), ms in groups.items()]


play = st.fixed_dictionaries({
    "track": st.integers(1, 6), "style": st.sampled_from(["rock", "jazz", None]),
    "ms": st.one_of(st.none(), st.integers(0, 3)), "at": st.integers(BASE, BASE + 25_000),
})
orders = st.sampled_from([
    ("plays DESC", [("plays", True, False)]),
    ("longest DESC NULLS FIRST, plays", [("longest", True, True), ("plays", False, True)]),
    ("longest ASC", [("longest", False, True)]),
])
ranges = st.sampled_from([("rn <= 2", 1, 2), ("rn < 2", 1, 1), ("rn = 2", 2, 2), ("rn BETWEEN 2 AND 3", 2, 3)])


@given(st.lists(play, max_size=50), orders, ranges)
@settings(max_examples=80, deadline=None)
def test_window_top_n_is_sorting(rows, order, rank_range):
    order_sql, order_keys = order
    where, first, last = rank_range
    plan = plan_of(TOP_SQL.format(outer="*", order=order_sql, where=where))
    ordered = {c for c, _, _ in order_keys}
    ties = [c for c in ("style", "track", "plays", "longest") if c not in ordered and c != "style"]
    assert list(plan.top_n.tie_break) == ties
    got, counters = run(plan, rows)
    wanted = reference_top(aggregate_rows(rows), order_keys, ties, first, last)
    key = lambda r: (r["window_start"], str(r["style"]), r["rn"])  # noqa: E731
    assert sorted(got, key=key) == sorted(wanted, key=key)
    assert counters["results_out"] == len(got)


def test_top_n_emits_once_per_window_in_the_engines_order():
    rows = [{"track": t, "style": "rock", "ms": 1, "at": BASE + i * 100} for i, t in enumerate([3, 1, 1, 2, 2, 2, 4])]
    rows += [{"track": 9, "style": "rock", "ms": 1, "at": BASE + 10_000}]
    plan = plan_of(TOP_SQL.format(outer="window_start, track, plays", order="plays DESC", where="rn <= 2"))
    got, _ = run(plan, rows)
    assert got == [{"window_start": BASE, "track": 1, "plays": 2}, {"window_start": BASE, "track": 2, "plays": 3},
                   {"window_start": BASE + 10_000, "track": 9, "plays": 1}]


def test_ties_go_to_the_smaller_remaining_columns_whatever_the_arrival_order():
    plan = plan_of(TOP_SQL.format(outer="track, rn", order="plays DESC", where="rn <= 2"))
    results = [WindowResult(BASE, BASE + 10_000, ("jazz", t), {"plays": 1, "longest": None}) for t in (5, 2, 7, 3)]
    for _ in range(5):
        random.shuffle(results)
        kept = top_n(plan, plan.top_n, results)
        assert sorted((r.key[1], r.aggregates["rn"]) for r in kept) == [(2, 1), (3, 2)]

"""The event-time engine against an independent, record-at-a-time reading of
docs/semantics.md, written here and sharing no code with the engine."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.pipeline import EngineSettings, SchemaField, StreamSpec, TimeAttribute
from config.sql.plan import Aggregate, OutputColumn, Plan, Predicate, WindowSpec
from engine.partition_stage import PartitionStage
from engine.records import PartitionId, RawRecord, RecordList
from engine.serde import make_decoder
from engine.window_engine import WindowEngine

BASE = 1_645_020_000_000
DELAY = 3_000
NOW = BASE + 3_600_000  # processing time: after every event time used here

STREAM = StreamSpec(
    name="events", topic="events", protocol="kafka", servers="unused:9092", value_format="json",
    fields=(SchemaField("code", "string"), SchemaField("type", "string"), SchemaField("v", "long", optional=True),
            SchemaField("ts", "long", "timestamp-millis")),
    time_attribute=TimeAttribute("ts", DELAY),
)


def make_plan(window: WindowSpec) -> Plan:
    return Plan(
        source="events", sink="out",
        predicate=Predicate("type = 'ERROR'", ("type",), lambda row: row.get("type") == "ERROR",
                            lambda: __import__("polars").col("type") == "ERROR"),
        window=window, group_by=("code",),
        aggregates=(Aggregate("COUNT", None, "n", "long"), Aggregate("SUM", "v", "total", "long"),
                    Aggregate("MAX", "v", "top", "long")),
        projection=(OutputColumn("window_start", "window_start", "window_start", "long_timestamp-millis"),
                    OutputColumn("code", "group", "code", "string"), OutputColumn("n", "aggregate", "n", "long")),
    )


TUMBLE = WindowSpec("TUMBLE", "ts", 60_000)
HOP = WindowSpec("HOP", "ts", 30_000, slide_ms=10_000)
CUMULATE = WindowSpec("CUMULATE", "ts", 60_000, step_ms=20_000)
NO_IDLE = EngineSettings(idle_timeout_ms=10**12, max_future_skew_ms=600_000)


# --- the independent reference ----------------------------------------------


def reference_windows(window: WindowSpec, ts: int) -> list[tuple[int, int]]:
    """Windows containing ts, by scanning candidate starts (brute force)."""
    out = []
    if window.kind == "TUMBLE":
        step, sizes = window.size_ms, [window.size_ms]
    elif window.kind == "HOP":
        step, sizes = window.slide_ms, [window.size_ms]
    else:
        step, sizes = window.size_ms, [window.step_ms * k for k in range(1, window.size_ms // window.step_ms + 1)]
    start = (ts // step) * step - 10 * window.size_ms
    while start <= ts:
        for size in sizes:
            if start <= ts < start + size:
                out.append((start, start + size))
        start += step
    return sorted(set(out))


def reference_run(events: list[tuple[int, bytes | None]], partitions: int, window: WindowSpec, skew_ms: int):
    """Record at a time: judge each record against the global watermark before it."""
    wm = {p: None for p in range(partitions)}
    fired = None  # F
    open_: dict[tuple[int, int], dict[str, list]] = defaultdict(lambda: defaultdict(list))
    results, late, dead, filtered = [], [], [], 0

    def fire(upto):
        for w in sorted((w for w in open_ if upto is not None and w[1] - 1 <= upto), key=lambda w: (w[1], w[0])):
            groups = open_.pop(w)
            for code in sorted(groups):
                vs = groups[code]
                present = [v for v in vs if v is not None]
                results.append((w[0], w[1], code, len(vs), sum(present) if present else None, max(present) if present else None))

    for offset, (p, value) in enumerate(events):
        try:
            row = orjson.loads(value)
            ts = row["ts"]
            assert isinstance(ts, int) and isinstance(row["type"], str) and isinstance(row["code"], str)
        except Exception:
            dead.append(offset)
            continue
        if ts > NOW + skew_ms:
            dead.append(offset)
            continue
        if row["type"] != "ERROR":
            filtered += 1
        else:
            alive = [w for w in reference_windows(window, ts) if fired is None or w[1] - 1 > fired]
            if not alive:
                late.append(offset)
            for w in alive:
                open_[w][row["code"]].append(row.get("v"))
        wm[p] = ts - DELAY if wm[p] is None else max(wm[p], ts - DELAY)
        if all(v is not None for v in wm.values()):
            w_now = min(wm.values())
            fired = w_now if fired is None else max(fired, w_now)
            fire(fired)
    fire(2**62)
    return results, late, dead, filtered


# --- driving the engine -------------------------------------------------------


def engine_run(events: list[tuple[int, bytes | None]], partitions: int, window: WindowSpec, cuts: list[int],
               settings: EngineSettings = NO_IDLE):
    plan = make_plan(window)
    names = tuple(PartitionId("events", p) for p in range(partitions))
    stages = {p: PartitionStage(plan, STREAM, settings, make_decoder(STREAM), names[p], names, "events-dlq",
                                clock=lambda: NOW / 1000) for p in range(partitions)}
    engine = WindowEngine(plan, settings, DELAY)
    results, late, dead = [], [], []
    # consecutive records of one partition, cut where `cuts` says, form a batch
    batches: list[tuple[int, list[tuple[int, bytes | None]]]] = []
    for offset, (p, value) in enumerate(events):
        if batches and batches[-1][0] == p and offset not in cuts:
            batches[-1][1].append((offset, value))
        else:
            batches.append((p, [(offset, value)]))
    for p, batch in batches:
        records = [RawRecord("events", p, off, None, v, None, None) for off, v in batch]
        read = stages[p].process(RecordList(records))
        dead += [int(dict(d.headers)["x-source-offset"]) for d in read.dead]
        fired = engine.on_batch(read.batch, NOW)
        results += fired.results
        late += [lr.offset for lr in fired.late]
    results += engine.on_end().results
    out = [(r.start_ms, r.end_ms, r.key[0], r.aggregates["n"], r.aggregates["total"], r.aggregates["top"]) for r in results]
    return out, sorted(late), sorted(dead), engine.state.counters


# --- strategies -----------------------------------------------------------------


def event_values(draw_ts, rng_type, code, v) -> bytes:
    return orjson.dumps({"code": code, "type": rng_type, "v": v, "ts": draw_ts})


@st.composite
def event_streams(draw) -> tuple[list[tuple[int, bytes | None]], int, list[int]]:
    partitions = draw(st.integers(1, 3))
    n = draw(st.integers(0, 120))
    clock = BASE
    events = []
    for _ in range(n):
        clock += draw(st.integers(0, 4_000))
        jitter = draw(st.sampled_from([0, 0, 0, -1_000, -2_999, -3_000, -5_000, -61_000]))
        p = draw(st.integers(0, partitions - 1))
        kind = draw(st.sampled_from(["ok"] * 12 + ["garbage", "missing-ts", "string-ts", "future"]))
        ts = clock + jitter
        if kind == "garbage":
            value = b"{not json"
        elif kind == "missing-ts":
            value = orjson.dumps({"code": "A", "type": "ERROR"})
        elif kind == "string-ts":
            value = orjson.dumps({"code": "A", "type": "ERROR", "ts": "soon"})
        elif kind == "future":
            value = event_values(NOW + 700_000, "ERROR", "A", 1)
        else:
            value = event_values(ts, draw(st.sampled_from(["ERROR", "ERROR", "INFO"])), draw(st.sampled_from(["A", "B", "C"])),
                                 draw(st.one_of(st.none(), st.integers(-5, 50))))
        events.append((p, value))
    cuts = draw(st.lists(st.integers(0, max(n - 1, 0)), max_size=10))
    return events, partitions, cuts


def check_against_reference(events, partitions, cuts, window):
    expected, exp_late, exp_dead, exp_filtered = reference_run(events, partitions, window, 600_000)
    got, late, dead, counters = engine_run(events, partitions, window, cuts)
    assert got == expected
    assert late == exp_late
    assert dead == sorted(exp_dead)
    assert counters["records_in"] == len(events)
    assert counters["filtered"] == exp_filtered
    assert counters["late"] == len(exp_late)
    assert counters["dead_lettered"] == len(exp_dead)
    # the accounting identity: every record is filtered, counted, late or dead-lettered, once
    assert counters["filtered"] + counters["counted"] + counters["late"] + counters["dead_lettered"] == len(events)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event_streams())
def test_tumble_matches_reference(stream) -> None:
    check_against_reference(*stream, TUMBLE)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event_streams())
def test_hop_matches_reference(stream) -> None:
    check_against_reference(*stream, HOP)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event_streams())
def test_cumulate_matches_reference(stream) -> None:
    check_against_reference(*stream, CUMULATE)


# --- the rules one at a time ------------------------------------------------------


def ev(ts: int, code: str = "A", type_: str = "ERROR") -> bytes:
    return orjson.dumps({"code": code, "type": type_, "v": 1, "ts": ts})


def test_out_of_order_within_delay_is_counted_and_beyond_is_late() -> None:
    events = [(0, ev(BASE + 59_000)), (0, ev(BASE + 62_998)), (0, ev(BASE + 59_500)),  # W = 59_998 < end - 1: open
              (0, ev(BASE + 62_999)), (0, ev(BASE + 59_900))]  # W = 59_999 = end - 1: fired, so late
    got, late, _, _ = engine_run(events, 1, TUMBLE, [])
    assert got[0][:4] == (BASE, BASE + 60_000, "A", 2)
    assert late == [4]


def test_the_record_that_raises_the_watermark_is_judged_before_it() -> None:
    # the first record of a batch jumps far ahead; it still counts in its own window
    events = [(0, ev(BASE + 1_000)), (0, ev(BASE + 200_000))]
    got, late, _, _ = engine_run(events, 1, TUMBLE, [])
    assert late == []
    assert [g[:4] for g in got] == [(BASE, BASE + 60_000, "A", 1), (BASE + 180_000, BASE + 240_000, "A", 1)]


def test_non_error_records_raise_the_watermark_and_make_later_errors_late() -> None:
    events = [(0, ev(BASE + 10_000)), (0, ev(BASE + 70_000, type_="INFO")), (0, ev(BASE + 20_000))]
    got, late, _, counters = engine_run(events, 1, TUMBLE, [])
    assert [g[:4] for g in got] == [(BASE, BASE + 60_000, "A", 1)]
    assert late == [2]
    assert counters["filtered"] == 1


def test_slowest_partition_holds_the_watermark_back() -> None:
    events = [(0, ev(BASE + 1_000)), (1, ev(BASE + 500_000)), (0, ev(BASE + 2_000))]
    got, late, _, _ = engine_run(events, 2, TUMBLE, [])
    assert late == []  # partition 0 is still in the first minute: nothing fired
    assert got[0][:4] == (BASE, BASE + 60_000, "A", 2)


def test_results_that_fire_together_are_ordered_by_end_start_key() -> None:
    events = [(0, ev(BASE + 61_000, "B")), (0, ev(BASE + 1_000, "C")), (0, ev(BASE + 2_000, "A")), (0, ev(BASE + 61_500, "A"))]
    got, _, _, _ = engine_run(events, 1, TUMBLE, [])
    assert [(g[0], g[2]) for g in got] == [(BASE, "A"), (BASE, "C"), (BASE + 60_000, "A"), (BASE + 60_000, "B")]


# --- processing time: idle partitions and quiet input --------------------------------


def _stage_and_engine(partitions: int, settings: EngineSettings):
    plan = make_plan(TUMBLE)
    names = tuple(PartitionId("events", p) for p in range(partitions))
    stages = [PartitionStage(plan, STREAM, settings, make_decoder(STREAM), names[p], names, "dlq", clock=lambda: NOW / 1000)
              for p in range(partitions)]
    return stages, WindowEngine(plan, settings, DELAY)


def _feed(stage: PartitionStage, engine: WindowEngine, values: list[bytes], now_ms: float, offset: int = 0,
          caught_up: bool = True) -> list[Any]:
    """One read of the stage's partition (caught up with its log, unless said otherwise)."""
    records = [RawRecord("events", stage.source.partition, offset + i, None, v, None, None) for i, v in enumerate(values)]
    read = stage.process(RecordList(records), caught_up=caught_up)
    return engine.on_batch(read.batch, now_ms).results


def _tick(engine: WindowEngine, now_ms: float) -> list[Any]:
    return engine.on_tick(now_ms).results


def _quiet(stages: list[PartitionStage], engine: WindowEngine, start_ms: float, end_ms: float) -> list[Any]:
    """Processing time passes with nothing new: every reader says so each tick, the engine ticks."""
    fired: list[Any] = []
    now = start_ms
    while now < end_ms:
        for stage in stages:
            fired += _feed(stage, engine, [], now)
        fired += _tick(engine, now)
        now += 200
    return fired


def test_an_idle_partition_stops_holding_the_watermark_back() -> None:
    settings = EngineSettings(idle_timeout_ms=5_000, quiet_advance=False)
    (p0, p1), engine = _stage_and_engine(2, settings)
    t = 1_000_000.0
    assert _feed(p0, engine, [ev(BASE + 1_000), ev(BASE + 70_000)], t) == []
    # partition 1 is caught up and has nothing: its reader says so every tick
    assert _quiet([p1], engine, t, t + 4_000) == []
    assert _feed(p0, engine, [ev(BASE + 71_000)], t + 4_000) == []
    assert _quiet([p1], engine, t + 4_000, t + 5_001) == []
    fired = _feed(p1, engine, [], t + 5_001)  # partition 1 idle for longer than the timeout since the start
    assert [(r.start_ms, r.aggregates["n"]) for r in fired] == [(BASE, 1)]


def test_a_partition_never_heard_from_holds_the_watermark_back() -> None:
    """Its reader has not started, or cannot read: it is not idle, however long it is quiet."""
    settings = EngineSettings(idle_timeout_ms=5_000, quiet_advance=True)
    (p0, p1), engine = _stage_and_engine(2, settings)
    t = 1_000_000.0
    _feed(p0, engine, [ev(BASE + 1_000), ev(BASE + 70_000)], t)
    for now in range(int(t), int(t + 600_000), 200):
        _feed(p0, engine, [], now)
        assert _tick(engine, now) == []
    assert [r.start_ms for r in engine.on_end().results] == [BASE, BASE + 60_000]


def test_a_partition_read_to_its_end_holds_nobody_back() -> None:
    """A bounded replay: partition 1 is short and finishes; partition 0's windows fire without waiting for the end."""
    settings = EngineSettings(idle_timeout_ms=5_000, quiet_advance=False)
    (p0, p1), engine = _stage_and_engine(2, settings)
    t = 1_000_000.0
    records = [RawRecord("events", 1, 0, None, ev(BASE + 1_000), None, None)]
    engine.on_batch(p1.process(RecordList(records), end_of_input=True, caught_up=True).batch, t)
    fired = _feed(p0, engine, [ev(BASE + 2_000), ev(BASE + 70_000)], t, caught_up=False)
    assert [(r.start_ms, r.aggregates["n"]) for r in fired] == [(BASE, 2)]


def test_a_partition_with_a_backlog_is_never_idle() -> None:
    settings = EngineSettings(idle_timeout_ms=5_000, quiet_advance=True)
    (p0, p1), engine = _stage_and_engine(2, settings)
    t = 1_000_000.0
    _feed(p0, engine, [ev(BASE + 70_000)], t)
    _feed(p1, engine, [ev(BASE + 1_000)], t, caught_up=False)
    for now in range(int(t), int(t + 60_000), 200):
        _feed(p0, engine, [], now)
        _feed(p1, engine, [], now, caught_up=False)  # reading a backlog (or waiting on its broker)
        assert _tick(engine, now) == []
    # its backlog arrives, still in the first window: counted, not late
    _feed(p1, engine, [ev(BASE + 2_000)], t + 60_000, offset=1, caught_up=True)
    assert engine.state.counters["late"] == 0


def test_a_partition_speaking_again_rejoins_the_minimum() -> None:
    settings = EngineSettings(idle_timeout_ms=5_000, quiet_advance=False)
    (p0, p1), engine = _stage_and_engine(2, settings)
    t = 1_000_000.0
    _feed(p1, engine, [ev(BASE + 1_000)], t)
    _feed(p0, engine, [ev(BASE + 2_000)], t)
    assert _quiet([p0, p1], engine, t, t + 6_000) == []  # both idle, no quiet advance: the watermark waits
    fired = _feed(p0, engine, [ev(BASE + 130_000)], t + 6_000)  # p1 idle: W is p0's alone
    assert [(r.start_ms, r.aggregates["n"]) for r in fired] == [(BASE, 2)]
    # p1 speaks again, behind: its record is late, and it holds W back from now on
    records = [RawRecord("events", 1, 1, None, ev(BASE + 3_000), None, None)]
    out = engine.on_batch(p1.process(RecordList(records), caught_up=True).batch, t + 6_500)
    assert out.results == [] and [lr.offset for lr in out.late] == [1]
    assert _feed(p0, engine, [ev(BASE + 250_000)], t + 6_600) == []  # would fire [120 s, 180 s) without p1


def test_quiet_input_still_emits_its_last_window() -> None:
    settings = EngineSettings(idle_timeout_ms=5_000, quiet_advance=True)
    (p0,), engine = _stage_and_engine(1, settings)
    t = 1_000_000.0
    assert _feed(p0, engine, [ev(BASE + 10_000), ev(BASE + 20_000)], t) == []
    # W = 20_000 - 3_000 + (now - t) once idle; the window [0, 60 s) fires when W >= 59_999
    for now in range(int(t), int(t + 42_998), 200):  # the reader says every tick that there is nothing new
        _feed(p0, engine, [], now)
        assert _tick(engine, now) == []
    _feed(p0, engine, [], t + 42_998)
    assert _tick(engine, t + 42_998) == []
    fired = _tick(engine, t + 42_999)
    assert [(r.start_ms, r.aggregates["n"]) for r in fired] == [(BASE, 2)]


def test_quiet_advance_can_be_switched_off() -> None:
    settings = EngineSettings(idle_timeout_ms=5_000, quiet_advance=False)
    (p0,), engine = _stage_and_engine(1, settings)
    _feed(p0, engine, [ev(BASE + 10_000)], 1_000_000.0)
    assert _quiet([p0], engine, 1_000_000.0, 1_000_000.0 + 120_000) == []
    assert [r.start_ms for r in engine.on_end().results] == [BASE]


def test_clock_skew_guard_dead_letters_and_does_not_raise_the_watermark() -> None:
    settings = EngineSettings(idle_timeout_ms=10**12, max_future_skew_ms=600_000)
    (p0,), engine = _stage_and_engine(1, settings)
    records = [RawRecord("events", 0, i, None, v, None, None) for i, v in enumerate([ev(BASE + 1_000), ev(NOW + 600_001), ev(BASE + 2_000)])]
    read = p0.process(RecordList(records))
    assert [dict(d.headers)["x-dlq-reason"].split(b":")[0] for d in read.dead] == [b"future-timestamp"]
    assert read.batch.watermark_ms == BASE + 2_000 - DELAY


def test_clock_skew_guard_can_be_switched_off() -> None:
    settings = EngineSettings(idle_timeout_ms=10**12, max_future_skew_ms=None)
    (p0,), engine = _stage_and_engine(1, settings)
    records = [RawRecord("events", 0, 0, None, ev(NOW + 10**9), None, None)]
    read = p0.process(RecordList(records))
    assert read.dead == [] and read.batch.watermark_ms == NOW + 10**9 - DELAY


def test_engine_state_survives_a_pickle_round_trip() -> None:
    import pickle

    (p0,), engine = _stage_and_engine(1, NO_IDLE)
    _feed(p0, engine, [ev(BASE + 1_000), ev(BASE + 2_000, "B")], NOW)
    restored = WindowEngine(make_plan(TUMBLE), NO_IDLE, DELAY, pickle.loads(pickle.dumps(engine.snapshot())))
    assert [(r.key, r.aggregates["n"]) for r in restored.on_end().results] == [(("A",), 1), (("B",), 1)]

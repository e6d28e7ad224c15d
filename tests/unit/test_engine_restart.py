"""A restart, after any downtime, gives the results of a run without one.

Live input on two partitions is simulated in processing time: records arrive
as their event time passes, readers deliver what has arrived every tick and
say whether they are caught up. The crashed run stops at some point, comes
back from its last snapshot after a downtime (shorter and longer than the
idle timeout, and longer than a window), replays what arrived meanwhile in
reads of a bounded size, and goes on live. Its results (what it emitted
before the snapshot plus what it emitted after the restart), late records
and counters must equal the uninterrupted run's.
"""

from __future__ import annotations

import pickle

import orjson
import pytest

from config.pipeline import EngineSettings
from engine.partition_stage import PartitionStage
from engine.records import PartitionId, RawRecord, RecordList
from engine.serde import make_decoder
from engine.window_engine import WindowEngine
from tests.unit.test_window_engine import BASE, DELAY, STREAM, TUMBLE, make_plan

SETTINGS = EngineSettings(idle_timeout_ms=5_000, quiet_advance=True, max_future_skew_ms=None)
T0 = 10_000_000.0  # processing time (ms) when the first event happens
TICK = 200
PARTS = (PartitionId("events", 0), PartitionId("events", 1))


def arrivals() -> dict[int, list[tuple[float, bytes]]]:
    """Per partition, (arrival time, value): an event every 500 ms on each
    partition for 100 s, arriving when it happens; partition 1 a little behind."""
    out: dict[int, list[tuple[float, bytes]]] = {0: [], 1: []}
    for i in range(200):
        ts = BASE + i * 500
        for p, lag in ((0, 0), (1, 300)):
            value = orjson.dumps({"code": "A", "type": "ERROR", "v": 1, "ts": ts})
            out[p].append((T0 + (ts - BASE) + lag, value))
    return out


class Run:
    """Readers, partition stages and the engine of one dataflow process."""

    def __init__(self, state: bytes | None = None) -> None:
        plan = make_plan(TUMBLE)
        saved = pickle.loads(state) if state else None
        self.positions = saved["positions"] if saved else {0: 0, 1: 0}
        self.stages = [PartitionStage(plan, STREAM, SETTINGS, make_decoder(STREAM), PARTS[p], PARTS,
                                      "dlq", saved["stages"][p] if saved else None, clock=lambda: T0 / 1000) for p in (0, 1)]
        self.engine = WindowEngine(plan, SETTINGS, DELAY, saved["engine"] if saved else None)
        self.results: list[tuple] = []
        self.late: list[tuple[int, int]] = []

    def snapshot(self) -> bytes:
        return pickle.dumps({"positions": dict(self.positions), "stages": [s.snapshot() for s in self.stages],
                             "engine": self.engine.snapshot()})

    def step(self, now: float, log: dict[int, list[tuple[float, bytes]]], max_read: int) -> None:
        for p in (0, 1):
            arrived = [v for t, v in log[p] if t <= now]
            start = self.positions[p]
            chunk = arrived[start:start + max_read]
            self.positions[p] = start + len(chunk)
            records = [RawRecord("events", p, start + i, None, v, None, None) for i, v in enumerate(chunk)]
            read = self.stages[p].process(RecordList(records), caught_up=self.positions[p] >= len(arrived))
            self.keep(self.engine.on_batch(read.batch, now))
        self.keep(self.engine.on_tick(now))

    def keep(self, fired) -> None:
        self.results += [(r.start_ms, r.end_ms, r.key, r.aggregates["n"]) for r in fired.results]
        self.late += [(lr.partition, lr.offset) for lr in fired.late]


def run_uninterrupted(until: float) -> Run:
    log = arrivals()
    run = Run()
    now = T0
    while now <= until:
        run.step(now, log, 10_000)
        now += TICK
    return run


@pytest.mark.parametrize("read_size", [25, 10_000])
@pytest.mark.parametrize("downtime_ms", [1_000, 6_000, 45_000, 300_000])
def test_a_restart_after_any_downtime_gives_the_same_results(downtime_ms: int, read_size: int) -> None:
    log = arrivals()
    end = T0 + 100_000 + 120_000  # long enough after the last event for the quiet advance to fire everything
    expected = run_uninterrupted(end + downtime_ms)

    first = Run()
    now, snapshot_at, crash_at = T0, T0 + 50_000, T0 + 57_000
    saved = None
    before_snapshot: list[tuple] = []
    late_before: list[tuple[int, int]] = []
    while now <= crash_at:
        first.step(now, log, 10_000)
        if now == snapshot_at:
            saved = first.snapshot()
            before_snapshot, late_before = list(first.results), list(first.late)
        now += TICK
    assert saved is not None

    second = Run(saved)
    now = crash_at + downtime_ms
    while now <= end + downtime_ms:
        second.step(now, log, read_size)
        now += TICK

    assert expected.results, "the uninterrupted run emits windows"
    assert set(before_snapshot + second.results) == set(expected.results)
    assert sorted(late_before + second.late) == sorted(expected.late) == []
    assert second.engine.state.counters == expected.engine.state.counters


def test_a_stalled_engine_does_not_judge_partitions_idle() -> None:
    """The engine's worker blocked for longer than the idle timeout (a sink
    waiting for its broker): the stall is not quiet input."""
    log = arrivals()
    run = Run()
    now = T0
    while now <= T0 + 30_000:
        run.step(now, log, 10_000)
        now += TICK
    # 40 s in which nothing runs, then partition 0 is read first, with all it got meanwhile
    now += 40_000
    p0 = run.stages[0]
    arrived = [v for t, v in log[0] if t <= now]
    records = [RawRecord("events", 0, run.positions[0] + i, None, v, None, None) for i, v in enumerate(arrived[run.positions[0]:])]
    run.positions[0] = len(arrived)
    run.keep(run.engine.on_batch(p0.process(RecordList(records), caught_up=True).batch, now))
    run.step(now, log, 10_000)
    assert run.late == []
